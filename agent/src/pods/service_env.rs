//! The Service environment variables Kubernetes gives every container:
//! `<NAME>_SERVICE_HOST`/`_SERVICE_PORT` (and `_SERVICE_PORT_<PORTNAME>`) for
//! each Service of the pod's namespace that has a ClusterIP, plus the
//! docker-link style `<NAME>_PORT_<port>_<PROTO>_ADDR` family unless the
//! pod sets `enableServiceLinks: false`. The node-sync stream keeps the
//! directory current; a container reads it when it starts, so (as in
//! Kubernetes) it sees the Services that existed then.

use std::{
    collections::BTreeMap,
    sync::{Arc, PoisonError, RwLock},
};

use rudder_api::{
    core::Service,
    facts::{ObjectExt, ObjectRef},
};

/// What the variables need of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    cluster_ip: String,
    /// `(name, port, protocol)` in the Service's order.
    ports: Vec<(Option<String>, i64, String)>,
}

impl Entry {
    /// `None` for a Service with no ClusterIP (headless, ExternalName).
    fn of(service: &Service) -> Option<Self> {
        let ip = service.spec.cluster_ip.as_deref()?;
        if ip.is_empty() || ip == "None" || service.spec.ports.is_empty() {
            return None;
        }
        Some(Entry {
            cluster_ip: ip.to_owned(),
            ports: service
                .spec
                .ports
                .iter()
                .map(|p| {
                    let protocol = p.protocol.as_deref().unwrap_or("TCP");
                    (p.name.clone(), p.port, protocol.to_owned())
                })
                .collect(),
        })
    }
}

/// The cluster's Services as environment variables, shared between the
/// node-sync stream (which writes) and the pod runtime (which reads).
#[derive(Debug, Clone, Default)]
pub struct ServiceEnvironment {
    services: Arc<RwLock<BTreeMap<ObjectRef, Entry>>>,
}

impl ServiceEnvironment {
    /// Replaces everything (a snapshot).
    pub fn replace<'a>(&self, services: impl IntoIterator<Item = &'a Service>) {
        let fresh = services
            .into_iter()
            .filter_map(|s| Some((s.key(), Entry::of(s)?)))
            .collect();
        *self
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// One Service created or changed.
    pub fn upsert(&self, service: &Service) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match Entry::of(service) {
            Some(entry) => services.insert(service.key(), entry),
            None => services.remove(&service.key()),
        };
    }

    /// One Service deleted.
    pub fn remove(&self, service: &ObjectRef) {
        self.services
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(service);
    }

    /// The variables for a container of a pod in `namespace`.
    pub fn vars(&self, namespace: &str, links: bool) -> Vec<(String, String)> {
        let services = self.services.read().unwrap_or_else(PoisonError::into_inner);
        let mut vars = Vec::new();
        for (key, entry) in services.iter().filter(|(k, _)| k.namespace == namespace) {
            push_vars(&mut vars, &key.name, entry, links);
        }
        vars
    }
}

/// `my-svc` becomes `MY_SVC`, as the kubelet names them.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

fn push_vars(vars: &mut Vec<(String, String)>, name: &str, entry: &Entry, links: bool) {
    let prefix = env_name(name);
    let ip = &entry.cluster_ip;
    let Some((_, first_port, first_protocol)) = entry.ports.first() else {
        return;
    };
    vars.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
    vars.push((format!("{prefix}_SERVICE_PORT"), first_port.to_string()));
    for (port_name, port, _) in &entry.ports {
        if let Some(port_name) = port_name.as_deref().filter(|n| !n.is_empty()) {
            vars.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(port_name)),
                port.to_string(),
            ));
        }
    }
    if !links {
        return;
    }
    let scheme = |protocol: &str| protocol.to_ascii_lowercase();
    vars.push((
        format!("{prefix}_PORT"),
        format!("{}://{ip}:{first_port}", scheme(first_protocol)),
    ));
    for (_, port, protocol) in &entry.ports {
        let base = format!("{prefix}_PORT_{port}_{}", protocol.to_ascii_uppercase());
        vars.push((base.clone(), format!("{}://{ip}:{port}", scheme(protocol))));
        vars.push((format!("{base}_PROTO"), scheme(protocol)));
        vars.push((format!("{base}_PORT"), port.to_string()));
        vars.push((format!("{base}_ADDR"), ip.clone()));
    }
}

#[cfg(test)]
mod tests {
    use rudder_api::{
        core::{ServicePort, ServiceSpec},
        meta::ObjectMeta,
    };

    use super::*;

    fn service(namespace: &str, name: &str, ip: &str, ports: &[(Option<&str>, i64)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: namespace.into(),
                ..ObjectMeta::default()
            },
            spec: ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: n.map(str::to_owned),
                        port: *p,
                        ..ServicePort::default()
                    })
                    .collect(),
                ..ServiceSpec::default()
            },
            ..Service::default()
        }
    }

    #[test]
    fn a_service_gives_the_variables_kubernetes_gives() {
        let env = ServiceEnvironment::default();
        env.replace(&[
            service(
                "default",
                "web-front",
                "10.96.0.10",
                &[(Some("http"), 80), (None, 443)],
            ),
            service("other", "db", "10.96.0.11", &[(None, 5432)]),
            service("default", "headless", "None", &[(None, 80)]),
        ]);
        let vars: BTreeMap<String, String> = env.vars("default", true).into_iter().collect();
        assert_eq!(vars["WEB_FRONT_SERVICE_HOST"], "10.96.0.10");
        assert_eq!(vars["WEB_FRONT_SERVICE_PORT"], "80");
        assert_eq!(vars["WEB_FRONT_SERVICE_PORT_HTTP"], "80");
        assert_eq!(vars["WEB_FRONT_PORT"], "tcp://10.96.0.10:80");
        assert_eq!(vars["WEB_FRONT_PORT_443_TCP"], "tcp://10.96.0.10:443");
        assert_eq!(vars["WEB_FRONT_PORT_443_TCP_ADDR"], "10.96.0.10");
        assert_eq!(vars["WEB_FRONT_PORT_443_TCP_PORT"], "443");
        assert_eq!(vars["WEB_FRONT_PORT_443_TCP_PROTO"], "tcp");
        assert!(
            !vars
                .keys()
                .any(|k| k.starts_with("DB_") || k.starts_with("HEADLESS_"))
        );

        let without_links: BTreeMap<String, String> =
            env.vars("default", false).into_iter().collect();
        assert_eq!(without_links.len(), 3, "{without_links:?}");

        env.remove(&ObjectRef::new("default", "web-front"));
        assert!(env.vars("default", true).is_empty());
    }
}
