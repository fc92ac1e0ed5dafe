//! Period aggregates from partial aggregates of a finer grouping: the
//! columns of one period aggregate → partials, and the aggregates that
//! combine them into the same columns.
//!
//! In: the aggregate step's column expressions, filters already in FILTER
//! clauses (`count(DISTINCT customer_id) FILTER (WHERE status = 'x')`).
//! Out: [`Partials`] (the partial aggregates and each column rewritten over
//! them), for two plans, or `None` when the step does not qualify:
//!
//! - [`pre_group`], distinct counts by pre-grouping: an inner step grouped
//!   by the step's keys and the distinct counts' argument `x`, an outer one
//!   by the keys alone. An engine computes every `DISTINCT` aggregate with
//!   a hash table of its own over every (group, value) pair, so two
//!   distinct counts of the same column (buyers and completed buyers, or a
//!   count and its like-for-like twin) cost two full passes. Grouped by
//!   (keys, `x`) first, each distinct count becomes a count of the inner
//!   rows whose partial says the value occurred under its filter: one hash
//!   table for all of them. DuckDB, 10M orders, customers and completed
//!   buyers by month: 1.7 s as two `count(DISTINCT …)`, 0.67 s pre-grouped
//!   (by month and channel: 2.4 s, 0.94 s). With a single distinct count
//!   the extra GROUP BY costs more than it saves (a filtered distinct count
//!   beside four sums: 0.76 s as is, 1.29 s pre-grouped), so at least two
//!   are required.
//! - [`roll_up`]: the partials of a period aggregate without distinct
//!   counts, computed by the member aggregate of the same scan and grain
//!   beside its own columns, so the period aggregate combines one
//!   dimension's member rows instead of reading the rows again.
//!
//! Only aggregates that combine from partials qualify: `sum`, `count`,
//! `min`, `max`, `avg` (as a sum and a count) and, for pre-grouping,
//! `count(DISTINCT x)` of the one `x`. Quantiles, medians, standard
//! deviations, approximate counts and distinct aggregates of another
//! argument keep the step as it is.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DataType, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    SelectItem,
};

use crate::semantic::aggregates::{function_name, is_aggregate_name};
use crate::sql::build::{
    cast, col, count_star_call, func, function, gt, int, item, paren, safe_div,
};

/// The inner step's column with the distinct counts' argument.
pub(super) const DISTINCT_VALUE: &str = "__kpic_dv";

/// How many `count(DISTINCT x)` a step needs before pre-grouping pays.
const MIN_DISTINCT_COUNTS: usize = 2;

/// A period aggregate's columns as two GROUP BYs (module docs).
pub(super) struct PreGrouped {
    /// The distinct counts' argument: an extra grouping key of the inner
    /// step, projected as [`DISTINCT_VALUE`].
    pub value: Expr,
    /// The inner step's partial aggregates, named `__kpic_p<i>`.
    pub partials: Vec<SelectItem>,
    /// The columns, in the order given, over the partials and
    /// [`DISTINCT_VALUE`]: aggregates of the outer step.
    pub columns: Vec<Expr>,
}

enum Part {
    /// `count(DISTINCT x)`.
    Distinct(Expr),
    /// `sum`, `count`, `min`, `max`, `avg`/`mean` (not distinct).
    Combinable,
}

/// What an aggregate call is to pre-grouping; `None` when it cannot be
/// combined from partials.
fn part(f: &Function) -> Option<Part> {
    if f.over.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if !list.clauses.is_empty() {
        return None;
    }
    let name = function_name(f);
    match (list.duplicate_treatment, list.args.as_slice()) {
        (Some(DuplicateTreatment::Distinct), [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))])
            if name == "count" =>
        {
            Some(Part::Distinct(x.clone()))
        }
        (Some(DuplicateTreatment::Distinct), _) => None,
        (_, [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]) if name == "count" => {
            Some(Part::Combinable)
        }
        (_, [FunctionArg::Unnamed(FunctionArgExpr::Expr(_))])
            if matches!(
                name.as_str(),
                "sum" | "count" | "min" | "max" | "avg" | "mean"
            ) =>
        {
            Some(Part::Combinable)
        }
        _ => None,
    }
}

