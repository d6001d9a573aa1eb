//! The one string catalogue of the kiosk: on-screen text for the kiosk page and the
//! voice prompts, in English and simplified Chinese.
//!
//! The catalogue lives in `assets/i18n/catalog.toml` (see the comment at its top for the
//! format) and is embedded in the binary. It is validated when it is loaded: every entry
//! has English and Chinese, a tone-numbered pinyin form unless it is a page-only label
//! (`voice = false`), the same placeholders in every language, and no unknown keys. A
//! catalogue that fails validation is refused as a whole, so a broken translation is found
//! at start-up (and by the unit tests), not in front of a shopper.
//!
//! [`prompt_key`] maps a core [`Prompt`] to its catalogue id and arguments; the screen
//! text comes from [`Catalog::text`], the spoken form from
//! [`compose`](super::compose::compose).

use crate::core::{Currency, DeclineReason, HeadTurn, Prompt, SlotId};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The embedded catalogue text.
const EMBEDDED: &str = include_str!("../../assets/i18n/catalog.toml");

/// The screen states of the kiosk page. Each has a voiced catalogue entry of the same id
/// (checked by the unit tests), spoken when the screen appears.
pub const SCREEN_IDS: &[&str] = &[
    "screen.products",
    "screen.cart",
    "screen.choose_method",
    "screen.qr",
    "screen.enrol.consent",
    "screen.enrol.proof",
    "screen.enrol.capturing",
    "screen.enrol.done",
    "screen.enrol.failed",
    "screen.erase.proof",
    "screen.erase.done",
    "screen.service",
    "screen.help",
    "screen.offline_card_only",
];

/// A language of the kiosk.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    /// English (spoken with espeak-ng `en-us`).
    En,
    /// Chinese, simplified characters on screen, Mandarin spoken from pinyin.
    Zh,
}

impl Lang {
    /// Every language, in display order.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The short code: `en` or `zh` (also the clip folder name).
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// Parses `en` or `zh`, case-insensitively, also with a region or script suffix
    /// (`en-GB`, `zh-CN`, `zh_Hans`). `None` for anything else.
    pub fn parse(s: &str) -> Option<Lang> {
        let base = s.split(['-', '_']).next().unwrap_or("");
        match base.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The other language (what the language button switches to).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a placeholder holds; fixed by its name.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PlaceholderKind {
    /// Money in minor units: `{total}`, `{price}`, `{amount}`, `{charged}`, `{released}`.
    Money,
    /// A whole number: `{item}`, `{of}`, `{seconds}`, `{count}`.
    Int,
    /// A slot code such as `A3`: `{slot}`.
    Slot,
    /// A masked display name: `{name}`. Shown on screen, silent in speech.
    Name,
}

impl PlaceholderKind {
    /// The kind of a placeholder name, or `None` if the name is not one the catalogue
    /// may use.
    pub fn of(name: &str) -> Option<PlaceholderKind> {
        Some(match name {
            "total" | "price" | "amount" | "charged" | "released" => PlaceholderKind::Money,
            "item" | "of" | "seconds" | "count" => PlaceholderKind::Int,
            "slot" => PlaceholderKind::Slot,
            "name" => PlaceholderKind::Name,
            _ => return None,
        })
    }
}

/// The value of one placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Money in minor units of the catalogue's currency.
    Money(i64),
    /// A whole number.
    Int(i64),
    /// A slot.
    Slot(SlotId),
    /// A masked display name (never spoken).
    Name(String),
}

impl Arg {
    fn kind(&self) -> PlaceholderKind {
        match self {
            Arg::Money(_) => PlaceholderKind::Money,
            Arg::Int(_) => PlaceholderKind::Int,
            Arg::Slot(_) => PlaceholderKind::Slot,
            Arg::Name(_) => PlaceholderKind::Name,
        }
    }
}

/// Placeholder values for one message, by placeholder name. Built with the chained
/// setters: `Args::new().money("total", 1250)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args(BTreeMap<String, Arg>);

impl Args {
    /// No arguments.
    pub fn new() -> Args {
        Args::default()
    }

    /// Sets a money placeholder (minor units).
    pub fn money(mut self, name: &str, minor: i64) -> Args {
        self.0.insert(name.to_string(), Arg::Money(minor));
        self
    }

