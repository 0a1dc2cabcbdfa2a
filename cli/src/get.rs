//! `rudderctl get KIND [NAME] [-o wide|yaml|json|name] [-l SELECTOR] [-w]`.

use anyhow::{Context, Result, bail};
use rudder_api::Kind;
use rudder_client::{ListOptions, WatchEvent};
use serde_json::{Value, json};

use crate::{
    manifest::display_name,
    server::{ServerArgs, block_on, explain},
    table,
};

/// Arguments of `rudderctl get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// Kind: pods (po), deployments (deploy), replicasets (rs), services
    /// (svc), endpoints (ep), nodes (no), namespaces (ns), leases, events (ev); or
    /// KIND/NAME.
    kind: String,
    /// Object names; all objects when omitted.
    names: Vec<String>,
    /// Output format: wide, yaml, json or name.
    #[arg(short, long)]
    output: Option<String>,
    /// Label selector, e.g. app=web,tier!=db.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Field selector, e.g. spec.nodeName=node1.
    #[arg(long)]
    field_selector: Option<String>,
    /// Namespace (default "default").
    #[arg(short, long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// After listing, watch for changes.
    #[arg(short, long)]
    watch: bool,
}

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
}

fn output(text: Option<&str>) -> Result<Output> {
    Ok(match text {
        None => Output::Table { wide: false },
        Some("wide") => Output::Table { wide: true },
        Some("yaml") => Output::Yaml,
        Some("json") => Output::Json,
        Some("name") => Output::Name,
        Some(other) => bail!("--output {other:?}: use wide, yaml, json or name"),
    })
}

/// Splits `KIND/NAME` or `KIND` + optional NAME.
pub fn kind_and_name(kind: &str, name: Option<String>) -> Result<(Kind, Option<String>)> {
    let (kind_text, name) = match kind.split_once('/') {
        Some((kind, inline)) => (kind, Some(inline.to_owned())),
        None => (kind, name),
    };
    // `deployment.apps` as printed by apply is accepted too.
    let kind_text = kind_text.split('.').next().unwrap_or(kind_text);
    let kind = Kind::parse(kind_text).with_context(|| {
        format!("unknown resource type {kind_text:?}: use pods, deployments, replicasets, services, endpoints, nodes, namespaces, leases or events")
    })?;
    Ok((kind, name))
}

/// Runs `rudderctl get`.
pub fn run(args: GetArgs, server: &ServerArgs) -> Result<()> {
    if args.kind.contains(',') {
        return run_several(args, server);
    }
    if args.names.len() > 1 {
        return run_named(args, server);
    }
    block_on(async move {
        let (kind, name) = kind_and_name(&args.kind, args.names.first().cloned())?;
        let format = output(args.output.as_deref())?;
        let client = server.connect().await?;
        let namespace = namespace_of(&args);
        let all = args.all_namespaces && name.is_none();
        let (objects, resource_version) = match &name {
            Some(name) => {
                let object = client
                    .get_json(kind, &namespace, name)
                    .await
                    .map_err(explain)?;
                let version = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                (vec![object], version)
            }
            None => list_objects(&client, kind, &args, &namespace).await?,
        };
        if objects.is_empty() && !args.watch {
            no_resources(&namespace, kind.namespaced());
            return Ok(());
        }
        print_objects(kind, &objects, format, all, name.is_some())?;
        if args.watch {
            let mut options = list_options(&args, &namespace);
            if let Some(name) = &name {
                options.field_selector = format!("metadata.name={name}");
            }
            let mut watch = client
                .watch_json(kind, &options, &resource_version)
                .await
                .map_err(explain)?;
            while let Some(event) = watch.next().await {
                let object = match event.map_err(explain)? {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
                    WatchEvent::Bookmark { .. } => continue,
                };
                match format {
                    Output::Table { wide } => {
                        let row = table::row(kind, &object, wide, all);
                        println!("{}", row.join("   "));
                    }
                    _ => print_objects(kind, &[object], format, all, true)?,
                }
            }
        }
        Ok(())
    })
}

/// `rudderctl get pods a b c`: the named objects in one table, in the order
/// given; each missing one is reported (kubectl's wording) and makes the
/// command fail after the others are shown.
fn run_named(args: GetArgs, server: &ServerArgs) -> Result<()> {
    if args.kind.contains('/') || args.watch {
        bail!("several names take a plain KIND (not KIND/NAME) and no --watch");
    }
    let (kind, _) = kind_and_name(&args.kind, None)?;
    block_on(async move {
        let format = output(args.output.as_deref())?;
        let client = server.connect().await?;
        let namespace = namespace_of(&args);
        let mut objects = Vec::new();
        let mut missing = 0;
        for name in &args.names {
            match client.get_json(kind, &namespace, name).await {
                Ok(object) => objects.push(object),
                Err(err) => {
                    missing += 1;
                    eprintln!("{}", explain(err));
                }
            }
        }
        if !objects.is_empty() {
            print_objects(kind, &objects, format, false, false)?;
        }
        if missing > 0 {
            bail!(
                "{missing} of {} objects could not be read",
                args.names.len()
            );
        }
        Ok(())
    })
}

