//! Voice commands: what a customer may say on each screen, and what it means.
//!
//! The recogniser is never asked "what was said?" but "which of these phrases was said?": a
//! Vosk grammar recogniser restricted to the phrases of the current screen is both far more
//! accurate and ~20× faster than free decoding (src/voice/RECOGNITION.md). This module builds
//! that phrase list ([`grammar_for`]) from the vocabulary in `assets/voice/commands.toml`
//! (embedded at build time) and maps recognised text back to a [`VoiceCommand`] ([`parse`]),
//! which the caller turns into the same input a touch would give.
//!
//! Nothing here needs the model; [`retain_known`] takes the model's word lookup as a closure,
//! so a phrase with a word the model does not know is dropped (and reported) before Vosk sees
//! it. `[unk]` is never put in a grammar: the Korean model has no such word.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

/// The vocabulary file, embedded so the daemon needs no asset directory at run time.
const COMMANDS_TOML: &str = include_str!("../../assets/voice/commands.toml");

/// Highest column number a voice item code can name ("A ten"); the planogram is 6×10.
pub const MAX_COLUMN: u8 = 10;

/// A way to pay that can be chosen by voice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Contactless card.
    Card,
    /// QR code or PIN code.
    Code,
    /// Face pay (never the only way: card and code stay available).
    Face,
}

impl Method {
    /// Every method, in the order screens list them.
    pub const ALL: [Method; 3] = [Method::Card, Method::Code, Method::Face];
}

/// What a customer said, as the kiosk understands it; each maps to the touch with the same
/// meaning.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VoiceCommand {
    /// Abandon the current step (the "Cancel" button).
    Cancel,
    /// Yes / confirm / done.
    Confirm,
    /// No.
    No,
    /// Say the last prompt again.
    Repeat,
    /// Explain what can be said and done on this screen.
    Help,
    /// Extend a time-out that is about to expire.
    MoreTime,
    /// Choose the product in this slot, e.g. `"A3"`.
    Item(String),
    /// Pay with this method.
    PayBy(Method),
    /// Switch the kiosk to this language code (`"en"`, `"zh"`, `"ko"`).
    Language(String),
}

/// What the kiosk shows, as far as the voice grammar cares: it decides which phrases are
/// listened for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    /// The product grid; `slots` are the slot names that can be bought now (in stock,
    /// enabled), e.g. `["A1", "A3"]`. Other slots are left out of the grammar, so the
    /// recogniser cannot mistake speech for an item that cannot be sold.
    Products {
        /// Slot names on sale, `A1` … `F10`.
        slots: Vec<String>,
    },
    /// One item chosen, waiting for confirmation.
    Cart,
    /// Choosing how to pay among `methods`.
    ChooseMethod {
        /// Methods offered on this kiosk now.
        methods: Vec<Method>,
    },
    /// Waiting for the card, code or face.
    AwaitingPayment,
    /// The motor is running; only help and repeat are accepted.
    Vending,
    /// Showing the receipt.
    Receipt,
    /// "Do you need more time?" before a time-out.
    TimeoutWarning,
    /// Face enrolment consent and capture.
    Enrol,
}

/// One language's phrases, as in `commands.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LangTable {
    cancel: Vec<String>,
    confirm: Vec<String>,
    no: Vec<String>,
    repeat: Vec<String>,
    help: Vec<String>,
    more_time: Vec<String>,
    pay: BTreeMap<Method, Vec<String>>,
    language: BTreeMap<String, Vec<String>>,
    /// Row letter `A`–`F` → its words.
    letters: BTreeMap<String, Vec<String>>,
    /// Column `1`–`10` → its words (TOML keys are strings).
    numbers: BTreeMap<String, Vec<String>>,
}

