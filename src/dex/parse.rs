//! Reading a DEX/EVA-DTS file: segments, the `G85` and `SE` checks, typed totals.

use super::{crc16_arc, DexTotals};
use std::str::FromStr;

/// What is wrong with a DEX file, and where. Line numbers count from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DexError {
    /// Nothing but blank lines.
    #[error("the DEX file is empty")]
    Empty,
    /// A line that does not start with a segment tag (two to four letters and digits).
    #[error(
        "line {line}: `{text}` is not a DEX segment (expected a tag such as VA1, then \
         `*`-separated elements)"
    )]
    BadSegment {
        /// Line number.
        line: usize,
        /// The line (at most 40 characters of it).
        text: String,
    },
    /// A segment a check needs is absent.
    #[error("no {tag} segment: {why}")]
    Missing {
        /// The tag looked for.
        tag: &'static str,
        /// What it is needed for.
        why: &'static str,
    },
    /// An element that should be a number is not.
    #[error("line {line}: element {element} of {segment} is `{value}`, not a number")]
    BadNumber {
        /// Line number.
        line: usize,
        /// The segment's tag.
        segment: String,
        /// 1-based element position (`VA101` is element 1).
        element: usize,
        /// The text found.
        value: String,
    },
    /// `G85` does not match the bytes it covers: the file was altered or damaged.
    #[error(
        "line {line}: G85 says `{stated}` but the CRC-16/ARC of lines {from}..={to} (ST up \
         to G85) is {computed:04X}: the file was altered or damaged in transfer"
    )]
    CrcMismatch {
        /// Line of `G85`.
        line: usize,
        /// The CRC the file states.
        stated: String,
        /// The CRC of the segments, each ended by CRLF.
        computed: u16,
        /// Line of `ST`.
        from: usize,
        /// Line of the last segment covered.
        to: usize,
    },
    /// `SE` states a segment count other than the number of segments from `ST` to `SE`.
    #[error(
        "line {line}: SE says `{stated}` segments but lines {from}..={line} (ST through SE) \
         hold {counted}"
    )]
    SegmentCount {
        /// Line of `SE`.
        line: usize,
        /// The count the file states.
        stated: String,
        /// Segments actually there.
        counted: usize,
        /// Line of `ST`.
        from: usize,
    },
}

/// One segment: a tag and its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Line number in the file, from 1.
    pub line: usize,
    /// The tag, e.g. `PA2`.
    pub tag: String,
    /// The elements after the tag, as written (element 1 first; empty ones kept).
    pub elements: Vec<String>,
    /// The line without its line ending.
    raw: String,
    /// Was the line ended by CRLF (rather than LF or the end of the file)?
    crlf: bool,
}

impl Segment {
    /// Element `n`, counting as EVA-DTS does (`PA102` is `element(2)`); `None` past the end.
    pub fn element(&self, n: usize) -> Option<&str> {
        n.checked_sub(1)
            .and_then(|i| self.elements.get(i))
            .map(String::as_str)
    }

    /// Element `n` as a number; an empty or absent element counts as zero.
    ///
    /// # Errors
    /// [`DexError::BadNumber`] if the element holds anything but a number.
    pub fn number<T: FromStr + Default>(&self, n: usize) -> Result<T, DexError> {
        let text = self.element(n).unwrap_or("").trim();
        if text.is_empty() {
            return Ok(T::default());
        }
        text.parse().map_err(|_| DexError::BadNumber {
            line: self.line,
            segment: self.tag.clone(),
            element: n,
            value: text.to_string(),
        })
    }

    /// `value*count*value*count` in elements 1–4 (`VA1`, `DA2`).
    fn value_count(&self) -> Result<DexTotals, DexError> {
        Ok(DexTotals {
            value_init: self.number(1)?,
            count_init: self.number(2)?,
            value_reset: self.number(3)?,
            count_reset: self.number(4)?,
        })
    }
}

/// The currency of a file (`ID4`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id4 {
    /// Decimal places of the money amounts.
    pub decimals: u32,
    /// Numeric currency code as written (`1978` = ISO 4217 978, EUR).
    pub numeric: String,
    /// Alphabetic code, if given.
    pub alpha: String,
}

