//! `rudder-bench store`: rudder's store against etcd (Debian's
//! etcd-server) in one run, on the same machine and disk, both fsyncing.
//!
//! Both servers are driven by the same client code: rudder's store speaks
//! the etcd v3 wire API, so one tonic client measures both. Per run and
//! store: puts/s with 1 and with 64 concurrent clients (256-byte values),
//! p50/p99 put latency, watch delivery p99 (put sent -> event received by a
//! watcher), and peak resident memory; then (see [`replicated`]) three
//! rudder replicas against a 3-member etcd cluster, adding reads/s and
//! failover time. Medians over the runs go to
//! docs/benchmarks/store.md with rudder/etcd ratios. `--runs` (or
//! `RUDDER_BENCH_RUNS`) sets the number of runs (default 3);
//! `RUDDER_BENCH_DIR` where the stores keep their data (default: the
//! target directory).
//!
//! Every phase is bounded in time and count; the servers listen on
//! 127.0.0.1 only and are killed when the run ends (also on failure).

mod measure;
mod replicated;
mod servers;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};

use measure::{WATCH_GAP, WATCH_PUTS, measure};
use servers::{etcd_version, free_port, start_etcd, start_rudder, which};

/// How long each throughput phase runs.
const PHASE: Duration = Duration::from_secs(5);

/// Options of `rudder-bench store`.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Where to write the report.
    #[arg(long, default_value = "docs/benchmarks/store.md")]
    out: PathBuf,
    /// Runs per store (medians are quoted).
    #[arg(long, env = "RUDDER_BENCH_RUNS", default_value_t = 3)]
    runs: usize,
    /// Commit the binaries were built from, for the report.
    #[arg(long)]
    commit: Option<String>,
    /// Which comparisons to run.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
}

/// Single node against single member, three replicas against three
/// members, or both.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One rudder node (no Raft) vs a single-member etcd.
    Single,
    /// Three rudder replicas vs a 3-member etcd cluster.
    Replicated,
    /// Both, in that order.
    Both,
}

/// One run's numbers for one store.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub puts_1: f64,
    pub puts_64: f64,
    pub p50_1_ms: f64,
    pub p99_1_ms: f64,
    pub p50_64_ms: f64,
    pub p99_64_ms: f64,
    pub watch_p99_ms: f64,
    pub rss_mib: f64,
}

