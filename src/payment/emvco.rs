//! EMVCo merchant-presented QR payloads (EMV QRCPS Merchant-Presented Mode, v1.1).
//!
//! A payload is a string of data objects, each an ID (two digits), a length (two digits,
//! `01`–`99`) and a value. IDs 26–51 (merchant account information), 62 (additional data)
//! and 64 (merchant information in another language) are templates whose value is itself a
//! list of data objects. The payload starts with tag 00 = `01` and ends with tag 63, the
//! CRC-16/CCITT-FALSE of everything before the four CRC digits (so including `6304`).
//!
//! [`parse`] checks the structure, the CRC, the mandatory tags, the lengths and formats of
//! the tags EMVCo defines, and the rules between tags 55, 56 and 57. [`dynamic_payload`]
//! builds the payload shown for a checkout from a [`MerchantConfig`], the amount and a
//! per-session reference ([`session_reference`]) in tag 62 sub-tag 05.
//!
//! # Lengths count characters
//! The length field counts characters (Unicode scalar values), not bytes, as EMVCo says for
//! its "S" (string) format; the CRC runs over the UTF-8 bytes. The shared vectors are all
//! ASCII, where both readings agree, so they cannot tell the two apart; the unit test
//! `lengths_count_characters_not_bytes` pins our choice. Fields of format "ans" (the
//! EMVCo-defined primitives: name, city, amounts, 62 sub-tags 01–09, …) must be printable
//! ASCII anyway; only the language template (64), tags 65–99 and the payment-network
//! sub-tags of 62 (10–99) may carry other characters, and no field may carry control
//! characters.
//!
//! IDs 80–99 ("unreserved templates") are kept as opaque primitives: their inner layout is
//! the owner's business and rejecting a payload over it would help nobody.
//!
//! Nothing here panics on any input (property-tested on random and mutated payloads).

use crate::core::{Currency, Money, SessionId};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Longest value of the reference label (62/05) and the terminal label (62/07).
pub const MAX_LABEL_LEN: usize = 25;
/// Longest value of any data object (the length field has two digits).
pub const MAX_VALUE_LEN: usize = 99;

/// Why a payload, a merchant configuration or a generation request was refused.
///
/// `tag` fields name the data object: `"59"` for a top-level tag, `"62.05"` for a sub-tag
/// of a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmvError {
    /// Nothing to parse.
    #[error("the EMVCo payload is empty")]
    Empty,
    /// A data object's ID or length is cut off by the end of the payload or template.
    #[error("{within}: the data object at character {offset} is cut short (needs a two-digit ID and a two-digit length)")]
    Truncated {
        /// `"payload"` or `"tag NN"`.
        within: String,
        /// Character offset within it.
        offset: usize,
    },
    /// An ID is not two digits.
    #[error("{within}: `{found}` at character {offset} is not a two-digit ID")]
    BadId {
        /// `"payload"` or `"tag NN"`.
        within: String,
        /// Character offset within it.
        offset: usize,
        /// What was there.
        found: String,
    },
    /// A length is not two digits from 01 to 99.
    #[error("tag {tag}: length `{found}` is not two digits from 01 to 99")]
    BadLength {
        /// The data object.
        tag: String,
        /// What was there.
        found: String,
    },
    /// A length runs past the end of the payload or template.
    #[error("tag {tag}: the length says {len} characters but only {available} remain")]
    Overrun {
        /// The data object.
        tag: String,
        /// Declared length.
        len: usize,
        /// Characters left.
        available: usize,
    },
    /// Tag 00 is present but not the first data object.
    #[error(
        "tag 00 (payload format indicator) must be the first data object; tag {found} comes first"
    )]
    FormatIndicatorNotFirst {
        /// The tag found first.
        found: String,
    },
    /// Tag 63 is present but not the last data object.
    #[error("tag 63 (CRC) must be the last data object; tag {found} follows it")]
    CrcNotLast {
        /// A tag after 63.
        found: String,
    },
    /// The CRC in tag 63 does not match the payload.
    #[error("tag 63: the payload says CRC `{found}` but its CRC-16/CCITT-FALSE is {computed:04X} (corrupted or mistyped payload)")]
    CrcMismatch {
        /// Value of tag 63.
        found: String,
        /// What we computed.
        computed: u16,
    },
    /// A mandatory tag is absent.
    #[error("mandatory tag {tag} ({name}) is missing")]
    Missing {
        /// The tag.
        tag: String,
        /// What it holds.
        name: &'static str,
    },
    /// No merchant account information in tags 02–51.
    #[error("no merchant account information: at least one of tags 02–51 is mandatory")]
    MissingMerchantAccount,
    /// The same tag appears twice at one level.
    #[error("tag {tag} appears more than once")]
    Duplicate {
        /// The tag.
        tag: String,
    },
    /// A value is longer than the specification allows.
    #[error("tag {tag}: {len} characters, at most {max} allowed")]
    TooLong {
        /// The data object.
        tag: String,
        /// Allowed maximum.
        max: usize,
        /// Actual length.
        len: usize,
    },
    /// A fixed-length value has another length.
    #[error("tag {tag}: {len} characters, exactly {expected} required")]
    WrongLength {
        /// The data object.
        tag: String,
        /// Required length.
        expected: usize,
        /// Actual length.
        len: usize,
    },
    /// A numeric ("N") value has something other than digits.
    #[error("tag {tag}: `{value}` must be digits only")]
    NotNumeric {
        /// The data object.
        tag: String,
        /// The value.
        value: String,
    },
    /// An amount is not digits with an optional `.` and decimals.
    #[error("tag {tag}: `{value}` is not an amount (digits, optionally `.` and more digits)")]
    BadAmount {
        /// The data object.
        tag: String,
        /// The value.
        value: String,
    },
    /// A value has characters its format does not allow.
    #[error("tag {tag}: {reason}")]
    BadCharacters {
        /// The data object.
        tag: String,
        /// Which characters are allowed.
        reason: &'static str,
    },
    /// A value breaks a rule of its tag (allowed values, rules between tags).
    #[error("tag {tag}: {reason}")]
    Invalid {
        /// The data object.
        tag: String,
        /// The rule broken.
        reason: String,
    },
    /// Tag 53 holds a numeric code missing from our currency table.
    #[error("tag 53: currency {numeric} is not in our currency table (core::Currency::numeric)")]
    UnknownCurrency {
        /// The numeric ISO 4217 code.
        numeric: String,
    },
    /// The amount cannot be expressed in minor units of the currency.
    #[error(
        "tag 54: `{value}` is not a whole number of minor units of {currency} (or is too large)"
    )]
    AmountPrecision {
        /// The value.
        value: String,
        /// The currency.
        currency: Currency,
    },
    /// A field of the merchant configuration is invalid. Fix `[payment.emvco]` in the config.
    #[error("merchant config `{field}`: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The currency has no numeric code in our table, so tag 53 cannot be written. Add it to
    /// `core::Currency::numeric`.
    #[error("currency {0} has no ISO 4217 numeric code in our table; cannot write tag 53")]
    UnsupportedCurrency(Currency),
    /// A dynamic payload needs a positive amount.
    #[error("amount {0} minor units: a dynamic payload needs an amount above zero")]
    NonPositiveAmount(i64),
}

