//! Invoking CNI plugins exactly as a container runtime does: the network
//! configuration list from the net.d directory, each plugin executed from
//! the CNI bin directory with the CNI_* environment and its configuration
//! (plus the previous plugin's result) on stdin.

use std::{
    io::Write,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde::Deserialize;
use serde_json::{Value, json};

/// Errors from CNI invocations.
#[expect(
    missing_docs,
    reason = "the fields are named for what the message shows"
)]
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No usable network configuration.
    #[error("no CNI network configuration in {0} (*.conflist, *.conf or *.json)")]
    NoConfig(PathBuf),
    /// A configuration file cannot be read.
    #[error("CNI configuration {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is not JSON.
    #[error("CNI configuration {path}: {source}")]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A configuration file is not valid.
    #[error("CNI configuration {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    /// A plugin could not be run, or waited for.
    #[error("CNI plugin {plugin} {command} failed: {context}{source}")]
    Run {
        plugin: String,
        command: &'static str,
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A plugin's ADD result is not JSON.
    #[error("CNI plugin {plugin} {command} failed: result is not JSON: {source}")]
    BadResult {
        plugin: String,
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A plugin failed.
    #[error("CNI plugin {plugin} {command} failed: {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        message: String,
    },
}

/// A network configuration list.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// The network's name, passed to every plugin.
    pub name: String,
    /// The spec version (`cniVersion`) plugins are asked to speak.
    pub version: String,
    /// Plugin configurations, in order.
    pub plugins: Vec<Value>,
}

