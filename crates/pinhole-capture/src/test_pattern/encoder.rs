//! The software H.264 encoder lives in [`crate::encoder::soft`], shared with
//! the camera sources; the test pattern uses it from there.

#[cfg(test)]
pub(crate) use crate::encoder::nal_types;
pub(crate) use crate::encoder::soft::H264Encoder;
