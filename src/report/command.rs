//! Signed remote operator commands: the message layer of `cmd/<name>` (issue 3, item 5).
//!
//! An operator command is a JSON envelope signed with the operator's Ed25519 key:
//!
//! ```json
//! {"v":1,"name":"set_prices","id":"op-2024-0001","nonce":"<base64 of >=16 random bytes>",
//!  "issued_at":1700000000000,"expires_at":1700000600000,"machine":"m-017",
//!  "args":{"prices":[{"slot":"A3","price":150}]},"sig":"<base64 Ed25519 signature>"}
//! ```
//!
//! The signature covers [`DOMAIN_TAG`] followed by the canonical JSON of the envelope
//! without `sig` (sorted keys, no whitespace, integers only: see [`canonical_json`]).
//! [`verify`] turns received bytes into a [`Verified`] command or a [`CommandError`] whose
//! [`code`](CommandError::code) goes into the [`CommandResult`] on `cmd/<name>/result`.
//!
//! # Order of checks
//! 1. size, JSON (strict: no duplicate keys, integers only) → `malformed`;
//! 2. `v` → `unsupported_version`; `sig` present → `unsigned`; envelope shape and field
//!    formats → `malformed`; signature decodes → `bad_signature`;
//! 3. the signature against the configured keys → `no_operator_keys` / `bad_signature`;
//! 4. only then, on signed data: `unknown_command`, `topic_mismatch`, `wrong_machine`,
//!    `not_yet_valid`, `expired`, `expiry_too_long`, `replayed`, and last the arguments
//!    (`invalid_args`). Nothing about `args` is looked at before the signature checks out.
//!
//! Pure: no I/O and no clock (the caller passes `now_ms`); randomness only in
//! [`generate_keypair`]. The runtime journals a verified command, records its id and nonce
//! in the replay store, applies [`RemoteCommand::inputs_for`] (`audit_export` publishes the
//! counters itself; `reload_config` is answered `not_supported`) and publishes a
//! [`CommandResult`].
#![warn(missing_docs, unreachable_pub, unused_qualifications)]

#[path = "command/args.rs"]
mod args;
#[path = "command/canon.rs"]
mod canon;
#[path = "command/keys.rs"]
mod keys;
#[cfg(test)]
#[path = "command/tests.rs"]
mod tests;

pub use args::{
    parse_args, PriceEntry, RemoteCommand, StockEntry, COMMAND_NAMES, MAX_AMOUNT, MAX_DENY_ENTRIES,
    MAX_ENTRIES, MAX_STOCK_COUNT, MAX_UNLOCK_SECONDS,
};
pub use canon::{canonical_json, parse_strict, signed_bytes, CanonError, DOMAIN_TAG};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use keys::{
    encode_key, generate_keypair, parse_signing_key, parse_verifying_key, sign, KeyError,
};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Envelope format version this module reads and writes.
pub const VERSION: u64 = 1;

/// Largest command accepted, bytes (a 200-slot planogram is about 40 KiB).
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;

/// How far `issued_at` may be ahead of the machine's clock, ms (clocks of the operator's
/// PC and of the machine differ by this much at most when both use NTP).
pub const CLOCK_SKEW_MS: u64 = 120_000;

/// Longest validity of a command (`expires_at - issued_at`), ms: 24 hours. Bounds how long
/// the replay store must remember an id and nonce, and how long a captured command could be
/// held back and delivered late.
pub const MAX_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// Nonce length bounds, bytes after base64 decoding.
pub const NONCE_BYTES: std::ops::RangeInclusive<usize> = 16..=64;

/// Longest command id, characters (`A-Z a-z 0-9 . _ : -`).
pub const MAX_ID_LEN: usize = 128;

/// The machine value that addresses every machine.
pub const ANY_MACHINE: &str = "*";