/// A selection (`PA1`) with its paid sales (`PA2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Selection number or name (`PA101`).
    pub id: String,
    /// Price in minor units (`PA102`), `None` when empty.
    pub price: Option<i64>,
    /// Product identification (`PA103`).
    pub product: String,
    /// Paid vends (`PA2`); zero when the selection has no `PA2`.
    pub sales: DexTotals,
}

/// An event's counts (`EA2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTotals {
    /// Event identification, e.g. `EGS`.
    pub code: String,
    /// Occurrences since the last reset.
    pub since_reset: u64,
    /// Occurrences since initialisation.
    pub lifetime: u64,
    /// Is the event active now (element 5 is `1`)?
    pub active: bool,
}

/// A parsed DEX file. [`parse`] only splits it; the `verify_*` methods check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DexFile {
    segments: Vec<Segment>,
}

/// Splits a DEX file into segments. Lines may end in CRLF or LF; blank lines are skipped.
///
/// # Errors
/// [`DexError::Empty`] for a file with no segment, [`DexError::BadSegment`] for a line
/// that does not start with a tag.
pub fn parse(text: &str) -> Result<DexFile, DexError> {
    let mut segments = Vec::new();
    for (i, chunk) in text.split_inclusive('\n').enumerate() {
        let (body, crlf) = match chunk.strip_suffix("\r\n") {
            Some(b) => (b, true),
            None => (chunk.strip_suffix('\n').unwrap_or(chunk), false),
        };
        if body.trim().is_empty() {
            continue;
        }
        let mut parts = body.split('*');
        let tag = parts.next().unwrap_or("");
        let tag_ok = (2..=4).contains(&tag.len())
            && tag
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && tag.as_bytes()[0].is_ascii_uppercase();
        if !tag_ok {
            return Err(DexError::BadSegment {
                line: i + 1,
                text: body.chars().take(40).collect(),
            });
        }
        segments.push(Segment {
            line: i + 1,
            tag: tag.to_string(),
            elements: parts.map(str::to_string).collect(),
            raw: body.to_string(),
            crlf,
        });
    }
    if segments.is_empty() {
        return Err(DexError::Empty);
    }
    Ok(DexFile { segments })
}

