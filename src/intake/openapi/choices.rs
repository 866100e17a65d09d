//! Fields that take one of a few words (`usage`, `locale`, …) are checked
//! by the handlers against a fixed list and declared with a pattern such
//! as `^(ja|en)$`. The document says the same as an `enum`, so clients
//! and generators see the choices, not a regex to decode.

use utoipa::Modify;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, RefOr};

pub(super) struct ChoiceEnums;

impl Modify for ChoiceEnums {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for schema in components.schemas.values_mut() {
            if let RefOr::T(Schema::Object(object)) = schema {
                for property in object.properties.values_mut() {
                    if let RefOr::T(Schema::Object(field)) = property {
                        declare_choices(field);
                    }
                }
            }
        }
    }
}

/// Adds the enum a choice pattern spells; a nullable field keeps null.
fn declare_choices(field: &mut utoipa::openapi::Object) {
    let Some(words) = field.pattern.as_deref().and_then(choices) else {
        return;
    };
    let mut values: Vec<serde_json::Value> = words.into_iter().map(Into::into).collect();
    match &field.schema_type {
        SchemaType::Type(Type::String) => {}
        SchemaType::Array(types) if types.contains(&Type::String) => {
            if types.contains(&Type::Null) {
                values.push(serde_json::Value::Null);
            }
        }
        _ => return,
    }
    field.enum_values = Some(values);
}

/// The words of `^(a|b|c)$`, if the pattern is exactly such a choice.
fn choices(pattern: &str) -> Option<Vec<String>> {
    let inner = pattern.strip_prefix("^(")?.strip_suffix(")$")?;
    let words: Vec<String> = inner.split('|').map(str::to_owned).collect();
    let plain = |w: &String| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    words.iter().all(plain).then_some(words)
}

#[cfg(test)]
mod tests {
    use super::choices;

    #[test]
    fn only_a_plain_choice_of_words_becomes_an_enum() {
        assert_eq!(choices("^(ja|en)$"), Some(vec!["ja".into(), "en".into()]));
        assert_eq!(
            choices("^(virtual|bare_metal|hypervisor)$"),
            Some(vec![
                "virtual".into(),
                "bare_metal".into(),
                "hypervisor".into()
            ])
        );
        assert_eq!(choices("^[a-z]{1,64}$"), None);
        assert_eq!(choices("^(a.*|b)$"), None);
        assert_eq!(choices("^()$"), None);
    }
}
