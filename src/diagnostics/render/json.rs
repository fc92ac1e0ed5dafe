//! Machine-readable rendering: one stable, pretty-printed JSON document.
//!
//! In: diagnostics and the source map. Out:
//! `{"diagnostics": [{"code", "severity", "message", "file", "line",
//! "column", "end_line", "end_column", "label", "help", "notes",
//! "secondary": [{"file", "line", "column", "end_line", "end_column",
//! "label"}]}], "errors": N, "warnings": M}`. Lines and columns are 1-based,
//! columns count characters, the end is exclusive; location fields are null
//! when there is no primary label (or its file is unknown).

use serde::Serialize;

use super::locate;
use crate::diagnostics::{Diagnostic, Diagnostics, Label, Severity};
use crate::source::SourceMap;

#[derive(Serialize)]
struct Document<'a> {
    diagnostics: Vec<JsonDiagnostic<'a>>,
    errors: usize,
    warnings: usize,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: Severity,
    message: &'a str,
    #[serde(flatten)]
    location: Location<'a>,
    label: Option<&'a str>,
    help: Option<&'a str>,
    notes: &'a [String],
    secondary: Vec<JsonLabel<'a>>,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    #[serde(flatten)]
    location: Location<'a>,
    label: &'a str,
}

#[derive(Serialize, Default)]
struct Location<'a> {
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
}

fn location<'a>(label: Option<&Label>, sources: &'a SourceMap) -> Location<'a> {
    let Some(loc) = label.and_then(|l| locate(sources, l.span)) else {
        return Location::default();
    };
    let (line, column, end_line, end_column) = loc.line_cols();
    Location {
        file: Some(loc.file.display.as_str()),
        line: Some(line),
        column: Some(column),
        end_line: Some(end_line),
        end_column: Some(end_column),
    }
}

fn diagnostic<'a>(d: &'a Diagnostic, sources: &'a SourceMap) -> JsonDiagnostic<'a> {
    JsonDiagnostic {
        code: d.code.as_str(),
        severity: d.severity,
        message: &d.message,
        location: location(d.primary.as_ref(), sources),
        label: d.primary.as_ref().map(|l| l.message.as_str()),
        help: d.help.as_deref(),
        notes: &d.notes,
        secondary: d
            .secondary
            .iter()
            .map(|l| JsonLabel {
                location: location(Some(l), sources),
                label: &l.message,
            })
            .collect(),
    }
}

/// Renders all diagnostics as one pretty-printed JSON document (see the
/// module docs for its shape), ending with a newline.
pub fn json(diags: &Diagnostics, sources: &SourceMap) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let doc = Document {
        diagnostics: diags.iter().map(|d| diagnostic(d, sources)).collect(),
        errors,
        warnings: diags.iter().count() - errors,
    };
    // Serializing strings and numbers cannot fail; keep a valid document
    // anyway rather than panic.
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| {
        format!("{{\"diagnostics\": [], \"errors\": {errors}, \"warnings\": 0}}")
    });
    out.push('\n');
    out
}
