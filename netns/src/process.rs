//! Processes started inside a test host; killed when their handle drops.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{NetnsError, Result};

/// A process running inside a test host. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct HostProcess {
    /// `None` once [`HostProcess::stop`] has reaped it.
    child: Option<Child>,
    command: String,
}

impl HostProcess {
    /// Starts `cmd` (with piped output) and takes charge of it; use
    /// [`crate::Netns::spawn`] for programs that run inside a host, this for
    /// ones that enter a namespace themselves. `command` describes it in
    /// errors.
    ///
    /// # Errors
    /// When the program cannot be started.
    pub fn start(mut cmd: Command, command: String) -> Result<Self> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
        Ok(Self {
            child: Some(child),
            command,
        })
    }

    /// Starts `cmd` with its stdout and stderr appended to the file `log`
    /// (created if missing) and takes charge of it. For chatty long-running
    /// processes: a pipe nobody reads would stall them once it fills.
    ///
    /// # Errors
    /// When the log cannot be opened or the program cannot be started.
    pub fn start_logged(mut cmd: Command, command: String, log: &Path) -> Result<Self> {
        let spawn_error = |source| NetnsError::Spawn {
            command: command.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_error)?;
        cmd.stdout(file.try_clone().map_err(spawn_error)?)
            .stderr(file);
        let child = cmd.spawn().map_err(spawn_error)?;
        Ok(Self {
            child: Some(child),
            command,
        })
    }

    /// The process id (that of the program itself: `ip netns exec` execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops the process (SIGTERM, then SIGKILL after a second) and returns
    /// what it wrote on stdout and stderr.
    pub fn stop(mut self) -> (String, String) {
        self.terminate(Duration::from_secs(1));
        let Some(child) = self.child.take() else {
            return (String::new(), String::new());
        };
        match child.wait_with_output() {
            Ok(out) => (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Err(err) => (String::new(), format!("{}: {err}", self.command)),
        }
    }

    fn terminate(&mut self, grace: Duration) {
        let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        while self.is_running() && waited < grace {
            std::thread::sleep(step);
            waited += step;
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
