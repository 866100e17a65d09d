//! The languages fulfil writes mail in. A leaf: settings, mail and the
//! domain modules all name a locale, so it depends on nothing of ours.

use serde::{Deserialize, Serialize};

/// Language of a mail. Serialized as `"ja"` / `"en"`, the same strings
/// [`Locale::as_str`] returns and [`Locale::parse`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Ja,
    En,
}

impl Locale {
    /// Every supported locale, e.g. for tests that must cover all of them.
    pub const ALL: [Locale; 2] = [Locale::Ja, Locale::En];

    /// Parses a language tag as stored on an order (`"ja"`, `"ja-JP"`,
    /// `"EN_us"`, ...). Only the primary language subtag matters: we have one
    /// text per language, not per region. Returns `None` for anything else so
    /// the caller can fall back to its configured default locale.
    pub fn parse(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("ja") {
            Some(Locale::Ja)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Locale::En)
        } else {
            None
        }
    }

    /// [`Locale::parse`] with a fallback: the recipient's locale when we have
    /// one we support, else the configured default.
    pub fn resolve(tag: Option<&str>, default: Locale) -> Locale {
        tag.and_then(Locale::parse).unwrap_or(default)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Locale::Ja => "ja",
            Locale::En => "en",
        }
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a configured locale the way [`Locale::parse`] reads a stored tag
/// (`"ja"`, `"ja-JP"`, `"EN_us"`), refusing one fulfil has no text for.
pub fn deserialize_tag<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Locale, D::Error> {
    let tag = String::deserialize(deserializer)?;
    Locale::parse(&tag)
        .ok_or_else(|| serde::de::Error::custom(format!("must be \"ja\" or \"en\", not {tag:?}")))
}
