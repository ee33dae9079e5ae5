//! Usernames: kept as typed for display, compared in one canonical form (Unicode NFKC, then case fold, then
//! NFKC again) so that "Alice", "ALICE" and "Ａｌｉｃｅ" are one account with one failure counter.

use unicode_normalization::UnicodeNormalization;

pub const MAX_USERNAME_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username {
    display: String,
    canonical: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Username, String> {
        let display: String = raw.trim().nfkc().collect();
        if display.is_empty() {
            return Err("username must not be empty".into());
        }
        if display.chars().count() > MAX_USERNAME_CHARS {
            return Err(format!(
                "username must be at most {MAX_USERNAME_CHARS} characters"
            ));
        }
        if display.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("username must not contain spaces or control characters".into());
        }
        Ok(Username {
            canonical: canonical(&display),
            display,
        })
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

/// The comparison form of any text offered as a username (also for names that fail `parse`, so every
/// attempt lands on one throttle key).
pub fn canonical(raw: &str) -> String {
    let folded = caseless::default_case_fold_str(&raw.trim().nfkc().collect::<String>());
    folded.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_width_variants_share_one_canonical_form() {
        let a = Username::parse("Alice").unwrap();
        let b = Username::parse("ＡＬＩＣＥ").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.display(), "Alice");
    }

    #[test]
    fn sharp_s_folds_like_ss() {
        assert_eq!(canonical("STRASSE"), canonical("straße"));
    }

    #[test]
    fn empty_long_and_spaced_names_are_refused() {
        assert!(Username::parse("  ").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("a\0b").is_err());
    }
}
