//! Distinct counts over trailing windows (`count(distinct x)` with
//! `window: N days` or `window: all`).
//!
//! kpic computes these through each value's last occurrence before a
//! range's end rather than joining every row to every range. Two checks on
//! generated data with NULL values, NULL members, a filter and an as_of in
//! the middle of a week and of a month:
//!
//! 1. independent: each period's `actual`, and the incomplete period's
//!    like-for-like `previous`, against a brute-force count in Rust;
//! 2. differential: every number of `kpi_results` and `kpi_breakdowns`
//!    against the same metric written so that kpic takes its general path
//!    (`count(distinct c) + count(*) - count(*)`: the same value, but not a
//!    bare distinct count), for `period_agg` last, first and average, and
//!    for a count sharing the 7-day distinct count's aggregate (which kpic
//!    splits into a trailing part and a daily-totals part).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate};

use crate::common::*;

/// (day, customer, channel, status) rows, deterministic.
fn rows() -> Vec<(NaiveDate, Option<u32>, Option<&'static str>, &'static str)> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let start = d("2023-12-20");
    (0..900)
        .map(|_| {
            let day = start + Duration::days(next(200) as i64);
            let customer = match next(20) {
                0 => None,
                _ => Some(next(45) as u32),
            };
            let channel = match next(7) {
                0 => None,
                1 | 2 => Some("app"),
                3 => Some("store"),
                _ => Some("web"),
            };
            let status = if next(5) == 0 { "void" } else { "ok" };
            (day, customer, channel, status)
        })
        .collect()
}

/// Metric `<kind>_<name>` for kind `a` (a bare distinct count) and `b` (the
/// same value through the general path), on sources `ev_a` and `ev_b` over
/// one file, so the two never share an aggregate.
fn models() -> String {
    let mut metrics = String::new();
    let mut kpis = String::new();
    let windows = [
        ("w7", "window: 7 days"),
        ("w30", "window: 30 days"),
        ("all", "window: all"),
        ("w10f", "window: 10 days, period_agg: first"),
        ("w5avg", "window: 5 days, period_agg: average"),
    ];
    for kind in ["a", "b"] {
        let measure = match kind {
            "a" => "count(distinct customer)",
            _ => "count(distinct customer) + count(*) - count(*)",
        };
        // A count over the same window shares the distinct count's
        // aggregate: kpic splits such a node in two.
        metrics.push_str(&format!(
            "  - {{name: {kind}_w7n, source: ev_{kind}, measure: count(*), window: 7 days}}\n"
        ));
        for grain in ["week", "month"] {
            kpis.push_str(&format!(
                "  - {{name: {kind}_w7n_{grain}, metric: {kind}_w7n, grain: {grain}, \
                 breakdowns: [channel]}}\n"
            ));
        }
        for (name, window) in windows {
            metrics.push_str(&format!(
                "  - {{name: {kind}_{name}, source: ev_{kind}, measure: \"{measure}\", \
                 filter: \"status = 'ok'\", {window}}}\n"
            ));
            for grain in ["week", "month"] {
                kpis.push_str(&format!(
                    "  - {{name: {kind}_{name}_{grain}, metric: {kind}_{name}, grain: {grain}, \
                     breakdowns: [channel]}}\n"
                ));
            }
        }
    }
    let source = |kind: &str| {
        format!(
            "  - name: ev_{kind}\n    path: data/ev.csv\n    time: day\n    dimensions: [channel]\n"
        )
    };
    format!(
        "sources:\n{}{}metrics:\n{metrics}kpis:\n{kpis}",
        source("a"),
        source("b")
    )
}

/// The project of both tests (also run on every engine: see
/// `execute::execution_projects`).
pub fn project() -> Project {
    let csv = csv_text(
        "day,customer,channel,status",
        rows().iter().map(|(day, c, ch, st)| {
            format!(
                "{},{},{},{st}",
                ymd(*day),
                c.map(|c| format!("c{c}")).unwrap_or_default(),
                ch.unwrap_or_default()
            )
        }),
    );
    Project::new(&[("models/m.yml", &models()), ("data/ev.csv", &csv)])
}

fn period_start(grain: &str, day: NaiveDate) -> NaiveDate {
    match grain {
        "week" => day - Duration::days(day.weekday().num_days_from_monday() as i64),
        _ => day.with_day(1).unwrap(),
    }
}

fn period_end(grain: &str, start: NaiveDate) -> NaiveDate {
    match grain {
        "week" => start + Duration::days(7),
        _ => (start + Duration::days(32)).with_day(1).unwrap(),
    }
}

