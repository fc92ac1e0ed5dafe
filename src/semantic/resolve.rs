//! Name resolution inside a source's SQL fields. An identifier in a
//! measure, filter, dimension, time or join expression is, in this order:
//! a dimension of the source, a column of the source, or (unqualified only
//! when unambiguous) a dimension or column of a joined source; `j.x` names
//! dimension or column `x` of joined source `j`.
//!
//! In: an expression and its [`Scope`]. Out: the expression rewritten over
//! the columns of the source's scan (`amount`, `customers__plan`), the set
//! of [`ColumnRef`]s the scan must provide, or diagnostics (KPI211).

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, VisitMut, VisitorMut};

use crate::diagnostics::{Code, Diagnostic, did_you_mean};
use crate::model::{Project, Source, SqlExpr};
use crate::source::{SourceMap, Span};

/// A column of a relation as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub data_type: String,
}

/// Known schemas, by source name. A source without an entry has an unknown
/// schema (a warehouse table kpic has not described); its columns are
/// taken on trust.
pub type Schemas = HashMap<String, Vec<Column>>;

/// A column the scan of a source must provide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnRef {
    Base(String),
    Joined { source: String, column: String },
}

impl ColumnRef {
    /// The column's name in the scan.
    pub fn alias(&self) -> String {
        match self {
            ColumnRef::Base(c) => c.clone(),
            ColumnRef::Joined { source, column } => format!("{source}__{column}"),
        }
    }
}

pub struct Scope<'a> {
    pub project: &'a Project,
    pub source: &'a Source,
    pub schemas: &'a Schemas,
    pub sources: &'a SourceMap,
}

/// The result of resolving one expression.
pub struct Resolved {
    pub expr: Expr,
    pub columns: BTreeSet<ColumnRef>,
}

impl Scope<'_> {
    fn joined(&self) -> impl Iterator<Item = &Source> {
        self.source
            .joins
            .iter()
            .filter_map(|j| self.project.source(&j.source.value))
    }

    fn column_in(&self, source: &Source, name: &str) -> Option<Option<String>> {
        match self.schemas.get(&source.name.value) {
            Some(cols) => cols
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map(|c| Some(c.name.clone())),
            None => Some(None),
        }
    }

    /// Resolves `field`; `allow_dimensions` is false inside dimension
    /// expressions themselves (they are over columns only).
    pub fn resolve(
        &self,
        field: &SqlExpr,
        allow_dimensions: bool,
    ) -> Result<Resolved, Vec<Diagnostic>> {
        let mut r = Rewriter {
            scope: self,
            field,
            allow_dimensions,
            columns: BTreeSet::new(),
            errors: Vec::new(),
        };
        let mut expr = field.expr.clone();
        let _ = expr.visit(&mut r);
        if r.errors.is_empty() {
            Ok(Resolved {
                expr,
                columns: r.columns,
            })
        } else {
            Err(r.errors)
        }
    }

    /// Names a field may use, for did-you-mean hints, each once:
    /// dimensions only where they are allowed.
    fn candidates(&self, allow_dimensions: bool) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |name: String| {
            if !out.contains(&name) {
                out.push(name);
            }
        };
        if allow_dimensions {
            self.source
                .dimensions
                .iter()
                .for_each(|d| add(d.name.value.clone()));
        }
        if let Some(cols) = self.schemas.get(&self.source.name.value) {
            cols.iter().for_each(|c| add(c.name.clone()));
        }
        if allow_dimensions {
            for j in self.joined() {
                j.dimensions
                    .iter()
                    .for_each(|d| add(format!("{}.{}", j.name.value, d.name.value)));
            }
        }
        out
    }

    /// Whether `name` (`x`, or `j.x` for joined source `j`) is a computed
    /// dimension in this scope: one with an expression of its own, so not
    /// a column. (A plain dimension names its column: when that is
    /// missing, the column is what is unknown.)
    fn is_dimension(&self, name: &str) -> bool {
        let has = |s: &Source, n: &str| {
            s.dimensions.iter().any(|d| {
                d.name.value == n && !matches!(&d.expr.expr, Expr::Identifier(i) if i.value == n)
            })
        };
        match name.split_once('.') {
            None => has(self.source, name),
            Some((rel, n)) if rel == self.source.name.value => has(self.source, n),
            Some((rel, n)) => self.joined().any(|j| j.name.value == rel && has(j, n)),
        }
    }
}

