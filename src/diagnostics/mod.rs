//! Diagnostics as plain data: every problem kpic finds is a [`Diagnostic`]
//! with a stable [`Code`], a severity, a message, labelled spans, help and
//! notes. Stages return them; the CLI renders them (`render::human`,
//! `render::json`). Nothing here prints.

pub mod codes;
pub mod render;

pub use codes::Code;

use crate::source::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A span with a short label shown under the caret.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One problem found in a project.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Where the problem is; `None` only for problems without a place in any
    /// file (e.g. the database could not be opened).
    pub primary: Option<Label>,
    pub secondary: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error with the severity its code implies.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    /// Points the diagnostic at `span`, with `label` under the caret.
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.primary = Some(Label {
            span,
            message: label.into(),
        });
        self
    }

    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: label.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A collection of diagnostics; stages push into it and keep going so that
/// one run reports every problem.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Errors first, then in file order, so output is stable.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by_key(|d| {
            (
                d.severity,
                d.primary.as_ref().map(|l| (l.span.file, l.span.start)),
                d.code,
            )
        });
        self
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// "did you mean `x`?" for the closest of `candidates` to `word`, if any is
/// close enough to be a plausible typo. Never `word` itself: when the only
/// close candidate is the written name, the name exists but is not allowed
/// where it is written (another kind of thing, another scope), and a caller
/// must say that instead. Case is ignored in the comparison, so a name that
/// differs only in case (`Revenue`, `CH`) gets its lower-case twin.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let folded = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::jaro_winkler(&folded, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod did_you_mean_tests {
    use super::did_you_mean;

    #[test]
    fn never_suggests_the_written_name() {
        assert_eq!(did_you_mean("ch", ["ch"]), None);
        assert_eq!(did_you_mean("ch", ["ch", "ch2"]), Some("ch2"));
        assert_eq!(did_you_mean("revenue", ["revenue", "revenue"]), None);
    }

    #[test]
    fn names_differing_in_case_find_their_twin() {
        assert_eq!(did_you_mean("CH", ["ch", "status"]), Some("ch"));
        assert_eq!(
            did_you_mean("Revenue", ["revenue", "order_count"]),
            Some("revenue")
        );
        assert_eq!(did_you_mean("revnue", ["revenue", "aov"]), Some("revenue"));
        assert_eq!(did_you_mean("zzz", ["revenue", "aov"]), None);
    }
}
