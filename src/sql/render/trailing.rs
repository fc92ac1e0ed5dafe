//! Trailing distinct counts: `count(DISTINCT x)` over a `window: N days`
//! (or `window: all`) range ending at each period's end, without joining
//! every row to every range that holds it.
//!
//! In: a rolling [`AggNode`] whose columns are all `count(DISTINCT x)`, and
//! its spine of range ends (`__kpic_ps`, `__kpic_end`, `__kpic_lfl_end`,
//! per member when the node has breakdown dimensions). Out: two named
//! steps, `<agg>__events` and `<agg>__cum`, and the query giving each spine
//! row its counts, with the same columns the general rolling aggregate
//! gives.
//!
//! Why: the general form joins each row to the ~N/7 weekly ranges (or N
//! daily ones) that contain it and hashes (range, x) pairs, so its cost
//! grows with rows × ranges, and once more per breakdown member. Here a
//! value is counted once per range through its last occurrence before the
//! range's end:
//!
//! 1. Occurrences: the distinct (x, day) pairs that pass the filters, each with
//!    `upper` = the earlier of `day + N` and x's next occurrence (no bound
//!    for `window: all`). x belongs to the range ending (exclusively) at E
//!    through occurrence `day` exactly when `day < E ≤ upper`: the day is in
//!    the range `[E − N, E)`, and no later occurrence is. `__events` keeps
//!    only, per day, the occurrences starting (+1) and ending (−1) there.
//! 2. `__cum`: over a daily spine, the running count of occurrences with
//!    `day ≤ t` minus those with `upper ≤ t`, i.e. the distinct values of
//!    the range ending at `t + 1`.
//! 3. Each range end E reads the running count of day `E − 1`: an equi-join.
//!
//! Everything is plain SQL (DISTINCT, LEAD, a running SUM with an explicit
//! frame, equi-joins), so every dialect runs it.

use sqlparser::ast::{Expr, Query};

use super::{DAY, MEMBER, MEMBER_DIM, Renderer, member_list, rel};
use crate::model::{Accumulation, Grain};
use crate::plan::AggNode;
use crate::sql::NamedQuery;
use crate::sql::build::*;

/// Columns of the occurrences, `__events` and `__cum` steps.
const COLUMN: &str = "__kpic_i";
const UPPER: &str = "__kpic_upper";
const VALUE: &str = "__kpic_x";
const NEXT: &str = "__kpic_next";
const T: &str = "__kpic_t";
const SIGN: &str = "__kpic_sign";

/// What the trailing form needs of one column: `x` and its row filter.
pub(super) struct DistinctColumn {
    x: Expr,
    filter: Option<Expr>,
}

/// The spine the counts are read at: a query with `__kpic_ps`,
/// `__kpic_end`, `__kpic_lfl_end` (and the member columns).
pub(super) struct Ends {
    pub query: Query,
    /// The first day any range can hold (a subquery).
    pub first: Expr,
    /// The member aggregate listing every (dimension, member), when the
    /// node has breakdown dimensions.
    pub member_agg: Option<String>,
    /// Whether the `__lfl` column of a column asking for it is wanted.
    pub like_for_like: bool,
}

/// The columns of `a`, when every one is a `count(DISTINCT x)` and the
/// range is trailing N days or all history; `None` otherwise.
pub(super) fn distinct_columns(a: &AggNode, acc: Accumulation) -> Option<Vec<DistinctColumn>> {
    if !matches!(acc, Accumulation::Window { .. } | Accumulation::All) {
        return None;
    }
    a.columns
        .iter()
        .map(|c| {
            let (x, own) = crate::semantic::aggregates::distinct_count_argument(&c.measure)?;
            let filter = match (own, c.filter.clone()) {
                (Some(o), Some(f)) => Some(and(o, f)),
                (o, f) => o.or(f),
            };
            Some(DistinctColumn { x, filter })
        })
        .collect()
}

