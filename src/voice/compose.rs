//! Composition: a catalogue message becomes a sequence of pre-rendered clips.
//!
//! Text-to-speech runs at setup time, not at the kiosk (see `docs`/setup notes: espeak-ng
//! renders clips, Mandarin from pinyin). What varies at run time (prices, counts, slot
//! codes) is composed from number-word clips, the way telephone systems do it:
//!
//! - the fixed text between placeholders of entry `<id>` is the clip `seg.<id>.<n>`
//!   (`n` counts the text pieces of the template from 0; pieces with nothing to say, such as
//!   a lone full stop, have no clip);
//! - English numbers: `num.zero` … `num.nineteen`, `num.twenty` … `num.ninety`,
//!   `num.hundred`, `num.thousand`, `num.million`, `num.billion` (American style: no "and"
//!   inside a number); money is "twelve euros and fifty cents" with `word.and` between the
//!   units and singular/plural unit clips (`cur.euro`/`cur.euros`, `cur.cent`/`cur.cents`,
//!   dollars, pounds/pence, yuan/fen); zero is "zero euros";
//! - Chinese numbers: one clip per pinyin syllable (`num.shi2`, `num.er4`, `num.ling2`, …)
//!   with the 零 rule (1005 → yi4 qian1 ling2 wu3), 两 for a leading 2 that counts
//!   (两百, 两元) and the tone change of a leading 一 before the next syllable (yi4 bai3,
//!   yi2 wan4, and for a count also before the measure word: 一元 yi4 yuan2, 一次 yi2 ci4);
//!   ordinals (`{item}`: 第一件, 第二件) and the integer part of a decimal say a lone 1
//!   as yi1 and 2 as er4;
//! - Chinese money: 元角分 for CNY (12.50 → shi2 er4 yuan2 wu3 jiao3, 0.05 → wu3 fen1);
//!   any other currency is read as a decimal followed by its Chinese name, which is how
//!   Mandarin speakers say foreign prices (12.50 EUR → shi2 er4 dian3 wu3 ou1 yuan2, i.e.
//!   十二点五欧元; USD 美元, GBP 英镑);
//! - a currency without unit words (not EUR, USD, GBP or CNY) is said as the number, "point"
//!   and digits, then the letters of its code;
//! - a slot code (`A3`) is a letter clip (`letter.a`, spoken with the English voice in both
//!   languages, as shoppers read it) then the column number;
//! - `{name}` is silent.
//!
//! Clip names use only `a-z 0-9 . _`, so a clip's file is `<dir>/<lang>/<name>.wav`.
//! [`clip_texts`] lists every clip with the text to render, so the setup script renders
//! exactly the clips composition can ask for.

use super::catalog::{pieces, Arg, Args, Catalog, Lang, Piece, PlaceholderKind};
use crate::core::{Currency, SlotId};
use std::collections::BTreeSet;
use std::fmt;

/// The name of one pre-rendered clip, e.g. `seg.welcome.0` or `num.twelve`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Clip(String);

impl Clip {
    fn new(name: impl Into<String>) -> Clip {
        Clip(name.into())
    }

    /// The clip name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The clip's file name in its language folder: `<name>.wav`.
    pub fn file_name(&self) -> String {
        format!("{}.wav", self.0)
    }
}

impl fmt::Display for Clip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Clip {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Why a message could not be composed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// No such catalogue entry.
    #[error("no catalogue entry `{0}`")]
    UnknownId(String),
    /// The entry is a page-only label (`voice = false`).
    #[error("catalogue entry `{0}` has no spoken form (voice = false)")]
    NotVoiced(String),
    /// An argument the entry needs is missing or of the wrong kind.
    #[error("catalogue entry `{id}` needs a {kind:?} value for `{{{name}}}`")]
    MissingArg {
        /// Entry id.
        id: String,
        /// Placeholder name.
        name: String,
        /// What it must be.
        kind: PlaceholderKind,
    },
    /// A number too large (or negative) to say.
    #[error("cannot say the number {0}: only 0 to {MAX_SPOKEN} can be spoken")]
    OutOfRange(i64),
}

/// Largest whole number that can be spoken (just under a trillion).
pub const MAX_SPOKEN: u64 = 999_999_999_999;

