//! pinholed's configuration as a library, so that fuzz targets
//! (crates/pinholed/fuzz) and tests can parse it without the daemon.

pub mod config;
pub mod security_config;
