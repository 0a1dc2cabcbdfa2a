//! `rudder-bench dataplane`: eBPF service translation against a
//! kube-proxy-style iptables ruleset, in one run, written to
//! `docs/benchmarks/dataplane.md`:
//! 1. per-packet cost of the translation program ([`packet_cost`]);
//! 2. new-connection rate and latency through a ClusterIP ([`connections`]);
//! 3. programming time, full and per endpoint change ([`programming`]);
//! 4. store commit to maps written on every node, through the control
//!    plane and the agents ([`store_to_nodes`]).

mod connections;
mod kube_proxy;
mod packet_cost;
mod programming;
mod report;
mod store_to_nodes;
mod synthetic;

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};

use crate::machine::{self, Machine};

/// Options of `rudder-bench dataplane`.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Where to write the report.
    #[arg(long, default_value = "docs/benchmarks/dataplane.md")]
    out: PathBuf,
    /// Times each measurement is repeated (medians are quoted).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Fewer samples and shorter load runs: a smoke test, not a result.
    #[arg(long)]
    quick: bool,
    /// Connections in flight at once in the load runs.
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
    /// The rudder-testapp binary (default: next to this one).
    #[arg(long)]
    testapp: Option<PathBuf>,
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
    /// Per-packet cost of the translation program.
    Packets,
    /// Programming time.
    Programming,
    /// New connections through a ClusterIP.
    Connections,
    /// Store commit to maps written on every node.
    Sync,
}

/// How much of everything to do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Repetitions of each measurement.
    pub runs: usize,
    /// Packets timed per path per round (part 1).
    pub packet_samples: usize,
    /// Length of one load run (part 2).
    pub conn_duration_ms: u64,
    /// Connections in flight (part 2).
    pub concurrency: u32,
    /// Endpoint changes timed on rudder (part 3).
    pub endpoint_changes: usize,
    /// Endpoint changes timed on iptables (part 3; each takes a while).
    pub iptables_changes: usize,
    /// Endpoint changes timed from the store to every node (part 4).
    pub sync_changes: usize,
    /// A smoke run.
    pub quick: bool,
}

impl Plan {
    fn new(options: &Options) -> Self {
        let runs = options.runs.max(1);
        if options.quick {
            Self {
                runs: runs.min(2),
                packet_samples: 500,
                conn_duration_ms: 500,
                concurrency: options.concurrency,
                endpoint_changes: 50,
                iptables_changes: 3,
                sync_changes: 30,
                quick: true,
            }
        } else {
            Self {
                runs,
                packet_samples: 2_000,
                conn_duration_ms: 2_000,
                concurrency: options.concurrency,
                endpoint_changes: 200,
                iptables_changes: 10,
                sync_changes: 200,
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
    let testapp = match &options.testapp {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("rudder-testapp"),
    };
    if !testapp.is_file() {
        anyhow::bail!(
            "{} is not built: run `cargo build --release --workspace --bins` \
             (`cargo xtask bench dataplane` does)",
            testapp.display()
        );
    }
    let bin_dir = testapp
        .parent()
        .context("the binaries' directory")?
        .to_path_buf();
    netns::sweep_stale();
    match options.only {
        Some(Part::Packets) => return packet_cost::measure(&plan).map(drop),
        Some(Part::Programming) => return programming::measure(&plan).map(drop),
        Some(Part::Connections) => return connections::measure(&plan, &testapp).map(drop),
        Some(Part::Sync) => return store_to_nodes::measure(&plan, &bin_dir).map(drop),
        None => {}
    }
    let load_before = machine::load_average();
    let machine = Machine::describe();
    let started = Instant::now();
    println!("== 1/4 per-packet cost of svc_from_pod (BPF_PROG_TEST_RUN)");
    let packets = packet_cost::measure(&plan)?;
    println!("== 2/4 programming time");
    let programming = programming::measure(&plan)?;
    println!("== 3/4 new connections through a ClusterIP");
    let connections = connections::measure(&plan, &testapp)?;
    println!("== 4/4 store commit to maps written on every node");
    let store_to_nodes = store_to_nodes::measure(&plan, &bin_dir)?;
    let text = report::render(&report::Inputs {
        machine: &machine,
        commit: options.commit.as_deref(),
        plan: &plan,
        packets: &packets,
        connections: &connections,
        programming: &programming,
        store_to_nodes: &store_to_nodes,
        took: started.elapsed(),
        load: (load_before, machine::load_average()),
    });
    crate::report_file::write(&options.out, &text)
}
