//! Service translation on the pod bridge's ports, attached as pods come
//! and forgotten as they go, followed through link notifications.

use std::{
    collections::BTreeSet,
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use rudder_netlink::{LinkMonitor, NetlinkError, RouteSocket};
use tokio::io::unix::AsyncFd;

use super::lock;
use crate::dataplane::{Dataplane, DataplaneError, services::forget_pod_interface};

/// How soon the port follower tries again an attach that failed (or a
/// subscription to link notifications that could not be made).
const RETRY: Duration = Duration::from_millis(100);

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

    /// Follows the bridge's ports, forever: a full look at start, then
    /// again whenever the kernel reports a link change (a veth joining or
    /// leaving the bridge, the bridge itself appearing), and after
    /// [`RETRY`] while an attach that failed waits to be tried again.
    /// Looking and attaching make system calls, so each look runs in place
    /// of this task's worker.
    pub(super) async fn follow(ports: Arc<Self>) {
        loop {
            // Subscribed before looking, so no change falls between.
            let mut monitor = match subscribe() {
                Ok(monitor) => monitor,
                Err(err) => {
                    tracing::warn!(%err, "subscribing to link notifications");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let mut look = true;
            loop {
                if look {
                    look = !tokio::task::block_in_place(|| ports.sync());
                }
                let readable = if look {
                    match tokio::time::timeout(RETRY, monitor.readable_mut()).await {
                        Ok(readable) => readable,
                        Err(_) => continue,
                    }
                } else {
                    monitor.readable_mut().await
                };
                let drained = readable
                    .map_err(NetlinkError::Socket)
                    .and_then(|mut ready| {
                        let events = ready.get_inner_mut().drain()?;
                        // Drained to EAGAIN: the next notification wakes us.
                        ready.clear_ready();
                        Ok(events)
                    });
                match drained {
                    // Any change may concern the bridge: a port's release
                    // and its deletion come as separate messages, and a
                    // lost notification is a change not seen.
                    Ok(events) => look |= !events.is_empty(),
                    Err(err) => {
                        tracing::warn!(%err, "reading link notifications");
                        break;
                    }
                }
            }
        }
    }

    /// Attaches translation to ports not attached yet and forgets the
    /// ports that are gone. A port whose attach failed stays unattached;
    /// `false` says so (or that the ports could not be listed), so the
    /// caller looks again soon.
    fn sync(&self) -> bool {
        let current = match bridge_ports(&self.bridge) {
            Ok(Some(ports)) => ports,
            // Its creation (by the first pod's CNI ADD) will be notified.
            Ok(None) => {
                tracing::debug!(bridge = %self.bridge, "no pod bridge yet");
                return true;
            }
            Err(err) => {
                tracing::warn!(%err, bridge = %self.bridge, "listing the pod bridge's ports");
                return false;
            }
        };
        let attached = lock(&self.attached).clone();
        let mut complete = true;
        for port in current.difference(&attached) {
            match self.attach(port) {
                Ok(()) => tracing::debug!(port, "pod port attached"),
                Err(err) => {
                    tracing::warn!(%err, port, "attaching a pod port");
                    complete = false;
                }
            }
        }
        for port in attached.difference(&current) {
            if let Err(err) = forget_pod_interface(&self.dir, port) {
                tracing::warn!(%err, port, "forgetting a pod port");
            }
            lock(&self.attached).remove(port);
        }
        complete
    }
}

/// Link notifications of this thread's namespace, for the runtime to wait
/// on.
fn subscribe() -> io::Result<AsyncFd<LinkMonitor>> {
    let monitor = LinkMonitor::open().map_err(io::Error::other)?;
    // SAFETY: a LinkMonitor owns its socket, so `as_raw_fd()` names the
    // same open descriptor for as long as the monitor lives, and the
    // AsyncFd owns the monitor.
    Ok(unsafe { AsyncFd::register(monitor) }?)
}

/// Names of the interfaces enslaved to `bridge`; `None` when there is no
/// such link.
fn bridge_ports(bridge: &str) -> Result<Option<BTreeSet<String>>, NetlinkError> {
    let mut socket = RouteSocket::open()?;
    let Some(bridge) = socket.link(bridge)? else {
        return Ok(None);
    };
    Ok(Some(
        socket
            .ports_of(bridge.index)?
            .into_iter()
            .map(|port| port.name)
            .collect(),
    ))
}
