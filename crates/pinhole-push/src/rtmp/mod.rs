//! RTMP, the publishing side: AMF0 values, the chunk stream, the session.

pub mod amf0;
pub mod chunk;
pub mod session;