/// The value of a data object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A plain value.
    Primitive(String),
    /// A template (IDs 26–51, 62, 64): nested data objects in payload order.
    Template(Vec<Field>),
}

/// One data object: a tag (0–99) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The ID, 0–99.
    pub tag: u8,
    /// The value.
    pub value: Value,
}

impl Field {
    /// A primitive data object.
    pub fn primitive(tag: u8, value: impl Into<String>) -> Self {
        Field {
            tag,
            value: Value::Primitive(value.into()),
        }
    }

    /// A template data object.
    pub fn template(tag: u8, fields: Vec<Field>) -> Self {
        Field {
            tag,
            value: Value::Template(fields),
        }
    }

    /// The value if primitive.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Primitive(s) => Some(s),
            Value::Template(_) => None,
        }
    }

    /// The nested data objects if a template.
    pub fn subfields(&self) -> Option<&[Field]> {
        match &self.value {
            Value::Primitive(_) => None,
            Value::Template(f) => Some(f),
        }
    }
}

/// Tag 01: whether the payload may be reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PointOfInitiation {
    /// `11`: the same code for many transactions (usually no amount).
    Static,
    /// `12`: a code for one transaction.
    Dynamic,
}

/// Whether the data objects with this top-level ID are templates.
fn is_template(tag: u8) -> bool {
    matches!(tag, 26..=51 | 62 | 64)
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final xor.
pub fn crc16_ccitt_false(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Appends tag 63 to an encoded payload body: `body + "6304" + CRC` (upper-case hex).
pub fn append_crc(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    out.push_str(body);
    out.push_str("6304");
    let crc = crc16_ccitt_false(out.as_bytes());
    let _ = write!(out, "{crc:04X}");
    out
}

/// Whether the payload ends in `6304` + four hex digits that equal (ignoring case) the
/// CRC-16/CCITT-FALSE of everything before them. Checks nothing else.
pub fn crc_matches(payload: &str) -> bool {
    let Some((cut, _)) = payload.char_indices().rev().nth(3) else {
        return false;
    };
    let (body, crc) = payload.split_at(cut);
    body.ends_with("6304")
        && crc.bytes().all(|b| b.is_ascii_hexdigit())
        && u16::from_str_radix(crc, 16).ok() == Some(crc16_ccitt_false(body.as_bytes()))
}

/// Encodes data objects (no CRC is added: see [`append_crc`]).
///
/// # Errors
/// [`EmvError::Invalid`] for a tag above 99, [`EmvError::TooLong`] or
/// [`EmvError::WrongLength`] for a value longer than 99 characters or empty.
pub fn encode(fields: &[Field]) -> Result<String, EmvError> {
    let mut out = String::new();
    for f in fields {
        let tag = format!("{:02}", f.tag);
        if f.tag > 99 {
            return Err(EmvError::Invalid {
                tag,
                reason: "IDs are two digits".into(),
            });
        }
        let value = match &f.value {
            Value::Primitive(s) => s.clone(),
            Value::Template(sub) => encode(sub)?,
        };
        let len = value.chars().count();
        if len > MAX_VALUE_LEN {
            return Err(EmvError::TooLong {
                tag,
                max: MAX_VALUE_LEN,
                len,
            });
        }
        if len == 0 {
            return Err(EmvError::WrongLength {
                tag,
                expected: 1,
                len,
            });
        }
        let _ = write!(out, "{tag}{len:02}{value}");
    }
    Ok(out)
}

/// A data object split out of a payload, before templates are opened.
struct Raw {
    tag: u8,
    value: String,
}

fn two_digits(c: &[char]) -> Option<u8> {
    match c {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((*a as u8 - b'0') * 10 + (*b as u8 - b'0'))
        }
        _ => None,
    }
}

/// Splits characters into data objects. `parent` is the template tag, if any.
fn split(chars: &[char], parent: Option<&str>) -> Result<Vec<Raw>, EmvError> {
    let within = parent.map_or_else(|| "payload".to_string(), |p| format!("tag {p}"));
    let name = |tag: u8| parent.map_or_else(|| format!("{tag:02}"), |p| format!("{p}.{tag:02}"));
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.len() < 4 {
            return Err(EmvError::Truncated { within, offset: i });
        }
        let tag = two_digits(&rest[..2]).ok_or_else(|| EmvError::BadId {
            within: within.clone(),
            offset: i,
            found: rest[..2].iter().collect(),
        })?;
        let len = match two_digits(&rest[2..4]) {
            Some(n) if n > 0 => usize::from(n),
            _ => {
                return Err(EmvError::BadLength {
                    tag: name(tag),
                    found: rest[2..4].iter().collect(),
                })
            }
        };
        let available = rest.len() - 4;
        if len > available {
            return Err(EmvError::Overrun {
                tag: name(tag),
                len,
                available,
            });
        }
        out.push(Raw {
            tag,
            value: rest[4..4 + len].iter().collect(),
        });
        i += 4 + len;
    }
    Ok(out)
}