impl NetworkConfig {
    /// The first configuration in `dir` (sorted by file name), as runtimes
    /// pick it.
    ///
    /// # Errors
    /// When there is none or it is invalid.
    pub fn load(dir: &Path) -> Result<Self, CniError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|_| CniError::NoConfig(dir.to_path_buf()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect();
        files.sort();
        let path = files
            .into_iter()
            .next()
            .ok_or_else(|| CniError::NoConfig(dir.to_path_buf()))?;
        let bad = |reason: String| CniError::BadConfig {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| CniError::Unreadable {
            path: path.clone(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| CniError::NotJson {
            path: path.clone(),
            source,
        })?;
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let name = field("name").ok_or_else(|| bad("no \"name\"".into()))?;
        let version = field("cniVersion").unwrap_or_else(|| "1.0.0".into());
        let plugins = match value.get("plugins") {
            Some(Value::Array(plugins)) if !plugins.is_empty() => plugins.clone(),
            Some(_) => return Err(bad("\"plugins\" must be a non-empty list".into())),
            // A single .conf: the file is the one plugin.
            None => vec![value.clone()],
        };
        Ok(Self {
            path,
            name,
            version,
            plugins,
        })
    }
}

/// One attachment: a container's interface in a network namespace.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS (a path).
    pub netns: PathBuf,
    /// CNI_IFNAME.
    pub ifname: String,
}

/// Runs ADD through the list; returns the final result and the first IPv4
/// address in it. On failure, plugins that succeeded are undone with DEL.
///
/// # Errors
/// When a plugin fails (after the undo).
pub fn add(
    config: &NetworkConfig,
    bin_dir: &Path,
    attachment: &Attachment,
    runtime_config: &Value,
) -> Result<(Value, Option<Ipv4Addr>), CniError> {
    let mut previous: Option<Value> = None;
    for (i, plugin) in config.plugins.iter().enumerate() {
        match invoke(
            config,
            plugin,
            bin_dir,
            attachment,
            "ADD",
            previous.as_ref(),
            runtime_config,
        ) {
            Ok(result) => previous = result.or(previous),
            Err(err) => {
                for done in config.plugins[..i].iter().rev() {
                    let _ = invoke(
                        config,
                        done,
                        bin_dir,
                        attachment,
                        "DEL",
                        previous.as_ref(),
                        runtime_config,
                    );
                }
                return Err(err);
            }
        }
    }
    let result = previous.unwrap_or(Value::Null);
    let ip = first_ipv4(&result);
    Ok((result, ip))
}

/// Runs DEL through the list in reverse order, with the ADD result as
/// prevResult. Every plugin is asked even if one fails.
///
/// # Errors
/// The first failure.
pub fn delete(
    config: &NetworkConfig,
    bin_dir: &Path,
    attachment: &Attachment,
    previous: Option<&Value>,
) -> Result<(), CniError> {
    let mut first_error = None;
    for plugin in config.plugins.iter().rev() {
        if let Err(err) = invoke(
            config,
            plugin,
            bin_dir,
            attachment,
            "DEL",
            previous,
            &Value::Null,
        ) {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn invoke(
    config: &NetworkConfig,
    plugin: &Value,
    bin_dir: &Path,
    attachment: &Attachment,
    command: &'static str,
    previous: Option<&Value>,
    runtime_config: &Value,
) -> Result<Option<Value>, CniError> {
    let kind = plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fail = |message: String| CniError::Plugin {
        plugin: kind.clone(),
        command,
        message,
    };
    let mut stdin = plugin.clone();
    if let Value::Object(map) = &mut stdin {
        map.insert("name".into(), json!(config.name));
        map.insert("cniVersion".into(), json!(config.version));
        if let Some(previous) = previous {
            map.insert("prevResult".into(), previous.clone());
        }
        // Capabilities the plugin declares get their runtime values.
        if let (Some(Value::Object(capabilities)), Value::Object(values)) =
            (map.get("capabilities").cloned(), runtime_config)
        {
            let wanted: serde_json::Map<String, Value> = values
                .iter()
                .filter(|(k, _)| capabilities.get(*k).and_then(Value::as_bool) == Some(true))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !wanted.is_empty() {
                map.insert("runtimeConfig".into(), Value::Object(wanted));
            }
        }
    }
    let mut child = Command::new(bin_dir.join(&kind))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &attachment.container_id)
        .env("CNI_NETNS", &attachment.netns)
        .env("CNI_IFNAME", &attachment.ifname)
        .env("CNI_PATH", bin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CniError::Run {
            plugin: kind.clone(),
            command,
            context: format!("cannot run {}: ", bin_dir.join(&kind).display()),
            source,
        })?;
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin.to_string().as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| CniError::Run {
        plugin: kind.clone(),
        command,
        context: String::new(),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let message = serde_json::from_str::<Value>(&stdout)
            .ok()
            .and_then(|v| v.get("msg").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| {
                format!(
                    "{} {}",
                    stdout.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            });
        return Err(fail(message));
    }
    if command != "ADD" || stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&stdout)
        .map(Some)
        .map_err(|source| CniError::BadResult {
            plugin: kind.clone(),
            command,
            source,
        })
}

/// What the agent reads of an ADD result: the CNI spec's result type
/// (`interfaces`, `ips`), reduced to the fields the runtime uses. The
/// plugin's full type (`cni/src/result.rs`) lives in the rudder-cni crate,
/// which the agent does not link (it runs any CNI plugin, not only ours);
/// the pod record keeps the result as JSON, so DEL gets it back as
/// `prevResult` exactly as the plugins wrote it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AddResult {
    /// Interfaces the plugins created or touched.
    #[serde(default)]
    pub interfaces: Vec<ResultInterface>,
    /// Addresses they assigned.
    #[serde(default)]
    pub ips: Vec<ResultIp>,
}

/// One interface of a result.
#[derive(Clone, Debug, Deserialize)]
pub struct ResultInterface {
    /// The interface name.
    pub name: String,
    /// The sandbox (netns path) it lives in; absent or empty on the host.
    #[serde(default)]
    pub sandbox: Option<String>,
}

/// One address of a result.
#[derive(Clone, Debug, Deserialize)]
pub struct ResultIp {
    /// Address with prefix length, `10.244.1.5/24`.
    pub address: String,
}

impl AddResult {
    /// Reads `result`; one that does not have the shape of a result reads
    /// as empty (no address, no host interface), as before it was typed.
    pub fn read(result: &Value) -> Self {
        Self::deserialize(result).unwrap_or_default()
    }

    /// The first IPv4 address (`ips[].address`, "a.b.c.d/nn").
    pub fn first_ipv4(&self) -> Option<Ipv4Addr> {
        self.ips
            .iter()
            .filter_map(|ip| ip.address.split('/').next()?.parse().ok())
            .next()
    }

    /// Names of the interfaces that are not in the sandbox: the pod's
    /// host-side veth, and the bridge.
    pub fn host_interfaces(&self) -> Vec<String> {
        self.interfaces
            .iter()
            .filter(|i| i.sandbox.as_deref().is_none_or(str::is_empty))
            .map(|i| i.name.clone())
            .collect()
    }
}

/// The first IPv4 address of a CNI result (`ips[].address`, "a.b.c.d/nn").
pub fn first_ipv4(result: &Value) -> Option<Ipv4Addr> {
    AddResult::read(result).first_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ipv4_of_a_result_is_found() {
        let result = json!({"cniVersion": "1.0.0", "ips": [{"address": "fd00::2/64"}, {"address": "10.244.1.5/24", "gateway": "10.244.1.1"}]});
        assert_eq!(first_ipv4(&result), Some(Ipv4Addr::new(10, 244, 1, 5)));
        assert_eq!(first_ipv4(&json!({})), None);
    }

    #[test]
    fn a_single_conf_is_a_list_of_one_and_lists_are_taken_in_name_order() {
        let dir = std::env::temp_dir().join(format!("rudder-cni-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("20-other.conflist"),
            r#"{"name": "other", "plugins": [{"type": "x"}]}"#,
        )
        .expect("write");
        std::fs::write(
            dir.join("10-pods.conf"),
            r#"{"cniVersion": "1.1.0", "name": "pods", "type": "rudder-cni"}"#,
        )
        .expect("write");
        let config = NetworkConfig::load(&dir).expect("config");
        assert_eq!(
            (
                config.name.as_str(),
                config.version.as_str(),
                config.plugins.len()
            ),
            ("pods", "1.1.0", 1)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