struct Rewriter<'s, 'a> {
    scope: &'s Scope<'a>,
    field: &'s SqlExpr,
    allow_dimensions: bool,
    columns: BTreeSet<ColumnRef>,
    errors: Vec<Diagnostic>,
}

impl Rewriter<'_, '_> {
    /// Resolves a dimension or column `name` of `source` (the base source or
    /// a joined one) to an expression over scan columns.
    fn in_source(&mut self, source: &Source, joined: bool, name: &str) -> Option<Expr> {
        if self.allow_dimensions
            && let Some(d) = source.dimensions.iter().find(|d| d.name.value == name)
        {
            // A dimension's own expression is over its source's columns.
            let plain_column = matches!(&d.expr.expr, Expr::Identifier(i) if i.value == name);
            if !plain_column {
                let inner = Scope {
                    project: self.scope.project,
                    source,
                    schemas: self.scope.schemas,
                    sources: self.scope.sources,
                };
                return match inner.resolve(&d.expr, false) {
                    Ok(r) => {
                        for c in r.columns {
                            self.columns.insert(match (joined, c) {
                                (true, ColumnRef::Base(column)) => ColumnRef::Joined {
                                    source: source.name.value.clone(),
                                    column,
                                },
                                (_, c) => c,
                            });
                        }
                        let mut e = r.expr;
                        if joined {
                            prefix_identifiers(&mut e, &source.name.value);
                        }
                        Some(Expr::Nested(Box::new(e)))
                    }
                    Err(errs) => {
                        self.errors.extend(errs);
                        None
                    }
                };
            }
        }
        let column = self
            .scope
            .column_in(source, name)?
            .unwrap_or_else(|| name.to_string());
        let c = if joined {
            ColumnRef::Joined {
                source: source.name.value.clone(),
                column,
            }
        } else {
            ColumnRef::Base(column)
        };
        let e = Expr::Identifier(crate::sql::build::ident(&c.alias()));
        self.columns.insert(c);
        Some(e)
    }

    fn unknown(&mut self, shown: &str, lookup: &str) {
        let candidates = self.scope.candidates(self.allow_dimensions);
        let span = locate(self.scope.sources, self.field.span, lookup);
        let source = &self.scope.source.name.value;
        // A dimension where only columns may be used (a dimension's, the
        // time's expression): the name exists, so say what is wrong.
        if !self.allow_dimensions && self.scope.is_dimension(lookup) {
            let mut d = Diagnostic::new(
                Code::UnknownColumn,
                format!("`{shown}` is a dimension, not a column of source `{source}`"),
            )
            .at(span, "a dimension, not a column")
            .with_help(
                "dimension and time expressions are over the source's columns only: write the dimension's own expression here",
            );
            if !candidates.is_empty() {
                let listed: Vec<&str> = candidates.iter().map(String::as_str).take(20).collect();
                d = d.with_note(format!("columns: {}", listed.join(", ")));
            }
            self.errors.push(d);
            return;
        }
        let hint = did_you_mean(lookup, candidates.iter().map(String::as_str));
        let mut d = Diagnostic::new(
            Code::UnknownColumn,
            format!("source `{source}` has no column or dimension `{shown}`"),
        );
        d = match hint {
            Some(h) => d.at(span, format!("did you mean `{h}`?")),
            None => d.at(span, "unknown column"),
        };
        let listed: Vec<&str> = candidates.iter().map(String::as_str).take(20).collect();
        if !listed.is_empty() {
            d = d.with_note(format!("available: {}", listed.join(", ")));
        }
        self.errors.push(d);
    }