fn check_no_duplicates(raw: &[Raw], parent: Option<&str>) -> Result<(), EmvError> {
    let mut seen = [false; 100];
    for r in raw {
        let slot = &mut seen[usize::from(r.tag)];
        if *slot {
            let tag =
                parent.map_or_else(|| format!("{:02}", r.tag), |p| format!("{p}.{:02}", r.tag));
            return Err(EmvError::Duplicate { tag });
        }
        *slot = true;
    }
    Ok(())
}

/// Parses and validates a merchant-presented payload.
///
/// Checks, in this order: the data-object structure; tag 00 first; tag 63 last with four
/// hex digits; the CRC; no duplicate tags; the templates' structure; the mandatory tags
/// (00, 52, 53, 58, 59, 60, 63 and one of 02–51); each EMVCo-defined tag's length and
/// format; the rules between tags 55, 56 and 57.
///
/// # Errors
/// An [`EmvError`] naming the first tag that breaks a rule, and the rule.
pub fn parse(payload: &str) -> Result<Payload, EmvError> {
    if payload.is_empty() {
        return Err(EmvError::Empty);
    }
    let chars: Vec<char> = payload.chars().collect();
    let raw = split(&chars, None)?;

    // Tag 00 first, tag 63 last.
    if let Some(first) = raw.first().filter(|r| r.tag != 0) {
        if raw.iter().any(|r| r.tag == 0) {
            return Err(EmvError::FormatIndicatorNotFirst {
                found: format!("{:02}", first.tag),
            });
        }
        return Err(missing(0));
    }
    match raw.iter().position(|r| r.tag == 63) {
        None => return Err(missing(63)),
        Some(p) if p + 1 != raw.len() => {
            return Err(EmvError::CrcNotLast {
                found: format!("{:02}", raw[p + 1].tag),
            })
        }
        Some(_) => {}
    }
    let crc = raw.last().map(|r| r.value.as_str()).unwrap_or_default();
    exact_len("63", crc, 4)?;
    if !crc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EmvError::Invalid {
            tag: "63".into(),
            reason: format!("`{crc}` is not four hex digits"),
        });
    }
    // Tag 63 is last, four ASCII characters: the body is all but the last four bytes.
    let body = &payload[..payload.len() - 4];
    let computed = crc16_ccitt_false(body.as_bytes());
    if u16::from_str_radix(crc, 16).ok() != Some(computed) {
        return Err(EmvError::CrcMismatch {
            found: crc.to_string(),
            computed,
        });
    }

    check_no_duplicates(&raw, None)?;
    let mut fields = Vec::with_capacity(raw.len());
    for r in raw {
        let value = if is_template(r.tag) {
            let parent = format!("{:02}", r.tag);
            let chars: Vec<char> = r.value.chars().collect();
            let sub = split(&chars, Some(&parent))?;
            check_no_duplicates(&sub, Some(&parent))?;
            Value::Template(
                sub.into_iter()
                    .map(|s| Field::primitive(s.tag, s.value))
                    .collect(),
            )
        } else {
            Value::Primitive(r.value)
        };
        fields.push(Field { tag: r.tag, value });
    }
    let payload = Payload { fields };
    payload.validate()?;
    Ok(payload)
}

const MANDATORY: [(u8, &str); 7] = [
    (0, "payload format indicator"),
    (52, "merchant category code"),
    (53, "transaction currency"),
    (58, "country code"),
    (59, "merchant name"),
    (60, "merchant city"),
    (63, "CRC"),
];

fn missing(tag: u8) -> EmvError {
    let name = MANDATORY
        .iter()
        .find(|(t, _)| *t == tag)
        .map_or("mandatory", |(_, n)| n);
    EmvError::Missing {
        tag: format!("{tag:02}"),
        name,
    }
}

fn exact_len(tag: &str, v: &str, expected: usize) -> Result<(), EmvError> {
    let len = v.chars().count();
    if len == expected {
        Ok(())
    } else {
        Err(EmvError::WrongLength {
            tag: tag.into(),
            expected,
            len,
        })
    }
}

fn max_len(tag: &str, v: &str, max: usize) -> Result<(), EmvError> {
    let len = v.chars().count();
    if len <= max {
        Ok(())
    } else {
        Err(EmvError::TooLong {
            tag: tag.into(),
            max,
            len,
        })
    }
}

fn numeric(tag: &str, v: &str, len: usize) -> Result<(), EmvError> {
    exact_len(tag, v, len)?;
    if v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(EmvError::NotNumeric {
            tag: tag.into(),
            value: v.into(),
        })
    }
}

