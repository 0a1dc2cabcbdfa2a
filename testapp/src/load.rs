//! `conn-bench`: a closed-loop load generator of new connections. Each of
//! `concurrency` workers opens a connection, sends one HTTP/1.1 request with
//! `Connection: close`, reads the response to the end and starts over, so
//! every request pays for a new flow. It stops after `connections` attempts
//! or `duration`, whichever comes first, and prints one JSON object:
//!
//! ```text
//! {"connections":9120,"errors":0,"elapsed_s":2.000,"rate":4560.0,
//!  "latency_us":{"p50":410,"p90":690,"p99":1480,"max":5120}}
//! ```
//! Latency is connect + request + complete response, per connection.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

/// What to run.
pub struct ConnBench {
    /// Servers, used in turn (connection `i` goes to `targets[i % len]`).
    pub targets: Vec<SocketAddr>,
    /// Most connections to attempt.
    pub connections: u64,
    /// Workers, each with one connection in flight.
    pub concurrency: u32,
    /// Longest the run may take (attempts stop being started after it).
    pub duration: Duration,
    /// Limit on each connect and on each read.
    pub timeout: Duration,
}

/// What one run measured.
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs the load and prints the JSON summary.
///
/// # Errors
/// When no target is given or every attempt failed.
pub fn run(bench: &ConnBench) -> Result<()> {
    if bench.targets.is_empty() {
        bail!("conn-bench needs at least one --to");
    }
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..bench.concurrency.max(1))
            .map(|_| scope.spawn(|| worker(bench, &next, started)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| Tally {
                    latencies_us: Vec::new(),
                    errors: 1,
                    first_error: Some("a worker panicked".into()),
                })
            })
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    if latencies.is_empty() {
        let why = tallies
            .iter()
            .find_map(|t| t.first_error.clone())
            .unwrap_or_else(|| "no connection attempted".into());
        bail!("every connection failed: {why}");
    }
    let done = latencies.len();
    let latency = crate::latency::summary_json(&mut latencies).unwrap_or_default();
    println!(
        "{{\"connections\":{done},\"errors\":{errors},\"elapsed_s\":{elapsed:.3},\
         \"rate\":{:.1},{latency}}}",
        done as f64 / elapsed,
    );
    if let Some(why) = tallies.iter().find_map(|t| t.first_error.as_deref()) {
        eprintln!("conn-bench: {errors} failed connections, the first: {why}");
    }
    Ok(())
}

/// One worker: takes attempt numbers until the budget (count or time) is spent.
fn worker(bench: &ConnBench, next: &AtomicU64, started: Instant) -> Tally {
    let mut tally = Tally {
        latencies_us: Vec::new(),
        errors: 0,
        first_error: None,
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= bench.connections || started.elapsed() >= bench.duration {
            return tally;
        }
        let target = bench.targets[(i % bench.targets.len() as u64) as usize];
        let begun = Instant::now();
        match request(target, bench.timeout) {
            Ok(()) => {
                let us = begun.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(err) => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("{target}: {err:#}"));
            }
        }
    }
}

/// One connection: connect, one request, the whole response.
fn request(target: SocketAddr, timeout: Duration) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::with_capacity(256);
    stream.read_to_end(&mut response)?;
    if !response.starts_with(b"HTTP/1.1 200") {
        bail!(
            "unexpected response: {:?}",
            String::from_utf8_lossy(&response)
        );
    }
    Ok(())
}
