//! Lists the mail templates, `src/mail/templates/<kind>.<locale>.txt`, for
//! `src/mail/templates.rs`: a template added to that directory is compiled
//! in with no line to write by hand. A file whose locale is not a `Locale`
//! variant fails the build.

use std::fmt::Write as _;
use std::path::Path;

const DIR: &str = "src/mail/templates";

fn main() {
    println!("cargo::rerun-if-changed={DIR}");
    // `sqlx::migrate!` embeds migrations/ at compile time, but a stable
    // compiler cannot tell cargo it read them: without this line a new
    // migration is left out of the binary until something else changes.
    println!("cargo::rerun-if-changed=migrations");
    let names: Vec<String> = std::fs::read_dir(DIR)
        .expect("src/mail/templates is readable")
        .map(|entry| entry.expect("a template directory entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .collect();
    let mut templates: Vec<(&str, &str)> = names
        .iter()
        .filter_map(|name| name.strip_suffix(".txt")?.rsplit_once('.'))
        .collect();
    templates.sort();

    let mut list = String::from("&[\n");
    for (kind, locale) in &templates {
        let variant = variant_of(locale);
        writeln!(
            list,
            "template_file!({kind:?}, {locale:?}, Locale::{variant}),"
        )
        .unwrap();
    }
    list.push(']');

    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    std::fs::write(out.join("mail_templates.rs"), list).expect("OUT_DIR is writable");
}

/// `ja` → `Ja`: the `Locale` variant a file's locale names.
fn variant_of(locale: &str) -> String {
    let mut chars = locale.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}
