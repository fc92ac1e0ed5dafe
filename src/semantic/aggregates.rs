//! What a measure expression is made of: which aggregates it uses, whether
//! it is additive (SPEC §7: only `sum()` and `count()` combined with `+`
//! and `−`), and whether it is an `avg(x)` (a ratio `sum(x)/count(x)`).

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Visit, Visitor,
};

/// Aggregates kpic translates to every engine.
pub const SUPPORTED: &[&str] = &[
    "sum",
    "count",
    "avg",
    "mean",
    "min",
    "max",
    "median",
    "quantile_cont",
    "quantile",
    "percentile",
    "percentile_cont",
    "approx_count_distinct",
    "stddev",
    "stddev_samp",
    "stddev_pop",
];

/// Aggregates an engine knows but kpic refuses (no portable translation).
const OTHER_AGGREGATES: &[&str] = &[
    "any_value",
    "approx_quantile",
    "approx_top_k",
    "arbitrary",
    "arg_max",
    "arg_min",
    "argmax",
    "argmin",
    "array_agg",
    "avg_if",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bitstring_agg",
    "bool_and",
    "bool_or",
    "corr",
    "count_if",
    "countif",
    "covar_pop",
    "covar_samp",
    "entropy",
    "every",
    "favg",
    "first",
    "first_value",
    "fsum",
    "geomean",
    "group_concat",
    "histogram",
    "kahan_sum",
    "kurtosis",
    "last",
    "last_value",
    "list",
    "listagg",
    "mad",
    "max_by",
    "min_by",
    "mode",
    "product",
    "quantile_disc",
    "regr_slope",
    "reservoir_quantile",
    "skewness",
    "string_agg",
    "sum_if",
    "sumif",
    "var_pop",
    "var_samp",
    "variance",
];

pub fn function_name(f: &Function) -> String {
    f.name.to_string().to_ascii_lowercase()
}

pub fn is_aggregate_name(name: &str) -> bool {
    SUPPORTED.contains(&name) || OTHER_AGGREGATES.contains(&name)
}

/// A problem found in a measure.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasureProblem {
    /// A column outside any aggregate.
    BareColumn(String),
    /// An aggregate inside another.
    Nested(String),
    /// An aggregate kpic does not translate.
    Unsupported(String),
    /// `OVER (...)`.
    WindowFunction(String),
    NoAggregate,
}

struct Checker {
    depth: usize,
    aggregates: usize,
    problems: Vec<MeasureProblem>,
}

impl Visitor for Checker {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(f) => {
                let name = function_name(f);
                if f.over.is_some() {
                    self.problems
                        .push(MeasureProblem::WindowFunction(name.clone()));
                }
                if is_aggregate_name(&name) {
                    if self.depth > 0 {
                        self.problems.push(MeasureProblem::Nested(name.clone()));
                    }
                    if !SUPPORTED.contains(&name.as_str()) {
                        self.problems.push(MeasureProblem::Unsupported(name));
                    }
                    self.depth += 1;
                    self.aggregates += 1;
                }
            }
            Expr::Identifier(i) if self.depth == 0 => self
                .problems
                .push(MeasureProblem::BareColumn(i.value.clone())),
            Expr::CompoundIdentifier(parts) if self.depth == 0 => {
                self.problems.push(MeasureProblem::BareColumn(
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                ))
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr
            && is_aggregate_name(&function_name(f))
        {
            self.depth = self.depth.saturating_sub(1);
        }
        ControlFlow::Continue(())
    }
}

/// Every problem of a measure expression.
pub fn check_measure(expr: &Expr) -> Vec<MeasureProblem> {
    let mut c = Checker {
        depth: 0,
        aggregates: 0,
        problems: Vec::new(),
    };
    let _ = expr.visit(&mut c);
    if c.aggregates == 0 && c.problems.is_empty() {
        c.problems.push(MeasureProblem::NoAggregate);
    }
    c.problems
}

