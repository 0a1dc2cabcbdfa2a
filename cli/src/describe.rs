//! `rudderctl describe KIND NAME`: an object's metadata, its spec and
//! status as readable YAML, then the Events about it.

use anyhow::Result;
use rudder_api::{Kind, time::parse_rfc3339};
use rudder_client::{Client, ListOptions};
use serde_json::Value;

use crate::{
    get::kind_and_name,
    server::{ServerArgs, block_on, explain},
    table::{age, event_columns},
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
}

/// Runs `rudderctl describe`.
pub fn run(args: DescribeArgs, server: &ServerArgs) -> Result<()> {
    block_on(async move {
        let (kind, name) = kind_and_name(&args.kind, args.name.clone())?;
        let client = server.connect().await?;
        let names = match name {
            Some(name) => vec![name],
            None => client
                .list_json(
                    kind,
                    &rudder_client::ListOptions {
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
            if kind != Kind::Event {
                let events = events_about(&client, &object).await?;
                print!("{}", events_section(&events));
            }
        }
        Ok(())
    })
}

/// The Events about `object`, oldest first: those naming its uid, in
/// every namespace (events about Nodes live in `default`).
async fn events_about(client: &Client, object: &Value) -> Result<Vec<Value>> {
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
    let field_selector = if uid.is_empty() {
        format!(
            "involvedObject.kind={},involvedObject.name={}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        )
    } else {
        format!("involvedObject.uid={uid}")
    };
    let mut events = client
        .list_json(
            Kind::Event,
            &ListOptions {
                field_selector,
                ..ListOptions::default()
            },
        )
        .await
        .map_err(explain)?
        .items;
    events.sort_by_key(|event| event["lastTimestamp"].as_str().and_then(parse_rfc3339));
    Ok(events)
}

/// The `Events:` table `kubectl describe` ends with.
fn events_section(events: &[Value]) -> String {
    if events.is_empty() {
        return "Events:             <none>\n".to_owned();
    }
    let mut rows = vec![
        ["Type", "Reason", "Age", "From", "Message"].map(str::to_owned),
        ["----", "------", "----", "----", "-------"].map(str::to_owned),
    ];
    for event in events {
        let (last_seen, type_, reason, _, message) = event_columns(event);
        let from = event["source"]["component"]
            .as_str()
            .or(event["reportingComponent"].as_str())
            .unwrap_or_default()
            .to_owned();
        rows.push([type_, reason, last_seen, from, message]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    let mut out = "Events:\n".to_owned();
    for row in &rows {
        out.push_str("  ");
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    out
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
