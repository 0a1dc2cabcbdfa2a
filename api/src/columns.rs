//! The columns kubectl prints per kind, computed from an object: one
//! definition shared by `rudderctl get` and the API server's `Table`
//! answers (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).
//!
//! The first columns of [`headers`] are the ones kube-apiserver gives
//! priority 0; with `wide` the priority-1 ones (`-o wide`) follow.

use std::time::SystemTime;

use serde_json::Value;

use crate::{Kind, time::parse_rfc3339};

/// Column headers of `kind`'s table.
pub fn headers(kind: Kind, wide: bool, namespaces: bool) -> Vec<&'static str> {
    let mut columns = Vec::new();
    if namespaces && kind.namespaced() {
        columns.push("NAMESPACE");
    }
    columns.extend_from_slice(match kind {
        Kind::Pod => &["NAME", "READY", "STATUS", "RESTARTS", "AGE"][..],
        Kind::Deployment => &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        Kind::ReplicaSet => &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        Kind::Service => &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        Kind::Endpoints => &["NAME", "ENDPOINTS", "AGE"],
        Kind::EndpointSlice => &["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        Kind::Node => &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        Kind::Namespace => &["NAME", "STATUS", "AGE"],
        Kind::Lease => &["NAME", "HOLDER", "AGE"],
        Kind::Event => &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        Kind::Role | Kind::ClusterRole => &["NAME", "CREATED AT"],
        Kind::RoleBinding | Kind::ClusterRoleBinding => &["NAME", "ROLE", "AGE"],
    });
    if wide {
        columns.extend_from_slice(match kind {
            Kind::Pod => &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"][..],
            Kind::Deployment | Kind::ReplicaSet => &["CONTAINERS", "IMAGES", "SELECTOR"],
            Kind::Service => &["SELECTOR"],
            Kind::Node => &["INTERNAL-IP"],
            Kind::RoleBinding | Kind::ClusterRoleBinding => &["USERS", "GROUPS", "SERVICEACCOUNTS"],
            _ => &[],
        });
    }
    columns
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn number(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(value: &str) -> String {
    if value.is_empty() {
        "<none>".to_owned()
    } else {
        value.to_owned()
    }
}

/// The STATUS kubectl prints for a pod: the reason a container is waiting
/// or terminated (`CrashLoopBackOff`, `Completed`, `Error`) wins over the
/// phase, and a pod being deleted is `Terminating`.
fn pod_status(pod: &Value, statuses: &[Value]) -> String {
    let mut status = match (text(pod, "/status/reason"), text(pod, "/status/phase")) {
        ("", "") => "Pending".to_owned(),
        ("", phase) => phase.to_owned(),
        (reason, _) => reason.to_owned(),
    };
    let mut running = false;
    // The last container with something to say decides, as in kubectl.
    for container in statuses.iter().rev() {
        let state = &container["state"];
        if let Some(reason) = state["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason.clone_into(&mut status);
        } else if state["terminated"].is_object() {
            let terminated = &state["terminated"];
            status = match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(reason) => reason.to_owned(),
                None => match terminated["exitCode"].as_i64() {
                    Some(0) => "Completed".to_owned(),
                    Some(_) => "Error".to_owned(),
                    None => match terminated["signal"].as_i64() {
                        Some(signal) => format!("Signal:{signal}"),
                        None => "Error".to_owned(),
                    },
                },
            };
        } else if state["running"].is_object() && container["ready"] == true {
            running = true;
        }
    }
    // A pod whose other containers still run is not "Completed".
    if status == "Completed" && running {
        "Running".clone_into(&mut status);
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".to_owned();
    }
    status
}

/// A pod's READINESS GATES column: `ready/total` of the gates its spec
/// names, read from the conditions of the same type; `<none>` without gates.
fn readiness_gates(pod: &Value) -> String {
    let gates: Vec<&str> = pod
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|gate| gate["conditionType"].as_str())
        .collect();
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let conditions = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let ready = gates
        .iter()
        .filter(|gate| {
            conditions
                .iter()
                .any(|c| c["type"].as_str() == Some(gate) && c["status"] == "True")
        })
        .count();
    format!("{ready}/{}", gates.len())
}

