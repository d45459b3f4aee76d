//! Where a frame enters pinhole.
//!
//! Every source implements [`Source`]: it runs on its own thread (capture and
//! software encoding are blocking, CPU-bound work) and hands each encoded
//! [`AccessUnit`](pinhole_media::AccessUnit) to a [`FrameSink`] (the
//! contract in `pinhole-source-api`); in the daemon that sink is the hub's feed.
//! A source does not retry: [`supervisor`] starts it, watches it and
//! restarts it with backoff, the same way for every kind.

pub mod audio;
mod camera;
pub mod encoder;
pub mod error;
pub mod libcamera;
pub mod pipe;
pub mod supervisor;
pub mod test_pattern;
#[cfg(test)]
mod test_sink;
pub mod v4l2;

pub use error::CaptureError;
// The contract sources implement against; re-exported so a source needs one import.
pub use pinhole_source_api::{FrameSink, SourceInfo, SourceState, StopFlag, TrackId};
pub use supervisor::{RetryPolicy, Supervisor};

pub trait Source: Send + 'static {
    fn info(&self) -> SourceInfo;
    /// Produce frames into `sink` until `stop` is set. Blocking. A fault
    /// that ends the run (a lost camera, a command that exited) is an `Err`
    /// saying why; the [`supervisor`] reports it and runs the source again
    /// after a backoff. `Ok` without `stop`: the source finished by itself.
    fn run(&mut self, sink: &dyn FrameSink, stop: &StopFlag) -> Result<(), CaptureError>;
    /// How the supervisor restarts this source after an `Err`.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::DEFAULT
    }
}
