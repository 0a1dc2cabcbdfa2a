//! Part 1: ADD and DEL latency of rudder-cni against the reference bridge +
//! host-local plugins, N sandboxes per run, the two plugins alternating
//! call by call so machine noise hits both alike. Latency is wall time from
//! spawning the plugin (in the node's namespace, as a runtime does) to its
//! exit, so process start-up counts, and for the reference the exec of
//! host-local by bridge.

use std::time::Duration;

use anyhow::{Context, Result};
use netns::{Netns, TestNetwork};

use super::{
    Plan,
    plugin_node::{Plugin, PluginBinaries, PluginNode},
};
use crate::{interrupt, stats};

/// p50/p99 of ADD and DEL for one plugin (medians over the runs), in ms.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// ADD p50.
    pub add_p50: f64,
    /// ADD p99.
    pub add_p99: f64,
    /// DEL p50.
    pub del_p50: f64,
    /// DEL p99.
    pub del_p99: f64,
}

/// What part 1 measured: rudder-cni, then the reference.
pub type PluginLatency = [Latency; 2];

/// Runs part 1.
///
/// # Errors
/// When a host cannot be made or a plugin call fails.
pub fn measure(plan: &Plan, binaries: &PluginBinaries) -> Result<PluginLatency> {
    let mut network = TestNetwork::new("cnilat").context("test network")?;
    let state = std::env::temp_dir().join(format!("{}-state", network.prefix()));
    let _state_guard = super::RemoveOnDrop(state.clone());
    let nodes = [
        PluginNode::new(&mut network, "ours", Plugin::Rudder, 1, binaries, &state)?,
        PluginNode::new(&mut network, "ref", Plugin::Reference, 2, binaries, &state)?,
    ];
    let sandboxes: Vec<[Netns; 2]> = (0..plan.sandboxes)
        .map(|i| {
            Ok([
                network.add_namespace(&format!("a{i}"))?,
                network.add_namespace(&format!("b{i}"))?,
            ])
        })
        .collect::<Result<_>>()?;
    // One unmeasured round trip each: page cache, bridge creation.
    let warm = [network.add_namespace("wa")?, network.add_namespace("wb")?];
    for (node, pod) in nodes.iter().zip(&warm) {
        node.invoke("ADD", "warmup", pod)?;
        node.invoke("DEL", "warmup", pod)?;
    }
    // [plugin][command][run] -> samples
    let mut samples: [[Vec<Vec<Duration>>; 2]; 2] = Default::default();
    for run in 0..plan.runs {
        for (c, command) in ["ADD", "DEL"].into_iter().enumerate() {
            for per_plugin in &mut samples {
                per_plugin[c].push(Vec::new());
            }
            for (i, pods) in sandboxes.iter().enumerate() {
                interrupt::check()?;
                let id = format!("sandbox-{run}-{i}");
                for (p, (node, pod)) in nodes.iter().zip(pods).enumerate() {
                    let (took, _) = node.invoke(command, &id, pod)?;
                    if let Some(run_samples) = samples[p][c].last_mut() {
                        run_samples.push(took);
                    }
                }
            }
        }
        println!("   run {} of {} done", run + 1, plan.runs);
    }
    let stat = |runs: &[Vec<Duration>], q: f64| {
        let per_run: Vec<f64> = runs
            .iter()
            .map(|run| {
                let ms: Vec<f64> = run.iter().map(|d| d.as_secs_f64() * 1e3).collect();
                stats::percentile(&ms, q)
            })
            .collect();
        stats::median(&per_run)
    };
    Ok(samples.map(|[add, del]| Latency {
        add_p50: stat(&add, 0.50),
        add_p99: stat(&add, 0.99),
        del_p50: stat(&del, 0.50),
        del_p99: stat(&del, 0.99),
    }))
}
