//! `rudder-bench cni`: rudder-cni and the pods it wires, side by side with
//! the reference bridge + host-local plugins (containernetworking-plugins),
//! in one run, written to `docs/benchmarks/cni.md`:
//! 1. ADD and DEL latency of the plugins ([`plugin_latency`]);
//! 2. pod-to-pod TCP throughput and request/response rate across the
//!    node bridge ([`traffic`]);
//! 3. pod startup latency through the whole path: API create to Running
//!    with an IP ([`pod_startup`]).

mod plugin_latency;
pub mod plugin_node;
mod pod_startup;
mod report;
pub mod traffic;

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};

use crate::machine::{self, Machine};

/// Options of `rudder-bench cni`.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Where to write the report.
    #[arg(long, default_value = "docs/benchmarks/cni.md")]
    out: PathBuf,
    /// Times each measurement of parts 1 and 2 is repeated (medians are
    /// quoted).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Fewer samples and shorter runs: a smoke test, not a result.
    #[arg(long)]
    quick: bool,
    /// Where the reference plugins are.
    #[arg(long, default_value = "/usr/lib/cni")]
    reference_dir: PathBuf,
    /// Commit the binaries were built from, for the report.
    #[arg(long)]
    commit: Option<String>,
    /// Run one part only and print it, without writing the report.
    #[arg(long, value_enum)]
    only: Option<Part>,
}

/// The parts of the benchmark.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// ADD and DEL latency.
    Plugins,
    /// Pod-to-pod throughput and request/response rate.
    Traffic,
    /// Pod startup latency through the whole path.
    Startup,
}

/// How much of everything to do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Repetitions of parts 1 and 2.
    pub runs: usize,
    /// Sandboxes per plugin per run (part 1).
    pub sandboxes: usize,
    /// Length of one throughput run and of one TCP_RR run (part 2).
    pub traffic_seconds: u64,
    /// Pods per load shape (part 3).
    pub startup_pods: usize,
    /// A smoke run.
    pub quick: bool,
}

impl Plan {
    fn new(options: &Options) -> Self {
        let runs = options.runs.max(1);
        if options.quick {
            Self {
                runs: runs.min(2),
                sandboxes: 20,
                traffic_seconds: 1,
                startup_pods: 20,
                quick: true,
            }
        } else {
            Self {
                runs,
                sandboxes: 200,
                traffic_seconds: 3,
                startup_pods: 100,
                quick: false,
            }
        }
    }
}

/// Runs the benchmark and writes its report.
///
/// # Errors
/// When any part fails; whatever it built is removed first.
pub fn run(options: &Options) -> Result<()> {
    let plan = Plan::new(options);
    let bin_dir = std::env::current_exe()
        .context("locating this binary")?
        .parent()
        .context("this binary's directory")?
        .to_path_buf();
    let testapp = bin_dir.join("rudder-testapp");
    for program in [
        "rudder-testapp",
        "rudder-agent",
        "rudder-controlplane",
        "rudder-cni",
    ] {
        anyhow::ensure!(
            bin_dir.join(program).is_file(),
            "{} is not built: run `cargo build --release --workspace --bins` \
             (`cargo xtask bench cni` does)",
            bin_dir.join(program).display()
        );
    }
    let binaries = plugin_node::PluginBinaries::find(&options.reference_dir)?;
    netns::sweep_stale();
    match options.only {
        Some(Part::Plugins) => return plugin_latency::measure(&plan, &binaries).map(drop),
        Some(Part::Traffic) => return traffic::measure(&plan, &binaries, &testapp).map(drop),
        Some(Part::Startup) => return pod_startup::measure(&plan, &bin_dir).map(drop),
        None => {}
    }
    let load_before = machine::load_average();
    let machine = Machine::describe();
    let started = Instant::now();
    println!("== 1/3 ADD and DEL latency");
    let plugins = plugin_latency::measure(&plan, &binaries)?;
    println!("== 2/3 pod-to-pod traffic across the bridge");
    let traffic = traffic::measure(&plan, &binaries, &testapp)?;
    println!("== 3/3 pod startup latency through the whole path");
    let startup = pod_startup::measure(&plan, &bin_dir)?;
    let text = report::render(&report::Inputs {
        machine: &machine,
        commit: options.commit.as_deref(),
        plan: &plan,
        reference_version: &binaries.reference_version,
        plugins: &plugins,
        traffic: &traffic,
        startup: &startup,
        took: started.elapsed(),
        load: (load_before, machine::load_average()),
    });
    crate::report_file::write(&options.out, &text)
}

/// Removes a directory when dropped (also on error paths).
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
