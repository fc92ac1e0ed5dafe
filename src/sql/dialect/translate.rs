//! The dialect pass: a rendered query (sqlparser AST, built in DuckDB's
//! style) → the same query in the target engine's style, for the
//! differences that are mechanical and apply wherever they occur:
//!
//! - aggregate `FILTER (WHERE c)` clauses, moved into a `CASE` inside the
//!   aggregate where the engine has no FILTER ([`Dialect::aggregate_filter`]);
//! - kpic's aggregates (`quantile_cont`, `median`, …) in the engine's words
//!   ([`Dialect::aggregate`]);
//! - type names in `CAST` ([`Dialect::data_type`]);
//! - quoted identifiers ([`Dialect::identifier`]) and string literals that
//!   need escaping ([`Dialect::string_literal`]).
//!
//! Semantic differences (dates, spines, division, NULL matching) are not
//! here: the renderer asks the [`Dialect`] for them while it builds the
//! tree. For DuckDB every hook is the identity, so the pass changes nothing.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query, Statement,
    Value, VisitMut, VisitorMut,
};

use super::Dialect;
use crate::sql::build::{case, int};

/// Rewrites `q` in place for `dialect`.
pub fn translate_query(q: &mut Query, dialect: &dyn Dialect) {
    let _ = q.visit(&mut Pass { dialect });
}

/// Rewrites a statement (build.sql's DDL) in place for `dialect`.
pub fn translate_statement(s: &mut Statement, dialect: &dyn Dialect) {
    let _ = s.visit(&mut Pass { dialect });
}

/// Rewrites an expression in place for `dialect`.
pub fn translate_expr(e: &mut Expr, dialect: &dyn Dialect) {
    let _ = e.visit(&mut Pass { dialect });
}

struct Pass<'a> {
    dialect: &'a dyn Dialect,
}

impl VisitorMut for Pass<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let d = self.dialect;
        match expr {
            Expr::Function(f) => {
                if !d.aggregate_filter()
                    && let Some(cond) = f.filter.take()
                {
                    filter_into_arguments(f, *cond);
                }
                let name = crate::semantic::aggregates::function_name(f);
                // Refusals are reported before rendering (see
                // `sql::dialect_problems`); here a refused call stays as is.
                if let Ok(Some(replacement)) = d.aggregate(&name, f) {
                    *expr = replacement;
                }
            }
            Expr::Cast { data_type, .. } => {
                *data_type = d.data_type(data_type.clone());
            }
            Expr::Value(v) => {
                if let Value::SingleQuotedString(s) = &v.value
                    && let Some(replacement) = d.string_literal(s)
                {
                    *expr = replacement;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_ident(&mut self, ident: &mut Ident) -> ControlFlow<()> {
        if ident.quote_style.is_some() {
            self.dialect.identifier(ident);
        }
        ControlFlow::Continue(())
    }
}

/// `agg(x) FILTER (WHERE c)` → `agg(CASE WHEN c THEN x END)`;
/// `count(*) FILTER (WHERE c)` → `count(CASE WHEN c THEN 1 END)`. The
/// aggregates kpic accepts all skip NULLs, so both agree on every row; a
/// sum over no matching row is NULL either way.
fn filter_into_arguments(f: &mut Function, cond: Expr) {
    let FunctionArguments::List(list) = &mut f.args else {
        return;
    };
    // The aggregated value is the first argument (`quantile_cont(x, p)`
    // keeps its fraction).
    if let Some(first) = list.args.first_mut() {
        let guarded = |value: Expr| case(vec![(cond.clone(), value)], None);
        match first {
            FunctionArg::Unnamed(arg) | FunctionArg::Named { arg, .. } => {
                *arg = match std::mem::replace(arg, FunctionArgExpr::Wildcard) {
                    FunctionArgExpr::Expr(x) => FunctionArgExpr::Expr(guarded(x)),
                    // `count(*)` counts rows: a non-NULL constant per row.
                    _ => FunctionArgExpr::Expr(guarded(int(1))),
                };
            }
            _ => {}
        }
    }
}

/// The first argument of an aggregate call and the others (`quantile_cont(x,
/// 0.9)` → `x`, `[0.9]`), for dialects that re-spell aggregates.
pub fn arguments(f: &Function) -> Option<(Expr, Vec<Expr>)> {
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let mut exprs = list.args.iter().map(|a| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
        _ => None,
    });
    let first = exprs.next()??;
    let rest: Option<Vec<Expr>> = exprs.collect();
    Some((first, rest?))
}

/// `DISTINCT` inside an aggregate call (`count(DISTINCT x)`).
pub fn is_distinct(f: &Function) -> bool {
    matches!(&f.args, FunctionArguments::List(l)
        if matches!(l.duplicate_treatment, Some(sqlparser::ast::DuplicateTreatment::Distinct)))
}
