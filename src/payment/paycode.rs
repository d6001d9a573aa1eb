//! Shopper-presented pay codes: what the camera read, sorted into a pay code this machine
//! accepts (by the operator's patterns), a merchant-presented EMVCo code held up by mistake,
//! or something else.
//!
//! A pay code is turned into a credential token (keyed hash) at once; the code itself is
//! never stored, logged or reported. The authoriser recognises the token, as for cards.

use crate::token::credential_token;
use regex::Regex;

/// The token kind for pay codes: `credential_token(secret, "paycode", code)`.
pub const PAYCODE_KIND: &str = "paycode";

/// One accepted pay-code pattern.
#[derive(Debug, Clone)]
pub struct PayCodePattern {
    /// Name, for logs and the operator (e.g. `wallet`).
    pub name: String,
    regex: Regex,
}

impl PayCodePattern {
    /// Compiles `pattern`, anchored so it must match the whole code.
    ///
    /// # Errors
    /// The regex error in plain words.
    pub fn new(name: &str, pattern: &str) -> Result<PayCodePattern, String> {
        if name.is_empty() || name.len() > 32 {
            return Err("a pattern name is 1 to 32 characters".into());
        }
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("`{pattern}` is not a valid regular expression: {e}"))?;
        if regex.is_match("") {
            return Err(format!("`{pattern}` matches an empty code"));
        }
        Ok(PayCodePattern {
            name: name.to_string(),
            regex,
        })
    }
}

/// The accepted patterns (`[[paycodes.pattern]]` in the configuration).
#[derive(Debug, Clone)]
pub struct PayCodeRules {
    patterns: Vec<PayCodePattern>,
}

/// What a scanned code is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// A pay code: its token and the name of the pattern it matched.
    PayCode {
        /// Pattern name.
        pattern: String,
        /// Keyed hash of the code.
        token: String,
    },
    /// An EMVCo merchant-presented payload (a shop's code shown to the machine).
    MerchantCode,
    /// Anything else (a URL, a product barcode, unreadable bytes).
    Unrecognised,
}

impl Default for PayCodeRules {
    /// An 18-digit wallet code (the common consumer-presented format) only.
    fn default() -> Self {
        PayCodeRules {
            patterns: vec![PayCodePattern::new("wallet", "[0-9]{18}").expect("valid")],
        }
    }
}

impl PayCodeRules {
    /// Rules from patterns.
    pub fn new(patterns: Vec<PayCodePattern>) -> PayCodeRules {
        PayCodeRules { patterns }
    }

    /// The pattern names.
    pub fn names(&self) -> Vec<&str> {
        self.patterns.iter().map(|p| p.name.as_str()).collect()
    }

    /// Sorts a payload the camera read. Surrounding white space (some wallets pad) is
    /// ignored; a payload that is not UTF-8 is unrecognised.
    pub fn classify(&self, secret: &[u8], payload: &[u8]) -> Scanned {
        let Ok(text) = std::str::from_utf8(payload) else {
            return Scanned::Unrecognised;
        };
        let code = text.trim();
        if let Some(p) = self.patterns.iter().find(|p| p.regex.is_match(code)) {
            return Scanned::PayCode {
                pattern: p.name.clone(),
                token: credential_token(secret, PAYCODE_KIND, code),
            };
        }
        if code.starts_with("000201") && super::emvco::parse(code).is_ok() {
            return Scanned::MerchantCode;
        }
        Scanned::Unrecognised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef";

    #[test]
    fn wallet_codes_match_and_become_tokens_that_hide_the_code() {
        let r = PayCodeRules::default();
        match r.classify(SECRET, b"268247064024242709") {
            Scanned::PayCode { pattern, token } => {
                assert_eq!(pattern, "wallet");
                assert_eq!(
                    token,
                    credential_token(SECRET, PAYCODE_KIND, "268247064024242709")
                );
                assert!(!token.contains("268247064024242709"));
            }
            other => panic!("{other:?}"),
        }
        // Padding is ignored; a code one digit short or long is not a wallet code.
        assert!(matches!(
            r.classify(SECRET, b" 268247064024242709\n"),
            Scanned::PayCode { .. }
        ));
        assert_eq!(
            r.classify(SECRET, b"26824706402424270"),
            Scanned::Unrecognised
        );
        assert_eq!(
            r.classify(SECRET, b"2682470640242427091"),
            Scanned::Unrecognised
        );
        assert_eq!(r.classify(SECRET, &[0xFF, 0xFE]), Scanned::Unrecognised);
    }

    #[test]
    fn operator_patterns_are_anchored_and_bad_ones_are_refused() {
        let url = PayCodePattern::new(
            "token-url",
            r"https://pay\.example\.com/t/[A-Za-z0-9]{12,40}",
        )
        .expect("valid");
        let r = PayCodeRules::new(vec![url]);
        assert!(matches!(
            r.classify(SECRET, b"https://pay.example.com/t/AbC123xyz7890"),
            Scanned::PayCode { .. }
        ));
        // Anchoring: the pattern inside a longer string does not count.
        assert_eq!(
            r.classify(SECRET, b"see https://pay.example.com/t/AbC123xyz7890"),
            Scanned::Unrecognised
        );
        assert_eq!(
            r.classify(SECRET, b"268247064024242709"),
            Scanned::Unrecognised
        );
        assert!(PayCodePattern::new("x", "[0-9").is_err());
        assert!(PayCodePattern::new("x", "[0-9]*").is_err());
        assert!(PayCodePattern::new("", "[0-9]+").is_err());
    }

    #[test]
    fn a_merchant_code_held_up_to_the_camera_is_told_apart() {
        let r = PayCodeRules::default();
        let emv = "00020101021226380015com.example.pay0115MID00012345678952045814530370254043.505802SG5912VENDO SNACKS6009SINGAPORE62230110INV00012340705VM04263049625";
        assert_eq!(r.classify(SECRET, emv.as_bytes()), Scanned::MerchantCode);
        // With a broken CRC it is just an unrecognised code.
        let bad = emv.replace("9625", "9626");
        assert_eq!(r.classify(SECRET, bad.as_bytes()), Scanned::Unrecognised);
    }
}
