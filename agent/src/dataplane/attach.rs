//! Attaching programs to interfaces with pinned bpf_links, so they keep
//! running when the agent exits, and a restarted agent switches them to
//! its freshly loaded programs atomically (BPF_LINK_UPDATE), without a gap.

use std::{io, os::fd::AsFd, path::Path};

use aya::{
    programs::{
        LinkOrder, TcAttachType, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
    sys::SyscallError,
};

use super::{Dataplane, DataplaneError, error_chain, links_dir, sys};

impl Dataplane {
    /// Attaches the tc program `program` to `iface` (TCX, appended after
    /// programs already there) and pins the link; a link already pinned for
    /// the pair is switched to this agent's program instead.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attach.
    pub fn attach_tc(
        &mut self,
        program: &'static str,
        iface: &str,
        attach_type: TcAttachType,
    ) -> Result<(), DataplaneError> {
        let pin = links_dir(&self.dir).join(link_pin_name(program, iface));
        let fail = |reason: String| DataplaneError::Attach {
            program,
            iface: iface.to_owned(),
            reason,
        };
        let classifier = self.classifier(program)?;
        let id = match pinned_link(&pin).map_err(|e| fail(error_chain(&e)))? {
            Some(old) => {
                let link = SchedClassifierLink::try_from(old).map_err(|e| fail(error_chain(&e)))?;
                classifier.attach_to_link(link)
            }
            None => classifier.attach_with_options(
                iface,
                attach_type,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            ),
        }
        .map_err(|e| fail(error_chain(&e)))?;
        let link: FdLink = classifier
            .take_link(id)
            .map_err(|e| fail(error_chain(&e)))?
            .try_into()
            .map_err(|e: LinkError| fail(error_chain(&e)))?;
        keep_pinned(link, &pin).map_err(fail)
    }

    /// Attaches the XDP program `program` to `iface` (native mode where the
    /// driver supports it) and pins the link, switching a pinned one.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attach.
    pub fn attach_xdp(&mut self, program: &'static str, iface: &str) -> Result<(), DataplaneError> {
        let pin = links_dir(&self.dir).join(link_pin_name(program, iface));
        let fail = |reason: String| DataplaneError::Attach {
            program,
            iface: iface.to_owned(),
            reason,
        };
        let xdp = self.xdp(program)?;
        let id = match pinned_link(&pin).map_err(|e| fail(error_chain(&e)))? {
            Some(old) => {
                let link = XdpLink::try_from(old).map_err(|e| fail(error_chain(&e)))?;
                xdp.attach_to_link(link)
            }
            None => xdp.attach(iface, XdpMode::default()),
        }
        .map_err(|e| fail(error_chain(&e)))?;
        let link: FdLink = xdp
            .take_link(id)
            .map_err(|e| fail(error_chain(&e)))?
            .try_into()
            .map_err(|e: LinkError| fail(error_chain(&e)))?;
        keep_pinned(link, &pin).map_err(fail)
    }
}

/// Detaches `program` from `iface` at once (BPF_LINK_DETACH), then removes
/// its pin. Removing the pin alone would leave the detach to a deferred
/// kernel work item. Nothing pinned is not an error.
///
/// # Errors
/// When the pinned link cannot be opened, detached or unpinned.
pub fn detach(dir: &Path, program: &'static str, iface: &str) -> Result<(), DataplaneError> {
    let pin = links_dir(dir).join(link_pin_name(program, iface));
    let fail = |reason: String| DataplaneError::Attach {
        program,
        iface: iface.to_owned(),
        reason: format!("detaching {}: {reason}", pin.display()),
    };
    let link = match sys::obj_get(&pin) {
        Ok(link) => link,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(fail(err.to_string())),
    };
    sys::link_detach(link.as_fd()).map_err(|e| fail(e.to_string()))?;
    std::fs::remove_file(&pin).map_err(|e| fail(e.to_string()))
}

/// The link pinned at `pin`, if there is one.
fn pinned_link(pin: &Path) -> Result<Option<FdLink>, LinkError> {
    match PinnedLink::from_pin(pin) {
        Ok(link) => Ok(Some(FdLink::from(link))),
        Err(LinkError::SyscallError(SyscallError { io_error, .. }))
            if io_error.kind() == io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Pins `link` at `pin` unless that pin already holds it (after an atomic
/// program switch the pinned link is the same kernel object).
fn keep_pinned(link: FdLink, pin: &Path) -> Result<(), String> {
    if pin.exists() {
        return Ok(());
    }
    link.pin(pin)
        .map(drop)
        .map_err(|e| format!("pinning at {}: {}", pin.display(), error_chain(&e)))
}

/// File name of the link pinning `program` to `iface`: `<program>@<iface>`.
/// bpffs refuses names containing '.', which interface names may contain
/// (VLANs: `eth0.100`) but never ':', so dots become colons.
fn link_pin_name(program: &str, iface: &str) -> String {
    format!("{program}@{}", iface.replace('.', ":"))
}

#[cfg(test)]
mod tests {
    use super::link_pin_name;

    #[test]
    fn link_pin_names_avoid_dots_bpffs_refuses() {
        assert_eq!(link_pin_name("count_xdp", "eth0"), "count_xdp@eth0");
        assert_eq!(link_pin_name("count_xdp", "eth0.100"), "count_xdp@eth0:100");
    }
}
