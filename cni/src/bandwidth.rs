//! The `bandwidth` capability: validated, then recorded per attachment for
//! the dataplane, which enforces it on the host veth.
//!
//! Units are those of the reference bandwidth plugin: rates in bits per
//! second, bursts in bits. Ingress is traffic into the pod (shaped on the
//! host veth's egress), egress is traffic out of it.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    env::Attachment,
    error::{CniError, Result},
};

/// Limits from `runtimeConfig.bandwidth`; zero means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthLimits {
    /// Rate into the pod, bits/s.
    #[serde(default)]
    pub ingress_rate: u64,
    /// Burst into the pod, bits.
    #[serde(default)]
    pub ingress_burst: u64,
    /// Rate out of the pod, bits/s.
    #[serde(default)]
    pub egress_rate: u64,
    /// Burst out of the pod, bits.
    #[serde(default)]
    pub egress_burst: u64,
}

impl BandwidthLimits {
    /// Checks that each direction sets rate and burst together, that a rate
    /// is in the range the API accepts for the annotations (1k..1T bits/s)
    /// and that a burst fits the kernel's 32-bit byte counters.
    ///
    /// # Errors
    ///
    /// Code 7 naming the field.
    pub fn validate(&self) -> Result<()> {
        let Self {
            ingress_rate,
            ingress_burst,
            egress_rate,
            egress_burst,
        } = *self;
        for (direction, rate, burst) in [
            ("ingress", ingress_rate, ingress_burst),
            ("egress", egress_rate, egress_burst),
        ] {
            let field = |what| format!("runtimeConfig.bandwidth.{direction}{what}");
            if rate > 0 && burst == 0 {
                return Err(CniError::config(
                    field("Burst"),
                    format!("missing: {direction}Rate is set"),
                ));
            }
            if burst > 0 && rate == 0 {
                return Err(CniError::config(
                    field("Rate"),
                    format!("missing: {direction}Burst is set"),
                ));
            }
            if rate > 0 && !rudder_api::bandwidth::rate_in_range(rate) {
                return Err(CniError::config(
                    field("Rate"),
                    format!(
                        "{rate} bits/s is out of range: a limit must be between {} and {} bits/s",
                        rudder_api::bandwidth::MIN_RATE_BPS,
                        rudder_api::bandwidth::MAX_RATE_BPS
                    ),
                ));
            }
            if burst / 8 >= u64::from(u32::MAX) {
                return Err(CniError::config(
                    field("Burst"),
                    format!("{burst} bits is more than 4 GiB"),
                ));
            }
        }
        Ok(())
    }

    /// Whether nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// What the dataplane reads: one JSON file per attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthRecord {
    /// The network the attachment belongs to.
    pub network: String,
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The host end of the pod's veth, where the limits apply.
    pub host_veth: String,
    /// The limits.
    #[serde(flatten)]
    pub limits: BandwidthLimits,
}

/// Path of the record of `attachment` in `dir`.
pub fn record_path(dir: &Path, attachment: &Attachment) -> PathBuf {
    dir.join(format!(
        "{}-{}.json",
        attachment.container_id, attachment.ifname
    ))
}

impl BandwidthRecord {
    /// Writes the record (atomically: readers never see half a file).
    ///
    /// # Errors
    ///
    /// Code 5 when the directory or file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| CniError::io("cannot create", dir, e))?;
        let attachment = Attachment {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
        };
        let path = record_path(dir, &attachment);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| {
            CniError::io(
                "cannot encode",
                &path,
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        std::fs::write(&tmp, body).map_err(|e| CniError::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| CniError::io("cannot rename into", &path, e))?;
        Ok(path)
    }
}

/// Removes the record of `attachment`, if any.
///
/// # Errors
///
/// Code 5 when it exists and cannot be removed.
pub fn remove_record(dir: &Path, attachment: &Attachment) -> Result<()> {
    let path = record_path(dir, attachment);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(CniError::io("cannot remove", path, e))
        }
        _ => Ok(()),
    }
}

/// Removes the records of `network` whose attachment `keep` rejects (GC).
///
/// # Errors
///
/// Code 5 when the directory cannot be read or a record removed.
pub fn remove_records_except(
    dir: &Path,
    network: &str,
    keep: impl Fn(&Attachment) -> bool,
) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CniError::io("cannot list", dir, e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let Ok(body) = std::fs::read(&path) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<BandwidthRecord>(&body) else {
            continue;
        };
        let attachment = Attachment {
            container_id: record.container_id,
            ifname: record.ifname,
        };
        if record.network == network && !keep(&attachment) {
            remove_record(dir, &attachment)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::BandwidthLimits;

    #[test]
    fn rate_and_burst_go_together() {
        let ok = BandwidthLimits {
            ingress_rate: 10_000_000,
            ingress_burst: 1_000_000,
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        assert!(!ok.is_unlimited());
        assert!(BandwidthLimits::default().validate().is_ok());
        for bad in [
            BandwidthLimits {
                egress_rate: 1,
                ..Default::default()
            },
            BandwidthLimits {
                ingress_burst: 1,
                ..Default::default()
            },
            BandwidthLimits {
                egress_rate: 1_000_000,
                egress_burst: u64::MAX,
                ..Default::default()
            },
            BandwidthLimits {
                ingress_rate: 999,
                ingress_burst: 8_000,
                ..Default::default()
            },
            BandwidthLimits {
                egress_rate: 1_000_000_000_001,
                egress_burst: 8_000,
                ..Default::default()
            },
        ] {
            assert_eq!(bad.validate().err().map(|e| e.code()), Some(7), "{bad:?}");
        }
    }
}
