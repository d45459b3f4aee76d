//! (being written)
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Other(String),
    /// A source was configured with values it cannot work with.
    #[error("invalid {source_kind} source configuration: {reason}")]
    InvalidConfig {
        source_kind: &'static str,
        reason: String,
    },
    /// The software H.264 encoder failed (creation or a frame).
    #[error("H.264 encoder: {context}: {reason}")]
    Encoder {
        context: &'static str,
        reason: String,
    },
    /// Reading or opening a source's input failed and the source cannot go on.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}