/// Whether an expression contains any aggregate call.
pub fn contains_aggregate(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            let name = function_name(f);
            if is_aggregate_name(&name) {
                found = Some(name);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

/// Aggregates whose state is every value of the group (quantiles and
/// medians): an engine keeps them in memory until the group is complete
/// and cannot spill them, so plans bound how many groups share one pass.
const HOLISTIC: &[&str] = &[
    "median",
    "quantile_cont",
    "quantile",
    "percentile",
    "percentile_cont",
];

/// Whether a measure uses a holistic aggregate ([`HOLISTIC`]).
pub fn is_holistic(expr: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e
            && HOLISTIC.contains(&function_name(f).as_str())
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

fn is_distinct(f: &Function) -> bool {
    matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct))
}

/// Additive per SPEC §7: `sum()` and non-distinct `count()` combined with
/// `+` and `−` only (parentheses allowed), without FILTER inside.
pub fn is_additive(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(e) => is_additive(e),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Plus | BinaryOperator::Minus,
            right,
        } => is_additive(left) && is_additive(right),
        Expr::Function(f) => {
            let name = function_name(f);
            (name == "sum" || name == "count") && !is_distinct(f) && f.over.is_none()
        }
        _ => false,
    }
}

/// Whether a measure is 0 over no rows: sums and counts (distinct or
/// approximate too) combined with `+` and `−`. Such measures give 0 for
/// an empty period (SPEC §7); anything else (a ratio of sums, an average)
/// gives NULL.
pub fn zero_when_empty(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(e) => zero_when_empty(e),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Plus | BinaryOperator::Minus,
            right,
        } => zero_when_empty(left) && zero_when_empty(right),
        Expr::Function(f) => {
            matches!(
                function_name(f).as_str(),
                "sum" | "count" | "approx_count_distinct"
            ) && f.over.is_none()
        }
        _ => false,
    }
}

/// The argument of a measure that is exactly `avg(x)` (or `mean(x)`).
pub fn avg_argument(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Nested(e) => avg_argument(e),
        Expr::Function(f)
            if matches!(function_name(f).as_str(), "avg" | "mean")
                && !is_distinct(f)
                && f.filter.is_none() =>
        {
            match &f.args {
                FunctionArguments::List(l) => match l.args.as_slice() {
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Some(e.clone()),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// The argument and the FILTER condition (if any) of a measure that is
/// exactly `count(DISTINCT x)`: such a count over a trailing range can be
/// computed from each value's occurrences without joining every row to
/// every range (see `sql::render`'s trailing distinct counts).
pub fn distinct_count_argument(expr: &Expr) -> Option<(Expr, Option<Expr>)> {
    match expr {
        Expr::Nested(e) => distinct_count_argument(e),
        Expr::Function(f)
            if function_name(f) == "count"
                && is_distinct(f)
                && f.over.is_none()
                && f.within_group.is_empty()
                && f.null_treatment.is_none() =>
        {
            match &f.args {
                FunctionArguments::List(l) if l.clauses.is_empty() => match l.args.as_slice() {
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => {
                        Some((e.clone(), f.filter.as_deref().cloned()))
                    }
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
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

    #[test]
    fn classifies_measures() {
        assert!(check_measure(&e("sum(amount) - sum(discount)")).is_empty());
        assert_eq!(
            check_measure(&e("amount")),
            vec![MeasureProblem::BareColumn("amount".into())]
        );
        assert_eq!(
            check_measure(&e("sum(a) + b")),
            vec![MeasureProblem::BareColumn("b".into())]
        );
        assert_eq!(
            check_measure(&e("sum(count(x))")),
            vec![MeasureProblem::Nested("count".into())]
        );
        assert_eq!(
            check_measure(&e("string_agg(x, ',')")),
            vec![MeasureProblem::Unsupported("string_agg".into())]
        );
        assert_eq!(
            check_measure(&e("1 + 2")),
            vec![MeasureProblem::NoAggregate]
        );
        assert!(is_additive(&e("sum(a) - count(*)")));
        assert!(!is_additive(&e("count(distinct a)")));
        assert!(!is_additive(&e("sum(a) * 2")));
        assert!(avg_argument(&e("avg(load_ms)")).is_some());
        assert!(is_holistic(&e("quantile_cont(load_ms, 0.9)")));
        assert!(is_holistic(&e("sum(a) / MEDIAN(b)")));
        assert!(!is_holistic(&e("count(distinct a) + stddev(b)")));
    }
}
