//! The operator's side: key pairs, their text encodings, and signing a command envelope.
//!
//! Keys travel as text: 64 hex characters or the standard base64 (44 characters with
//! padding) of the 32 bytes. A signing key's 32 bytes are the RFC 8032 secret seed; a
//! verifying key's are the RFC 8032 public key. [`encode_key`] writes hex.

use super::canon;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde_json::{Map, Value};

/// Why a key's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Neither 64 hex characters nor base64 of 32 bytes.
    #[error(
        "{what} must be 64 hex characters or base64 of 32 bytes (as printed by `vendctl keygen`); \
         got {len} characters"
    )]
    Encoding {
        /// Which kind of key was expected.
        what: &'static str,
        /// Length of the text received (the text itself is not repeated: it may be secret).
        len: usize,
    },
    /// 32 bytes that are not a usable Ed25519 public key.
    #[error(
        "the public key is not a valid Ed25519 point or is a weak (small-order) key: \
         copy the public key printed by `vendctl keygen` again"
    )]
    InvalidPublicKey,
}

/// A new random operator key pair (operating-system randomness).
pub fn generate_keypair() -> (SigningKey, VerifyingKey) {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let verifying = signing.verifying_key();
    (signing, verifying)
}

/// The 32 bytes of a key as 64 lower-case hex characters.
pub fn encode_key(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

/// Reads an operator public key (hex or base64 of 32 bytes; surrounding whitespace ignored).
///
/// # Errors
/// [`KeyError::Encoding`] for other text, [`KeyError::InvalidPublicKey`] for bytes that are
/// not a point on the curve or a small-order (weak) point.
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = key_bytes(text, "an operator public key")?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(KeyError::InvalidPublicKey);
    }
    Ok(key)
}

/// Reads an operator secret key (the 32-byte seed, hex or base64).
///
/// # Errors
/// [`KeyError::Encoding`] for text that is not 32 bytes in hex or base64.
pub fn parse_signing_key(text: &str) -> Result<SigningKey, KeyError> {
    key_bytes(text, "an operator secret key").map(|b| SigningKey::from_bytes(&b))
}

fn key_bytes(text: &str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    let err = || KeyError::Encoding {
        what,
        len: text.chars().count(),
    };
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| err())?
    } else {
        B64.decode(text).map_err(|_| err())?
    };
    bytes.try_into().map_err(|_| err())
}

/// Builds and signs a command envelope; returns its JSON bytes (canonical form plus `sig`).
///
/// Nothing is checked here, so that tests can sign bad commands: call
/// [`parse_args`](super::parse_args) first to catch bad arguments before sending, and pass
/// a nonce of at least 16 random bytes in standard base64. A non-integer number in `args`
/// makes the envelope one that [`verify`](super::verify) refuses as malformed.
#[allow(clippy::too_many_arguments)] // the envelope's fields, in envelope order
pub fn sign(
    name: &str,
    args: Value,
    machine: &str,
    id: &str,
    nonce: &str,
    issued_at: u64,
    expires_at: u64,
    key: &SigningKey,
) -> Vec<u8> {
    let mut env = Map::new();
    env.insert("v".into(), Value::from(super::VERSION));
    env.insert("name".into(), Value::from(name));
    env.insert("id".into(), Value::from(id));
    env.insert("nonce".into(), Value::from(nonce));
    env.insert("issued_at".into(), Value::from(issued_at));
    env.insert("expires_at".into(), Value::from(expires_at));
    env.insert("machine".into(), Value::from(machine));
    env.insert("args".into(), args);
    let mut env = Value::Object(env);
    let signed = canon::signed_bytes(&env);
    let sig = match &signed {
        Ok(bytes) => B64.encode(key.sign(bytes).to_bytes()),
        // Unverifiable anyway; keep the output well-formed JSON.
        Err(_) => String::new(),
    };
    if let Value::Object(map) = &mut env {
        map.insert("sig".into(), Value::from(sig));
    }
    canon::canonical_json(&env)
        .unwrap_or_else(|_| env.to_string())
        .into_bytes()
}
