//! Part 3: programming time. Installing 10,000 services x 3 endpoints into
//! empty maps (`ServiceDataplane::resync`) against `iptables-restore` of
//! the equivalent ruleset into an empty nat table; then, with the 10,000
//! services present, single endpoint changes: `ServiceDataplane::apply` to
//! its last map write, against the partial `iptables-restore --noflush`
//! kube-proxy would run. Both sides are timed from the services in
//! memory to the kernel programmed (the ruleset text is generated inside
//! the timing, as kube-proxy generates it on every sync).

use std::{
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use netns::{Netns, TestNetwork};
use rudder_agent::dataplane::{
    Dataplane,
    services::{NodeServiceConfig, ServiceChange, ServiceDataplane, ServiceState},
};

use super::{
    Plan,
    kube_proxy::{self, Restore},
    synthetic::{self, BenchService, Picker},
};
use crate::{interrupt, stats};

/// Services installed.
pub const SERVICES: usize = 10_000;

/// What part 3 measured.
#[derive(Clone, Debug)]
pub struct Programming {
    /// Median time to install every service into empty maps.
    pub rudder_install: Duration,
    /// Map writes the install took.
    pub rudder_writes: usize,
    /// Median time to restore the ruleset into an empty nat table.
    pub iptables_install: Duration,
    /// Rules in that ruleset.
    pub iptables_rules: usize,
    /// Single endpoint changes, rudder: p50 and p99.
    pub rudder_change: (Duration, Duration),
    /// Changes timed on rudder.
    pub rudder_changes: usize,
    /// Map writes per change (median).
    pub rudder_change_writes: f64,
    /// CPU time of the changing thread per change, rudder: p50 and p99
    /// (what a change costs when nothing else wants the CPU).
    pub rudder_change_cpu: (Duration, Duration),
    /// Single endpoint changes, iptables: p50 and p99.
    pub iptables_change: (Duration, Duration),
    /// Changes timed on iptables.
    pub iptables_changes: usize,
}

/// Runs part 3.
///
/// # Errors
/// When a dataplane cannot be loaded or written, or iptables-restore fails.
pub fn measure(plan: &Plan) -> Result<Programming> {
    let mut net = TestNetwork::new("bpg").context("test network")?;
    let services = synthetic::services(SERVICES, None);
    let states: Vec<ServiceState> = services.iter().map(BenchService::state).collect();

    let mut installs = Vec::new();
    let mut writes = 0;
    let mut kept = None;
    for run in 0..plan.runs {
        interrupt::check()?;
        let ns = net.add_namespace(&format!("rd{run}"))?;
        let dir = net.bpffs_dir(&format!("rd{run}"));
        let (took, n, dataplane) = rudder_install(&ns, &dir, &states)?;
        println!(
            "   rudder install #{}: {:.1} ms ({n} map writes)",
            run + 1,
            ms(took)
        );
        installs.push(took);
        writes = n;
        // Keep the last one for the endpoint changes; free the others.
        if run + 1 == plan.runs {
            kept = Some(dataplane);
        } else {
            drop(dataplane);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let mut dataplane = kept.context("no install run")?;

    let mut ipt_installs = Vec::new();
    let mut ipt_ns = None;
    for run in 0..plan.runs {
        interrupt::check()?;
        let ns = net.add_namespace(&format!("ip{run}"))?;
        let list = services.clone();
        let took = kube_proxy::restore(&ns, Restore::Replace, move || {
            kube_proxy::full_restore(&list)
        })?;
        println!("   iptables-restore #{}: {:.1} ms", run + 1, ms(took));
        ipt_installs.push(took);
        ipt_ns = Some(ns);
    }
    let ipt_ns = ipt_ns.context("no iptables run")?;
    let rules = kube_proxy::rule_count(&kube_proxy::full_restore(&services));

    let RudderChanges {
        times: rudder_times,
        cpu: rudder_cpu,
        writes: change_writes,
    } = rudder_changes(&mut dataplane, &services, plan.endpoint_changes)?;
    println!(
        "   rudder endpoint change: p50 {:.0} us, p99 {:.0} us (CPU time p50 {:.0} us, p99 {:.0} us) \
         over {} changes",
        us(pick(&rudder_times, 0.5)),
        us(pick(&rudder_times, 0.99)),
        us(pick(&rudder_cpu, 0.5)),
        us(pick(&rudder_cpu, 0.99)),
        rudder_times.len()
    );
    let ipt_times = iptables_changes(&ipt_ns, services, plan.iptables_changes)?;
    println!(
        "   iptables endpoint change: p50 {:.1} ms, p99 {:.1} ms over {} changes",
        ms(pick(&ipt_times, 0.5)),
        ms(pick(&ipt_times, 0.99)),
        ipt_times.len()
    );
    Ok(Programming {
        rudder_install: pick(&installs, 0.5),
        rudder_writes: writes,
        iptables_install: pick(&ipt_installs, 0.5),
        iptables_rules: rules,
        rudder_change: (pick(&rudder_times, 0.5), pick(&rudder_times, 0.99)),
        rudder_changes: rudder_times.len(),
        rudder_change_writes: stats::median(&change_writes),
        rudder_change_cpu: (pick(&rudder_cpu, 0.5), pick(&rudder_cpu, 0.99)),
        iptables_change: (pick(&ipt_times, 0.5), pick(&ipt_times, 0.99)),
        iptables_changes: ipt_times.len(),
    })
}

/// Loads a fresh dataplane (default map sizes, as the agent uses) in `ns`
/// and times the resync that installs `states`.
fn rudder_install(
    ns: &Netns,
    dir: &Path,
    states: &[ServiceState],
) -> Result<(Duration, usize, ServiceDataplane)> {
    let load_dir = dir.to_path_buf();
    ns.enter(move || Dataplane::load(&load_dir).map(drop))
        .context("entering the namespace")?
        .context("loading the dataplane")?;
    let config = NodeServiceConfig {
        node_addr: Ipv4Addr::new(192, 0, 2, 1),
        hairpin_addr: Ipv4Addr::new(169, 254, 42, 1),
        snat_ports: 40000..=49999,
        uplink_ifindex: 1,
    };
    let mut services = ServiceDataplane::open(dir, &config).context("opening the maps")?;
    let started = Instant::now();
    let writes = services
        .resync(states, started)
        .context("installing the services")?;
    Ok((started.elapsed(), writes, services))
}

/// Timings of single endpoint changes on rudder.
struct RudderChanges {
    /// Change received to last map write, wall clock.
    times: Vec<Duration>,
    /// CPU time the thread spent on it (user and kernel).
    cpu: Vec<Duration>,
    /// Map writes each change took.
    writes: Vec<f64>,
}

/// Replaces one endpoint of a random service, `count` times.
fn rudder_changes(
    dataplane: &mut ServiceDataplane,
    services: &[BenchService],
    count: usize,
) -> Result<RudderChanges> {
    let mut current = services.to_vec();
    let mut picker = Picker::new(0xc4a9);
    let mut out = RudderChanges {
        times: Vec::with_capacity(count),
        cpu: Vec::with_capacity(count),
        writes: Vec::with_capacity(count),
    };
    for change in 0..count {
        interrupt::check()?;
        let (index, _gone) = replace_endpoint(&mut current, &mut picker, change);
        let update = ServiceChange::Upsert(current[index].state());
        let cpu_before = thread_cpu_time()?;
        let received = Instant::now();
        let n = dataplane
            .apply(&update, received)
            .context("applying an endpoint change")?;
        out.times.push(received.elapsed());
        out.cpu.push(thread_cpu_time()?.saturating_sub(cpu_before));
        out.writes.push(n as f64);
    }
    Ok(out)
}

/// CPU time this thread has used, user and kernel.
fn thread_cpu_time() -> Result<Duration> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .context("reading the thread's CPU time")?;
    Ok(Duration::from(t))
}

/// The same kind of changes, each written as a kube-proxy partial sync.
fn iptables_changes(
    ns: &Netns,
    services: Vec<BenchService>,
    count: usize,
) -> Result<Vec<Duration>> {
    let mut current = services;
    let mut picker = Picker::new(0xc4a9);
    let mut times = Vec::with_capacity(count);
    for change in 0..count {
        interrupt::check()?;
        let (index, gone) = replace_endpoint(&mut current, &mut picker, change);
        let snapshot = current.clone();
        times.push(kube_proxy::restore(ns, Restore::NoFlush, move || {
            kube_proxy::partial_restore(&snapshot, &snapshot[index], &[gone])
        })?);
    }
    Ok(times)
}

/// Swaps one endpoint of a random service for a new address; returns the
/// service's index and the address that went away.
fn replace_endpoint(
    services: &mut [BenchService],
    picker: &mut Picker,
    change: usize,
) -> (usize, Ipv4Addr) {
    let index = picker.below(services.len());
    let slot = change % synthetic::ENDPOINTS_PER_SERVICE;
    // Fresh addresses above every placeholder the services started with.
    let fresh =
        synthetic::placeholder_endpoint(services.len() * synthetic::ENDPOINTS_PER_SERVICE + change);
    let gone = std::mem::replace(&mut services[index].endpoints[slot], fresh);
    (index, gone)
}

/// The `q`-quantile of durations.
fn pick(values: &[Duration], q: f64) -> Duration {
    let secs: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(stats::percentile(&secs, q).max(0.0))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
