//! `rudder-bench api-security`: what TLS, authentication and authorisation
//! cost the API, in one run: the same in-process control plane twice on
//! 127.0.0.1, once `--insecure-plaintext` (no TLS, no authentication, no
//! authorisation: the reference) and once as users run it (TLS with the
//! cluster CA, a client certificate, RBAC: a user who is not in
//! `system:masters`, allowed by a RoleBinding to the `edit` ClusterRole, so
//! every request goes through the whole RBAC lookup).
//!
//! Per configuration and concurrency (1 and 16 clients, each on its own
//! connection, as separate processes would be): pod creates, gets, lists
//! (a namespace of 20 pods) and deletes, a fixed count each, bounded in
//! time. Requests/s and p50/p99 per operation; the two configurations run
//! alternately, `--runs` times, and medians go to
//! docs/benchmarks/api-security.md with secure/plain ratios. Goal (issue
//! #13): under 10% throughput cost, under 10% p99 added.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rudder_api::{
    Kind,
    core::{Container, Namespace, Pod, PodSpec},
    meta::ObjectMeta,
    rbac::{RoleBinding, RoleRef, Subject},
};
use rudder_client::{Client, ClientConfig, ClientIdentity, Credentials, ListOptions};
use rudder_controlplane::{
    auth::{Authenticator, MASTERS_GROUP, StaticTokens},
    pki::{ClientProfile, ClusterPki},
    server::{self, RunningServer, Security, ServerConfig, TlsSettings},
};

use crate::{
    machine::{self, Machine},
    stats::percentile,
};

/// Options of `rudder-bench api-security`.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Where to write the report.
    #[arg(long, default_value = "docs/benchmarks/api-security.md")]
    out: PathBuf,
    /// Runs per configuration (medians are quoted).
    #[arg(long, env = "RUDDER_BENCH_RUNS", default_value_t = 3)]
    runs: usize,
    /// Commit the binaries were built from, for the report.
    #[arg(long)]
    commit: Option<String>,
}