    /// Sets a whole-number placeholder.
    pub fn int(mut self, name: &str, value: i64) -> Args {
        self.0.insert(name.to_string(), Arg::Int(value));
        self
    }

    /// Sets a slot placeholder.
    pub fn slot(mut self, name: &str, slot: SlotId) -> Args {
        self.0.insert(name.to_string(), Arg::Slot(slot));
        self
    }

    /// Sets a name placeholder (a masked display name).
    pub fn name(mut self, name: &str, masked: &str) -> Args {
        self.0
            .insert(name.to_string(), Arg::Name(masked.to_string()));
        self
    }

    /// The arguments as JSON for the page (money in minor units, slots and names as text),
    /// which fills the same templates.
    pub fn to_json(&self) -> serde_json::Value {
        let map = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Arg::Money(m) | Arg::Int(m) => serde_json::Value::from(*m),
                    Arg::Slot(s) => serde_json::Value::from(s.to_string()),
                    Arg::Name(n) => serde_json::Value::from(n.clone()),
                };
                (k.clone(), v)
            })
            .collect();
        serde_json::Value::Object(map)
    }

    /// The value of a placeholder.
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.0.get(name)
    }

    /// The value of a placeholder if it has the kind the placeholder name requires.
    pub(crate) fn get_checked(&self, name: &str) -> Option<&Arg> {
        let arg = self.0.get(name)?;
        (PlaceholderKind::of(name) == Some(arg.kind())).then_some(arg)
    }
}

/// One catalogue entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    en: String,
    zh: String,
    /// Present whenever `voice` is true (checked at load).
    zh_pinyin: Option<String>,
    voice: bool,
    /// The placeholder names; identical in every language (checked at load).
    placeholders: BTreeSet<String>,
}

impl Entry {
    /// The screen template in a language (placeholders still in braces).
    pub fn template(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }

    /// The template that is spoken: English text, or the pinyin for Chinese. `None` for
    /// page-only labels.
    pub fn spoken(&self, lang: Lang) -> Option<&str> {
        if !self.voice {
            return None;
        }
        match lang {
            Lang::En => Some(&self.en),
            Lang::Zh => self.zh_pinyin.as_deref(),
        }
    }

    /// Does this entry have a spoken form?
    pub fn voiced(&self) -> bool {
        self.voice
    }

    /// The placeholder names the entry uses.
    pub fn placeholders(&self) -> &BTreeSet<String> {
        &self.placeholders
    }
}

/// Why a catalogue was refused. The message names the entry and the key; fix the TOML
/// (`assets/i18n/catalog.toml`) and rebuild.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The text is not TOML.
    #[error("the catalogue is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A key the format does not know (often a typo such as `zh_pinin`).
    #[error("unknown key `{key}` in {at}: an entry has only en, zh, zh_pinyin and voice")]
    UnknownKey {
        /// Entry id, or `(top level)`.
        at: String,
        /// The key.
        key: String,
    },
    /// A required key is missing.
    #[error("entry `{id}` has no `{key}`")]
    Missing {
        /// Entry id.
        id: String,
        /// The missing key.
        key: &'static str,
    },
    /// A key has the wrong TOML type.
    #[error("entry `{id}`: `{key}` must be {expected}")]
    WrongType {
        /// Entry id.
        id: String,
        /// The key.
        key: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An id with characters other than `a-z 0-9 _ .` (ids become clip file names).
    #[error("entry id `{0}` may only use a-z, 0-9, `_` and `.`")]
    BadId(String),
    /// Placeholders are malformed, unknown or differ between languages.
    #[error("entry `{id}`: {detail}")]
    Placeholders {
        /// Entry id.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// The pinyin has a word without a tone number, or a character that is not pinyin.
    #[error(
        "entry `{id}`: zh_pinyin word `{word}` is not tone-numbered pinyin \
         (lower-case letters then a tone 1-5, e.g. `shua1 ka3`)"
    )]
    BadPinyin {
        /// Entry id.
        id: String,
        /// The offending word.
        word: String,
    },
    /// A text contains a tab or line break (the clip list is tab-separated).
    #[error("entry `{id}`: `{key}` contains a tab or a line break")]
    ControlChar {
        /// Entry id.
        id: String,
        /// The key.
        key: &'static str,
    },
    /// The catalogue has no entries.
    #[error("the catalogue has no entries")]
    Empty,
}