/// Format "ans": printable ASCII, at most `max` characters.
fn ans(tag: &str, v: &str, max: usize) -> Result<(), EmvError> {
    if !v.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err(EmvError::BadCharacters {
            tag: tag.into(),
            reason: "only printable ASCII is allowed (format ans)",
        });
    }
    max_len(tag, v, max)
}

/// Format "S": any characters but control characters.
fn string(tag: &str, v: &str, max: usize) -> Result<(), EmvError> {
    if v.chars().any(char::is_control) {
        return Err(EmvError::BadCharacters {
            tag: tag.into(),
            reason: "control characters are not allowed",
        });
    }
    max_len(tag, v, max)
}

/// `\d+(\.\d+)?`, at most `max` characters.
fn amount(tag: &str, v: &str, max: usize) -> Result<(), EmvError> {
    max_len(tag, v, max)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match v.split_once('.') {
        Some((i, f)) => digits(i) && digits(f),
        None => digits(v),
    };
    if ok {
        Ok(())
    } else {
        Err(EmvError::BadAmount {
            tag: tag.into(),
            value: v.into(),
        })
    }
}

fn invalid(tag: &str, reason: impl Into<String>) -> EmvError {
    EmvError::Invalid {
        tag: tag.into(),
        reason: reason.into(),
    }
}

/// A parsed, validated merchant-presented payload. Built only by [`parse`], so the mandatory
/// tags are always there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    fields: Vec<Field>,
}

impl Payload {
    /// All top-level data objects in payload order (templates nested).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The top-level data object with this tag.
    pub fn get(&self, tag: u8) -> Option<&Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }

    /// The value of a top-level primitive.
    pub fn primitive(&self, tag: u8) -> Option<&str> {
        self.get(tag).and_then(Field::as_str)
    }

    /// The value of sub-tag `sub` of template `tag`.
    pub fn sub(&self, tag: u8, sub: u8) -> Option<&str> {
        self.get(tag)?
            .subfields()?
            .iter()
            .find(|f| f.tag == sub)
            .and_then(Field::as_str)
    }

    /// Tag 01, if present.
    pub fn point_of_initiation(&self) -> Option<PointOfInitiation> {
        match self.primitive(1)? {
            "11" => Some(PointOfInitiation::Static),
            "12" => Some(PointOfInitiation::Dynamic),
            _ => None,
        }
    }

    /// Tag 52, the merchant category code (four digits).
    pub fn mcc(&self) -> &str {
        self.primitive(52).unwrap_or_default()
    }

    /// Tag 53 as written (three digits, ISO 4217 numeric).
    pub fn currency_numeric(&self) -> &str {
        self.primitive(53).unwrap_or_default()
    }

    /// Tag 53 as a [`Currency`].
    ///
    /// # Errors
    /// [`EmvError::UnknownCurrency`] if our currency table lacks the numeric code.
    pub fn currency(&self) -> Result<Currency, EmvError> {
        let numeric = self.currency_numeric();
        numeric
            .parse::<u16>()
            .ok()
            .and_then(|n| currency_table().get(&n).copied())
            .ok_or_else(|| EmvError::UnknownCurrency {
                numeric: numeric.into(),
            })
    }

    /// Tag 54 in minor units of tag 53's currency; `None` when the payload has no amount
    /// (the payer types it). Decimals beyond the currency's exponent are accepted only if
    /// they are zeros (`150.00` JPY is 150 yen).
    ///
    /// # Errors
    /// [`EmvError::UnknownCurrency`], or [`EmvError::AmountPrecision`] for an amount that is
    /// not a whole number of minor units or does not fit.
    pub fn amount(&self) -> Result<Option<Money>, EmvError> {
        let Some(v) = self.primitive(54) else {
            return Ok(None);
        };
        let currency = self.currency()?;
        let bad = || EmvError::AmountPrecision {
            value: v.into(),
            currency,
        };
        let exp = currency.exponent() as usize;
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        let (kept, dropped) = frac.split_at(frac.len().min(exp));
        if dropped.bytes().any(|b| b != b'0') {
            return Err(bad());
        }
        let digits = format!("{int}{kept:0<exp$}");
        let minor = digits.parse::<i64>().map_err(|_| bad())?;
        Ok(Some(Money::new(minor, currency)))
    }

    /// Tag 58, ISO 3166-1 alpha-2.
    pub fn country(&self) -> &str {
        self.primitive(58).unwrap_or_default()
    }

    /// Tag 59.
    pub fn merchant_name(&self) -> &str {
        self.primitive(59).unwrap_or_default()
    }

    /// Tag 60.
    pub fn merchant_city(&self) -> &str {
        self.primitive(60).unwrap_or_default()
    }

    /// Tag 62 sub-tag 05, the reference label (our per-session reference).
    pub fn reference(&self) -> Option<&str> {
        self.sub(62, 5)
    }

    /// Tag 62 sub-tag 07, the terminal label.
    pub fn terminal_label(&self) -> Option<&str> {
        self.sub(62, 7)
    }

    /// The merchant account information data objects (tags 02–51).
    pub fn merchant_accounts(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| (2..=51).contains(&f.tag))
    }

    /// Mandatory tags, per-tag formats and the rules between tags.
    fn validate(&self) -> Result<(), EmvError> {
        for (tag, _) in MANDATORY {
            if self.get(tag).is_none() {
                return Err(missing(tag));
            }
        }
        if self.merchant_accounts().next().is_none() {
            return Err(EmvError::MissingMerchantAccount);
        }
        for f in &self.fields {
            let tag = format!("{:02}", f.tag);
            match &f.value {
                Value::Primitive(v) => check_primitive(f.tag, &tag, v)?,
                Value::Template(sub) => check_template(f.tag, &tag, sub)?,
            }
        }
        let tip = self.primitive(55);
        let has = |t| self.get(t).is_some();
        match (tip, has(56), has(57)) {
            (Some("02"), false, _) => Err(invalid("56", "missing: tag 55 is 02 (fixed fee)")),
            (Some("03"), _, false) => Err(invalid("57", "missing: tag 55 is 03 (percentage fee)")),
            (t, true, _) if t != Some("02") => Err(invalid("56", "present only when tag 55 is 02")),
            (t, _, true) if t != Some("03") => Err(invalid("57", "present only when tag 55 is 03")),
            _ => Ok(()),
        }
    }
}

