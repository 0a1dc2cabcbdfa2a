//! `rudderctl describe KIND NAME`: an object's metadata, then its spec and
//! status as readable YAML.

use anyhow::Result;
use serde_json::Value;

use crate::{
    get::kind_and_name,
    server::{ServerArgs, block_on, explain},
    table::age,
};

/// Arguments of `rudderctl describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    /// Kind, or KIND/NAME.
    kind: String,
    /// Object name.
    name: Option<String>,
    /// Namespace (default "default").
    #[arg(short, long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `rudderctl describe`.
pub fn run(args: DescribeArgs) -> Result<()> {
    block_on(async move {
        let (kind, name) = kind_and_name(&args.kind, args.name.clone())?;
        let client = args.server.connect().await?;
        let names = match name {
            Some(name) => vec![name],
            None => client
                .list_json(
                    kind,
                    &rudder_api::client::ListOptions {
                        namespace: args.namespace.clone(),
                        ..Default::default()
                    },
                )
                .await
                .map_err(explain)?
                .items
                .iter()
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
                .collect(),
        };
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                println!();
            }
            let object = client
                .get_json(kind, &args.namespace, name)
                .await
                .map_err(explain)?;
            print!("{}", describe(&object)?);
        }
        Ok(())
    })
}

fn map_lines(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn describe(object: &Value) -> Result<String> {
    let meta = &object["metadata"];
    let field = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut out = String::new();
    out.push_str(&format!("Name:               {}\n", field(&meta["name"])));
    if let Some(ns) = meta["namespace"].as_str() {
        out.push_str(&format!("Namespace:          {ns}\n"));
    }
    out.push_str(&format!("Kind:               {}\n", field(&object["kind"])));
    for (title, key) in [("Labels:", "labels"), ("Annotations:", "annotations")] {
        let lines = map_lines(meta.get(key));
        if lines.is_empty() {
            out.push_str(&format!("{title:<20}<none>\n"));
        } else {
            for (i, line) in lines.iter().enumerate() {
                let title = if i == 0 { title } else { "" };
                out.push_str(&format!("{title:<20}{line}\n"));
            }
        }
    }
    let created = field(&meta["creationTimestamp"]);
    out.push_str(&format!(
        "CreationTimestamp:  {created} ({} ago)\n",
        age(&created)
    ));
    out.push_str(&format!("UID:                {}\n", field(&meta["uid"])));
    out.push_str(&format!(
        "ResourceVersion:    {}\n",
        field(&meta["resourceVersion"])
    ));
    if let Some(owners) = meta["ownerReferences"].as_array() {
        for owner in owners {
            out.push_str(&format!(
                "Controlled By:      {}/{}\n",
                field(&owner["kind"]),
                field(&owner["name"])
            ));
        }
    }
    for (title, key) in [
        ("Spec", "spec"),
        ("Subsets", "subsets"),
        ("Status", "status"),
    ] {
        if let Some(section) = object.get(key).filter(|v| !v.is_null()) {
            out.push_str(&format!("{title}:\n"));
            for line in serde_yaml_ng::to_string(section)?.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    Ok(out)
}