/// A Service's EXTERNAL-IP column: a LoadBalancer waits for an address as
/// `<pending>`, an ExternalName shows its name.
fn external_ip(service: &Value) -> String {
    match text(service, "/spec/type") {
        "ExternalName" => or_none(text(service, "/spec/externalName")),
        kind => {
            let ingress: Vec<&str> = service
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                .collect();
            if !ingress.is_empty() {
                ingress.join(",")
            } else if kind == "LoadBalancer" {
                "<pending>".to_owned()
            } else {
                "<none>".to_owned()
            }
        }
    }
}

/// The columns kubectl shows for an Event: last seen (with the count
/// when it repeated), type, reason, `kind/name` of the object, message.
pub fn event_columns(event: &Value) -> (String, String, String, String, String) {
    let last = [
        "/lastTimestamp",
        "/firstTimestamp",
        "/metadata/creationTimestamp",
    ]
    .into_iter()
    .map(|pointer| text(event, pointer))
    .find(|t| !t.is_empty())
    .unwrap_or("");
    let count = number(event, "/count");
    let last_seen = if count > 1 {
        format!("{} (x{count})", age(last))
    } else {
        age(last)
    };
    let involved = format!(
        "{}/{}",
        text(event, "/involvedObject/kind").to_ascii_lowercase(),
        text(event, "/involvedObject/name")
    );
    (
        last_seen,
        text(event, "/type").to_owned(),
        text(event, "/reason").to_owned(),
        involved,
        text(event, "/message").to_owned(),
    )
}

