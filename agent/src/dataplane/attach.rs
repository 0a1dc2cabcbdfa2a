//! Attaching programs to interfaces with pinned bpf_links, so they keep
//! running when the agent exits, and a restarted agent switches them to
//! its freshly loaded programs atomically (BPF_LINK_UPDATE), without a gap.

use std::{io, os::fd::AsFd, path::Path};

use aya::{
    programs::{
        CgroupAttachMode, LinkOrder, TcAttachType, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
        xdp::XdpLink,
    },
    sys::SyscallError,
};

use dataplane_common::program_names;

use super::{Dataplane, DataplaneError, TcAttach, links_dir, sys};

/// Why attaching or detaching a program failed.
#[expect(
    missing_docs,
    reason = "fields name what failed (a path, map, program or interface) and its cause"
)]
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// aya refused the link (a pinned one of another type, say).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// aya or the kernel refused the attach.
    #[error(transparent)]
    Program(#[from] aya::programs::ProgramError),
    /// Adding a tc filter failed, and no filter of rudder's is there to
    /// take the program instead.
    #[error("adding a filter ({added}), then finding the one there")]
    FindFilter {
        /// Why adding failed (boxed: aya's errors are large).
        added: Box<aya::programs::ProgramError>,
        /// Why finding an existing filter failed.
        #[source]
        source: io::Error,
    },
    /// Adding a tc filter failed, and so did replacing the program of the
    /// one already there.
    #[error("adding a filter ({added}), then replacing the one there")]
    ReplaceFilter {
        /// Why adding failed (boxed: aya's errors are large).
        added: Box<aya::programs::ProgramError>,
        /// Why replacing failed.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The link cannot be pinned.
    #[error("pinning at {}", .path.display())]
    Pin {
        path: std::path::PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    /// The cgroup directory cannot be opened.
    #[error("opening the cgroup")]
    Cgroup(#[source] io::Error),
    /// BPF_OBJ_GET or BPF_LINK_UPDATE on a pinned link failed.
    #[error("switching the program of the link pinned at {}", .path.display())]
    SwitchProgram {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    /// BPF_OBJ_GET, BPF_LINK_DETACH or unpinning failed.
    #[error("detaching {}", .path.display())]
    Detach {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Dataplane {
    /// Attaches the tc program `program` to `iface` as this dataplane's
    /// [`TcAttach`] says: a pinned TCX link (appended after programs
    /// already there) or, on kernels without TCX, a clsact filter (see
    /// [`Self::attach_tc_filter`]). A link already pinned for the pair is
    /// switched to this agent's program instead.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attach.
    pub fn attach_tc(
        &mut self,
        program: &'static str,
        iface: &str,
        attach_type: TcAttachType,
    ) -> Result<(), DataplaneError> {
        match self.tc_attach {
            TcAttach::Tcx => self.attach_tcx(program, iface, attach_type),
            TcAttach::Filter => self.attach_tc_filter(program, iface, attach_type),
        }
    }

    /// [`Self::attach_tc`] with a pinned TCX link.
    fn attach_tcx(
        &mut self,
        program: &'static str,
        iface: &str,
        attach_type: TcAttachType,
    ) -> Result<(), DataplaneError> {
        let pin = links_dir(&self.dir).join(link_pin_name(program, iface));
        let fail = attach_error(program, iface);
        let classifier = self.classifier(program)?;
        let switched = match pinned_link(&pin).map_err(|e| fail(e.into()))? {
            Some(old) => {
                let link = SchedClassifierLink::try_from(old).map_err(|e| fail(e.into()))?;
                forget_if_severed(classifier.attach_to_link(link), &pin)
            }
            None => None,
        };
        let id = match switched {
            Some(result) => result,
            None => classifier.attach_with_options(
                iface,
                attach_type,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            ),
        }
        .map_err(|e| fail(e.into()))?;
        let link: FdLink = classifier
            .take_link(id)
            .map_err(|e| fail(e.into()))?
            .try_into()
            .map_err(|e: LinkError| fail(e.into()))?;
        keep_pinned(link, &pin).map_err(fail)
    }

    /// Attaches the tc program `program` to `iface` as a clsact filter
    /// over netlink at rudder's fixed priority and handle; a filter already
    /// there (a previous agent's) gets this agent's program in place,
    /// atomically. Used for pods' veths instead of TCX: every TCX attach
    /// waits for an RCU grace period with the kernel's RTNL lock held
    /// (about 12 ms here), which stalls every CNI ADD on the machine
    /// behind it; a filter takes well under a millisecond. A veth a
    /// previous agent attached with a pinned TCX link keeps that link,
    /// switched to this agent's program, so it never runs twice.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attach.
    pub fn attach_tc_filter(
        &mut self,
        program: &'static str,
        iface: &str,
        attach_type: TcAttachType,
    ) -> Result<(), DataplaneError> {
        let pin = links_dir(&self.dir).join(link_pin_name(program, iface));
        if pin.exists() {
            return self.attach_tcx(program, iface, attach_type);
        }
        let fail = attach_error(program, iface);
        // Already there on a veth that had programs before: fine.
        let _ = tc::qdisc_add_clsact(iface);
        let classifier = self.classifier(program)?;
        let options = || {
            TcAttachOptions::Netlink(NlOptions {
                priority: filter_priority(program),
                handle: FILTER_HANDLE,
                classid: None,
            })
        };
        let id = match classifier.attach_with_options(iface, attach_type, options()) {
            Ok(id) => id,
            Err(added) => {
                let added = Box::new(added);
                // Most likely a filter is there already: replace its program.
                let existing = match SchedClassifierLink::attached(
                    iface,
                    attach_type,
                    filter_priority(program),
                    FILTER_HANDLE,
                    None,
                ) {
                    Ok(existing) => existing,
                    Err(source) => return Err(fail(AttachError::FindFilter { added, source })),
                };
                classifier
                    .attach_to_link(existing)
                    .map_err(|source| fail(AttachError::ReplaceFilter { added, source }))?
            }
        };
        let link = classifier.take_link(id).map_err(|e| fail(e.into()))?;
        // Dropping the link would detach the filter; it is meant to outlive
        // this agent, as the pinned links do (it goes with its veth).
        std::mem::forget(link);
        Ok(())
    }

    /// Attaches the XDP program `program` to `iface` (native mode where the
    /// driver supports it) and pins the link, switching a pinned one.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attach.
    pub fn attach_xdp(&mut self, program: &'static str, iface: &str) -> Result<(), DataplaneError> {
        let pin = links_dir(&self.dir).join(link_pin_name(program, iface));
        let fail = attach_error(program, iface);
        let xdp = self.xdp(program)?;
        let switched = match pinned_link(&pin).map_err(|e| fail(e.into()))? {
            Some(old) => {
                let link = XdpLink::try_from(old).map_err(|e| fail(e.into()))?;
                forget_if_severed(xdp.attach_to_link(link), &pin)
            }
            None => None,
        };
        let id = match switched {
            Some(result) => result,
            // Native first, to know (and log) which mode this uplink got.
            None => xdp.attach(iface, XdpMode::Driver).inspect(|_| {
                tracing::info!(program, iface, "XDP attached in native (driver) mode");
            }).or_else(|native| {
                tracing::info!(program, iface, error = %native, "no native XDP on this interface; attaching in generic (skb) mode");
                xdp.attach(iface, XdpMode::Skb)
            }),
        }
        .map_err(|e| fail(e.into()))?;
        let link: FdLink = xdp
            .take_link(id)
            .map_err(|e| fail(e.into()))?
            .try_into()
            .map_err(|e: LinkError| fail(e.into()))?;
        keep_pinned(link, &pin).map_err(fail)
    }
}

impl Dataplane {
    /// Attaches the cgroup sock_addr program `program` to the cgroup v2
    /// directory `cgroup` (processes in it and its descendants), alongside
    /// other programs there, and pins the link; a link already pinned for
    /// the pair is switched to this agent's program.
    ///
    /// # Errors
    /// When the cgroup cannot be opened or the kernel refuses the attach.
    pub fn attach_cgroup(
        &mut self,
        program: &'static str,
        cgroup: &Path,
    ) -> Result<(), DataplaneError> {
        let pin = links_dir(&self.dir).join(link_pin_name(program, &cgroup_label(cgroup)));
        let shown = cgroup.display().to_string();
        let fail = attach_error(program, &shown);
        let sock_addr = self.cgroup_sock_addr(program)?;
        if let Some(old) = pinned_link(&pin).map_err(|e| fail(e.into()))? {
            // aya has no attach_to_link for these links: switch the program
            // with BPF_LINK_UPDATE on the pinned link's fd.
            let switch_error = |source| AttachError::SwitchProgram {
                path: pin.clone(),
                source,
            };
            let link = sys::obj_get(&pin).map_err(|e| fail(switch_error(e)))?;
            drop(old);
            let prog = sock_addr.fd().map_err(|e| fail(e.into()))?;
            return sys::link_update(link.as_fd(), prog.as_fd()).map_err(|e| fail(switch_error(e)));
        }
        let dir = std::fs::File::open(cgroup).map_err(|e| fail(AttachError::Cgroup(e)))?;
        // bpf_link cgroup attachments always coexist with other programs;
        // the kernel rejects any explicit mode flag on them (EINVAL).
        let id = sock_addr
            .attach(&dir, CgroupAttachMode::Single)
            .map_err(|e| fail(e.into()))?;
        let link: FdLink = sock_addr
            .take_link(id)
            .map_err(|e| fail(e.into()))?
            .try_into()
            .map_err(|e: LinkError| fail(e.into()))?;
        keep_pinned(link, &pin).map_err(fail)
    }
}

/// Makes the error of attaching `program` to `iface` from its cause.
fn attach_error<'a>(
    program: &'static str,
    iface: &'a str,
) -> impl Fn(AttachError) -> DataplaneError + 'a {
    move |source| DataplaneError::Attach {
        program,
        iface: iface.to_owned(),
        source: Box::new(source),
    }
}

/// Pin label for a cgroup path: `/` cannot be in a file name.
fn cgroup_label(cgroup: &Path) -> String {
    format!("cgroup{}", cgroup.display()).replace('/', "%")
}

/// Detaches `program` from the cgroup `cgroup` (see [`detach`]).
///
/// # Errors
/// As [`detach`].
pub fn detach_cgroup(
    dir: &Path,
    program: &'static str,
    cgroup: &Path,
) -> Result<(), DataplaneError> {
    detach(dir, program, &cgroup_label(cgroup))
}

/// tc priority of rudder's filters (see [`Dataplane::attach_tc_filter`]):
/// fixed, so a restarted agent finds its filters and replaces them.
const FILTER_PRIORITY: u16 = 1;
/// tc priority of the counting programs' filters: they share the uplink
/// with service translation where TCX is missing, after it.
const COUNTER_FILTER_PRIORITY: u16 = 2;

/// The tc priority of `program`'s filter: one per program that may share
/// an interface and hook with another.
fn filter_priority(program: &str) -> u16 {
    match program {
        program_names::COUNT_TC_INGRESS | program_names::COUNT_TC_EGRESS => COUNTER_FILTER_PRIORITY,
        _ => FILTER_PRIORITY,
    }
}
/// tc handle of rudder's filters, for the same reason.
const FILTER_HANDLE: TcHandle = TcHandle::new(0, 1);

/// Detaches rudder's filter (see [`Dataplane::attach_tc_filter`]) from
/// `iface`, if there is one.
pub fn detach_tc_filter(iface: &str, attach_type: TcAttachType) {
    detach_program_filter(iface, "", attach_type);
}

/// Detaches `program`'s filter from `iface`, if there is one.
pub fn detach_program_filter(iface: &str, program: &str, attach_type: TcAttachType) {
    // Dropping the link detaches it; an interface or filter already gone
    // leaves nothing to do.
    drop(SchedClassifierLink::attached(
        iface,
        attach_type,
        filter_priority(program),
        FILTER_HANDLE,
        None,
    ));
}

/// Detaches `program` from `iface` at once (BPF_LINK_DETACH), then removes
/// its pin. Removing the pin alone would leave the detach to a deferred
/// kernel work item. Nothing pinned is not an error.
///
/// # Errors
/// When the pinned link cannot be opened, detached or unpinned.
pub fn detach(dir: &Path, program: &'static str, iface: &str) -> Result<(), DataplaneError> {
    let pin = links_dir(dir).join(link_pin_name(program, iface));
    let fail = |source| DataplaneError::Attach {
        program,
        iface: iface.to_owned(),
        source: Box::new(AttachError::Detach {
            path: pin.clone(),
            source,
        }),
    };
    let link = match sys::obj_get(&pin) {
        Ok(link) => link,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(fail(err)),
    };
    sys::link_detach(link.as_fd()).map_err(fail)?;
    std::fs::remove_file(&pin).map_err(fail)
}

/// The result of switching a pinned link, or `None` when the link was
/// severed (its interface was deleted, e.g. a node or pod recreated under
/// the same name): its pin is removed so the caller attaches afresh.
fn forget_if_severed<T>(
    result: Result<T, aya::programs::ProgramError>,
    pin: &Path,
) -> Option<Result<T, aya::programs::ProgramError>> {
    let severed = matches!(
        &result,
        Err(aya::programs::ProgramError::SyscallError(SyscallError { io_error, .. }))
            if io_error.raw_os_error() == Some(libc::ENOLINK)
    );
    if severed {
        tracing::info!(pin = %pin.display(), "pinned link severed (its interface is gone); attaching anew");
        let _ = std::fs::remove_file(pin);
        return None;
    }
    Some(result)
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
fn keep_pinned(link: FdLink, pin: &Path) -> Result<(), AttachError> {
    if pin.exists() {
        return Ok(());
    }
    link.pin(pin).map(drop).map_err(|source| AttachError::Pin {
        path: pin.to_path_buf(),
        source,
    })
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
