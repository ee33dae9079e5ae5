//! Phone numbers as Telesign wants them: the country calling code and the national number, digits only
//! (`+1 (555) 867-5309` → `15558675309`). Anything that cannot be such a number is refused here, before any
//! provider call, with a message a person can act on.

use std::fmt;

/// E.164 allows at most 15 digits; fewer than 8 cannot be a country code plus a subscriber number.
const MIN_DIGITS: usize = 8;
const MAX_DIGITS: usize = 15;

/// A normalised international number: digits only, country code first, no leading zero.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "phone_number must be an international number with its country code, like +1 555 867 5309 ({0})"
)]
pub struct InvalidNumber(&'static str);

impl PhoneNumber {
    /// Accepts `+`, spaces, dots, dashes and parentheses around the digits, and `00` as the international
    /// prefix; refuses letters, too few or too many digits, and a number without a country code.
    pub fn parse(raw: &str) -> Result<PhoneNumber, InvalidNumber> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(InvalidNumber("it is empty"));
        }
        let mut digits = String::with_capacity(raw.len());
        for (i, c) in raw.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(InvalidNumber("it holds characters other than digits")),
            }
        }
        let digits = match digits.strip_prefix("00") {
            Some(rest) if !raw.starts_with('+') => rest.to_string(),
            _ => digits,
        };
        if digits.starts_with('0') {
            return Err(InvalidNumber("the country code is missing"));
        }
        if digits.len() < MIN_DIGITS {
            return Err(InvalidNumber("it has too few digits"));
        }
        if digits.len() > MAX_DIGITS {
            return Err(InvalidNumber("it has more than 15 digits"));
        }
        Ok(PhoneNumber(digits))
    }

    /// The digits, as sent to the provider. Never log this: log [`PhoneNumber::masked`].
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The first two and last two digits, the rest hidden: enough for a person to recognise their number,
    /// not enough to call it.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        self.0
            .char_indices()
            .map(|(i, c)| if i < 2 || i >= n - 2 { c } else { '*' })
            .collect()
    }

    /// Whether the number starts with one of `codes` (country calling codes form a prefix code, so a
    /// prefix match is exact).
    pub fn in_countries(&self, codes: &[String]) -> bool {
        codes.iter().any(|c| self.0.starts_with(c.as_str()))
    }
}

/// Masked, so a number that reaches a log by accident is not in it whole.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_formats_normalise_to_digits() {
        for raw in [
            "+1 (555) 867-5309",
            "15558675309",
            "+15558675309",
            "1.555.867.5309",
            "001 555 867 5309",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw).unwrap().digits(),
                "15558675309",
                "{raw}"
            );
        }
    }

    #[test]
    fn what_cannot_be_a_number_is_refused() {
        for raw in [
            "",
            "  ",
            "555-CALL-NOW",
            "0555 867 5309",
            "+1 555",
            "1234567890123456",
            "+1+5558675309",
            "15558675309; DROP TABLE",
            "１５５５８６７５３０９",
        ] {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn masking_and_countries() {
        let n = PhoneNumber::parse("+44 20 7946 0958").unwrap();
        assert_eq!(n.masked(), "44********58");
        assert!(!format!("{n:?}").contains("7946"));
        assert!(n.in_countries(&["1".into(), "44".into()]));
        assert!(!n.in_countries(&["1".into()]));
    }
}