/// Why the embedded vocabulary was refused (a developer error caught by the unit tests).
#[derive(Debug, thiserror::Error)]
pub enum VocabularyError {
    /// `commands.toml` is not valid TOML or has an unknown key.
    #[error("assets/voice/commands.toml: {0}")]
    Toml(#[from] toml::de::Error),
    /// A table lacks a phrase, a letter A–F or a number 1–10.
    #[error("assets/voice/commands.toml [{lang}]: {problem}")]
    Incomplete {
        /// Language table.
        lang: String,
        /// What is missing.
        problem: String,
    },
}

fn load(text: &str) -> Result<BTreeMap<String, LangTable>, VocabularyError> {
    let tables: BTreeMap<String, LangTable> = toml::from_str(text)?;
    for (lang, t) in &tables {
        let bad = |problem: String| VocabularyError::Incomplete {
            lang: lang.clone(),
            problem,
        };
        let lists = [
            ("cancel", &t.cancel),
            ("confirm", &t.confirm),
            ("no", &t.no),
            ("repeat", &t.repeat),
            ("help", &t.help),
            ("more_time", &t.more_time),
        ];
        for (name, list) in lists {
            if list.iter().all(|p| normalise(p).is_empty()) {
                return Err(bad(format!("`{name}` has no phrase")));
            }
        }
        for m in Method::ALL {
            if t.pay.get(&m).is_none_or(Vec::is_empty) {
                return Err(bad(format!("no phrase for paying by {m:?}")));
            }
        }
        for letter in 'A'..='F' {
            if t.letters.get(&letter.to_string()).is_none_or(Vec::is_empty) {
                return Err(bad(format!("no word for row letter {letter}")));
            }
        }
        for n in 1..=MAX_COLUMN {
            if t.numbers.get(&n.to_string()).is_none_or(Vec::is_empty) {
                return Err(bad(format!("no word for column {n}")));
            }
        }
        if t.language.keys().any(|l| !tables.contains_key(l)) {
            return Err(bad("`language` names a language with no table".into()));
        }
    }
    Ok(tables)
}

fn tables() -> &'static BTreeMap<String, LangTable> {
    static TABLES: OnceLock<BTreeMap<String, LangTable>> = OnceLock::new();
    TABLES.get_or_init(|| match load(COMMANDS_TOML) {
        Ok(t) => t,
        // The file is embedded and checked by `embedded_vocabulary_should_load`; a broken one
        // cannot ship.
        Err(e) => panic!("{e}"),
    })
}

/// Language codes that have a voice vocabulary (`en`, `ko`, `zh`).
///
/// # Panics
/// Only if the embedded `commands.toml` is invalid, which the unit tests rule out.
pub fn languages() -> Vec<&'static str> {
    tables().keys().map(String::as_str).collect()
}

/// Single-spaced and trimmed. Case is kept: Vosk words are case-sensitive (the Korean model
/// knows `A` but not `a`).
fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How recogniser output is compared with a phrase: by [`normalise`]d, lower-cased text.
fn key(text: &str) -> String {
    normalise(text).to_lowercase()
}

/// `"A3"` → (`'A'`, 3) when the row is A–F and the column 1–[`MAX_COLUMN`].
fn split_slot(slot: &str) -> Option<(char, u8)> {
    let mut chars = slot.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let col: u8 = chars.as_str().parse().ok()?;
    (('A'..='F').contains(&letter) && (1..=MAX_COLUMN).contains(&col)).then_some((letter, col))
}

/// Every phrase for choosing `slot` in one language: each letter word × each number word.
fn item_phrases(t: &LangTable, slot: &str) -> Vec<String> {
    let Some((letter, col)) = split_slot(slot) else {
        return Vec::new();
    };
    let (Some(letters), Some(numbers)) = (
        t.letters.get(&letter.to_string()),
        t.numbers.get(&col.to_string()),
    ) else {
        return Vec::new();
    };
    letters
        .iter()
        .flat_map(|l| numbers.iter().map(move |n| format!("{l} {n}")))
        .collect()
}