/// One row of `kind`'s table for `object`.
pub fn row(kind: Kind, object: &Value, wide: bool, namespaces: bool) -> Vec<String> {
    let mut cells = Vec::new();
    if namespaces && kind.namespaced() {
        cells.push(text(object, "/metadata/namespace").to_owned());
    }
    let name = text(object, "/metadata/name").to_owned();
    let age = age(text(object, "/metadata/creationTimestamp"));
    match kind {
        Kind::Pod => {
            let statuses = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let containers = object
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .map(|s| s.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
                .sum();
            cells.extend([
                name,
                format!("{ready}/{containers}"),
                pod_status(object, &statuses),
                restarts.to_string(),
                age,
            ]);
        }
        Kind::Deployment => {
            let desired = object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            cells.extend([
                name,
                format!("{}/{desired}", number(object, "/status/readyReplicas")),
                number(object, "/status/updatedReplicas").to_string(),
                number(object, "/status/availableReplicas").to_string(),
                age,
            ]);
        }
        Kind::ReplicaSet => {
            cells.extend([
                name,
                object
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    .to_string(),
                number(object, "/status/replicas").to_string(),
                number(object, "/status/readyReplicas").to_string(),
                age,
            ]);
        }
        Kind::Service => {
            let ports: Vec<String> = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| {
                            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(node_port) => format!("{port}:{node_port}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            cells.extend([
                name,
                text(object, "/spec/type").to_owned(),
                or_none(text(object, "/spec/clusterIP")),
                external_ip(object),
                ports.join(","),
                age,
            ]);
        }
        Kind::Endpoints => {
            let mut endpoints = Vec::new();
            for subset in object
                .get("subsets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let ports: Vec<i64> = subset
                    .get("ports")
                    .and_then(Value::as_array)
                    .map(|ps| ps.iter().filter_map(|p| p.get("port")?.as_i64()).collect())
                    .unwrap_or_default();
                for address in subset
                    .get("addresses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    let ip = address.get("ip").and_then(Value::as_str).unwrap_or("");
                    for port in &ports {
                        endpoints.push(format!("{ip}:{port}"));
                    }
                }
            }
            let shown = first_three(&endpoints);
            cells.extend([name, shown, age]);
        }
        Kind::EndpointSlice => {
            let ports: Vec<String> = object
                .get("ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.get("port")?.as_i64())
                        .map(|p| p.to_string())
                        .collect()
                })
                .unwrap_or_default();
            let addresses: Vec<String> = object
                .get("endpoints")
                .and_then(Value::as_array)
                .map(|es| {
                    es.iter()
                        .filter_map(|e| e.pointer("/addresses/0")?.as_str())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let shown = first_three(&addresses);
            cells.extend([
                name,
                text(object, "/addressType").to_owned(),
                or_none(&ports.join(",")),
                shown,
                age,
            ]);
        }
        Kind::Node => {
            let ready = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                })
                .and_then(|c| c.get("status").and_then(Value::as_str))
                == Some("True");
            let mut status = if ready { "Ready" } else { "NotReady" }.to_owned();
            if object
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                == Some(true)
            {
                status.push_str(",SchedulingDisabled");
            }
            cells.extend([
                name,
                status,
                "<none>".to_owned(),
                age,
                or_none(text(object, "/status/nodeInfo/kubeletVersion")),
            ]);
        }
        Kind::Namespace => {
            cells.extend([name, text(object, "/status/phase").to_owned(), age]);
        }
        Kind::Lease => {
            cells.extend([name, or_none(text(object, "/spec/holderIdentity")), age]);
        }
        Kind::Event => {
            let (last_seen, type_, reason, involved, message) = event_columns(object);
            cells.extend([last_seen, type_, reason, involved, message]);
        }
        Kind::Role | Kind::ClusterRole => {
            cells.extend([name, text(object, "/metadata/creationTimestamp").to_owned()]);
        }
        Kind::RoleBinding | Kind::ClusterRoleBinding => {
            let role = format!(
                "{}/{}",
                text(object, "/roleRef/kind"),
                text(object, "/roleRef/name")
            );
            cells.extend([name, role, age]);
        }
    }
    if wide {
        match kind {
            Kind::Pod => cells.extend([
                or_none(text(object, "/status/podIP")),
                or_none(text(object, "/spec/nodeName")),
                or_none(text(object, "/status/nominatedNodeName")),
                readiness_gates(object),
            ]),
            Kind::Deployment | Kind::ReplicaSet => {
                let containers = object
                    .pointer("/spec/template/spec/containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let names: Vec<&str> = containers
                    .iter()
                    .filter_map(|c| c.get("name")?.as_str())
                    .collect();
                let images: Vec<&str> = containers
                    .iter()
                    .filter_map(|c| c.get("image")?.as_str())
                    .collect();
                let selector: Vec<String> = object
                    .pointer("/spec/selector/matchLabels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect()
                    })
                    .unwrap_or_default();
                cells.extend([names.join(","), images.join(","), selector.join(",")]);
            }
            Kind::Service => {
                let selector: Vec<String> = object
                    .pointer("/spec/selector")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect()
                    })
                    .unwrap_or_default();
                cells.push(or_none(&selector.join(",")));
            }
            Kind::Node => {
                let ip = object
                    .pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
                    })
                    .and_then(|x| x.get("address").and_then(Value::as_str))
                    .unwrap_or("");
                cells.push(or_none(ip));
            }
            Kind::RoleBinding | Kind::ClusterRoleBinding => {
                let subjects = object
                    .get("subjects")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                let of_kind = |kind: &str| {
                    let names: Vec<String> = subjects
                        .iter()
                        .filter(|s| s.get("kind").and_then(Value::as_str) == Some(kind))
                        .map(|s| match text(s, "/namespace") {
                            "" => text(s, "/name").to_owned(),
                            ns if kind == "ServiceAccount" => format!("{ns}/{}", text(s, "/name")),
                            _ => text(s, "/name").to_owned(),
                        })
                        .collect();
                    names.join(", ")
                };
                cells.extend([of_kind("User"), of_kind("Group"), of_kind("ServiceAccount")]);
            }
            _ => {}
        }
    }
    cells
}

