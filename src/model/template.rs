//! Templating: renders every SQL-bearing field with minijinja, the project's
//! macros (`macros/**/*.sql`, callable by name) and the dbt-style built-ins
//! `ref`, `source`, `var`, `env_var`. Undefined names are errors.
//!
//! Templates are code from the project, so their work is bounded: by
//! minijinja's fuel ([`FUEL`]) and recursion limit, by the size of a
//! template ([`MAX_TEMPLATE_BYTES`]), and — for the paths of the engine that
//! escape fuel accounting (minijinja 3.1 materializes a long chain of list
//! concatenations, `{% set x = x + x %}` repeated, without charging for it)
//! — by a wall-clock limit ([`TEMPLATE_TIME_LIMIT`]): every template is
//! compiled and rendered on a worker thread with a large stack, and one that
//! does not finish in time is reported and abandoned.
//!
//! In: macro files and `vars` from the raw project. Out: rendered text, or a
//! KPI108 (KPI107 for a template over the size limit) diagnostic pointing at
//! the field or the macro file.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use minijinja::value::{Kwargs, Rest, Value, ValueKind, ValueOrKwargs, from_args};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::dbt::{Call, DbtContext};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::load::raw::{MacroFile, Node, NodeKind, RawProject, Text};
use crate::source::{SourceMap, Span};

/// Bounds a template's work: a macro that recurses or loops forever stops
/// with an error instead of hanging `kpic check`.
const FUEL: u64 = 200_000;

/// Most bytes of template text in one field or macro file. minijinja
/// compiles an expression recursively, one stack frame per operator of a
/// chain such as `1 + 1 + …`: with this limit and [`TEMPLATE_STACK_BYTES`]
/// no template text can exhaust the worker's stack. Real macro files are a
/// few KB.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;

/// Wall-clock time one field's template (or one macro file's import) may
/// take. Fuel stops runaway templates in milliseconds; this is the backstop
/// for work minijinja does not charge fuel for. A template that runs out of
/// time keeps running on its abandoned thread until kpic exits, so the
/// templates of later fields are not rendered (KPI108).
pub const TEMPLATE_TIME_LIMIT: Duration = Duration::from_millis(500);

/// Stack of the thread templates are compiled and rendered on (reserved,
/// not committed: only what is used is backed by memory).
const TEMPLATE_STACK_BYTES: usize = 64 * 1024 * 1024;

pub struct Templater {
    env: Arc<Environment<'static>>,
    /// `{% from "..." import a, b %}` for every macro file, so macros are
    /// callable by bare name as in dbt.
    prelude: String,
    /// Set when a template ran out of time: its thread may still be
    /// running, so no more templates are started.
    timed_out: Cell<bool>,
    /// The dbt manifest `ref`/`source` resolve through, when configured.
    dbt: Option<Arc<DbtContext>>,
    /// The project's files, to point a failed ref at its call (only kept
    /// when dbt is configured).
    dbt_sources: Option<SourceMap>,
}

/// Why a template job gave no result.
enum Abandoned {
    /// Still running after [`TEMPLATE_TIME_LIMIT`].
    TimedOut,
    /// The worker could not start or died.
    Failed,
}

/// Runs `job` on a fresh worker thread with a large stack and waits at most
/// [`TEMPLATE_TIME_LIMIT`] for its result. When no thread can be started
/// (a process limit), the job runs here, bounded by fuel alone.
fn bounded<T, F>(job: F) -> Result<T, Abandoned>
where
    T: Send + 'static,
    F: FnOnce() -> T + Clone + Send + 'static,
{
    let (tx, rx) = channel();
    let inline = job.clone();
    let spawned = std::thread::Builder::new()
        .name("kpic-template".into())
        .stack_size(TEMPLATE_STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(job());
        });
    if spawned.is_err() {
        return Ok(inline());
    }
    match rx.recv_timeout(TEMPLATE_TIME_LIMIT) {
        Ok(v) => Ok(v),
        Err(RecvTimeoutError::Timeout) => Err(Abandoned::TimedOut),
        Err(RecvTimeoutError::Disconnected) => Err(Abandoned::Failed),
    }
}

