//! Prints every voice clip to render as tab-separated lines:
//! `<lang>\t<clip name>\t<espeak-ng voice>\t<text>`.
//!
//! `scripts/voice-clips.sh` runs this (`cargo run -q --example voice_clip_list`) and renders
//! each line with espeak-ng, so the clip list comes from the same code that composes
//! messages and cannot drift from it.

use std::io::Write;
use std::process::ExitCode;
use vendd::voice::catalog::Catalog;
use vendd::voice::compose::clip_texts;

fn main() -> ExitCode {
    let catalog = match Catalog::embedded() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("voice_clip_list: the catalogue is invalid: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    for c in clip_texts(&catalog) {
        if let Err(e) = writeln!(out, "{}\t{}\t{}\t{}", c.lang, c.name, c.voice, c.text) {
            eprintln!("voice_clip_list: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