    fn resolve_single(&mut self, name: &str) -> Option<Expr> {
        let base = self.scope.source;
        let is_base_dim =
            self.allow_dimensions && base.dimensions.iter().any(|d| d.name.value == name);
        let base_schema = self.scope.schemas.get(&base.name.value);
        let is_base_col = match base_schema {
            Some(cols) => cols.iter().any(|c| c.name.eq_ignore_ascii_case(name)),
            None => true,
        };
        if is_base_dim || (is_base_col && base_schema.is_some()) {
            return self.in_source(base, false, name);
        }
        // Unqualified names of joined sources, where unambiguous.
        let joined: Vec<&Source> =
            self.scope
                .joined()
                .filter(|j| {
                    (self.allow_dimensions && j.dimensions.iter().any(|d| d.name.value == name))
                        || self.scope.schemas.get(&j.name.value).is_some_and(|cols| {
                            cols.iter().any(|c| c.name.eq_ignore_ascii_case(name))
                        })
                })
                .collect();
        match joined.as_slice() {
            [j] => self.in_source(j, true, name),
            _ if is_base_col => self.in_source(base, false, name),
            [a, b, ..] => {
                // Not unknown: known twice. Say so, not "no column".
                let (a, b) = (&a.name.value, &b.name.value);
                self.errors.push(
                    Diagnostic::new(
                        Code::UnknownColumn,
                        format!(
                            "`{name}` is ambiguous: joined sources `{a}` and `{b}` both have it"
                        ),
                    )
                    .at(
                        locate(self.scope.sources, self.field.span, name),
                        format!("write `{a}.{name}` or `{b}.{name}`"),
                    ),
                );
                None
            }
            _ => {
                self.unknown(name, name);
                None
            }
        }
    }
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replacement = match expr {
            Expr::Identifier(i) => {
                let name = i.value.clone();
                self.resolve_single(&name)
            }
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let (rel, name) = (parts[0].value.clone(), parts[1].value.clone());
                let base = self.scope.source;
                if rel == base.name.value {
                    self.in_source(base, false, &name).or_else(|| {
                        self.unknown(&format!("{rel}.{name}"), &name);
                        None
                    })
                } else if let Some(j) = self.scope.joined().find(|j| j.name.value == rel) {
                    let known = (self.allow_dimensions
                        && j.dimensions.iter().any(|d| d.name.value == name))
                        || self.scope.schemas.get(&j.name.value).is_none_or(|cols| {
                            cols.iter().any(|c| c.name.eq_ignore_ascii_case(&name))
                        });
                    if known {
                        self.in_source(j, true, &name)
                    } else {
                        self.unknown(&format!("{rel}.{name}"), &format!("{rel}.{name}"));
                        None
                    }
                } else {
                    self.unknown(&format!("{rel}.{name}"), &format!("{rel}.{name}"));
                    None
                }
            }
            Expr::CompoundIdentifier(parts) => {
                let shown = parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
                self.unknown(&shown, &shown);
                None
            }
            _ => return ControlFlow::Continue(()),
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        ControlFlow::Continue(())
    }
}

/// Renames scan columns of a joined source's expression (`plan` →
/// `customers__plan`) after resolving it as if it were the base.
fn prefix_identifiers(expr: &mut Expr, source: &str) {
    let _ = sqlparser::ast::visit_expressions_mut(expr, |e| {
        if let Expr::Identifier(i) = e
            && !i.value.contains("__")
        {
            i.value = format!("{source}__{}", i.value);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The span of `word` inside a field, when the field's text is in the file
/// verbatim; else the whole field.
pub fn locate(sources: &SourceMap, field: Span, word: &str) -> Span {
    let text = sources.snippet(field);
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let start = from + i;
        let end = start + word.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_ident(c) && c != '.');
        let after_ok = text[end..].chars().next().is_none_or(|c| !is_ident(c));
        if before_ok && after_ok {
            return Span::new(field.file, field.start + start, field.start + end);
        }
        from = end;
    }
    field
}