/// Which espeak-ng voice renders a clip.
pub const VOICE_EN: &str = "en-us";
/// The Mandarin voice that reads tone-numbered pinyin (Debian's `cmn` misreads hanzi).
pub const VOICE_ZH: &str = "cmn-latn-pinyin";

/// The clips that say a catalogue message, in order.
///
/// # Errors
/// [`ComposeError`] if the id is unknown or not voiced, an argument is missing, or a number
/// cannot be said.
pub fn compose(
    cat: &Catalog,
    lang: Lang,
    id: &str,
    args: &Args,
) -> Result<Vec<Clip>, ComposeError> {
    let entry = cat
        .entry(id)
        .ok_or_else(|| ComposeError::UnknownId(id.to_string()))?;
    let template = entry
        .spoken(lang)
        .ok_or_else(|| ComposeError::NotVoiced(id.to_string()))?;
    // Validated at load, so this does not fail; treat a failure as "nothing to say".
    let parts = pieces(template).unwrap_or_default();
    let mut out = Vec::with_capacity(parts.len() * 4);
    let mut seg = 0;
    for (i, piece) in parts.iter().enumerate() {
        match *piece {
            Piece::Text(text) => {
                if spoken_text(text).is_some() {
                    out.push(Clip::new(segment_clip_name(id, seg)));
                }
                seg += 1;
            }
            Piece::Hole(name) => {
                let kind = PlaceholderKind::of(name);
                let missing = || ComposeError::MissingArg {
                    id: id.to_string(),
                    name: name.to_string(),
                    kind: kind.unwrap_or(PlaceholderKind::Name),
                };
                let arg = args.get_checked(name).ok_or_else(missing)?;
                // Tone of the syllable after the placeholder, for the 一 tone change.
                let next_tone = match parts.get(i + 1) {
                    Some(Piece::Text(t)) => first_tone(t),
                    _ => None,
                };
                match arg {
                    Arg::Money(minor) => out.extend(money_clips(lang, cat.currency(), *minor)?),
                    Arg::Int(n) => {
                        let n = u64::try_from(*n).map_err(|_| ComposeError::OutOfRange(*n))?;
                        let style = if name == "item" {
                            ZhStyle::Plain
                        } else {
                            ZhStyle::Count { next_tone }
                        };
                        out.extend(number_clips(lang, n, style)?);
                    }
                    Arg::Slot(slot) => out.extend(slot_clips(lang, slot)),
                    Arg::Name(_) => {}
                }
            }
        }
    }
    Ok(out)
}

/// The clip name of the `n`th text piece of entry `id`.
pub fn segment_clip_name(id: &str, n: usize) -> String {
    format!("seg.{id}.{n}")
}

/// The text of a template piece as it is spoken: trimmed, without leading punctuation;
/// `None` if nothing is left to say.
fn spoken_text(piece: &str) -> Option<&str> {
    let t = piece
        .trim_start_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
        .trim_end();
    t.chars().any(char::is_alphanumeric).then_some(t)
}

/// The tone number of the first pinyin syllable of a text.
fn first_tone(text: &str) -> Option<u8> {
    let word = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| !w.is_empty())?;
    let tone = word.bytes().last()?;
    (b'1'..=b'5').contains(&tone).then_some(tone - b'0')
}

/// How a Chinese number is read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ZhStyle {
    /// Digits as written (ordinals 第二, decimal parts): a lone 一 stays yi1, 2 is er4.
    /// A leading 一 before a unit still changes tone (一百 yi4 bai3).
    Plain,
    /// A count before a measure word: a leading 2 is 两 (liang3), a leading 一 changes tone
    /// before the next syllable, also the measure word (yi4 before tones 1-3, yi2 before
    /// tone 4).
    Count {
        /// Tone of the syllable that follows the number, if any.
        next_tone: Option<u8>,
    },
}

const EN_SMALL: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const EN_TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const EN_SCALES: [&str; 4] = ["", "thousand", "million", "billion"];

/// Pinyin of the digits 0-9 as read plainly.
const ZH_DIGITS: [&str; 10] = [
    "ling2", "yi1", "er4", "san1", "si4", "wu3", "liu4", "qi1", "ba1", "jiu3",
];
/// Units within a group of four digits: -, 十, 百, 千.
const ZH_UNITS: [&str; 4] = ["", "shi2", "bai3", "qian1"];
/// Group units: -, 万, 亿.
const ZH_GROUPS: [&str; 3] = ["", "wan4", "yi4"];

