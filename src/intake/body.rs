//! Reading JSON bodies: size limit, parse errors with the path of the
//! offending field, all as problem+json.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::problem::ApiError;
// The field rules are shared with the domain modules; the intake names
// them here, where it always did.
pub use crate::fields::{Checks, is_identifier, is_plausible_email};

/// The raw body, with axum's rejections (too large, unreadable) turned
/// into problem+json like every other error.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let json = is_json(request.headers());
        let body = Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit }
                } else {
                    ApiError::BadRequest {
                        slug: "unreadable-body",
                        detail: rejection.body_text(),
                    }
                }
            })?;
        // An empty body is no body (actions that take none); any other
        // must say it is JSON, or it is refused before anyone parses it.
        if !body.0.is_empty() && !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(body)
    }
}

/// `application/json`, or any `+json` type, with any parameters.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// The configured body limit, carried to [`RawBody`] for its error message.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest {
            slug: "body-missing",
            detail: "this route needs a JSON body".into(),
        });
    }
    // Every body is an object: serde would read a struct from an array by
    // position, which no caller means.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Err(inner) => ApiError::BadRequest {
                    slug: "malformed-json",
                    detail: format!("the body is not valid JSON: {inner}"),
                },
                Ok(_) => ApiError::BadRequest {
                    slug: "body-not-object",
                    detail: "the body must be a JSON object".into(),
                },
            },
        );
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest {
                slug: "malformed-json",
                detail: format!("the body is not valid JSON: {inner}"),
            };
        }
        let message = inner.to_string();
        let at = |name: &str| {
            if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        if let Some(missing) = backticked_after(&message, "missing field `") {
            return ApiError::field(&at(missing), "is required");
        }
        if let Some(unknown) = backticked_after(&message, "unknown field `") {
            return ApiError::field(&at(unknown), "is not a field of this request");
        }
        if path == "." {
            return ApiError::BadRequest {
                slug: "body-not-object",
                detail: format!("the body must be a JSON object, {}", in_words(&message)),
            };
        }
        ApiError::field(&path, in_words(&message))
    })
}

/// The name in `…prefix`name`…`, as serde words missing and unknown fields.
fn backticked_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

/// serde's message with Rust's type names said in words: "expected a
/// whole number" instead of "expected i32".
fn in_words(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    let (found, expected) = match message.split_once(", expected ") {
        Some((found, expected)) => (found, expected),
        None => return message.to_owned(),
    };
    let expected = match expected.trim() {
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        other if other.starts_with("struct ") || other == "a map" => "an object".to_owned(),
        other if other.starts_with("a sequence") => "a list".to_owned(),
        other if other.starts_with("a tuple") => "a list".to_owned(),
        other if other.contains("UUID") || other.contains("Uuid") => "a UUID".to_owned(),
        other => other.to_owned(),
    };
    let found = found
        .replace("invalid type: ", "")
        .replace("invalid value: ", "")
        .replace("sequence", "a list")
        .replace("map", "an object");
    format!("expected {expected}, got {found}")
}

/// Whole numbers as JSON Schema counts them: `13` and `13.0` alike (a
/// client or fuzzer may send either for an `integer`); `13.5` is refused.
pub mod whole_number {
    use serde::{Deserialize, Deserializer, de::Error};

    fn whole(value: &serde_json::Value) -> Result<i32, String> {
        let number = value.as_i64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= 1e15)
                .map(|f| f as i64)
        });
        number
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("expected a whole number, got {value}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
        whole(&serde_json::Value::deserialize(deserializer)?).map_err(D::Error::custom)
    }

    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Null => Ok(None),
            value => whole(&value).map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        quantity: i32,
        contact: Contact,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Contact {
        email: String,
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        match parse_json::<Order>(&Bytes::from(body.to_owned())) {
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        assert_eq!(
            fields(r#"{"quantity": 1, "contact": {}}"#),
            [("contact.email".to_owned(), "is required".to_owned())]
        );
        assert_eq!(
            fields(r#"{"contact": {"email": "a@b.c"}}"#),
            [("quantity".to_owned(), "is required".to_owned())]
        );
    }

    #[test]
    fn a_wrong_type_is_said_in_words() {
        let errors = fields(r#"{"quantity": "two", "contact": {"email": "a@b.c"}}"#);
        assert_eq!(errors[0].0, "quantity");
        assert_eq!(errors[0].1, "expected a whole number, got string \"two\"");
    }

    #[test]
    fn a_whole_number_may_come_as_13_or_13_0_but_not_13_5() {
        #[derive(Debug, serde::Deserialize)]
        struct Count {
            #[serde(deserialize_with = "whole_number::deserialize")]
            n: i32,
        }
        let n = |body: &str| serde_json::from_str::<Count>(body).map(|c| c.n);
        assert_eq!(n(r#"{"n": 13}"#).unwrap(), 13);
        assert_eq!(n(r#"{"n": 13.0}"#).unwrap(), 13);
        assert!(n(r#"{"n": 13.5}"#).is_err());
        assert!(n(r#"{"n": 1e12}"#).is_err());
    }

    #[test]
    fn an_array_body_is_not_an_object() {
        let error = parse_json::<Order>(&Bytes::from_static(b"[1]")).unwrap_err();
        assert!(
            matches!(
                error,
                ApiError::BadRequest {
                    slug: "body-not-object",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("content-type", value.parse().unwrap());
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonp"));
        assert!(!is_json(&axum::http::HeaderMap::new()));
    }
}
