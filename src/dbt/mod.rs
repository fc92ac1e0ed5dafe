//! dbt integration: reading a dbt project's `target/manifest.json` to
//! resolve `ref()`/`source()`, and emitting the output tables as dbt models.
//!
//! In: kpic.yml's `dbt: {project_dir, manifest}` (or `--dbt-project DIR`,
//! which replaces `project_dir`). Out: a [`DbtContext`] the templater asks
//! to resolve each `ref()`/`source()` call and each `ref:` source. A call
//! renders as a placeholder identifier (`__kpic_dbt_0__`) that survives
//! SQL parsing; once a field is parsed, the model stage swaps it for the
//! node's `relation_name`, verbatim (dbt already quoted it for the
//! adapter), as one unquoted identifier the printer copies as it is. For
//! `kpic dbt emit` the placeholder stays through printing and becomes the
//! Jinja call again ([`emit`]), so dbt sees its refs.
//!
//! The manifest is never produced here: kpic reads what `dbt parse` wrote,
//! warns when it is older than the dbt project's files (KPI503) and points
//! every other problem at the YAML that caused it (KPI501–KPI508).

pub mod emit;
pub mod manifest;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sqlparser::ast::{Ident, VisitMut, VisitorMut};

pub use manifest::{Manifest, RefError, dialect_for_adapter, ref_call};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::load::raw::RawConfig;
use crate::source::{SourceMap, Span};

/// How the dbt integration is asked for by the command line.
#[derive(Debug, Clone, Default)]
pub struct DbtOptions {
    /// `--dbt-project DIR`: replaces kpic.yml's `dbt.project_dir`.
    pub project_dir: Option<PathBuf>,
    /// Keep refs as Jinja calls (`kpic dbt emit`) instead of relation names.
    pub emit: bool,
}

/// A loaded manifest and the refs resolved so far.
#[derive(Debug)]
pub struct DbtContext {
    /// The dbt project (where `emit` writes); `None` when only
    /// `dbt.manifest` is given.
    pub project_dir: Option<PathBuf>,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// kpic.yml's `dbt` value (`None` when set by `--dbt-project` only).
    pub span: Option<Span>,
    pub emit: bool,
    /// Placeholder i → (relation name, Jinja call).
    resolved: Mutex<Vec<(String, String)>>,
    /// The last failed resolution, read back by the templater to report it
    /// with its own code (minijinja only carries a message).
    problem: Mutex<Option<(Call, RefError)>>,
}

const PLACEHOLDER_PREFIX: &str = "__kpic_dbt_";

fn placeholder(i: usize) -> String {
    format!("{PLACEHOLDER_PREFIX}{i}__")
}

fn placeholder_index(s: &str) -> Option<usize> {
    s.strip_prefix(PLACEHOLDER_PREFIX)?
        .strip_suffix("__")?
        .parse()
        .ok()
}

/// A `ref`/`source` call as written.
#[derive(Debug, Clone)]
pub enum Call {
    Ref {
        package: Option<String>,
        name: String,
        /// A pinned version (`v=2` / `version=2`), as text.
        version: Option<String>,
    },
    Source {
        source: String,
        table: String,
    },
}

impl Call {
    pub fn jinja(&self) -> String {
        match self {
            Call::Ref {
                package,
                name,
                version,
            } => format!(
                "{{{{ {} }}}}",
                ref_call(package.as_deref(), name, version.as_deref())
            ),
            Call::Source { source, table } => format!("{{{{ source('{source}', '{table}') }}}}"),
        }
    }

    /// The arguments, for finding the call in a field's text.
    fn args(&self) -> Vec<&str> {
        match self {
            Call::Ref { package, name, .. } => package
                .iter()
                .map(String::as_str)
                .chain([name.as_str()])
                .collect(),
            Call::Source { source, table } => vec![source, table],
        }
    }

    fn function(&self) -> &'static str {
        match self {
            Call::Ref { .. } => "ref",
            Call::Source { .. } => "source",
        }
    }
}

impl DbtContext {
    /// Resolves a call: its placeholder, or `Err` with the problem kept
    /// for [`DbtContext::take_problem`].
    pub fn resolve(&self, call: &Call) -> Result<String, String> {
        let result = match call {
            Call::Ref {
                package,
                name,
                version,
            } => self
                .manifest
                .resolve_ref(package.as_deref(), name, version.as_deref()),
            Call::Source { source, table } => self.manifest.resolve_source(source, table),
        };
        match result {
            Ok(relation) => {
                let jinja = call.jinja();
                let mut resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
                let i = match resolved.iter().position(|(_, j)| *j == jinja) {
                    Some(i) => i,
                    None => {
                        resolved.push((relation, jinja));
                        resolved.len() - 1
                    }
                };
                Ok(placeholder(i))
            }
            Err(e) => {
                let message = e.message.clone();
                *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = Some((call.clone(), e));
                Err(message)
            }
        }
    }

