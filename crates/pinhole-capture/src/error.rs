//! (being written)
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Other(String),
}