/// Age like kubectl: `45s`, `12m`, `3h`, `2d`.
pub fn age(created: &str) -> String {
    let Some(created) = parse_rfc3339(created) else {
        return "<unknown>".to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(created)
        .map_or(0, |d| d.as_secs());
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// An ENDPOINTS cell as kubectl shows it: the first three, then how many
/// more (`<none>` for none).
fn first_three(items: &[String]) -> String {
    if items.len() > 3 {
        format!("{} + {} more...", items[..3].join(","), items.len() - 3)
    } else {
        or_none(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn service_row_and_padding() {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}
        });
        let row = row(Kind::Service, &svc, false, false);
        assert_eq!(
            &row[..5],
            ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP"]
        );
    }

    #[test]
    fn load_balancers_wait_as_pending_and_external_names_show_their_name() {
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer",
                        "clusterIP": "10.96.0.11", "ports": [{"port": 80, "nodePort": 30081}]}});
        assert_eq!(row(Kind::Service, &lb, false, false)[3], "<pending>");
        let mut given = lb.clone();
        given["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}});
        assert_eq!(row(Kind::Service, &given, false, false)[3], "203.0.113.9");
        let external = json!({"metadata": {"name": "db"}, "spec": {"type": "ExternalName",
                              "externalName": "db.example.com"}});
        let row = row(Kind::Service, &external, false, false);
        assert_eq!(
            (row[2].as_str(), row[3].as_str()),
            ("<none>", "db.example.com")
        );
    }

    fn pod(phase: &str, states: &[Value]) -> Value {
        let statuses: Vec<Value> = states
            .iter()
            .map(|state| {
                json!({"name": "c", "ready": state.get("running").is_some(),
                                "restartCount": 5, "state": state})
            })
            .collect();
        json!({"metadata": {"name": "p"},
               "spec": {"containers": statuses.iter().map(|_| json!({"name": "c"})).collect::<Vec<_>>()},
               "status": {"phase": phase, "containerStatuses": statuses}})
    }

    #[test]
    fn wide_pods_show_nominated_node_and_readiness_gates() {
        let mut p = pod("Running", &[json!({"running": {}})]);
        assert_eq!(headers(Kind::Pod, true, false).len(), 9);
        assert_eq!(row(Kind::Pod, &p, true, false)[7..], ["<none>", "<none>"]);
        p["spec"]["readinessGates"] = json!([{"conditionType": "a"}, {"conditionType": "b"}]);
        p["status"]["conditions"] = json!([{"type": "a", "status": "True"}]);
        p["status"]["nominatedNodeName"] = json!("n2");
        assert_eq!(row(Kind::Pod, &p, true, false)[7..], ["n2", "1/2"]);
    }

    #[test]
    fn pod_status_reads_as_kubectl_prints_it() {
        let status = |pod: &Value| row(Kind::Pod, pod, false, false)[2].clone();
        let crashing = pod(
            "Running",
            &[json!({"waiting": {"reason": "CrashLoopBackOff"}})],
        );
        assert_eq!(status(&crashing), "CrashLoopBackOff");
        assert_eq!(row(Kind::Pod, &crashing, false, false)[1], "0/1");
        assert_eq!(
            status(&pod("Succeeded", &[json!({"terminated": {"exitCode": 0}})])),
            "Completed"
        );
        assert_eq!(
            status(&pod("Failed", &[json!({"terminated": {"exitCode": 3}})])),
            "Error"
        );
        assert_eq!(
            status(&pod(
                "Failed",
                &[json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})]
            )),
            "OOMKilled"
        );
        assert_eq!(
            status(&pod("Running", &[json!({"running": {}})])),
            "Running"
        );
        let one_done = pod(
            "Running",
            &[
                json!({"terminated": {"exitCode": 0}}),
                json!({"running": {}}),
            ],
        );
        assert_eq!(
            status(&one_done),
            "Running",
            "a finished sidecar does not make the pod Completed"
        );
        let mut deleting = pod("Running", &[json!({"running": {}})]);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
        assert_eq!(status(&deleting), "Terminating");
        assert_eq!(
            status(&json!({"metadata": {"name": "p"}, "spec": {}})),
            "Pending"
        );
    }
}