fn check_primitive(t: u8, tag: &str, v: &str) -> Result<(), EmvError> {
    match t {
        0 => {
            numeric(tag, v, 2)?;
            if v != "01" {
                return Err(invalid(
                    tag,
                    format!("payload format indicator must be `01`, not `{v}`"),
                ));
            }
        }
        1 => {
            if v != "11" && v != "12" {
                return Err(invalid(
                    tag,
                    format!(
                        "point of initiation must be `11` (static) or `12` (dynamic), not `{v}`"
                    ),
                ));
            }
        }
        2..=25 => ans(tag, v, MAX_VALUE_LEN)?,
        52 => numeric(tag, v, 4)?,
        53 => numeric(tag, v, 3)?,
        54 | 56 => amount(tag, v, 13)?,
        55 => {
            numeric(tag, v, 2)?;
            if !matches!(v, "01" | "02" | "03") {
                return Err(invalid(
                    tag,
                    format!("tip indicator must be 01, 02 or 03, not `{v}`"),
                ));
            }
        }
        57 => amount(tag, v, 5)?,
        58 => {
            exact_len(tag, v, 2)?;
            if !v.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    tag,
                    format!("`{v}` is not an ISO 3166-1 alpha-2 code"),
                ));
            }
        }
        59 => ans(tag, v, 25)?,
        60 => ans(tag, v, 15)?,
        61 => ans(tag, v, 10)?,
        63 => {} // checked with the CRC
        _ => string(tag, v, MAX_VALUE_LEN)?,
    }
    Ok(())
}

fn check_template(t: u8, tag: &str, sub: &[Field]) -> Result<(), EmvError> {
    let has = |s: u8| sub.iter().any(|f| f.tag == s);
    let need = |s: u8, name: &'static str| {
        if has(s) {
            Ok(())
        } else {
            Err(EmvError::Missing {
                tag: format!("{tag}.{s:02}"),
                name,
            })
        }
    };
    match t {
        26..=51 => need(0, "globally unique identifier")?,
        64 => {
            need(0, "language preference")?;
            need(1, "merchant name, alternate language")?;
        }
        _ => {}
    }
    for f in sub {
        let name = format!("{tag}.{:02}", f.tag);
        let v = f.as_str().unwrap_or_default();
        match (t, f.tag) {
            (26..=51, 0) => ans(&name, v, 32)?,
            (26..=51, _) => ans(&name, v, MAX_VALUE_LEN)?,
            (62, 1..=8) => ans(&name, v, MAX_LABEL_LEN)?,
            (62, 9) => {
                ans(&name, v, 3)?;
                if !v.bytes().all(|b| matches!(b, b'A' | b'M' | b'E')) {
                    return Err(invalid(
                        &name,
                        "consumer data request is made of A, M and E",
                    ));
                }
            }
            (64, 0) => {
                exact_len(&name, v, 2)?;
                ans(&name, v, 2)?;
            }
            (64, 1) => string(&name, v, 25)?,
            (64, 2) => string(&name, v, 15)?,
            _ => string(&name, v, MAX_VALUE_LEN)?,
        }
    }
    Ok(())
}

/// Numeric ISO 4217 code → currency, for every code `Currency::numeric` knows. Built once by
/// asking it about every three-letter code, so the two tables cannot drift apart.
fn currency_table() -> &'static HashMap<u16, Currency> {
    static TABLE: OnceLock<HashMap<u16, Currency>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::new();
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                for c in b'A'..=b'Z' {
                    let code = [a, b, c];
                    let Ok(code) = std::str::from_utf8(&code) else {
                        continue;
                    };
                    if let Ok(cur) = Currency::parse(code) {
                        if let Some(n) = cur.numeric() {
                            map.insert(n, cur);
                        }
                    }
                }
            }
        }
        map
    })
}

/// The merchant data of the dynamic payload, from the configuration.
///
/// Call [`MerchantConfig::validate`] at start-up; [`dynamic_payload`] validates again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    /// The merchant account template ID, 26–51.
    pub account_template_id: u8,
    /// Sub-tag 00 of the template: the payment network's globally unique identifier (an AID
    /// or reverse domain name), 1–32 printable ASCII characters.
    pub guid: String,
    /// Sub-tag 01 of the template: the merchant's identifier at that network.
    pub merchant_id: String,
    /// Tag 52: the ISO 18245 merchant category code, four digits (5814 fast food, 5499
    /// misc. food stores, …).
    pub mcc: String,
    /// Tag 59: 1–25 printable ASCII characters.
    pub name: String,
    /// Tag 60: 1–15 printable ASCII characters.
    pub city: String,
    /// Tag 58: ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// Tag 61: 1–10 printable ASCII characters.
    #[serde(default)]
    pub postal_code: Option<String>,
}

