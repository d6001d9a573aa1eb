//! The enrolled-face gallery, encrypted at rest.
//!
//! Each enrolment holds an opaque account token (the id), a masked display name
//! ("A***e"), the average of several L2-normalised capture embeddings (renormalised) and
//! its creation time. The whole gallery is one file:
//!
//! ```text
//! "VENDDFG1" (8 bytes: magic and format version) | nonce (12 bytes) | ChaCha20-Poly1305 ciphertext + 16-byte tag
//! ```
//!
//! The plaintext is JSON; the AEAD's associated data is the 8-byte header, so a file of
//! another version or a tampered header fails authentication too. The key is
//! `HMAC-SHA256(device_secret, "vendd-face-gallery-v1")`; a fresh random nonce is drawn
//! for every write. Writes are atomic: temporary file in the same directory, fsync,
//! rename, fsync of the directory. A wrong key, a tampered or truncated file is an error
//! ([`GalleryError::Decrypt`] / [`GalleryError::Format`]), never a panic. Nothing here
//! exports an embedding: there is no API that writes one anywhere but the sealed file.
//! Erasure rewrites the file without the enrolment (the caller journals the erasure).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use crate::face::matcher::{cosine, normalize, Matcher, EMBEDDING_DIM};

/// File magic and format version; also the AEAD associated data.
pub const HEADER: &[u8; 8] = b"VENDDFG1";
/// The key-derivation label.
pub const KDF_LABEL: &[u8] = b"vendd-face-gallery-v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_ID_LEN: usize = 128;
const MAX_NAME_LEN: usize = 64;

/// Gallery errors.
#[derive(Debug, Error)]
pub enum GalleryError {
    /// Reading or writing the file failed.
    #[error("gallery file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a gallery of this version (bad magic, too short).
    #[error("gallery file {0}: not a vendd face gallery (bad header or truncated)")]
    BadHeader(PathBuf),
    /// Authentication failed: wrong device key, or the file was modified.
    #[error("gallery file {0}: cannot decrypt (wrong device key or the file was tampered with)")]
    Decrypt(PathBuf),
    /// Decrypted, but the content is not a valid gallery.
    #[error("gallery file {path}: invalid content: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Fewer captures than [`EnrolConfig::min_captures`].
    #[error("enrolment needs at least {need} captures, got {got}")]
    TooFewCaptures {
        /// Captures given.
        got: usize,
        /// Captures needed.
        need: usize,
    },
    /// Two captures differ more than [`EnrolConfig::min_agreement`] allows (not the same
    /// face, or a poor capture).
    #[error("captures disagree (lowest pairwise cosine {min_cosine:.2})")]
    CapturesDisagree {
        /// The lowest pairwise cosine.
        min_cosine: f32,
    },
    /// A capture is zero or not finite.
    #[error("invalid embedding")]
    InvalidEmbedding,
    /// The id or name is empty or too long.
    #[error("invalid id or display name")]
    InvalidId,
}

/// Enrolment rules.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrolConfig {
    /// Minimum number of captures averaged.
    pub min_captures: usize,
    /// Minimum cosine between every pair of captures.
    pub min_agreement: f32,
}

impl Default for EnrolConfig {
    fn default() -> Self {
        EnrolConfig {
            min_captures: 3,
            min_agreement: 0.6,
        }
    }
}

/// One enrolled face. Its embedding is zeroed when dropped; `Debug` does not print it.
#[derive(Clone)]
pub struct Enrolment {
    /// Opaque account token.
    pub id: String,
    /// Masked display name, e.g. "A***e".
    pub masked_name: String,
    /// The averaged, L2-normalised embedding.
    pub embedding: [f32; EMBEDDING_DIM],
    /// Creation time, Unix milliseconds.
    pub created_unix_ms: u64,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("id", &self.id)
            .field("masked_name", &self.masked_name)
            .field("created_unix_ms", &self.created_unix_ms)
            .finish_non_exhaustive()
    }
}

