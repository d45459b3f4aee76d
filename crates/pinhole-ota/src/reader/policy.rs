//! What a device accepts: trusted keys, its board, and no downgrades.

use ed25519_dalek::VerifyingKey;

use crate::error::{OtaError, Result};
use crate::format::Manifest;

/// What this device accepts.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Keys whose signatures we trust (at least one, or every bundle fails).
    pub trusted_keys: Vec<VerifyingKey>,
    /// This board's compatible string; `None` accepts any (host tools only).
    pub compatible: Option<String>,
    /// The running version. `None` (unknown) refuses every bundle unless
    /// `allow_downgrade`: a downgrade cannot be ruled out.
    pub current_version: Option<semver::Version>,
    /// Allow installing an older version than the running one (host tools
    /// that check no version set it).
    pub allow_downgrade: bool,
}

impl Policy {
    /// Checks a signature-verified manifest against this device.
    pub(super) fn check(&self, m: &Manifest) -> Result<()> {
        let version = m.validate()?;
        if let Some(c) = &self.compatible {
            if &m.compatible != c {
                return Err(OtaError::incompatible(format!(
                    "bundle is for board {:?}, this device is {c:?}",
                    m.compatible
                )));
            }
        }
        if self.allow_downgrade {
            return Ok(());
        }
        match &self.current_version {
            Some(cur) if version < *cur => Err(OtaError::incompatible(format!(
                "bundle version {version} is older than the running {cur}; downgrades are refused unless allowed"
            ))),
            Some(_) => Ok(()),
            // Used to skip the check silently: fail closed instead.
            None => Err(OtaError::incompatible(format!(
                "the running system's version is unknown, so bundle version {version} \
                 could be a downgrade; refused (allow downgrades to install anyway)"
            ))),
        }
    }
}
