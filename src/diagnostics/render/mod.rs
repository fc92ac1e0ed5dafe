//! Rendering of diagnostics, for people and for tools.
//!
//! In: a [`Diagnostics`](super::Diagnostics) list (rendered in the order
//! given; call [`Diagnostics::sorted`](super::Diagnostics::sorted) first for
//! stable output) and the [`SourceMap`] its spans point into.
//!
//! Out: a `String`, nothing is printed.
//! - [`human`]: rustc-style text (`error[KPI203]: …`, `--> file:line:col`,
//!   the annotated source lines, `= help:` / `= note:` lines), diagnostics
//!   separated by a blank line, then a summary line such as
//!   `error: 2 errors and 1 warning emitted`. Ends with a newline; empty when
//!   there is nothing to report. ANSI colours only when asked for.
//! - [`json`]: a pretty-printed JSON document
//!   `{"diagnostics": [...], "errors": N, "warnings": M}` with 1-based
//!   lines and columns (columns counted in characters, `end_column`
//!   exclusive). Ends with a newline.
//!
//! Both renderers accept any span: empty ones, ones past the end of the
//! text, ones splitting a UTF-8 character, ones spanning several lines, even
//! ones naming a file the map does not hold. Spans are clamped (see
//! `locate`) the same way for both, so the line and column in the JSON are
//! the ones shown in the `-->` line. Nothing here panics.

mod human;
mod json;

pub use human::human;
pub use json::json;

use std::fmt::Write as _;
use std::ops::Range;

use crate::source::{SourceFile, SourceMap, Span};

/// Untrusted text (from data, or YAML text such as labels and owners) made
/// safe to print to a terminal, for human output only; JSON and CSV keep
/// the exact value. C0 controls (ESC, BEL, …) and DEL become their Unicode
/// control pictures (`␛`, `␇`), tabs four spaces, and the bidi embeddings,
/// overrides and isolates (U+202A–U+202E, U+2066–U+2069) `�`, as
/// annotate-snippets does for rustc's diagnostics; C1 controls
/// (U+0080–U+009F, which some terminals read as escapes: U+009B is CSI),
/// which have no picture, are written `\u{9b}`. Line breaks are kept.
pub fn visible(s: &str) -> String {
    let is_c1 = |c: char| ('\u{80}'..='\u{9f}').contains(&c);
    let pictured = annotate_snippets::normalize_untrusted_str(s);
    if !pictured.contains(is_c1) {
        return pictured;
    }
    let mut out = String::with_capacity(pictured.len() + 8);
    for c in pictured.chars() {
        if is_c1(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// A span resolved against its file and clamped to valid positions.
struct Located<'a> {
    file: &'a SourceFile,
    /// Byte range into `file.text`, on character boundaries, never past the
    /// end and never ending in a line break.
    range: Range<usize>,
}

impl Located<'_> {
    /// 1-based (line, column, end line, end column); the end is exclusive.
    fn line_cols(&self) -> (usize, usize, usize, usize) {
        let (line, col) = self.file.line_col(self.range.start);
        let (end_line, end_col) = self.file.line_col(self.range.end);
        (line, col, end_line, end_col)
    }
}

/// Resolves `span` in `sources`; `None` when its file is not in the map.
///
/// Clamping rules: offsets past the end become the end; a start inside a
/// UTF-8 character moves back to it, an end moves forward past it; a
/// position at the very end of the text moves back before its trailing line
/// breaks (there is no line after them to point at); trailing line breaks
/// are dropped from non-empty spans so the underline ends on the last
/// character.
fn locate(sources: &SourceMap, span: Span) -> Option<Located<'_>> {
    let (_, file) = sources.files().nth(usize::try_from(span.file.0).ok()?)?;
    Some(Located {
        file,
        range: clamp(&file.text, span.start, span.end),
    })
}

fn clamp(text: &str, start: usize, end: usize) -> Range<usize> {
    let len = text.len();
    let empty = end <= start;
    let mut start = text.floor_char_boundary(start.min(len));
    let mut end = if empty {
        start
    } else {
        text.ceil_char_boundary(end.min(len))
    };
    if start == len {
        start = text.trim_end_matches(['\n', '\r']).len();
        end = start;
    }
    if end > start {
        let trimmed = text[start..end].trim_end_matches(['\n', '\r']).len();
        end = start + trimmed;
    }
    start..end
}

#[cfg(test)]
mod tests;