/// What the worker reports of a minijinja error (the error itself stays on
/// the worker).
struct Failure {
    kind: ErrorKind,
    detail: String,
    line: Option<usize>,
}

impl Failure {
    fn of(e: &Error) -> Failure {
        Failure {
            kind: e.kind(),
            detail: e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
            line: e.line(),
        }
    }
}

fn abandoned_message(a: &Abandoned) -> String {
    match a {
        Abandoned::TimedOut => format!(
            "template error: the template did not finish within {} ms (an endless loop, or a value that keeps doubling?)",
            TEMPLATE_TIME_LIMIT.as_millis()
        ),
        Abandoned::Failed => "template error: the template engine failed".to_string(),
    }
}

impl Templater {
    pub fn new(raw: &RawProject, sources: &SourceMap, diags: &mut Diagnostics) -> Templater {
        Templater::with_dbt(raw, sources, diags, None)
    }

    /// A templater whose `ref()`/`source()` resolve through a dbt manifest
    /// (to placeholders, see [`crate::dbt`]).
    pub fn with_dbt(
        raw: &RawProject,
        sources: &SourceMap,
        diags: &mut Diagnostics,
        dbt: Option<Arc<DbtContext>>,
    ) -> Templater {
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
        let for_ref = dbt.clone();
        env.add_function("ref", move |args: Rest<ValueOrKwargs>| -> Result<String, Error> {
            let args: Vec<Value> = args.0.into_iter().map(Value::from).collect();
            let (args, kwargs): (&[Value], Kwargs) = from_args(&args)?;
            // Without a dbt manifest a ref names the relation itself.
            let names: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let (package, model) = match names.as_slice() {
                [model] => (None, model.clone()),
                [package, model] => (Some(package.clone()), model.clone()),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "ref() takes a model name, optionally preceded by a package name (and `v=` for a version)",
                    ));
                }
            };
            let version = ref_version(&kwargs)?;
            match &for_ref {
                None if version.is_some() => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "ref() with a version needs the dbt manifest to find that version's relation: set `dbt: {project_dir: …}` in kpic.yml",
                )),
                None => Ok(model),
                Some(dbt) => dbt
                    .resolve(&Call::Ref {
                        package,
                        name: model,
                        version,
                    })
                    .map_err(|m| Error::new(ErrorKind::InvalidOperation, m)),
            }
        });
        let for_source = dbt.clone();
        env.add_function(
            "source",
            move |source: String, table: String| -> Result<String, Error> {
                match &for_source {
                    None => Ok(format!("{source}.{table}")),
                    Some(dbt) => dbt
                        .resolve(&Call::Source { source, table })
                        .map_err(|m| Error::new(ErrorKind::InvalidOperation, m)),
                }
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
        let mut timed_out = false;
        for m in &raw.macros {
            if timed_out {
                break;
            }
            env = add_macro_file(env, &mut prelude, m, sources, diags, &mut timed_out);
        }
        Templater {
            env: Arc::new(env),
            prelude,
            timed_out: Cell::new(timed_out),
            dbt_sources: dbt.as_ref().map(|_| sources.clone()),
            dbt,
        }
    }

    /// Swaps dbt placeholders in parsed SQL for relation names (no-op
    /// without dbt).
    pub fn substitute_sql<T: sqlparser::ast::VisitMut>(&self, node: &mut T) {
        if let Some(dbt) = &self.dbt {
            dbt.substitute_sql(node);
        }
    }

    /// Swaps dbt placeholders in text for relation names.
    pub fn substitute_text(&self, text: String) -> String {
        match &self.dbt {
            Some(dbt) => dbt.substitute_text(&text),
            None => text,
        }
    }

    /// A source's `ref:` value resolved through the manifest: the relation
    /// name (or, emitting, its placeholder); `None` without dbt.
    pub fn resolve_ref_key(&self, field: &Text) -> Option<Result<String, Diagnostic>> {
        let dbt = self.dbt.as_ref()?;
        Some(dbt.resolve_ref_key(&field.value).map_err(|e| {
            let mut d = Diagnostic::new(e.code, e.message).at(field.span, e.label);
            if let Some(h) = e.help {
                d = d.with_help(h);
            }
            d
        }))
    }

    /// Renders one field. Text without `{{` or `{%` is returned unchanged, so
    /// spans of plain SQL stay exact.
    pub fn render(&self, field: &Text) -> Result<String, Diagnostic> {
        if !field.value.contains("{{") && !field.value.contains("{%") {
            return Ok(field.value.clone());
        }
        let help =
            "macros come from macros/*.sql; built-ins are ref(), source(), var() and env_var()";
        if field.value.len() > MAX_TEMPLATE_BYTES {
            return Err(too_large(field.value.len(), field.span));
        }
        if self.timed_out.get() {
            return Err(Diagnostic::new(
                Code::Template,
                "template not rendered: an earlier template ran out of time",
            )
            .at(field.span, "not rendered")
            .with_help("fix the template reported as running out of time first"));
        }
        let source = format!("{}{}", self.prelude, field.value);
        let env = Arc::clone(&self.env);
        if let Some(dbt) = &self.dbt {
            dbt.take_problem();
        }
        let result = bounded(move || {
            env.render_str(&source, ())
                .map(|s| s.trim().to_string())
                .map_err(|e| Failure::of(&e))
        });
        let dbt_problem = self.dbt.as_ref().and_then(|d| d.take_problem());
        match result {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(_)) if dbt_problem.is_some() => {
                let (call, e) = dbt_problem.expect("checked");
                let span = match &self.dbt_sources {
                    Some(sources) => crate::dbt::locate_call(sources, field.span, &call),
                    None => field.span,
                };
                let mut d = Diagnostic::new(e.code, e.message).at(span, e.label);
                if let Some(h) = e.help {
                    d = d.with_help(h);
                }
                Err(d)
            }
            Ok(Err(f)) => Err(Diagnostic::new(
                Code::Template,
                format!("template error: {}", f.detail),
            )
            .at(field.span, kind_label(f.kind))
            .with_help(help)),
            Err(a) => {
                if matches!(a, Abandoned::TimedOut) {
                    self.timed_out.set(true);
                }
                Err(Diagnostic::new(Code::Template, abandoned_message(&a))
                    .at(field.span, "template runs too long")
                    .with_help(help))
            }
        }
    }
}