/// A piece of a template: literal text or a placeholder.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Literal text.
    Text(&'a str),
    /// A placeholder name (without braces).
    Hole(&'a str),
}

/// Splits a template at its placeholders.
///
/// # Errors
/// A description of the first malformed or unknown placeholder.
pub(crate) fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("stray `}}` in `{template}`"));
        }
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
        let name = &after[..close];
        if PlaceholderKind::of(name).is_none() {
            return Err(format!("unknown placeholder `{{{name}}}`"));
        }
        out.push(Piece::Hole(name));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// The strings of the kiosk in every language, and the currency its amounts are in.
#[derive(Clone, Debug)]
pub struct Catalog {
    entries: BTreeMap<String, Entry>,
    currency: Currency,
}

/// The currency used until [`Catalog::with_currency`] sets the machine's: EUR, the
/// example configuration's.
fn default_currency() -> Currency {
    // A constant, valid code: this cannot fail.
    Currency::parse("EUR").expect("EUR is an ISO 4217 code")
}

impl Catalog {
    /// The catalogue compiled into the binary, with the currency EUR until
    /// [`with_currency`](Catalog::with_currency) sets the machine's.
    ///
    /// # Errors
    /// [`CatalogError`] if the embedded catalogue is invalid (the unit tests load it, so a
    /// release build cannot ship one).
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Catalog::parse(EMBEDDED)
    }

    /// Parses and validates a catalogue (see the module docs for the rules).
    ///
    /// # Errors
    /// [`CatalogError`] for the first problem found.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let table: toml::Table = toml::from_str(text)?;
        let mut entries = BTreeMap::new();
        for (key, value) in &table {
            if key != "entries" {
                return Err(CatalogError::UnknownKey {
                    at: "(top level)".into(),
                    key: key.clone(),
                });
            }
            let toml::Value::Table(t) = value else {
                return Err(CatalogError::WrongType {
                    id: "(top level)".into(),
                    key: key.clone(),
                    expected: "a table",
                });
            };
            walk("", t, &mut entries)?;
        }
        if entries.is_empty() {
            return Err(CatalogError::Empty);
        }
        Ok(Catalog {
            entries,
            currency: default_currency(),
        })
    }

    /// The same catalogue with amounts in `currency`.
    pub fn with_currency(mut self, currency: Currency) -> Catalog {
        self.currency = currency;
        self
    }

    /// The currency amounts are shown and spoken in.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Every entry id, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.keys().map(String::as_str)
    }

    /// One entry.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// The screen text of an entry with its placeholders filled: money formatted with the
    /// currency (`€12.50` in English, `12.50欧元` / `¥12.50` in Chinese), slots as `A3`,
    /// names as given. `None` if the id is unknown, or an argument it needs is missing or
    /// of the wrong kind.
    pub fn text(&self, lang: Lang, id: &str, args: &Args) -> Option<String> {
        let template = self.entries.get(id)?.template(lang);
        let mut out = String::with_capacity(template.len() + 16);
        for piece in pieces(template).ok()? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Hole(name) => match args.get_checked(name)? {
                    Arg::Money(minor) => out.push_str(&format_money(lang, self.currency, *minor)),
                    Arg::Int(n) => out.push_str(&n.to_string()),
                    Arg::Slot(slot) => out.push_str(&slot.to_string()),
                    Arg::Name(name) => out.push_str(name),
                },
            }
        }
        Some(out)
    }

    /// The raw screen templates of every entry in one language, by id, placeholders still
    /// in braces (the kiosk page fills them itself).
    pub fn page_strings(&self, lang: Lang) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(id, e)| (id.clone(), e.template(lang).to_string()))
            .collect()
    }
}

