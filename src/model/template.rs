//! Templating: renders every SQL-bearing field with minijinja, the project's
//! macros (`macros/**/*.sql`, callable by name) and the dbt-style built-ins
//! `ref`, `source`, `var`, `env_var`. Undefined names are errors; runaway
//! templates are bounded by minijinja's fuel and recursion limits.
//!
//! In: macro files and `vars` from the raw project. Out: rendered text, or a
//! KPI108 diagnostic pointing at the field.

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::load::raw::{MacroFile, Node, NodeKind, RawProject, Text};
use crate::source::SourceMap;

/// Bounds a template's work: a macro that recurses or loops forever stops
/// with an error instead of hanging `kpic check`.
const FUEL: u64 = 200_000;

pub struct Templater {
    env: Environment<'static>,
    /// `{% from "..." import a, b %}` for every macro file, so macros are
    /// callable by bare name as in dbt.
    prelude: String,
}

impl Templater {
    pub fn new(raw: &RawProject, sources: &SourceMap, diags: &mut Diagnostics) -> Templater {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(64);
        let vars: BTreeMap<String, Value> = raw
            .config
            .as_ref()
            .map(|c| {
                c.vars
                    .iter()
                    .map(|(k, v)| (k.value.clone(), node_to_value(v)))
                    .collect()
            })
            .unwrap_or_default();
        env.add_function("ref", |args: &[Value]| -> Result<String, Error> {
            // Without a dbt manifest a ref names the relation itself; the dbt
            // integration resolves it to the model's relation_name instead.
            let names: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            match names.as_slice() {
                [model] | [_, model] => Ok(model.clone()),
                _ => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "ref() takes a model name, optionally preceded by a package name",
                )),
            }
        });
        env.add_function(
            "source",
            |source: String, table: String| -> Result<String, Error> {
                Ok(format!("{source}.{table}"))
            },
        );
        env.add_function(
            "var",
            move |name: String, default: Option<Value>| -> Result<Value, Error> {
                match vars.get(&name).cloned().or(default) {
                    Some(v) => Ok(v),
                    None => Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("var `{name}` is not set in kpic.yml `vars` and has no default"),
                    )),
                }
            },
        );
        env.add_function(
            "env_var",
            |name: String, default: Option<String>| -> Result<String, Error> {
                match std::env::var(&name).ok().or(default) {
                    Some(v) => Ok(v),
                    None => Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("environment variable `{name}` is not set and has no default"),
                    )),
                }
            },
        );
        let mut prelude = String::new();
        for m in &raw.macros {
            add_macro_file(&mut env, &mut prelude, m, sources, diags);
        }
        Templater { env, prelude }
    }

    /// Renders one field. Text without `{{` or `{%` is returned unchanged, so
    /// spans of plain SQL stay exact.
    pub fn render(&self, field: &Text) -> Result<String, Diagnostic> {
        if !field.value.contains("{{") && !field.value.contains("{%") {
            return Ok(field.value.clone());
        }
        let source = format!("{}{}", self.prelude, field.value);
        self.env
            .render_str(&source, ())
            .map(|s| s.trim().to_string())
            .map_err(|e| {
                let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.to_string());
                Diagnostic::new(Code::Template, format!("template error: {detail}"))
                    .at(field.span, kind_label(e.kind()))
                    .with_help(
                        "macros come from macros/*.sql; built-ins are ref(), source(), var() and env_var()",
                    )
            })
    }
}

fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::UndefinedError => "undefined name",
        ErrorKind::SyntaxError => "template syntax error",
        ErrorKind::OutOfFuel => "template runs too long (endless loop or recursion?)",
        ErrorKind::TooManyArguments | ErrorKind::MissingArgument => "wrong number of arguments",
        _ => "template failed here",
    }
}

fn add_macro_file(
    env: &mut Environment<'static>,
    prelude: &mut String,
    m: &MacroFile,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) {
    let file = sources.get(m.file);
    // A macro file's error belongs to the file, not to every field that
    // imports it: check that it parses and imports on its own first.
    let line_of = |e: &Error| {
        let start = file.offset_of(e.line().unwrap_or(1), 1);
        let end = file.text[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(file.text.len());
        crate::source::Span::new(m.file, start, end)
    };
    if let Err(e) = env.add_template_owned(m.name.clone(), file.text.clone()) {
        diags.push(
            Diagnostic::new(
                Code::Template,
                format!(
                    "macro file does not parse: {}",
                    e.detail().unwrap_or("syntax error")
                ),
            )
            .at(line_of(&e), "here"),
        );
        return;
    }
    let names = macro_names(&file.text);
    if names.is_empty() {
        return;
    }
    let escaped = m.name.replace('\\', "\\\\").replace('"', "\\\"");
    let import = format!("{{% from \"{escaped}\" import {} %}}", names.join(", "));
    match env.render_str(&import, ()) {
        Ok(_) => prelude.push_str(&import),
        Err(e) => diags.push(
            Diagnostic::new(
                Code::Template,
                format!(
                    "macro file cannot be imported: {}",
                    e.detail().unwrap_or("template error")
                ),
            )
            .at(line_of(&e), "here")
            .with_help("fields that use its macros will report them as undefined"),
        ),
    }
}

/// Names of the `{% macro name(...) %}` definitions in a file.
fn macro_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{%") {
        rest = &rest[i + 2..];
        let body = rest.trim_start_matches(['-', '+']).trim_start();
        if let Some(after) = body.strip_prefix("macro") {
            let name: String = after
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

fn node_to_value(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Null => Value::from(()),
        NodeKind::Scalar { text, quoted } => {
            if !quoted {
                if let Ok(i) = text.parse::<i64>() {
                    return Value::from(i);
                }
                if let Ok(f) = text.parse::<f64>() {
                    return Value::from(f);
                }
                if text == "true" || text == "false" {
                    return Value::from(text == "true");
                }
            }
            Value::from(text.clone())
        }
        NodeKind::Seq(items) => Value::from(items.iter().map(node_to_value).collect::<Vec<_>>()),
        NodeKind::Map(entries) => Value::from_iter(entries.iter().map(|(k, v)| {
            let key = match &k.kind {
                NodeKind::Scalar { text, .. } => text.clone(),
                _ => String::new(),
            };
            (key, node_to_value(v))
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_macro_names() {
        let text = "{% macro net(a, b) %}x{% endmacro %}\n{%- macro gross(a) -%}y{% endmacro %}";
        assert_eq!(macro_names(text), vec!["net", "gross"]);
    }
}
