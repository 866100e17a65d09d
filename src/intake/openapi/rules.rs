//! Request-body rules utoipa's derive cannot attach to a field: the
//! pattern of each item of a `Vec<String>`, and rules that join fields
//! (exactly one of three, one field only for one value of another). They
//! state what the handlers check, so a schema-driven client (or fuzzer)
//! can build a valid request from the document alone. A rule naming a
//! schema or property that no longer exists panics, so the OpenAPI test
//! fails instead of the rule silently going away.

use utoipa::Modify;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{Components, RefOr};

/// Directory ids (`body::is_identifier`).
const ID: &str = "^[A-Za-z0-9._-]{1,64}$";
/// Trial service names (`trials::is_service_name`).
const SERVICE: &str = "^[a-z0-9._-]{1,64}$";
/// Calling numbers (`trials::is_calling_number`).
const CALLING_NUMBER: &str = r"^\+?[0-9]{4,15}$";
/// What `LicenseKey::parse` reads: 25 symbols of the key alphabet in
/// either case, whitespace and dashes anywhere. The check symbol is
/// beyond a pattern: a key that fails it answers 400 naming its position.
const KEY: &str =
    r"^[\s\u2010-\u2015\u2212-]*([2-9A-HJ-NP-Za-hj-np-z][\s\u2010-\u2015\u2212-]*){25}$";

/// `(schema, array property, item pattern)`.
const ITEM_PATTERNS: &[(&str, &str, &str)] = &[
    ("TransferRequest", "subscription_ids", ID),
    ("TransferFormRequest", "subscription_ids", ID),
    ("RoleCleanupRequest", "subscription_ids", ID),
    ("TrialRequest", "services", SERVICE),
    ("TrialRequest", "user_ids", ID),
    ("TrialRequest", "calling_numbers", CALLING_NUMBER),
    ("CancellationRequest", "keys", KEY),
];

pub(super) struct BodyRules;

impl Modify for BodyRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (schema, property, pattern) in ITEM_PATTERNS {
            let Schema::Array(array) = property_mut(components, schema, property) else {
                panic!("{schema}.{property} is not an array");
            };
            array.items = RefOr::T(string(pattern)).into();
        }
        max_items(components, "TrialRequest", "calling_numbers", 100);
        let admin = object_mut(components, "Admin");
        admin.properties.insert(
            "email".into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Email,
                )))
                .max_length(Some(254))
                .into(),
        );
        admin
            .properties
            .insert("locale".into(), nullable_string("^(ja|en)$").into());
        let kinds = crate::job::JobKind::ALL
            .iter()
            .map(|kind| serde_json::Value::from(kind.as_str()));
        let kind = ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
            .enum_values(Some(kinds.into_iter().chain([serde_json::Value::Null])));
        object_mut(components, "ReplayBody")
            .properties
            .insert("kind".into(), kind.into());
        join(
            components,
            "NewOrderRequest",
            vm_count_only_for_hypervisors(),
        );
        join(
            components,
            "CancellationRequest",
            exactly_one_way_to_name_keys(),
        );
        join(components, "ReplayBody", a_kind_or_ids());
    }
}

fn string(pattern: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .into()
}

fn nullable_string(pattern: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .pattern(Some(pattern))
        .into()
}

fn null() -> Schema {
    ObjectBuilder::new().schema_type(Type::Null).into()
}

fn object_mut<'a>(components: &'a mut Components, schema: &str) -> &'a mut utoipa::openapi::Object {
    match components.schemas.get_mut(schema) {
        Some(RefOr::T(Schema::Object(object))) => object,
        _ => panic!("no object schema {schema}"),
    }
}

fn property_mut<'a>(
    components: &'a mut Components,
    schema: &str,
    property: &str,
) -> &'a mut Schema {
    match object_mut(components, schema).properties.get_mut(property) {
        Some(RefOr::T(schema)) => schema,
        _ => panic!("{schema} has no inline property {property}"),
    }
}

fn max_items(components: &mut Components, schema: &str, property: &str, max: usize) {
    if let Schema::Array(array) = property_mut(components, schema, property) {
        array.max_items = Some(max);
    }
}

/// The schema becomes `allOf: [itself, rule]`.
fn join(components: &mut Components, schema: &str, rule: Schema) {
    let own = components
        .schemas
        .remove(schema)
        .unwrap_or_else(|| panic!("no schema {schema}"));
    let description = match &own {
        RefOr::T(Schema::Object(object)) => object.description.clone(),
        _ => None,
    };
    let joined = AllOfBuilder::new()
        .item(own)
        .item(rule)
        .description(description)
        .build();
    components
        .schemas
        .insert(schema.to_owned(), Schema::AllOf(joined).into());
}

/// A branch of a `oneOf`: these properties, these required.
fn branch(properties: Vec<(&str, Schema)>, required: &[&str]) -> Schema {
    let mut object = ObjectBuilder::new();
    for (name, schema) in properties {
        object = object.property(name, schema);
    }
    for name in required {
        object = object.required(*name);
    }
    object.into()
}

fn vm_count_only_for_hypervisors() -> Schema {
    let hypervisor = branch(
        vec![
            (
                "usage",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["hypervisor"]))
                    .into(),
            ),
            (
                "vm_count",
                ObjectBuilder::new().schema_type(Type::Integer).into(),
            ),
        ],
        &["vm_count"],
    );
    let others = branch(
        vec![
            (
                "usage",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["virtual", "bare_metal"]))
                    .into(),
            ),
            ("vm_count", null()),
        ],
        &[],
    );
    OneOfBuilder::new()
        .item(hypervisor)
        .item(others)
        .description(Some(
            "`vm_count` is required for `hypervisor` usage and absent (or null) otherwise",
        ))
        .into()
}

fn exactly_one_way_to_name_keys() -> Schema {
    let list = |items: Schema| -> Schema {
        ArrayBuilder::new()
            .items(RefOr::T(items))
            .min_items(Some(1))
            .max_items(Some(1000))
            .into()
    };
    let uuid = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        )))
        .into();
    let all = ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .into();
    let ways = [
        ("license_ids", list(uuid)),
        ("keys", list(string(KEY))),
        ("all", all),
    ];
    let mut one_of = OneOfBuilder::new().description(Some(
        "exactly one of `license_ids`, `keys` or `all: true`; the others absent or null",
    ));
    for (chosen, schema) in &ways {
        let properties = ways
            .iter()
            .map(|(name, _)| {
                (
                    *name,
                    if name == chosen {
                        schema.clone()
                    } else {
                        null()
                    },
                )
            })
            .collect();
        one_of = one_of.item(branch(properties, &[chosen]));
    }
    one_of.into()
}

fn a_kind_or_ids() -> Schema {
    let kind = branch(
        vec![(
            "kind",
            ObjectBuilder::new().schema_type(Type::String).into(),
        )],
        &["kind"],
    );
    let ids = branch(
        vec![("ids", ArrayBuilder::new().min_items(Some(1)).into())],
        &["ids"],
    );
    AnyOfBuilder::new()
        .item(kind)
        .item(ids)
        .description(Some("a `kind`, at least one id in `ids`, or both"))
        .into()
}
