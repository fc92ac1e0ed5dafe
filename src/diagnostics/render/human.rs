//! Human-readable, rustc-style rendering through `annotate-snippets`.
//!
//! In: diagnostics, the source map, whether to colour. Out: the text for
//! stderr (see the parent module for the exact shape).

use std::ops::Range;

use annotate_snippets::renderer::{DEFAULT_ERROR_STYLE, DEFAULT_WARNING_STYLE, DecorStyle};
use annotate_snippets::{AnnotationKind, Element, Group, Level, Renderer, Snippet};
use anstyle::{Effects, Style};

use super::{locate, visible};
use crate::diagnostics::{Diagnostic, Diagnostics, Severity};
use crate::source::{FileId, SourceFile, SourceMap};

/// Renders every diagnostic rustc-style, a blank line between them, then a
/// summary line (`error: 2 errors and 1 warning emitted`). Empty when
/// `diags` is empty. `color` selects ANSI styling; without it the output
/// holds no escape sequences (control characters in messages and sources
/// are shown as visible symbols either way).
pub fn human(diags: &Diagnostics, sources: &SourceMap, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
    .decor_style(DecorStyle::Ascii);

    let mut out = String::new();
    for d in diags.iter() {
        out.push_str(&render_one(&renderer, d, sources));
        out.push_str("\n\n");
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.iter().count() - errors;
    if let Some(line) = summary(errors, warnings, color) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The labels of one diagnostic that fall in one file.
struct FileLabels<'a> {
    id: FileId,
    file: &'a SourceFile,
    /// Label texts are made [`visible`] (control and bidi characters
    /// shown), like titles, help and notes: they quote user text.
    labels: Vec<(AnnotationKind, Range<usize>, String)>,
}

fn render_one(renderer: &Renderer, d: &Diagnostic, sources: &SourceMap) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let message = visible(&d.message);
    let title = level.primary_title(message.as_str()).id(d.code.as_str());

    // Primary label first, so its file gets the `-->` line; other files
    // follow in the order their labels appear.
    let labels = d
        .primary
        .iter()
        .map(|l| (AnnotationKind::Primary, l))
        .chain(d.secondary.iter().map(|l| (AnnotationKind::Context, l)));
    let mut files: Vec<FileLabels<'_>> = Vec::new();
    for (kind, label) in labels {
        let Some(loc) = locate(sources, label.span) else {
            continue;
        };
        let entry = match files.iter().position(|f| f.id == label.span.file) {
            Some(i) => &mut files[i],
            None => {
                files.push(FileLabels {
                    id: label.span.file,
                    file: loc.file,
                    labels: Vec::new(),
                });
                let last = files.len() - 1;
                &mut files[last]
            }
        };
        entry
            .labels
            .push((kind, loc.range, visible(&label.message)));
    }

    let mut elements: Vec<Element<'_>> = files.iter().map(snippet).collect();
    if let Some(help) = &d.help {
        elements.push(Level::HELP.message(visible(help)).into());
    }
    for note in &d.notes {
        elements.push(Level::NOTE.message(visible(note)).into());
    }
    renderer.render(&[Group::with_title(title).elements(elements)])
}

/// A snippet of the lines of `f.file` its labels cover (whole lines, with
/// the text between distant labels folded by the renderer).
fn snippet<'a>(f: &'a FileLabels<'a>) -> Element<'a> {
    let text = f.file.text.as_str();
    let lo = f.labels.iter().map(|l| l.1.start).min().unwrap_or(0);
    let hi = f.labels.iter().map(|l| l.1.end).max().unwrap_or(0);
    let first = text[..lo].rfind('\n').map_or(0, |i| i + 1);
    let last = text[hi..].find('\n').map_or(text.len(), |i| hi + i + 1);
    let (line, _) = f.file.line_col(first);
    let annotations = f.labels.iter().map(|(kind, range, message)| {
        let ann = kind.span(range.start - first..range.end - first);
        if message.is_empty() {
            ann
        } else {
            ann.label(message.as_str())
        }
    });
    Snippet::source(&text[first..last])
        .line_start(line)
        .path(visible(&f.file.display))
        .annotations(annotations)
        .into()
}

/// `error: 2 errors and 1 warning emitted`, `warning: 1 warning emitted`.
fn summary(errors: usize, warnings: usize, color: bool) -> Option<String> {
    fn count(n: usize, what: &str) -> String {
        format!("{n} {what}{}", if n == 1 { "" } else { "s" })
    }
    let (head, head_style, text) = match (errors, warnings) {
        (0, 0) => return None,
        (0, w) => ("warning", DEFAULT_WARNING_STYLE, count(w, "warning")),
        (e, 0) => ("error", DEFAULT_ERROR_STYLE, count(e, "error")),
        (e, w) => (
            "error",
            DEFAULT_ERROR_STYLE,
            format!("{} and {}", count(e, "error"), count(w, "warning")),
        ),
    };
    let bold = Style::new().effects(Effects::BOLD);
    let (head_style, bold) = if color {
        (head_style, bold)
    } else {
        (Style::new(), Style::new())
    };
    Some(format!(
        "{head_style}{head}{head_style:#}{bold}: {text} emitted{bold:#}"
    ))
}
