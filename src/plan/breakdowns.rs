//! Breakdown plan: a KPI's metric per member of each breakdown dimension
//! (SPEC §5 `kpi_breakdowns`, §7 Breakdowns).
//!
//! The rewrite: every aggregate the KPI's metric reads gets a *member*
//! twin (`<aggregate>__by`) with the same columns, grouped by period and,
//! one grouping set per dimension, by the dimension's members. The KPI's
//! formulas are then re-pointed at the twins, so a member's value, its
//! comparisons and its like-for-like variants come from the same SQL
//! stage as the KPI's own.
//!
//! In: a KPI, its filter context and formulas. Out: a [`BreakdownPlan`];
//! member aggregates are added to the builder.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::Expr;

use super::{AggColumn, AggNode, BreakdownPlan, BreakdownShape, Builder, Formula, MemberDim};
use crate::model::Kpi;

/// Suffix of a member aggregate's name.
pub const MEMBER_SUFFIX: &str = "__by";

/// Column counting a member's rows in filter context `ctx`.
fn presence_column(ctx: &str) -> String {
    format!("__kpic_rows__{ctx}")
}

impl Builder<'_> {
    pub(super) fn breakdown(
        &mut self,
        k: &Kpi,
        ctx: &str,
        formulas: &[(String, Formula)],
        ratio: Option<&(Formula, Formula)>,
    ) -> Option<BreakdownPlan> {
        if k.breakdowns.is_empty() {
            return None;
        }
        let needed = metric_closure(&k.metric.value, formulas);
        let shape = if ratio.is_some() {
            BreakdownShape::Ratio
        } else if additive(&k.metric.value, formulas) {
            BreakdownShape::Additive
        } else {
            BreakdownShape::Other
        };
        let mut member_formulas = Vec::new();
        for (name, f) in formulas {
            if needed.contains(name.as_str()) {
                member_formulas.push((name.clone(), self.member_formula(k, f)?));
            }
        }
        let member_ratio = match ratio {
            Some((n, d)) => Some((self.member_formula(k, n)?, self.member_formula(k, d)?)),
            None => None,
        };
        let mut presence = Vec::new();
        let mut member_aggs = Vec::new();
        let sources = self.model.kpis.get(&k.name.value)?.sources.clone();
        for source in &sources {
            let period = self.period_agg(source, k.grain);
            let agg = self.member_agg(k, &period)?;
            let src = self.model.project.source(source)?;
            let filter = match &k.filter {
                Some(f) => Some(self.resolve(src, f)?),
                None => None,
            };
            let column = presence_column(ctx);
            self.add_column(
                &agg,
                AggColumn {
                    name: column.clone(),
                    measure: crate::sql::build::count_star(),
                    filter,
                    like_for_like: true,
                    fill: Some(0.0),
                },
            );
            presence.push(Formula::Leaf {
                agg: agg.clone(),
                column: column.clone(),
                unfiltered: column,
                fill: Some(0.0),
                additive: true,
            });
            member_aggs.push(agg);
        }
        Some(BreakdownPlan {
            dims: k.breakdowns.iter().map(|b| b.value.clone()).collect(),
            shape,
            formulas: member_formulas,
            ratio: member_ratio,
            presence,
            member_aggs,
        })
    }

    /// `f` re-pointed at the member twin of its aggregate.
    fn member_formula(&mut self, k: &Kpi, f: &Formula) -> Option<Formula> {
        match f {
            Formula::Derived(e) => Some(Formula::Derived(e.clone())),
            Formula::Leaf {
                agg,
                column,
                fill,
                additive,
                ..
            } => {
                let twin = self.member_agg(k, agg)?;
                let def = self
                    .aggs
                    .get(agg)?
                    .columns
                    .iter()
                    .find(|c| c.name == *column)?
                    .clone();
                self.add_column(&twin, def);
                Some(Formula::Leaf {
                    agg: twin,
                    column: column.clone(),
                    unfiltered: column.clone(),
                    fill: *fill,
                    additive: *additive,
                })
            }
        }
    }

    /// The member twin of aggregate `agg`, grouped by (at least) `k`'s
    /// breakdowns. A rolling twin lists its members from the period twin of
    /// the same source, so that one is created too.
    fn member_agg(&mut self, k: &Kpi, agg: &str) -> Option<String> {
        let base = self.aggs.get(agg)?.clone();
        let source = base.scan.strip_prefix("scan_")?.to_string();
        let src = self.model.project.source(&source)?;
        let mut dims = Vec::new();
        for b in &k.breakdowns {
            dims.push(MemberDim {
                key: b.value.clone(),
                expr: self.resolve(src, &dimension_ref(b))?,
            });
        }
        if base.kind != super::AggKind::Period {
            let period = self.period_agg(&source, k.grain);
            self.member_agg(k, &period)?;
        }
        let name = format!("{agg}{MEMBER_SUFFIX}");
        let twin = self.aggs.entry(name.clone()).or_insert_with(|| AggNode {
            name: name.clone(),
            columns: Vec::new(),
            by: Vec::new(),
            ..base
        });
        for d in dims {
            if !twin.by.iter().any(|x| x.key == d.key) {
                twin.by.push(d);
            }
        }
        Some(name)
    }
}