/// Unit words of a currency.
struct Units {
    /// English major unit, singular and plural.
    en_major: (&'static str, &'static str),
    /// English minor unit, singular and plural.
    en_minor: (&'static str, &'static str),
    /// Chinese name (pinyin syllables) for the decimal reading; `None` for CNY (元角分).
    zh_name: Option<&'static str>,
}

fn units(currency: Currency) -> Option<Units> {
    let u = |en_major, en_minor, zh_name| {
        Some(Units {
            en_major,
            en_minor,
            zh_name,
        })
    };
    match currency.code() {
        "EUR" => u(("euro", "euros"), ("cent", "cents"), Some("ou1 yuan2")),
        "USD" => u(("dollar", "dollars"), ("cent", "cents"), Some("mei3 yuan2")),
        "GBP" => u(("pound", "pounds"), ("penny", "pence"), Some("ying1 bang4")),
        "CNY" => u(("yuan", "yuan"), ("fen", "fen"), None),
        _ => None,
    }
}

/// The clip name of a Chinese currency name: `cur.` and the syllables run together.
fn zh_name_clip(pinyin: &str) -> Clip {
    Clip::new(format!("cur.{}", pinyin.replace(' ', "")))
}

fn num(word: &str) -> Clip {
    Clip::new(format!("num.{word}"))
}

/// The clips that say an amount of money (minor units of `currency`).
///
/// # Errors
/// [`ComposeError::OutOfRange`] for a negative amount or one above [`MAX_SPOKEN`] units.
pub fn money_clips(lang: Lang, currency: Currency, minor: i64) -> Result<Vec<Clip>, ComposeError> {
    let abs = u64::try_from(minor).map_err(|_| ComposeError::OutOfRange(minor))?;
    let exp = currency.exponent();
    let div = 10u64.pow(exp);
    let (major, frac) = (abs / div, abs % div);
    if major > MAX_SPOKEN {
        return Err(ComposeError::OutOfRange(minor));
    }
    let mut out = Vec::new();
    match (lang, units(currency)) {
        (Lang::En, Some(u)) if exp == 2 => {
            if major > 0 || frac == 0 {
                en_number(major, &mut out);
                out.push(cur(if major == 1 {
                    u.en_major.0
                } else {
                    u.en_major.1
                }));
            }
            if frac > 0 {
                if major > 0 {
                    out.push(Clip::new("word.and"));
                }
                en_number(frac, &mut out);
                out.push(cur(if frac == 1 {
                    u.en_minor.0
                } else {
                    u.en_minor.1
                }));
            }
        }
        (Lang::Zh, Some(Units { zh_name: None, .. })) if exp == 2 => {
            // 元角分
            let (jiao, fen) = (frac / 10, frac % 10);
            if major > 0 || frac == 0 {
                zh_number(major, ZhStyle::Count { next_tone: Some(2) }, &mut out);
                out.push(cur("yuan2"));
            }
            if jiao > 0 {
                zh_number(jiao, ZhStyle::Count { next_tone: Some(3) }, &mut out);
                out.push(cur("jiao3"));
            }
            if fen > 0 {
                if jiao == 0 && major > 0 {
                    out.push(num("ling2"));
                }
                zh_number(fen, ZhStyle::Count { next_tone: Some(1) }, &mut out);
                out.push(cur("fen1"));
            }
        }
        (
            Lang::Zh,
            Some(Units {
                zh_name: Some(name),
                ..
            }),
        ) => {
            decimal(lang, major, frac, exp, first_tone(name), &mut out);
            out.push(zh_name_clip(name));
        }
        (_, _) => {
            decimal(lang, major, frac, exp, None, &mut out);
            out.extend(currency.code().chars().map(letter_clip));
        }
    }
    Ok(out)
}

fn cur(word: &str) -> Clip {
    Clip::new(format!("cur.{word}"))
}

