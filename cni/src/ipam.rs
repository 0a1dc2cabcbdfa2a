//! Host-local style address allocation, kept on disk so every invocation
//! (a separate process) sees the others' allocations.
//!
//! A network's directory holds one file per allocated address, named by
//! the address and holding the attachment's container id and interface
//! name; `attachments/<id>@<ifname>` indexes them the other way round so
//! DEL does not scan; `last_reserved` remembers where the previous
//! allocation stopped, so a released address is handed out again only after
//! every other free one. Every change happens under an exclusive `flock` on
//! `lock`, which is what makes concurrent invocations safe.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use crate::{
    config::IpamConf,
    env::Attachment,
    error::{CniError, Result},
};

const LOCK_FILE: &str = "lock";
const LAST_RESERVED_FILE: &str = "last_reserved";
const INDEX_DIR: &str = "attachments";

/// The allocations of one network.
#[derive(Debug)]
pub struct AllocationStore {
    dir: PathBuf,
    network: String,
}

/// Held while the store is changed; dropping it unlocks.
struct StoreLock(#[expect(dead_code, reason = "held for its lock, never read")] File);

impl AllocationStore {
    /// Opens (creating if needed) the store in `dir` for `network`.
    ///
    /// # Errors
    ///
    /// Code 5 when the directory cannot be created.
    pub fn open(dir: PathBuf, network: &str) -> Result<Self> {
        let index = dir.join(INDEX_DIR);
        std::fs::create_dir_all(&index).map_err(|e| CniError::io("cannot create", &index, e))?;
        Ok(Self {
            dir,
            network: network.to_owned(),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CniError::io("cannot open", &path, e))?;
        file.lock()
            .map_err(|e| CniError::io("cannot lock", &path, e))?;
        Ok(StoreLock(file))
    }

    fn index_path(&self, attachment: &Attachment) -> PathBuf {
        self.dir
            .join(INDEX_DIR)
            .join(format!("{}@{}", attachment.container_id, attachment.ifname))
    }

    /// Reserves the next free address of `ipam`'s range for `attachment`.
    ///
    /// # Errors
    ///
    /// [`CniError::AlreadyAllocated`] when the attachment holds one already,
    /// [`CniError::SubnetExhausted`] when none is free, code 5 on I/O errors.
    pub fn allocate(&self, attachment: &Attachment, ipam: &IpamConf) -> Result<Ipv4Addr> {
        let _lock = self.lock()?;
        if let Some(ip) = self.indexed(attachment)? {
            return Err(CniError::AlreadyAllocated {
                container_id: attachment.container_id.clone(),
                ifname: attachment.ifname.clone(),
                ip,
                network: self.network.clone(),
            });
        }
        let start = u32::from(ipam.range_start);
        let end = u32::from(ipam.range_end);
        let size = end - start + 1;
        let last = self
            .read_last_reserved()
            .map(u32::from)
            .filter(|last| (start..=end).contains(last));
        // First candidate: the one after the last reservation.
        let first = match last {
            Some(last) if last < end => last + 1 - start,
            _ => 0,
        };
        let mut taken = 0;
        for step in 0..size {
            let ip = Ipv4Addr::from(start + (first + step) % size);
            if ip == ipam.gateway {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let written = file
                        .write_all(owner_record(attachment).as_bytes())
                        .and_then(|()| std::fs::write(self.index_path(attachment), ip.to_string()))
                        .and_then(|()| {
                            std::fs::write(self.dir.join(LAST_RESERVED_FILE), ip.to_string())
                        });
                    if let Err(e) = written {
                        let _ = std::fs::remove_file(&path);
                        let _ = std::fs::remove_file(self.index_path(attachment));
                        return Err(CniError::io("cannot record allocation", path, e));
                    }
                    return Ok(ip);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => taken += 1,
                Err(e) => return Err(CniError::io("cannot create", path, e)),
            }
        }
        Err(CniError::SubnetExhausted {
            network: self.network.clone(),
            range: format!("{}-{}", ipam.range_start, ipam.range_end),
            count: taken,
        })
    }

    /// Releases every address `attachment` holds; returns them. Releasing
    /// what is not allocated is not an error (DEL is idempotent).
    ///
    /// # Errors
    ///
    /// Code 5 on I/O errors.
    pub fn release(&self, attachment: &Attachment) -> Result<Vec<Ipv4Addr>> {
        let _lock = self.lock()?;
        let released = match self.indexed(attachment)? {
            Some(ip) => vec![ip],
            // No index (a crash between the two writes): find it the slow way.
            None => self
                .allocations()?
                .into_iter()
                .filter(|(_, owner)| owner.as_ref() == Some(attachment))
                .map(|(ip, _)| ip)
                .collect(),
        };
        for ip in &released {
            remove_if_present(&self.dir.join(ip.to_string()))?;
        }
        remove_if_present(&self.index_path(attachment))?;
        Ok(released)
    }

    /// The address `attachment` holds, if any.
    ///
    /// # Errors
    ///
    /// Code 5 on I/O errors.
    pub fn lookup(&self, attachment: &Attachment) -> Result<Option<Ipv4Addr>> {
        let _lock = self.lock()?;
        self.indexed(attachment)
    }

    /// Every allocation with its owner (`None` for an unreadable record).
    ///
    /// # Errors
    ///
    /// Code 5 when the directory cannot be listed.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, Option<Attachment>)>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| CniError::io("cannot list", &self.dir, e))?;
        Ok(entries
            .flatten()
            .filter_map(|entry| {
                let ip: Ipv4Addr = entry.file_name().to_str()?.parse().ok()?;
                Some((ip, self.owner(ip)))
            })
            .collect())
    }

    /// Releases every allocation whose owner `keep` rejects (GC); returns
    /// them with their owners.
    ///
    /// # Errors
    ///
    /// Code 5 on I/O errors.
    pub fn retain(
        &self,
        keep: impl Fn(&Attachment) -> bool,
    ) -> Result<Vec<(Ipv4Addr, Option<Attachment>)>> {
        let _lock = self.lock()?;
        let mut released = Vec::new();
        for (ip, owner) in self.allocations()? {
            if owner.as_ref().is_some_and(&keep) {
                continue;
            }
            remove_if_present(&self.dir.join(ip.to_string()))?;
            if let Some(owner) = &owner {
                remove_if_present(&self.index_path(owner))?;
            }
            released.push((ip, owner));
        }
        // Index entries whose allocation is gone.
        let index = self.dir.join(INDEX_DIR);
        if let Ok(entries) = std::fs::read_dir(&index) {
            for entry in entries.flatten() {
                let ip = std::fs::read_to_string(entry.path()).ok();
                let live = ip
                    .and_then(|ip| ip.trim().parse::<Ipv4Addr>().ok())
                    .is_some_and(|ip| self.dir.join(ip.to_string()).exists());
                if !live {
                    remove_if_present(&entry.path())?;
                }
            }
        }
        Ok(released)
    }

    /// The address indexed for `attachment`, checked against its record.
    fn indexed(&self, attachment: &Attachment) -> Result<Option<Ipv4Addr>> {
        let path = self.index_path(attachment);
        let ip = match std::fs::read_to_string(&path) {
            Ok(ip) => ip,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CniError::io("cannot read", path, e)),
        };
        let Ok(ip) = ip.trim().parse::<Ipv4Addr>() else {
            return Ok(None);
        };
        Ok((self.owner(ip).as_ref() == Some(attachment)).then_some(ip))
    }

    /// The owner recorded in an address's file.
    fn owner(&self, ip: Ipv4Addr) -> Option<Attachment> {
        let record = std::fs::read_to_string(self.dir.join(ip.to_string())).ok()?;
        let mut lines = record.lines();
        Some(Attachment {
            container_id: lines.next()?.trim().to_owned(),
            ifname: lines.next()?.trim().to_owned(),
        })
    }

    fn read_last_reserved(&self) -> Option<Ipv4Addr> {
        std::fs::read_to_string(self.dir.join(LAST_RESERVED_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the store can take allocations (STATUS): its directory is
    /// writable.
    ///
    /// # Errors
    ///
    /// Code 5 naming what failed.
    pub fn probe_writable(&self) -> Result<()> {
        let probe = self.dir.join(format!(".probe-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| CniError::io("cannot write", &probe, e))?;
        remove_if_present(&probe)
    }
}

fn owner_record(attachment: &Attachment) -> String {
    format!("{}\n{}\n", attachment.container_id, attachment.ifname)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(CniError::io("cannot remove", path, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, net::Ipv4Addr, path::PathBuf};

    use super::AllocationStore;
    use crate::{config::NetConf, env::Attachment};

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(label: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("rudder-cni-ipam-{}-{label}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn conf(ipam: serde_json::Value) -> NetConf {
        let config = serde_json::json!({"cniVersion": "1.1.0", "name": "net", "ipam": ipam});
        NetConf::parse(config.to_string().as_bytes()).expect("valid config")
    }

    fn attachment(id: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn allocates_in_order_skipping_the_gateway_and_reuses_released_addresses_last() {
        let tmp = TempDir::new("order");
        let conf = conf(serde_json::json!({"subnet": "10.1.0.0/29", "gateway": "10.1.0.2"}));
        let store = AllocationStore::open(tmp.0.clone(), "net").expect("open");
        let a = store.allocate(&attachment("a"), &conf.ipam).expect("a");
        let b = store.allocate(&attachment("b"), &conf.ipam).expect("b");
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 3))
        );
        assert_eq!(store.release(&attachment("a")).expect("release"), vec![a]);
        let c = store.allocate(&attachment("c"), &conf.ipam).expect("c");
        assert_eq!(
            c,
            Ipv4Addr::new(10, 1, 0, 4),
            "the released address waits its turn"
        );
        for id in ["d", "e", "f"] {
            store.allocate(&attachment(id), &conf.ipam).expect(id);
        }
        // .5 and .6 went to d and e; f wrapped around to the released .1.
        assert_eq!(store.lookup(&attachment("f")).expect("lookup"), Some(a));
        let err = store
            .allocate(&attachment("g"), &conf.ipam)
            .expect_err("full");
        assert_eq!(err.code(), 100, "{err}");
        let err = store
            .allocate(&attachment("b"), &conf.ipam)
            .expect_err("twice");
        assert_eq!(err.code(), 101, "{err}");
        assert!(
            store
                .release(&attachment("nobody"))
                .expect("idempotent")
                .is_empty()
        );
    }

    #[test]
    fn range_bounds_are_honoured() {
        let tmp = TempDir::new("range");
        let conf = conf(
            serde_json::json!({"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.100", "rangeEnd": "10.1.0.101"}),
        );
        let store = AllocationStore::open(tmp.0.clone(), "net").expect("open");
        let ips: Vec<_> = ["a", "b"]
            .iter()
            .map(|id| store.allocate(&attachment(id), &conf.ipam).expect(id))
            .collect();
        assert_eq!(
            ips,
            [Ipv4Addr::new(10, 1, 0, 100), Ipv4Addr::new(10, 1, 0, 101)]
        );
        assert_eq!(
            store
                .allocate(&attachment("c"), &conf.ipam)
                .map_err(|e| e.code()),
            Err(100)
        );
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let tmp = TempDir::new("concurrent");
        let conf = conf(serde_json::json!({"subnet": "10.1.0.0/24"}));
        let ips: Vec<Ipv4Addr> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let (dir, conf) = (tmp.0.clone(), &conf);
                    scope.spawn(move || {
                        // A store per thread: separate lock descriptions, as separate processes have.
                        let store = AllocationStore::open(dir, "net").expect("open");
                        store
                            .allocate(&attachment(&format!("c{i}")), &conf.ipam)
                            .expect("allocate")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(ips.iter().collect::<HashSet<_>>().len(), 16);
    }

    #[test]
    fn retain_releases_what_is_not_kept() {
        let tmp = TempDir::new("retain");
        let conf = conf(serde_json::json!({"subnet": "10.1.0.0/24"}));
        let store = AllocationStore::open(tmp.0.clone(), "net").expect("open");
        for id in ["a", "b", "c"] {
            store.allocate(&attachment(id), &conf.ipam).expect(id);
        }
        std::fs::write(tmp.0.join("10.1.0.77"), "").expect("a record without owner");
        let released = store.retain(|a| a.container_id == "b").expect("retain");
        assert_eq!(released.len(), 3);
        let left: Vec<_> = store
            .allocations()
            .expect("list")
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(left, vec![Some(attachment("b"))]);
        assert_eq!(
            std::fs::read_dir(tmp.0.join("attachments"))
                .expect("index")
                .count(),
            1
        );
    }
}
