//! License keys: generation, parsing of what a person typed, and safe display.
//!
//! This module owns the key format and nothing else (storage, delivery and
//! signing live elsewhere). A key is 24 random symbols plus one check symbol,
//! shown as five groups of five, e.g. `7KQ2M-WX9PA-…`:
//!
//! * The alphabet has 32 symbols and leaves out `0`, `O`, `1` and `I`, so a key
//!   read off a screen or a printed invoice cannot be mistyped between
//!   look-alikes. 32 symbols also means 5 bits each, so 24 symbols carry
//!   120 bits from the operating system's CSPRNG: unguessable.
//! * The check symbol uses the Luhn mod N algorithm (N = 32). It catches every
//!   single wrong character and every swap of two neighbouring characters
//!   except `2`↔`Z`, so typos are reported as typos instead of as "unknown key".
//!
//! A [`LicenseKey`] is a secret: `Debug` is redacted so it cannot slip into
//! logs through `{:?}`; use [`LicenseKey::redacted`] when a log line needs to
//! say which key it is about.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The symbols a key is made of; a symbol's index is its Luhn code point.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
const N: u32 = ALPHABET.len() as u32;
/// Random symbols per key (5 bits each).
const RANDOM_SYMBOLS: usize = 24;
/// Symbols per key, counting the trailing check symbol.
const KEY_SYMBOLS: usize = RANDOM_SYMBOLS + 1;
const GROUP_LEN: usize = 5;
const GROUPS: usize = KEY_SYMBOLS / GROUP_LEN;
/// Length of the canonical form: the symbols plus a dash between groups.
const CANONICAL_LEN: usize = KEY_SYMBOLS + GROUPS - 1;

/// A license key. `Display` prints the canonical grouped form; `Debug` is
/// redacted (it never prints the key) so it cannot leak into logs via `{:?}`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LicenseKey(String);

impl LicenseKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes; issuing a
    /// guessable key instead would be worse than failing the job.
    pub fn generate() -> Self {
        let mut random = [0u8; RANDOM_SYMBOLS];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let mut codes = [0u8; KEY_SYMBOLS];
        for (code, byte) in codes.iter_mut().zip(random) {
            // 256 is a multiple of 32, so masking keeps every symbol equally likely.
            *code = byte & (N as u8 - 1);
        }
        codes[RANDOM_SYMBOLS] = check_code(&codes[..RANDOM_SYMBOLS]);
        Self(canonical(&codes))
    }

    /// Accepts what a person types: case-insensitive, with whitespace and
    /// dashes anywhere ignored. Rejects a wrong length, characters outside the
    /// alphabet (naming the position and character, never the whole key) and a
    /// wrong check character.
    pub fn parse(input: &str) -> Result<Self, KeyError> {
        let mut codes = Vec::with_capacity(KEY_SYMBOLS);
        for (index, typed) in input.chars().enumerate() {
            if is_separator(typed) {
                continue;
            }
            let position = index + 1;
            let upper = typed.to_ascii_uppercase();
            match code_of(upper) {
                Some(code) => codes.push(code),
                None if matches!(upper, '0' | 'O' | '1' | 'I') => {
                    return Err(KeyError::LookAlike {
                        position,
                        character: typed,
                    });
                }
                None => {
                    return Err(KeyError::InvalidCharacter {
                        position,
                        character: typed,
                    });
                }
            }
        }
        if codes.is_empty() {
            return Err(KeyError::Empty);
        }
        if codes.len() != KEY_SYMBOLS {
            return Err(KeyError::WrongLength { found: codes.len() });
        }
        if luhn_sum(&codes, 1) != 0 {
            return Err(KeyError::CheckFailed);
        }
        Ok(Self(canonical(&codes)))
    }

    /// The canonical grouped form, e.g. `7KQ2M-WX9PA-3HNTE-R8FZC-DLV45`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short non-secret label safe for logs: the first group and `-…`,
    /// e.g. `7KQ2M-…`. The hidden part still holds 95 random bits.
    pub fn redacted(&self) -> String {
        format!("{}-…", &self.0[..GROUP_LEN])
    }
}

impl fmt::Display for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LicenseKey").field(&self.redacted()).finish()
    }
}

impl FromStr for LicenseKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for LicenseKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LicenseKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a typed license key was rejected. Messages are meant for the person who
/// typed the key, and never repeat the key itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no license key was given")]
    Empty,
    #[error(
        "a license key has {KEY_SYMBOLS} characters (not counting dashes); this one has {found}"
    )]
    WrongLength { found: usize },
    /// `position` counts every character as typed, from 1, dashes and spaces included.
    #[error(
        "character {position} of the license key is {character:?}; license keys never contain \
         0, O, 1 or I because they are easily confused, so please compare that character \
         with the original key"
    )]
    LookAlike { position: usize, character: char },
    /// `position` counts every character as typed, from 1, dashes and spaces included.
    #[error(
        "character {position} of the license key is {character:?}, which license keys do not \
         use (they contain only the digits 2-9 and the letters A-Z except I and O)"
    )]
    InvalidCharacter { position: usize, character: char },
    #[error(
        "this license key contains a typo (its check character does not match); please \
         compare it with the original key"
    )]
    CheckFailed,
}

