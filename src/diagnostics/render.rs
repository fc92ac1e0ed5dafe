//! Rendering of diagnostics (human, JSON). Placeholder until the
//! annotate-snippets renderer lands: one line per diagnostic.

use super::Diagnostics;
use crate::source::SourceMap;

pub fn human(diags: &Diagnostics, sources: &SourceMap, _color: bool) -> String {
    let mut out = String::new();
    for d in diags.iter() {
        let sev = if d.is_error() { "error" } else { "warning" };
        out.push_str(&format!("{sev}[{}]: {}\n", d.code, d.message));
        if let Some(l) = &d.primary {
            let f = sources.get(l.span.file);
            let (line, col) = f.line_col(l.span.start);
            out.push_str(&format!("  --> {}:{line}:{col}\n", f.display));
        }
    }
    out
}

pub fn json(diags: &Diagnostics, sources: &SourceMap) -> String {
    let items: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let pos = d.primary.as_ref().map(|l| {
                let f = sources.get(l.span.file);
                let (line, col) = f.line_col(l.span.start);
                (f.display.clone(), line, col)
            });
            serde_json::json!({
                "code": d.code.as_str(),
                "severity": if d.is_error() { "error" } else { "warning" },
                "message": d.message,
                "file": pos.as_ref().map(|p| p.0.clone()),
                "line": pos.as_ref().map(|p| p.1),
                "column": pos.as_ref().map(|p| p.2),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({"diagnostics": items})).unwrap_or_default()
}
