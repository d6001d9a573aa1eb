//! Face pay: detection, alignment, embedding and matching of faces.
//!
//! [`model`] loads the two on-device models (YuNet detector, SFace embedder; see
//! `models/manifest.toml`) into tract, folding their block-quantised weights at load time so
//! the device needs no Python, and runs them with OpenCV-compatible pre- and post-processing.

//! The pure parts: [`align`] (similarity transform onto the 112×112 ArcFace template),
//! [`quality`] (size, pose, blur, occlusion), [`track`] (face tracks over frames),
//! [`liveness`] (the active head-turn challenge), [`matcher`] (cosine, threshold and margin,
//! 10,000 identities in well under a millisecond) and [`gallery`] (embeddings sealed with
//! ChaCha20-Poly1305 under a key derived from the device secret). [`pipeline`] ties them to
//! the models for one frame.
//! [`stream`] runs it over a camera stream (tracking, skipping work); the daemon side
//! (face thread, enrolment, erasure) is `crate::facepay`.

pub mod align;
pub mod gallery;
pub mod liveness;
pub mod matcher;
pub mod model;
pub mod pipeline;
pub mod quality;
pub mod stream;
pub mod track;
