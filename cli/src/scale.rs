//! `rudderctl scale deployment/web --replicas 5`.

use anyhow::{Result, bail};
use rudder_api::Kind;
use rudder_client::ClientError;
use serde_json::json;

use crate::{
    get::kind_and_name,
    manifest::display_name,
    server::{ServerArgs, block_on, explain},
};

/// How often a scale retries when the object changes under it.
const CONFLICT_RETRIES: usize = 5;

/// Arguments of `rudderctl scale`.
#[derive(clap::Args)]
pub struct ScaleArgs {
    /// deployment/NAME or replicaset/NAME (or KIND NAME).
    kind: String,
    /// Object name when not given as KIND/NAME.
    name: Option<String>,
    /// The new number of replicas.
    #[arg(long)]
    replicas: i64,
    /// Namespace (default "default").
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// Runs `rudderctl scale`.
pub fn run(args: ScaleArgs, server: &ServerArgs) -> Result<()> {
    block_on(async move {
        let (kind, name) = kind_and_name(&args.kind, args.name.clone())?;
        if !matches!(kind, Kind::Deployment | Kind::ReplicaSet) {
            bail!(
                "{} cannot be scaled: only deployments and replicasets have replicas",
                kind.plural()
            );
        }
        let Some(name) = name else {
            bail!(
                "scale: name the object (rudderctl scale {}/NAME --replicas N)",
                kind.name().to_lowercase()
            );
        };
        if args.replicas < 0 {
            bail!("--replicas {}: must not be negative", args.replicas);
        }
        let client = server.connect().await?;
        for _ in 0..CONFLICT_RETRIES {
            let mut object = client
                .get_json(kind, &args.namespace, &name)
                .await
                .map_err(explain)?;
            object["spec"]["replicas"] = json!(args.replicas);
            match client.update_json(kind, &object, false).await {
                Ok(_) => {
                    println!("{} scaled", display_name(kind, &name));
                    return Ok(());
                }
                // Someone else wrote in between: read again and retry.
                Err(ClientError::Conflict(_)) => continue,
                Err(err) => return Err(explain(err)),
            }
        }
        bail!(
            "{} kept changing; scale gave up after {CONFLICT_RETRIES} attempts",
            display_name(kind, &name)
        )
    })
}