/// The phrases Vosk should listen for on `screen` in language `lang`, in a stable order and
/// without duplicates. Empty for a language with no vocabulary.
///
/// Every screen but [`Screen::Vending`] accepts cancel-or-no where it means something, and
/// all accept help and repeat; the language can be switched before payment starts. Pass the
/// result through [`retain_known`] with the model's word lookup before giving it to Vosk.
///
/// # Panics
/// Only if the embedded `commands.toml` is invalid, which the unit tests rule out.
pub fn grammar_for(screen: &Screen, lang: &str) -> Vec<String> {
    let Some(t) = tables().get(lang) else {
        return Vec::new();
    };
    let mut out: Vec<&[String]> = vec![&t.help, &t.repeat];
    let mut items = Vec::new();
    let languages = || t.language.values().map(Vec::as_slice);
    match screen {
        Screen::Products { slots } => {
            out.push(&t.cancel);
            out.extend(languages());
            items = slots.iter().flat_map(|s| item_phrases(t, s)).collect();
        }
        Screen::Cart => {
            out.extend([&t.confirm, &t.no, &t.cancel].map(Vec::as_slice));
            out.extend(languages());
        }
        Screen::ChooseMethod { methods } => {
            out.push(&t.cancel);
            out.extend(
                methods
                    .iter()
                    .filter_map(|m| t.pay.get(m))
                    .map(Vec::as_slice),
            );
            out.extend(languages());
        }
        Screen::AwaitingPayment => {
            out.extend([&t.cancel, &t.more_time].map(Vec::as_slice));
        }
        Screen::Vending => {}
        Screen::Receipt => {
            out.extend([&t.confirm, &t.no].map(Vec::as_slice));
        }
        Screen::TimeoutWarning => {
            out.extend([&t.more_time, &t.confirm, &t.no, &t.cancel].map(Vec::as_slice));
        }
        Screen::Enrol => {
            out.extend([&t.confirm, &t.no, &t.cancel].map(Vec::as_slice));
        }
    }
    let mut phrases: Vec<String> = Vec::new();
    for p in out
        .into_iter()
        .flatten()
        .map(|p| normalise(p))
        .chain(items.iter().map(|p| normalise(p)))
    {
        if !p.is_empty() && !phrases.contains(&p) {
            phrases.push(p);
        }
    }
    phrases
}

