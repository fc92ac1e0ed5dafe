//! Driver attribution for `kpic explain` when the baseline is not the
//! previous period (kpi_drivers holds the previous-period split, computed
//! in SQL by the same rules): SPEC §7 "Drivers", over values read back.
//!
//! In: the [`Identity`], each metric's value in the period and the
//! baseline, the KPI's two values. Out: each identity metric's
//! contribution and the method used.

use std::collections::HashMap;

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

use crate::plan::Identity;

pub struct Split {
    pub contributions: HashMap<String, Option<f64>>,
    pub method: &'static str,
}

/// Splits K1 − K0 among the identity's metrics: by log changes for a
/// product/quotient with positive values and K1 ≠ K0, by exact Shapley
/// values otherwise (scaled to the KPI's change when the data breaks the
/// identity).
pub fn attribute(
    identity: &Identity,
    x1: &HashMap<String, Option<f64>>,
    x0: &HashMap<String, Option<f64>>,
    k1: Option<f64>,
    k0: Option<f64>,
) -> Split {
    let value = |m: &HashMap<String, Option<f64>>, name: &str| m.get(name).copied().flatten();
    let metrics = &identity.metrics;
    let log_form = identity.exponents.is_some();
    let (Some(k1), Some(k0)) = (k1, k0) else {
        return Split {
            contributions: metrics.iter().map(|m| (m.clone(), None)).collect(),
            method: if log_form { "log" } else { "shapley" },
        };
    };
    let change = k1 - k0;
    if let Some(exponents) = &identity.exponents {
        let positive = metrics.iter().all(|m| {
            value(x1, m).is_some_and(|v| v > 0.0) && value(x0, m).is_some_and(|v| v > 0.0)
        });
        if positive && k1 > 0.0 && k0 > 0.0 && k1 != k0 {
            let weights: Vec<f64> = metrics
                .iter()
                .zip(exponents)
                .map(|(m, e)| match (value(x1, m), value(x0, m)) {
                    (Some(a), Some(b)) => e * (a.ln() - b.ln()),
                    _ => 0.0,
                })
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 && total.is_finite() {
                return Split {
                    contributions: metrics
                        .iter()
                        .zip(&weights)
                        .map(|(m, w)| (m.clone(), Some(change * w / total)))
                        .collect(),
                    method: "log",
                };
            }
        }
    }
    Split {
        contributions: shapley(identity, x1, x0, change),
        method: "shapley",
    }
}

/// Exact Shapley values of the identity's change from the baseline values
/// to the period's.
fn shapley(
    identity: &Identity,
    x1: &HashMap<String, Option<f64>>,
    x0: &HashMap<String, Option<f64>>,
    kpi_change: f64,
) -> HashMap<String, Option<f64>> {
    let metrics = &identity.metrics;
    let n = metrics.len();
    let evaluate = |mask: usize| -> Option<f64> {
        let lookup = |name: &str| -> Option<f64> {
            let p = metrics.iter().position(|m| m == name)?;
            let source = if mask & (1 << p) != 0 { x1 } else { x0 };
            source.get(name).copied().flatten()
        };
        eval(&identity.expr, &lookup, 0)
    };
    let factorial = |m: usize| (1..=m).map(|v| v as f64).product::<f64>();
    let values: Vec<Option<f64>> = (0..(1usize << n)).map(evaluate).collect();
    let identity_change = match (values[(1 << n) - 1], values[0]) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let scale = match identity_change {
        Some(c) if c != 0.0 && (c - kpi_change).abs() > 1e-9 * c.abs() => kpi_change / c,
        _ => 1.0,
    };
    metrics
        .iter()
        .enumerate()
        .map(|(j, m)| {
            let mut total = Some(0.0);
            for mask in 0..(1usize << n) {
                if mask & (1 << j) != 0 {
                    continue;
                }
                let size = mask.count_ones() as usize;
                let weight = factorial(size) * factorial(n - size - 1) / factorial(n);
                total = match (total, values[mask | (1 << j)], values[mask]) {
                    (Some(t), Some(with), Some(without)) => Some(t + weight * (with - without)),
                    _ => None,
                };
            }
            (m.clone(), total.map(|t| t * scale))
        })
        .collect()
}

