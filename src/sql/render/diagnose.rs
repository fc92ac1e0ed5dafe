//! Rendering of the diagnostics tables: member aggregates (grouping sets
//! per breakdown dimension), `kpi_breakdowns` and `kpi_drivers`.
//!
//! In: the KPI nodes' [`BreakdownPlan`]s, [`DriverPlan`]s and
//! [`Identity`]s. Out: named steps `kpic_kb_<kpi>_*` (the KPI's steps per
//! member, then member values and effects) and `kpic_k_<kpi>_drv` (driver
//! values in both periods), and each table's SELECT per KPI.
//!
//! Naming inside member rows: `__kpic_dim` is the dimension as the KPI
//! writes it, `__kpic_member` the member as text (NULL for a NULL member).
//! In scan rows a dimension's text is `__kpic_d<i>` (its index in the
//! aggregate's `by`).

use sqlparser::ast::{Expr, GroupByExpr, Query, SelectItem};

use super::{
    MEMBER, MEMBER_DIM, PRESENCE, PREVIOUS_DENOMINATOR, RATIO_DEN, RATIO_NUM, ROW_PERIOD, Renderer,
    rel, step, whole_or_like_for_like,
};
use crate::plan::{AggNode, BreakdownPlan, BreakdownShape, Identity, KpiNode};
use crate::sql::NamedQuery;
use crate::sql::build::*;

/// Column of scan rows holding dimension `i`'s member text.
fn dim_column(i: usize) -> String {
    format!("__kpic_d{i}")
}

