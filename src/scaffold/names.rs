//! Names and quoting for the generated project: kpic names
//! (`[a-z][a-z0-9_]{0,62}`, unique), SQL identifiers (quoted when the
//! column is not a plain lower-case identifier or is a keyword), SQL
//! fields safe from Jinja, and YAML scalars (plain only when that cannot
//! be misread).

use std::collections::HashSet;

/// The longest kpic name (SPEC §7).
const MAX_NAME: usize = 63;

/// A kpic name from any text: ASCII letters and digits kept (lower-cased),
/// runs of anything else become one `_`; empty → `""` (callers give a
/// fallback); a leading digit gets an `n` in front.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    let mut s = trimmed.to_string();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'n');
    }
    s
}

/// Hands out unique names of one kind.
#[derive(Default)]
pub struct Namer {
    taken: HashSet<String>,
}

impl Namer {
    /// `base` (sanitized, `fallback` when empty), made unique with `_2`,
    /// `_3`… and cut to fit the 63-character limit.
    pub fn unique(&mut self, base: &str, fallback: &str) -> String {
        let mut base = sanitize(base);
        if base.is_empty() {
            base = fallback.to_string();
        }
        let fit = |s: &str, room: usize| -> String {
            let cut: String = s.chars().take(MAX_NAME - room).collect();
            cut.trim_end_matches('_').to_string()
        };
        let first = fit(&base, 0);
        if self.taken.insert(first.clone()) {
            return first;
        }
        for n in 2.. {
            let suffix = format!("_{n}");
            let candidate = format!("{}{suffix}", fit(&base, suffix.len()));
            if self.taken.insert(candidate.clone()) {
                return candidate;
            }
        }
        unreachable!("an unbounded counter always finds a free name")
    }
}

/// How a column is written in a SQL field: bare when it is a plain
/// lower-case identifier that kpic's parser (sqlparser, DuckDB dialect)
/// reads back as that identifier and DuckDB does not reserve in any
/// position (`reserved_duckdb` holds its keywords other than the
/// unreserved ones); double-quoted otherwise (`"order date"`, `"select"`,
/// `"Amount"`).
pub fn sql_ident(column: &str, reserved_duckdb: &HashSet<String>) -> String {
    let plain = column
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && column
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !reserved_duckdb.contains(column) && parses_as_identifier(column) {
        column.to_string()
    } else {
        super::sniff::quote_ident(column)
    }
}

fn parses_as_identifier(column: &str) -> bool {
    use sqlparser::ast::Expr;
    let dialect = sqlparser::dialect::DuckDbDialect {};
    let parsed = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(column)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
            Ok(e)
        });
    matches!(parsed, Ok(Expr::Identifier(ident)) if ident.value == column && ident.quote_style.is_none())
}

/// A SQL field's text made safe from Jinja (every SQL field is a
/// template): wrapped in `{% raw %}` when it holds a Jinja opener. `None`
/// when even that cannot work (the text says `endraw` too).
pub fn jinja_safe(sql: &str) -> Option<String> {
    let opener = ["{{", "{%", "{#"].iter().any(|o| sql.contains(o));
    if !opener {
        return Some(sql.to_string());
    }
    if sql.contains("endraw") {
        return None;
    }
    Some(format!("{{% raw %}}{sql}{{% endraw %}}"))
}

/// A YAML scalar for `s`: plain when it is simple (a name, `sum(amount)`,
/// `count(*)`), single-quoted when printable, double-quoted with JSON
/// escapes otherwise (JSON strings are valid YAML).
pub fn yaml(s: &str) -> String {
    const SPECIAL: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_(). *,/-".contains(c))
        && !s.ends_with(' ')
        && !SPECIAL.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else if !s.chars().any(char::is_control) && !s.starts_with(' ') && !s.ends_with(' ') {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "''".into())
    }
}

/// Text for a YAML comment or a Markdown line: control characters shown
/// escaped, so a header with a newline cannot end the comment.
pub fn display(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_to_kpic_names() {
        assert_eq!(sanitize("Order Date"), "order_date");
        assert_eq!(sanitize("  --Größe (cm)--"), "gr_e_cm");
        assert_eq!(sanitize("2024 sales.csv"), "n2024_sales_csv");
        assert_eq!(sanitize("ééé"), "");
    }

    #[test]
    fn unique_names_fit_and_differ() {
        let mut n = Namer::default();
        assert_eq!(n.unique("Amount", "col"), "amount");
        assert_eq!(n.unique("amount", "col"), "amount_2");
        assert_eq!(n.unique("ÄÖ", "col"), "col");
        let long = "x".repeat(100);
        let a = n.unique(&long, "col");
        let b = n.unique(&long, "col");
        assert_eq!(a.len(), 63);
        assert!(b.len() <= 63 && b.ends_with("_2"), "{b}");
    }

    #[test]
    fn idents_are_quoted_when_needed() {
        let none = HashSet::new();
        assert_eq!(sql_ident("amount", &none), "amount");
        assert_eq!(sql_ident("order date", &none), "\"order date\"");
        assert_eq!(sql_ident("region", &none), "region");
        // sqlparser reads `select` back as an identifier; DuckDB reserves it.
        let reserved: HashSet<String> = ["order".to_string(), "select".to_string()].into();
        assert_eq!(sql_ident("order", &reserved), "\"order\"");
        assert_eq!(sql_ident("select", &reserved), "\"select\"");
        // Not an identifier for sqlparser, whatever DuckDB says.
        assert_eq!(sql_ident("null", &none), "\"null\"");
        assert_eq!(sql_ident("Amount", &none), "\"Amount\"");
        assert_eq!(sql_ident("say \"hi\"", &none), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn yaml_scalars_round_trip() {
        for s in [
            "amount",
            "sum(amount)",
            "no",
            "No",
            "NULL",
            "Rows of a.csv per week",
            "fixtures/data/a-b.csv",
            "sum(\"order date\")",
            "it's",
            "a: b # c",
            "line\nbreak",
            " lead",
            "{% raw %}x{% endraw %}",
            "- x",
            "",
        ] {
            let text = format!("k: {}\n", yaml(s));
            let v: std::collections::BTreeMap<String, String> =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(v["k"], s, "{text}");
        }
    }

    #[test]
    fn jinja_openers_are_raw() {
        assert_eq!(jinja_safe("sum(a)").as_deref(), Some("sum(a)"));
        assert_eq!(
            jinja_safe("sum(\"{{x}}\")").as_deref(),
            Some("{% raw %}sum(\"{{x}}\"){% endraw %}")
        );
        assert_eq!(jinja_safe("\"{% endraw %}\""), None);
    }
}
