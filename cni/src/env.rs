//! The `CNI_*` environment of one invocation.

use crate::error::{CniError, Result};

/// The operation the runtime asks for (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it; idempotent.
    Del,
    /// Verify the attachment is as ADD left it.
    Check,
    /// Report the supported spec versions.
    Version,
    /// Report whether ADD can be served (1.1.0).
    Status,
    /// Release whatever is not in the valid attachments (1.1.0).
    Gc,
}

impl Command {
    /// The command's name as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Version => "VERSION",
            Self::Status => "STATUS",
            Self::Gc => "GC",
        }
    }
}

/// One attachment: a container's interface (`CNI_CONTAINERID`, `CNI_IFNAME`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// The container id, validated to be usable in file names.
    pub container_id: String,
    /// The interface name inside the container.
    pub ifname: String,
}

/// The environment of one invocation, as the runtime set it.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (validated when a command needs it).
    container_id: Option<String>,
    /// `CNI_NETNS`; empty counts as absent.
    netns: Option<String>,
    /// `CNI_IFNAME`.
    ifname: Option<String>,
    /// `CNI_PATH`: where the runtime looks for plugins; empty counts as absent.
    plugin_path: Option<String>,
    /// `CNI_ARGS` as key/value pairs.
    pub args: Vec<(String, String)>,
}

impl Invocation {
    /// Reads the invocation from the process environment.
    ///
    /// # Errors
    ///
    /// Code 4 when `CNI_COMMAND` is missing or unknown or `CNI_ARGS` is malformed.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the invocation through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    ///
    /// As [`Invocation::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let command = match lookup("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some(other) => {
                return Err(CniError::env(
                    "CNI_COMMAND",
                    format!(
                        "unknown command {other:?}: expected ADD, DEL, CHECK, VERSION, STATUS or GC"
                    ),
                ));
            }
            None => return Err(CniError::env("CNI_COMMAND", "not set")),
        };
        let non_empty = |name: &str| lookup(name).filter(|value| !value.is_empty());
        Ok(Self {
            command,
            container_id: non_empty("CNI_CONTAINERID"),
            netns: non_empty("CNI_NETNS"),
            ifname: non_empty("CNI_IFNAME"),
            plugin_path: non_empty("CNI_PATH"),
            args: parse_args(&lookup("CNI_ARGS").unwrap_or_default())?,
        })
    }

    /// The attachment named by `CNI_CONTAINERID` and `CNI_IFNAME`.
    ///
    /// # Errors
    ///
    /// Code 4 when either is missing or not usable as a name.
    pub fn attachment(&self) -> Result<Attachment> {
        let container_id = self
            .container_id
            .clone()
            .ok_or_else(|| CniError::env("CNI_CONTAINERID", "not set"))?;
        validate_container_id(&container_id)?;
        let ifname = self
            .ifname
            .clone()
            .ok_or_else(|| CniError::env("CNI_IFNAME", "not set"))?;
        validate_ifname(&ifname)?;
        Ok(Attachment {
            container_id,
            ifname,
        })
    }

    /// `CNI_NETNS`, which ADD and CHECK need.
    ///
    /// # Errors
    ///
    /// Code 4 when it is missing.
    pub fn required_netns(&self) -> Result<&str> {
        self.netns.as_deref().ok_or_else(|| {
            CniError::env(
                "CNI_NETNS",
                format!(
                    "not set: {} needs the container's network namespace path",
                    self.command.as_str()
                ),
            )
        })
    }

    /// `CNI_PATH`, which the spec requires for ADD and CHECK. rudder-cni
    /// delegates to no other plugin, but a runtime that leaves it out
    /// would also break any plugin chained after it: say so at once.
    ///
    /// # Errors
    ///
    /// Code 4 when it is missing.
    pub fn required_plugin_path(&self) -> Result<&str> {
        self.plugin_path.as_deref().ok_or_else(|| {
            CniError::env(
                "CNI_PATH",
                format!(
                    "not set: {} needs the list of plugin directories (e.g. /opt/cni/bin)",
                    self.command.as_str()
                ),
            )
        })
    }

    /// `CNI_NETNS` where it is optional (DEL).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
fn parse_args(raw: &str) -> Result<Vec<(String, String)>> {
    raw.split(';')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(CniError::env(
                "CNI_ARGS",
                format!("{pair:?} is not KEY=VALUE (pairs are separated by ';')"),
            )),
        })
        .collect()
}

/// The spec allows letters, digits, `_`, `.` and `-`; the id names files.
fn validate_container_id(id: &str) -> Result<()> {
    let starts_well = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if starts_well
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Ok(())
    } else {
        Err(CniError::env(
            "CNI_CONTAINERID",
            format!(
                "{id:?} must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
            ),
        ))
    }
}

/// What the kernel accepts as an interface name.
fn validate_ifname(name: &str) -> Result<()> {
    let reason = if name.len() > 15 {
        "is longer than 15 bytes"
    } else if name == "." || name == ".." {
        "is not a valid interface name"
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        "must not contain '/', ':' or whitespace"
    } else {
        return Ok(());
    };
    Err(CniError::env("CNI_IFNAME", format!("{name:?} {reason}")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{Command, Invocation};

    fn invocation(vars: &[(&str, &str)]) -> crate::error::Result<Invocation> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Invocation::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn reads_a_complete_add() {
        let inv = invocation(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc-1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
        ])
        .expect("valid");
        assert_eq!(inv.command, Command::Add);
        assert_eq!(inv.required_netns().ok(), Some("/run/netns/x"));
        let attachment = inv.attachment().expect("attachment");
        assert_eq!(attachment.container_id, "abc-1");
        assert_eq!(inv.args[1], ("K8S_POD_NAME".into(), "web".into()));
    }

    #[test]
    fn bad_environment_is_code_4() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("CNI_COMMAND", "FROB")],
            &[("CNI_COMMAND", "ADD"), ("CNI_ARGS", "novalue")],
        ];
        for vars in cases {
            assert_eq!(
                invocation(vars).err().map(|e| e.code()),
                Some(4),
                "{vars:?}"
            );
        }
        let bad_attachments: &[&[(&str, &str)]] = &[
            &[("CNI_COMMAND", "DEL"), ("CNI_IFNAME", "eth0")],
            &[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "a/b"),
                ("CNI_IFNAME", "eth0"),
            ],
            &[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "a")],
            &[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "a"),
                ("CNI_IFNAME", "a-very-long-name0"),
            ],
        ];
        for vars in bad_attachments {
            let inv = invocation(vars).expect("command is valid");
            assert_eq!(
                inv.attachment().err().map(|e| e.code()),
                Some(4),
                "{vars:?}"
            );
        }
        let no_netns = invocation(&[("CNI_COMMAND", "ADD"), ("CNI_NETNS", "")]).expect("valid");
        assert_eq!(no_netns.required_netns().err().map(|e| e.code()), Some(4));
        for path in [None, Some("")] {
            let mut vars = vec![("CNI_COMMAND", "ADD")];
            vars.extend(path.map(|p| ("CNI_PATH", p)));
            let inv = invocation(&vars).expect("valid");
            assert_eq!(
                inv.required_plugin_path().err().map(|e| e.code()),
                Some(4),
                "{path:?}"
            );
        }
        let with_path = invocation(&[("CNI_COMMAND", "ADD"), ("CNI_PATH", "/opt/cni/bin")]);
        assert_eq!(
            with_path.expect("valid").required_plugin_path().ok(),
            Some("/opt/cni/bin")
        );
    }
}