/// Evaluates arithmetic over metric names (NULL on division by 0).
pub fn eval(e: &Expr, lookup: &dyn Fn(&str) -> Option<f64>, depth: usize) -> Option<f64> {
    if depth > 256 {
        return None;
    }
    match e {
        Expr::Identifier(i) => lookup(&i.value),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => eval(inner, lookup, depth + 1),
        Expr::UnaryOp { op, expr } => {
            let v = eval(expr, lookup, depth + 1)?;
            match op {
                UnaryOperator::Minus => Some(-v),
                UnaryOperator::Plus => Some(v),
                _ => None,
            }
        }
        Expr::BinaryOp { left, op, right } => {
            let a = eval(left, lookup, depth + 1)?;
            let b = eval(right, lookup, depth + 1)?;
            match op {
                BinaryOperator::Plus => Some(a + b),
                BinaryOperator::Minus => Some(a - b),
                BinaryOperator::Multiply => Some(a * b),
                BinaryOperator::Divide => (b != 0.0).then(|| a / b),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(text: &str, metrics: &[&str], exponents: Option<Vec<f64>>) -> Identity {
        let expr = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .expect("test expression parses");
        Identity {
            expr,
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
            exponents,
        }
    }

    fn values(pairs: &[(&str, f64)]) -> HashMap<String, Option<f64>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(*v)))
            .collect()
    }

    #[test]
    fn log_split_of_a_product() {
        let i = identity("orders * aov", &["orders", "aov"], Some(vec![1.0, 1.0]));
        let s = attribute(
            &i,
            &values(&[("orders", 5.0), ("aov", 40.0)]),
            &values(&[("orders", 4.0), ("aov", 30.0)]),
            Some(200.0),
            Some(120.0),
        );
        assert_eq!(s.method, "log");
        let l = (200.0f64 / 120.0).ln();
        let orders = s.contributions["orders"].expect("orders");
        let aov = s.contributions["aov"].expect("aov");
        assert!((orders - 80.0 * (1.25f64).ln() / l).abs() < 1e-9);
        assert!((orders + aov - 80.0).abs() < 1e-9);
    }

    #[test]
    fn shapley_when_the_kpi_is_flat_or_a_sum() {
        // K1 = K0 = 200: orders (4 - 5) * (40 + 50) / 2, aov (50 - 40) * 9 / 2.
        let i = identity("orders * aov", &["orders", "aov"], Some(vec![1.0, 1.0]));
        let s = attribute(
            &i,
            &values(&[("orders", 4.0), ("aov", 50.0)]),
            &values(&[("orders", 5.0), ("aov", 40.0)]),
            Some(200.0),
            Some(200.0),
        );
        assert_eq!(s.method, "shapley");
        assert!((s.contributions["orders"].expect("orders") + 45.0).abs() < 1e-9);
        assert!((s.contributions["aov"].expect("aov") - 45.0).abs() < 1e-9);
        // A sum: each term's own change.
        let i = identity("a + b - c", &["a", "b", "c"], None);
        let s = attribute(
            &i,
            &values(&[("a", 10.0), ("b", 5.0), ("c", 1.0)]),
            &values(&[("a", 7.0), ("b", 6.0), ("c", 3.0)]),
            Some(14.0),
            Some(10.0),
        );
        assert!((s.contributions["a"].expect("a") - 3.0).abs() < 1e-9);
        assert!((s.contributions["b"].expect("b") + 1.0).abs() < 1e-9);
        assert!((s.contributions["c"].expect("c") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn no_baseline_no_contribution() {
        let i = identity("a * b", &["a", "b"], Some(vec![1.0, 1.0]));
        let s = attribute(&i, &values(&[("a", 1.0)]), &HashMap::new(), Some(1.0), None);
        assert_eq!(s.method, "log");
        assert!(s.contributions.values().all(Option::is_none));
    }
}