/// The version a `ref()` pins (`version=` or `v=`, as dbt reads them:
/// `version` first), as text: dbt looks it up as `<model>.v<text>`.
fn ref_version(kwargs: &Kwargs) -> Result<Option<String>, Error> {
    let version: Option<Value> = kwargs.get("version")?;
    let v: Option<Value> = kwargs.get("v")?;
    kwargs.assert_all_used()?;
    let Some(value) = version.or(v).filter(|v| !v.is_none() && !v.is_undefined()) else {
        return Ok(None);
    };
    let text = match value.kind() {
        ValueKind::Number | ValueKind::String => value.to_string(),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("a ref() version is a number or a string, not `{value}`"),
            ));
        }
    };
    if text.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "a ref() version is empty",
        ));
    }
    // dbt reads a falsy version (`v=0`) as no version at all (the latest).
    if !value.is_true() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "dbt reads the version `{value}` as no version (the latest one); write it as text to pin it: v='{text}'"
            ),
        ));
    }
    Ok(Some(text))
}

/// KPI107 for a template over [`MAX_TEMPLATE_BYTES`].
fn too_large(len: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::InputTooLarge,
        format!(
            "the template is larger than {} KB",
            MAX_TEMPLATE_BYTES / 1024
        ),
    )
    .at(span, "too large a template")
    .with_help("split the logic into several macros or fields")
    .with_note(format!("it has {len} bytes"))
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

