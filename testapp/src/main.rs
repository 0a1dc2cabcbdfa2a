//! rudder-testapp: tiny servers and clients so tests and demos need no
//! outside tools.
//!
//! ```text
//! rudder-testapp tcp-echo  --listen 0.0.0.0:7000
//! rudder-testapp udp-echo  --listen 0.0.0.0:7001
//! rudder-testapp http      --listen 0.0.0.0:8080 [--name web-1]
//! rudder-testapp silent    --listen 0.0.0.0:8080
//! rudder-testapp tcp       --to 10.96.0.10:7000 [--message hi] [--count N]
//! rudder-testapp udp       --to 10.96.0.10:7001 [--message hi] [--count N]
//! rudder-testapp http-get  --to 10.96.0.10:80 [--count N]
//! rudder-testapp conn-bench --to 10.96.0.10:80 [--to ...] --connections N
//!                           --concurrency C --duration-ms D
//! rudder-testapp tcp-rr    --to 10.244.1.2:7000 --transactions N --duration-ms D
//! ```
//! Servers run until killed and print `listening on ADDR` once bound. The
//! HTTP responder answers `pod=<name> client=<ip:port>` so a test sees both
//! which backend answered and which source address it saw. Clients print one
//! line per reply, fail after `--timeout-ms` per attempt, and retry a failed
//! first attempt for up to `--retry-ms` (a server may still be starting).

mod client;
mod latency;
mod load;
mod rr;
mod server;
mod service_loop;

use std::{net::SocketAddr, time::Duration};

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rudder-testapp", version, about = "test servers and clients")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ClientArgs {
    /// Server address.
    #[arg(long)]
    to: SocketAddr,
    /// Number of requests (each on a new connection for TCP and HTTP).
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// HTTP path to request.
    #[arg(long, default_value = "/")]
    path: String,
    /// Per-request timeout.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// How long to keep retrying the first request while it fails.
    #[arg(long, default_value_t = 0)]
    retry_ms: u64,
}

impl ClientArgs {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }
}

#[derive(Subcommand)]
enum Command {
    /// TCP echo server.
    TcpEcho {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// A server that never answers: connections are accepted by the
    /// kernel (the backlog) and then left hanging, as a wedged server does.
    Silent {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// UDP echo server.
    UdpEcho {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// HTTP responder answering `pod=<name> client=<peer>`.
    Http {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Name to answer with (default: $POD_NAME, else the hostname).
        #[arg(long)]
        name: Option<String>,
        /// On SIGTERM, keep answering this long before exiting, as a
        /// server drains while its endpoints stop sending it new
        /// connections (0: exit at once).
        #[arg(long, default_value_t = 0)]
        drain_ms: u64,
    },
    /// TCP echo client: sends the message, prints the echo.
    Tcp {
        #[command(flatten)]
        args: ClientArgs,
        /// Message to send.
        #[arg(long, default_value = "ping")]
        message: String,
    },
    /// UDP echo client: sends the message, prints the echo.
    Udp {
        #[command(flatten)]
        args: ClientArgs,
        /// Message to send.
        #[arg(long, default_value = "ping")]
        message: String,
        /// Use an unconnected socket (sendto/recvfrom) and print the
        /// address each echo came from, as `<echo> from=<addr>`.
        #[arg(long)]
        unconnected: bool,
    },
    /// HTTP client: GET /, prints the body.
    HttpGet {
        #[command(flatten)]
        args: ClientArgs,
        /// Send every request on one connection (HTTP keep-alive).
        #[arg(long)]
        keep_alive: bool,
        /// Pause between requests.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// Bind request i (or the one keep-alive connection) to this local
        /// port + i, so a test can replay the same flows.
        #[arg(long)]
        source_port_base: Option<u16>,
    },
    /// A bounded loop of HTTP requests, one new connection each, none
    /// retried: prints a JSON summary counting every failure (what a client
    /// of a Service sees while the cluster changes).
    HttpLoop {
        #[command(flatten)]
        args: ClientArgs,
        /// Pause between the starts of two requests.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Longest the loop runs.
        #[arg(long, default_value_t = 10_000)]
        duration_ms: u64,
        /// End early once this file exists.
        #[arg(long)]
        stop_file: Option<std::path::PathBuf>,
    },
    /// New-connection load against HTTP responders: prints a JSON summary
    /// (connections/s, latency percentiles of connect + request + response).
    ConnBench {
        /// Server address; repeat to spread connections over several.
        #[arg(long, required = true)]
        to: Vec<SocketAddr>,
        /// Most connections to make.
        #[arg(long, default_value_t = 100_000)]
        connections: u64,
        /// Connections in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: u32,
        /// Longest the run may take.
        #[arg(long, default_value_t = 2000)]
        duration_ms: u64,
        /// Limit on each connect and each read.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Request/response rate against a tcp-echo server: one byte each way
    /// per transaction on one connection (netperf's TCP_RR); prints a JSON
    /// summary (transactions/s, latency percentiles).
    TcpRr {
        /// The tcp-echo server.
        #[arg(long)]
        to: SocketAddr,
        /// Most transactions to make.
        #[arg(long, default_value_t = 1_000_000)]
        transactions: u64,
        /// Longest the run may take.
        #[arg(long, default_value_t = 2000)]
        duration_ms: u64,
        /// Limit on the connect and on each read.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::TcpEcho { listen } => server::tcp_echo(listen),
        Command::UdpEcho { listen } => server::udp_echo(listen),
        Command::Silent { listen } => server::silent(listen),
        Command::Http {
            listen,
            name,
            drain_ms,
        } => server::http(
            listen,
            &server::responder_name(name),
            Duration::from_millis(drain_ms),
        ),
        Command::Tcp { args, message } => client::repeat(&args, || client::tcp(&args, &message)),
        Command::Udp {
            args,
            message,
            unconnected,
        } => client::repeat(&args, || {
            if unconnected {
                client::udp_unconnected(&args, &message)
            } else {
                client::udp(&args, &message)
            }
        }),
        Command::ConnBench {
            to,
            connections,
            concurrency,
            duration_ms,
            timeout_ms,
        } => load::run(&load::ConnBench {
            targets: to,
            connections,
            concurrency,
            duration: Duration::from_millis(duration_ms),
            timeout: Duration::from_millis(timeout_ms),
        }),
        Command::HttpLoop {
            args,
            interval_ms,
            duration_ms,
            stop_file,
        } => service_loop::run(&service_loop::ServiceLoop {
            args,
            interval: Duration::from_millis(interval_ms),
            duration: Duration::from_millis(duration_ms),
            stop_file,
        }),
        Command::TcpRr {
            to,
            transactions,
            duration_ms,
            timeout_ms,
        } => rr::run(&rr::TcpRr {
            target: to,
            transactions,
            duration: Duration::from_millis(duration_ms),
            timeout: Duration::from_millis(timeout_ms),
        }),
        Command::HttpGet {
            args,
            keep_alive,
            interval_ms,
            source_port_base,
        } => {
            let pause = Duration::from_millis(interval_ms);
            if keep_alive {
                client::http_keep_alive(&args, pause, source_port_base)
            } else {
                let mut next_port = source_port_base;
                client::repeat(&args, || {
                    let port = next_port;
                    let reply = client::http_get(&args, port);
                    if reply.is_ok() {
                        next_port = next_port.map(|p| p.wrapping_add(1));
                        std::thread::sleep(pause);
                    }
                    reply
                })
            }
        }
    }
}