/// The phrases of `phrases` whose every word `known` accepts, and the ones dropped.
///
/// `known` is the model's word lookup (`vosk::Model::find_word(w).is_some()`); Vosk itself
/// would silently ignore an unknown word and so could match a shortened phrase.
pub fn retain_known(
    phrases: &[String],
    mut known: impl FnMut(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let (kept, dropped): (Vec<String>, Vec<String>) = phrases
        .iter()
        .cloned()
        .partition(|p| p.split_whitespace().all(&mut known));
    (kept, dropped)
}

/// What recognised `text` means in language `lang`: the command whose phrase it is, or
/// `None` for anything else (including text from another language's vocabulary).
///
/// # Panics
/// Only if the embedded `commands.toml` is invalid, which the unit tests rule out.
pub fn parse(lang: &str, text: &str) -> Option<VoiceCommand> {
    let t = tables().get(lang)?;
    let said = key(text);
    if said.is_empty() {
        return None;
    }
    let is = |list: &[String]| list.iter().any(|p| key(p) == said);
    let simple = [
        (&t.cancel, VoiceCommand::Cancel),
        (&t.confirm, VoiceCommand::Confirm),
        (&t.no, VoiceCommand::No),
        (&t.repeat, VoiceCommand::Repeat),
        (&t.help, VoiceCommand::Help),
        (&t.more_time, VoiceCommand::MoreTime),
    ];
    if let Some((_, cmd)) = simple.into_iter().find(|(list, _)| is(list)) {
        return Some(cmd);
    }
    if let Some((m, _)) = t.pay.iter().find(|(_, list)| is(list)) {
        return Some(VoiceCommand::PayBy(*m));
    }
    if let Some((code, _)) = t.language.iter().find(|(_, list)| is(list)) {
        return Some(VoiceCommand::Language(code.clone()));
    }
    let (letter_word, number_word) = said.split_once(' ')?;
    let letter = t
        .letters
        .iter()
        .find(|(_, words)| words.iter().any(|w| key(w) == letter_word))?
        .0;
    let col = t
        .numbers
        .iter()
        .find(|(_, words)| words.iter().any(|w| key(w) == number_word))?
        .0;
    Some(VoiceCommand::Item(format!("{letter}{col}")))
}

/// The phrase the prompts teach for `command` in `lang` (the first listed form), e.g.
/// `Item("A3")` → `"A 삼"` in Korean. `None` for an unknown language or slot.
///
/// # Panics
/// Only if the embedded `commands.toml` is invalid, which the unit tests rule out.
pub fn phrase_for(lang: &str, command: &VoiceCommand) -> Option<String> {
    let t = tables().get(lang)?;
    let first = |list: &[String]| list.first().map(|p| normalise(p));
    match command {
        VoiceCommand::Cancel => first(&t.cancel),
        VoiceCommand::Confirm => first(&t.confirm),
        VoiceCommand::No => first(&t.no),
        VoiceCommand::Repeat => first(&t.repeat),
        VoiceCommand::Help => first(&t.help),
        VoiceCommand::MoreTime => first(&t.more_time),
        VoiceCommand::PayBy(m) => first(t.pay.get(m)?),
        VoiceCommand::Language(l) => first(t.language.get(l)?),
        VoiceCommand::Item(slot) => item_phrases(t, slot).into_iter().next(),
    }
}

impl fmt::Display for VoiceCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VoiceCommand::Item(slot) => write!(f, "item {slot}"),
            VoiceCommand::PayBy(m) => write!(f, "pay by {m:?}"),
            VoiceCommand::Language(l) => write!(f, "language {l}"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn products(slots: &[&str]) -> Screen {
        Screen::Products {
            slots: slots.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn embedded_vocabulary_should_load_with_en_ko_zh() {
        assert!(
            load(COMMANDS_TOML).is_ok(),
            "{:?}",
            load(COMMANDS_TOML).err()
        );
        assert_eq!(languages(), ["en", "ko", "zh"]);
    }

    #[test]
    fn incomplete_vocabulary_should_be_refused() {
        let without_ten = COMMANDS_TOML.replace("numbers.10 = [\"십\"]", "");
        let err = load(&without_ten).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("assets/voice/commands.toml [ko]: no word for column 10")
        );
    }

    #[test]
    fn product_grammar_should_list_only_available_slots() {
        let g = grammar_for(&products(&["A3", "B1"]), "ko");
        assert!(g.contains(&"A 삼".to_string()));
        assert!(g.contains(&"B 일".to_string()));
        assert!(!g.iter().any(|p| p.starts_with("c ")));
        assert!(g.contains(&"취소".to_string()));
        assert!(!g.contains(&"확인".to_string()), "nothing to confirm yet");
    }

    #[test]
    fn grammar_should_never_contain_unk_or_duplicates() {
        let screens = [
            products(&["A1", "A1", "F10"]),
            Screen::Cart,
            Screen::ChooseMethod {
                methods: Method::ALL.to_vec(),
            },
            Screen::AwaitingPayment,
            Screen::Vending,
            Screen::Receipt,
            Screen::TimeoutWarning,
            Screen::Enrol,
        ];
        for lang in languages() {
            for s in &screens {
                let g = grammar_for(s, lang);
                assert!(!g.is_empty());
                assert!(!g.iter().any(|p| p.contains("[unk]")));
                let mut dedup = g.clone();
                dedup.sort();
                dedup.dedup();
                assert_eq!(dedup.len(), g.len(), "{lang} {s:?}");
            }
        }
    }

    #[test]
    fn vending_screen_should_only_accept_help_and_repeat() {
        let g = grammar_for(&Screen::Vending, "en");
        assert_eq!(g, ["help", "repeat", "say again"]);
    }

    #[test]
    fn choose_method_grammar_should_offer_only_the_offered_methods() {
        let g = grammar_for(
            &Screen::ChooseMethod {
                methods: vec![Method::Card, Method::Code],
            },
            "en",
        );
        assert!(g.contains(&"pay by card".to_string()));
        assert!(g.contains(&"code".to_string()));
        assert!(!g.iter().any(|p| p.contains("face")));
    }

    #[test]
    fn parse_should_map_each_phrase_to_its_command() {
        assert_eq!(parse("ko", "취소"), Some(VoiceCommand::Cancel));
        assert_eq!(parse("ko", " 네 "), Some(VoiceCommand::Confirm));
        assert_eq!(parse("ko", "아니요"), Some(VoiceCommand::No));
        assert_eq!(parse("ko", "연장"), Some(VoiceCommand::MoreTime));
        assert_eq!(parse("ko", "A 삼"), Some(VoiceCommand::Item("A3".into())));
        assert_eq!(parse("ko", "f 십"), Some(VoiceCommand::Item("F10".into())));
        assert_eq!(
            parse("ko", "신용카드"),
            Some(VoiceCommand::PayBy(Method::Card))
        );
        assert_eq!(parse("ko", "큐알"), Some(VoiceCommand::PayBy(Method::Code)));
        assert_eq!(
            parse("ko", "영어"),
            Some(VoiceCommand::Language("en".into()))
        );
        assert_eq!(
            parse("en", "Pay  by FACE"),
            Some(VoiceCommand::PayBy(Method::Face))
        );
        assert_eq!(
            parse("en", "a three"),
            Some(VoiceCommand::Item("A3".into()))
        );
        assert_eq!(parse("zh", "取消"), Some(VoiceCommand::Cancel));
        assert_eq!(parse("zh", "A 三"), Some(VoiceCommand::Item("A3".into())));
    }

    #[test]
    fn parse_should_refuse_other_text() {
        assert_eq!(parse("ko", ""), None);
        assert_eq!(parse("ko", "cancel"), None, "English word in Korean");
        assert_eq!(parse("ko", "A 삼 삼"), None);
        assert_eq!(parse("ko", "G 삼"), None);
        assert_eq!(parse("xx", "취소"), None);
    }

    #[test]
    fn every_phrase_of_every_screen_should_parse_back() {
        let all_slots: Vec<String> = ('A'..='F')
            .flat_map(|l| (1..=MAX_COLUMN).map(move |n| format!("{l}{n}")))
            .collect();
        let screens = [
            Screen::Products { slots: all_slots },
            Screen::ChooseMethod {
                methods: Method::ALL.to_vec(),
            },
            Screen::TimeoutWarning,
            Screen::Cart,
        ];
        for lang in languages() {
            for s in &screens {
                for p in grammar_for(s, lang) {
                    assert!(parse(lang, &p).is_some(), "{lang}: {p:?} does not parse");
                }
            }
        }
    }

    #[test]
    fn phrase_for_should_round_trip_through_parse() {
        let commands = [
            VoiceCommand::Cancel,
            VoiceCommand::Confirm,
            VoiceCommand::Item("C7".into()),
            VoiceCommand::PayBy(Method::Code),
            VoiceCommand::Language("zh".into()),
        ];
        for lang in languages() {
            for c in &commands {
                let p = phrase_for(lang, c);
                assert_eq!(p.as_deref().and_then(|p| parse(lang, p)).as_ref(), Some(c));
            }
        }
        assert_eq!(
            phrase_for("ko", &VoiceCommand::Item("A3".into())).as_deref(),
            Some("A 삼")
        );
    }

    #[test]
    fn retain_known_should_drop_phrases_with_unknown_words() {
        let phrases = vec![
            "A 삼".to_string(),
            "카드 결제".to_string(),
            "취소".to_string(),
        ];
        let (kept, dropped) = retain_known(&phrases, |w| w != "결제");
        assert_eq!(kept, ["A 삼", "취소"]);
        assert_eq!(dropped, ["카드 결제"]);
    }
}
