//! `http-loop`: what a user's client sees of a Service while the cluster
//! changes under it. One request on a new connection every `interval`, for
//! `duration` (or until a `stop` file appears), none retried: every failure
//! counts. It prints one JSON object:
//!
//! ```text
//! {"requests":500,"failed":0,"last_failure_ms":null,"first_error":null,
//!  "responders":{"web-a":250,"web-b":250},"failures":[]}
//! ```
//! `failures` lists when (ms from the start) and why each failed request failed,
//! up to 50, so a report can say when the losses happened.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Result;
use serde_json::json;

use crate::{ClientArgs, client};

/// What to run.
pub struct ServiceLoop {
    /// Target, timeout and path (count and retry are not used).
    pub args: ClientArgs,
    /// Pause between the start of one request and the next.
    pub interval: Duration,
    /// Longest the loop runs.
    pub duration: Duration,
    /// The loop ends early once this file exists.
    pub stop_file: Option<PathBuf>,
}

/// Failed requests listed with their time and cause, at most.
const LISTED_FAILURES: usize = 50;

/// Runs the loop and prints the JSON summary.
///
/// # Errors
/// Never for failed requests (they are counted); only if printing fails.
pub fn run(run: &ServiceLoop) -> Result<()> {
    let started = Instant::now();
    let (mut requests, mut failed) = (0_u64, 0_u64);
    let mut responders: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut last_failure_ms = None;
    while started.elapsed() < run.duration && !run.stop_file.as_ref().is_some_and(|f| f.exists()) {
        let sent = Instant::now();
        requests += 1;
        match client::http_get(&run.args, None) {
            Ok(body) => {
                let name = body
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("pod="))
                    .unwrap_or("?")
                    .to_owned();
                *responders.entry(name).or_default() += 1;
            }
            Err(err) => {
                failed += 1;
                last_failure_ms = Some(started.elapsed().as_millis());
                if failures.len() < LISTED_FAILURES {
                    failures.push(json!({
                        "at_ms": started.elapsed().as_millis(),
                        "error": format!("{err:#}"),
                    }));
                }
            }
        }
        if let Some(rest) = run.interval.checked_sub(sent.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let first_error = failures.first().map(|f| f["error"].clone());
    println!(
        "{}",
        json!({
            "requests": requests,
            "failed": failed,
            "last_failure_ms": last_failure_ms,
            "first_error": first_error,
            "responders": responders,
            "failures": failures,
        })
    );
    Ok(())
}