/// Every aggregate call of `columns`, or `None` if one cannot be combined.
fn parts(columns: &[Expr]) -> Option<Vec<Part>> {
    let mut found = Vec::new();
    for c in columns {
        let stopped = sqlparser::ast::visit_expressions(c, |e| {
            if let Expr::Function(f) = e
                && is_aggregate_name(&function_name(f))
            {
                match part(f) {
                    Some(p) => found.push(p),
                    None => return ControlFlow::Break(()),
                }
            }
            ControlFlow::Continue(())
        });
        if stopped.is_break() {
            return None;
        }
    }
    Some(found)
}

/// The columns of one period aggregate as two GROUP BYs, when they have at
/// least two distinct counts, all of the same argument, and every other
/// aggregate combines from partials (module docs). `double` is the
/// engine's DOUBLE type (an average's sum is divided as one).
pub(super) fn pre_group(columns: &[Expr], double: &DataType) -> Option<PreGrouped> {
    let mut value: Option<Expr> = None;
    let mut distinct_counts = 0;
    for p in parts(columns)? {
        if let Part::Distinct(x) = p {
            if *value.get_or_insert_with(|| x.clone()) != x {
                return None;
            }
            distinct_counts += 1;
        }
    }
    if distinct_counts < MIN_DISTINCT_COUNTS {
        return None;
    }
    let split = split(columns, double, "__kpic_p");
    Some(PreGrouped {
        value: value?,
        partials: split.partials,
        columns: split.columns,
    })
}

/// Columns as partial aggregates of a finer grouping and the aggregates
/// that combine them into the columns.
pub(super) struct Partials {
    /// The partial aggregates, named `<prefix><i>`.
    pub partials: Vec<SelectItem>,
    /// The columns over the partials, in the order given.
    pub columns: Vec<Expr>,
}

/// The columns of a period aggregate as partials that a member aggregate
/// of the same scan and grain computes beside its own columns, and the
/// aggregates that combine one dimension's member rows into the columns
/// (`Renderer::roll_up_source`): no second pass over the rows. `None`
/// unless every aggregate combines from partials and none is DISTINCT.
pub(super) fn roll_up(columns: &[Expr], double: &DataType) -> Option<Partials> {
    if parts(columns)?
        .iter()
        .any(|p| matches!(p, Part::Distinct(_)))
    {
        return None;
    }
    Some(split(columns, double, "__kpic_r"))
}

/// Rewrites every aggregate call of `columns` over partials named
/// `<prefix><i>` (the calls are ones [`part`] accepts).
fn split(columns: &[Expr], double: &DataType, prefix: &str) -> Partials {
    let mut partials = Vec::new();
    let columns = columns
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let _ = sqlparser::ast::visit_expressions_mut(&mut c, |e| {
                if let Expr::Function(f) = e
                    && is_aggregate_name(&function_name(f))
                {
                    let mut add = |aggregate: Expr| partial(&mut partials, prefix, aggregate);
                    *e = combined(f, &mut add, double);
                }
                ControlFlow::<()>::Continue(())
            });
            c
        })
        .collect();
    Partials { partials, columns }
}

/// Adds a partial (or finds the same one); returns the column that reads
/// it.
fn partial(partials: &mut Vec<SelectItem>, prefix: &str, aggregate: Expr) -> Expr {
    let existing = partials.iter().find_map(|p| match p {
        SelectItem::ExprWithAlias { expr, alias } if *expr == aggregate => {
            Some(alias.value.clone())
        }
        _ => None,
    });
    if let Some(name) = existing {
        return col(&name);
    }
    let name = format!("{prefix}{}", partials.len());
    partials.push(item(aggregate, &name));
    col(&name)
}

