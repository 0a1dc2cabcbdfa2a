//! `rudderctl delete -f FILE` / `rudderctl delete KIND NAME...`.

use anyhow::{Result, bail};
use rudder_api::{
    Kind,
    meta::{DeleteOptions, PropagationPolicy},
    object,
};
use rudder_client::ClientError;

use crate::{
    get::kind_and_name,
    manifest,
    server::{ServerArgs, block_on, explain},
};

/// Arguments of `rudderctl delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// Kind (or KIND/NAME) followed by names.
    args: Vec<String>,
    /// Delete the objects in these manifests.
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Namespace (default "default").
    #[arg(short, long)]
    namespace: Option<String>,
    /// A missing object is not an error.
    #[arg(long)]
    ignore_not_found: bool,
    /// Seconds a pod gets to stop (SIGTERM, then SIGKILL); negative takes
    /// the pod's terminationGracePeriodSeconds. 0 needs --force (else it
    /// means 1, as in kubectl).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    grace_period: i64,
    /// Remove the objects from the API at once, without waiting for the
    /// node to confirm the pod stopped (grace period 0).
    #[arg(long)]
    force: bool,
    /// Delete with a grace period of 1 second.
    #[arg(long)]
    now: bool,
    /// What becomes of the objects' dependents, as with kubectl:
    /// `background` (deleted after), `foreground` (deleted first, the
    /// owner waits) or `orphan` (kept, no longer owned).
    #[arg(long, default_value = "background", value_parser = ["background", "foreground", "orphan"])]
    cascade: String,
}

/// The grace period a delete asks for, as kubectl derives it from
/// `--grace-period`, `--force` and `--now`.
fn grace_period(args: &DeleteArgs) -> Result<Option<i64>> {
    if args.now && args.grace_period >= 0 {
        bail!("--now and --grace-period cannot be specified together");
    }
    if args.force && args.grace_period > 0 {
        bail!("--force and --grace-period greater than 0 cannot be specified together");
    }
    Ok(match (args.force, args.now, args.grace_period) {
        (true, _, _) => Some(0),
        (false, true, _) => Some(1),
        // Immediate removal only when asked for with --force.
        (false, false, 0) => Some(1),
        (false, false, grace) if grace > 0 => Some(grace),
        _ => None,
    })
}

/// Runs `rudderctl delete`.
pub fn run(args: DeleteArgs, server: &ServerArgs) -> Result<()> {
    block_on(async move {
        let mut targets: Vec<(Kind, String, String)> = Vec::new();
        let default_ns = args
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        for file in &args.files {
            for manifest in manifest::load(file)? {
                let meta = object::metadata_of(&manifest.object);
                let ns = if meta.namespace.is_empty() {
                    default_ns.clone()
                } else {
                    meta.namespace
                };
                targets.push((manifest.kind, ns, meta.name));
            }
        }
        if let Some((first, names)) = args.args.split_first() {
            let (kind, inline) = kind_and_name(first, None)?;
            let names: Vec<String> = inline.into_iter().chain(names.iter().cloned()).collect();
            if names.is_empty() {
                bail!("delete {first}: name the objects to delete (rudderctl delete {first} NAME)");
            }
            for name in names {
                targets.push((kind, default_ns.clone(), name));
            }
        }
        if targets.is_empty() {
            bail!("nothing to delete: give -f FILE or KIND NAME");
        }
        let policy = match args.cascade.as_str() {
            "foreground" => PropagationPolicy::Foreground,
            "orphan" => PropagationPolicy::Orphan,
            _ => PropagationPolicy::Background,
        };
        let options = DeleteOptions {
            grace_period_seconds: grace_period(&args)?,
            propagation_policy: Some(policy),
            ..DeleteOptions::default()
        };
        if args.force {
            eprintln!(
                "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely."
            );
        }
        let verb = if args.force {
            "force deleted"
        } else {
            "deleted"
        };
        let client = server.connect().await?;
        let mut failures = 0;
        for (kind, namespace, name) in targets {
            match client.delete_with(kind, &namespace, &name, &options).await {
                Ok(_) => println!("{} {name:?} {verb}", kind_display(kind)),
                Err(ClientError::NotFound(_)) if args.ignore_not_found => {}
                Err(err) => {
                    failures += 1;
                    eprintln!("{}", explain(err));
                }
            }
        }
        if failures > 0 {
            bail!("{failures} object(s) could not be deleted");
        }
        Ok(())
    })
}

/// `deployment.apps`, as kubectl names a kind in its messages.
fn kind_display(kind: Kind) -> String {
    match kind.group() {
        "" => kind.name().to_lowercase(),
        group => format!("{}.{group}", kind.name().to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        delete: DeleteArgs,
    }

    fn grace(args: &[&str]) -> Result<Option<i64>> {
        let cli = Cli::try_parse_from(std::iter::once("delete").chain(args.iter().copied()))?;
        grace_period(&cli.delete)
    }

    #[test]
    fn grace_flags_follow_kubectl() {
        assert_eq!(grace(&["pod", "web"]).ok(), Some(None));
        assert_eq!(
            grace(&["pod", "web", "--grace-period", "7"]).ok(),
            Some(Some(7))
        );
        assert_eq!(
            grace(&["pod", "web", "--grace-period=0"]).ok(),
            Some(Some(1))
        );
        assert_eq!(
            grace(&["pod", "web", "--grace-period=0", "--force"]).ok(),
            Some(Some(0))
        );
        assert_eq!(grace(&["pod", "web", "--force"]).ok(), Some(Some(0)));
        assert_eq!(grace(&["pod", "web", "--now"]).ok(), Some(Some(1)));
        assert!(grace(&["pod", "web", "--force", "--grace-period", "5"]).is_err());
        assert!(grace(&["pod", "web", "--now", "--grace-period", "5"]).is_err());
    }
}