impl DexFile {
    /// All segments in file order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The first segment with `tag`.
    pub fn find(&self, tag: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.tag == tag)
    }

    fn index(&self, tag: &'static str, from: usize, why: &'static str) -> Result<usize, DexError> {
        self.segments[from..]
            .iter()
            .position(|s| s.tag == tag)
            .map(|i| i + from)
            .ok_or(DexError::Missing { tag, why })
    }

    /// Recomputes the `G85` CRC-16/ARC over `ST` through the segment before `G85`.
    ///
    /// The CRC is defined over CRLF-terminated segments. A file stored with LF endings is
    /// checked as if each line ended in CRLF, and also as stored (a sender that wrote LF
    /// and computed its CRC over LF passes too).
    ///
    /// # Errors
    /// [`DexError::Missing`] without `ST` or a `G85` after it; [`DexError::CrcMismatch`]
    /// when the stated CRC is not hexadecimal or differs.
    pub fn verify_crc(&self) -> Result<(), DexError> {
        let why = "the G85 CRC covers ST through the segment before G85";
        let st = self.index("ST", 0, why)?;
        let g85 = self.index("G85", st, why)?;
        let covered = &self.segments[st..g85];
        let mut crlf = Vec::new();
        let mut stored = Vec::new();
        for s in covered {
            crlf.extend_from_slice(s.raw.as_bytes());
            crlf.extend_from_slice(b"\r\n");
            stored.extend_from_slice(s.raw.as_bytes());
            stored.extend_from_slice(if s.crlf { b"\r\n" } else { b"\n" });
        }
        let computed = crc16_arc(&crlf);
        let stated_text = self.segments[g85].element(1).unwrap_or("").trim();
        let stated = u16::from_str_radix(stated_text, 16).ok();
        if stated == Some(computed) || stated == Some(crc16_arc(&stored)) {
            return Ok(());
        }
        Err(DexError::CrcMismatch {
            line: self.segments[g85].line,
            stated: stated_text.to_string(),
            computed,
            from: self.segments[st].line,
            to: covered.last().map_or(self.segments[st].line, |s| s.line),
        })
    }

    /// Checks that `SE01` equals the number of segments from `ST` through `SE`.
    ///
    /// # Errors
    /// [`DexError::Missing`] without `ST` or an `SE` after it; [`DexError::SegmentCount`]
    /// when the count differs or is not a number.
    pub fn verify_segment_count(&self) -> Result<(), DexError> {
        let why = "SE counts the segments from ST through SE";
        let st = self.index("ST", 0, why)?;
        let se = self.index("SE", st, why)?;
        let counted = se - st + 1;
        let stated = self.segments[se].element(1).unwrap_or("").trim();
        if stated.parse::<usize>().ok() == Some(counted) {
            return Ok(());
        }
        Err(DexError::SegmentCount {
            line: self.segments[se].line,
            stated: stated.to_string(),
            counted,
            from: self.segments[st].line,
        })
    }

    /// Both checks: [`DexFile::verify_crc`] and [`DexFile::verify_segment_count`].
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify(&self) -> Result<(), DexError> {
        self.verify_crc()?;
        self.verify_segment_count()
    }

    /// The currency (`ID4`), if the file has one.
    ///
    /// # Errors
    /// [`DexError::BadNumber`] if the decimals are not a number.
    pub fn id4(&self) -> Result<Option<Id4>, DexError> {
        let Some(s) = self.find("ID4") else {
            return Ok(None);
        };
        Ok(Some(Id4 {
            decimals: s.number(1)?,
            numeric: s.element(2).unwrap_or("").to_string(),
            alpha: s.element(3).unwrap_or("").to_string(),
        }))
    }

    /// All paid vends (`VA1`), if the file has them.
    ///
    /// # Errors
    /// [`DexError::BadNumber`] if a counter is not a number.
    pub fn va1(&self) -> Result<Option<DexTotals>, DexError> {
        self.find("VA1").map(Segment::value_count).transpose()
    }

    /// Cashless device 1's vends (`DA2`), if the file has them.
    ///
    /// # Errors
    /// [`DexError::BadNumber`] if a counter is not a number.
    pub fn da2(&self) -> Result<Option<DexTotals>, DexError> {
        self.find("DA2").map(Segment::value_count).transpose()
    }

    /// Every selection (`PA1`) with the `PA2` that follows it, in file order.
    ///
    /// # Errors
    /// [`DexError::BadNumber`] if a price or counter is not a number.
    pub fn selections(&self) -> Result<Vec<Selection>, DexError> {
        let mut out: Vec<Selection> = Vec::new();
        for s in &self.segments {
            match s.tag.as_str() {
                "PA1" => {
                    let price = s.element(2).map(str::trim).filter(|p| !p.is_empty());
                    out.push(Selection {
                        id: s.element(1).unwrap_or("").trim().to_string(),
                        price: price.map(|_| s.number(2)).transpose()?,
                        product: s.element(3).unwrap_or("").to_string(),
                        sales: DexTotals::default(),
                    });
                }
                "PA2" => {
                    if let Some(sel) = out.last_mut() {
                        sel.sales = DexTotals {
                            count_init: s.number(1)?,
                            value_init: s.number(2)?,
                            count_reset: s.number(3)?,
                            value_reset: s.number(4)?,
                        };
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The sum of every selection's `PA2`.
    ///
    /// # Errors
    /// As [`DexFile::selections`].
    pub fn pa2_total(&self) -> Result<DexTotals, DexError> {
        let mut total = DexTotals::default();
        for s in self.selections()? {
            total.add(&s.sales);
        }
        Ok(total)
    }

    /// Every event's counts (`EA2`), in file order.
    ///
    /// # Errors
    /// [`DexError::BadNumber`] if a count is not a number.
    pub fn events(&self) -> Result<Vec<EventTotals>, DexError> {
        self.segments
            .iter()
            .filter(|s| s.tag == "EA2")
            .map(|s| {
                Ok(EventTotals {
                    code: s.element(1).unwrap_or("").trim().to_string(),
                    since_reset: s.number(2)?,
                    lifetime: s.number(3)?,
                    active: s.element(5).map(str::trim) == Some("1"),
                })
            })
            .collect()
    }
}
