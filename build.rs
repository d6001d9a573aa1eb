//! Build script: links libvosk for the `vosk` feature (speech recognition, on by default).
//!
//! No Debian package has libvosk; `scripts/vosk.sh` takes it, pinned by sha256, from the PyPI
//! `vosk` wheel into `models/cache/vosk/lib/`. `VOSK_LIB_DIR` points elsewhere (e.g.
//! `/usr/local/lib` on a kiosk). The binaries get an rpath to that directory, so they run
//! from the build tree without `LD_LIBRARY_PATH`. Without the feature nothing is linked and
//! this script does nothing: `cargo build --no-default-features` needs no libvosk.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VOSK_LIB_DIR");
    if env::var_os("CARGO_FEATURE_VOSK").is_none() {
        return;
    }
    let dir = match env::var_os("VOSK_LIB_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let manifest = env::var_os("CARGO_MANIFEST_DIR")
                .map(PathBuf::from)
                .unwrap_or_default();
            manifest.join("models/cache/vosk/lib")
        }
    };
    let lib = dir.join("libvosk.so");
    println!("cargo:rerun-if-changed={}", lib.display());
    if !lib.is_file() {
        // Cargo shows a failed build script's stderr; exit(1) keeps it free of a backtrace.
        eprintln!(
            "error: libvosk.so not found in {}. \
             Run scripts/vosk.sh (it fetches libvosk from the PyPI `vosk` wheel, pinned by \
             sha256), or set VOSK_LIB_DIR to the directory holding libvosk.so, or build \
             without speech recognition: cargo build --no-default-features.",
            dir.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
