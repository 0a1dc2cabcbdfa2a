//! The CNI spec versions rudder-cni speaks.

use std::fmt;

use crate::error::CniError;

/// A spec version a config may name in `cniVersion`. Results are written in
/// the format of the config's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    /// 0.4.0: adds CHECK; IP configs carry `"version": "4"`.
    V0_4_0,
    /// 1.0.0: drops the IP `version` field.
    V1_0_0,
    /// 1.1.0: adds GC and STATUS.
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first (the VERSION answer).
    pub const SUPPORTED: [CniVersion; 3] = [Self::V0_4_0, Self::V1_0_0, Self::V1_1_0];

    /// The newest version, used where no config names one.
    pub const LATEST: CniVersion = Self::V1_1_0;

    /// The version as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// Parses a `cniVersion` value.
    ///
    /// # Errors
    ///
    /// [`CniError::IncompatibleVersion`] (code 1) for anything not in
    /// [`CniVersion::SUPPORTED`].
    pub fn parse(value: &str) -> Result<Self, CniError> {
        Self::SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == value)
            .ok_or_else(|| CniError::IncompatibleVersion {
                requested: value.to_owned(),
                supported: Self::SUPPORTED.map(Self::as_str).join(", "),
            })
    }

    /// Whether GC and STATUS exist in this version.
    pub fn has_gc_and_status(self) -> bool {
        self >= Self::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::CniVersion;

    #[test]
    fn parses_supported_versions_and_rejects_others_with_code_1() {
        for version in CniVersion::SUPPORTED {
            assert_eq!(CniVersion::parse(version.as_str()).ok(), Some(version));
        }
        for bad in ["0.3.1", "1.2.0", "", "1.0"] {
            let err = CniVersion::parse(bad).err();
            assert_eq!(err.map(|e| e.code()), Some(1), "{bad:?}");
        }
    }
}