/// `f` (an aggregate [`part`] accepts) over the partials `partial` adds.
fn combined(f: &Function, partial: &mut dyn FnMut(Expr) -> Expr, double: &DataType) -> Expr {
    let name = function_name(f);
    let distinct = matches!(&f.args, FunctionArguments::List(l)
        if l.duplicate_treatment == Some(DuplicateTreatment::Distinct));
    if distinct {
        // A value counts if any of its rows passes the filter.
        let mut count = function("count", vec![col(DISTINCT_VALUE)]);
        if let Some(cond) = &f.filter {
            let mut occurrences = count_star_call();
            occurrences.filter = Some(cond.clone());
            let seen = partial(Expr::Function(occurrences));
            count.filter = Some(Box::new(gt(seen, int(0))));
        }
        return Expr::Function(count);
    }
    match name.as_str() {
        "avg" | "mean" => {
            let mut sum = f.clone();
            sum.name = function("sum", vec![]).name;
            let mut count = f.clone();
            count.name = function("count", vec![]).name;
            let sum = partial(Expr::Function(sum));
            let count = partial(Expr::Function(count));
            // Parenthesized: it replaces a call inside a larger expression
            // (`x / avg(a)`), and the tree prints without precedence.
            paren(safe_div(
                cast(func("sum", vec![sum]), double.clone()),
                func("sum", vec![count]),
            ))
        }
        // A count stays a count: BIGINT, not the wider type of a sum.
        "count" => cast(
            func("sum", vec![partial(Expr::Function(f.clone()))]),
            DataType::BigInt(None),
        ),
        // sum, min, max combine with themselves.
        _ => func(&name, vec![partial(Expr::Function(f.clone()))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::DuckDbDialect;
    use sqlparser::parser::Parser;

    fn e(s: &str) -> Expr {
        Parser::new(&DuckDbDialect {})
            .try_with_sql(s)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    fn pre(columns: &[&str]) -> Option<PreGrouped> {
        let columns: Vec<Expr> = columns.iter().map(|c| e(c)).collect();
        pre_group(&columns, &crate::sql::build::double())
    }

    #[test]
    fn needs_two_distinct_counts_of_one_argument() {
        assert!(pre(&["count(DISTINCT c)", "sum(a)"]).is_none());
        assert!(pre(&["count(DISTINCT c)", "count(DISTINCT d)"]).is_none());
        assert!(
            pre(&[
                "count(DISTINCT c)",
                "count(DISTINCT c) FILTER (WHERE s = 1)"
            ])
            .is_some()
        );
    }

    #[test]
    fn refuses_aggregates_without_partials() {
        let d = "count(DISTINCT c)";
        assert!(pre(&[d, d, "quantile_cont(a, 0.9)"]).is_none());
        assert!(pre(&[d, d, "stddev(a)"]).is_none());
        assert!(pre(&[d, d, "sum(DISTINCT a)"]).is_none());
        assert!(pre(&[d, d, "approx_count_distinct(a)"]).is_none());
    }

    #[test]
    fn rolls_up_only_without_distinct_aggregates() {
        let columns = |cs: &[&str]| cs.iter().map(|c| e(c)).collect::<Vec<_>>();
        let double = crate::sql::build::double();
        assert!(roll_up(&columns(&["count(DISTINCT c)", "sum(a)"]), &double).is_none());
        assert!(roll_up(&columns(&["median(a)"]), &double).is_none());
        let r = roll_up(
            &columns(&["sum(a) FILTER (WHERE s = 1)", "avg(a)"]),
            &double,
        )
        .unwrap();
        let partials: Vec<String> = r.partials.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            partials,
            [
                "sum(a) FILTER (WHERE s = 1) AS __kpic_r0",
                "sum(a) AS __kpic_r1",
                "count(a) AS __kpic_r2",
            ]
        );
        let columns: Vec<String> = r.columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            columns,
            [
                "sum(__kpic_r0)",
                "(CAST(sum(__kpic_r1) AS DOUBLE) / nullif(sum(__kpic_r2), 0))",
            ]
        );
    }

    #[test]
    fn rewrites_each_aggregate_over_its_partials() {
        let p = pre(&[
            "count(DISTINCT c)",
            "count(DISTINCT c) FILTER (WHERE s = 1) / avg(a)",
            "NULL",
            "count(*) + max(a) + count(*)",
        ])
        .unwrap();
        assert_eq!(p.value.to_string(), "c");
        let partials: Vec<String> = p.partials.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            partials,
            [
                "count(*) FILTER (WHERE s = 1) AS __kpic_p0",
                "sum(a) AS __kpic_p1",
                "count(a) AS __kpic_p2",
                "count(*) AS __kpic_p3",
                "max(a) AS __kpic_p4",
            ]
        );
        let columns: Vec<String> = p.columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            columns,
            [
                "count(__kpic_dv)",
                "count(__kpic_dv) FILTER (WHERE __kpic_p0 > 0) / (CAST(sum(__kpic_p1) AS DOUBLE) / nullif(sum(__kpic_p2), 0))",
                "NULL",
                "CAST(sum(__kpic_p3) AS BIGINT) + max(__kpic_p4) + CAST(sum(__kpic_p3) AS BIGINT)",
            ]
        );
    }
}