impl Renderer<'_> {
    /// The steps and the per-end query of a trailing distinct count (see
    /// the module docs): `acc` is the range (N days, or all history).
    pub(super) fn trailing_distinct_counts(
        &self,
        a: &AggNode,
        acc: Accumulation,
        columns: &[DistinctColumn],
        ends: Ends,
    ) -> (Vec<NamedQuery>, Query) {
        let d = self.dialect;
        let members = !a.by.is_empty();
        let member_cols = |q: &str| -> Vec<Expr> {
            if members {
                vec![qcol(q, MEMBER_DIM), qcol(q, MEMBER)]
            } else {
                vec![]
            }
        };
        let member_items = |q: &str| -> Vec<sqlparser::ast::SelectItem> {
            if members {
                vec![
                    item(qcol(q, MEMBER_DIM), MEMBER_DIM),
                    item(qcol(q, MEMBER), MEMBER),
                ]
            } else {
                vec![]
            }
        };
        let same_member = |l: &str, r: &str| {
            and(
                eq(qcol(l, MEMBER_DIM), qcol(r, MEMBER_DIM)),
                d.null_safe_eq(qcol(l, MEMBER), qcol(r, MEMBER)),
            )
        };

        // 1. Occurrences: distinct (member, x, day), the next day of the
        //    same x (and member), and the last range end they count for.
        //    With breakdown dimensions, one part per dimension, each
        //    reading the scan once: partitions keyed by (member, x) are
        //    cheaper to sort than by (dimension, member, x) over all
        //    dimensions' rows at once.
        let dims: Vec<Option<&crate::plan::MemberDim>> = if members {
            a.by.iter().map(Some).collect()
        } else {
            vec![None]
        };
        let mut occ_parts = vec![];
        for (i, c) in columns.iter().enumerate() {
            for dim in &dims {
                let mut pairs_items = vec![];
                if let Some(dim) = dim {
                    pairs_items.push(item(d.member_text(dim.expr.clone()), MEMBER));
                }
                pairs_items.push(item(c.x.clone(), VALUE));
                pairs_items.push(item(col(DAY), DAY));
                let mut pairs = select(
                    pairs_items,
                    vec![from(table(object(&rel(&a.scan)), Some("s")), vec![])],
                );
                pairs.distinct = Some(sqlparser::ast::Distinct::Distinct);
                let present = Expr::IsNotNull(Box::new(c.x.clone()));
                pairs.selection = Some(match &c.filter {
                    Some(f) => and(paren(f.clone()), present),
                    None => present,
                });
                let mut partition = vec![];
                let mut with_next = vec![];
                if dim.is_some() {
                    partition.push(qcol("p", MEMBER));
                    with_next.push(item(qcol("p", MEMBER), MEMBER));
                }
                partition.push(qcol("p", VALUE));
                with_next.push(item(qcol("p", DAY), DAY));
                with_next.push(item(lead(qcol("p", DAY), partition, qcol("p", DAY)), NEXT));
                let with_next = select_query(select(
                    with_next,
                    vec![from(derived(select_query(pairs), "p"), vec![])],
                ));
                let upper = match acc {
                    Accumulation::Window { days } => {
                        let reach = d.add_days(qcol("o", DAY), int(days as i64));
                        case(
                            vec![(
                                and(
                                    Expr::IsNotNull(Box::new(qcol("o", NEXT))),
                                    lt(qcol("o", NEXT), reach.clone()),
                                ),
                                qcol("o", NEXT),
                            )],
                            Some(reach),
                        )
                    }
                    _ => qcol("o", NEXT),
                };
                let mut items = vec![item(int(i as i64), COLUMN)];
                if let Some(dim) = dim {
                    items.push(item(string(&dim.key), MEMBER_DIM));
                    items.push(item(qcol("o", MEMBER), MEMBER));
                }
                items.push(item(qcol("o", DAY), DAY));
                items.push(item(upper, UPPER));
                occ_parts.push(select_query(select(
                    items,
                    vec![from(derived(with_next, "o"), vec![])],
                )));
            }
        }
        // 2. Per day, the occurrences whose day it is (+1) minus those whose
        //    upper bound it is (−1): each occurrence row is read once and
        //    doubled by a two-row sign table, so the (large) occurrence rows
        //    are never stored, only these small per-day sums.
        let occurrences = union(occ_parts, false).expect("a distinct count has a column");
        let signs = union(
            [1, -1]
                .into_iter()
                .map(|s| select_query(select(vec![item(int(s), SIGN)], vec![])))
                .collect(),
            false,
        )
        .expect("two signs");
        let plus = eq(qcol("g", SIGN), int(1));
        let mut event_items = vec![item(
            case(vec![(plus, qcol("o", DAY))], Some(qcol("o", UPPER))),
            T,
        )];
        if members {
            event_items.extend([
                item(qcol("o", MEMBER_DIM), MEMBER_DIM),
                item(qcol("o", MEMBER), MEMBER),
            ]);
        }
        event_items.extend((0..columns.len()).map(|i| {
            item(
                case(
                    vec![(eq(qcol("o", COLUMN), int(i as i64)), qcol("g", SIGN))],
                    Some(int(0)),
                ),
                &format!("c{i}"),
            )
        }));
        let event_rows = select_query(select(
            event_items,
            vec![from(
                derived(occurrences, "o"),
                vec![inner_join(derived(signs, "g"), eq(int(1), int(1)))],
            )],
        ));
        let mut per_day_items = vec![item(col(T), T)];
        let mut per_day_keys = vec![col(T)];
        if members {
            per_day_items.extend([item(col(MEMBER_DIM), MEMBER_DIM), item(col(MEMBER), MEMBER)]);
            per_day_keys.extend([col(MEMBER_DIM), col(MEMBER)]);
        }
        per_day_items.extend(
            (0..columns.len())
                .map(|i| item(func("sum", vec![col(&format!("c{i}"))]), &format!("c{i}"))),
        );
        let mut per_day = select(per_day_items, vec![from(derived(event_rows, "e"), vec![])]);
        per_day.selection = Some(Expr::IsNotNull(Box::new(col(T))));
        per_day.group_by = sqlparser::ast::GroupByExpr::Expressions(per_day_keys, vec![]);
        let events_name = rel(&format!("{}__events", a.name));
        let events = NamedQuery {
            name: events_name.clone(),
            query: select_query(per_day),
            deps: self.deps(vec![rel(&a.scan)]),
            shared: true,
        };

        let days = d.date_spine(Grain::Day, ends.first.clone(), self.as_of(), T);
        let mut spine_joins = vec![];
        if let Some(m) = &ends.member_agg {
            spine_joins.push(inner_join(
                derived(member_list(std::slice::from_ref(m)), "m"),
                eq(int(1), int(1)),
            ));
        }
        let mut on = eq(qcol("e", T), qcol("t", T));
        if members {
            on = and(on, same_member("e", "m"));
        }
        spine_joins.push(left_join(table(object(&events_name), Some("e")), on));
        let mut cum_items = vec![item(qcol("t", T), T)];
        cum_items.extend(member_items("m"));
        for i in 0..columns.len() {
            cum_items.push(item(
                running_sum(
                    func("coalesce", vec![qcol("e", &format!("c{i}")), int(0)]),
                    member_cols("m"),
                    qcol("t", T),
                ),
                &format!("c{i}"),
            ));
        }
        let cum_name = rel(&format!("{}__cum", a.name));
        let mut cum_deps = vec![events_name.clone()];
        cum_deps.extend(ends.member_agg.iter().map(|m| rel(m)));
        let cum = NamedQuery {
            name: cum_name.clone(),
            query: select_query(select(
                cum_items,
                vec![from(derived(days, "t"), spine_joins)],
            )),
            deps: self.deps(cum_deps),
            shared: true,
        };

        // 3. Each range end reads the running counts of its last day.
        let read = |alias: &str, end: &str| {
            let mut on = eq(qcol(alias, T), d.add_days(qcol("sp", end), neg(int(1))));
            if members {
                on = and(on, same_member(alias, "sp"));
            }
            left_join(table(object(&cum_name), Some(alias)), on)
        };
        let mut joins = vec![read("ce", "__kpic_end")];
        let lfl = ends.like_for_like && a.columns.iter().any(|c| c.like_for_like);
        if lfl {
            joins.push(read("cl", "__kpic_lfl_end"));
        }
        let mut items = vec![item(qcol("sp", "__kpic_ps"), "period_start")];
        items.extend(member_items("sp"));
        for (i, c) in a.columns.iter().enumerate() {
            let count = |alias: &str| {
                cast(
                    func("coalesce", vec![qcol(alias, &format!("c{i}")), int(0)]),
                    d.double_type(),
                )
            };
            items.push(item(count("ce"), &c.name));
            if lfl && c.like_for_like {
                items.push(item(count("cl"), &format!("{}__lfl", c.name)));
            }
        }
        let query = select_query(select(items, vec![from(derived(ends.query, "sp"), joins)]));
        (vec![events, cum], query)
    }
}
