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
//!   need escaping ([`Dialect::string_literal`]);
//! - grouped queries whose sort-based aggregates order by different
//!   expressions, where the engine wants one ordering per query
//!   ([`Dialect::sort_order`], Redshift): split into one grouped query
//!   per ordering, joined back on the group keys ([`split_sort_orders`]).
//!
//! Semantic differences (dates, spines, division, NULL matching) are not
//! here: the renderer asks the [`Dialect`] for them while it builds the
//! tree. For DuckDB every hook is the identity, so the pass changes nothing.

use std::ops::ControlFlow;

use std::collections::BTreeSet;

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query,
    SelectItem, SetExpr, Statement, Value, VisitMut, VisitorMut,
};

use super::Dialect;
use crate::sql::build::{and_all, case, derived, from, func, ident, int, item, left_join, select};

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
            print_quotes_doubled(ident);
        }
        ControlFlow::Continue(())
    }

    // Queries are visited after their expressions: the aggregates are
    // already in the engine's words when their orderings are compared.
    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        split_sort_orders(query, self.dialect);
        ControlFlow::Continue(())
    }
}

/// sqlparser's printer doubles the quote character inside a quoted
/// identifier, except where it is doubled already or follows a backslash
/// (it takes those for escapes someone already wrote), so a column named
/// `a""b` or `a\"b` would be printed as another name (`"a""b"` reads as
/// `a"b`). Such an identifier is written out here, every quote doubled, as
/// the text of an unquoted one, which the printer copies as it is.
/// (Found by the property tests, `tests/it/properties.rs`.)
fn print_quotes_doubled(ident: &mut Ident) {
    let Some(q) = ident.quote_style.filter(|q| matches!(q, '"' | '`' | '\'')) else {
        return;
    };
    let doubled = format!("{q}{q}");
    if ident.value.contains(&doubled) || ident.value.contains(&format!("\\{q}")) {
        ident.value = format!("{q}{}{q}", ident.value.replace(q, &doubled));
        ident.quote_style = None;
    }
}

/// The distinct orderings ([`Dialect::sort_order`]) of the sort-based
/// aggregates in `e`.
pub fn sort_orders(e: &Expr, dialect: &dyn Dialect) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let _ = sqlparser::ast::visit_expressions(e, |e| {
        if let Expr::Function(f) = e
            && let Some(order) = dialect.sort_order(f)
        {
            found.insert(order);
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// `SELECT keys, a, b FROM r GROUP BY keys` whose aggregates `a` and `b`
/// are sort-based with different orderings (the whole period's quantile
/// and its like-for-like days', `ORDER BY x` and `ORDER BY CASE WHEN …
/// THEN x END`) → one grouped query per ordering over the same rows and
/// groups, each with the group keys as hidden columns, left joined on
/// them:
///
/// ```sql
/// SELECT kpic_part0.keys, kpic_part0.a, kpic_part1.b
/// FROM (SELECT k AS __kpic_key0, keys, a FROM r GROUP BY k) AS kpic_part0
/// LEFT JOIN (SELECT k AS __kpic_key0, b FROM r GROUP BY k) AS kpic_part1
///   ON <k matches, NULL matching NULL>
/// ```
///
/// Every part groups the same rows by the same keys, so the parts hold the
/// same groups and the join pairs them one to one. Keys are matched as
/// text with [`Dialect::null_safe_eq`] (a NULL key is a group too: a NULL
/// breakdown member); with GROUPING SETS each key's `GROUPING()` flag is a
/// key as well, so a NULL member is not confused with a rolled-up key.
/// Queries this cannot split safely (an unnamed item, one item with two
/// orderings, HAVING, DISTINCT, ROLLUP/CUBE) are left as they
/// are; `sql::dialect_problems` refuses a measure with two orderings
/// before compiling.
fn split_sort_orders(q: &mut Query, d: &dyn Dialect) {
    let SetExpr::Select(s) = q.body.as_mut() else {
        return;
    };
    let GroupByExpr::Expressions(group, modifiers) = &s.group_by else {
        return;
    };
    if group.is_empty()
        || !modifiers.is_empty()
        || s.having.is_some()
        || s.qualify.is_some()
        || s.distinct.is_some()
    {
        return;
    }
    // Which ordering each projection item belongs to (None: no sort-based
    // aggregate; it goes with the first ordering).
    let mut orders: Vec<String> = Vec::new();
    let mut item_order: Vec<usize> = Vec::with_capacity(s.projection.len());
    for it in &s.projection {
        // Parts are read back by name.
        let SelectItem::ExprWithAlias { expr, .. } = it else {
            return;
        };
        let found = sort_orders(expr, d);
        if found.len() > 1 {
            return;
        }
        item_order.push(match found.into_iter().next() {
            None => 0,
            Some(order) => match orders.iter().position(|o| *o == order) {
                Some(i) => i,
                None => {
                    orders.push(order);
                    orders.len() - 1
                }
            },
        });
    }
    if orders.len() < 2 {
        return;
    }
    let mut keys: Vec<Expr> = Vec::new();
    // With GROUPING SETS, the keys some set leaves out (NULL there).
    let mut rolled_up: Vec<Expr> = Vec::new();
    for e in group {
        let set_keys: Vec<&Expr> = match e {
            Expr::GroupingSets(sets) => {
                for k in sets.iter().flatten() {
                    if sets.iter().any(|set| !set.contains(k)) && !rolled_up.contains(k) {
                        rolled_up.push(k.clone());
                    }
                }
                sets.iter().flatten().collect()
            }
            Expr::Rollup(_) | Expr::Cube(_) => return,
            other => vec![other],
        };
        for k in set_keys {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let mut key_items: Vec<SelectItem> = Vec::new();
    let mut key_names: Vec<String> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        key_names.push(format!("__kpic_key{i}"));
        key_items.push(item(k.clone(), &format!("__kpic_key{i}")));
        if rolled_up.contains(k) {
            key_names.push(format!("__kpic_set{i}"));
            key_items.push(item(
                func("grouping", vec![k.clone()]),
                &format!("__kpic_set{i}"),
            ));
        }
    }
    let part_name = |i: usize| format!("kpic_part{i}");
    let mut outer_projection = Vec::with_capacity(s.projection.len());
    let mut parts: Vec<Vec<SelectItem>> = vec![key_items.clone(); orders.len()];
    for (it, &o) in s.projection.iter().zip(&item_order) {
        parts[o].push(it.clone());
        if let SelectItem::ExprWithAlias { alias, .. } = it {
            outer_projection.push(SelectItem::ExprWithAlias {
                expr: Expr::CompoundIdentifier(vec![ident(&part_name(o)), alias.clone()]),
                alias: alias.clone(),
            });
        }
    }
    let mut relations = parts.into_iter().enumerate().map(|(i, projection)| {
        let mut part = (**s).clone();
        part.projection = projection;
        derived(crate::sql::build::select_query(part), &part_name(i))
    });
    let Some(first) = relations.next() else {
        return;
    };
    let joins = relations
        .enumerate()
        .map(|(i, relation)| {
            let on = key_names.iter().map(|k| {
                let side = |part: &str| {
                    d.member_text(Expr::CompoundIdentifier(vec![ident(part), ident(k)]))
                };
                d.null_safe_eq(side(&part_name(0)), side(&part_name(i + 1)))
            });
            left_join(relation, and_all(on.collect()).unwrap_or_else(|| int(1)))
        })
        .collect();
    **s = select(outer_projection, vec![from(first, joins)]);
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
