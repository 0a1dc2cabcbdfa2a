//! `rudder-controlplane init` and `rudder-controlplane token ...`: what
//! `kubeadm init` and `kubeadm token` do for a rudder control plane.
//!
//! `init` makes (or keeps) the cluster CA and the admin kubeconfig in the
//! PKI directory, copies the kubeconfig to `<config-dir>/admin.kubeconfig`,
//! writes `<config-dir>/controlplane.env` (the systemd EnvironmentFile of
//! `rudder-controlplane.service`), makes a bootstrap token, starts the unit
//! when systemd runs and the unit is installed, and prints the command that
//! joins a node. Running it again keeps the CA and the files and makes a
//! fresh token.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command as Process,
};

use anyhow::{Context, Result, bail};
use rudder_controlplane::{
    auth::bootstrap::{self, BootstrapTokens},
    pki::{self, ClusterPki},
};

use super::Args;

/// The systemd unit `init` starts.
const UNIT: &str = "rudder-controlplane.service";

/// Setting up, instead of serving.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Prepare this machine's control plane (CA, admin credentials,
    /// config, a bootstrap token), start it under systemd, and print the
    /// command that joins a node.
    Init(InitArgs),
    /// Bootstrap tokens: what `rudder-agent join --token` presents.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `init`'s options (with the global --data-dir, --pki-dir, --listen,
/// --http-listen, --advertise-address).
#[derive(clap::Args)]
pub struct InitArgs {
    /// Where controlplane.env and a copy of admin.kubeconfig go.
    #[arg(long, env = "RUDDER_CONFIG_DIR", default_value = "/etc/rudder")]
    config_dir: PathBuf,
    /// Do not start rudder-controlplane.service.
    #[arg(long)]
    no_start: bool,
    /// How long the bootstrap token works (e.g. 24h, 30m, 7d).
    #[arg(long, default_value = "24h")]
    token_ttl: String,
}