/// `major` point `frac` (with its `exp` decimals, trailing zeros dropped); the integer
/// part is read as a count when there is no decimal part (一欧元 yi4 ou1 yuan2).
fn decimal(
    lang: Lang,
    major: u64,
    frac: u64,
    exp: u32,
    next_tone: Option<u8>,
    out: &mut Vec<Clip>,
) {
    let digits = format!("{frac:0width$}", width = exp as usize);
    let digits = digits.trim_end_matches('0');
    match lang {
        Lang::En => en_number(major, out),
        Lang::Zh if digits.is_empty() => zh_number(major, ZhStyle::Count { next_tone }, out),
        Lang::Zh => zh_number(major, ZhStyle::Plain, out),
    }
    if digits.is_empty() {
        return;
    }
    out.push(match lang {
        Lang::En => Clip::new("word.point"),
        Lang::Zh => num("dian3"),
    });
    for d in digits.bytes().map(|b| usize::from(b - b'0')) {
        out.push(num(match lang {
            Lang::En => EN_SMALL[d],
            Lang::Zh => ZH_DIGITS[d],
        }));
    }
}

/// The clips that say a whole number; `style` matters for Chinese only.
///
/// # Errors
/// [`ComposeError::OutOfRange`] above [`MAX_SPOKEN`].
pub fn number_clips(lang: Lang, n: u64, style: ZhStyle) -> Result<Vec<Clip>, ComposeError> {
    if n > MAX_SPOKEN {
        return Err(ComposeError::OutOfRange(
            i64::try_from(n).unwrap_or(i64::MAX),
        ));
    }
    let mut out = Vec::new();
    match lang {
        Lang::En => en_number(n, &mut out),
        Lang::Zh => zh_number(n, style, &mut out),
    }
    Ok(out)
}

/// English number words, American style ("one thousand five").
fn en_number(n: u64, out: &mut Vec<Clip>) {
    if n == 0 {
        out.push(num("zero"));
        return;
    }
    let mut groups = Vec::new();
    let mut rest = n;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    for (scale, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            continue;
        }
        en_below_thousand(g, out);
        if let Some(word) = EN_SCALES.get(scale).filter(|w| !w.is_empty()) {
            out.push(num(word));
        }
    }
}

fn en_below_thousand(n: u64, out: &mut Vec<Clip>) {
    let (h, rest) = ((n / 100) as usize, (n % 100) as usize);
    if h > 0 {
        out.push(num(EN_SMALL[h]));
        out.push(num("hundred"));
    }
    if rest >= 20 {
        out.push(num(EN_TENS[rest / 10]));
        if rest % 10 > 0 {
            out.push(num(EN_SMALL[rest % 10]));
        }
    } else if rest > 0 {
        out.push(num(EN_SMALL[rest]));
    }
}

/// Chinese number syllables (see the module docs for the rules).
fn zh_number(n: u64, style: ZhStyle, out: &mut Vec<Clip>) {
    if n == 0 {
        out.push(num("ling2"));
        return;
    }
    let digits: Vec<u64> = n.to_string().bytes().map(|b| u64::from(b - b'0')).collect();
    let len = digits.len();
    let mut syllables: Vec<&str> = Vec::new();
    let mut zero = false;
    let mut leading = true;
    for (i, &d) in digits.iter().enumerate() {
        let p = len - 1 - i; // position: 0 = ones
        if d == 0 {
            zero = true;
        } else {
            if zero && !syllables.is_empty() {
                syllables.push("ling2");
            }
            zero = false;
            let unit = ZH_UNITS[p % 4];
            // 10-19 at the start: 十, not 一十.
            let skip_one = leading && d == 1 && p % 4 == 1;
            if !skip_one {
                let counts = matches!(style, ZhStyle::Count { .. });
                let digit = if leading && counts && d == 2 && p % 4 != 1 {
                    "liang3"
                } else if leading && d == 1 {
                    "yi?" // tone decided below
                } else {
                    ZH_DIGITS[d as usize]
                };
                syllables.push(digit);
            }
            if !unit.is_empty() {
                syllables.push(unit);
            }
            leading = false;
        }
        if p.is_multiple_of(4) && p > 0 {
            let group_start = i.saturating_sub(3);
            if digits[group_start..=i].iter().any(|&x| x > 0) {
                syllables.push(ZH_GROUPS[p / 4]);
            }
        }
    }
    // The tone change of a leading 一 depends on what follows it.
    if syllables.first() == Some(&"yi?") {
        let next = match syllables.get(1) {
            Some(s) => first_tone(s),
            None => match style {
                ZhStyle::Count { next_tone } => next_tone,
                ZhStyle::Plain => None,
            },
        };
        syllables[0] = match next {
            Some(4) => "yi2",
            Some(1..=3) => "yi4",
            _ => "yi1",
        };
    }
    out.extend(syllables.into_iter().map(num));
}