    pub fn take_problem(&self) -> Option<(Call, RefError)> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// What placeholder `i` stands for in parsed SQL: the relation name, or
    /// (emitting) the placeholder itself, to become Jinja after printing.
    fn replacement(&self, i: usize) -> Option<String> {
        let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        let (relation, _) = resolved.get(i)?;
        Some(if self.emit {
            placeholder(i)
        } else {
            relation.clone()
        })
    }

    /// The Jinja call of placeholder `i`.
    fn jinja(&self, i: usize) -> Option<String> {
        let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        resolved.get(i).map(|(_, j)| j.clone())
    }

    /// Replaces placeholders in text (a rendered field kept as text).
    pub fn substitute_text(&self, text: &str) -> String {
        replace_placeholders(text, |i| self.replacement(i))
    }

    /// Replaces placeholder identifiers in parsed SQL by one unquoted
    /// identifier holding the relation name verbatim.
    pub fn substitute_sql<T: VisitMut>(&self, node: &mut T) {
        struct Swap<'a>(&'a DbtContext);
        impl VisitorMut for Swap<'_> {
            type Break = ();
            fn post_visit_ident(&mut self, ident: &mut Ident) -> ControlFlow<()> {
                if let Some(r) = placeholder_index(&ident.value).and_then(|i| self.0.replacement(i))
                {
                    *ident = Ident::new(r);
                }
                ControlFlow::Continue(())
            }
        }
        let _ = node.visit(&mut Swap(self));
    }

    /// A `ref:` key's value (`model`, `package.model`, with `.v<version>`
    /// for a pinned version: `model.v2`, `package.model.v2`), resolved.
    pub fn resolve_ref_key(&self, value: &str) -> Result<String, RefError> {
        let call = self.ref_key_call(value);
        match self.resolve(&call) {
            Ok(p) => Ok(placeholder_index(&p)
                .and_then(|i| self.replacement(i))
                .unwrap_or(p)),
            Err(message) => Err(self.take_problem().map(|(_, e)| e).unwrap_or(RefError {
                code: Code::DbtUnknownRef,
                message,
                label: "unknown dbt model".into(),
                help: None,
            })),
        }
    }

    /// The call a `ref:` key's value stands for. `a.b` is `model.v<version>`
    /// when `b` is `v<version>` and the manifest has a versioned model `a`
    /// (dbt's selector syntax for a version), `package.model` otherwise;
    /// `a.b.v<version>` is `package.model.v<version>`.
    fn ref_key_call(&self, value: &str) -> Call {
        let parts: Vec<&str> = value.trim().split('.').map(str::trim).collect();
        let version_of = |part: &str| {
            part.strip_prefix('v')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (package, name, version) = match parts.as_slice() {
            [name] => (None, *name, None),
            [model, v] if version_of(v).is_some() && self.manifest.is_versioned(model) => {
                (None, *model, version_of(v))
            }
            [package, name, v] if version_of(v).is_some() => (Some(*package), *name, version_of(v)),
            _ => match value.trim().split_once('.') {
                Some((p, n)) => (Some(p.trim()), n.trim(), None),
                None => (None, value.trim(), None),
            },
        };
        Call::Ref {
            package: package.map(str::to_string),
            name: name.to_string(),
            version,
        }
    }

    /// Printed SQL with its placeholders turned back into Jinja calls, and
    /// every other Jinja delimiter escaped (`{{ '{' }}{`) so text in string
    /// literals (a KPI's description) is not run by dbt.
    pub fn to_jinja(&self, sql: &str) -> String {
        let mut escaped = String::with_capacity(sql.len());
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '{' && matches!(chars.peek(), Some('{' | '%' | '#')) {
                escaped.push_str("{{ '{' }}");
            } else {
                escaped.push(c);
            }
        }
        replace_placeholders(&escaped, |i| self.jinja(i))
    }
}