/// Formats money for the screen.
///
/// English puts the symbol first for EUR, USD, GBP and CNY (`€12.50`); Chinese writes
/// `¥12.50` for CNY and the amount followed by the currency's Chinese name for EUR, USD and
/// GBP (`12.50欧元`). Any other currency is written as `12.50 CHF`.
pub fn format_money(lang: Lang, currency: Currency, minor: i64) -> String {
    let amount = currency.format_minor(minor.abs());
    let sign = if minor < 0 { "-" } else { "" };
    let code = currency.code();
    let symbol = match code {
        "EUR" => Some("€"),
        "USD" => Some("$"),
        "GBP" => Some("£"),
        "CNY" => Some("¥"),
        _ => None,
    };
    match (lang, code, symbol) {
        (Lang::Zh, "EUR", _) => format!("{sign}{amount}欧元"),
        (Lang::Zh, "USD", _) => format!("{sign}{amount}美元"),
        (Lang::Zh, "GBP", _) => format!("{sign}{amount}英镑"),
        (_, _, Some(symbol)) => format!("{sign}{symbol}{amount}"),
        (_, _, None) => format!("{sign}{amount} {code}"),
    }
}

/// Walks the `entries` table: a table with any non-table value is an entry, its id the
/// dotted path; a table of tables only is a group.
fn walk(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, Entry>,
) -> Result<(), CatalogError> {
    for (key, value) in table {
        let id = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let toml::Value::Table(t) = value else {
            return Err(CatalogError::UnknownKey {
                at: if prefix.is_empty() {
                    "entries".into()
                } else {
                    format!("entry `{prefix}`")
                },
                key: key.clone(),
            });
        };
        let has_scalars = t.values().any(|v| !v.is_table());
        let has_tables = t.values().any(toml::Value::is_table);
        if has_scalars || !has_tables {
            out.insert(id.clone(), entry(&id, t)?);
        }
        let children: toml::Table = t
            .iter()
            .filter(|(_, v)| v.is_table())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        walk(&id, &children, out)?;
    }
    Ok(())
}

/// Reads and validates one entry table (its child tables are other entries).
fn entry(id: &str, t: &toml::Table) -> Result<Entry, CatalogError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        return Err(CatalogError::BadId(id.to_string()));
    }
    let mut en = None;
    let mut zh = None;
    let mut zh_pinyin = None;
    let mut voice = true;
    for (key, value) in t {
        let text = || {
            value
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| CatalogError::WrongType {
                    id: id.to_string(),
                    key: key.clone(),
                    expected: "a string",
                })
        };
        match key.as_str() {
            "en" => en = Some(text()?),
            "zh" => zh = Some(text()?),
            "zh_pinyin" => zh_pinyin = Some(text()?),
            "voice" => {
                voice = value.as_bool().ok_or_else(|| CatalogError::WrongType {
                    id: id.to_string(),
                    key: key.clone(),
                    expected: "true or false",
                })?
            }
            _ if value.is_table() => {}
            _ => {
                return Err(CatalogError::UnknownKey {
                    at: format!("entry `{id}`"),
                    key: key.clone(),
                })
            }
        }
    }
    let missing = |key| CatalogError::Missing {
        id: id.to_string(),
        key,
    };
    let en = en.ok_or_else(|| missing("en"))?;
    let zh = zh.ok_or_else(|| missing("zh"))?;
    if voice && zh_pinyin.is_none() {
        return Err(missing("zh_pinyin"));
    }
    let mut texts = vec![("en", en.as_str()), ("zh", zh.as_str())];
    if let Some(p) = &zh_pinyin {
        texts.push(("zh_pinyin", p));
    }
    let mut placeholders: Option<BTreeSet<String>> = None;
    for (key, text) in &texts {
        if text.contains(['\t', '\n', '\r']) {
            return Err(CatalogError::ControlChar {
                id: id.to_string(),
                key,
            });
        }
        let ps = pieces(text).map_err(|detail| CatalogError::Placeholders {
            id: id.to_string(),
            detail,
        })?;
        let names: BTreeSet<String> = ps
            .iter()
            .filter_map(|p| match p {
                Piece::Hole(n) => Some(n.to_string()),
                Piece::Text(_) => None,
            })
            .collect();
        if *key == "zh_pinyin" {
            check_pinyin(id, &ps)?;
        }
        match &placeholders {
            None => placeholders = Some(names),
            Some(first) if *first != names => {
                return Err(CatalogError::Placeholders {
                    id: id.to_string(),
                    detail: format!(
                        "`{key}` has placeholders {names:?} but `en` has {first:?}; \
                         every language must use the same ones"
                    ),
                })
            }
            Some(_) => {}
        }
    }
    Ok(Entry {
        en,
        zh,
        zh_pinyin,
        voice,
        placeholders: placeholders.unwrap_or_default(),
    })
}