/// Runs the benchmark.
///
/// # Errors
/// When etcd or rudder cannot be started or measured, or the report
/// cannot be written.
pub fn run(options: &Options) -> Result<()> {
    let runs = options.runs;
    let etcd = which("etcd").context(
        "etcd is not installed; `cargo xtask setup` installs Debian's etcd-server (the reference)",
    )?;
    // Built next to this binary by `cargo xtask bench store`.
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("rudder-bench has no directory")?
        .to_owned();
    let rudder = bin_dir.join("rudder-controlplane");
    let target = bin_dir
        .parent()
        .map_or_else(|| bin_dir.clone(), PathBuf::from);
    // The stores fsync into this directory: it must be on the disk being
    // measured (not a tmpfs, where fsync costs nothing).
    let scratch = std::env::var_os("RUDDER_BENCH_DIR")
        .map_or_else(|| target.clone(), PathBuf::from)
        .join(format!("bench-store-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut samples: Vec<(Vec<Sample>, Vec<Sample>)> = Vec::new();
    let mut replicated_samples: Vec<(replicated::ReplicatedSample, replicated::ReplicatedSample)> =
        Vec::new();
    let single_runs = if options.mode == Mode::Replicated {
        0
    } else {
        runs.max(1)
    };
    let replicated_runs = if options.mode == Mode::Single {
        0
    } else {
        runs.max(1)
    };
    let load_before = crate::machine::load_average();
    let result = (|| -> Result<()> {
        for run in 1..=replicated_runs {
            let mut pair = Vec::new();
            for (label, flavour, binary) in [
                ("rudder", replicated::Flavour::Rudder, &rudder),
                ("etcd", replicated::Flavour::Etcd, &etcd),
            ] {
                crate::interrupt::check()?;
                let dir = scratch.join(format!("{label}-3x-{run}"));
                let mut cluster = replicated::Cluster::start(flavour, binary, &dir)?;
                let sample = runtime.block_on(replicated::measure(&mut cluster))?;
                drop(cluster);
                println!(
                    "bench store: run {run} {label} x3: {:.0} puts/s (1 client), {:.0} puts/s (64), p99 {:.2}/{:.2} ms, reads/s {:.0} linearizable / {:.0} serializable, watch p99 {:.2} ms, failovers {:.0?} ms, elections idle/busy {}/{}, RSS {:.1} MiB",
                    sample.puts_1,
                    sample.puts_64,
                    sample.p99_1_ms,
                    sample.p99_64_ms,
                    sample.linearizable_reads,
                    sample.serializable_reads,
                    sample.watch_p99_ms,
                    sample.failovers_ms,
                    sample.idle_elections,
                    sample.busy_elections,
                    sample.rss_mib
                );
                pair.push(sample);
            }
            if let [r, e] = &pair[..] {
                replicated_samples.push((r.clone(), e.clone()));
            }
        }
        for run in 1..=single_runs {
            let mut pair = (Vec::new(), Vec::new());
            for (label, is_rudder) in [("rudder", true), ("etcd", false)] {
                crate::interrupt::check()?;
                let dir = scratch.join(format!("{label}-{run}"));
                std::fs::create_dir_all(&dir)?;
                let port = free_port()?;
                let server = if is_rudder {
                    start_rudder(&rudder, &dir, port)?
                } else {
                    start_etcd(&etcd, &dir, port, free_port()?)?
                };
                let sample = runtime.block_on(measure(port, server.pid()))?;
                drop(server);
                println!(
                    "bench store: run {run} {label}: {:.0} puts/s (1 client), {:.0} puts/s (64), p99 {:.2}/{:.2} ms, watch p99 {:.2} ms, RSS {:.1} MiB",
                    sample.puts_1,
                    sample.puts_64,
                    sample.p99_1_ms,
                    sample.p99_64_ms,
                    sample.watch_p99_ms,
                    sample.rss_mib
                );
                if is_rudder {
                    pair.0.push(sample);
                } else {
                    pair.1.push(sample);
                }
            }
            samples.push(pair);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    let rudder: Vec<Sample> = samples.iter().flat_map(|p| p.0.clone()).collect();
    let etcd_samples: Vec<Sample> = samples.iter().flat_map(|p| p.1.clone()).collect();
    let replicated_rudder: Vec<_> = replicated_samples.iter().map(|p| p.0.clone()).collect();
    let replicated_etcd: Vec<_> = replicated_samples.iter().map(|p| p.1.clone()).collect();
    let load = (load_before, crate::machine::load_average());
    let report = report(
        &rudder,
        &etcd_samples,
        &etcd_version(&etcd),
        options.commit.as_deref(),
        load,
    ) + &replicated_report(&replicated_rudder, &replicated_etcd, &etcd_version(&etcd));
    // Everything in the report is written by this run: no notes are kept
    // from earlier ones (the design notes live in docs/architecture.md).
    let out = &options.out;
    let written = report;
    crate::report_file::write(out, &written)
}

fn median<S>(samples: &[S], field: impl Fn(&S) -> f64) -> f64 {
    let values: Vec<f64> = samples.iter().map(field).collect();
    crate::stats::median(&values)
}

/// A metric's name, how to read it from a sample, and whether more is
/// better.
type Row<S> = (&'static str, fn(&S) -> f64, bool);

/// The markdown table of `rows`: medians of both stores and their ratio.
fn table<S>(rows: &[Row<S>], rudder: &[S], etcd: &[S]) -> String {
    let mut out = String::from(
        "| metric | rudder | etcd | rudder / etcd | better |\n|---|---:|---:|---:|---|\n",
    );
    for (name, field, higher_is_better) in rows {
        let r = median(rudder, field);
        let e = median(etcd, field);
        let ratio = if e > 0.0 { r / e } else { 0.0 };
        let better = if (ratio >= 1.0) == *higher_is_better {
            "rudder"
        } else {
            "etcd"
        };
        out.push_str(&format!(
            "| {name} | {r:.2} | {e:.2} | {ratio:.2} | {better} |\n"
        ));
    }
    out
}

fn replicated_report(
    rudder: &[replicated::ReplicatedSample],
    etcd: &[replicated::ReplicatedSample],
    etcd_version: &str,
) -> String {
    if rudder.is_empty() {
        return String::new();
    }
    let rows: [Row<replicated::ReplicatedSample>; 10] = [
        ("puts/s, 1 client", |s| s.puts_1, true),
        ("puts/s, 64 clients", |s| s.puts_64, true),
        ("put latency p50, 1 client (ms)", |s| s.p50_1_ms, false),
        ("put latency p99, 1 client (ms)", |s| s.p99_1_ms, false),
        ("put latency p50, 64 clients (ms)", |s| s.p50_64_ms, false),
        ("put latency p99, 64 clients (ms)", |s| s.p99_64_ms, false),
        (
            "linearizable reads/s, 16 clients",
            |s| s.linearizable_reads,
            true,
        ),
        (
            "serializable reads/s, 16 clients",
            |s| s.serializable_reads,
            true,
        ),
        ("watch delivery p99 (ms)", |s| s.watch_p99_ms, false),
        ("peak RSS, largest member (MiB)", |s| s.rss_mib, false),
    ];
    let kills = |samples: &[replicated::ReplicatedSample]| -> Vec<f64> {
        samples
            .iter()
            .flat_map(|s| s.failovers_ms.iter().copied())
            .collect()
    };
    let (rudder_kills, etcd_kills) = (kills(rudder), kills(etcd));
    let elections = |samples: &[replicated::ReplicatedSample]| -> (u64, u64) {
        samples.iter().fold((0, 0), |(idle, busy), s| {
            (idle + s.idle_elections, busy + s.busy_elections)
        })
    };
    let ((rudder_idle, rudder_busy), (etcd_idle, etcd_busy)) = (elections(rudder), elections(etcd));
    let pooled_row = |name: &str, q: f64| {
        let r = crate::stats::percentile(&rudder_kills, q);
        let e = crate::stats::percentile(&etcd_kills, q);
        let ratio = if e > 0.0 { r / e } else { 0.0 };
        let better = if ratio <= 1.0 { "rudder" } else { "etcd" };
        format!("| {name} | {r:.0} | {e:.0} | {ratio:.2} | {better} |\n")
    };
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = |p99: f64| {
        if p99 < 1000.0 { "under" } else { "NOT under" }
    };
    let rudder_p99 = crate::stats::percentile(&rudder_kills, 0.99);
    format!(
        "\n## Three replicas vs a 3-member etcd cluster\n\n\
         Medians of {runs} run(s) ({etcd_version}): three members on 127.0.0.1, each with its own \
         data directory on the same disk; clients spread over all three \
         endpoints (a follower forwards writes to the leader in both stores).\n\n{table}\n\
         ### Failover and elections\n\n\
         Each run kills the leader with SIGKILL {kills} times under 8 writers on the \
         survivors (the killed member restarts and the members agree on a leader \
         before the next kill); the time is from the kill to the first \
         acknowledged put sent after it. With {n} kills in all, p99 is the \
         worst of them.\n\n\
         | failover: leader kill -> first acknowledged put (ms) | rudder | etcd | rudder / etcd | better |\n\
         |---|---:|---:|---:|---|\n{p50}{p99}\n\
         Every kill (ms): rudder {rudder_list}; etcd {etcd_list}. rudder's p99 is \
         {verdict} the 1 s goal.\n\n\
         Elections nobody asked for, counted as Raft terms begun (the highest \
         term any member reports) over all runs: while the cluster sat idle for \
         {idle} s, rudder {rudder_idle}, etcd {etcd_idle}; during the put, read \
         and watch phases, rudder {rudder_busy}, etcd {etcd_busy}.\n",
        runs = rudder.len(),
        table = table(&rows, rudder, etcd),
        kills = replicated::KILLS,
        n = rudder_kills.len(),
        p50 = pooled_row("p50", 0.5),
        p99 = pooled_row("p99", 0.99),
        rudder_list = list(&rudder_kills),
        etcd_list = list(&etcd_kills),
        verdict = verdict(rudder_p99),
        idle = replicated::IDLE.as_secs(),
    )
}

fn report(
    rudder: &[Sample],
    etcd: &[Sample],
    etcd_version: &str,
    commit: Option<&str>,
    load: (f64, f64),
) -> String {
    let rows: [Row<Sample>; 8] = [
        ("puts/s, 1 client", |s| s.puts_1, true),
        ("puts/s, 64 clients", |s| s.puts_64, true),
        ("put latency p50, 1 client (ms)", |s| s.p50_1_ms, false),
        ("put latency p99, 1 client (ms)", |s| s.p99_1_ms, false),
        ("put latency p50, 64 clients (ms)", |s| s.p50_64_ms, false),
        ("put latency p99, 64 clients (ms)", |s| s.p99_64_ms, false),
        ("watch delivery p99 (ms)", |s| s.watch_p99_ms, false),
        ("peak RSS (MiB)", |s| s.rss_mib, false),
    ];
    let mut out = String::new();
    out.push_str("# Store benchmark: rudder vs etcd\n\n");
    let machine = crate::machine::Machine::describe();
    out.push_str(&format!(
        "Run {}{}, {etcd_version} as the reference, on {} CPU(s) ({}). \
         Load average (1 min) at the start and the end of the run: {:.2} / {:.2}; \
         the machine is shared with other builds, so absolute numbers drift: \
         compare the ratios.\n",
        machine.date,
        commit
            .map(|c| format!(", commit `{c}`"))
            .unwrap_or_default(),
        machine.cores,
        machine.cpu,
        load.0,
        load.1,
    ));
    if rudder.is_empty() {
        // `--mode replicated`: only the other section.
        return out;
    }
    out.push_str("\n## One node vs a single-member etcd\n\n");
    out.push_str(&format!(
        "Written by `cargo xtask bench store`: medians of {} run(s) per store, \
         one store at a time on the same machine and disk, both fsyncing every \
         acknowledged write ({etcd_version}, single member). 256-byte values; \
         1 client, then 64 concurrent clients over 8 connections, {} s each; \
         watch delivery is the time from sending a put to a watcher receiving \
         its event ({WATCH_PUTS} puts, {} ms apart). The same tonic client \
         drives both (rudder speaks the etcd v3 wire API). Absolute numbers on \
         these shared 2-core machines drift; compare the ratios.\n\n",
        rudder.len(),
        PHASE.as_secs(),
        WATCH_GAP.as_millis(),
    ));
    out.push_str(&table(&rows, rudder, etcd));
    out
}