impl Drop for Enrolment {
    fn drop(&mut self) {
        self.embedding.zeroize();
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredEntry {
    id: String,
    masked_name: String,
    embedding: Vec<f32>,
    created_unix_ms: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredGallery {
    entries: Vec<StoredEntry>,
}

/// Mask a display name for showing on the kiosk: first and last character kept, the rest
/// as `***` ("Alice" → "A***e", "Al" → "A***", "" → "***").
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.as_slice() {
        [] => "***".to_owned(),
        [a] | [a, _] => format!("{a}***"),
        [a, .., z] => format!("{a}***{z}"),
    }
}

/// The encrypted gallery and its decrypted contents in memory.
pub struct Gallery {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
    entries: Vec<Enrolment>,
    enrol_cfg: EnrolConfig,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Derive the gallery key from the device secret (HMAC-SHA256 over [`KDF_LABEL`]).
fn derive_key(device_secret: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    // HMAC accepts keys of any length; the error branch is never taken.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(device_secret).ok()?;
    mac.update(KDF_LABEL);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&mac.finalize().into_bytes());
    Some(key)
}

impl Gallery {
    /// Open the gallery at `path` with the key derived from `device_secret`. A missing
    /// file is an empty gallery (the file is created by the first enrolment).
    pub fn load(path: impl AsRef<Path>, device_secret: &[u8]) -> Result<Gallery, GalleryError> {
        let path = path.as_ref().to_path_buf();
        let Some(key) = derive_key(device_secret) else {
            return Err(GalleryError::Format {
                path,
                msg: "unusable device secret".into(),
            });
        };
        let bytes = match fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(GalleryError::Io { path, source }),
        };
        let mut g = Gallery {
            path,
            key,
            entries: Vec::new(),
            enrol_cfg: EnrolConfig::default(),
        };
        if let Some(bytes) = bytes {
            g.entries = g.open_sealed(&bytes)?;
        }
        Ok(g)
    }

    /// Replace the enrolment rules.
    pub fn set_enrol_config(&mut self, cfg: EnrolConfig) {
        self.enrol_cfg = cfg;
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of enrolments.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is enrolled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The enrolments.
    pub fn iter(&self) -> impl Iterator<Item = &Enrolment> {
        self.entries.iter()
    }

    /// One enrolment by id.
    pub fn get(&self, id: &str) -> Option<&Enrolment> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// A matcher holding every enrolment.
    pub fn matcher(&self) -> Matcher {
        let mut m = Matcher::with_capacity(self.entries.len());
        for e in &self.entries {
            m.insert(&e.id, &e.embedding);
        }
        m
    }

    /// Enrol (or re-enrol, replacing) `id` from several capture embeddings of one
    /// consenting shopper: each is normalised, every pair must agree (cosine ≥
    /// `min_agreement`), the mean is renormalised and stored; the file is rewritten before
    /// this returns. On error nothing changes.
    pub fn enrol(
        &mut self,
        id: &str,
        masked_name: &str,
        captures: &[[f32; EMBEDDING_DIM]],
    ) -> Result<(), GalleryError> {
        if id.is_empty() || id.len() > MAX_ID_LEN || masked_name.len() > MAX_NAME_LEN {
            return Err(GalleryError::InvalidId);
        }
        let need = self.enrol_cfg.min_captures.max(1);
        if captures.len() < need {
            return Err(GalleryError::TooFewCaptures {
                got: captures.len(),
                need,
            });
        }
        let mut normed: Vec<Zeroizing<[f32; EMBEDDING_DIM]>> = Vec::with_capacity(captures.len());
        for c in captures {
            let mut v = Zeroizing::new(*c);
            if !normalize(&mut v[..]) {
                return Err(GalleryError::InvalidEmbedding);
            }
            normed.push(v);
        }
        let mut min_cos = 1.0f32;
        for i in 0..normed.len() {
            for j in i + 1..normed.len() {
                min_cos = min_cos.min(cosine(&normed[i], &normed[j]));
            }
        }
        if min_cos < self.enrol_cfg.min_agreement {
            return Err(GalleryError::CapturesDisagree {
                min_cosine: min_cos,
            });
        }
        let mut mean = [0.0f32; EMBEDDING_DIM];
        for v in &normed {
            mean.iter_mut().zip(v.iter()).for_each(|(m, x)| *m += x);
        }
        if !normalize(&mut mean) {
            return Err(GalleryError::InvalidEmbedding);
        }
        let created_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let new = Enrolment {
            id: id.to_owned(),
            masked_name: masked_name.to_owned(),
            embedding: mean,
            created_unix_ms,
        };
        mean.zeroize();
        let mut next: Vec<&Enrolment> = self.entries.iter().filter(|e| e.id != id).collect();
        next.push(&new);
        self.write(&next)?;
        self.entries.retain(|e| e.id != id);
        self.entries.push(new);
        Ok(())
    }

    /// Erase `id`'s enrolment and rewrite the file; returns whether it was enrolled. On a
    /// write error the enrolment stays (in memory and on disk).
    pub fn erase(&mut self, id: &str) -> Result<bool, GalleryError> {
        let Some(i) = self.entries.iter().position(|e| e.id == id) else {
            return Ok(false);
        };
        let next: Vec<&Enrolment> = self.entries.iter().filter(|e| e.id != id).collect();
        self.write(&next)?;
        self.entries.remove(i);
        Ok(true)
    }

    fn format_err(&self, msg: impl Into<String>) -> GalleryError {
        GalleryError::Format {
            path: self.path.clone(),
            msg: msg.into(),
        }
    }

    fn open_sealed(&self, bytes: &[u8]) -> Result<Vec<Enrolment>, GalleryError> {
        if bytes.len() < HEADER.len() + NONCE_LEN + TAG_LEN || &bytes[..HEADER.len()] != HEADER {
            return Err(GalleryError::BadHeader(self.path.clone()));
        }
        let nonce = Nonce::from_slice(&bytes[HEADER.len()..HEADER.len() + NONCE_LEN]);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key[..]));
        let plain = cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &bytes[HEADER.len() + NONCE_LEN..],
                    aad: HEADER,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| GalleryError::Decrypt(self.path.clone()))?;
        let stored: StoredGallery = serde_json::from_slice(&plain)
            .map_err(|e| self.format_err(format!("decrypted JSON: {e}")))?;
        let mut out = Vec::with_capacity(stored.entries.len());
        for mut s in stored.entries {
            let Ok(emb) = <[f32; EMBEDDING_DIM]>::try_from(s.embedding.as_slice()) else {
                s.embedding.zeroize();
                return Err(self.format_err(format!(
                    "enrolment {:?}: embedding is not {EMBEDDING_DIM}-d",
                    s.id
                )));
            };
            s.embedding.zeroize();
            if !emb.iter().all(|x| x.is_finite()) {
                return Err(self.format_err(format!("enrolment {:?}: embedding not finite", s.id)));
            }
            out.push(Enrolment {
                id: s.id,
                masked_name: s.masked_name,
                embedding: emb,
                created_unix_ms: s.created_unix_ms,
            });
        }
        Ok(out)
    }

    fn seal(&self, entries: &[&Enrolment]) -> Result<Vec<u8>, GalleryError> {
        let mut stored = StoredGallery {
            entries: entries
                .iter()
                .map(|e| StoredEntry {
                    id: e.id.clone(),
                    masked_name: e.masked_name.clone(),
                    embedding: e.embedding.to_vec(),
                    created_unix_ms: e.created_unix_ms,
                })
                .collect(),
        };
        let plain = serde_json::to_vec(&stored).map(Zeroizing::new);
        stored
            .entries
            .iter_mut()
            .for_each(|e| e.embedding.zeroize());
        let plain = plain.map_err(|e| self.format_err(format!("encode: {e}")))?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key[..]));
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: HEADER,
                },
            )
            .map_err(|_| self.format_err("encryption failed"))?;
        let mut out = Vec::with_capacity(HEADER.len() + NONCE_LEN + ct.len());
        out.extend_from_slice(HEADER);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn write(&self, entries: &[&Enrolment]) -> Result<(), GalleryError> {
        let sealed = self.seal(entries)?;
        let io = |source| GalleryError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut opts = OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(&sealed).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &self.path).map_err(io)?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const SECRET: &[u8] = b"device secret for tests, 32 bytes";

    fn unit(rng: &mut rand::rngs::StdRng) -> [f32; EMBEDDING_DIM] {
        let mut v = [0.0f32; EMBEDDING_DIM];
        v.iter_mut().for_each(|x| *x = rng.gen_range(-1.0..1.0));
        normalize(&mut v);
        v
    }

    /// Captures of one face: the identity plus small per-capture noise (cosine ≈ 0.9).
    fn captures(
        base: &[f32; EMBEDDING_DIM],
        n: usize,
        rng: &mut rand::rngs::StdRng,
    ) -> Vec<[f32; EMBEDDING_DIM]> {
        (0..n)
            .map(|_| {
                let mut v = *base;
                v.iter_mut().for_each(|x| *x += rng.gen_range(-0.04..0.04));
                normalize(&mut v);
                v
            })
            .collect()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trip_and_no_plaintext_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faces.bin");
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let alice = unit(&mut rng);
        let mut g = Gallery::load(&path, SECRET).expect("empty");
        assert!(g.is_empty());
        g.enrol(
            "acct-7f3a9c",
            &mask_name("Alice"),
            &captures(&alice, 4, &mut rng),
        )
        .expect("enrol");
        g.enrol(
            "acct-b0b",
            &mask_name("Bob"),
            &captures(&unit(&mut rng), 3, &mut rng),
        )
        .expect("enrol");
        let stored = g.get("acct-7f3a9c").expect("there").embedding;
        assert!(cosine(&stored, &alice) > 0.95);

        let g2 = Gallery::load(&path, SECRET).expect("reload");
        assert_eq!(g2.len(), 2);
        let e = g2.get("acct-7f3a9c").expect("there");
        assert_eq!(e.masked_name, "A***e");
        assert_eq!(e.embedding, stored);
        assert!(e.created_unix_ms > 1_600_000_000_000);

        let file = fs::read(&path).expect("read");
        assert_eq!(&file[..8], HEADER);
        // Not the embedding as little-endian f32s, whole or any 2 consecutive components,
        // nor any component's text form, nor the id or name.
        let le: Vec<u8> = stored.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert!(!contains(&file, &le));
        for w in le.chunks_exact(4).collect::<Vec<_>>().windows(2) {
            assert!(!contains(&file, &[w[0], w[1]].concat()));
        }
        for x in stored {
            assert!(!contains(&file, x.to_string().as_bytes()), "{x}");
            assert!(!contains(
                &file,
                serde_json::to_string(&x).expect("json").as_bytes()
            ));
        }
        assert!(
            !contains(&file, b"acct-7f3a9c")
                && !contains(&file, b"A***e")
                && !contains(&file, b"embedding")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
                0o600
            );
        }
        // A fresh nonce per write: the same content sealed twice differs.
        let before = fs::read(&path).expect("read");
        g.enrol("acct-b0b", "B***b", &captures(&unit(&mut rng), 3, &mut rng))
            .expect("re-enrol");
        let after = fs::read(&path).expect("read");
        assert_ne!(before[8..20], after[8..20]);
        assert_eq!(Gallery::load(&path, SECRET).expect("reload").len(), 2);
    }

    #[test]
    fn tampering_wrong_key_and_junk_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faces.bin");
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut g = Gallery::load(&path, SECRET).expect("empty");
        g.enrol("acct-1", "C***l", &captures(&unit(&mut rng), 3, &mut rng))
            .expect("enrol");
        let good = fs::read(&path).expect("read");
        assert!(matches!(
            Gallery::load(&path, b"another device"),
            Err(GalleryError::Decrypt(_))
        ));
        for pos in [8, 15, 25, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[pos] ^= 0x01;
            fs::write(&path, &bad).expect("write");
            assert!(
                matches!(Gallery::load(&path, SECRET), Err(GalleryError::Decrypt(_))),
                "byte {pos}"
            );
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        fs::write(&path, &bad).expect("write");
        assert!(matches!(
            Gallery::load(&path, SECRET),
            Err(GalleryError::BadHeader(_))
        ));
        fs::write(&path, &good[..good.len() - 1]).expect("write");
        assert!(matches!(
            Gallery::load(&path, SECRET),
            Err(GalleryError::Decrypt(_))
        ));
        fs::write(&path, &good[..20]).expect("write");
        assert!(matches!(
            Gallery::load(&path, SECRET),
            Err(GalleryError::BadHeader(_))
        ));
        fs::write(&path, &good).expect("write");
        assert_eq!(Gallery::load(&path, SECRET).expect("good again").len(), 1);
        // Random junk of many lengths never panics.
        for n in 0..200 {
            let junk: Vec<u8> = (0..n * 3).map(|_| rng.gen()).collect();
            fs::write(&path, &junk).expect("write");
            assert!(Gallery::load(&path, SECRET).is_err());
        }
    }

    #[test]
    fn erase_removes_the_face_and_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faces.bin");
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (alice, bob) = (unit(&mut rng), unit(&mut rng));
        let mut g = Gallery::load(&path, SECRET).expect("empty");
        g.enrol("alice", "A***e", &captures(&alice, 3, &mut rng))
            .expect("enrol");
        g.enrol("bob", "B***b", &captures(&bob, 3, &mut rng))
            .expect("enrol");
        let cfg = crate::face::matcher::MatchConfig::default();
        let probe = captures(&alice, 1, &mut rng)[0];
        assert!(
            matches!(g.matcher().decide(&probe, &cfg), crate::face::matcher::MatchDecision::Match { ref id, .. } if id == "alice")
        );
        assert!(g.erase("alice").expect("erase"));
        assert!(!g.erase("alice").expect("erase again"));
        let g2 = Gallery::load(&path, SECRET).expect("reload");
        assert_eq!(g2.len(), 1);
        assert!(g2.get("alice").is_none());
        // After erasure the face no longer pays.
        assert!(matches!(
            g2.matcher().decide(&probe, &cfg),
            crate::face::matcher::MatchDecision::NoMatch { .. }
        ));
    }

    #[test]
    fn enrol_refuses_too_few_or_disagreeing_captures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faces.bin");
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let alice = unit(&mut rng);
        let mut g = Gallery::load(&path, SECRET).expect("empty");
        let two = captures(&alice, 2, &mut rng);
        assert!(matches!(
            g.enrol("a", "A***e", &two),
            Err(GalleryError::TooFewCaptures { got: 2, need: 3 })
        ));
        // Two captures of alice and one of someone else.
        let mut mixed = captures(&alice, 2, &mut rng);
        mixed.push(unit(&mut rng));
        assert!(matches!(
            g.enrol("a", "A***e", &mixed),
            Err(GalleryError::CapturesDisagree { .. })
        ));
        let mut zero = captures(&alice, 2, &mut rng);
        zero.push([0.0; EMBEDDING_DIM]);
        assert!(matches!(
            g.enrol("a", "A***e", &zero),
            Err(GalleryError::InvalidEmbedding)
        ));
        assert!(matches!(
            g.enrol("", "A***e", &captures(&alice, 3, &mut rng)),
            Err(GalleryError::InvalidId)
        ));
        assert!(g.is_empty());
        assert!(!path.exists(), "nothing written on refusal");
    }

    #[test]
    fn masks_names() {
        assert_eq!(mask_name("Alice"), "A***e");
        assert_eq!(mask_name(" Li "), "L***");
        assert_eq!(mask_name("王小明"), "王***明");
        assert_eq!(mask_name(""), "***");
    }
}
