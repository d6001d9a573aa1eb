//! The QR corpus's CSV ground truth (`../shared/data/qr/*/ground_truth.csv`): field
//! splitting and hex payloads. Shared by `benches/qr_decode.rs` and `tests/qr_corpus.rs`
//! (included by path: a bench and the test binary are separate crates).

/// Splits one CSV line, honouring double-quoted fields.
pub(crate) fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Bytes of a hex string, or None when it is not hex.
pub(crate) fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}
