//! The downward API's field paths (`env[].valueFrom.fieldRef.fieldPath`):
//! which a pod may name, and what each reads. Validation refuses a path not
//! listed here; the agent reads the value through [`PodField::value`] when
//! it starts a container, so the two can never disagree.

use crate::core::Pod;

/// A pod field the downward API can put in an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodField {
    /// `metadata.name`.
    Name,
    /// `metadata.namespace`.
    Namespace,
    /// `metadata.uid`.
    Uid,
    /// `metadata.labels['<key>']`.
    Label(String),
    /// `metadata.annotations['<key>']`.
    Annotation(String),
    /// `spec.nodeName`.
    NodeName,
    /// `status.hostIP` (and `status.hostIPs`: one address).
    HostIp,
    /// `status.podIP` (and `status.podIPs`: one address).
    PodIp,
}

/// What a field's value is read from besides the pod object: the addresses
/// the node knows before the status says them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Addresses<'a> {
    /// The pod's address.
    pub pod_ip: Option<&'a str>,
    /// The node's address.
    pub host_ip: Option<&'a str>,
}

/// The paths [`PodField::parse`] reads, for error messages.
pub const SUPPORTED: &str = "metadata.name, metadata.namespace, metadata.uid, \
     metadata.labels['<key>'], metadata.annotations['<key>'], spec.nodeName, \
     status.hostIP, status.hostIPs, status.podIP, status.podIPs";

impl PodField {
    /// Reads a field path, as Kubernetes writes them; `None` for a path
    /// the downward API does not offer.
    pub fn parse(path: &str) -> Option<Self> {
        let subscript = |prefix: &str| -> Option<String> {
            let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
            (!key.is_empty() && !key.contains('\'')).then(|| key.to_owned())
        };
        Some(match path {
            "metadata.name" => PodField::Name,
            "metadata.namespace" => PodField::Namespace,
            "metadata.uid" => PodField::Uid,
            "spec.nodeName" => PodField::NodeName,
            "status.hostIP" | "status.hostIPs" => PodField::HostIp,
            "status.podIP" | "status.podIPs" => PodField::PodIp,
            _ => {
                if let Some(key) = subscript("metadata.labels['") {
                    PodField::Label(key)
                } else {
                    PodField::Annotation(subscript("metadata.annotations['")?)
                }
            }
        })
    }

    /// The field's value for `pod` ("" where the pod has none, as the
    /// kubelet gives).
    pub fn value(&self, pod: &Pod, addresses: Addresses<'_>) -> String {
        let meta = &pod.metadata;
        let status_ip = |pick: fn(&crate::core::PodStatus) -> Option<&String>| {
            pod.status.as_ref().and_then(pick).cloned()
        };
        match self {
            PodField::Name => meta.name.clone(),
            PodField::Namespace => meta.namespace.clone(),
            PodField::Uid => meta.uid.clone(),
            PodField::Label(key) => meta.labels.get(key).cloned().unwrap_or_default(),
            PodField::Annotation(key) => meta.annotations.get(key).cloned().unwrap_or_default(),
            PodField::NodeName => pod.spec.node_name.clone().unwrap_or_default(),
            PodField::HostIp => addresses
                .host_ip
                .map(str::to_owned)
                .or_else(|| status_ip(|s| s.host_ip.as_ref()))
                .unwrap_or_default(),
            PodField::PodIp => addresses
                .pod_ip
                .map(str::to_owned)
                .or_else(|| status_ip(|s| s.pod_ip.as_ref()))
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectMeta;

    #[test]
    fn paths_kubernetes_offers_are_read_and_others_refused() {
        assert_eq!(PodField::parse("metadata.name"), Some(PodField::Name));
        assert_eq!(
            PodField::parse("metadata.labels['app']"),
            Some(PodField::Label("app".into()))
        );
        assert_eq!(
            PodField::parse("metadata.annotations['a.b/c']"),
            Some(PodField::Annotation("a.b/c".into()))
        );
        for bad in [
            "metadata.labels",
            "metadata.labels['']",
            "spec.containers",
            "status.phase",
            "",
        ] {
            assert_eq!(PodField::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_come_from_the_pod_and_the_node() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: "web-1".into(),
                namespace: "shop".into(),
                labels: [("app".to_owned(), "web".to_owned())].into(),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let addresses = Addresses {
            pod_ip: Some("10.244.1.5"),
            host_ip: Some("198.18.0.11"),
        };
        let read = |path| {
            PodField::parse(path)
                .expect("supported")
                .value(&pod, addresses)
        };
        assert_eq!(read("metadata.name"), "web-1");
        assert_eq!(read("metadata.namespace"), "shop");
        assert_eq!(read("metadata.labels['app']"), "web");
        assert_eq!(read("metadata.labels['missing']"), "");
        assert_eq!(read("status.podIP"), "10.244.1.5");
        assert_eq!(read("status.hostIP"), "198.18.0.11");
    }
}
