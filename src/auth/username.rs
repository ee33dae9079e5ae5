//! Usernames: kept as typed for display, compared in one canonical form (Unicode NFKC, then case fold, then
//! NFKC again) so that "Alice", "ALICE" and "Ａｌｉｃｅ" are one account with one failure counter.
//!
//! A new name must also be:
//! - allowed by the PRECIS IdentifierClass as the UsernameCaseMapped profile enforces it (RFC 8264, 8265):
//!   letters, digits and printable ASCII; no invisible, formatting or bidirectional-control characters, no
//!   symbols, no compatibility forms other than full and half width, and right-to-left text only as the
//!   bidi rule allows;
//! - unlike every existing name once confusables are mapped (the TS #39 skeleton of the canonical form), so
//!   `аdmin` in Cyrillic cannot sit beside `admin`. The database holds the skeleton under a unique index.

use precis_profiles::{
    UsernameCaseMapped,
    precis_core::{
        DerivedPropertyValue, Error as PrecisError, IdentifierClass, StringClass, UnexpectedError,
        profile::PrecisFastInvocation,
    },
};
use unicode_normalization::UnicodeNormalization;

pub const MAX_USERNAME_CHARS: usize = 64;

/// A username that may be given to a new account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username {
    display: String,
    canonical: String,
}

impl Username {
    /// Checks a name offered for a new account; the error says what is wrong in words a person can act on.
    pub fn parse(raw: &str) -> Result<Username, String> {
        let trimmed = raw.trim();
        let display: String = trimmed.nfkc().collect();
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
        // The raw form, not the NFKC one: NFKC would hide compatibility characters PRECIS refuses. Enforcing
        // (not only preparing) adds the bidi rule; our own canonical form stays the comparison key.
        <UsernameCaseMapped as PrecisFastInvocation>::enforce(trimmed)
            .map_err(|e| precis_message(trimmed, e))?;
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

    /// The confusable skeleton that must be unique among accounts.
    pub fn skeleton(&self) -> String {
        skeleton(&self.canonical)
    }
}

/// The comparison form of any text offered as a username (also for names that fail `parse`, so every
/// attempt lands on one throttle key).
pub fn canonical(raw: &str) -> String {
    let folded = caseless::default_case_fold_str(&raw.trim().nfkc().collect::<String>());
    folded.nfkc().collect()
}

/// The TS #39 skeleton of a canonical name: lookalikes from other scripts (and `rn` for `m`, `1` for `l`)
/// map to one string. Computed from the case-folded form, as TS #39 advises for case-insensitive names.
pub fn skeleton(canonical: &str) -> String {
    unicode_security::skeleton(canonical).collect()
}

/// Names the code point PRECIS refused, so the caller can see an invisible one.
fn precis_message(raw: &str, e: PrecisError) -> String {
    let cp = match e {
        PrecisError::BadCodepoint(info)
        | PrecisError::Unexpected(
            UnexpectedError::ContextRuleNotApplicable(info)
            | UnexpectedError::MissingContextRule(info),
        ) => Some(info.cp),
        // Emptiness was checked before, so this is the bidi rule.
        PrecisError::Invalid => {
            return "username mixes right-to-left and left-to-right text in a way that can display misleadingly"
                .into();
        }
        // A context rule that ran off either end (a joiner first or last) says no more: find the character.
        PrecisError::Unexpected(_) => raw
            .chars()
            .find(|c| {
                !matches!(
                    IdentifierClass::default().get_value_from_char(*c),
                    DerivedPropertyValue::PValid | DerivedPropertyValue::SpecClassPval
                )
            })
            .map(u32::from),
    };
    match cp {
        Some(cp) => format!(
            "username must not contain U+{cp:04X}: only letters, digits and ASCII punctuation are allowed \
             (no invisible, formatting, direction-control or symbol characters)"
        ),
        None => "username is not allowed".into(),
    }
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

    #[test]
    fn invisible_and_format_characters_are_refused_naming_the_code_point() {
        let hidden = [
            0x200B, 0x200C, 0x200D, 0x2060, 0x00AD, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066,
            0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C, 0xE0001, 0xE0041, 0xE007F, 0xFE00,
            0xFE0F, 0xE0100, 0xE01EF, 0x180B, 0xFEFF, 0x034F, 0x115F, 0x3164,
        ];
        for cp in hidden {
            let c = char::from_u32(cp).unwrap();
            for name in [
                format!("ad{c}min"),
                format!("{c}admin"),
                format!("admin{c}"),
            ] {
                let err = Username::parse(&name).expect_err(&format!("U+{cp:04X} is refused"));
                assert!(err.contains(&format!("U+{cp:04X}")), "{err}");
            }
        }
    }

    #[test]
    fn symbols_and_compatibility_forms_are_refused_but_width_variants_are_not() {
        for name in ["snow☃man", "ﬁsh", "x²", "Ⅻ", "ad·min", "admin\u{2011}x"] {
            assert!(Username::parse(name).is_err(), "{name}");
        }
        assert!(Username::parse("ｇｒａｃｅ").is_ok());
        let mixed = Username::parse("admin\u{05D0}").unwrap_err();
        assert!(mixed.contains("right-to-left"), "{mixed}");
    }

    #[test]
    fn a_joiner_is_allowed_where_its_script_needs_it() {
        // ZWNJ after a virama is part of how Devanagari is written (RFC 5892 CONTEXTJ).
        assert!(Username::parse("क्\u{200C}ष").is_ok());
    }

    #[test]
    fn names_in_other_scripts_are_accepted() {
        for name in [
            "José",
            "Ελένη",
            "李雷",
            "Дмитрий",
            "مريم",
            "नमस्ते",
            "o'brien",
            "first.last",
            "a_b-c@d",
        ] {
            assert!(Username::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn script_lookalikes_share_a_skeleton_with_the_latin_name() {
        let admin = Username::parse("admin").unwrap().skeleton();
        for name in [
            "\u{0430}dmin",
            "\u{03B1}dmin",
            "adm\u{0131}n",
            "\u{0410}DMIN",
            "ADMIN",
            "\u{0430}\u{0501}m\u{0456}n",
            "adrnin",
        ] {
            assert_eq!(Username::parse(name).unwrap().skeleton(), admin, "{name}");
        }
        for name in ["admins", "adnim", "Ελένη", "José"] {
            assert_ne!(Username::parse(name).unwrap().skeleton(), admin, "{name}");
        }
        assert_eq!(skeleton(&canonical("user1")), skeleton(&canonical("userl")));
    }

    #[test]
    fn different_names_in_one_script_keep_different_skeletons() {
        let names = [
            "José",
            "Jose",
            "Ελένη",
            "Ελενη",
            "李雷",
            "李雪",
            "Дмитрий",
            "Дмитрия",
        ];
        let skeletons: std::collections::HashSet<String> = names
            .iter()
            .map(|n| Username::parse(n).unwrap().skeleton())
            .collect();
        assert_eq!(skeletons.len(), names.len());
    }
}
