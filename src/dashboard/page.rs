//! Renders the dashboard's pages: minijinja templates compiled into the
//! binary, HTML-escaped, fed with what the ops API reports.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("layout.html", include_str!("templates/layout.html"))
        .expect("layout.html parses");
    env.add_template("login.html", include_str!("templates/login.html"))
        .expect("login.html parses");
    env.add_template("ops.html", include_str!("templates/ops.html"))
        .expect("ops.html parses");
    env.add_filter("secs", seconds);
    env.add_filter("pct", percent);
    env.add_filter("when", when);
    env
});

pub fn render(name: &str, context: impl Serialize) -> anyhow::Result<String> {
    Ok(TEMPLATES.get_template(name)?.render(context)?)
}

/// Seconds for people: "850 ms", "12.3 s", "4.5 min", "2.1 h", "-" for none.
fn seconds(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// An RFC 3339 instant as "2026-11-23 16:39:09", whole seconds, UTC.
fn when(value: Option<String>) -> String {
    let Some(text) = value else {
        return "-".to_owned();
    };
    chrono::DateTime::parse_from_rfc3339(&text).map_or(text, |at| {
        at.with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_at_a_glance() {
        assert_eq!(seconds(None), "-");
        assert_eq!(seconds(Some(0.0123)), "12 ms");
        assert_eq!(seconds(Some(12.34)), "12.3 s");
        assert_eq!(seconds(Some(270.0)), "4.5 min");
        assert_eq!(seconds(Some(7560.0)), "2.1 h");
        assert_eq!(percent(Some(0.9876)), "98.8%");
        assert_eq!(percent(None), "-");
        assert_eq!(
            when(Some("2026-11-23T16:39:09.190516Z".into())),
            "2026-11-23 16:39:09"
        );
        assert_eq!(when(None), "-");
    }

    #[test]
    fn login_page_escapes_what_it_echoes() {
        let html = render(
            "login.html",
            serde_json::json!({ "error": "<script>x</script>" }),
        )
        .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
    }
}
