//! A viewer: a cursor into the hub's ring, pulled at the viewer's own pace.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use crate::ring::{Cursor, Step};
use crate::{Frame, Hub};

/// One viewer's position in the stream.
pub struct Viewer {
    pub(crate) hub: Arc<Hub>,
    pub(crate) cursor: Cursor,
    pub(crate) rx: watch::Receiver<u64>,
    pub(crate) skipped: u64,
}

impl Viewer {
    /// The next frame for this viewer, waiting if it is at the live edge.
    /// `None` once the hub is closed.
    pub async fn recv(&mut self) -> Option<Arc<Frame>> {
        loop {
            // Mark the head as seen *before* looking, so a publish between the
            // look and the wait still wakes us.
            self.rx.borrow_and_update();
            let step = self.hub.lock().ring.step(self.cursor);
            match step {
                Step::Deliver(frame, next) => {
                    self.cursor = next;
                    return Some(frame);
                }
                Step::Skip { dropped, next } => {
                    self.cursor = next;
                    self.skipped += dropped;
                    self.hub.drops.fetch_add(dropped, Ordering::Relaxed);
                }
                Step::Wait(c) => {
                    self.cursor = c;
                    self.rx.changed().await.ok()?;
                }
            }
        }
    }

    /// The frame `recv` would return now, without taking it (`None`: it
    /// would wait, or skip ahead first). RTSP's PLAY names its timestamp.
    pub fn peek(&self) -> Option<Arc<Frame>> {
        match self.hub.lock().ring.step(self.cursor) {
            Step::Deliver(frame, _) => Some(frame),
            _ => None,
        }
    }

    /// Frames this viewer skipped because it fell behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}