/// Why a command was refused. Nothing was changed; [`code`](CommandError::code) is the
/// stable reason for the result topic and the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not one JSON object of the envelope's shape.
    #[error(
        "malformed command: {0}. Send one JSON object with v, name, id, nonce, issued_at, \
         expires_at, machine, args and sig, as `vendctl cmd` makes it"
    )]
    Malformed(String),
    /// A `v` this machine does not understand.
    #[error(
        "command format version {0} is not supported: this machine reads v=1; \
         use a vendctl of the same release as the daemon"
    )]
    UnsupportedVersion(String),
    /// No `sig` (or an empty one).
    #[error("command is not signed: sign it with the operator's secret key (`vendctl cmd`)")]
    Unsigned,
    /// The signature is not base64 of 64 bytes, or no configured key verifies it (wrong
    /// key, or the envelope was changed after signing).
    #[error(
        "bad signature: {0}. Sign with the secret key whose public key is in this machine's \
         config, and send the envelope unchanged"
    )]
    BadSignature(String),
    /// The machine has no operator public key, so it trusts no command.
    #[error(
        "no operator public key is configured, so no command can be trusted: add the key \
         printed by `vendctl keygen` to the config and reload"
    )]
    NoOperatorKeys,
    /// A signed command with a name this daemon does not know.
    #[error(
        "unknown command `{0}`: use one of set_prices, set_planogram, restock, \
         set_slot_enabled, refund, void, unlock_door, deny_list, audit_export, \
         reload_config, clear_fault, reset_counters"
    )]
    UnknownCommand(String),
    /// The topic `cmd/<topic>` does not match the signed `name`.
    #[error("command `{name}` arrived on topic cmd/{topic}: publish it on cmd/{name}")]
    TopicMismatch {
        /// Name from the topic.
        topic: String,
        /// Signed name.
        name: String,
    },
    /// Addressed to another machine.
    #[error(
        "command is for machine `{target}` but this is `{machine}`: sign it for this \
         machine's id or for \"*\""
    )]
    WrongMachine {
        /// Signed `machine`.
        target: String,
        /// This machine's id.
        machine: String,
    },
    /// `issued_at` is ahead of the machine's clock by more than [`CLOCK_SKEW_MS`].
    #[error(
        "command is issued at {issued_at} ms but the machine's clock says {now} ms: \
         check the clocks of the operator's PC and the machine (NTP) and sign again"
    )]
    NotYetValid {
        /// Signed `issued_at`.
        issued_at: u64,
        /// Machine clock.
        now: u64,
    },
    /// `expires_at` has passed.
    #[error(
        "command expired at {expires_at} ms and the machine's clock says {now} ms: \
         sign a new command with a later expiry"
    )]
    Expired {
        /// Signed `expires_at`.
        expires_at: u64,
        /// Machine clock.
        now: u64,
    },
    /// `expires_at - issued_at` is longer than [`MAX_LIFETIME_MS`].
    #[error(
        "command is valid for {lifetime_ms} ms, longer than the {max_ms} ms allowed: \
         sign it with an expiry at most 24 h after issue"
    )]
    ExpiryTooLong {
        /// Signed lifetime.
        lifetime_ms: u64,
        /// [`MAX_LIFETIME_MS`].
        max_ms: u64,
    },
    /// The id or the nonce was seen before.
    #[error(
        "command `{id}` was already received (same id or nonce): to do it again, sign a new \
         command with a fresh id and nonce"
    )]
    Replayed {
        /// Command id.
        id: String,
    },
    /// The arguments are wrong for the command.
    #[error("invalid arguments for `{name}`: {reason}")]
    InvalidArgs {
        /// Command name.
        name: String,
        /// What is wrong and how to put it right.
        reason: String,
    },
}

impl CommandError {
    /// Stable snake_case code for the result topic.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::Malformed(_) => "malformed",
            CommandError::UnsupportedVersion(_) => "unsupported_version",
            CommandError::Unsigned => "unsigned",
            CommandError::BadSignature(_) => "bad_signature",
            CommandError::NoOperatorKeys => "no_operator_keys",
            CommandError::UnknownCommand(_) => "unknown_command",
            CommandError::TopicMismatch { .. } => "topic_mismatch",
            CommandError::WrongMachine { .. } => "wrong_machine",
            CommandError::NotYetValid { .. } => "not_yet_valid",
            CommandError::Expired { .. } => "expired",
            CommandError::ExpiryTooLong { .. } => "expiry_too_long",
            CommandError::Replayed { .. } => "replayed",
            CommandError::InvalidArgs { .. } => "invalid_args",
        }
    }
}

/// Has a command id or nonce been seen before? Backed by the runtime's persistent store.
///
/// The store must remember every id and nonce of a command whose signature verified until
/// at least its `expires_at` (later entries may be pruned: [`verify`] refuses expired
/// commands first), and must survive restarts.
pub trait ReplayGuard {
    /// True if a command with this `id`, or any command with this `nonce`, was seen.
    fn seen(&self, id: &str, nonce: &str) -> bool;
}

