//! Credential tokens: a keyed hash (HMAC-SHA256 with the device secret) of what a reader
//! saw. The raw identifier (card UID, code, account) is never stored, logged or reported;
//! deny-list entries use the same hash.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `hex(HMAC-SHA256(secret, "<kind>:<id>"))`.
pub fn credential_token(secret: &[u8], kind: &str, id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::credential_token;

    #[test]
    fn tokens_match_the_rfc4231_construction_and_hide_the_identifier() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let t = credential_token(b"Jefe", "what do ya want", "for nothing?");
        assert_eq!(t.len(), 64);
        assert_ne!(
            t,
            credential_token(b"Jefe", "what do ya want", "for nothing!")
        );
        // "what do ya want" + ":" + "for nothing?" is not the RFC message (a colon instead
        // of a space), so check the RFC vector through the same code path directly:
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(!t.contains("nothing"));
    }
}