/// Replaces every `__kpic_dbt_<i>__` in `text` for which `f` gives text.
fn replace_placeholders(text: &str, f: impl Fn(usize) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PLACEHOLDER_PREFIX) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail[PLACEHOLDER_PREFIX.len()..]
            .find("__")
            .map(|e| PLACEHOLDER_PREFIX.len() + e + 2);
        match end.and_then(|e| placeholder_index(&tail[..e]).map(|i| (e, i))) {
            Some((e, i)) => {
                match f(i) {
                    Some(r) => out.push_str(&r),
                    None => out.push_str(&tail[..e]),
                }
                rest = &tail[e..];
            }
            None => {
                out.push_str(PLACEHOLDER_PREFIX);
                rest = &tail[PLACEHOLDER_PREFIX.len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The part of `field` (a YAML value) that holds `call`: from the
/// `ref`/`source` before its last argument (quoted) to the closing
/// parenthesis; the whole field when the call is not written there (it
/// came from a macro).
pub fn locate_call(sources: &SourceMap, field: Span, call: &Call) -> Span {
    let text = sources.snippet(field);
    let Some(last) = call.args().last().map(|a| a.to_string()) else {
        return field;
    };
    let function = call.function();
    for quote in ['\'', '"'] {
        let needle = format!("{quote}{last}{quote}");
        let mut from = 0;
        while let Some(i) = text[from..].find(&needle).map(|i| i + from) {
            from = i + needle.len();
            let Some(start) = text[..i].rfind(function) else {
                continue;
            };
            // Only `ref (` / `source(` followed by arguments up to here.
            let between = &text[start + function.len()..i];
            if !between.trim_start().starts_with('(') || between.contains(')') {
                continue;
            }
            let end = text[from..].find(')').map_or(from, |e| from + e + 1);
            return Span::new(field.file, field.start + start, field.start + end);
        }
    }
    field
}

/// Loads the manifest when dbt is configured (kpic.yml's `dbt:` or
/// `options.project_dir`); `None` otherwise or when it cannot be read
/// (reported).
pub fn load(
    config: Option<&RawConfig>,
    root: &Path,
    options: &DbtOptions,
    diags: &mut Diagnostics,
) -> Option<DbtContext> {
    let raw = config.and_then(|c| c.dbt.as_ref());
    if raw.is_none() && options.project_dir.is_none() {
        return None;
    }
    let span = raw.map(|d| d.span);
    let at = |d: Diagnostic, s: Option<Span>, label: &str| match s.or(span) {
        Some(s) => d.at(s, label.to_string()),
        None => d,
    };
    let project_dir: Option<PathBuf> = match (
        &options.project_dir,
        raw.and_then(|d| d.project_dir.as_ref()),
    ) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(t)) => Some(root.join(&t.value)),
        (None, None) => None,
    };
    let project_span = raw.and_then(|d| d.project_dir.as_ref()).map(|t| t.span);
    if let Some(dir) = &project_dir
        && !dir.is_dir()
    {
        let d = Diagnostic::new(
            Code::DbtManifestMissing,
            format!("the dbt project directory `{}` does not exist", dir.display()),
        )
        .with_help("set `dbt.project_dir` in kpic.yml (relative to the kpic project) or pass `--dbt-project DIR` to the directory holding dbt_project.yml");
        let label = if options.project_dir.is_some() {
            "(given by --dbt-project)"
        } else {
            "no such directory"
        };
        diags.push(at(d, project_span, label));
        return None;
    }
    let manifest_text = raw.and_then(|d| d.manifest.as_ref());
    let manifest_path = match (manifest_text, &project_dir) {
        (Some(m), Some(dir)) => dir.join(&m.value),
        (Some(m), None) => root.join(&m.value),
        (None, Some(dir)) => dir.join("target").join("manifest.json"),
        (None, None) => {
            diags.push(
                at(
                    Diagnostic::new(
                        Code::DbtManifestMissing,
                        "`dbt:` names neither `project_dir` nor `manifest`",
                    ),
                    None,
                    "which dbt project?",
                )
                .with_help("add `project_dir:` (the directory holding dbt_project.yml)"),
            );
            return None;
        }
    };
    let manifest_span = manifest_text.map(|t| t.span).or(project_span);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => t,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                Code::DbtManifestMissing
            } else {
                Code::DbtManifestInvalid
            };
            let dir = project_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "the dbt project".into());
            diags.push(
                at(
                    Diagnostic::new(
                        code,
                        format!("cannot read the dbt manifest `{}`: {e}", manifest_path.display()),
                    ),
                    manifest_span,
                    "the dbt project is configured here",
                )
                .with_help(format!(
                    "run `dbt parse` in {dir} (it writes target/manifest.json without touching the warehouse; `dbt build` writes it too)"
                )),
            );
            return None;
        }
    };
    let manifest = match Manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => {
            diags.push(
                at(
                    Diagnostic::new(
                        Code::DbtManifestInvalid,
                        format!(
                            "the dbt manifest `{}` cannot be read: {e}",
                            manifest_path.display()
                        ),
                    ),
                    manifest_span,
                    "the dbt project is configured here",
                )
                .with_help("run `dbt parse` again to rewrite it"),
            );
            return None;
        }
    };
    if let Some(dir) = &project_dir
        && let Ok(written) = std::fs::metadata(&manifest_path).and_then(|m| m.modified())
    {
        let newer = newer_files(dir, written);
        if let Some(first) = newer.first() {
            let mut d = at(
                Diagnostic::new(
                    Code::DbtManifestStale,
                    format!(
                        "the dbt manifest is older than {} file(s) of the dbt project, e.g. `{}`",
                        newer.len(),
                        first.strip_prefix(dir).unwrap_or(first).display()
                    ),
                ),
                manifest_span,
                "refs are resolved with this manifest",
            )
            .with_help(format!(
                "run `dbt parse` in {} to refresh target/manifest.json",
                dir.display()
            ));
            if newer.len() > 1 {
                d = d.with_note(format!(
                    "changed since: {}",
                    newer
                        .iter()
                        .take(5)
                        .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            diags.push(d);
        }
    }
    Some(DbtContext {
        project_dir,
        manifest_path,
        manifest,
        span,
        emit: options.emit,
        resolved: Mutex::new(Vec::new()),
        problem: Mutex::new(None),
    })
}

/// Most files looked at for staleness (a dbt project is usually far
/// smaller; a huge one is checked in part rather than slowly).
const STALE_SCAN_LIMIT: usize = 20_000;

/// Files dbt parses (dbt_project.yml; `.sql`, `.yml`, `.yaml`, `.csv`,
/// `.py` under the model, seed, snapshot, macro and analysis paths)
/// modified after `written`, sorted.
fn newer_files(dir: &Path, written: SystemTime) -> Vec<PathBuf> {
    let project_file = dir.join("dbt_project.yml");
    let mut roots: Vec<PathBuf> = Vec::new();
    let settings: Option<serde_yaml::Value> = std::fs::read_to_string(&project_file)
        .ok()
        .and_then(|t| serde_yaml::from_str(&t).ok());
    for (key, default) in [
        ("model-paths", "models"),
        ("seed-paths", "seeds"),
        ("snapshot-paths", "snapshots"),
        ("macro-paths", "macros"),
        ("analysis-paths", "analyses"),
    ] {
        let given: Option<Vec<String>> = settings
            .as_ref()
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_sequence())
            .map(|seq| {
                seq.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            });
        for p in given.unwrap_or_else(|| vec![default.to_string()]) {
            roots.push(dir.join(p));
        }
    }
    let is_newer = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > written)
    };
    let mut out = Vec::new();
    if is_newer(&project_file) {
        out.push(project_file);
    }
    let mut stack = roots;
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > STALE_SCAN_LIMIT {
                out.sort();
                return out;
            }
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path
                    .extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| ["sql", "yml", "yaml", "csv", "py"].contains(&x))
                && is_newer(&path)
                && !generated_by_kpic(&path)
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Whether a file is one `kpic dbt emit` wrote (its header says so):
/// emitting must not make the manifest look stale.
fn generated_by_kpic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains(emit::GENERATED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_round_trip() {
        assert_eq!(placeholder_index(&placeholder(12)), Some(12));
        assert_eq!(placeholder_index("__kpic_dbt_1"), None);
        let text = "a __kpic_dbt_0__ b __kpic_dbt_10__ __kpic_dbt_x c";
        let out = replace_placeholders(text, |i| Some(format!("<{i}>")));
        assert_eq!(out, "a <0> b <10> __kpic_dbt_x c");
    }

    #[test]
    fn finds_the_call_in_a_field() {
        let mut sources = SourceMap::new();
        let text = "sql: select * from {{ ref('shop', 'orders') }} where x";
        let id = sources.add(Path::new("m.yml"), "m.yml".into(), text.into());
        let call = Call::Ref {
            package: Some("shop".into()),
            name: "orders".into(),
            version: None,
        };
        let span = locate_call(&sources, Span::new(id, 5, text.len()), &call);
        assert_eq!(sources.snippet(span), "ref('shop', 'orders')");
    }
}