/// `token ...`.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (the only time its secret is shown).
    Create {
        /// How long it works (e.g. 24h, 30m, 7d).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Print the whole `rudder-agent join` command, not just the token.
        #[arg(long)]
        print_join_command: bool,
    },
    /// The tokens, their expiry and description (never their secrets).
    List,
    /// Remove tokens (by id, or the whole token).
    Delete {
        /// Token ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// Runs a setup subcommand.
///
/// # Errors
/// Whatever stops it, said plainly.
pub fn run(args: &Args, command: &Command) -> Result<()> {
    match command {
        Command::Init(init) => run_init(args, init),
        Command::Token(token) => run_token(args, token),
    }
}

fn run_token(args: &Args, command: &TokenCommand) -> Result<()> {
    let pki_dir = args.pki_dir();
    let tokens = BootstrapTokens::in_dir(&pki_dir);
    match command {
        TokenCommand::Create {
            ttl,
            description,
            print_join_command,
        } => {
            let pki = existing_pki(&pki_dir)?;
            let token = tokens.create(bootstrap::parse_ttl(ttl)?, description)?;
            if *print_join_command {
                println!("{}", join_command(args, &pki, &token.to_string()));
            } else {
                println!("{token}");
            }
        }
        TokenCommand::List => {
            println!("{:<8} {:<10} {:<22} DESCRIPTION", "ID", "TTL", "EXPIRES");
            let now = time::OffsetDateTime::now_utc();
            for record in tokens.list()? {
                let left = record.expires - now;
                let ttl = if left.is_negative() {
                    "<expired>".to_owned()
                } else if left.whole_hours() > 0 {
                    format!("{}h", left.whole_hours())
                } else {
                    format!("{}m", left.whole_minutes())
                };
                println!(
                    "{:<8} {:<10} {:<22} {}",
                    record.id,
                    ttl,
                    record.expires_rfc3339(),
                    record.description
                );
            }
        }
        TokenCommand::Delete { ids } => {
            for id in ids {
                tokens.delete(id)?;
                println!(
                    "bootstrap token {:?} deleted",
                    id.split('.').next().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

fn existing_pki(pki_dir: &Path) -> Result<ClusterPki> {
    if !pki_dir.join("ca.crt").exists() {
        bail!(
            "{} has no cluster CA: run `rudder-controlplane init` first",
            pki_dir.display()
        );
    }
    Ok(ClusterPki::load_or_create(pki_dir)?)
}

fn run_init(args: &Args, init: &InitArgs) -> Result<()> {
    let ttl = bootstrap::parse_ttl(&init.token_ttl)?;
    if args.security.insecure_plaintext {
        bail!("init prepares TLS credentials: it does not go with --insecure-plaintext");
    }
    writable_dir(&args.data_dir, "the data directory (--data-dir)")?;
    writable_dir(&init.config_dir, "the config directory (--config-dir)")?;
    let pki_dir = args.pki_dir();
    let had_ca = pki_dir.join("ca.crt").exists();
    let pki = ClusterPki::load_or_create(&pki_dir)?;
    if had_ca {
        println!(
            "[init] kept the existing cluster CA in {} ({})",
            pki_dir.display(),
            pki.ca_hash()
        );
    } else {
        println!("[init] made a cluster CA in {}", pki_dir.display());
    }
    let admin = super::admin_kubeconfig(args, &pki, advertised(args))?;
    let admin_copy = init.config_dir.join("admin.kubeconfig");
    let text =
        std::fs::read_to_string(&admin).with_context(|| format!("reading {}", admin.display()))?;
    pki::write_private(&admin_copy, &text)?;
    println!(
        "[init] admin credentials in {} (and {})",
        admin.display(),
        admin_copy.display()
    );
    let env = init.config_dir.join("controlplane.env");
    let line = format!("RUDDER_CONTROLPLANE_OPTS=\"{}\"\n", serve_opts(args));
    match std::fs::read_to_string(&env) {
        Ok(existing) if existing == line => println!("[init] {} is up to date", env.display()),
        Ok(_) => println!(
            "[init] kept {} as it is (it differs from these options; edit or remove it to change them)",
            env.display()
        ),
        Err(_) => {
            write_public(&env, &line)?;
            println!("[init] wrote {}", env.display());
        }
    }
    let tokens = BootstrapTokens::in_dir(&pki_dir);
    let token = tokens.create(ttl, "made by rudder-controlplane init")?;
    println!(
        "[init] made bootstrap token {} (valid for {}; `rudder-controlplane token create` makes more)",
        token.id, init.token_ttl
    );
    if init.no_start {
        println!("[init] not starting the control plane (--no-start)");
    } else if systemd_has_unit() {
        start_unit(args)?;
    } else {
        println!(
            "[init] no systemd unit {UNIT} here: start the control plane with\n    rudder-controlplane {}",
            serve_opts(args)
        );
    }
    println!(
        "\nJoin a node with:\n\n    {}\n",
        join_command(args, &pki, &token.to_string())
    );
    Ok(())
}

/// Creates `dir` if needed and proves it can be written.
fn writable_dir(dir: &Path, what: &str) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{what} {} cannot be created", dir.display()))?;
    let probe = dir.join(".rudder-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("{what} {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn write_public(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The address nodes and the admin reach the gRPC port at.
fn advertised(args: &Args) -> SocketAddr {
    let ip = args
        .security
        .advertise_address
        .unwrap_or(match args.listen.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        });
    SocketAddr::new(ip, args.listen.port())
}

/// The options `rudder-controlplane.service` serves with.
fn serve_opts(args: &Args) -> String {
    let mut opts = format!(
        "--data-dir {} --listen {} --http-listen {}",
        args.data_dir.display(),
        args.listen,
        args.http_listen
    );
    if let Some(dir) = &args.security.pki_dir {
        opts.push_str(&format!(" --pki-dir {}", dir.display()));
    }
    if let Some(ip) = args.security.advertise_address {
        opts.push_str(&format!(" --advertise-address {ip}"));
    }
    opts
}

fn join_command(args: &Args, pki: &ClusterPki, token: &str) -> String {
    format!(
        "rudder-agent join --server https://{} --token {token} --ca-cert-hash {}",
        advertised(args),
        pki.ca_hash()
    )
}

fn systemd_has_unit() -> bool {
    Path::new("/run/systemd/system").exists()
        && Process::new("systemctl")
            .args(["cat", UNIT])
            .output()
            .is_ok_and(|out| out.status.success())
}

fn start_unit(args: &Args) -> Result<()> {
    let active = Process::new("systemctl")
        .args(["is-active", "--quiet", UNIT])
        .status()
        .is_ok_and(|status| status.success());
    if active {
        println!("[init] {UNIT} is running already (restart it to apply changed options)");
        return Ok(());
    }
    if let Err(err) = std::net::TcpListener::bind(args.listen) {
        bail!(
            "the gRPC port {} is taken ({err}): another process listens there; stop it or choose --listen",
            args.listen
        );
    }
    let status = Process::new("systemctl")
        .args(["enable", "--now", UNIT])
        .status()
        .context("running systemctl")?;
    if !status.success() {
        bail!("systemctl enable --now {UNIT} failed ({status}): see journalctl -u {UNIT}");
    }
    println!("[init] started {UNIT}");
    Ok(())
}
