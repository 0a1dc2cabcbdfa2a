//! `tcp-rr`: netperf-style TCP request/response on one connection. Each
//! transaction sends one byte and waits for its echo (a `tcp-echo` server
//! answers), so the rate measures the round trip through the path, not
//! bandwidth. It stops after `transactions` or `duration`, whichever comes
//! first, and prints one JSON object:
//!
//! ```text
//! {"transactions":41230,"elapsed_s":2.000,"rate":20615.0,
//!  "latency_us":{"p50":46,"p90":52,"p99":88,"max":910}}
//! ```

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// What to run.
pub struct TcpRr {
    /// The echo server.
    pub target: SocketAddr,
    /// Most transactions to make.
    pub transactions: u64,
    /// Longest the run may take.
    pub duration: Duration,
    /// Limit on the connect and on each read.
    pub timeout: Duration,
}

/// Runs the transactions and prints the JSON summary.
///
/// # Errors
/// When the connection cannot be made, or breaks, or an echo is wrong.
pub fn run(rr: &TcpRr) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&rr.target, rr.timeout)
        .with_context(|| format!("connecting to {}", rr.target))?;
    stream.set_read_timeout(Some(rr.timeout))?;
    // One byte each way: Nagle would hold it back waiting for an ACK.
    stream.set_nodelay(true)?;
    let capacity = usize::try_from(rr.transactions.min(4_000_000)).unwrap_or(0);
    let mut latencies_us: Vec<u32> = Vec::with_capacity(capacity);
    let started = Instant::now();
    let mut byte = [0u8; 1];
    for i in 0..rr.transactions {
        if started.elapsed() >= rr.duration {
            break;
        }
        let sent = (i % 251) as u8;
        let begun = Instant::now();
        stream.write_all(&[sent])?;
        stream
            .read_exact(&mut byte)
            .with_context(|| format!("transaction {i}: no echo"))?;
        if byte[0] != sent {
            bail!("transaction {i}: sent {sent}, echo was {}", byte[0]);
        }
        let us = begun.elapsed().as_micros();
        latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = latencies_us.len();
    let Some(latency) = crate::latency::summary_json(&mut latencies_us) else {
        bail!("no transaction completed");
    };
    println!(
        "{{\"transactions\":{done},\"elapsed_s\":{elapsed:.3},\"rate\":{:.1},{latency}}}",
        done as f64 / elapsed,
    );
    Ok(())
}
