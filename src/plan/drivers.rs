//! Driver attribution plan: which drivers a KPI's change is split among,
//! and how (SPEC §5 `kpi_drivers`, §7 Drivers).
//!
//! In: the KPI's [`KpiInfo`] (effective drivers, and the identity — its
//! `decomposition`, or its metric's own expression). Out: one
//! [`DriverPlan`] per driver and the [`Identity`], whose `exponents` are
//! known when it is a product/quotient of metrics (log split) and absent
//! otherwise (Shapley split).

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

use super::{DriverPlan, Identity};
use crate::semantic::KpiInfo;
use crate::semantic::expr::{MAX_IDENTITY_METRICS, identity_metrics};

pub(super) fn plan_drivers(info: &KpiInfo) -> (Vec<DriverPlan>, Option<Identity>) {
    let identity = info.identity.as_ref().and_then(identity);
    let drivers = info
        .drivers
        .iter()
        .map(|d| DriverPlan {
            metric: d.clone(),
            attributed: identity.as_ref().is_some_and(|i| i.metrics.contains(d)),
        })
        .collect();
    (drivers, identity)
}

/// The identity over `expr`, or `None` when it cannot be attributed:
/// `offset()` terms (the shifted values are not drivers of this period) or
/// too many metrics for an exact Shapley split (which the semantic stage
/// reported, KPI258).
fn identity(expr: &Expr) -> Option<Identity> {
    let metrics = identity_metrics(expr)?;
    if metrics.is_empty() || metrics.len() > MAX_IDENTITY_METRICS {
        return None;
    }
    let mut exponents = vec![0.0; metrics.len()];
    let exponents = product_exponents(expr, 1.0, &metrics, &mut exponents).then_some(exponents);
    Some(Identity {
        expr: expr.clone(),
        metrics,
        exponents,
    })
}

/// Adds each metric's exponent in `e` (a product/quotient of metrics and
/// positive constants) times `sign`; false when `e` is anything else.
fn product_exponents(e: &Expr, sign: f64, metrics: &[String], out: &mut [f64]) -> bool {
    match e {
        Expr::Nested(inner) => product_exponents(inner, sign, metrics, out),
        Expr::Identifier(i) => match metrics.iter().position(|m| *m == i.value) {
            Some(p) => {
                out[p] += sign;
                true
            }
            None => false,
        },
        // A positive constant factor does not change relative changes.
        Expr::Value(v) => {
            matches!(&v.value, Value::Number(n, _) if n.parse::<f64>().is_ok_and(|x| x > 0.0))
        }
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => product_exponents(expr, sign, metrics, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Multiply,
            right,
        } => {
            product_exponents(left, sign, metrics, out)
                && product_exponents(right, sign, metrics, out)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Divide,
            right,
        } => {
            product_exponents(left, sign, metrics, out)
                && product_exponents(right, -sign, metrics, out)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Expr {
        sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
            .try_with_sql(s)
            .and_then(|mut p| p.parse_expr())
            .expect("test expression parses")
    }

    #[test]
    fn products_and_quotients_have_exponents() {
        let i = identity(&parse("sessions * conversion_rate * aov")).expect("identity");
        assert_eq!(i.metrics, ["sessions", "conversion_rate", "aov"]);
        assert_eq!(i.exponents, Some(vec![1.0, 1.0, 1.0]));
        let i = identity(&parse("100 * (revenue / orders)")).expect("identity");
        assert_eq!(i.exponents, Some(vec![1.0, -1.0]));
        let i = identity(&parse("a / (b / c) * a")).expect("identity");
        assert_eq!(i.metrics, ["a", "b", "c"]);
        assert_eq!(i.exponents, Some(vec![2.0, -1.0, 1.0]));
    }

    #[test]
    fn sums_negations_and_negative_constants_need_shapley() {
        for e in ["a + b", "a * b - c", "-a * b", "-2 * a", "a * 0"] {
            let i = identity(&parse(e)).expect("identity");
            assert_eq!(i.exponents, None, "{e}");
        }
    }

    #[test]
    fn identities_over_the_limit_are_not_attributed() {
        let sum = |n: usize| {
            (1..=n)
                .map(|i| format!("m{i}"))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        assert!(identity(&parse(&sum(MAX_IDENTITY_METRICS))).is_some());
        // Repeated metrics count once.
        let repeated = format!("{} + m1", sum(MAX_IDENTITY_METRICS));
        assert!(identity(&parse(&repeated)).is_some());
        assert!(identity(&parse(&sum(MAX_IDENTITY_METRICS + 1))).is_none());
    }

    #[test]
    fn offsets_are_not_attributed() {
        assert!(identity(&parse("revenue / offset(revenue, 1) - 1")).is_none());
    }
}