impl<F: Fn(&str, &str) -> bool> ReplayGuard for F {
    fn seen(&self, id: &str, nonce: &str) -> bool {
        self(id, nonce)
    }
}

/// A command whose signature, addressing, time window, freshness and arguments all check
/// out. Journal it, remember `id` and `nonce`, then carry it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Command id chosen by the operator (idempotency and result key).
    pub id: String,
    /// Nonce as sent (base64).
    pub nonce: String,
    /// When the operator signed it, ms since the epoch.
    pub issued_at: u64,
    /// When it stops being valid, ms since the epoch; keep the replay entry until then.
    pub expires_at: u64,
    /// Target machine id or `"*"`.
    pub machine: String,
    /// Index in the configured key list of the key that verified it.
    pub signed_by: usize,
    /// SHA-256 (hex) of the signed bytes: identifies exactly what was signed, for the
    /// journal and audit.
    pub digest: String,
    /// The validated command.
    pub command: RemoteCommand,
}

impl Verified {
    /// The command's name.
    pub fn name(&self) -> &'static str {
        self.command.name()
    }
}

/// The envelope without `sig`, as read before the signature is checked. `args` is kept as
/// raw JSON and not interpreted until then.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[allow(dead_code)] // checked before the shape, kept so the field is allowed
    v: u64,
    name: String,
    id: String,
    nonce: String,
    issued_at: u64,
    expires_at: u64,
    machine: String,
    args: Value,
}

/// Checks a command received on topic `cmd/<topic_name>` and returns it validated.
///
/// `keys` are the operator public keys from the config (any one may sign), `machine_id`
/// this machine's id, `now_ms` the machine's clock, `replay` the store of seen ids and
/// nonces. See the module docs for the order of checks.
///
/// # Errors
/// A [`CommandError`] naming the first check that failed; nothing was acted on.
pub fn verify(
    raw: &[u8],
    topic_name: &str,
    keys: &[VerifyingKey],
    machine_id: &str,
    now_ms: u64,
    replay: &impl ReplayGuard,
) -> Result<Verified, CommandError> {
    // 1. Syntax.
    if raw.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::Malformed(format!(
            "{} bytes, more than the {MAX_COMMAND_BYTES} allowed",
            raw.len()
        )));
    }
    let mut value = parse_strict(raw).map_err(|e| CommandError::Malformed(e.to_string()))?;
    let Value::Object(obj) = &mut value else {
        return Err(CommandError::Malformed(
            "the payload is JSON but not an object".into(),
        ));
    };

    // 2. Version, signature presence, shape.
    match obj.get("v") {
        None => return Err(CommandError::Malformed("`v` is missing".into())),
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(Value::Number(n)) => return Err(CommandError::UnsupportedVersion(n.to_string())),
        Some(_) => return Err(CommandError::Malformed("`v` must be the number 1".into())),
    }
    let sig_text = match obj.remove("sig") {
        None | Some(Value::Null) => return Err(CommandError::Unsigned),
        Some(Value::String(s)) if s.is_empty() => return Err(CommandError::Unsigned),
        Some(Value::String(s)) => s,
        Some(_) => return Err(CommandError::BadSignature("`sig` is not a string".into())),
    };
    let env = Envelope::deserialize(&value).map_err(|e| CommandError::Malformed(e.to_string()))?;
    check_envelope_fields(&env)?;
    let signature = B64
        .decode(sig_text.as_bytes())
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| {
            CommandError::BadSignature("`sig` is not standard base64 of 64 bytes".into())
        })?;

    // 3. Signature.
    if keys.is_empty() {
        return Err(CommandError::NoOperatorKeys);
    }
    let message = signed_bytes(&value).map_err(|e| CommandError::Malformed(e.to_string()))?;
    let signed_by = keys
        .iter()
        .position(|k| k.verify_strict(&message, &signature).is_ok())
        .ok_or_else(|| {
            CommandError::BadSignature(
                "no configured operator key verifies it (signed by another key, or changed \
                 after signing)"
                    .into(),
            )
        })?;

    // 4. Signed data.
    if !COMMAND_NAMES.contains(&env.name.as_str()) {
        return Err(CommandError::UnknownCommand(env.name));
    }
    if topic_name != env.name {
        return Err(CommandError::TopicMismatch {
            topic: topic_name.to_string(),
            name: env.name,
        });
    }
    if env.machine != ANY_MACHINE && env.machine != machine_id {
        return Err(CommandError::WrongMachine {
            target: env.machine,
            machine: machine_id.to_string(),
        });
    }
    if env.issued_at > now_ms.saturating_add(CLOCK_SKEW_MS) {
        return Err(CommandError::NotYetValid {
            issued_at: env.issued_at,
            now: now_ms,
        });
    }
    if now_ms >= env.expires_at {
        return Err(CommandError::Expired {
            expires_at: env.expires_at,
            now: now_ms,
        });
    }
    let lifetime_ms = env.expires_at - env.issued_at;
    if lifetime_ms > MAX_LIFETIME_MS {
        return Err(CommandError::ExpiryTooLong {
            lifetime_ms,
            max_ms: MAX_LIFETIME_MS,
        });
    }
    if replay.seen(&env.id, &env.nonce) {
        return Err(CommandError::Replayed { id: env.id });
    }
    let command = parse_args(&env.name, &env.args)?;
    Ok(Verified {
        digest: hex::encode(Sha256::digest(&message)),
        id: env.id,
        nonce: env.nonce,
        issued_at: env.issued_at,
        expires_at: env.expires_at,
        machine: env.machine,
        signed_by,
        command,
    })
}