/// Metrics of the driver step, in column order: the drivers, then the
/// identity's other metrics.
pub fn driver_step_metrics(k: &KpiNode) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let identity = k.identity.iter().flat_map(|i| i.metrics.iter());
    for m in k.drivers.iter().map(|d| &d.metric).chain(identity) {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

/// `GROUP BY GROUPING SETS ((key, d0), (key, d1), …)`: one grouping set per
/// breakdown dimension, in one pass over the rows.
/// With one dimension, a plain `GROUP BY key, d0`.
pub(super) fn grouping_sets(key: Expr, dims: usize) -> GroupByExpr {
    grouping_sets_with(key, dims, &[])
}

/// [`grouping_sets`] with `extra` keys in every set (after the dimension).
pub(super) fn grouping_sets_with(key: Expr, dims: usize, extra: &[Expr]) -> GroupByExpr {
    let set = |i: usize| {
        let mut keys = vec![key.clone(), col(&dim_column(i))];
        keys.extend(extra.iter().cloned());
        keys
    };
    if dims == 1 {
        return GroupByExpr::Expressions(set(0), vec![]);
    }
    GroupByExpr::Expressions(
        vec![Expr::GroupingSets((0..dims).map(set).collect())],
        vec![],
    )
}

/// `__kpic_dim` and `__kpic_member` of a grouping-sets row: the dimension
/// whose grouping set the row belongs to (`GROUPING(d) = 0`), and its member.
/// With one dimension (a plain `GROUP BY`), its key and column.
pub(super) fn member_items(by: &[crate::plan::MemberDim]) -> Vec<SelectItem> {
    if let [only] = by {
        return vec![
            item(string(&only.key), MEMBER_DIM),
            item(col(&dim_column(0)), MEMBER),
        ];
    }
    let grouped = |i: usize| eq(func("grouping", vec![col(&dim_column(i))]), int(0));
    let dim = case(
        by.iter()
            .enumerate()
            .map(|(i, d)| (grouped(i), string(&d.key)))
            .collect(),
        None,
    );
    let member = case(
        (0..by.len())
            .map(|i| (grouped(i), col(&dim_column(i))))
            .collect(),
        None,
    );
    vec![item(dim, MEMBER_DIM), item(member, MEMBER)]
}

/// Every (dimension, member) pair of the given member aggregates.
pub(super) fn member_list(aggs: &[String]) -> Query {
    let parts = aggs
        .iter()
        .map(|a| {
            let mut s = select(
                vec![
                    SelectItem::UnnamedExpr(col(MEMBER_DIM)),
                    SelectItem::UnnamedExpr(col(MEMBER)),
                ],
                vec![from(table(object(&rel(a)), None), vec![])],
            );
            s.distinct = Some(sqlparser::ast::Distinct::Distinct);
            select_query(s)
        })
        .collect();
    union(parts, true).unwrap_or_else(|| {
        let mut s = select(
            vec![
                item(cast(null(), varchar()), MEMBER_DIM),
                item(cast(null(), varchar()), MEMBER),
            ],
            vec![],
        );
        s.selection = Some(eq(int(1), int(0)));
        select_query(s)
    })
}

impl Renderer<'_> {
    /// The scan's rows with each breakdown dimension as text (and, when
    /// given, the row's period as `period_start`).
    pub(super) fn rows_with_members(
        &self,
        a: &AggNode,
        period: Option<Expr>,
        alias: &str,
    ) -> sqlparser::ast::TableFactor {
        let mut items = vec![wildcard_of("s")];
        if let Some(p) = period {
            items.push(item(p, ROW_PERIOD));
        }
        for (i, d) in a.by.iter().enumerate() {
            items.push(item(
                self.dialect.member_text(d.expr.clone()),
                &dim_column(i),
            ));
        }
        derived(
            select_query(select(
                items,
                vec![from(table(object(&rel(&a.scan)), Some("s")), vec![])],
            )),
            alias,
        )
    }

    /// The scan's rows once per breakdown dimension, with the dimension's
    /// key (`__kpic_dim`) and the row's member (`__kpic_member`).
    pub(super) fn rows_by_member(&self, a: &AggNode, alias: &str) -> sqlparser::ast::TableFactor {
        let scan = || table(object(&rel(&a.scan)), Some("s"));
        let parts =
            a.by.iter()
                .map(|d| {
                    select_query(select(
                        vec![
                            wildcard_of("s"),
                            item(string(&d.key), MEMBER_DIM),
                            item(self.dialect.member_text(d.expr.clone()), MEMBER),
                        ],
                        vec![from(scan(), vec![])],
                    ))
                })
                .collect();
        let rows = union(parts, false).unwrap_or_else(|| {
            let mut s = select(vec![wildcard_of("s")], vec![from(scan(), vec![])]);
            s.selection = Some(eq(int(1), int(0)));
            select_query(s)
        });
        derived(rows, alias)
    }

    /// The KPI's period spine crossed with the members of its breakdown
    /// dimensions.
    pub(super) fn member_spine(&self, spine: Query, m: &BreakdownPlan) -> Query {
        let mut members = select(
            vec![wildcard_of("l")],
            vec![from(derived(member_list(&m.member_aggs), "l"), vec![])],
        );
        members.selection = Some(Expr::InList {
            expr: Box::new(col(MEMBER_DIM)),
            list: m.dims.iter().map(|d| string(d)).collect(),
            negated: false,
        });
        select_query(select(
            vec![
                item(qcol("p", "period_start"), "period_start"),
                item(qcol("m", MEMBER_DIM), MEMBER_DIM),
                item(qcol("m", MEMBER), MEMBER),
            ],
            vec![from(
                derived(spine, "p"),
                vec![inner_join(
                    derived(select_query(members), "m"),
                    eq(int(1), int(1)),
                )],
            )],
        ))
    }

    /// After the member steps (`kpic_kb_<kpi>_cmp`): each member's values
    /// in the period and its baseline (`_vals`), then joined with the KPI's
    /// totals (`_eff`).
    pub(super) fn breakdown_steps(&self, k: &KpiNode, b: &BreakdownPlan) -> Vec<NamedQuery> {
        let cmp = format!("kpic_kb_{}_cmp", k.name);
        let pick = whole_or_like_for_like;
        let leaf = |variant: &str, name: &str| col(&format!("{variant}__{name}"));
        let member_value = |variant: &str| self.value(k, &k.metric, variant);
        let mut items = vec![
            item(col("period_start"), "period_start"),
            item(col(MEMBER_DIM), MEMBER_DIM),
            item(col(MEMBER), MEMBER),
            item(member_value("v"), "a1"),
            item(pick(member_value("pv"), member_value("pl")), "a0"),
        ];
        if b.ratio.is_some() {
            for (name, part) in [("n", RATIO_NUM), ("d", RATIO_DEN)] {
                items.push(item(leaf("v", part), &format!("{name}1")));
                items.push(item(
                    pick(leaf("pv", part), leaf("pl", part)),
                    &format!("{name}0"),
                ));
            }
        }
        let rows = |variant: &str| {
            (0..b.presence.len())
                .map(|i| leaf(variant, &format!("{PRESENCE}{i}")))
                .reduce(add)
                .unwrap_or_else(|| int(0))
        };
        items.push(item(rows("v"), "rows1"));
        items.push(item(pick(rows("pv"), rows("pl")), "rows0"));
        let vals = format!("kpic_kb_{}_vals", k.name);

        let kpi = |c: &str| qcol("t", c);
        let mut eff_items = vec![
            wildcard_of("m"),
            item(sub(kpi("actual"), kpi("previous")), "kpi_change"),
        ];
        if b.ratio.is_some() {
            let m = |c: &str| qcol("m", c);
            let raw1 = safe_div(m("n1"), m("d1"));
            let raw0 = safe_div(m("n0"), m("d0"));
            eff_items.extend([
                item(raw1.clone(), "r1_raw"),
                item(raw0.clone(), "r0_raw"),
                // A member without denominator in one period takes its
                // ratio from the other (SPEC §7).
                item(func("coalesce", vec![raw1.clone(), raw0.clone()]), "r1"),
                item(func("coalesce", vec![raw0, raw1]), "r0"),
                item(safe_div(m("d1"), kpi("denominator")), "w1"),
                item(safe_div(m("d0"), kpi(PREVIOUS_DENOMINATOR)), "w0"),
                item(kpi("previous"), "big_r0"),
            ]);
        }
        let mut eff = select(
            eff_items,
            vec![from(
                table(object(&vals), Some("m")),
                vec![left_join(
                    table(object(&step(&k.name, "vals")), Some("t")),
                    eq(qcol("m", "period_start"), qcol("t", "period_start")),
                )],
            )],
        );
        // Members present in the period or in its baseline.
        eff.selection = Some(Expr::Nested(Box::new(binop(
            gt(col("rows1"), int(0)),
            sqlparser::ast::BinaryOperator::Or,
            gt(col("rows0"), int(0)),
        ))));
        vec![
            NamedQuery {
                name: vals.clone(),
                query: select_query(select(items, vec![from(table(object(&cmp), None), vec![])])),
                deps: vec![cmp],
                shared: false,
            },
            NamedQuery {
                name: format!("kpic_kb_{}_eff", k.name),
                query: select_query(eff),
                deps: vec![vals, step(&k.name, "vals")],
                shared: false,
            },
        ]
    }

    /// kpi_breakdowns rows of one KPI.
    pub(super) fn breakdown_rows(&self, k: &KpiNode, b: &BreakdownPlan) -> Query {
        let d = self.dialect;
        let null_double = || cast(null(), double());
        let change = sub(col("a1"), col("a0"));
        let share = |c: Expr| safe_div(c, col("kpi_change"));
        let (actual, previous, change, contribution, mix, rate) = match b.shape {
            BreakdownShape::Additive => (
                col("a1"),
                col("a0"),
                change.clone(),
                change,
                null_double(),
                null_double(),
            ),
            BreakdownShape::Ratio => {
                // Both periods without denominator: the member weighs 0 in
                // both, whatever its (undefined) ratio.
                let weightless = and(eq(col("d0"), int(0)), eq(col("d1"), int(0)));
                let effect = |e: Expr| case(vec![(weightless.clone(), num(0.0))], Some(e));
                let mix = effect(mul(
                    paren(sub(col("w1"), col("w0"))),
                    paren(sub(col("r0"), col("big_r0"))),
                ));
                let rate = effect(mul(col("w1"), paren(sub(col("r1"), col("r0")))));
                (
                    col("r1_raw"),
                    col("r0_raw"),
                    sub(col("r1_raw"), col("r0_raw")),
                    add(mix.clone(), rate.clone()),
                    mix,
                    rate,
                )
            }
            BreakdownShape::Other => (
                col("a1"),
                col("a0"),
                change,
                null_double(),
                null_double(),
                null_double(),
            ),
        };
        let share = match b.shape {
            BreakdownShape::Other => null_double(),
            _ => share(contribution.clone()),
        };
        select_query(select(
            vec![
                item(string(&k.name), "kpi"),
                item(d.period_label(k.grain, col("period_start")), "period"),
                item(col("period_start"), "period_start"),
                item(cast(col(MEMBER_DIM), varchar()), "dimension"),
                item(cast(col(MEMBER), varchar()), "member"),
                item(cast(actual, double()), "actual"),
                item(cast(previous, double()), "previous"),
                item(cast(change, double()), "change"),
                item(cast(contribution, double()), "contribution"),
                item(cast(share, double()), "share_of_change"),
                item(cast(mix, double()), "mix_effect"),
                item(cast(rate, double()), "rate_effect"),
            ],
            vec![from(
                table(object(&format!("kpic_kb_{}_eff", k.name)), None),
                vec![],
            )],
        ))
    }

    /// `kpic_k_<kpi>_drv`: the KPI's value and every driver's and identity
    /// metric's value in the period (`k1`, `x1__m`), its baseline (`k0`,
    /// `x0__m`) and the same period last year (`ky`, `xy__m`; explain
    /// compares with it on request). Like for like in the incomplete period.
    pub(super) fn driver_steps(&self, k: &KpiNode) -> Vec<NamedQuery> {
        if k.drivers.is_empty() {
            return vec![];
        }
        let pick = whole_or_like_for_like;
        let variants = |m: &str| {
            [
                self.value(k, m, "v"),
                pick(self.value(k, m, "pv"), self.value(k, m, "pl")),
                pick(self.value(k, m, "yv"), self.value(k, m, "yl")),
            ]
        };
        let mut items = vec![item(col("period_start"), "period_start")];
        for (value, name) in variants(&k.metric).into_iter().zip(["k1", "k0", "ky"]) {
            items.push(item(value, name));
        }
        for m in driver_step_metrics(k) {
            for (value, prefix) in variants(&m).into_iter().zip(["x1", "x0", "xy"]) {
                items.push(item(value, &format!("{prefix}__{m}")));
            }
        }
        let cmp = step(&k.name, "cmp");
        let mut query = select_query(select(items, vec![from(table(object(&cmp), None), vec![])]));
        if let Some(identity) = &k.identity
            && k.drivers.iter().any(|d| d.attributed)
        {
            query = with_shapley_values(query, identity);
        }
        vec![NamedQuery {
            name: step(&k.name, "drv"),
            query,
            deps: vec![cmp],
            shared: false,
        }]
    }

    /// kpi_drivers rows of one KPI, one SELECT per driver.
    pub(super) fn driver_rows(&self, k: &KpiNode) -> Vec<Query> {
        let d = self.dialect;
        let k_change = sub(col("k1"), col("k0"));
        k.drivers
            .iter()
            .map(|driver| {
                let x1 = col(&format!("x1__{}", driver.metric));
                let x0 = col(&format!("x0__{}", driver.metric));
                let (contribution, method) = match (&k.identity, driver.attributed) {
                    (Some(identity), true) => self.attribution(identity, &driver.metric),
                    _ => (cast(null(), double()), string("none")),
                };
                select_query(select(
                    vec![
                        item(string(&k.name), "kpi"),
                        item(d.period_label(k.grain, col("period_start")), "period"),
                        item(col("period_start"), "period_start"),
                        item(string(&driver.metric), "driver"),
                        item(cast(x1.clone(), double()), "actual"),
                        item(cast(x0.clone(), double()), "previous"),
                        item(
                            cast(safe_div(sub(x1, x0.clone()), x0), double()),
                            "change_pct",
                        ),
                        item(cast(contribution.clone(), double()), "contribution"),
                        item(
                            cast(safe_div(contribution, paren(k_change.clone())), double()),
                            "share_of_change",
                        ),
                        item(method, "method"),
                    ],
                    vec![from(table(object(&step(&k.name, "drv")), None), vec![])],
                ))
            })
            .collect()
    }

    /// (contribution, method) of identity metric `metric` (SPEC §7): the
    /// log split for a product/quotient whose values are all positive and
    /// whose KPI moved; the exact Shapley split otherwise.
    fn attribution(&self, identity: &Identity, metric: &str) -> (Expr, Expr) {
        let d = self.dialect;
        let x = |period: u8, m: &str| col(&format!("x{period}__{m}"));
        let k_change = paren(sub(col("k1"), col("k0")));
        let shapley = self.shapley(identity, metric, k_change.clone());
        let Some(exponents) = &identity.exponents else {
            return (shapley, string("shapley"));
        };
        // ln(x1) − ln(x0) of each metric, NULL unless both are positive.
        let safe_ln = |e: Expr| d.ln(case(vec![(gt(e.clone(), int(0)), e)], None));
        let log_change = |m: &str| paren(sub(safe_ln(x(1, m)), safe_ln(x(0, m))));
        let weights: Vec<(Expr, &str)> = identity
            .metrics
            .iter()
            .zip(exponents)
            .filter(|(_, e)| **e != 0.0)
            .map(|(m, e)| (mul(num(*e), log_change(m)), m.as_str()))
            .collect();
        let total = weights
            .iter()
            .map(|(w, _)| w.clone())
            .reduce(add)
            .unwrap_or_else(|| num(0.0));
        let own = weights
            .iter()
            .find(|(_, m)| *m == metric)
            .map(|(w, _)| w.clone())
            .unwrap_or_else(|| num(0.0));
        // Every value positive, and the KPI moved: the log split is defined.
        let mut conditions: Vec<Expr> = identity
            .metrics
            .iter()
            .flat_map(|m| [gt(x(1, m), int(0)), gt(x(0, m), int(0))])
            .collect();
        conditions.extend([
            gt(col("k1"), int(0)),
            gt(col("k0"), int(0)),
            Expr::BinaryOp {
                left: Box::new(col("k1")),
                op: sqlparser::ast::BinaryOperator::NotEq,
                right: Box::new(col("k0")),
            },
        ]);
        let log_defined = and_all(conditions).unwrap_or_else(|| eq(int(1), int(1)));
        // Normalizing by the sum of weights (= ln(K1/K0) when the identity
        // holds) makes the contributions sum to the KPI's change even when
        // the data breaks the identity slightly.
        let log_split = mul(k_change, safe_div(own, paren(total)));
        let contribution = case(vec![(log_defined.clone(), log_split)], Some(shapley));
        let baseline_missing = Expr::IsNull(Box::new(col("k0")));
        let method = case(
            vec![
                (baseline_missing, string("log")),
                (log_defined, string("log")),
            ],
            Some(string("shapley")),
        );
        (contribution, method)
    }

    /// The exact Shapley value of `metric` in the identity's change from
    /// the baseline values (`x0__*`) to the period's (`x1__*`), scaled so
    /// that all metrics' values sum to the KPI's change when the data
    /// breaks the identity.
    fn shapley(&self, identity: &Identity, metric: &str, k_change: Expr) -> Expr {
        let n = identity.metrics.len();
        let Some(j) = identity.metrics.iter().position(|m| m == metric) else {
            return cast(null(), double());
        };
        let value = col(&shapley_column(j));
        let all = (1usize << n) - 1;
        let identity_change = paren(sub(col(&coalition_column(all)), col(&coalition_column(0))));
        // Scale only when the identity's change differs from the KPI's:
        // when it holds, the Shapley values already sum to the change.
        let holds = binop(
            func("abs", vec![sub(identity_change.clone(), k_change.clone())]),
            sqlparser::ast::BinaryOperator::LtEq,
            mul(num(1e-9), func("abs", vec![identity_change.clone()])),
        );
        case(
            vec![
                (eq(identity_change.clone(), num(0.0)), value.clone()),
                (holds, value.clone()),
            ],
            Some(mul(value, safe_div(k_change, identity_change))),
        )
    }
}