/// Adds a macro file to (a copy of) `env` on a worker thread, checking that
/// it parses and imports on its own: a macro file's error belongs to the
/// file, not to every field that imports it. Returns the environment to use
/// next (the copy with the file, or `env` unchanged when the file failed).
fn add_macro_file(
    env: Environment<'static>,
    prelude: &mut String,
    m: &MacroFile,
    sources: &SourceMap,
    diags: &mut Diagnostics,
    timed_out: &mut bool,
) -> Environment<'static> {
    let file = sources.get(m.file);
    let line_span = |line: Option<usize>| {
        let start = file.offset_of(line.unwrap_or(1), 1);
        let end = file.text[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(file.text.len());
        Span::new(m.file, start, end)
    };
    if file.text.len() > MAX_TEMPLATE_BYTES {
        diags.push(too_large(file.text.len(), line_span(Some(1))));
        return env;
    }
    let names = macro_names(&file.text);
    let escaped = m.name.replace('\\', "\\\\").replace('"', "\\\"");
    let import = format!("{{% from \"{escaped}\" import {} %}}", names.join(", "));
    let (name, text) = (m.name.clone(), file.text.clone());
    let mut copy = env.clone();
    let job_import = import.clone();
    let result = bounded(move || {
        if let Err(e) = copy.add_template_owned(name, text) {
            return Err((true, Failure::of(&e)));
        }
        if !names.is_empty()
            && let Err(e) = copy.render_str(&job_import, ())
        {
            return Err((false, Failure::of(&e)));
        }
        Ok((copy, !names.is_empty()))
    });
    match result {
        Ok(Ok((with_file, has_macros))) => {
            if has_macros {
                prelude.push_str(&import);
            }
            with_file
        }
        Ok(Err((parse, f))) => {
            let d = if parse {
                Diagnostic::new(
                    Code::Template,
                    format!("macro file does not parse: {}", f.detail),
                )
                .at(line_span(f.line), "here")
            } else {
                Diagnostic::new(
                    Code::Template,
                    format!("macro file cannot be imported: {}", f.detail),
                )
                .at(line_span(f.line), "here")
                .with_help("fields that use its macros will report them as undefined")
            };
            diags.push(d);
            env
        }
        Err(a) => {
            *timed_out |= matches!(a, Abandoned::TimedOut);
            diags.push(
                Diagnostic::new(
                    Code::Template,
                    abandoned_message(&a).replacen("the template", "importing the macro file", 1),
                )
                .at(line_span(Some(1)), "this macro file")
                .with_help("fields that use its macros will report them as undefined"),
            );
            env
        }
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

    fn templater() -> Templater {
        let mut diags = Diagnostics::new();
        let t = Templater::new(&RawProject::default(), &SourceMap::new(), &mut diags);
        assert!(diags.is_empty());
        t
    }

    fn field(text: &str) -> Text {
        let mut sources = SourceMap::new();
        let id = sources.add(std::path::Path::new("m.yml"), "m.yml".into(), text.into());
        Text {
            value: text.to_string(),
            span: Span::new(id, 0, text.len()),
        }
    }

    #[test]
    fn work_that_escapes_fuel_is_stopped_by_the_clock() {
        let t = templater();
        let doubling = "{% set x = x + x %}".repeat(40);
        let started = std::time::Instant::now();
        let err = t
            .render(&field(&format!("{{% set x = [1] %}}{doubling}1")))
            .unwrap_err();
        assert!(started.elapsed() < TEMPLATE_TIME_LIMIT * 4);
        assert_eq!(err.code, Code::Template);
        assert!(err.message.contains("did not finish"), "{}", err.message);
        // Later templates are not started; plain text still passes.
        let err = t.render(&field("{{ 1 }}")).unwrap_err();
        assert!(err.message.contains("not rendered"), "{}", err.message);
        assert_eq!(t.render(&field("sum(x)")).ok().as_deref(), Some("sum(x)"));
    }

    #[test]
    fn long_chains_compile_on_the_worker_and_big_templates_are_refused() {
        let t = templater();
        let chain = format!("{{{{ 1{} }}}}", "+1".repeat(100_000));
        assert_eq!(t.render(&field(&chain)).ok().as_deref(), Some("100001"));
        let big = format!("{{{{ 1{} }}}}", "+1".repeat(MAX_TEMPLATE_BYTES / 2));
        let err = t.render(&field(&big)).unwrap_err();
        assert_eq!(err.code, Code::InputTooLarge);
    }

    #[test]
    fn finds_macro_names() {
        let text = "{% macro net(a, b) %}x{% endmacro %}\n{%- macro gross(a) -%}y{% endmacro %}";
        assert_eq!(macro_names(text), vec!["net", "gross"]);
    }
}
