//! What goes wrong in a source, by kind; the text says what failed and with
//! what input.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Other(String),
    /// The camera (or its helper process) went away or stalled; the text
    /// says how. Restarting the source may bring it back.
    #[error("{0}")]
    Lost(String),
    /// A pipe's input ended or broke: a command exited, a file held
    /// nothing decodable. Restarting the source runs it again.
    #[error("{0}")]
    Ended(String),
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
    /// The Opus audio encoder failed (creation or a frame).
    #[error("Opus encoder: {context}: {reason}")]
    AudioEncoder {
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