impl MerchantConfig {
    /// Checks every field against the EMVCo formats.
    ///
    /// # Errors
    /// [`EmvError::Config`] naming the field.
    pub fn validate(&self) -> Result<(), EmvError> {
        fn text(field: &'static str, v: &str, max: usize) -> Result<(), EmvError> {
            if v.is_empty() || v.len() > max || !v.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
                return Err(EmvError::Config {
                    field,
                    reason: format!("`{v}` must be 1 to {max} printable ASCII characters"),
                });
            }
            Ok(())
        }
        if !(26..=51).contains(&self.account_template_id) {
            return Err(EmvError::Config {
                field: "account_template_id",
                reason: format!(
                    "{} is not a template ID from 26 to 51",
                    self.account_template_id
                ),
            });
        }
        text("guid", &self.guid, 32)?;
        // The template holds "00" LL guid "01" LL merchant_id within 99 characters.
        text(
            "merchant_id",
            &self.merchant_id,
            MAX_VALUE_LEN - 8 - self.guid.len(),
        )?;
        if self.mcc.len() != 4 || !self.mcc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EmvError::Config {
                field: "mcc",
                reason: format!("`{}` is not a four-digit merchant category code", self.mcc),
            });
        }
        text("name", &self.name, 25)?;
        text("city", &self.city, 15)?;
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(EmvError::Config {
                field: "country",
                reason: format!(
                    "`{}` is not an upper-case ISO 3166-1 alpha-2 code",
                    self.country
                ),
            });
        }
        if let Some(p) = &self.postal_code {
            text("postal_code", p, 10)?;
        }
        Ok(())
    }
}

fn label(tag: &str, v: &str) -> Result<(), EmvError> {
    if v.is_empty() {
        return Err(EmvError::WrongLength {
            tag: tag.into(),
            expected: 1,
            len: 0,
        });
    }
    ans(tag, v, MAX_LABEL_LEN)
}

/// Builds the dynamic (tag 01 = `12`) payload for one checkout: merchant account template,
/// tags 52/53/54/58/59/60 (61), tag 62 with the reference label (05) and optionally the
/// terminal label (07), and the CRC in tag 63. The amount is written with the currency's
/// exponent (350 EUR minor units → `3.50`, 150 JPY → `150`).
///
/// # Errors
/// [`EmvError::Config`] for a bad configuration, [`EmvError::UnsupportedCurrency`] for a
/// currency without a numeric code, [`EmvError::NonPositiveAmount`], a length or character
/// error naming 62.05 / 62.07 for a bad reference or terminal label, [`EmvError::TooLong`]
/// for an amount over 13 characters.
pub fn dynamic_payload(
    cfg: &MerchantConfig,
    amount_due: Money,
    reference: &str,
    terminal: Option<&str>,
) -> Result<String, EmvError> {
    cfg.validate()?;
    let currency = amount_due.currency;
    let numeric = currency
        .numeric()
        .ok_or(EmvError::UnsupportedCurrency(currency))?;
    if amount_due.minor <= 0 {
        return Err(EmvError::NonPositiveAmount(amount_due.minor));
    }
    let formatted = currency.format_minor(amount_due.minor);
    amount("54", &formatted, 13)?;
    label("62.05", reference)?;
    let mut additional = vec![Field::primitive(5, reference)];
    if let Some(t) = terminal {
        label("62.07", t)?;
        additional.push(Field::primitive(7, t));
    }
    let mut fields = vec![
        Field::primitive(0, "01"),
        Field::primitive(1, "12"),
        Field::template(
            cfg.account_template_id,
            vec![
                Field::primitive(0, cfg.guid.as_str()),
                Field::primitive(1, cfg.merchant_id.as_str()),
            ],
        ),
        Field::primitive(52, cfg.mcc.as_str()),
        Field::primitive(53, format!("{numeric:03}")),
        Field::primitive(54, formatted),
        Field::primitive(58, cfg.country.as_str()),
        Field::primitive(59, cfg.name.as_str()),
        Field::primitive(60, cfg.city.as_str()),
    ];
    if let Some(p) = &cfg.postal_code {
        fields.push(Field::primitive(61, p.as_str()));
    }
    fields.push(Field::template(62, additional));
    let payload = append_crc(&encode(&fields)?);
    // A safety net: what we show must pass our own parser.
    parse(&payload)?;
    Ok(payload)
}

