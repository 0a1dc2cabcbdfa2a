//! `rudderctl apply -f FILE|DIR|-`: create each object, or update it if it
//! exists (its spec and metadata replaced by the manifest's).

use anyhow::{Result, bail};
use rudder_api::object;
use rudder_client::ClientError;
use serde_json::Value;

use crate::{
    manifest::{self, display_name},
    server::{ServerArgs, block_on, explain},
};

/// Arguments of `rudderctl apply`.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Manifest file, directory of manifests, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Namespace for objects that name none.
    #[arg(short, long)]
    namespace: Option<String>,
}

/// Runs `rudderctl apply`.
pub fn run(args: ApplyArgs, server: &ServerArgs) -> Result<()> {
    block_on(async move {
        let mut manifests = Vec::new();
        for file in &args.files {
            manifests.extend(manifest::load(file)?);
        }
        let client = server.connect().await?;
        let mut failures = 0;
        for manifest in manifests {
            let mut wanted = manifest.object;
            if let (Some(ns), true) = (&args.namespace, manifest.kind.namespaced()) {
                let empty = wanted
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
                if empty {
                    wanted["metadata"]["namespace"] = Value::String(ns.clone());
                }
            }
            let meta = object::metadata_of(&wanted);
            let shown = display_name(manifest.kind, &meta.name);
            let namespace = if meta.namespace.is_empty() {
                "default".to_owned()
            } else {
                meta.namespace.clone()
            };
            let outcome = match client.get_json(manifest.kind, &namespace, &meta.name).await {
                Err(ClientError::NotFound(_)) => client
                    .create_json(manifest.kind, &wanted)
                    .await
                    .map(|_| "created"),
                Ok(current) => {
                    // Update against what was just read: a concurrent
                    // writer makes this a Conflict rather than lost work.
                    wanted["metadata"]["resourceVersion"] =
                        current["metadata"]["resourceVersion"].clone();
                    client
                        .update_json(manifest.kind, &wanted, false)
                        .await
                        .map(|updated| {
                            if updated["metadata"]["resourceVersion"]
                                == current["metadata"]["resourceVersion"]
                            {
                                "unchanged"
                            } else {
                                "configured"
                            }
                        })
                }
                Err(err) => Err(err),
            };
            match outcome {
                Ok(verb) => println!("{shown} {verb}"),
                Err(err) => {
                    failures += 1;
                    eprintln!("{}: {}", manifest.origin, explain(err));
                }
            }
        }
        if failures > 0 {
            bail!("{failures} object(s) could not be applied");
        }
        Ok(())
    })
}
