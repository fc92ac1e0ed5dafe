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

use std::ops::Range;

use crate::source::{SourceFile, SourceMap, Span};

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