/// A per-session reference for tag 62/05: `<machine>-<sid>`, at most 25 characters.
///
/// Characters of the machine ID other than ASCII letters, digits, `-`, `_` and `.` become
/// `_`; the machine ID is cut from the right if needed so the whole session number always
/// fits (a `u64` has at most 20 digits). With an empty machine ID the reference is the
/// session number alone.
pub fn session_reference(machine_id: &str, sid: SessionId) -> String {
    let sid = sid.to_string();
    let room = MAX_LABEL_LEN.saturating_sub(sid.len() + 1);
    let machine: String = machine_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(room)
        .collect();
    if machine.is_empty() {
        sid
    } else {
        format!("{machine}-{sid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SG: &str = "00020101021226380015com.example.pay0115MID00012345678952045814530370254043.505802SG5912VENDO SNACKS6009SINGAPORE62230110INV00012340705VM04263049625";

    fn cfg() -> MerchantConfig {
        MerchantConfig {
            account_template_id: 26,
            guid: "com.example.pay".into(),
            merchant_id: "MID000123456789".into(),
            mcc: "5814".into(),
            name: "VENDO SNACKS".into(),
            city: "SINGAPORE".into(),
            country: "SG".into(),
            postal_code: None,
        }
    }

    fn cur(c: &str) -> Currency {
        Currency::parse(c).unwrap()
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
        assert_eq!(crc16_ccitt_false(b""), 0xFFFF);
    }

    #[test]
    fn a_known_payload_parses_with_its_accessors() {
        let p = parse(SG).unwrap();
        assert_eq!(p.point_of_initiation(), Some(PointOfInitiation::Dynamic));
        assert_eq!(p.currency().unwrap(), cur("SGD"));
        assert_eq!(p.amount().unwrap(), Some(Money::new(350, cur("SGD"))));
        assert_eq!(p.merchant_name(), "VENDO SNACKS");
        assert_eq!(p.merchant_city(), "SINGAPORE");
        assert_eq!(p.sub(62, 1), Some("INV0001234"));
        assert_eq!(p.terminal_label(), Some("VM042"));
        assert_eq!(p.reference(), None);
        assert_eq!(p.sub(26, 0), Some("com.example.pay"));
        assert!(crc_matches(SG));
        assert!(!crc_matches(&SG.replace("VENDO", "VEND0")));
    }

    #[test]
    fn the_crc_is_compared_ignoring_case() {
        assert_eq!(append_crc(&SG[..SG.len() - 8]), SG);
        let th = "00020101021129370016A000000677010111011300668123456785204541153037645802TH5913KIOSK MART 246007BANGKOK63047D85";
        assert!(parse(th).is_ok());
        let lower = th.replace("7D85", "7d85");
        assert!(crc_matches(&lower));
        assert!(parse(&lower).is_ok());
    }

    #[test]
    fn dynamic_payloads_format_the_amount_with_the_currency_exponent() {
        let eur = dynamic_payload(&cfg(), Money::new(350, cur("EUR")), "M1-7", None).unwrap();
        assert!(eur.contains("5303978"), "{eur}");
        assert!(eur.contains("54043.50"), "{eur}");
        let jpy = dynamic_payload(&cfg(), Money::new(150, cur("JPY")), "M1-7", Some("T1")).unwrap();
        assert!(jpy.contains("5303392540315058"), "{jpy}");
        let p = parse(&jpy).unwrap();
        assert_eq!(p.amount().unwrap(), Some(Money::new(150, cur("JPY"))));
        assert_eq!(p.reference(), Some("M1-7"));
        assert_eq!(p.terminal_label(), Some("T1"));
        let kwd = dynamic_payload(&cfg(), Money::new(1005, cur("KWD")), "r", None).unwrap();
        assert!(kwd.contains("54051.005"), "{kwd}");
    }

    #[test]
    fn the_generated_payload_matches_the_shared_vector_layout() {
        // Same merchant as the `dynamic_with_amount_and_bill_ref` vector; our payload puts
        // the reference in 62/05 instead of the bill number in 62/01.
        let s = dynamic_payload(
            &cfg(),
            Money::new(350, cur("SGD")),
            "INV0001234",
            Some("VM042"),
        )
        .unwrap();
        assert_eq!(
            s,
            append_crc(&SG[..SG.len() - 8].replace("0110INV", "0510INV"))
        );
    }

    #[test]
    fn generation_refuses_bad_input() {
        let eur = cur("EUR");
        assert_eq!(
            dynamic_payload(&cfg(), Money::new(0, eur), "r", None),
            Err(EmvError::NonPositiveAmount(0))
        );
        assert_eq!(
            dynamic_payload(&cfg(), Money::new(1, cur("XYZ")), "r", None),
            Err(EmvError::UnsupportedCurrency(cur("XYZ")))
        );
        let long = "R".repeat(26);
        assert!(matches!(
            dynamic_payload(&cfg(), Money::new(1, eur), &long, None),
            Err(EmvError::TooLong { tag, .. }) if tag == "62.05"
        ));
        assert!(matches!(
            dynamic_payload(&cfg(), Money::new(1, eur), "r", Some("tërm")),
            Err(EmvError::BadCharacters { tag, .. }) if tag == "62.07"
        ));
        assert!(matches!(
            dynamic_payload(&cfg(), Money::new(i64::MAX, eur), "r", None),
            Err(EmvError::TooLong { tag, .. }) if tag == "54"
        ));
    }

    #[test]
    fn merchant_config_is_validated_field_by_field() {
        let field_of = |c: MerchantConfig| match c.validate() {
            Err(EmvError::Config { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert!(cfg().validate().is_ok());
        assert_eq!(
            field_of(MerchantConfig {
                account_template_id: 25,
                ..cfg()
            }),
            "account_template_id"
        );
        assert_eq!(
            field_of(MerchantConfig {
                name: "N".repeat(26),
                ..cfg()
            }),
            "name"
        );
        assert_eq!(
            field_of(MerchantConfig {
                city: "C".repeat(16),
                ..cfg()
            }),
            "city"
        );
        assert_eq!(
            field_of(MerchantConfig {
                city: "Zürich".into(),
                ..cfg()
            }),
            "city"
        );
        assert_eq!(
            field_of(MerchantConfig {
                mcc: "58a4".into(),
                ..cfg()
            }),
            "mcc"
        );
        assert_eq!(
            field_of(MerchantConfig {
                country: "sg".into(),
                ..cfg()
            }),
            "country"
        );
        assert_eq!(
            field_of(MerchantConfig {
                guid: String::new(),
                ..cfg()
            }),
            "guid"
        );
        assert_eq!(
            field_of(MerchantConfig {
                merchant_id: "M".repeat(80),
                ..cfg()
            }),
            "merchant_id"
        );
        assert_eq!(
            field_of(MerchantConfig {
                postal_code: Some("12345678901".into()),
                ..cfg()
            }),
            "postal_code"
        );
        let toml_like: MerchantConfig = serde_json::from_str(
            r#"{"account_template_id":26,"guid":"g","merchant_id":"m","mcc":"5814",
                "name":"n","city":"c","country":"DE","postal_code":"10115"}"#,
        )
        .unwrap();
        assert!(toml_like.validate().is_ok());
    }

    #[test]
    fn session_references_fit_in_25_characters() {
        assert_eq!(session_reference("vm-042", 17), "vm-042-17");
        assert_eq!(session_reference("", 17), "17");
        assert_eq!(session_reference("kiosk ü/1", 3), "kiosk___1-3");
        let r = session_reference(&"m".repeat(40), u64::MAX);
        assert_eq!(r.len(), 25);
        assert!(r.ends_with(&u64::MAX.to_string()));
        assert_eq!(
            session_reference("abc", u64::MAX),
            format!("abc-{}", u64::MAX)
        );
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        // Tag 64 (format S) may carry non-ASCII: "Café" is 4 characters, 5 bytes.
        let body = &SG[..SG.len() - 8];
        let p = append_crc(&format!("{body}64140002FR0104Café"));
        let parsed = parse(&p).unwrap();
        assert_eq!(parsed.sub(64, 1), Some("Café"));
        // Counting bytes instead would be an overrun.
        let wrong = append_crc(&format!("{body}64150002FR0105Café"));
        assert!(parse(&wrong).is_err());
    }

    #[test]
    fn structural_errors_name_the_tag() {
        assert_eq!(parse(""), Err(EmvError::Empty));
        assert!(matches!(parse("0002"), Err(EmvError::Overrun { tag, .. }) if tag == "00"));
        assert!(matches!(parse("000"), Err(EmvError::Truncated { .. })));
        assert!(matches!(parse("0a0201"), Err(EmvError::BadId { .. })));
        assert!(matches!(parse("0000"), Err(EmvError::BadLength { tag, .. }) if tag == "00"));
        let dup = append_crc("000201010212010212");
        assert_eq!(parse(&dup), Err(EmvError::Duplicate { tag: "01".into() }));
        let not_first = append_crc("010212000201");
        assert!(matches!(
            parse(&not_first),
            Err(EmvError::FormatIndicatorNotFirst { .. })
        ));
        let after_crc = format!("{SG}010212");
        assert!(matches!(parse(&after_crc), Err(EmvError::CrcNotLast { found }) if found == "01"));
    }

    #[test]
    fn amounts_are_converted_exactly() {
        let body = |amt: &str, cur: &str| {
            let s = SG[..SG.len() - 8]
                .replace("54043.50", &format!("54{:02}{amt}", amt.len()))
                .replace("5303702", &format!("5303{cur}"));
            parse(&append_crc(&s)).unwrap()
        };
        assert_eq!(body("3.5", "702").amount().unwrap().unwrap().minor, 350);
        assert_eq!(body("3", "702").amount().unwrap().unwrap().minor, 300);
        assert_eq!(body("150.00", "392").amount().unwrap().unwrap().minor, 150);
        assert!(matches!(
            body("150.5", "392").amount(),
            Err(EmvError::AmountPrecision { .. })
        ));
        assert!(matches!(
            body("1.005", "702").amount(),
            Err(EmvError::AmountPrecision { .. })
        ));
        assert!(matches!(
            body("1", "999").amount(),
            Err(EmvError::UnknownCurrency { .. })
        ));
    }

    #[test]
    fn bad_formats_are_rejected() {
        let base = &SG[..SG.len() - 8];
        let with = |from: &str, to: &str| parse(&append_crc(&base.replace(from, to)));
        assert!(
            matches!(with("54043.50", "54043.5a"), Err(EmvError::BadAmount { tag, .. }) if tag == "54")
        );
        assert!(matches!(
            with("54043.50", "5404.350"),
            Err(EmvError::BadAmount { .. })
        ));
        assert!(
            matches!(with("5303702", "53037a2"), Err(EmvError::NotNumeric { tag, .. }) if tag == "53")
        );
        assert!(
            matches!(with("52045814", "5203581"), Err(EmvError::WrongLength { tag, .. }) if tag == "52")
        );
        assert!(
            matches!(with("010212", "010213"), Err(EmvError::Invalid { tag, .. }) if tag == "01")
        );
        assert!(
            matches!(with("5802SG", "5802sg"), Err(EmvError::Invalid { tag, .. }) if tag == "58")
        );
        assert!(matches!(
            with("5912VENDO SNACKS", "5926VENDO SNACKS VENDO SNACKSX"),
            Err(EmvError::TooLong { tag, max: 25, .. }) if tag == "59"
        ));
        assert!(matches!(
            with("26380015com.example.pay", "26380215com.example.pay"),
            Err(EmvError::Missing { tag, .. }) if tag == "26.00"
        ));
        assert!(
            matches!(with("5802SG", "5502025802SG"), Err(EmvError::Invalid { tag, .. }) if tag == "56")
        );
        assert!(
            matches!(with("5802SG", "56031505802SG"), Err(EmvError::Invalid { tag, .. }) if tag == "56")
        );
        assert!(
            matches!(with("5802SG", "55020356031505802SG"), Err(EmvError::Invalid { tag, .. }) if tag == "57")
        );
        assert!(with("5802SG", "550202560315057040.505802SG").is_err());
        assert!(with("5802SG", "55020256031505802SG").is_ok());
        assert!(
            matches!(with("5802SG", "550201"), Err(EmvError::Missing { tag, .. }) if tag == "58")
        );
    }
}
