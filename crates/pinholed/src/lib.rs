//! pinholed's configuration as a library, so that fuzz targets
//! (crates/pinholed/fuzz) and tests can parse it without the daemon.

// The CLI's doc comments are its `--help` text (clap), written for a
// terminal: `<device>` and `[ota]` there are not HTML or links.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

pub mod config;
pub mod security_config;
