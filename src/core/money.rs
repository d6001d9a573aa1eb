//! Money in integer minor units with an ISO 4217 currency.
//!
//! There is no floating point anywhere near an amount: prices, holds, captures and voids are
//! whole numbers of the currency's minor unit (cents, fen, yen). The currency's exponent says
//! how many decimals to show.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ISO 4217 alphabetic code (three upper-case ASCII letters).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Why a currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 4217 currency code (three upper-case letters such as EUR, USD, CNY)")]
pub struct CurrencyError(pub String);

impl Currency {
    /// Parses a three-letter code such as `EUR`.
    ///
    /// # Errors
    /// [`CurrencyError`] unless the text is exactly three upper-case ASCII letters.
    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(CurrencyError(code.to_string()))
        }
    }

    /// The code as text.
    pub fn code(&self) -> &str {
        // Invariant: constructed only from ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Number of decimals of the minor unit (ISO 4217 exponent).
    pub fn exponent(&self) -> u32 {
        match self.code() {
            "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" | "RWF" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
            _ => 2,
        }
    }

    /// Numeric ISO 4217 code for the currencies this project has met (used by EMVCo tag 53).
    pub fn numeric(&self) -> Option<u16> {
        Some(match self.code() {
            "EUR" => 978,
            "USD" => 840,
            "CNY" => 156,
            "GBP" => 826,
            "JPY" => 392,
            "KRW" => 410,
            "SGD" => 702,
            "HKD" => 344,
            "CHF" => 756,
            "SEK" => 752,
            "NOK" => 578,
            "DKK" => 208,
            "PLN" => 985,
            "CZK" => 203,
            "AUD" => 36,
            "CAD" => 124,
            "INR" => 356,
            "THB" => 764,
            "MYR" => 458,
            "IDR" => 360,
            "PHP" => 608,
            "VND" => 704,
            "KWD" => 414,
            "BHD" => 48,
            _ => return None,
        })
    }

    /// Formats an amount of minor units of this currency, e.g. `1250` → `12.50`.
    pub fn format_minor(&self, minor: i64) -> String {
        let exp = self.exponent();
        if exp == 0 {
            return minor.to_string();
        }
        let div = 10i64.pow(exp);
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / div as u64,
            abs % div as u64,
            width = exp as usize
        )
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: minor units of one currency.
///
/// Arithmetic is checked: mixing currencies or overflowing is an error, never a wrap.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (cents). Never negative for prices, holds, captures and voids.
    pub minor: i64,
    /// ISO 4217 currency.
    pub currency: Currency,
}

impl Money {
    /// `minor` minor units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }

    /// Checked sum; `None` on a currency mismatch or overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency).then_some(())?;
        Some(Money::new(
            self.minor.checked_add(other.minor)?,
            self.currency,
        ))
    }

    /// Checked difference; `None` on a currency mismatch or overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        (self.currency == other.currency).then_some(())?;
        Some(Money::new(
            self.minor.checked_sub(other.minor)?,
            self.currency,
        ))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.currency.format_minor(self.minor),
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_must_be_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn amounts_format_with_the_currency_exponent() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(Money::new(1250, eur).to_string(), "12.50 EUR");
        assert_eq!(Money::new(5, eur).to_string(), "0.05 EUR");
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::new(150, jpy).to_string(), "150 JPY");
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::new(1005, kwd).to_string(), "1.005 KWD");
    }

    #[test]
    fn mixing_currencies_is_refused() {
        let eur = Money::new(1, Currency::parse("EUR").unwrap());
        let usd = Money::new(1, Currency::parse("USD").unwrap());
        assert_eq!(eur.checked_add(usd), None);
        assert_eq!(eur.checked_add(eur).unwrap().minor, 2);
        assert_eq!(Money::new(i64::MAX, eur.currency).checked_add(eur), None);
    }
}
