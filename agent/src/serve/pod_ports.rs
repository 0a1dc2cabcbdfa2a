//! Service translation on the pod bridge's ports, attached as pods come
//! and forgotten as they go.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Result, bail};

use super::lock;
use crate::dataplane::{Dataplane, DataplaneError, services::forget_pod_interface};

/// How often the pod bridge's ports are looked at.
const POD_PORT_POLL: Duration = Duration::from_millis(100);

/// The pod bridge's ports and the service translation on them. A new
/// pod's veth gets it from the pod runtime's hook, before the pod's
/// containers start; a task following the bridge attaches whatever the
/// hook did not (pods adopted after an agent restart, veths made by other
/// means, attaches that failed) and forgets ports that are gone.
pub(super) struct PodPorts {
    pub(super) dataplane: Mutex<Dataplane>,
    /// Ports that have translation attached.
    pub(super) attached: Mutex<BTreeSet<String>>,
    pub(super) bridge: String,
    /// The node's bpffs directory.
    pub(super) dir: PathBuf,
}

impl PodPorts {
    /// Attaches translation to `port` and remembers it.
    fn attach(&self, port: &str) -> Result<(), DataplaneError> {
        lock(&self.dataplane).attach_pod_interface(port)?;
        lock(&self.attached).insert(port.to_owned());
        Ok(())
    }

    /// The pod runtime's hook: every host-side interface of a new sandbox
    /// but the bridge itself is a pod's veth.
    pub(super) fn hook(ports: &Arc<Self>) -> crate::pods::HostInterfaceHook {
        let ports = Arc::clone(ports);
        crate::pods::HostInterfaceHook(Arc::new(move |iface: &str| {
            if iface == ports.bridge {
                return Ok(());
            }
            ports.attach(iface).map_err(Into::into)
        }))
    }

    /// Follows the bridge's ports, forever. Looking at them runs `ip` and
    /// attaching makes system calls, so each look runs in place of this
    /// task's worker.
    pub(super) async fn follow(ports: Arc<Self>) {
        loop {
            tokio::task::block_in_place(|| ports.sync());
            tokio::time::sleep(POD_PORT_POLL).await;
        }
    }

    /// Attaches translation to ports not attached yet and forgets the
    /// ports that are gone. A port whose attach failed stays unattached,
    /// so the next round tries again.
    fn sync(&self) {
        let current = match bridge_ports(&self.bridge) {
            Ok(ports) => ports,
            Err(err) => {
                tracing::debug!(%err, bridge = %self.bridge, "no pod bridge yet");
                return;
            }
        };
        let attached = lock(&self.attached).clone();
        for port in current.difference(&attached) {
            match self.attach(port) {
                Ok(()) => tracing::debug!(port, "pod port attached"),
                Err(err) => tracing::warn!(%err, port, "attaching a pod port"),
            }
        }
        for port in attached.difference(&current) {
            if let Err(err) = forget_pod_interface(&self.dir, port) {
                tracing::warn!(%err, port, "forgetting a pod port");
            }
            lock(&self.attached).remove(port);
        }
    }
}

/// Names of the interfaces enslaved to `bridge`.
fn bridge_ports(bridge: &str) -> Result<BTreeSet<String>> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
        .filter(|name| !name.is_empty())
        .collect())
}
