//! Where an update is verified and committed: the bundle format and its
//! signature, the streaming reader, the slot writer, the A/B boot backends
//! and the update state machine. See docs/ota.md and docs/bundle-format.md.

pub mod error;
pub mod format;
pub mod reader;

pub use error::{ErrorKind, OtaError, Result};
pub use format::{ImageInfo, ImageKind, Manifest, Slot};
pub use reader::{BundleReader, Event as BundleEvent, Policy};
pub mod boot;
pub mod slot;
pub use boot::{BootControl, BootInfo, FileBootControl, RebootMethod, RpiTryboot};
pub use slot::{FileSlots, SlotDevice, SlotPaths};
pub mod updater;
pub use updater::{Action, Config, Health, Phase, Progress, Updater};
pub mod installer;
pub use installer::Installer;