/// Column of the driver step holding the identity evaluated with the
/// metrics in `mask` at their period values and the others at their
/// baseline values.
fn coalition_column(mask: usize) -> String {
    format!("__kpic_s{mask}")
}

/// Column of the driver step holding the (unscaled) Shapley value of the
/// identity's metric `j`.
fn shapley_column(j: usize) -> String {
    format!("__kpic_shapley{j}")
}

/// The identity with the metrics in `mask` at their period values
/// (`x1__*`) and the others at their baseline values (`x0__*`).
fn coalition(identity: &Identity, mask: usize) -> Expr {
    let mut e = identity.expr.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        match x {
            Expr::Identifier(i) => {
                if let Some(p) = identity.metrics.iter().position(|m| *m == i.value) {
                    let period = if mask & (1 << p) != 0 { 1 } else { 0 };
                    *x = col(&format!("x{period}__{}", i.value));
                }
            }
            Expr::BinaryOp {
                left,
                op: sqlparser::ast::BinaryOperator::Divide,
                right,
            } => {
                *x = safe_div((**left).clone(), (**right).clone());
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    paren(e)
}

/// `driver_values` with, in two more layers, the identity evaluated once
/// per coalition of its metrics (`__kpic_s<mask>`, 2^n columns) and each
/// metric's exact Shapley value over them (`__kpic_shapley<j>`):
/// `Σ_S |S|! (n − |S| − 1)! / n! · (v(S ∪ {j}) − v(S))`. Written inline,
/// every driver's value would repeat the identity twice per coalition
/// (O(n² 2ⁿ) SQL: 8 drivers took DuckDB's optimizer 6 s and 850 MB); as
/// columns the identity is written 2ⁿ times and each value refers to them.
fn with_shapley_values(driver_values: Query, identity: &Identity) -> Query {
    let n = identity.metrics.len();
    let mut coalitions = vec![wildcard_of("v")];
    coalitions.extend(
        (0..1usize << n).map(|mask| item(coalition(identity, mask), &coalition_column(mask))),
    );
    let coalitions = select_query(select(
        coalitions,
        vec![from(derived(driver_values, "v"), vec![])],
    ));
    let factorial = |m: usize| (1..=m).map(|v| v as f64).product::<f64>();
    let mut values = vec![wildcard_of("c")];
    for j in 0..n {
        let mut terms = Vec::new();
        for mask in 0..(1usize << n) {
            if mask & (1 << j) != 0 {
                continue;
            }
            let size = mask.count_ones() as usize;
            let weight = factorial(size) * factorial(n - size - 1) / factorial(n);
            terms.push(mul(
                num(weight),
                paren(sub(
                    qcol("c", &coalition_column(mask | (1 << j))),
                    qcol("c", &coalition_column(mask)),
                )),
            ));
        }
        values.push(item(balanced_sum(terms), &shapley_column(j)));
    }
    select_query(select(values, vec![from(derived(coalitions, "c"), vec![])]))
}

/// `a + b + …` as a balanced tree: a chain of 512 terms nests 512 deep,
/// beyond what engines parse (DuckDB stops at 1,000 levels of expression).
fn balanced_sum(mut terms: Vec<Expr>) -> Expr {
    match terms.len() {
        0 => num(0.0),
        1 => terms.remove(0),
        n => {
            let right = terms.split_off(n / 2);
            add(paren(balanced_sum(terms)), paren(balanced_sum(right)))
        }
    }
}
