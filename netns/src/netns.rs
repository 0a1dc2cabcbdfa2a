//! A handle on one named network namespace: run commands in it, spawn
//! processes in it, or run a closure on a thread that entered it.

use std::{
    fs::File,
    process::{Command, Output, Stdio},
};

use crate::{HostProcess, NetnsError, Result};

/// A named network namespace (as `ip netns` knows it). A handle only: the
/// [`crate::TestNetwork`] that created it deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub(crate) fn new(name: String) -> Self {
        Self { name }
    }

    /// A handle on a namespace something else made under this run's names
    /// (a pod sandbox an agent created, say); the [`crate::TestNetwork`]
    /// still removes it with the run's other namespaces.
    pub fn existing(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The namespace's name (under /run/netns).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `args[0] args[1..]` in the namespace and returns its output,
    /// whatever its exit status.
    pub fn output(&self, args: &[&str]) -> Result<Output> {
        let (program, rest) = args.split_first().unwrap_or((&"true", &[]));
        let mut cmd = self.command(program);
        cmd.args(rest);
        cmd.output().map_err(|source| NetnsError::Spawn {
            command: args.join(" "),
            source,
        })
    }

    /// Runs the command in the namespace; fails unless it exits 0. Returns stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            return Err(NetnsError::Command {
                command: format!("[{}] {}", self.name, args.join(" ")),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip <args>` run against this namespace (`ip -n NAME ...`).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        crate::network::ip(&full)
    }

    /// Starts a long-running process in the namespace. It is killed when the
    /// returned handle drops, and at the latest when the namespace is deleted.
    pub fn spawn(&self, args: &[&str]) -> Result<HostProcess> {
        let (program, rest) = args.split_first().unwrap_or((&"true", &[]));
        let mut cmd = self.command(program);
        cmd.args(rest).stdin(Stdio::null());
        HostProcess::start(cmd, args.join(" "))
    }

    /// Runs `f` on a fresh thread that has entered this namespace, so socket
    /// and interface calls inside `f` see the namespace's network. The
    /// calling thread's namespace is untouched.
    pub fn enter<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|source| NetnsError::Enter {
            name: self.name.clone(),
            source,
        })?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |errno| NetnsError::Enter {
                            name: self.name.clone(),
                            source: errno.into(),
                        },
                    )?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Pids of every process whose network namespace is this one.
    pub fn pids(&self) -> Vec<i32> {
        crate::network::ip(&["netns", "pids", &self.name])
            .map(|out| {
                out.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}