/// Besides the ASCII dash, accepts the dashes word processors and mail clients
/// substitute for it, so a pasted key still parses.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

fn code_of(symbol: char) -> Option<u8> {
    let byte = u8::try_from(symbol).ok()?;
    ALPHABET
        .iter()
        .position(|&s| s == byte)
        .map(|index| index as u8)
}

/// Luhn mod N sum, walking from the right with the factor of the rightmost
/// symbol given. Doubling and then adding the base-N "digits" is a
/// permutation of the code points, which is what makes every single
/// substitution change the sum.
fn luhn_sum(codes: &[u8], rightmost_factor: u32) -> u32 {
    let mut factor = rightmost_factor;
    let mut sum = 0;
    for &code in codes.iter().rev() {
        let addend = factor * u32::from(code);
        sum += addend / N + addend % N;
        factor = 3 - factor;
    }
    sum % N
}

/// The check symbol's code point for `payload`. The check symbol will be the
/// rightmost symbol with factor 1, so the payload's rightmost symbol gets factor 2.
fn check_code(payload: &[u8]) -> u8 {
    ((N - luhn_sum(payload, 2)) % N) as u8
}

fn canonical(codes: &[u8]) -> String {
    let mut out = String::with_capacity(CANONICAL_LEN);
    for (index, &code) in codes.iter().enumerate() {
        if index > 0 && index % GROUP_LEN == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(code)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key's symbols without dashes.
    fn symbols(key: &LicenseKey) -> Vec<char> {
        key.as_str().chars().filter(|&c| c != '-').collect()
    }

    fn keys(count: usize) -> Vec<LicenseKey> {
        (0..count).map(|_| LicenseKey::generate()).collect()
    }

    #[test]
    fn generated_keys_have_the_canonical_shape_and_parse_back() {
        for key in keys(200) {
            let text = key.as_str();
            assert_eq!(text.len(), CANONICAL_LEN);
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(groups.len(), GROUPS);
            assert!(groups.iter().all(|g| g.len() == GROUP_LEN));
            assert!(text.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
            assert_eq!(LicenseKey::parse(text), Ok(key.clone()));
            assert_eq!(key.to_string(), text);
        }
    }

    #[test]
    fn known_key_is_accepted_and_its_neighbour_is_not() {
        // Check symbol computed by an independent implementation; pins the
        // algorithm, since changing it would invalidate every issued key.
        let key = LicenseKey::parse("7kq2m wx9pa 3hnte r8fzc dlv45").unwrap();
        assert_eq!(key.as_str(), "7KQ2M-WX9PA-3HNTE-R8FZC-DLV45");
        assert_eq!(
            LicenseKey::parse("7KQ2M-WX9PA-3HNTE-R8FZC-DLV46"),
            Err(KeyError::CheckFailed)
        );
    }

    #[test]
    fn every_single_substitution_is_rejected() {
        for key in keys(300) {
            let original = symbols(&key);
            for position in 0..original.len() {
                for &replacement in ALPHABET {
                    let replacement = char::from(replacement);
                    if replacement == original[position] {
                        continue;
                    }
                    let mut typo = original.clone();
                    typo[position] = replacement;
                    let typo: String = typo.into_iter().collect();
                    assert_eq!(
                        LicenseKey::parse(&typo),
                        Err(KeyError::CheckFailed),
                        "substitution at {position} accepted"
                    );
                }
            }
        }
    }

    #[test]
    fn almost_all_adjacent_transpositions_are_rejected() {
        let (mut swaps, mut caught) = (0u32, 0u32);
        for key in keys(300) {
            let original = symbols(&key);
            for position in 0..original.len() - 1 {
                if original[position] == original[position + 1] {
                    continue;
                }
                let mut typo = original.clone();
                typo.swap(position, position + 1);
                let typo: String = typo.into_iter().collect();
                swaps += 1;
                if LicenseKey::parse(&typo).is_err() {
                    caught += 1;
                }
            }
        }
        let rate = f64::from(caught) / f64::from(swaps);
        assert!(
            rate > 0.90,
            "only {caught} of {swaps} transpositions caught"
        );
    }

    #[test]
    fn only_swapping_2_and_z_escapes_the_check() {
        // Pins down the known Luhn blind spot, so a change to the algorithm
        // that weakens it shows up here.
        let mut missed = Vec::new();
        for start in 0..2 {
            for a in 0..N as u8 {
                for b in 0..N as u8 {
                    if a == b {
                        continue;
                    }
                    let mut payload = [7u8; RANDOM_SYMBOLS];
                    payload[start] = a;
                    payload[start + 1] = b;
                    let mut swapped = payload;
                    swapped.swap(start, start + 1);
                    if check_code(&payload) == check_code(&swapped) {
                        missed.push((ALPHABET[usize::from(a)], ALPHABET[usize::from(b)]));
                    }
                }
            }
        }
        missed.sort_unstable();
        missed.dedup();
        assert_eq!(missed, vec![(b'2', b'Z'), (b'Z', b'2')]);
    }

    #[test]
    fn lower_case_spaces_and_odd_dashes_are_accepted() {
        let key = LicenseKey::generate();
        let plain: String = symbols(&key).into_iter().collect();
        let lower = plain.to_lowercase();
        let spaced = format!(" {} {} \t{}\n", &lower[..3], &lower[3..14], &lower[14..]);
        assert_eq!(LicenseKey::parse(&spaced), Ok(key.clone()));
        assert_eq!(LicenseKey::parse(&plain), Ok(key.clone()));
        let en_dashes = key.as_str().replace('-', "\u{2013}");
        assert_eq!(LicenseKey::parse(&en_dashes), Ok(key.clone()));
        assert_eq!(key.as_str().parse::<LicenseKey>(), Ok(key));
    }

    #[test]
    fn look_alike_characters_are_rejected_with_a_clear_error() {
        let key = LicenseKey::generate();
        for look_alike in ['0', 'O', 'o', '1', 'I', 'i'] {
            // Position 8 as typed is the second symbol of the second group.
            let mut typed: Vec<char> = key.as_str().chars().collect();
            typed[7] = look_alike;
            let typed: String = typed.into_iter().collect();
            let error = LicenseKey::parse(&typed).unwrap_err();
            assert_eq!(
                error,
                KeyError::LookAlike {
                    position: 8,
                    character: look_alike
                }
            );
            let message = error.to_string();
            assert!(message.contains("character 8"), "{message}");
            assert!(message.contains("0, O, 1 or I"), "{message}");
            assert!(!message.contains(&typed[..GROUP_LEN + 2]), "{message}");
        }
    }

    #[test]
    fn other_bad_input_gets_a_clear_error_without_the_key() {
        let key = LicenseKey::generate();
        let text = key.as_str();

        let error = LicenseKey::parse(&text[..text.len() - 2]).unwrap_err();
        assert_eq!(error, KeyError::WrongLength { found: 23 });
        assert_eq!(
            error.to_string(),
            "a license key has 25 characters (not counting dashes); this one has 23"
        );

        let error = LicenseKey::parse(&format!("{}A", text)).unwrap_err();
        assert_eq!(error, KeyError::WrongLength { found: 26 });

        let error = LicenseKey::parse(&format!("{}#{}", &text[..3], &text[3..])).unwrap_err();
        assert_eq!(
            error,
            KeyError::InvalidCharacter {
                position: 4,
                character: '#'
            }
        );
        assert!(!error.to_string().contains(&text[..GROUP_LEN]));

        assert_eq!(LicenseKey::parse(" - "), Err(KeyError::Empty));
        assert_eq!(LicenseKey::parse(""), Err(KeyError::Empty));
    }

    #[test]
    fn debug_and_redacted_do_not_reveal_the_key() {
        let key = LicenseKey::generate();
        let debug = format!("{key:?}");
        assert!(!debug.contains(key.as_str()), "{debug}");
        assert!(!debug.contains(&key.as_str()[GROUP_LEN..]), "{debug}");
        assert_eq!(debug, format!("LicenseKey({:?})", key.redacted()));
        assert_eq!(key.redacted(), format!("{}-…", &key.as_str()[..GROUP_LEN]));
        let error = format!("{:?}", LicenseKey::parse(&key.as_str()[..20]));
        assert!(!error.contains(&key.as_str()[..20]), "{error}");
    }

    #[test]
    fn generated_keys_differ() {
        let a = LicenseKey::generate();
        let b = LicenseKey::generate();
        assert_ne!(a, b);
    }

    #[test]
    fn serde_uses_the_canonical_string_and_validates() {
        let key = LicenseKey::generate();
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", key.as_str()));
        let back: LicenseKey = serde_json::from_str(&json.to_lowercase()).unwrap();
        assert_eq!(back, key);

        let mut typo = key.as_str().to_owned();
        let last = typo.pop().unwrap();
        typo.push(if last == 'A' { 'B' } else { 'A' });
        let error = serde_json::from_str::<LicenseKey>(&format!("\"{typo}\"")).unwrap_err();
        assert!(error.to_string().contains("typo"), "{error}");
        assert!(!error.to_string().contains(&typo), "{error}");
    }
}
