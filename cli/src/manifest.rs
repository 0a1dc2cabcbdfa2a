//! Reading manifests: files, directories (every .yaml/.yml/.json in them)
//! or stdin, multi-document YAML, and `kind: List` wrappers.

use std::{io::Read, path::Path};

use anyhow::{Context, Result, bail};
use rudder_api::{Kind, object};
use serde_json::Value;

/// One object from a manifest, with where it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its kind.
    pub kind: Kind,
    /// The object.
    pub object: Value,
    /// `file` or `file#N` for the Nth document.
    pub origin: String,
}

/// Reads every object from `source` (`-` for stdin).
pub fn load(source: &str) -> Result<Vec<Manifest>> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading manifests from stdin")?;
        return parse(&text, "stdin");
    }
    let path = Path::new(source);
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("reading directory {source}"))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            })
            .collect();
        entries.sort();
        let mut all = Vec::new();
        for entry in entries {
            all.extend(load(&entry.to_string_lossy())?);
        }
        return Ok(all);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {source}"))?;
    parse(&text, source)
}

/// Parses multi-document YAML (JSON is YAML too).
pub fn parse(text: &str, origin: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let origin = format!("{origin}#{}", index + 1);
        let value: Value = serde::Deserialize::deserialize(document)
            .with_context(|| format!("{origin}: not valid YAML"))?;
        if value.is_null() {
            continue;
        }
        collect(value, &origin, &mut out)?;
    }
    Ok(out)
}

fn collect(value: Value, origin: &str, out: &mut Vec<Manifest>) -> Result<()> {
    let kind_name = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind_name == "List" || kind_name.ends_with("List") && value.get("items").is_some() {
        for item in value
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            collect(item, origin, out)?;
        }
        return Ok(());
    }
    if kind_name.is_empty() {
        bail!("{origin}: the document has no `kind:`");
    }
    let kind = object::kind_of(&value).with_context(|| origin.to_owned())?;
    out.push(Manifest {
        kind,
        object: value,
        origin: origin.to_owned(),
    });
    Ok(())
}

/// `deployment.apps/web`, as kubectl names objects in its messages.
pub fn display_name(kind: Kind, name: &str) -> String {
    let group = kind.group();
    if group.is_empty() {
        format!("{}/{name}", kind.name().to_lowercase())
    } else {
        format!("{}.{group}/{name}", kind.name().to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: b}\n";
        let manifests = parse(text, "x.yaml").expect("parses");
        let kinds: Vec<_> = manifests.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, vec![Kind::Service, Kind::Pod]);
        assert!(parse("kind: CronJob\n", "y").is_err());
        assert!(parse("metadata: {}\n", "z").is_err());
    }
}
