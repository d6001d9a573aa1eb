//! Voice: the string catalogue shared by the kiosk page and the voice prompts, prompt
//! composition from pre-rendered clips, audio output and the speaker thread.
//!
//! - [`catalog`]: the one catalogue (`assets/i18n/catalog.toml`), English and Chinese,
//!   with the mapping from core prompts to catalogue entries.
//! - [`compose`](mod@compose): a message becomes a sequence of clips (fixed segments plus number,
//!   currency and letter words); also the list of clips the setup script renders.
//! - [`audio`]: the [`AudioSink`] trait with ALSA and WAV-file sinks,
//!   WAV reading, volume.
//! - [`speaker`]: the interruptible speaker thread and its handle.
//! - [`grammar`]: voice commands per language (`assets/voice/commands.toml`) and the
//!   grammar of each screen; [`listen`]: microphone/WAV input and the Vosk recogniser.
#![warn(missing_docs)]

pub mod audio;
pub mod catalog;
pub mod compose;
pub mod grammar;
pub mod listen;
pub mod speaker;

pub use audio::{AlsaSink, AudioError, AudioSink, WavSink};
pub use catalog::{prompt_key, Args, Catalog, CatalogError, Lang};
pub use compose::{clip_texts, compose, Clip, ComposeError};
pub use speaker::{Speaker, SpeakerHandle};