/// Requests per operation and phase (spread over the clients).
const REQUESTS: usize = 1200;
/// Longest one phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(60);
/// Pods in the namespace the lists read.
const LISTED_PODS: usize = 20;
/// Concurrent clients per phase.
const CONCURRENCY: [usize; 2] = [1, 16];
/// The namespace the benchmark user may edit.
const NAMESPACE: &str = "bench";
const LIST_NAMESPACE: &str = "bench-list";
/// The operations, in the order a phase runs them.
const OPERATIONS: [&str; 4] = ["create", "get", "list", "delete"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Config {
    Plain,
    Secure,
}

/// One operation's result in one run: requests/s and latencies (ms).
#[derive(Clone, Debug, Default)]
struct Measured {
    per_second: f64,
    p50: f64,
    p99: f64,
}

/// Runs the benchmark and writes the report.
///
/// # Errors
/// When a server cannot start or a request fails.
pub fn run(options: &Options) -> Result<()> {
    let machine = Machine::describe();
    let load_start = machine::load_average();
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // results[config][concurrency index][operation] over runs.
    let mut results: Vec<Vec<Vec<Vec<Measured>>>> =
        vec![vec![vec![Vec::new(); OPERATIONS.len()]; CONCURRENCY.len()]; 2];
    for run in 0..options.runs.max(1) {
        // Alternate which goes first, so drift over the run is shared.
        let order = if run % 2 == 0 {
            [Config::Plain, Config::Secure]
        } else {
            [Config::Secure, Config::Plain]
        };
        for config in order {
            let measured = runtime.block_on(measure_config(config))?;
            for (c, per_op) in measured.into_iter().enumerate() {
                for (op, m) in per_op.into_iter().enumerate() {
                    results[config as usize][c][op].push(m);
                }
            }
        }
    }
    let report = render(&results, &machine, options, started.elapsed(), load_start);
    crate::report_file::write(&options.out, &report)
}

/// A control plane in `config` and the clients a user of it has:
/// (admin, the measured user).
async fn start(
    config: Config,
    dir: &tempfile::TempDir,
) -> Result<(RunningServer, Client, ClientConfig)> {
    let data_dir = dir.path().join("data");
    match config {
        Config::Plain => {
            let running = server::start(ServerConfig {
                data_dir,
                listen: "127.0.0.1:0".parse()?,
                http_listen: None,
                compaction_interval: None,
                replication: None,
                security: Security::InsecurePlaintext,
                etcd_api: false,
            })
            .await?;
            let user = ClientConfig::insecure(&running.grpc_addr.to_string());
            let admin = Client::connect_with(&user).await?;
            Ok((running, admin, user))
        }
        Config::Secure => {
            let pki = ClusterPki::load_or_create(&dir.path().join("pki"))?;
            let serving = pki.issue_serving(&["localhost".into()], &["127.0.0.1".parse()?])?;
            let running = server::start(ServerConfig {
                data_dir,
                listen: "127.0.0.1:0".parse()?,
                http_listen: None,
                compaction_interval: None,
                replication: None,
                security: Security::Tls(TlsSettings {
                    client_ca_pem: pki.ca_pem().to_owned(),
                    serving,
                    authenticator: Authenticator::new(StaticTokens::default()),
                    node_certificates: None,
                }),
                etcd_api: false,
            })
            .await?;
            let server = format!("https://{}", running.grpc_addr);
            let config_for = |user: &str, groups: &[&str]| -> Result<ClientConfig> {
                let cert = pki.issue_client(&ClientProfile::new(user, groups))?;
                Ok(ClientConfig {
                    server: server.clone(),
                    credentials: Credentials {
                        ca_pem: Some(pki.ca_pem().to_owned()),
                        identity: Some(ClientIdentity {
                            cert_pem: cert.cert_pem,
                            key_pem: cert.key_pem,
                        }),
                        ..Credentials::default()
                    },
                    reload_from: None,
                })
            };
            let admin = Client::connect_with(&config_for("bench-admin", &[MASTERS_GROUP])?).await?;
            let user = config_for("bench-user", &[])?;
            Ok((running, admin, user))
        }
    }
}

async fn measure_config(config: Config) -> Result<Vec<Vec<Measured>>> {
    let dir = tempfile::tempdir()?;
    let (running, admin, user) = start(config, &dir).await?;
    for namespace in [NAMESPACE, LIST_NAMESPACE] {
        admin
            .create(&Namespace {
                metadata: meta(namespace, ""),
                ..Namespace::default()
            })
            .await?;
        // The measured user edits both namespaces (through RBAC, when it
        // is checked at all).
        admin
            .create(&RoleBinding {
                metadata: meta("bench-user-edits", namespace),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "edit".into(),
                },
                subjects: vec![Subject {
                    kind: "User".into(),
                    name: "bench-user".into(),
                    ..Subject::default()
                }],
                ..RoleBinding::default()
            })
            .await?;
    }
    for i in 0..LISTED_PODS {
        admin
            .create(&pod(&format!("listed-{i}"), LIST_NAMESPACE))
            .await?;
    }
    let mut per_concurrency = Vec::new();
    for clients in CONCURRENCY {
        // One connection per client, as separate programs would have.
        let mut connections = Vec::new();
        for _ in 0..clients {
            connections.push(Client::connect_with(&user).await?);
        }
        // The first request of a fresh RBAC binding may race its watch:
        // wait until the user is allowed (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        while connections[0]
            .get::<Pod>(LIST_NAMESPACE, "listed-0")
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("the benchmark user is never allowed to read its namespace");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut per_op = Vec::new();
        for op in OPERATIONS {
            per_op.push(phase(op, &connections).await?);
        }
        per_concurrency.push(per_op);
    }
    running.stop().await;
    Ok(per_concurrency)
}

