//! Where a frame enters pinhole.
//!
//! Every source implements [`Source`]: it runs on its own thread (capture and
//! software encoding are blocking, CPU-bound work) and hands each encoded
//! [`AccessUnit`](pinhole_media::AccessUnit) to a [`FrameSink`] (the
//! contract in `pinhole-source-api`); in the daemon that sink is the hub's feed.

pub mod encoder;
pub mod error;
pub mod libcamera;
pub mod pipe;
mod retry;
pub mod test_pattern;
#[cfg(test)]
mod test_sink;
pub mod v4l2;

pub use error::CaptureError;
// The contract sources implement against; re-exported so a source needs one import.
pub use pinhole_source_api::{FrameSink, SourceInfo, SourceState, StopFlag};

pub trait Source: Send + 'static {
    fn info(&self) -> SourceInfo;
    /// Produce frames into `sink` until `stop` is set. Blocking; recoverable
    /// faults (a crashed command, a garbled stream) are handled inside with
    /// backoff and reported through [`FrameSink::report`]; an `Err` means the
    /// source cannot go on at all.
    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError>;
}
