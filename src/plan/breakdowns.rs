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

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator};

use super::{AggColumn, AggNode, BreakdownPlan, BreakdownShape, Builder, Formula, MemberDim};
use crate::model::Kpi;

/// Suffix of a member aggregate's name.
pub const MEMBER_SUFFIX: &str = "__by";

/// Column counting a member's rows in filter context `ctx`.
pub fn presence_column(ctx: &str) -> String {
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
            let parsed =
                crate::model::sql_field::parse_expr(&b.value, b.span, &self.model.sources).ok()?;
            dims.push(MemberDim {
                key: b.value.clone(),
                expr: self.resolve(src, &parsed)?,
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

/// Whether `metric`'s members add up to it: an additive measure, or `+`/`−`
/// over such metrics.
fn additive(metric: &str, formulas: &[(String, Formula)]) -> bool {
    fn expr(e: &Expr, formulas: &[(String, Formula)]) -> bool {
        match e {
            Expr::Nested(inner) => expr(inner, formulas),
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr: inner,
            } => expr(inner, formulas),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Plus | BinaryOperator::Minus,
                right,
            } => expr(left, formulas) && expr(right, formulas),
            Expr::Identifier(i) => additive(&i.value, formulas),
            _ => false,
        }
    }
    match formulas.iter().find(|(n, _)| n == metric) {
        Some((_, Formula::Leaf { additive, fill, .. })) => *additive && *fill == Some(0.0),
        Some((_, Formula::Derived(e))) => expr(e, formulas),
        None => false,
    }
}