/// `rudderctl get deploy,rs,pods`: each kind's table in turn, names
/// prefixed with their kind, as kubectl does.
fn run_several(args: GetArgs, server: &ServerArgs) -> Result<()> {
    if !args.names.is_empty() || args.watch {
        bail!(
            "several kinds ({}) take neither a NAME nor --watch",
            args.kind
        );
    }
    let kinds = args
        .kind
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| kind_and_name(k, None).map(|(kind, _)| kind))
        .collect::<Result<Vec<_>>>()?;
    block_on(async move {
        let format = output(args.output.as_deref())?;
        let client = server.connect().await?;
        let namespace = namespace_of(&args);
        let mut lists = Vec::new();
        for kind in kinds {
            let (objects, _) = list_objects(&client, kind, &args, &namespace).await?;
            if !objects.is_empty() {
                lists.push((kind, objects));
            }
        }
        if lists.is_empty() {
            no_resources(&namespace, true);
            return Ok(());
        }
        match format {
            Output::Table { wide } => {
                for (i, (kind, objects)) in lists.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    let all = args.all_namespaces;
                    let name_column = usize::from(all && kind.namespaced());
                    let rows: Vec<Vec<String>> = objects
                        .iter()
                        .map(|object| {
                            let mut row = table::row(*kind, object, wide, all);
                            row[name_column] = display_name(*kind, &row[name_column]);
                            row
                        })
                        .collect();
                    print!(
                        "{}",
                        table::render(&table::headers(*kind, wide, all), &rows)
                    );
                }
            }
            Output::Name => {
                for (kind, objects) in &lists {
                    print_objects(*kind, objects, format, false, false)?;
                }
            }
            Output::Yaml | Output::Json => {
                let items: Vec<Value> = lists.into_iter().flat_map(|(_, o)| o).collect();
                let document = json!({"apiVersion": "v1", "kind": "List", "items": items});
                if format == Output::Yaml {
                    print!("{}", serde_yaml_ng::to_string(&document)?);
                } else {
                    println!("{}", serde_json::to_string_pretty(&document)?);
                }
            }
        }
        Ok(())
    })
}

fn namespace_of(args: &GetArgs) -> String {
    if args.all_namespaces {
        String::new()
    } else {
        args.namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned())
    }
}

fn no_resources(namespace: &str, namespaced: bool) {
    if namespace.is_empty() || !namespaced {
        eprintln!("No resources found");
    } else {
        eprintln!("No resources found in {namespace} namespace.");
    }
}

/// The objects of `kind` the arguments select, and the list's revision.
async fn list_objects(
    client: &rudder_client::Client,
    kind: Kind,
    args: &GetArgs,
    namespace: &str,
) -> Result<(Vec<Value>, String)> {
    let list = client
        .list_json(kind, &list_options(args, namespace))
        .await
        .map_err(explain)?;
    let mut items = list.items;
    if kind == Kind::Event {
        // Oldest first, as kubectl: the newest ends up nearest the prompt.
        items.sort_by_key(|event| {
            event["lastTimestamp"]
                .as_str()
                .and_then(rudder_api::time::parse_rfc3339)
        });
    }
    Ok((items, list.resource_version))
}

fn list_options(args: &GetArgs, namespace: &str) -> ListOptions {
    ListOptions {
        namespace: namespace.to_owned(),
        label_selector: args.selector.clone().unwrap_or_default(),
        field_selector: args.field_selector.clone().unwrap_or_default(),
    }
}

fn print_objects(
    kind: Kind,
    objects: &[Value],
    format: Output,
    all: bool,
    single: bool,
) -> Result<()> {
    match format {
        Output::Table { wide } => {
            let rows: Vec<Vec<String>> = objects
                .iter()
                .map(|object| table::row(kind, object, wide, all))
                .collect();
            print!("{}", table::render(&table::headers(kind, wide, all), &rows));
        }
        Output::Name => {
            for object in objects {
                println!(
                    "{}",
                    display_name(kind, object["metadata"]["name"].as_str().unwrap_or(""))
                );
            }
        }
        Output::Yaml | Output::Json => {
            let document = if single && objects.len() == 1 {
                objects[0].clone()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": objects})
            };
            if format == Output::Yaml {
                print!("{}", serde_yaml_ng::to_string(&document)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&document)?);
            }
        }
    }
    Ok(())
}