/// Every word of the pinyin text pieces is lower-case letters and a tone number 1-5, and
/// the text is ASCII (a hanzi in the pinyin field is a mistake).
fn check_pinyin(id: &str, pieces: &[Piece<'_>]) -> Result<(), CatalogError> {
    for piece in pieces {
        let Piece::Text(text) = piece else { continue };
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            let cut = word.len() - word.chars().last().map_or(0, char::len_utf8);
            let (letters, tone) = word.split_at(cut);
            let ok = !letters.is_empty()
                && letters.bytes().all(|b| b.is_ascii_lowercase())
                && matches!(tone, "1" | "2" | "3" | "4" | "5");
            if !ok {
                return Err(CatalogError::BadPinyin {
                    id: id.to_string(),
                    word: word.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The catalogue id and arguments of a shopper prompt.
///
/// Decisions: a decline has one entry per reason (`declined.<reason>`); the authoriser's
/// free-text reason is not spoken or shown (clips cannot say arbitrary text), the offline
/// cap is not told to shoppers, the floor limit and the daily use limit are. The receipt
/// has three entries: `receipt` (nothing released), `receipt.nothing` (nothing charged) and
/// `receipt.partly` (both). The masked name of a recognised face is passed as `{name}`.
pub fn prompt_key(prompt: &Prompt) -> (String, Args) {
    let a = Args::new();
    let (id, args): (&str, Args) = match prompt {
        Prompt::Welcome => ("welcome", a),
        Prompt::OutOfService => ("out_of_service", a),
        Prompt::CartUpdated { total } => ("cart_updated", a.money("total", *total)),
        Prompt::PresentCredential { total } => ("present_credential", a.money("total", *total)),
        Prompt::Authorising => ("authorising", a),
        Prompt::Declined { reason } => decline_key(reason),
        Prompt::Vending { item, of, slot } => (
            "vending",
            a.int("item", i64::from(*item))
                .int("of", i64::from(*of))
                .slot("slot", slot.clone()),
        ),
        Prompt::TakeItem => ("take_item", a),
        Prompt::VendFailedNotCharged { slot } => {
            ("vend_failed_not_charged", a.slot("slot", slot.clone()))
        }
        Prompt::Settling => ("settling", a),
        Prompt::Receipt { charged, released } => {
            let a = a.money("charged", *charged).money("released", *released);
            let id = match (*charged, *released) {
                (_, 0) => "receipt",
                (0, _) => "receipt.nothing",
                _ => "receipt.partly",
            };
            (id, a)
        }
        Prompt::TimeoutWarning { seconds } => {
            ("timeout_warning", a.int("seconds", i64::from(*seconds)))
        }
        Prompt::CodeNotRecognised => ("code_not_recognised", a),
        Prompt::FaceTurnHead { masked_name, turn } => (
            match turn {
                HeadTurn::Left => "face_turn_head.left",
                HeadTurn::Right => "face_turn_head.right",
            },
            a.name("name", masked_name),
        ),
        Prompt::FaceNotRecognised => ("face_not_recognised", a),
        Prompt::FaceNotLive => ("face_not_live", a),
        Prompt::Cancelled => ("cancelled", a),
        Prompt::TimedOut => ("timed_out", a),
    };
    (id.to_string(), args)
}

/// The catalogue id and arguments of a decline reason (`declined.<reason>`).
pub fn decline_key(reason: &DeclineReason) -> (&'static str, Args) {
    let a = Args::new();
    match reason {
        DeclineReason::DenyListed => ("declined.deny_listed", a),
        DeclineReason::OverFloorLimit { limit } => {
            ("declined.over_floor_limit", a.money("amount", *limit))
        }
        DeclineReason::OfflineTotalExceeded { .. } => ("declined.offline_total_exceeded", a),
        DeclineReason::DailyUsesExceeded { limit } => (
            "declined.daily_uses_exceeded",
            a.int("count", i64::from(*limit)),
        ),
        DeclineReason::NeedsOnline => ("declined.needs_online", a),
        DeclineReason::NotPaidInTime => ("declined.not_paid_in_time", a),
        DeclineReason::Authoriser { .. } => ("declined.authoriser", a),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Number of `Prompt` variants; [`prompt_variant`] must return each of `0..N`.
    const PROMPT_VARIANTS: usize = 18;

    /// A distinct index per `Prompt` variant. Exhaustive on purpose: a new variant does not
    /// compile until it is listed here, and then `all_prompts_cover_every_variant` fails
    /// until [`all_prompts`] has an example of it.
    fn prompt_variant(p: &Prompt) -> usize {
        match p {
            Prompt::Welcome => 0,
            Prompt::OutOfService => 1,
            Prompt::CartUpdated { .. } => 2,
            Prompt::PresentCredential { .. } => 3,
            Prompt::Authorising => 4,
            Prompt::Declined { .. } => 5,
            Prompt::Vending { .. } => 6,
            Prompt::TakeItem => 7,
            Prompt::VendFailedNotCharged { .. } => 8,
            Prompt::Settling => 9,
            Prompt::Receipt { .. } => 10,
            Prompt::TimeoutWarning { .. } => 11,
            Prompt::CodeNotRecognised => 12,
            Prompt::FaceTurnHead { .. } => 13,
            Prompt::FaceNotRecognised => 14,
            Prompt::FaceNotLive => 15,
            Prompt::Cancelled => 16,
            Prompt::TimedOut => 17,
        }
    }

    /// Same guard for `DeclineReason`.
    const DECLINE_VARIANTS: usize = 7;
    fn decline_variant(r: &DeclineReason) -> usize {
        match r {
            DeclineReason::DenyListed => 0,
            DeclineReason::OverFloorLimit { .. } => 1,
            DeclineReason::OfflineTotalExceeded { .. } => 2,
            DeclineReason::DailyUsesExceeded { .. } => 3,
            DeclineReason::NeedsOnline => 4,
            DeclineReason::NotPaidInTime => 5,
            DeclineReason::Authoriser { .. } => 6,
        }
    }

    fn all_declines() -> Vec<DeclineReason> {
        vec![
            DeclineReason::DenyListed,
            DeclineReason::OverFloorLimit { limit: 2500 },
            DeclineReason::OfflineTotalExceeded { cap: 10000 },
            DeclineReason::DailyUsesExceeded { limit: 2 },
            DeclineReason::NeedsOnline,
            DeclineReason::NotPaidInTime,
            DeclineReason::Authoriser {
                reason: "insufficient funds".into(),
            },
        ]
    }

    /// An example of every prompt, every decline reason, both head turns and all three
    /// receipt forms.
    pub(crate) fn all_prompts() -> Vec<Prompt> {
        let slot = SlotId::parse("A3").expect("valid slot");
        let mut v = vec![
            Prompt::Welcome,
            Prompt::OutOfService,
            Prompt::CartUpdated { total: 1250 },
            Prompt::PresentCredential { total: 5 },
            Prompt::Authorising,
            Prompt::Vending {
                item: 1,
                of: 2,
                slot: slot.clone(),
            },
            Prompt::TakeItem,
            Prompt::VendFailedNotCharged { slot },
            Prompt::Settling,
            Prompt::Receipt {
                charged: 250,
                released: 0,
            },
            Prompt::Receipt {
                charged: 250,
                released: 120,
            },
            Prompt::Receipt {
                charged: 0,
                released: 370,
            },
            Prompt::TimeoutWarning { seconds: 10 },
            Prompt::CodeNotRecognised,
            Prompt::FaceTurnHead {
                masked_name: "B***k".into(),
                turn: HeadTurn::Left,
            },
            Prompt::FaceTurnHead {
                masked_name: "B***k".into(),
                turn: HeadTurn::Right,
            },
            Prompt::FaceNotRecognised,
            Prompt::FaceNotLive,
            Prompt::Cancelled,
            Prompt::TimedOut,
        ];
        v.extend(
            all_declines()
                .into_iter()
                .map(|reason| Prompt::Declined { reason }),
        );
        v
    }

    #[test]
    fn all_prompts_cover_every_variant() {
        let seen: BTreeSet<usize> = all_prompts().iter().map(prompt_variant).collect();
        assert_eq!(seen, (0..PROMPT_VARIANTS).collect::<BTreeSet<_>>());
        let seen: BTreeSet<usize> = all_declines().iter().map(decline_variant).collect();
        assert_eq!(seen, (0..DECLINE_VARIANTS).collect::<BTreeSet<_>>());
    }

    #[test]
    fn embedded_catalogue_loads() {
        let cat = Catalog::embedded().expect("embedded catalogue is valid");
        assert!(cat.ids().count() > 60);
    }

    #[test]
    fn every_prompt_has_a_voiced_entry_in_both_languages_with_all_its_arguments() {
        let cat = Catalog::embedded().expect("valid");
        for prompt in all_prompts() {
            let (id, args) = prompt_key(&prompt);
            let entry = cat
                .entry(&id)
                .unwrap_or_else(|| panic!("no catalogue entry `{id}` for {prompt:?}"));
            assert!(entry.voiced(), "`{id}` must be spoken");
            for lang in Lang::ALL {
                assert!(entry.spoken(lang).is_some(), "`{id}` has no {lang} voice");
                let text = cat
                    .text(lang, &id, &args)
                    .unwrap_or_else(|| panic!("`{id}` in {lang}: an argument is missing"));
                assert!(!text.contains('{'), "`{id}` in {lang}: {text}");
            }
        }
    }

    #[test]
    fn every_screen_state_has_a_voiced_entry_in_both_languages() {
        let cat = Catalog::embedded().expect("valid");
        for id in SCREEN_IDS {
            let entry = cat.entry(id).unwrap_or_else(|| panic!("no entry `{id}`"));
            assert!(entry.voiced(), "`{id}` must be spoken");
            for lang in Lang::ALL {
                let spoken = entry.spoken(lang).expect("voiced");
                assert!(spoken.chars().any(char::is_alphabetic), "`{id}` {lang}");
                assert!(!entry.template(lang).is_empty());
            }
        }
    }

    #[test]
    fn page_labels_the_kiosk_needs_exist() {
        let cat = Catalog::embedded().expect("valid");
        let labels = [
            "ui.add",
            "ui.remove",
            "ui.pay",
            "ui.cancel",
            "ui.more_time",
            "ui.done",
            "ui.card",
            "ui.code",
            "ui.face",
            "ui.qr",
            "ui.language",
            "ui.total",
            "ui.stock",
            "ui.sold_out",
            "ui.receipt",
            "ui.receipt_link",
            "ui.charged",
            "ui.not_charged",
            "ui.enrol_face",
            "ui.erase_face",
            "ui.consent_text",
            "ui.name",
            "ui.repeat",
            "ui.volume",
            "ui.help",
            "ui.service_restock",
            "ui.service_test_vend",
            "ui.service_clear_fault",
            "ui.service_sessions",
            "ui.service_sales_today",
            "ui.service_camera",
        ];
        for lang in Lang::ALL {
            let page = cat.page_strings(lang);
            for id in labels {
                assert!(
                    page.get(id).is_some_and(|s| !s.is_empty()),
                    "{id} in {lang}"
                );
            }
        }
        // The language button names the other language.
        assert_eq!(cat.page_strings(Lang::En)["ui.language"], "中文");
        assert_eq!(cat.page_strings(Lang::Zh)["ui.language"], "English");
        assert_eq!(cat.page_strings(Lang::En)["ui.stock"], "{count} left");
    }

    #[test]
    fn screen_text_formats_money_with_the_currency() {
        let cat = Catalog::embedded().expect("valid");
        let args = Args::new().money("total", 1250);
        assert_eq!(
            cat.text(Lang::En, "cart_updated", &args).as_deref(),
            Some("Your total is €12.50.")
        );
        assert_eq!(
            cat.text(Lang::Zh, "cart_updated", &args).as_deref(),
            Some("合计12.50欧元。")
        );
        let cny = cat
            .clone()
            .with_currency(Currency::parse("CNY").expect("code"));
        assert_eq!(
            cny.text(Lang::Zh, "cart_updated", &args).as_deref(),
            Some("合计¥12.50。")
        );
        let chf = Currency::parse("CHF").expect("code");
        assert_eq!(format_money(Lang::En, chf, 5), "0.05 CHF");
        let gbp = Currency::parse("GBP").expect("code");
        assert_eq!(format_money(Lang::En, gbp, -100), "-£1.00");
    }

    #[test]
    fn text_is_none_for_unknown_ids_and_missing_or_mistyped_arguments() {
        let cat = Catalog::embedded().expect("valid");
        assert_eq!(cat.text(Lang::En, "no.such.id", &Args::new()), None);
        assert_eq!(cat.text(Lang::En, "cart_updated", &Args::new()), None);
        let wrong = Args::new().int("total", 5);
        assert_eq!(cat.text(Lang::En, "cart_updated", &wrong), None);
        let slot = SlotId::parse("B10").expect("slot");
        let args = Args::new().int("item", 2).int("of", 3).slot("slot", slot);
        assert_eq!(
            cat.text(Lang::En, "vending", &args).as_deref(),
            Some("Vending item 2 of 3, from slot B10.")
        );
    }

    #[test]
    fn lang_parses_codes_with_regions() {
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("zh-CN"), Some(Lang::Zh));
        assert_eq!(Lang::parse("ZH_Hans"), Some(Lang::Zh));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::parse(""), None);
        for lang in Lang::ALL {
            assert_eq!(Lang::parse(lang.as_str()), Some(lang));
            assert_ne!(lang.other(), lang);
        }
    }

    fn parse_err(text: &str) -> String {
        match Catalog::parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn invalid_catalogues_are_refused_with_the_entry_named() {
        let e = parse_err("[entries.a]\nen = \"Hi\"\nzh = \"你好\"\nzh_pinin = \"ni3 hao3\"\n");
        assert!(e.contains("zh_pinin") && e.contains("`a`"), "{e}");
        let e = parse_err("[entries.a]\nen = \"Hi\"\nzh_pinyin = \"ni3 hao3\"\n");
        assert!(e.contains("no `zh`"), "{e}");
        let e = parse_err("[entries.a]\nen = \"Hi\"\nzh = \"你好\"\n");
        assert!(e.contains("no `zh_pinyin`"), "{e}");
        let e = parse_err(
            "[entries.a]\nen = \"Pay {total}\"\nzh = \"付款\"\nzh_pinyin = \"fu4 kuan3\"\n",
        );
        assert!(e.contains("same ones"), "{e}");
        let e = parse_err(
            "[entries.a]\nen = \"Pay {totl}\"\nzh = \"付款{totl}\"\nzh_pinyin = \"fu4 kuan3\"\n",
        );
        assert!(e.contains("unknown placeholder"), "{e}");
        let e = parse_err("[entries.a]\nen = \"Hi\"\nzh = \"你好\"\nzh_pinyin = \"ni hao3\"\n");
        assert!(e.contains("`ni`"), "{e}");
        let e = parse_err("[entries.a]\nen = \"Hi\"\nzh = \"你好\"\nzh_pinyin = \"你好\"\n");
        assert!(e.contains("pinyin"), "{e}");
        let e = parse_err("[entries.A]\nen = \"Hi\"\nzh = \"你好\"\nvoice = false\n");
        assert!(e.contains("a-z"), "{e}");
        let e = parse_err("version = 1\n[entries.a]\nen = \"Hi\"\nzh = \"你\"\nvoice = false\n");
        assert!(e.contains("version"), "{e}");
        let e = parse_err("[entries.a]\nen = \"Hi\"\nzh = \"你\"\nvoice = \"no\"\n");
        assert!(e.contains("true or false"), "{e}");
        assert!(parse_err("").contains("no entries"));
    }

    #[test]
    fn nested_and_quoted_ids_are_the_same_and_entries_may_have_children() {
        let cat = Catalog::parse(
            "[entries.a]\nen = \"A\"\nzh = \"甲\"\nvoice = false\n\
             [entries.a.b]\nen = \"B\"\nzh = \"乙\"\nvoice = false\n\
             [entries.\"c.d\"]\nen = \"C\"\nzh = \"丙\"\nvoice = false\n",
        )
        .expect("valid");
        assert_eq!(cat.ids().collect::<Vec<_>>(), ["a", "a.b", "c.d"]);
        assert_eq!(cat.entry("a.b").map(|e| e.template(Lang::Zh)), Some("乙"));
    }
}