/// A breakdown (`plan` or `customers.plan`, names checked by semantic) as
/// a reference to the dimension, built from the names rather than parsed
/// as SQL: a dimension named `null`, `true` or `current_date` is a valid
/// kpic name but SQL would read a value. (Found by the property tests,
/// `tests/it/properties.rs`.)
fn dimension_ref(b: &crate::model::Name) -> crate::model::SqlExpr {
    let part = |s: &str| sqlparser::ast::Ident::with_quote('"', s);
    let expr = match b.value.split_once('.') {
        Some((source, dim)) => Expr::CompoundIdentifier(vec![part(source), part(dim)]),
        None => Expr::Identifier(part(&b.value)),
    };
    crate::model::SqlExpr {
        expr,
        text: b.value.clone(),
        span: b.span,
    }
}

/// Metrics `metric` is computed from (itself included), through derived
/// expressions and their offsets.
fn metric_closure<'a>(metric: &str, formulas: &'a [(String, Formula)]) -> BTreeSet<&'a str> {
    let mut out: BTreeSet<&str> = BTreeSet::new();
    let mut stack = vec![metric.to_string()];
    while let Some(name) = stack.pop() {
        let Some((n, f)) = formulas.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        if !out.insert(n.as_str()) {
            continue;
        }
        if let Formula::Derived(e) = f {
            let _ = sqlparser::ast::visit_expressions(e, |x| {
                if let Expr::Identifier(i) = x {
                    stack.push(i.value.clone());
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    out
}

/// Whether `metric`'s members add up to it: `+`/`−` over additive
/// measures that are 0 over no rows.
fn additive(metric: &str, formulas: &[(String, Formula)]) -> bool {
    let mut leaves = Vec::new();
    signed_leaves(metric, 1.0, formulas, &mut leaves, 0).is_ok()
        && leaves.iter().all(|(f, _)| {
            matches!(
                f,
                Formula::Leaf {
                    additive: true,
                    fill: Some(0.0),
                    ..
                }
            )
        })
}

/// The leaves of an additive metric with their signs.
pub(super) fn signed_leaves<'a>(
    metric: &str,
    sign: f64,
    formulas: &'a [(String, Formula)],
    out: &mut Vec<(&'a Formula, f64)>,
    depth: usize,
) -> Result<(), String> {
    use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator};
    fn walk<'a>(
        e: &Expr,
        sign: f64,
        formulas: &'a [(String, Formula)],
        out: &mut Vec<(&'a Formula, f64)>,
        depth: usize,
    ) -> Result<(), String> {
        match e {
            Expr::Nested(inner) => walk(inner, sign, formulas, out, depth),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => walk(expr, -sign, formulas, out, depth),
            Expr::UnaryOp {
                op: UnaryOperator::Plus,
                expr,
            } => walk(expr, sign, formulas, out, depth),
            Expr::BinaryOp {
                left,
                op: op @ (BinaryOperator::Plus | BinaryOperator::Minus),
                right,
            } => {
                walk(left, sign, formulas, out, depth)?;
                let s = if *op == BinaryOperator::Minus {
                    -sign
                } else {
                    sign
                };
                walk(right, s, formulas, out, depth)
            }
            Expr::Identifier(i) => signed_leaves(&i.value, sign, formulas, out, depth + 1),
            other => Err(format!("`{other}` is not a sum of metrics")),
        }
    }
    // Metric definitions are acyclic (checked), but stay bounded anyway.
    if depth > 64 {
        return Err("metric expressions nest too deeply".into());
    }
    match formulas.iter().find(|(n, _)| n == metric) {
        Some((_, f @ Formula::Leaf { .. })) => {
            out.push((f, sign));
            Ok(())
        }
        Some((_, Formula::Derived(e))) => walk(e, sign, formulas, out, depth),
        None => Err(format!("internal: metric `{metric}` is not planned")),
    }
}
