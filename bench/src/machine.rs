//! What the benchmark ran on, for the report: numbers from a 2-core shared
//! machine mean little without it.

use std::process::Command;

/// The machine and software a report's numbers come from.
pub struct Machine {
    /// CPU model, from /proc/cpuinfo.
    pub cpu: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// `iptables --version` (names the backend, nf_tables or legacy).
    pub iptables: String,
    /// UTC date of the run.
    pub date: String,
}

impl Machine {
    /// Describes this machine; unknown pieces read "unknown".
    pub fn describe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, name)| name.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            cpu,
            cores,
            kernel,
            iptables: output(&["iptables", "--version"]),
            date: output(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }
}

impl Machine {
    /// A report's provenance line: which command wrote it, when, from
    /// which commit, how long it took, on what, under which load.
    pub fn written_by(
        &self,
        command: &str,
        commit: Option<&str>,
        took: std::time::Duration,
        load_start: f64,
    ) -> String {
        let commit = commit
            .map(|c| format!(", commit `{c}`"))
            .unwrap_or_default();
        format!(
            "Written by `{command}` on {}{commit} in {} s. Machine: {} cores ({}), kernel {}; \
             load average {load_start:.1} at the start, {:.1} at the end.",
            self.date,
            took.as_secs(),
            self.cores,
            self.cpu,
            self.kernel,
            load_average(),
        )
    }
}

/// The trimmed stdout of a command, or "unknown".
pub fn output(args: &[&str]) -> String {
    let (program, rest) = args.split_first().unwrap_or((&"true", &[]));
    Command::new(program)
        .args(rest)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The 1-minute load average (other work on the machine skews numbers).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}