/// Distinct customers of completed ("ok") rows on days in [from, to),
/// optionally of one channel.
fn distinct(from: NaiveDate, to: NaiveDate, channel: Option<Option<&str>>) -> f64 {
    let set: BTreeSet<u32> = rows()
        .into_iter()
        .filter(|r| r.0 >= from && r.0 < to && r.3 == "ok")
        .filter(|r| channel.is_none_or(|ch| r.2 == ch))
        .filter_map(|r| r.1)
        .collect();
    set.len() as f64
}

/// The range of `window` ending (exclusively) at `end`.
fn range_start(window: &str, end: NaiveDate) -> NaiveDate {
    match window {
        "w7" => end - Duration::days(7),
        "w30" => end - Duration::days(30),
        _ => d("1900-01-01"),
    }
}

/// Independent check of `actual` for every period, and of `previous` for
/// the incomplete current period (like-for-like: the previous period's
/// first `elapsed` days), for the `period_agg: last` windows.
#[test]
fn trailing_distinct_counts_match_a_brute_force_count() {
    let p = project();
    let as_of = d("2024-05-15"); // a Wednesday, mid-month
    let db = p.run(&ymd(as_of));
    let res = db.results();
    let limit = as_of + Duration::days(1);
    let first = rows().iter().map(|r| r.0).min().unwrap();
    for window in ["w7", "w30", "all"] {
        for grain in ["week", "month"] {
            let kpi = format!("a_{window}_{grain}");
            let rows = res.kpi(&kpi);
            let mut start = period_start(grain, first);
            let mut expected = BTreeMap::new();
            while start <= as_of {
                let end = period_end(grain, start).min(limit);
                expected.insert(ymd(start), distinct(range_start(window, end), end, None));
                start = period_end(grain, start);
            }
            assert_eq!(rows.len(), expected.len(), "{kpi}: periods");
            for row in &rows {
                let want = expected[&row.period_start];
                row.check("actual", Some(want));
            }
            // The incomplete period's previous: the previous period's range
            // ending after as many days as have elapsed now.
            let current = period_start(grain, as_of);
            let elapsed = (as_of - current).num_days() + 1;
            let previous_start = match grain {
                "week" => current - Duration::days(7),
                _ => period_start(grain, current - Duration::days(1)),
            };
            let lfl_end =
                (previous_start + Duration::days(elapsed)).min(period_end(grain, previous_start));
            let want = distinct(range_start(window, lfl_end), lfl_end, None);
            let row = rows.last().unwrap();
            assert_eq!(row.is_complete, Some(false), "{kpi}: the current period");
            row.check("previous", Some(want));
        }
    }
    // Per member, for one window: the breakdown rows' actual values.
    let conn = db.conn();
    let mut stmt = conn
        .prepare(
            "SELECT CAST(period_start AS VARCHAR), member, actual FROM kpi_breakdowns \
             WHERE kpi = 'a_w30_week' AND dimension = 'channel'",
        )
        .unwrap();
    let got: Vec<(String, Option<String>, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(got.len() > 40, "breakdown rows: {}", got.len());
    for (start, member, actual) in got {
        let start = d(&start);
        let end = period_end("week", start).min(limit);
        let want = distinct(end - Duration::days(30), end, Some(member.as_deref()));
        assert!(
            (actual - want).abs() < 1e-9,
            "a_w30_week {start} member {member:?}: {actual} vs {want}"
        );
    }
}

/// Every number of the bare distinct counts' rows equals that of the same
/// metric computed through the general path, at two as_of dates.
#[test]
fn trailing_distinct_counts_match_the_general_path() {
    let p = project();
    for as_of in ["2024-05-15", "2024-06-30"] {
        let db = p.run(as_of);
        let conn = db.conn();
        for (table, keys, values) in [
            (
                "kpi_results",
                "period_start",
                "actual, projected, previous, last_year, change, target",
            ),
            (
                "kpi_breakdowns",
                "period_start, dimension, member",
                "actual, previous, change, contribution, share_of_change",
            ),
        ] {
            let sql = format!(
                "SELECT kpi, CAST(({keys}) AS VARCHAR), CAST(({values}) AS VARCHAR) \
                 FROM {table} ORDER BY ALL"
            );
            let mut stmt = conn.prepare(&sql).unwrap();
            let rows: Vec<(String, String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let side = |kind: &str| -> BTreeMap<(String, String), String> {
                rows.iter()
                    .filter_map(|(k, key, v)| {
                        k.strip_prefix(kind)
                            .map(|rest| ((rest.to_string(), key.clone()), v.clone()))
                    })
                    .collect()
            };
            let (a, b) = (side("a_"), side("b_"));
            assert!(a.len() > 100, "{table} at {as_of}: {} rows", a.len());
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{table} at {as_of}: the same rows"
            );
            for (key, va) in &a {
                assert_eq!(va, &b[key], "{table} at {as_of}, {key:?} ({values})");
            }
        }
    }
}
