//! Containers' environment and the `$(NAME)` expansion of their command
//! and args.

use std::{net::Ipv4Addr, path::PathBuf};

use rudder_api::{
    core::{Container, Pod},
    downward::{Addresses, PodField},
};

/// Variables every container gets (a rudder convenience; Kubernetes needs
/// the downward API for the same), and `HOSTNAME` as a runtime gives it.
pub(super) fn base_env(
    pod: &Pod,
    ip: Option<Ipv4Addr>,
    extra_path: &[PathBuf],
) -> Vec<(String, String)> {
    let mut path: Vec<String> = extra_path.iter().map(|p| p.display().to_string()).collect();
    path.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let hostname = pod
        .spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone());
    vec![
        ("PATH".into(), path.join(":")),
        ("HOSTNAME".into(), hostname),
        ("POD_NAME".into(), pod.metadata.name.clone()),
        ("POD_NAMESPACE".into(), pod.metadata.namespace.clone()),
        (
            "POD_IP".into(),
            ip.map(|i| i.to_string()).unwrap_or_default(),
        ),
    ]
}

/// A container's whole environment, in the kubelet's order: the base
/// variables, the namespace's Service variables, then the container's own
/// `env`, each value expanded against the variables defined before it and
/// `valueFrom.fieldRef` read from the pod. A later definition of a name
/// wins.
pub(super) fn container_env(
    pod: &Pod,
    container: &Container,
    base: &[(String, String)],
    services: Vec<(String, String)>,
    addresses: Addresses<'_>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base.to_vec();
    env.extend(services);
    for var in &container.env {
        let value = match var.value_from.as_ref().and_then(|s| s.field_ref.as_ref()) {
            // Validation refused every other source and path.
            Some(field) => PodField::parse(&field.field_path)
                .map(|f| f.value(pod, addresses))
                .unwrap_or_default(),
            None => expand(var.value.as_deref().unwrap_or_default(), &env),
        };
        env.retain(|(name, _)| *name != var.name);
        env.push((var.name.clone(), value));
    }
    env
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
    use rudder_api::{
        core::{EnvVar, EnvVarSource, ObjectFieldSelector},
        meta::ObjectMeta,
    };

    use super::*;

    #[test]
    fn env_values_expand_earlier_variables_and_read_pod_fields() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: "web-1".into(),
                namespace: "shop".into(),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let field = |path: &str| EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            }),
            ..EnvVarSource::default()
        };
        let container = Container {
            env: vec![
                EnvVar {
                    name: "MY_IP".into(),
                    value_from: Some(field("status.podIP")),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "NODE".into(),
                    value_from: Some(field("status.hostIP")),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "URL".into(),
                    value: Some("http://$(MY_IP):80/$(DB_SERVICE_HOST)/$(LATER)".into()),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "LATER".into(),
                    value: Some("x".into()),
                    ..EnvVar::default()
                },
            ],
            ..Container::default()
        };
        let base = base_env(&pod, Some(Ipv4Addr::new(10, 244, 1, 5)), &[]);
        let services = vec![("DB_SERVICE_HOST".to_owned(), "10.96.0.9".to_owned())];
        let addresses = Addresses {
            pod_ip: Some("10.244.1.5"),
            host_ip: Some("198.18.0.11"),
        };
        let env: std::collections::BTreeMap<_, _> =
            container_env(&pod, &container, &base, services, addresses)
                .into_iter()
                .collect();
        assert_eq!(env["HOSTNAME"], "web-1");
        assert_eq!(env["MY_IP"], "10.244.1.5");
        assert_eq!(env["NODE"], "198.18.0.11");
        // As in Kubernetes, a reference to a later variable stays as written.
        assert_eq!(env["URL"], "http://10.244.1.5:80/10.96.0.9/$(LATER)");
    }

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