/// `REQUESTS` requests of `op`, split over the clients.
async fn phase(op: &'static str, clients: &[Client]) -> Result<Measured> {
    let share = REQUESTS / clients.len();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for i in 0..share {
                if started.elapsed() > PHASE_LIMIT {
                    break;
                }
                let name = format!("p-{c}-{i}");
                let sent = Instant::now();
                let result = match op {
                    "create" => client.create(&pod(&name, NAMESPACE)).await.map(drop),
                    "get" => client.get::<Pod>(NAMESPACE, &name).await.map(drop),
                    "list" => client
                        .list::<Pod>(&ListOptions {
                            namespace: LIST_NAMESPACE.into(),
                            ..ListOptions::default()
                        })
                        .await
                        .map(drop),
                    _ => client
                        .delete_json(Kind::Pod, NAMESPACE, &name, "")
                        .await
                        .map(drop),
                };
                result.with_context(|| format!("{op} {name}"))?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let took = started.elapsed().as_secs_f64();
    Ok(Measured {
        per_second: latencies.len() as f64 / took,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: namespace.into(),
        ..ObjectMeta::default()
    }
}

fn pod(name: &str, namespace: &str) -> Pod {
    Pod {
        metadata: meta(name, namespace),
        spec: PodSpec {
            containers: vec![Container {
                name: "c".into(),
                command: vec!["sleep".into(), "1000".into()],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    crate::stats::median(&values)
}

fn render(
    results: &[Vec<Vec<Vec<Measured>>>],
    machine: &Machine,
    options: &Options,
    took: Duration,
    load_start: f64,
) -> String {
    let mut out = format!(
        "# API: the cost of TLS, authentication and authorisation\n\n{}\n\n\
         Both configurations measured in this run, alternately, {} runs each (medians quoted): \
         **plain** is the control plane with `--insecure-plaintext` (no TLS, no authentication, no \
         authorisation); **secure** is TLS with the cluster CA, a client certificate and RBAC, for a \
         user outside `system:masters` allowed by a RoleBinding to `edit`. In-process control plane \
         and gRPC clients on 127.0.0.1, one connection per client, {REQUESTS} requests per \
         operation and phase; list reads a namespace of {LISTED_PODS} pods.\n\n\
         | clients | operation | plain req/s | secure req/s | throughput cost | plain p99 (ms) | secure p99 (ms) | p99 added | goal met (< 10% / < 10%) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        machine.written_by(
            "cargo xtask bench api-security",
            options.commit.as_deref(),
            took,
            load_start
        ),
        options.runs.max(1),
    );
    let mut all_met = true;
    for (c, clients) in CONCURRENCY.iter().enumerate() {
        for (op, name) in OPERATIONS.iter().enumerate() {
            let of = |config: Config, pick: fn(&Measured) -> f64| {
                median(results[config as usize][c][op].iter().map(pick))
            };
            let plain_rate = of(Config::Plain, |m| m.per_second);
            let secure_rate = of(Config::Secure, |m| m.per_second);
            let plain_p99 = of(Config::Plain, |m| m.p99);
            let secure_p99 = of(Config::Secure, |m| m.p99);
            let cost = 1.0 - secure_rate / plain_rate;
            let added = secure_p99 / plain_p99 - 1.0;
            let met = cost < 0.10 && added < 0.10;
            all_met &= met;
            out.push_str(&format!(
                "| {clients} | {name} | {plain_rate:.0} | {secure_rate:.0} | {:+.1}% | {plain_p99:.2} | {secure_p99:.2} | {:+.1}% | {} |\n",
                cost * 100.0,
                added * 100.0,
                if met { "yes" } else { "**no**" },
            ));
        }
    }
    let p50 = |config: Config| {
        median(
            results[config as usize]
                .iter()
                .flat_map(|per_op| per_op.iter().flatten())
                .map(|m| m.p50),
        )
    };
    out.push_str(&format!(
        "\nMedian p50 over every phase: plain {:.2} ms, secure {:.2} ms. Goal (issue #13: under 10% \
         throughput cost and under 10% p99 added on every row): **{}**.\n",
        p50(Config::Plain),
        p50(Config::Secure),
        if all_met { "met" } else { "not met" },
    ));
    out
}