/// The clip of a Latin letter (both languages say slot letters the English way).
fn letter_clip(c: char) -> Clip {
    Clip::new(format!("letter.{}", c.to_ascii_lowercase()))
}

/// The clips that say a slot code: its row letter, then its column number.
pub fn slot_clips(lang: Lang, slot: &SlotId) -> Vec<Clip> {
    let mut out = vec![letter_clip(char::from(b'a' + slot.row() % 26))];
    let col = u64::from(slot.col()) + 1;
    match lang {
        Lang::En => en_number(col, &mut out),
        Lang::Zh => zh_number(col, ZhStyle::Plain, &mut out),
    }
    out
}

/// One clip to render: where it goes, which espeak-ng voice says it, and the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipText {
    /// Language folder.
    pub lang: Lang,
    /// Clip name (file stem).
    pub name: String,
    /// espeak-ng voice: [`VOICE_EN`] or [`VOICE_ZH`].
    pub voice: &'static str,
    /// What to say (English text, or tone-numbered pinyin for Mandarin).
    pub text: String,
}

/// Every clip composition can ask for, with the text to render: the segments of every
/// voiced entry, the number words, the currency words of every supported currency and the
/// letters, in both languages. Sorted by language then name, no duplicates.
pub fn clip_texts(cat: &Catalog) -> Vec<ClipText> {
    let mut out = Vec::new();
    for lang in Lang::ALL {
        let voice = match lang {
            Lang::En => VOICE_EN,
            Lang::Zh => VOICE_ZH,
        };
        let mut add = |name: String, voice: &'static str, text: String| {
            out.push(ClipText {
                lang,
                name,
                voice,
                text,
            })
        };
        for id in cat.ids() {
            let Some(template) = cat.entry(id).and_then(|e| e.spoken(lang)) else {
                continue;
            };
            let texts = pieces(template)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| match p {
                    Piece::Text(t) => Some(t),
                    Piece::Hole(_) => None,
                });
            for (n, text) in texts.enumerate() {
                if let Some(t) = spoken_text(text) {
                    add(segment_clip_name(id, n), voice, t.to_string());
                }
            }
        }
        for c in 'a'..='z' {
            add(
                letter_clip(c).0,
                VOICE_EN,
                c.to_ascii_uppercase().to_string(),
            );
        }
        match lang {
            Lang::En => {
                let words = EN_SMALL
                    .iter()
                    .chain(&EN_TENS)
                    .chain(&EN_SCALES)
                    .chain(&["hundred"]);
                for w in words.filter(|w| !w.is_empty()) {
                    add(num(w).0, voice, w.to_string());
                }
                add("word.and".into(), voice, "and".into());
                add("word.point".into(), voice, "point".into());
                for code in ["EUR", "USD", "GBP", "CNY"] {
                    let Some(u) = Currency::parse(code).ok().and_then(units) else {
                        continue;
                    };
                    for w in [u.en_major.0, u.en_major.1, u.en_minor.0, u.en_minor.1] {
                        add(cur(w).0, voice, w.to_string());
                    }
                }
            }
            Lang::Zh => {
                let syllables = ZH_DIGITS
                    .iter()
                    .chain(&ZH_UNITS)
                    .chain(&ZH_GROUPS)
                    .chain(&["yi2", "yi4", "liang3", "dian3"]);
                for s in syllables.filter(|s| !s.is_empty()) {
                    add(num(s).0, voice, s.to_string());
                }
                for s in ["yuan2", "jiao3", "fen1"] {
                    add(cur(s).0, voice, s.to_string());
                }
                for code in ["EUR", "USD", "GBP"] {
                    if let Some(name) = Currency::parse(code)
                        .ok()
                        .and_then(units)
                        .and_then(|u| u.zh_name)
                    {
                        add(zh_name_clip(name).0, voice, name.to_string());
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| (a.lang, &a.name).cmp(&(b.lang, &b.name)));
    out.dedup_by(|a, b| a.lang == b.lang && a.name == b.name);
    out
}

/// The names of [`clip_texts`] per language, for checks.
pub fn clip_names(cat: &Catalog, lang: Lang) -> BTreeSet<String> {
    clip_texts(cat)
        .into_iter()
        .filter(|c| c.lang == lang)
        .map(|c| c.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::catalog::{prompt_key, SCREEN_IDS};
    use std::time::Instant;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).expect("code")
    }

    fn says(lang: Lang, code: &str, minor: i64) -> Vec<String> {
        money_clips(lang, currency(code), minor)
            .expect("composes")
            .into_iter()
            .map(|c| c.0)
            .collect()
    }

    fn check(lang: Lang, code: &str, minor: i64, expected: &str) {
        let got = says(lang, code, minor).join(" ");
        assert_eq!(got, expected, "{lang} {code} {minor}");
    }

    #[test]
    fn english_prices_in_euros() {
        let en = Lang::En;
        check(en, "EUR", 5, "num.five cur.cents");
        check(en, "EUR", 10, "num.ten cur.cents");
        check(en, "EUR", 100, "num.one cur.euro");
        check(
            en,
            "EUR",
            1250,
            "num.twelve cur.euros word.and num.fifty cur.cents",
        );
        check(en, "EUR", 10000, "num.one num.hundred cur.euros");
        check(
            en,
            "EUR",
            100520,
            "num.one num.thousand num.five cur.euros word.and num.twenty cur.cents",
        );
        check(en, "EUR", 2000, "num.twenty cur.euros");
        check(en, "EUR", 0, "num.zero cur.euros");
        check(en, "EUR", 1, "num.one cur.cent");
        check(en, "EUR", 101, "num.one cur.euro word.and num.one cur.cent");
    }

    #[test]
    fn english_prices_in_other_currencies() {
        let en = Lang::En;
        check(
            en,
            "USD",
            1250,
            "num.twelve cur.dollars word.and num.fifty cur.cents",
        );
        check(en, "GBP", 5, "num.five cur.pence");
        check(en, "GBP", 1, "num.one cur.penny");
        check(en, "GBP", 10000, "num.one num.hundred cur.pounds");
        check(
            en,
            "CNY",
            1250,
            "num.twelve cur.yuan word.and num.fifty cur.fen",
        );
        check(
            en,
            "CHF",
            5,
            "num.zero word.point num.zero num.five letter.c letter.h letter.f",
        );
        check(
            en,
            "JPY",
            500,
            "num.five num.hundred letter.j letter.p letter.y",
        );
    }

    #[test]
    fn chinese_prices_in_yuan() {
        let zh = Lang::Zh;
        check(zh, "CNY", 5, "num.wu3 cur.fen1");
        check(zh, "CNY", 10, "num.yi4 cur.jiao3");
        check(zh, "CNY", 100, "num.yi4 cur.yuan2");
        check(
            zh,
            "CNY",
            1250,
            "num.shi2 num.er4 cur.yuan2 num.wu3 cur.jiao3",
        );
        check(zh, "CNY", 10000, "num.yi4 num.bai3 cur.yuan2");
        check(
            zh,
            "CNY",
            100520,
            "num.yi4 num.qian1 num.ling2 num.wu3 cur.yuan2 num.liang3 cur.jiao3",
        );
        check(zh, "CNY", 2000, "num.er4 num.shi2 cur.yuan2");
        check(zh, "CNY", 0, "num.ling2 cur.yuan2");
        check(zh, "CNY", 200, "num.liang3 cur.yuan2");
        check(
            zh,
            "CNY",
            1205,
            "num.shi2 num.er4 cur.yuan2 num.ling2 num.wu3 cur.fen1",
        );
        check(
            zh,
            "CNY",
            1255,
            "num.shi2 num.er4 cur.yuan2 num.wu3 cur.jiao3 num.wu3 cur.fen1",
        );
    }

    #[test]
    fn chinese_prices_in_euros_are_decimals_with_the_currency_name() {
        let zh = Lang::Zh;
        check(
            zh,
            "EUR",
            5,
            "num.ling2 num.dian3 num.ling2 num.wu3 cur.ou1yuan2",
        );
        check(zh, "EUR", 10, "num.ling2 num.dian3 num.yi1 cur.ou1yuan2");
        check(zh, "EUR", 100, "num.yi4 cur.ou1yuan2");
        check(
            zh,
            "EUR",
            1250,
            "num.shi2 num.er4 num.dian3 num.wu3 cur.ou1yuan2",
        );
        check(zh, "EUR", 10000, "num.yi4 num.bai3 cur.ou1yuan2");
        check(
            zh,
            "EUR",
            100520,
            "num.yi4 num.qian1 num.ling2 num.wu3 num.dian3 num.er4 cur.ou1yuan2",
        );
        check(zh, "EUR", 2000, "num.er4 num.shi2 cur.ou1yuan2");
        check(zh, "EUR", 200, "num.liang3 cur.ou1yuan2");
        check(zh, "USD", 150, "num.yi1 num.dian3 num.wu3 cur.mei3yuan2");
        check(zh, "GBP", 100, "num.yi4 cur.ying1bang4");
    }

    fn zh(n: u64) -> String {
        number_clips(Lang::Zh, n, ZhStyle::Count { next_tone: None })
            .expect("in range")
            .iter()
            .map(|c| c.name().trim_start_matches("num."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn chinese_numbers_follow_the_zero_and_ten_rules() {
        assert_eq!(zh(10), "shi2");
        assert_eq!(zh(15), "shi2 wu3");
        assert_eq!(zh(110), "yi4 bai3 yi1 shi2");
        assert_eq!(zh(1010), "yi4 qian1 ling2 yi1 shi2");
        assert_eq!(zh(10050), "yi2 wan4 ling2 wu3 shi2");
        assert_eq!(zh(100000), "shi2 wan4");
        assert_eq!(zh(100005), "shi2 wan4 ling2 wu3");
        assert_eq!(zh(120000), "shi2 er4 wan4");
        assert_eq!(zh(2200), "liang3 qian1 er4 bai3");
        assert_eq!(zh(100000005), "yi2 yi4 ling2 wu3");
        assert_eq!(zh(22), "er4 shi2 er4");
        let plain = number_clips(Lang::Zh, 2, ZhStyle::Plain).expect("in range");
        assert_eq!(plain, vec![num("er4")]);
    }

    #[test]
    fn english_numbers_use_scales() {
        let words = |n| {
            number_clips(Lang::En, n, ZhStyle::Plain)
                .expect("in range")
                .iter()
                .map(|c| c.name().trim_start_matches("num.").to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(words(0), "zero");
        assert_eq!(words(21), "twenty one");
        assert_eq!(words(1_000_001), "one million one");
        assert_eq!(
            words(999_999),
            "nine hundred ninety nine thousand nine hundred ninety nine"
        );
        assert!(number_clips(Lang::En, MAX_SPOKEN + 1, ZhStyle::Plain).is_err());
        assert!(money_clips(Lang::En, currency("EUR"), -5).is_err());
    }

    #[test]
    fn messages_compose_segments_numbers_and_slots() {
        let cat = Catalog::embedded().expect("valid");
        let slot = SlotId::parse("A3").expect("slot");
        let args = Args::new().int("item", 1).int("of", 2).slot("slot", slot);
        let en = compose(&cat, Lang::En, "vending", &args).expect("composes");
        assert_eq!(
            en,
            vec![
                Clip::new("seg.vending.0"),
                num("one"),
                Clip::new("seg.vending.1"),
                num("two"),
                Clip::new("seg.vending.2"),
                Clip::new("letter.a"),
                num("three"),
            ]
        );
        // 第一件 (ordinal, yi1), 共两件 (count), 货道 A 三.
        let zh = compose(&cat, Lang::Zh, "vending", &args).expect("composes");
        let names: Vec<&str> = zh.iter().map(Clip::name).collect();
        assert_eq!(
            names,
            [
                "seg.vending.0",
                "num.yi1",
                "seg.vending.1",
                "num.liang3",
                "seg.vending.2",
                "letter.a",
                "num.san1"
            ]
        );
        // 一次: yi2 before ci4.
        let args = Args::new().int("count", 1);
        let zh = compose(&cat, Lang::Zh, "declined.daily_uses_exceeded", &args).expect("composes");
        assert!(zh.contains(&num("yi2")), "{zh:?}");
        // The masked name is never spoken.
        let args = Args::new().name("name", "B***k");
        let en = compose(&cat, Lang::En, "face_turn_head.left", &args).expect("composes");
        assert_eq!(
            en,
            vec![
                Clip::new("seg.face_turn_head.left.0"),
                Clip::new("seg.face_turn_head.left.1")
            ]
        );
    }

    #[test]
    fn compose_refuses_unknown_unvoiced_and_incomplete_messages() {
        let cat = Catalog::embedded().expect("valid");
        let none = Args::new();
        assert!(matches!(
            compose(&cat, Lang::En, "nope", &none),
            Err(ComposeError::UnknownId(_))
        ));
        assert!(matches!(
            compose(&cat, Lang::En, "ui.pay", &none),
            Err(ComposeError::NotVoiced(_))
        ));
        assert!(matches!(
            compose(&cat, Lang::Zh, "cart_updated", &none),
            Err(ComposeError::MissingArg { .. })
        ));
    }

    #[test]
    fn every_composed_clip_is_in_the_render_list() {
        let cat = Catalog::embedded().expect("valid");
        let mut messages: Vec<(String, Args)> = crate::voice::catalog::tests::all_prompts()
            .iter()
            .map(prompt_key)
            .collect();
        messages.extend(
            SCREEN_IDS
                .iter()
                .map(|id| (id.to_string(), Args::new().money("total", 1250))),
        );
        for lang in Lang::ALL {
            let names = clip_names(&cat, lang);
            let check = |clips: Vec<Clip>| {
                for c in clips {
                    assert!(
                        names.contains(c.name()),
                        "{lang}: `{c}` is composed but never rendered"
                    );
                }
            };
            for (id, args) in &messages {
                check(compose(&cat, lang, id, args).expect("composes"));
            }
            for code in ["EUR", "USD", "GBP", "CNY", "CHF", "JPY"] {
                for minor in [
                    0, 1, 2, 5, 10, 11, 20, 100, 101, 110, 200, 1250, 10000, 100520, 2000,
                    123456789,
                ] {
                    check(money_clips(lang, currency(code), minor).expect("composes"));
                }
            }
            for n in [
                0, 1, 2, 7, 10, 12, 20, 99, 100, 1005, 10050, 2_000_000, MAX_SPOKEN,
            ] {
                for style in [
                    ZhStyle::Plain,
                    ZhStyle::Count { next_tone: Some(4) },
                    ZhStyle::Count { next_tone: Some(1) },
                ] {
                    check(number_clips(lang, n, style).expect("in range"));
                }
            }
            for s in ["A1", "Z99", "F10"] {
                check(slot_clips(lang, &SlotId::parse(s).expect("slot")));
            }
        }
    }

    #[test]
    fn clip_names_are_file_safe_and_texts_are_sayable() {
        let cat = Catalog::embedded().expect("valid");
        let all = clip_texts(&cat);
        assert!(all.len() > 150, "{}", all.len());
        for c in &all {
            assert!(
                c.name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'.'
                    || b == b'_'),
                "{}",
                c.name
            );
            assert!(
                !c.text.trim().is_empty() && !c.text.contains(['\t', '\n']),
                "{c:?}"
            );
            if c.lang == Lang::Zh && c.voice == VOICE_ZH {
                assert!(c.text.is_ascii(), "pinyin only: {c:?}");
            }
        }
    }

    #[test]
    fn composition_takes_well_under_a_millisecond() {
        let cat = Catalog::embedded().expect("valid");
        let args = Args::new().money("total", 100520);
        let start = Instant::now();
        let rounds = 200;
        for _ in 0..rounds {
            for lang in Lang::ALL {
                let clips = compose(&cat, lang, "present_credential", &args).expect("composes");
                assert!(clips.len() > 5);
            }
        }
        let each = start.elapsed() / (rounds * 2);
        assert!(each.as_micros() < 1000, "{each:?} per composition");
    }
}