fn check_envelope_fields(env: &Envelope) -> Result<(), CommandError> {
    let bad = |m: String| Err(CommandError::Malformed(m));
    if !valid_id(&env.id) {
        return bad(format!(
            "`id` must be 1..={MAX_ID_LEN} characters of A-Z a-z 0-9 . _ : -"
        ));
    }
    if env.name.is_empty() || env.name.len() > 64 {
        return bad("`name` must be a command name such as set_prices".into());
    }
    if env.machine.is_empty() || env.machine.len() > MAX_ID_LEN {
        return bad(format!(
            "`machine` must be a machine id of 1..={MAX_ID_LEN} bytes, or \"*\""
        ));
    }
    let nonce_len = B64.decode(env.nonce.as_bytes()).map(|b| b.len());
    if !matches!(nonce_len, Ok(n) if NONCE_BYTES.contains(&n)) {
        return bad(format!(
            "`nonce` must be standard base64 of {}..={} random bytes",
            NONCE_BYTES.start(),
            NONCE_BYTES.end()
        ));
    }
    if env.expires_at <= env.issued_at {
        return bad("`expires_at` must be later than `issued_at`".into());
    }
    Ok(())
}

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The answer published on `cmd/<name>/result` (JSON, schema version `v`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Schema version, 1.
    pub v: u64,
    /// Command id; empty when the command was too broken to read one.
    pub id: String,
    /// Command name (the topic's, for a refused command).
    pub name: String,
    /// Was the command carried out?
    pub ok: bool,
    /// `ok`, a [`CommandError::code`], or a code from the runtime (e.g. a core refusal).
    pub code: String,
    /// Plain-language outcome or reason.
    pub message: String,
    /// When the machine decided, ms since the epoch.
    pub at: u64,
}

impl CommandResult {
    /// A command that was carried out (`ok`, code `ok`).
    pub fn done(verified: &Verified, message: impl Into<String>, at: u64) -> Self {
        CommandResult {
            ok: true,
            ..Self::failed(verified, "ok", message, at)
        }
    }

    /// A verified command that the runtime could not carry out (e.g. the core refused it
    /// with a `Reject` code).
    pub fn failed(
        verified: &Verified,
        code: impl Into<String>,
        message: impl Into<String>,
        at: u64,
    ) -> Self {
        CommandResult {
            v: VERSION,
            id: verified.id.clone(),
            name: verified.name().to_string(),
            ok: false,
            code: code.into(),
            message: message.into(),
            at,
        }
    }

    /// A command that [`verify`] refused. The id is read from `raw` when it can be (it is
    /// unauthenticated, but lets the sender match the answer); the name is the topic's.
    pub fn rejected(raw: &[u8], topic_name: &str, err: &CommandError, at: u64) -> Self {
        let id = parse_strict(raw)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .filter(|id| valid_id(id))
            .unwrap_or_default();
        CommandResult {
            v: VERSION,
            id,
            name: topic_name.chars().take(64).collect(),
            ok: false,
            code: err.code().to_string(),
            message: err.to_string(),
            at,
        }
    }

    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Topic suffix of a command's result, under the machine's topic root.
pub fn result_topic(name: &str) -> String {
    format!("cmd/{name}/result")
}
