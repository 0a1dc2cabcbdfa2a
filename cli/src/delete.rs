//! `rudderctl delete -f FILE` / `rudderctl delete KIND NAME...`.

use anyhow::{Result, bail};
use rudder_api::{Kind, object};
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
        let client = server.connect().await?;
        let mut failures = 0;
        for (kind, namespace, name) in targets {
            match client.delete_json(kind, &namespace, &name, "").await {
                Ok(_) => println!("{} {name:?} deleted", kind_display(kind)),
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
