//! Containers' environment and the `$(NAME)` expansion of their command
//! and args.

use std::{net::Ipv4Addr, path::PathBuf};

use rudder_api::core::Pod;

/// Variables every container gets (a rudder convenience; Kubernetes needs
/// the downward API for the same).
pub(super) fn base_env(
    pod: &Pod,
    ip: Option<Ipv4Addr>,
    extra_path: &[PathBuf],
) -> Vec<(String, String)> {
    let mut path: Vec<String> = extra_path.iter().map(|p| p.display().to_string()).collect();
    path.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    vec![
        ("PATH".into(), path.join(":")),
        ("POD_NAME".into(), pod.metadata.name.clone()),
        ("POD_NAMESPACE".into(), pod.metadata.namespace.clone()),
        (
            "POD_IP".into(),
            ip.map(|i| i.to_string()).unwrap_or_default(),
        ),
    ]
}

/// Expands `$(NAME)` from `env`, as Kubernetes does in command and args;
/// `$$(NAME)` is a literal `$(NAME)`; unknown names stay as written.
pub(super) fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("$(") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("$(");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        match rest[i + 2..].find(')') {
            Some(end) => {
                let name = &rest[i + 2..i + 2 + end];
                match env.iter().rev().find(|(k, _)| k == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[i..i + 3 + end]),
                }
                rest = &rest[i + 3 + end..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_in_command_and_args_are_expanded_as_kubernetes_does() {
        let env = vec![("POD_NAME".to_owned(), "web-1".to_owned())];
        assert_eq!(expand("--name=$(POD_NAME)", &env), "--name=web-1");
        assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
        assert_eq!(
            expand("$(MISSING) $(POD_NAME", &env),
            "$(MISSING) $(POD_NAME"
        );
    }
}
