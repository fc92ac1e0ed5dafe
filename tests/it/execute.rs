//! Execution tests: `kpic run` on tiny projects, then the DuckDB output
//! tables are read back and compared with values computed here, from the
//! same rows, by plain Rust (or by hand, with the arithmetic in a comment).
//! Each test names the SPEC rule (§3, §5, §7) it holds kpic to.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------
// Fixture `monthly_orders`: month grain, filtered sum, every target form
// ---------------------------------------------------------------------------

/// (time, status, amount) rows of fixtures/projects/monthly_orders/data/orders.csv.
fn monthly_orders_rows(p: &Project) -> Vec<(NaiveDate, String, f64)> {
    let (header, rows) = read_simple_csv(&p.read("data/orders.csv"));
    assert_eq!(header, ["order_id", "ordered_at", "status", "amount"]);
    rows.into_iter()
        .map(|r| (d(&r[1]), r[2].clone(), r[3].parse::<f64>().unwrap()))
        .collect()
}

/// The oracle for the `revenue` metric (sum(amount) where status = 'completed').
fn monthly_orders_oracle(p: &Project, as_of: &str) -> Vec<Expect> {
    let rows = monthly_orders_rows(p);
    let first_raw = rows.iter().map(|r| r.0).min().unwrap();
    let facts: Vec<(NaiveDate, f64)> = rows
        .iter()
        .filter(|r| r.1 == "completed")
        .map(|r| (r.0, r.2))
        .collect();
    additive(Grain::Month, &facts, first_raw, d(as_of))
}

const MONTHLY_KPIS: [&str; 6] = [
    "revenue_abs",
    "revenue_vs_ly",
    "revenue_vs_prev",
    "revenue_values",
    "revenue_file",
    "revenue_file_kpi",
];

/// §7 "kpi_results starts at the period containing the earliest time value of
/// the KPI metric's source(s) (raw rows, no filters) and ends at the period
/// containing as_of, with no gaps"; "as_of is inclusive ... later rows are
/// ignored everywhere"; §3.2 metric `filter`; §7 empty periods give 0 for sum.
#[test]
fn month_sum_with_filter_gaps_and_period_range() {
    let p = Project::from_fixture("monthly_orders");
    let db = p.run("2024-03-31");
    let res = db.results();
    let oracle = monthly_orders_oracle(&p, "2024-03-31");

    for kpi in MONTHLY_KPIS {
        check_additive(&res, kpi, &oracle);
    }

    let periods = res.periods("revenue_abs");
    // The earliest raw row (2023-01-15) is a cancelled order, filtered out by
    // the metric, yet the range starts at its month; the range ends at the
    // month of as_of although rows exist in 2024-04 and 2024-05.
    assert_eq!(periods.first().map(String::as_str), Some("2023-01"));
    assert_eq!(periods.last().map(String::as_str), Some("2024-03"));
    assert_eq!(
        periods.len(),
        15,
        "2023-01..2024-03 without gaps: {periods:?}"
    );

    // 2023-01: only the cancelled order -> 0, and no comparison before it.
    res.get("revenue_abs", "2023-01")
        .check_bounds("2023-01-01", "2023-02-01")
        .check_complete(true)
        .check("actual", Some(0.0))
        .check("previous", None)
        .check("change", None)
        .check("last_year", None)
        .check("yoy_change_pct", None);
    // 2023-05 has no rows at all: a row with 0, previous = April's 200.
    res.get("revenue_abs", "2023-05")
        .check("actual", Some(0.0))
        .check("previous", Some(200.0))
        .check("change", Some(-200.0))
        .check("change_pct", Some(-1.0));
    // 2023-06: the cancelled 999 is excluded -> 60; previous 0 -> change_pct NULL.
    res.get("revenue_abs", "2023-06")
        .check("actual", Some(60.0))
        .check("previous", Some(0.0))
        .check("change", Some(60.0))
        .check("change_pct", None);
    // 2024-01: 130 (the refunded 40 is excluded); last year 2023-01 = 0 -> yoy NULL.
    res.get("revenue_abs", "2024-01")
        .check("actual", Some(130.0))
        .check("previous", Some(120.0))
        .check("last_year", Some(0.0))
        .check("yoy_change_pct", None);
    // 2024-02 (29 days): 140 + 20 + 10 = 170; last year 2023-02: 100 + 50 = 150.
    res.get("revenue_abs", "2024-02")
        .check_bounds("2024-02-01", "2024-03-01")
        .check("actual", Some(170.0))
        .check("last_year", Some(150.0))
        .check("yoy_change_pct", Some(20.0 / 150.0));
    // as_of 2024-03-31 is the month's last day: complete, projected = actual.
    // 150 + 25 + 35 + 45 + 55 = 310 (the 1000 on 2024-04-02 is after as_of).
    res.get("revenue_abs", "2024-03")
        .check_bounds("2024-03-01", "2024-04-01")
        .check_complete(true)
        .check("actual", Some(310.0))
        .check("projected", Some(310.0))
        .check("previous", Some(170.0))
        .check("change", Some(140.0))
        .check("change_pct", Some(140.0 / 170.0))
        // 2023-03: 120 + 80 + 30 = 230
        .check("last_year", Some(230.0))
        .check("yoy_change_pct", Some(80.0 / 230.0));
}

/// §7: "A period is complete iff period_end <= as_of + 1 day"; for the
/// incomplete period `projected` = value × period_days / elapsed_days and
/// previous/last_year cover the same number of elapsed days from the
/// comparison period's start.
#[test]
fn mid_period_as_of_projects_and_compares_like_for_like() {
    let p = Project::from_fixture("monthly_orders");
    let db = p.run("2024-03-15");
    let res = db.results();
    let oracle = monthly_orders_oracle(&p, "2024-03-15");
    check_additive(&res, "revenue_abs", &oracle);

    // elapsed_days = 15 of 31. Actual to date: 150 + 25 = 175 (the 2024-03-15
    // row counts: as_of is inclusive). projected = 175 * 31 / 15.
    // previous = 2024-02-01..2024-02-15: 140 + 20 = 160 (not the 10 of Feb 29).
    // last_year = 2023-03-01..2023-03-15: 120 (not the 80 and 30 later in March).
    res.get("revenue_abs", "2024-03")
        .check_bounds("2024-03-01", "2024-04-01")
        .check_complete(false)
        .check("actual", Some(175.0))
        .check("projected", Some(175.0 * 31.0 / 15.0))
        .check("previous", Some(160.0))
        .check("change", Some(15.0))
        .check("change_pct", Some(15.0 / 160.0))
        .check("last_year", Some(120.0))
        .check("yoy_change_pct", Some(55.0 / 120.0));
    // Earlier periods are complete and whole.
    res.get("revenue_abs", "2024-02")
        .check_complete(true)
        .check("actual", Some(170.0))
        .check("projected", Some(170.0));
}

/// §7: like-for-like comparison is "clipped to that period's end": as_of
/// 2024-03-30 gives elapsed_days = 30 > 29 days of February 2024.
#[test]
fn like_for_like_previous_is_clipped_to_a_shorter_period() {
    let p = Project::from_fixture("monthly_orders");
    let db = p.run("2024-03-30");
    let res = db.results();
    let oracle = monthly_orders_oracle(&p, "2024-03-30");
    check_additive(&res, "revenue_abs", &oracle);

    // actual to date: 150 + 25 + 35 + 45 = 255 (2024-03-31's 55 is after as_of).
    // previous: the whole of February (Feb 1 + 30 days is past Mar 1) = 170.
    // last_year: 2023-03-01..2023-03-30 = 120 + 80 = 200 (not 2023-03-31's 30).
    res.get("revenue_abs", "2024-03")
        .check_complete(false)
        .check("actual", Some(255.0))
        .check("projected", Some(255.0 * 31.0 / 30.0))
        .check("previous", Some(170.0))
        .check("last_year", Some(200.0));
}

/// §3.3 target forms and §7 "Relative targets use the whole comparison
/// period", "attainment = actual / target", "status is judged on projected",
/// `no_target` without a target.
#[test]
fn every_target_form() {
    let p = Project::from_fixture("monthly_orders");
    for as_of in ["2024-03-31", "2024-03-15"] {
        let db = p.run(as_of);
        let res = db.results();
        let oracle = monthly_orders_oracle(&p, as_of);

        // target(kpi, oracle row) per the YAML in models/kpis.yml and the CSVs.
        let target_of = |kpi: &str, e: &Expect| -> Option<f64> {
            match kpi {
                "revenue_abs" => Some(300.0),
                "revenue_vs_ly" => e.last_year_whole.map(|v| v * 1.10),
                "revenue_vs_prev" => e.previous_whole.map(|v| v * 0.80),
                "revenue_values" => match e.period.as_str() {
                    "2024-01" => Some(100.0),
                    "2024-02" => Some(200.0),
                    _ => None,
                },
                // data/targets.csv (period,target)
                "revenue_file" => match e.period.as_str() {
                    "2024-02" => Some(150.0),
                    "2024-03" => Some(400.0),
                    _ => None,
                },
                // data/targets_by_kpi.csv rows whose kpi is revenue_file_kpi
                "revenue_file_kpi" => match e.period.as_str() {
                    "2024-01" => Some(120.0),
                    "2024-03" => Some(250.0),
                    _ => None,
                },
                other => panic!("test bug: {other}"),
            }
        };
        for kpi in MONTHLY_KPIS {
            let rows = res.kpi(kpi);
            assert_eq!(rows.len(), oracle.len(), "{kpi} periods at as_of {as_of}");
            for (row, e) in rows.iter().zip(&oracle) {
                let target = target_of(kpi, e);
                row.check("target", target)
                    .check("attainment", div(Some(e.actual), target))
                    // default tolerance 10% everywhere but revenue_abs (10% explicit)
                    .check_status(status_of(Some(e.projected), target, true, 0.10));
            }
        }

        // Hand-checked cells.
        if as_of == "2024-03-31" {
            // 2023-03 = 230 -> 253; 2023-02 = 150 -> 165; 2023-01 = 0 -> 0.
            res.get("revenue_vs_ly", "2024-03")
                .check("target", Some(253.0))
                .check("attainment", Some(310.0 / 253.0))
                .check_status("on_track");
            res.get("revenue_vs_ly", "2024-02")
                .check("target", Some(165.0));
            // target 0: attainment NULL (division by 0), 130 >= 0 -> on_track.
            res.get("revenue_vs_ly", "2024-01")
                .check("target", Some(0.0))
                .check("attainment", None)
                .check_status("on_track");
            // No last-year period inside the data: no target.
            res.get("revenue_vs_ly", "2023-12")
                .check("target", None)
                .check("attainment", None)
                .check_status("no_target");
            // previous 2024-02 = 170 -> 136.
            res.get("revenue_vs_prev", "2024-03")
                .check("target", Some(136.0));
            res.get("revenue_vs_prev", "2023-01")
                .check("target", None)
                .check_status("no_target");
            // 170 < 200 * 0.9 = 180 -> off_track.
            res.get("revenue_values", "2024-02")
                .check("target", Some(200.0))
                .check("attainment", Some(0.85))
                .check_status("off_track");
            res.get("revenue_values", "2024-03")
                .check_status("no_target");
            // 310 < 400 * 0.9 = 360 -> off_track.
            res.get("revenue_file", "2024-03")
                .check("target", Some(400.0))
                .check_status("off_track");
            // The 999 row of targets_by_kpi.csv belongs to another KPI.
            res.get("revenue_file", "2024-01").check("target", None);
            res.get("revenue_file_kpi", "2024-01")
                .check("target", Some(120.0))
                .check_status("on_track");
            res.get("revenue_file_kpi", "2024-02")
                .check_status("no_target");
        } else {
            // Incomplete 2024-03 (elapsed 15 of 31): actual 175, projected
            // 175 * 31 / 15 = 361.67. The relative targets still use the
            // WHOLE comparison periods although previous (160) and last_year
            // (120) are like-for-like.
            res.get("revenue_vs_ly", "2024-03")
                .check("last_year", Some(120.0))
                .check("target", Some(253.0))
                .check("attainment", Some(175.0 / 253.0))
                .check_status("on_track");
            res.get("revenue_vs_prev", "2024-03")
                .check("previous", Some(160.0))
                .check("target", Some(136.0));
            // Judged on projected: 361.67 >= 300 -> on_track though attainment is 0.58.
            res.get("revenue_abs", "2024-03")
                .check("attainment", Some(175.0 / 300.0))
                .check_status("on_track");
            // 360 <= 361.67 < 400 -> at_risk.
            res.get("revenue_file", "2024-03").check_status("at_risk");
        }
    }
}

// ---------------------------------------------------------------------------
// Fixture `iso_weeks`
// ---------------------------------------------------------------------------

fn iso_weeks_oracle(p: &Project, as_of: &str) -> Vec<Expect> {
    let (_, rows) = read_simple_csv(&p.read("data/events.csv"));
    let facts: Vec<(NaiveDate, f64)> = rows
        .iter()
        .map(|r| (d(&r[1]), r[2].parse::<f64>().unwrap()))
        .collect();
    let first_raw = facts.iter().map(|f| f.0).min().unwrap();
    additive(Grain::Week, &facts, first_raw, d(as_of))
}

/// §3.3 week labels (ISO, Monday start) and §7 "last_year of week W is week W
/// of the previous ISO year (NULL if that year has no W53)".
#[test]
fn iso_weeks_across_a_year_boundary() {
    let p = Project::from_fixture("iso_weeks");
    let db = p.run("2021-01-10");
    let res = db.results();
    let oracle = iso_weeks_oracle(&p, "2021-01-10");
    check_additive(&res, "weekly_amount", &oracle);

    let periods = res.periods("weekly_amount");
    // 2019-W52, 2020-W01..2020-W53, 2021-W01.
    assert_eq!(periods.len(), 55, "{periods:?}");
    assert_eq!(periods[0], "2019-W52");
    assert_eq!(periods[1], "2020-W01");
    assert_eq!(periods[53], "2020-W53");
    assert_eq!(periods[54], "2021-W01");

    // 2020-W01 starts on Monday 2019-12-30.
    res.get("weekly_amount", "2020-W01")
        .check_bounds("2019-12-30", "2020-01-06")
        .check("actual", Some(6.0)) // 2 + 4
        .check("previous", Some(1.0))
        .check("last_year", None); // 2019-W01 is before the first period
    res.get("weekly_amount", "2020-W52")
        .check("actual", Some(16.0))
        .check("last_year", Some(1.0)); // 2019-W52
    // 2020-W53: Dec 28 .. Jan 3; 2019 has no W53 -> last_year NULL.
    res.get("weekly_amount", "2020-W53")
        .check_bounds("2020-12-28", "2021-01-04")
        .check("actual", Some(224.0)) // 32 + 64 + 128
        .check("previous", Some(16.0))
        .check("last_year", None)
        .check("yoy_change_pct", None);
    // 2021-W01 ends Sunday 2021-01-10 = as_of: complete. 256 + 512.
    res.get("weekly_amount", "2021-W01")
        .check_bounds("2021-01-04", "2021-01-11")
        .check_complete(true)
        .check("actual", Some(768.0))
        .check("projected", Some(768.0))
        .check("previous", Some(224.0))
        .check("last_year", Some(6.0)) // 2020-W01
        .check("target", Some(500.0))
        .check_status("on_track");
}

/// §7 like-for-like at week grain: as_of Wednesday 2021-01-06, elapsed 3 days.
#[test]
fn iso_week_incomplete_like_for_like() {
    let p = Project::from_fixture("iso_weeks");
    let db = p.run("2021-01-06");
    let res = db.results();
    let oracle = iso_weeks_oracle(&p, "2021-01-06");
    check_additive(&res, "weekly_amount", &oracle);
    // actual 256 (Tue); projected 256 * 7 / 3.
    // previous = 2020-W53 Mon..Wed (Dec 28..30): 32 (not Thu 64, Sun 128).
    // last_year = 2020-W01 Mon..Wed (2019-12-30..2020-01-01): 2 (not Fri's 4).
    // Status on projected 597.33 >= 500 -> on_track although actual is 256.
    res.get("weekly_amount", "2021-W01")
        .check_complete(false)
        .check("actual", Some(256.0))
        .check("projected", Some(256.0 * 7.0 / 3.0))
        .check("previous", Some(32.0))
        .check("last_year", Some(2.0))
        .check("attainment", Some(256.0 / 500.0))
        .check_status("on_track");
}

// ---------------------------------------------------------------------------
// Period labels per grain
// ---------------------------------------------------------------------------

const LABELS_MODELS: &str = "\
sources:
  - name: sales
    path: data/sales.csv
    time: sold_on
metrics:
  - name: total
    source: sales
    measure: sum(amount)
kpis:
  - {name: by_day, metric: total, grain: day}
  - {name: by_week, metric: total, grain: week}
  - {name: by_month, metric: total, grain: month}
  - {name: by_quarter, metric: total, grain: quarter}
  - {name: by_year, metric: total, grain: year}
";

fn labels_facts() -> [(NaiveDate, f64); 4] {
    [
        (d("2025-12-29"), 1.0), // Monday of 2026-W01
        (d("2026-01-27"), 2.0), // 2026-W05
        (d("2026-02-10"), 4.0),
        (d("2026-03-15"), 8.0), // Sunday, as_of
    ]
}

fn labels_project() -> Project {
    let csv = csv_text(
        "sold_on,amount",
        labels_facts()
            .iter()
            .map(|(t, v)| format!("{},{}", ymd(*t), v)),
    );
    Project::new(&[("models/m.yml", LABELS_MODELS), ("data/sales.csv", &csv)])
}

/// §3.3 period labels `2026-03-15`, `2026-W05`, `2026-03`, `2026-Q1`, `2026`,
/// with half-open bounds, at all five grains over the same rows.
#[test]
fn period_labels_and_bounds_per_grain() {
    let facts = labels_facts();
    let p = labels_project();
    let db = p.run("2026-03-15");
    let res = db.results();
    let as_of = d("2026-03-15");
    for (kpi, g) in [
        ("by_day", Grain::Day),
        ("by_week", Grain::Week),
        ("by_month", Grain::Month),
        ("by_quarter", Grain::Quarter),
        ("by_year", Grain::Year),
    ] {
        check_additive(&res, kpi, &additive(g, &facts, d("2025-12-29"), as_of));
        for r in res.kpi(kpi) {
            assert_eq!(
                r.grain.as_deref(),
                Some(g.name()),
                "kpi_results.grain of {kpi}"
            );
            assert_eq!(
                r.metric.as_deref(),
                Some("total"),
                "kpi_results.metric of {kpi}"
            );
        }
    }

    // day: 2025-12-29 .. 2026-03-15 = 3 + 31 + 28 + 15 days.
    assert_eq!(res.kpi("by_day").len(), 77);
    res.get("by_day", "2026-03-15")
        .check_bounds("2026-03-15", "2026-03-16")
        .check_complete(true)
        .check("actual", Some(8.0));
    // week: 2026-W01 starts 2025-12-29; 2026-03-15 is the Sunday of 2026-W11.
    let weeks = res.periods("by_week");
    assert_eq!(weeks.first().map(String::as_str), Some("2026-W01"));
    assert_eq!(weeks.last().map(String::as_str), Some("2026-W11"));
    assert_eq!(weeks.len(), 11);
    res.get("by_week", "2026-W01")
        .check_bounds("2025-12-29", "2026-01-05")
        .check("actual", Some(1.0));
    res.get("by_week", "2026-W05")
        .check_bounds("2026-01-26", "2026-02-02")
        .check("actual", Some(2.0));
    res.get("by_week", "2026-W11")
        .check_bounds("2026-03-09", "2026-03-16")
        .check_complete(true);
    // month
    assert_eq!(
        res.periods("by_month"),
        ["2025-12", "2026-01", "2026-02", "2026-03"]
    );
    res.get("by_month", "2026-03")
        .check_bounds("2026-03-01", "2026-04-01")
        .check_complete(false)
        .check("projected", Some(8.0 * 31.0 / 15.0));
    // quarter: elapsed 31 + 28 + 15 = 74 of 90 days.
    assert_eq!(res.periods("by_quarter"), ["2025-Q4", "2026-Q1"]);
    res.get("by_quarter", "2025-Q4")
        .check_bounds("2025-10-01", "2026-01-01");
    res.get("by_quarter", "2026-Q1")
        .check_bounds("2026-01-01", "2026-04-01")
        .check_complete(false)
        .check("actual", Some(14.0))
        .check("projected", Some(14.0 * 90.0 / 74.0));
    // year: elapsed 74 of 365 days.
    assert_eq!(res.periods("by_year"), ["2025", "2026"]);
    res.get("by_year", "2026")
        .check_bounds("2026-01-01", "2027-01-01")
        .check("projected", Some(14.0 * 365.0 / 74.0));
}

// ---------------------------------------------------------------------------
// Leap years
// ---------------------------------------------------------------------------

const LEAP_MODELS: &str = "\
sources:
  - name: sales
    path: data/sales.csv
    time: sold_on
metrics:
  - name: total
    source: sales
    measure: sum(amount)
kpis:
  - name: daily
    metric: total
    grain: day
  - name: monthly
    metric: total
    grain: month
  - name: monthly_vs_ly
    metric: total
    grain: month
    target: {change: +10%, vs: last_year}
";

fn leap_facts() -> Vec<(NaiveDate, f64)> {
    [
        ("2023-02-03", 4.0),
        ("2023-02-15", 8.0),
        ("2023-02-27", 1.0),
        ("2023-02-28", 2.0),
        ("2023-03-01", 3.0),
        ("2024-02-05", 7.0),
        ("2024-02-27", 10.0),
        ("2024-02-28", 20.0),
        ("2024-02-29", 30.0),
        ("2024-03-01", 40.0),
        ("2025-02-27", 100.0),
        ("2025-02-28", 200.0),
        ("2025-03-01", 300.0),
    ]
    .iter()
    .map(|(t, v)| (d(t), *v))
    .collect()
}

fn leap_project() -> Project {
    let csv = csv_text(
        "sold_on,amount",
        leap_facts().iter().map(|(t, v)| format!("{},{v}", ymd(*t))),
    );
    Project::new(&[("models/m.yml", LEAP_MODELS), ("data/sales.csv", &csv)])
}

/// §7 "last_year the same period one year earlier", calendar-correct, around
/// February 29 at day grain. (Which day is the last_year of 2024-02-29 itself
/// is not asserted.)
#[test]
fn leap_year_day_grain_comparisons() {
    let facts = leap_facts();
    let p = leap_project();
    let db = p.run("2025-03-01");
    let res = db.results();

    let oracle = additive(Grain::Day, &facts, d("2023-02-03"), d("2025-03-01"));
    let rows = res.kpi("daily");
    assert_eq!(
        rows.iter().map(|r| r.period.as_str()).collect::<Vec<_>>(),
        oracle.iter().map(|e| e.period.as_str()).collect::<Vec<_>>(),
        "daily periods 2023-02-03..2025-03-01"
    );
    for (row, e) in rows.iter().zip(&oracle) {
        row.check_bounds(&ymd(e.start), &ymd(e.end))
            .check_complete(true)
            .check("actual", Some(e.actual))
            .check("previous", e.previous);
        if e.period != "2024-02-29" {
            row.check("last_year", e.last_year);
        }
    }
    res.get("daily", "2024-02-28").check("last_year", Some(2.0));
    res.get("daily", "2024-02-29")
        .check("actual", Some(30.0))
        .check("previous", Some(20.0));
    res.get("daily", "2024-03-01")
        .check("previous", Some(30.0))
        .check("last_year", Some(3.0));
    res.get("daily", "2025-02-28")
        .check("last_year", Some(20.0))
        .check("yoy_change_pct", Some(180.0 / 20.0));
    res.get("daily", "2025-03-01")
        .check("last_year", Some(40.0));
    res.get("daily", "2023-02-03")
        .check("previous", None)
        .check("last_year", None);

    // Month grain at as_of 2025-03-01: elapsed 1 day of 31.
    check_additive(
        &res,
        "monthly",
        &additive(Grain::Month, &facts, d("2023-02-03"), d("2025-03-01")),
    );
    res.get("monthly", "2024-02")
        .check_bounds("2024-02-01", "2024-03-01")
        .check("actual", Some(67.0)) // 7 + 10 + 20 + 30
        .check("last_year", Some(15.0)); // 4 + 8 + 1 + 2
    res.get("monthly", "2025-03")
        .check_complete(false)
        .check("actual", Some(300.0))
        .check("projected", Some(300.0 * 31.0))
        .check("previous", Some(0.0)) // 2025-02-01 only
        .check("last_year", Some(40.0)); // 2024-03-01 only
    // Relative target on the whole 2024-03 (40): 44.
    res.get("monthly_vs_ly", "2025-03")
        .check("target", Some(44.0))
        .check("attainment", Some(300.0 / 44.0))
        .check_status("on_track");
    res.get("monthly_vs_ly", "2025-02")
        .check("target", Some(67.0 * 1.1)) // whole 2024-02
        .check_status("on_track"); // 300 >= 73.7
}

/// February 2024 has 29 days: as_of 2024-02-10 projects 7 * 29 / 10.
/// Also `--select`: only the selected KPI is computed, and the tables are
/// replaced by the new run's.
#[test]
fn leap_february_projection_and_select() {
    let facts = leap_facts();
    let p = leap_project();
    let db = p.run_select("2024-02-10", &["monthly"]);
    let res = db.results();
    assert_eq!(
        res.kpis(),
        ["monthly"],
        "--select monthly computes only that KPI"
    );
    check_additive(
        &res,
        "monthly",
        &additive(Grain::Month, &facts, d("2023-02-03"), d("2024-02-10")),
    );
    res.get("monthly", "2024-02")
        .check_bounds("2024-02-01", "2024-03-01")
        .check_complete(false)
        .check("actual", Some(7.0))
        .check("projected", Some(7.0 * 29.0 / 10.0))
        .check("previous", Some(0.0)) // 2024-01-01..10: nothing
        .check("last_year", Some(4.0)); // 2023-02-01..10: only the 4
    assert_eq!(
        res.periods("monthly").last().map(String::as_str),
        Some("2024-02")
    );
}

// ---------------------------------------------------------------------------
// Derived metrics, ratios, averages, non-additive metrics
// ---------------------------------------------------------------------------

const DERIVED_MODELS: &str = "\
sources:
  - name: orders
    path: data/orders.csv
    time: ordered_at
  - name: sessions
    path: data/sessions.csv
    time: started_at

metrics:
  - name: revenue
    source: orders
    measure: sum(amount)
  - name: orders
    source: orders
    measure: count(*)
  - name: customers
    source: orders
    measure: count(distinct customer)
  - name: avg_amount
    source: orders
    measure: avg(amount)
  - name: sessions
    source: sessions
    measure: count(*)
  - name: aov
    expr: revenue / orders
  - name: conversion
    expr: orders / sessions
  - name: revenue_per_customer
    expr: revenue / customers

kpis:
  - {name: revenue_kpi, metric: revenue, grain: month}
  - {name: aov_kpi, metric: aov, grain: month}
  - {name: conversion_kpi, metric: conversion, grain: month}
  - {name: rpc_kpi, metric: revenue_per_customer, grain: month}
  - {name: avg_kpi, metric: avg_amount, grain: month}
  - {name: customers_kpi, metric: customers, grain: month}
";

/// (ordered_at, customer, amount) rows of the derived-metrics project; the
/// empty amount is NULL.
const DERIVED_ORDERS: [(&str, &str, Option<f64>); 10] = [
    ("2024-01-05", "A", Some(10.0)),
    ("2024-01-15", "B", Some(20.0)),
    ("2024-01-25", "A", Some(30.0)),
    ("2024-03-03", "B", Some(40.0)),
    ("2024-03-18", "C", Some(50.0)),
    ("2024-03-20", "D", None),
    ("2024-04-02", "A", Some(60.0)),
    ("2024-04-09", "A", Some(5.0)),
    ("2024-04-15", "C", Some(1000.0)), // after as_of
    ("2024-04-30", "E", Some(7.0)),    // after as_of
];

/// started_at of the derived-metrics project's sessions.
const DERIVED_SESSIONS: [&str; 15] = [
    "2023-12-05",
    "2023-12-12",
    "2023-12-28",
    "2024-01-02",
    "2024-01-09",
    "2024-01-16",
    "2024-01-30",
    "2024-02-03",
    "2024-02-20",
    "2024-04-01",
    "2024-04-03",
    "2024-04-05",
    "2024-04-08",
    "2024-04-10",
    "2024-04-20",
];

fn derived_project() -> Project {
    let orders_csv = csv_text(
        "order_id,ordered_at,customer,amount",
        DERIVED_ORDERS.iter().enumerate().map(|(i, (t, c, a))| {
            format!(
                "{},{t},{c},{}",
                i + 1,
                a.map(|v| v.to_string()).unwrap_or_default()
            )
        }),
    );
    let sessions_csv = csv_text(
        "session_id,started_at",
        DERIVED_SESSIONS
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{},{t}", i + 1)),
    );
    Project::new(&[
        ("models/m.yml", DERIVED_MODELS),
        ("data/orders.csv", &orders_csv),
        ("data/sessions.csv", &sessions_csv),
    ])
}

/// §3.2 derived metrics (division NULL on 0), §7 projection of derived
/// metrics (expression over the inputs' projections) and of non-additive
/// metrics (value to date), §5 numerator/denominator of ratio and avg KPIs,
/// §7 kpi_metrics (every metric a KPI uses, unfiltered, values to date).
#[test]
fn derived_ratio_avg_and_non_additive_metrics() {
    let orders = DERIVED_ORDERS;
    let sessions = DERIVED_SESSIONS;
    let p = derived_project();
    let as_of = d("2024-04-10");
    let db = p.run("2024-04-10");
    let res = db.results();

    // Plain-Rust aggregates over [from, to) (and <= as_of).
    let in_range = |t: &str, from: NaiveDate, to: NaiveDate| {
        let t = d(t);
        t >= from && t < to && t <= as_of
    };
    let revenue = |f, t| -> f64 {
        orders
            .iter()
            .filter(|o| in_range(o.0, f, t))
            .filter_map(|o| o.2)
            .sum()
    };
    let n_orders = |f, t| orders.iter().filter(|o| in_range(o.0, f, t)).count() as f64;
    let n_amounts = |f, t| {
        orders
            .iter()
            .filter(|o| in_range(o.0, f, t) && o.2.is_some())
            .count() as f64
    };
    let n_customers = |f, t| {
        let mut c: Vec<&str> = orders
            .iter()
            .filter(|o| in_range(o.0, f, t))
            .map(|o| o.1)
            .collect();
        c.sort();
        c.dedup();
        c.len() as f64
    };
    let n_sessions = |f, t| sessions.iter().filter(|s| in_range(s, f, t)).count() as f64;

    // Month windows: (label, start, end-or-as_of+1, complete, scale for projection)
    let months: Vec<(String, NaiveDate, NaiveDate, bool, f64)> =
        period_starts(Grain::Month, d("2023-12-05"), as_of)
            .into_iter()
            .map(|s| {
                let e = end_of(Grain::Month, s);
                let lim = as_of + Duration::days(1);
                let complete = e <= lim;
                let stop = if complete { e } else { lim };
                let scale = (e - s).num_days() as f64 / (stop - s).num_days() as f64;
                (label_of(Grain::Month, s), s, stop, complete, scale)
            })
            .collect();
    assert_eq!(months.len(), 5); // 2023-12 .. 2024-04

    // aov = revenue / orders: range starts 2024-01 (orders' earliest row).
    assert_eq!(
        res.periods("aov_kpi"),
        ["2024-01", "2024-02", "2024-03", "2024-04"]
    );
    for (label, s, e, complete, scale) in &months[1..] {
        let (rv, n) = (revenue(*s, *e), n_orders(*s, *e));
        let row = res.get("aov_kpi", label);
        row.check_complete(*complete)
            .check("actual", div(Some(rv), Some(n)))
            .check("projected", div(Some(rv * scale), Some(n * scale)))
            .check("numerator", Some(rv))
            .check("denominator", Some(n));
    }
    res.get("aov_kpi", "2024-01").check("actual", Some(20.0)); // 60 / 3
    res.get("aov_kpi", "2024-02").check("actual", None); // 0 / 0
    res.get("aov_kpi", "2024-03")
        .check("actual", Some(30.0)) // 90 / 3 orders (one has a NULL amount)
        .check("previous", None)
        .check("change", None);
    // April to date: 65 / 2; projected (65*3)/(2*3) = 32.5, not 32.5*3.
    // previous like-for-like: 2024-03-01..10 = 40 / 1.
    res.get("aov_kpi", "2024-04")
        .check_complete(false)
        .check("actual", Some(32.5))
        .check("projected", Some(32.5))
        .check("previous", Some(40.0))
        .check("change", Some(-7.5))
        .check("numerator", Some(65.0))
        .check("denominator", Some(2.0));

    // conversion = orders / sessions: range from the earlier of both sources.
    assert_eq!(
        res.periods("conversion_kpi"),
        ["2023-12", "2024-01", "2024-02", "2024-03", "2024-04"]
    );
    for (label, s, e, _, _) in &months {
        let (n, ss) = (n_orders(*s, *e), n_sessions(*s, *e));
        res.get("conversion_kpi", label)
            .check("actual", div(Some(n), Some(ss)))
            .check("numerator", Some(n))
            .check("denominator", Some(ss));
    }
    res.get("conversion_kpi", "2023-12")
        .check("actual", Some(0.0)); // 0 / 3
    res.get("conversion_kpi", "2024-01")
        .check("actual", Some(0.75)); // 3 / 4
    res.get("conversion_kpi", "2024-03").check("actual", None); // 3 / 0
    res.get("conversion_kpi", "2024-04")
        .check("actual", Some(0.4)) // 2 / 5
        .check("projected", Some(0.4))
        .check("previous", None); // 2024-03-01..10: 1 / 0

    // revenue / count(distinct): projected = (65 * 30 / 10) / 1 = 195.
    res.get("rpc_kpi", "2024-01").check("actual", Some(30.0)); // 60 / 2
    res.get("rpc_kpi", "2024-03").check("actual", Some(30.0)); // 90 / 3 (B, C, D)
    res.get("rpc_kpi", "2024-04")
        .check("actual", Some(65.0))
        .check("projected", Some(195.0));
    res.get("revenue_kpi", "2024-04")
        .check("actual", Some(65.0))
        .check("projected", Some(195.0));

    // avg(x) = sum(x) / count(x): NULL amounts count in neither.
    for (label, s, e, _, _) in &months[1..] {
        let (sm, n) = (revenue(*s, *e), n_amounts(*s, *e));
        let row = res.get("avg_kpi", label);
        row.check("actual", div(Some(sm), Some(n)));
        if n > 0.0 {
            row.check("numerator", Some(sm))
                .check("denominator", Some(n));
        }
    }
    res.get("avg_kpi", "2024-03")
        .check("actual", Some(45.0))
        .check("numerator", Some(90.0))
        .check("denominator", Some(2.0));
    res.get("avg_kpi", "2024-02").check("actual", None);
    // Not additive: projected = value to date.
    res.get("avg_kpi", "2024-04")
        .check("actual", Some(32.5))
        .check("projected", Some(32.5));

    // count(distinct): not additive, projected = value to date.
    for (label, s, e, _, _) in [&months[1], &months[3], &months[4]] {
        res.get("customers_kpi", label)
            .check("actual", Some(n_customers(*s, *e)));
    }
    res.get("customers_kpi", "2024-04")
        .check("actual", Some(1.0))
        .check("projected", Some(1.0))
        .check("previous", Some(1.0)); // 2024-03-01..10: B

    // kpi_metrics: KPI metrics and their inputs at month grain, values to date.
    let m = db.metrics();
    for (label, s, e, _, _) in &months {
        check_metric(&m, "orders", "month", label, Some(n_orders(*s, *e)));
        check_metric(&m, "sessions", "month", label, Some(n_sessions(*s, *e)));
        check_metric(
            &m,
            "conversion",
            "month",
            label,
            div(Some(n_orders(*s, *e)), Some(n_sessions(*s, *e))),
        );
    }
    for (label, s, e, _, _) in &months[1..] {
        check_metric(&m, "revenue", "month", label, Some(revenue(*s, *e)));
        check_metric(
            &m,
            "aov",
            "month",
            label,
            div(Some(revenue(*s, *e)), Some(n_orders(*s, *e))),
        );
        if label != "2024-02" {
            // (an empty period's count(distinct) is not asserted: SPEC §3.2
            // says 0 for count/sum and NULL otherwise)
            check_metric(&m, "customers", "month", label, Some(n_customers(*s, *e)));
        }
    }
    let apr = metric_row(&m, "orders", "month", "2024-04");
    assert_eq!(
        (apr.period_start.as_str(), apr.period_end.as_str()),
        ("2024-04-01", "2024-05-01")
    );
}

// ---------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------

const STATUS_MODELS: &str = "\
sources:
  - name: s
    path: data/s.csv
    time: booked_on
metrics:
  - name: total
    source: s
    measure: sum(amount)
kpis:
  - name: hi
    metric: total
    grain: month
    target: 100
    tolerance: 10%
  - name: hi_decimal
    metric: total
    grain: month
    target: 100
    tolerance: 0.1
  - name: hi_tight
    metric: total
    grain: month
    target: 100
    tolerance: 1%
  - name: hi_default
    metric: total
    grain: month
    direction: higher_is_better
    target: 105
  - name: lo
    metric: total
    grain: month
    direction: lower_is_better
    target: 96
    tolerance: 0.1
  - name: lo_default
    metric: total
    grain: month
    direction: lower_is_better
    target: 90
  - name: untargeted
    metric: total
    grain: month
";

/// (booked_on, amount) rows of the status project. Month totals: Jan 100,
/// Feb 95, Mar 80, Apr 55 to date (as_of 2024-04-15, elapsed 15 of 30 days
/// -> projected 110). The 1000 is after as_of.
const STATUS_ROWS: [(&str, f64); 7] = [
    ("2024-01-10", 60.0),
    ("2024-01-20", 40.0),
    ("2024-02-15", 95.0),
    ("2024-03-01", 30.0),
    ("2024-03-31", 50.0),
    ("2024-04-15", 55.0),
    ("2024-04-16", 1000.0),
];

fn status_project() -> Project {
    let csv = csv_text(
        "booked_on,amount",
        STATUS_ROWS.iter().map(|(t, v)| format!("{t},{v}")),
    );
    Project::new(&[("models/m.yml", STATUS_MODELS), ("data/s.csv", &csv)])
}

/// §3.3 status in both directions with every status, tolerance as `10%`,
/// `0.1` and the 10% default; §7 status of the incomplete period judged on
/// `projected` while `attainment` = actual / target.
#[test]
fn status_rules_both_directions() {
    // Month totals: Jan 100, Feb 95, Mar 80, Apr 55 to date (STATUS_ROWS).
    let p = status_project();
    let db = p.run("2024-04-15");
    let res = db.results();

    let months = ["2024-01", "2024-02", "2024-03", "2024-04"];
    let actual = [100.0, 95.0, 80.0, 55.0];
    let projected = [100.0, 95.0, 80.0, 110.0];
    let expected: [(&str, Option<f64>, [&str; 4]); 7] = [
        // 100 >= 100 | 95 >= 90 | 80 < 90 | 110 >= 100
        (
            "hi",
            Some(100.0),
            ["on_track", "at_risk", "off_track", "on_track"],
        ),
        (
            "hi_decimal",
            Some(100.0),
            ["on_track", "at_risk", "off_track", "on_track"],
        ),
        // band 99: 95 < 99
        (
            "hi_tight",
            Some(100.0),
            ["on_track", "off_track", "off_track", "on_track"],
        ),
        // band 94.5: 100 and 95 at risk
        (
            "hi_default",
            Some(105.0),
            ["at_risk", "at_risk", "off_track", "on_track"],
        ),
        // band 105.6: 100 at risk, 95 and 80 on track, projected 110 off track
        // (the actual to date, 55, would have been on track)
        (
            "lo",
            Some(96.0),
            ["at_risk", "on_track", "on_track", "off_track"],
        ),
        // band 99: 100 off, 95 at risk, 80 on, 110 off
        (
            "lo_default",
            Some(90.0),
            ["off_track", "at_risk", "on_track", "off_track"],
        ),
        ("untargeted", None, ["no_target"; 4]),
    ];
    for (kpi, target, statuses) in expected {
        assert_eq!(res.periods(kpi), months, "{kpi}");
        for i in 0..4 {
            let row = res.get(kpi, months[i]);
            row.check("actual", Some(actual[i]))
                .check("projected", Some(projected[i]))
                .check("target", target)
                .check("attainment", div(Some(actual[i]), target))
                .check_status(statuses[i]);
        }
        assert_eq!(
            res.get(kpi, "2024-04").direction.as_deref(),
            Some(if kpi.starts_with("lo") {
                "lower_is_better"
            } else {
                "higher_is_better"
            }),
            "kpi_results.direction of {kpi}"
        );
    }
    res.get("hi", "2024-04")
        .check_complete(false)
        .check("attainment", Some(0.55));
    res.get("lo", "2024-04")
        .check("attainment", Some(55.0 / 96.0));
}

// ---------------------------------------------------------------------------
// Empty periods
// ---------------------------------------------------------------------------

const EMPTY_MODELS: &str = "\
sources:
  - name: s
    path: data/s.csv
    time: booked_on
metrics:
  - {name: total, source: s, measure: sum(a)}
  - {name: n, source: s, measure: count(*)}
  - {name: mean, source: s, measure: avg(a)}
  - {name: lowest, source: s, measure: min(a)}
  - {name: highest, source: s, measure: max(a)}
  - {name: mean_filled, source: s, measure: avg(a), fill_null: 0}
  - {name: highest_filled, source: s, measure: max(a), fill_null: 0}
kpis:
  - {name: total_kpi, metric: total, grain: month}
  - {name: n_kpi, metric: n, grain: month}
  - {name: mean_kpi, metric: mean, grain: month, target: 10}
  - {name: lowest_kpi, metric: lowest, grain: month}
  - {name: highest_kpi, metric: highest, grain: month}
  - {name: mean_filled_kpi, metric: mean_filled, grain: month, target: 10}
  - {name: highest_filled_kpi, metric: highest_filled, grain: month}
";

fn empty_project() -> Project {
    // January: 10, 30; February: nothing; March: 5, 7.
    let csv = "booked_on,a\n2024-01-10,10\n2024-01-20,30\n2024-03-05,5\n2024-03-25,7\n";
    Project::new(&[("models/m.yml", EMPTY_MODELS), ("data/s.csv", csv)])
}

/// §7 "Empty periods give 0 for sum/count measures (unless fill_null), NULL
/// for others"; `no_data` when the value is NULL.
#[test]
fn empty_periods_and_fill_null() {
    // January: 10, 30; February: nothing; March: 5, 7.
    let p = empty_project();
    let db = p.run("2024-03-31");
    let res = db.results();

    let expected: [(&str, [Option<f64>; 3]); 7] = [
        ("total_kpi", [Some(40.0), Some(0.0), Some(12.0)]),
        ("n_kpi", [Some(2.0), Some(0.0), Some(2.0)]),
        ("mean_kpi", [Some(20.0), None, Some(6.0)]),
        ("lowest_kpi", [Some(10.0), None, Some(5.0)]),
        ("highest_kpi", [Some(30.0), None, Some(7.0)]),
        ("mean_filled_kpi", [Some(20.0), Some(0.0), Some(6.0)]),
        ("highest_filled_kpi", [Some(30.0), Some(0.0), Some(7.0)]),
    ];
    for (kpi, values) in expected {
        assert_eq!(res.periods(kpi), ["2024-01", "2024-02", "2024-03"], "{kpi}");
        for (period, v) in ["2024-01", "2024-02", "2024-03"].iter().zip(values) {
            res.get(kpi, period)
                .check("actual", v)
                .check("projected", v);
        }
        // March vs February: change NULL when February is NULL; change_pct
        // NULL when February is 0.
        let feb = values[1];
        res.get(kpi, "2024-03")
            .check("previous", feb)
            .check("change", sub(values[2], feb))
            .check("change_pct", div(sub(values[2], feb), feb));
    }
    // NULL value with a target: no_data, no attainment.
    res.get("mean_kpi", "2024-02")
        .check("target", Some(10.0))
        .check("attainment", None)
        .check_status("no_data");
    res.get("mean_kpi", "2024-01").check_status("on_track");
    res.get("mean_kpi", "2024-03").check_status("off_track"); // 6 < 9
    // Filled with 0: judged as 0.
    res.get("mean_filled_kpi", "2024-02")
        .check("attainment", Some(0.0))
        .check_status("off_track");
}

// ---------------------------------------------------------------------------
// Windows and to-date metrics
// ---------------------------------------------------------------------------

const WINDOW_MODELS: &str = "\
sources:
  - name: ev
    path: data/ev.csv
    time: happened_on
metrics:
  - {name: sales_7d, source: ev, measure: sum(amount), window: 7 days}
  - {name: active_7d, source: ev, measure: count(distinct customer), window: 7 days}
  - {name: sales_ytd, source: ev, measure: sum(amount), to_date: year}
  - {name: sales_cum, source: ev, measure: sum(amount), window: all}
kpis:
  - {name: sales_7d_monthly, metric: sales_7d, grain: month}
  - {name: active_7d_monthly, metric: active_7d, grain: month}
  - {name: sales_ytd_monthly, metric: sales_ytd, grain: month}
  - {name: sales_cum_monthly, metric: sales_cum, grain: month}
  - {name: sales_7d_daily, metric: sales_7d, grain: day}
";

/// (happened_on, customer, amount) rows of the window project.
const WINDOW_ROWS: [(&str, &str, f64); 15] = [
    ("2023-11-15", "X", 5.0),
    ("2023-11-28", "Y", 7.0),
    ("2023-12-03", "X", 11.0),
    ("2023-12-30", "Z", 13.0),
    ("2024-01-24", "X", 17.0),
    ("2024-01-25", "Y", 19.0),
    ("2024-01-31", "X", 23.0),
    ("2024-02-10", "Z", 29.0),
    ("2024-02-22", "X", 31.0),
    ("2024-02-23", "Y", 37.0),
    ("2024-02-29", "Y", 41.0),
    ("2024-03-03", "Z", 43.0),
    ("2024-03-04", "X", 47.0),
    ("2024-03-10", "Z", 53.0),
    ("2024-03-11", "X", 59.0), // after as_of
];

fn window_project() -> Project {
    let csv = csv_text(
        "happened_on,customer,amount",
        WINDOW_ROWS.iter().map(|(t, c, a)| format!("{t},{c},{a}")),
    );
    Project::new(&[("models/m.yml", WINDOW_MODELS), ("data/ev.csv", &csv)])
}

/// §7 "`window: N days`: the N days ending at the period's end, or at as_of + 1
/// day for the incomplete period. `to_date: G`: from the start of the G period
/// containing the period start, to the same end"; §3.2 `window: all`; §7
/// windowed metrics are not additive (projected = value to date).
#[test]
fn window_and_to_date_metrics() {
    let rows = WINDOW_ROWS;
    let p = window_project();
    let as_of = d("2024-03-10");
    let db = p.run("2024-03-10");
    let res = db.results();

    let limit = as_of + Duration::days(1);
    let sum = |from: NaiveDate, to: NaiveDate| -> f64 {
        rows.iter()
            .filter(|r| d(r.0) >= from && d(r.0) < to && d(r.0) < limit)
            .map(|r| r.2)
            .sum()
    };
    let distinct = |from: NaiveDate, to: NaiveDate| -> f64 {
        let mut c: Vec<&str> = rows
            .iter()
            .filter(|r| d(r.0) >= from && d(r.0) < to && d(r.0) < limit)
            .map(|r| r.1)
            .collect();
        c.sort();
        c.dedup();
        c.len() as f64
    };
    let epoch = d("2000-01-01");

    let months = period_starts(Grain::Month, d("2023-11-15"), as_of);
    let labels: Vec<String> = months.iter().map(|s| label_of(Grain::Month, *s)).collect();
    let mut prev: [Option<f64>; 4] = [None; 4];
    for s in &months {
        let label = label_of(Grain::Month, *s);
        let end = end_of(Grain::Month, *s).min(limit);
        let values = [
            ("sales_7d_monthly", sum(end - Duration::days(7), end)),
            ("active_7d_monthly", distinct(end - Duration::days(7), end)),
            ("sales_ytd_monthly", sum(start_of(Grain::Year, *s), end)),
            ("sales_cum_monthly", sum(epoch, end)),
        ];
        for (i, (kpi, v)) in values.iter().enumerate() {
            assert_eq!(res.periods(kpi), labels, "{kpi}");
            let row = res.get(kpi, &label);
            row.check("actual", Some(*v)).check("projected", Some(*v));
            if row.is_complete == Some(true) {
                row.check("previous", prev[i]);
            }
            prev[i] = Some(*v);
        }
    }
    // By hand:
    // sales_7d: Nov [11-24,12-01) 7 | Dec [12-25,01-01) 13 | Jan [01-25,02-01) 19+23
    //           | Feb [02-23,03-01) 37+41 | Mar (to as_of) [03-04,03-11) 47+53
    let by_hand = [
        ("sales_7d_monthly", [7.0, 13.0, 42.0, 78.0, 100.0]),
        ("active_7d_monthly", [1.0, 1.0, 2.0, 1.0, 2.0]),
        // year to date, reset in January: 12 | 36 | 59 | 59+138 | 197+143
        ("sales_ytd_monthly", [12.0, 36.0, 59.0, 197.0, 340.0]),
        ("sales_cum_monthly", [12.0, 36.0, 95.0, 233.0, 376.0]),
    ];
    for (kpi, values) in by_hand {
        for (label, v) in labels.iter().zip(values) {
            res.get(kpi, label).check("actual", Some(v));
        }
    }
    res.get("sales_7d_monthly", "2024-03")
        .check_complete(false)
        .check("projected", Some(100.0));
    res.get("sales_ytd_monthly", "2024-03")
        .check("projected", Some(340.0));

    // Day grain: the 7 days ending at each day's end.
    let days = period_starts(Grain::Day, d("2023-11-15"), as_of);
    assert_eq!(res.kpi("sales_7d_daily").len(), days.len());
    for day in days {
        let end = day + Duration::days(1);
        res.get("sales_7d_daily", &ymd(day))
            .check("actual", Some(sum(end - Duration::days(7), end)));
    }
    res.get("sales_7d_daily", "2024-03-02")
        .check("actual", Some(41.0));
    res.get("sales_7d_daily", "2024-03-04")
        .check("actual", Some(131.0)); // 41 + 43 + 47
}

// ---------------------------------------------------------------------------
// Fixture `orders_customers`: joins, NULL members, KPI filters
// ---------------------------------------------------------------------------

/// One order after the LEFT join: (month, channel, plan, amount).
fn joined_orders(p: &Project) -> Vec<(String, Option<String>, Option<String>, f64)> {
    let (_, customers) = read_simple_csv(&p.read("data/customers.csv"));
    let (header, orders) = read_simple_csv(&p.read("data/orders.csv"));
    assert_eq!(
        header,
        ["order_id", "ordered_at", "customer_id", "channel", "amount"]
    );
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    orders
        .iter()
        .map(|o| {
            let matches: Vec<&Vec<String>> = customers.iter().filter(|c| c[0] == o[2]).collect();
            assert!(
                matches.len() <= 1,
                "fixture customers.csv must have unique keys"
            );
            let plan = matches
                .first()
                .and_then(|c| non_empty(c.get(1).map(String::as_str).unwrap_or("")));
            (
                o[1][..7].to_string(),
                non_empty(&o[3]),
                plan,
                o[4].parse::<f64>().unwrap(),
            )
        })
        .collect()
}

/// §7 "Joins are LEFT and many-to-one: a fact row without a match keeps NULL
/// dimensions"; NULL dimension members follow SQL semantics in filters; "A
/// KPI's filter applies to its metric ... not to kpi_metrics, which holds
/// unfiltered values"; §3.1 joined dimensions as `plan` and `customers.plan`.
#[test]
fn left_join_null_members_and_kpi_filters() {
    let p = Project::from_fixture("orders_customers");
    let db = p.run("2024-03-31");
    let res = db.results();
    let rows = joined_orders(&p);
    let months = ["2024-01", "2024-02", "2024-03"];

    type Pred = fn(&(String, Option<String>, Option<String>, f64)) -> bool;
    let kpis: [(&str, bool, Pred); 7] = [
        ("revenue_all", true, |_| true),
        ("revenue_pro", true, |r| r.2.as_deref() == Some("pro")),
        ("revenue_pro_qualified", true, |r| {
            r.2.as_deref() == Some("pro")
        }),
        // No row matches: 0 every month, and the range still starts at the
        // earliest raw row of the source (filters do not move it).
        ("revenue_enterprise", true, |r| {
            r.2.as_deref() == Some("enterprise")
        }),
        ("orders_no_plan", false, |r| r.2.is_none()),
        ("orders_no_channel", false, |r| r.1.is_none()),
        // SQL: NULL <> 'web' is not true, so NULL channels are excluded.
        ("orders_not_web", false, |r| {
            r.1.as_deref().is_some_and(|c| c != "web")
        }),
    ];
    for (kpi, is_sum, pred) in kpis {
        assert_eq!(res.periods(kpi), months, "{kpi}");
        for m in months {
            let sel = rows.iter().filter(|r| r.0 == m && pred(r));
            let v = if is_sum {
                sel.map(|r| r.3).sum()
            } else {
                sel.count() as f64
            };
            res.get(kpi, m).check("actual", Some(v));
        }
    }
    // By hand: January orders 1 (pro, 100), 2 (free, 50), 3 (no customer, 25),
    // 4 (NULL plan, NULL channel, 10).
    res.get("revenue_all", "2024-01")
        .check("actual", Some(185.0));
    res.get("revenue_enterprise", "2024-01")
        .check("actual", Some(0.0));
    res.get("revenue_pro", "2024-01")
        .check("actual", Some(100.0));
    res.get("orders_no_plan", "2024-01")
        .check("actual", Some(2.0)); // orders 3, 4
    res.get("orders_no_channel", "2024-02")
        .check("actual", Some(1.0)); // order 6
    res.get("orders_not_web", "2024-03")
        .check("actual", Some(1.0)); // order 9 only

    // kpi_metrics: unfiltered, one row per metric, grain and period.
    let m = db.metrics();
    for month in months {
        let sel = || rows.iter().filter(|r| r.0 == month);
        check_metric(
            &m,
            "revenue",
            "month",
            month,
            Some(sel().map(|r| r.3).sum()),
        );
        check_metric(&m, "orders", "month", month, Some(sel().count() as f64));
    }
    check_metric(&m, "revenue", "month", "2024-01", Some(185.0));
    check_metric(&m, "orders", "month", "2024-03", Some(3.0));
}

/// §7 "a join that would duplicate fact rows is an error at run time" (KPI403,
/// exit 1 or 2) and §5 "a failed run leaves the old ones intact".
#[test]
fn join_fan_out_fails_and_keeps_previous_tables() {
    let p = Project::from_fixture("orders_customers");
    let before = p.run("2024-03-31").results();
    before
        .get("revenue_pro", "2024-01")
        .check("actual", Some(100.0));

    // Customer 1 (who has orders) now appears twice.
    let customers = p.read("data/customers.csv");
    p.write("data/customers.csv", &format!("{customers}1,enterprise\n"));
    let out = p.try_run(Some("2024-03-31"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "a fan-out join must fail with exit code 1 or 2, got {}\n--- stderr ---\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("KPI403"),
        "stderr must name KPI403:\n{stderr}"
    );

    // The tables of the first run are intact.
    let after = p.db().results();
    assert_eq!(
        after.rows.len(),
        before.rows.len(),
        "kpi_results row count after a failed run"
    );
    for (a, b) in after.rows.iter().zip(&before.rows) {
        assert_eq!((&a.kpi, &a.period), (&b.kpi, &b.period));
        a.check("actual", b.actual);
    }
    after
        .get("revenue_pro", "2024-01")
        .check("actual", Some(100.0));
    check_metric(
        &p.db().metrics(),
        "revenue",
        "month",
        "2024-01",
        Some(185.0),
    );
}

// ---------------------------------------------------------------------------
// kpi_definitions
// ---------------------------------------------------------------------------

const DEFINITIONS_MODELS: &str = "\
sources:
  - name: orders
    path: data/orders.csv
    time: ordered_at
    dimensions: [channel, country]
metrics:
  - name: revenue
    label: Revenue
    source: orders
    measure: sum(amount)
    format: currency
  - name: orders
    source: orders
    measure: count(*)
  - name: aov
    expr: revenue / orders
kpis:
  - name: full_kpi
    metric: revenue
    label: Monthly revenue
    description: Net revenue of the month.
    objective: Grow revenue
    owner: growth-team
    grain: month
    direction: higher_is_better
    indicator: lagging
    target: 1000
    tolerance: 5%
    drivers: [orders, aov]
    breakdowns: [channel, country]
    related: [aov_kpi, minimal_kpi]
    rationale: Revenue funds the roadmap.
    measurement: Orders, net of refunds.
    review: quarterly
    action_plan: Review the funnel within a week.
  - name: aov_kpi
    metric: aov
    grain: week
    direction: lower_is_better
    indicator: leading
  - name: decomposed_kpi
    metric: revenue
    grain: month
    decomposition: orders * aov
  - name: minimal_kpi
    metric: orders
    grain: day
";

const DEFINITIONS_DATA: &str = "\
ordered_at,channel,country,amount
2024-01-02,web,US,10
2024-01-09,app,FR,20
2024-02-01,web,US,30
";

fn definitions_project() -> Project {
    Project::new(&[
        ("models/m.yml", DEFINITIONS_MODELS),
        ("data/orders.csv", DEFINITIONS_DATA),
    ])
}

/// §5 / §7 kpi_definitions: one row per KPI; absent optional fields NULL;
/// `format` defaults to `number`; `drivers` lists the effective drivers
/// (declared, else the decomposition's metrics, else the derived metric's
/// inputs); lists joined with `, `.
#[test]
fn kpi_definitions_columns() {
    let p = definitions_project();
    let db = p.run("2024-02-01");
    let defs = db.definitions();
    assert_eq!(defs.len(), 4, "one kpi_definitions row per KPI");

    let full = definition(&defs, "full_kpi");
    full.check("label", Some("Monthly revenue"))
        .check("description", Some("Net revenue of the month."))
        .check("metric", Some("revenue"))
        .check("objective", Some("Grow revenue"))
        .check("owner", Some("growth-team"))
        .check("grain", Some("month"))
        .check("direction", Some("higher_is_better"))
        .check("indicator", Some("lagging"))
        .check("format", Some("currency")) // the metric's format
        .check("rationale", Some("Revenue funds the roadmap."))
        .check("measurement", Some("Orders, net of refunds."))
        .check("review", Some("quarterly"))
        .check("action_plan", Some("Review the funnel within a week."))
        .check("related", Some("aov_kpi, minimal_kpi"))
        .check("drivers", Some("orders, aov"))
        .check("breakdowns", Some("channel, country"));
    assert_num(
        "kpi_definitions full_kpi tolerance",
        Some(0.05),
        full.tolerance,
    );
    assert!(
        full.get("definition_hash").is_some_and(|h| !h.is_empty()),
        "definition_hash"
    );
    assert!(full.get("computed_at").is_some(), "computed_at");

    // Derived metric, no declared drivers: the expression's metrics.
    let aov = definition(&defs, "aov_kpi");
    aov.check("metric", Some("aov"))
        .check("grain", Some("week"))
        .check("direction", Some("lower_is_better"))
        .check("indicator", Some("leading"))
        .check("drivers", Some("revenue, orders"))
        .check("format", Some("number"));
    for col in [
        "label",
        "description",
        "objective",
        "owner",
        "rationale",
        "measurement",
        "review",
        "action_plan",
        "related",
        "breakdowns",
    ] {
        aov.check(col, None);
    }
    // Default tolerance 10%.
    assert_num(
        "kpi_definitions aov_kpi tolerance",
        Some(0.1),
        aov.tolerance,
    );

    // Decomposition, no declared drivers: the decomposition's metrics.
    definition(&defs, "decomposed_kpi")
        .check("drivers", Some("orders, aov"))
        .check("format", Some("currency"));

    // Measure metric, nothing optional: NULL drivers; direction defaults to
    // higher_is_better; indicator has no default.
    definition(&defs, "minimal_kpi")
        .check("metric", Some("orders"))
        .check("grain", Some("day"))
        .check("direction", Some("higher_is_better"))
        .check("indicator", None)
        .check("drivers", None)
        .check("label", None)
        .check("format", Some("number"));

    // kpi_results repeats the descriptive columns.
    let res = db.results();
    let r = res.get("full_kpi", "2024-02");
    assert_eq!(r.label.as_deref(), Some("Monthly revenue"));
    assert_eq!(r.metric.as_deref(), Some("revenue"));
    assert_eq!(r.grain.as_deref(), Some("month"));
    assert_eq!(r.direction.as_deref(), Some("higher_is_better"));
    assert_eq!(r.indicator.as_deref(), Some("lagging"));
    assert_eq!(r.owner.as_deref(), Some("growth-team"));
}

/// §5 "definition_hash changes whenever the compiled definition does" (and,
/// read as a hash, stays the same when the definition does not).
#[test]
fn definition_hash_follows_the_definition() {
    let p = definitions_project();
    let hashes = |defs: &[DefinitionRow]| -> Vec<(String, String)> {
        defs.iter()
            .map(|r| {
                (
                    r.get("kpi").unwrap_or_default().to_string(),
                    r.get("definition_hash").unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let first = hashes(&p.run("2024-02-01").definitions());
    let second = hashes(&p.run("2024-02-01").definitions());
    assert_eq!(first, second, "same definitions, same hashes");
    let mut distinct: Vec<&String> = first.iter().map(|(_, h)| h).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        first.len(),
        "different KPIs, different hashes: {first:?}"
    );

    p.write(
        "models/m.yml",
        &DEFINITIONS_MODELS.replace("target: 1000", "target: 2000"),
    );
    let third = hashes(&p.run("2024-02-01").definitions());
    let get =
        |h: &[(String, String)], k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_ne!(
        get(&first, "full_kpi"),
        get(&third, "full_kpi"),
        "full_kpi's target changed"
    );
    assert_eq!(
        get(&first, "minimal_kpi"),
        get(&third, "minimal_kpi"),
        "minimal_kpi unchanged"
    );
}

// ---------------------------------------------------------------------------
// as_of details
// ---------------------------------------------------------------------------

const TIMESTAMP_MODELS: &str = "\
sources:
  - name: hits
    path: data/hits.csv
    time: ts
metrics:
  - {name: weight, source: hits, measure: sum(w)}
kpis:
  - {name: weight_monthly, metric: weight, grain: month}
  - name: weight_daily
    metric: weight
    grain: day
    target:
      values:
        2024-03-31: 2
        2024-03-01: 5
";

fn timestamp_project() -> Project {
    let csv = "ts,w\n\
               2024-02-29 23:59:59,8\n\
               2024-03-01 00:00:00,1\n\
               2024-03-31 23:30:00,2\n\
               2024-04-01 00:00:00,4\n";
    Project::new(&[("models/m.yml", TIMESTAMP_MODELS), ("data/hits.csv", csv)])
}

/// §7 "as_of is inclusive: rows with time < as_of + 1 day count", with a
/// TIMESTAMP time column.
#[test]
fn timestamp_time_column_and_inclusive_as_of() {
    let p = timestamp_project();
    let res = p.run("2024-03-31").results();
    assert_eq!(res.periods("weight_monthly"), ["2024-02", "2024-03"]);
    res.get("weight_monthly", "2024-02")
        .check("actual", Some(8.0));
    res.get("weight_monthly", "2024-03")
        .check_complete(true)
        .check("actual", Some(3.0)) // 1 + 2; the 4 at 2024-04-01 00:00 is after as_of
        .check("previous", Some(8.0));
    let days = res.periods("weight_daily");
    assert_eq!(days.first().map(String::as_str), Some("2024-02-29"));
    assert_eq!(days.last().map(String::as_str), Some("2024-03-31"));
    res.get("weight_daily", "2024-02-29")
        .check("actual", Some(8.0));
    // §7 YAML 1.2: date-like keys of `values` are period labels (strings).
    res.get("weight_daily", "2024-03-31")
        .check("actual", Some(2.0))
        .check("target", Some(2.0))
        .check_status("on_track");
    res.get("weight_daily", "2024-03-01")
        .check("target", Some(5.0))
        .check("attainment", Some(0.2))
        .check_status("off_track");
    res.get("weight_daily", "2024-03-15")
        .check("actual", Some(0.0))
        .check("target", None)
        .check_status("no_target");
}

const LATEST_MODELS: &str = "\
sources:
  - name: sales
    path: data/sales.csv
    time: sold_on
  - name: other
    path: data/other.csv
    time: seen_on
metrics:
  - {name: total, source: sales, measure: sum(amount)}
  - {name: other_total, source: other, measure: sum(amount)}
kpis:
  - {name: total_monthly, metric: total, grain: month}
";

fn latest_project() -> Project {
    Project::new(&[
        ("models/m.yml", LATEST_MODELS),
        (
            "data/sales.csv",
            "sold_on,amount\n2024-01-05,10\n2024-02-10,20\n2024-03-10,30\n",
        ),
        ("data/other.csv", "seen_on,amount\n2024-06-01,1\n"),
    ])
}

/// §2 `as_of: latest` (the default): the latest time value in the sources the
/// selected KPIs use (not in a source no KPI uses).
#[test]
fn default_as_of_is_the_latest_time_of_the_kpi_sources() {
    let p = latest_project();
    let res = p.run_default_as_of().results();
    assert_eq!(
        res.periods("total_monthly"),
        ["2024-01", "2024-02", "2024-03"]
    );
    // as_of = 2024-03-10: elapsed 10 of 31 days; previous = Feb 1..10 = 20.
    res.get("total_monthly", "2024-03")
        .check_complete(false)
        .check("actual", Some(30.0))
        .check("projected", Some(30.0 * 31.0 / 10.0))
        .check("previous", Some(20.0));
}

// ---------------------------------------------------------------------------
// Table shapes
// ---------------------------------------------------------------------------

/// §5: the five tables exist with the SPEC's columns; "Values are DOUBLE".
#[test]
fn output_tables_have_the_spec_columns_and_types() {
    check_output_tables(&["kpi_results", "kpi_definitions", "kpi_metrics"]);
}

#[test]
fn diagnostic_tables_have_the_spec_columns_and_types() {
    check_output_tables(&["kpi_breakdowns", "kpi_drivers"]);
}

fn check_output_tables(wanted: &[&str]) {
    let p = Project::from_fixture("monthly_orders");
    let db = p.run("2024-03-31");
    let tables: [(&str, &[&str], &[&str]); 5] = [
        (
            "kpi_results",
            &[
                "kpi",
                "label",
                "metric",
                "grain",
                "period",
                "period_start",
                "period_end",
                "is_complete",
                "actual",
                "target",
                "attainment",
                "status",
                "projected",
                "previous",
                "change",
                "change_pct",
                "last_year",
                "yoy_change_pct",
                "numerator",
                "denominator",
                "direction",
                "indicator",
                "owner",
            ],
            &[
                "actual",
                "target",
                "attainment",
                "projected",
                "previous",
                "change",
                "change_pct",
                "last_year",
                "yoy_change_pct",
                "numerator",
                "denominator",
            ],
        ),
        (
            "kpi_definitions",
            &[
                "kpi",
                "label",
                "description",
                "metric",
                "objective",
                "owner",
                "grain",
                "direction",
                "indicator",
                "tolerance",
                "format",
                "rationale",
                "measurement",
                "review",
                "action_plan",
                "related",
                "drivers",
                "breakdowns",
                "definition_hash",
                "computed_at",
            ],
            &["tolerance"],
        ),
        (
            "kpi_metrics",
            &[
                "metric",
                "grain",
                "period",
                "period_start",
                "period_end",
                "value",
            ],
            &["value"],
        ),
        (
            "kpi_breakdowns",
            &[
                "kpi",
                "period",
                "period_start",
                "dimension",
                "member",
                "actual",
                "previous",
                "change",
                "contribution",
                "share_of_change",
                "mix_effect",
                "rate_effect",
            ],
            &[
                "actual",
                "previous",
                "change",
                "contribution",
                "share_of_change",
                "mix_effect",
                "rate_effect",
            ],
        ),
        (
            "kpi_drivers",
            &[
                "kpi",
                "period",
                "period_start",
                "driver",
                "actual",
                "previous",
                "change_pct",
                "contribution",
                "share_of_change",
                "method",
            ],
            &[
                "actual",
                "previous",
                "change_pct",
                "contribution",
                "share_of_change",
            ],
        ),
    ];
    for (table, columns, doubles) in tables {
        if !wanted.contains(&table) {
            continue;
        }
        let types = db.column_types(table);
        let type_of = |c: &str| types.iter().find(|(n, _)| n == c).map(|(_, t)| t.as_str());
        for c in columns {
            assert!(
                type_of(c).is_some(),
                "{table} lacks column {c}; has {types:?}"
            );
        }
        for c in doubles {
            assert_eq!(type_of(c), Some("DOUBLE"), "{table}.{c} type");
        }
        if columns.contains(&"period_start") {
            assert_eq!(
                type_of("period_start"),
                Some("DATE"),
                "{table}.period_start type"
            );
        }
    }
    let types = db.column_types("kpi_results");
    let type_of = |c: &str| types.iter().find(|(n, _)| n == c).map(|(_, t)| t.as_str());
    assert_eq!(type_of("period_end"), Some("DATE"));
    assert_eq!(type_of("is_complete"), Some("BOOLEAN"));
    assert_eq!(type_of("status"), Some("VARCHAR"));
    assert_eq!(type_of("period"), Some("VARCHAR"));
}

// ---------------------------------------------------------------------------
// kpi_breakdowns
// ---------------------------------------------------------------------------

/// §7 breakdowns of an additive metric: rows for every member present in the
/// period or its baseline, 0 when absent, contribution = change, summing to
/// the KPI's change; NULL member as SQL NULL; `dimension` as written in
/// `breakdowns` (here the qualified `customers.plan`).
#[test]
fn additive_breakdowns_sum_to_the_kpi_change() {
    let p = Project::from_fixture("orders_customers");
    let db = p.run("2024-03-31");
    let rows = joined_orders(&p);
    let bd = db.breakdowns();
    let res = db.results();

    type Key = fn(&(String, Option<String>, Option<String>, f64)) -> Option<String>;
    let dims: [(&str, Key); 2] = [
        ("channel", |r| r.1.clone()),
        ("customers.plan", |r| r.2.clone()),
    ];
    for (period, baseline) in [("2024-02", "2024-01"), ("2024-03", "2024-02")] {
        let total = |m: &str| -> f64 { rows.iter().filter(|r| r.0 == m).map(|r| r.3).sum() };
        let kpi_change = total(period) - total(baseline);
        res.get("revenue_by_segment", period)
            .check("change", Some(kpi_change));
        for (dim, key) in dims {
            let mut members: Vec<Option<String>> = rows
                .iter()
                .filter(|r| r.0 == period || r.0 == baseline)
                .map(key)
                .collect();
            members.sort();
            members.dedup();
            let got = breakdowns_of(&bd, "revenue_by_segment", period, dim);
            assert_eq!(
                got.len(),
                members.len(),
                "kpi_breakdowns rows of revenue_by_segment {period} {dim}: expected members {members:?}, got {:?}",
                got.iter().map(|r| r.member.clone()).collect::<Vec<_>>()
            );
            let mut sum_contrib = 0.0;
            for member in &members {
                let of = |m: &str| -> f64 {
                    rows.iter()
                        .filter(|r| r.0 == m && key(r) == *member)
                        .map(|r| r.3)
                        .sum()
                };
                let (a, b) = (of(period), of(baseline));
                sum_contrib += a - b;
                let row = breakdown(&bd, "revenue_by_segment", period, dim, member.as_deref());
                assert_eq!(row.period_start, format!("{period}-01"));
                row.check("actual", Some(a))
                    .check("previous", Some(b))
                    .check("change", Some(a - b))
                    .check("contribution", Some(a - b))
                    .check("share_of_change", div(Some(a - b), Some(kpi_change)))
                    .check("mix_effect", None)
                    .check("rate_effect", None);
            }
            assert!(
                close(sum_contrib, kpi_change),
                "test bug: contributions must sum"
            );
        }
    }
    // By hand, February vs January by channel: web 70 vs 125 (orders 7 | 1, 3),
    // app 200 vs 50, NULL 5 vs 10; KPI change 275 - 185 = 90.
    breakdown(&bd, "revenue_by_segment", "2024-02", "channel", Some("web"))
        .check("actual", Some(70.0))
        .check("previous", Some(125.0))
        .check("contribution", Some(-55.0))
        .check("share_of_change", Some(-55.0 / 90.0));
    breakdown(&bd, "revenue_by_segment", "2024-02", "channel", None)
        .check("actual", Some(5.0))
        .check("previous", Some(10.0));
    // The NULL plan gathers the unmatched customer 9 and customer 3: 25 + 10.
    breakdown(&bd, "revenue_by_segment", "2024-02", "customers.plan", None)
        .check("previous", Some(35.0))
        .check("actual", Some(5.0));
}

const RATIO_MODELS: &str = "\
sources:
  - name: orders
    path: data/orders.csv
    time: ordered_at
    dimensions: [channel]
metrics:
  - {name: revenue, source: orders, measure: sum(amount)}
  - {name: orders, source: orders, measure: count(*)}
  - {name: big_orders, source: orders, measure: count(*), filter: amount >= 50}
  - {name: buyers, source: orders, measure: count(distinct customer)}
  - {name: avg_amount, source: orders, measure: avg(amount)}
  - {name: aov, expr: revenue / orders}
kpis:
  - {name: aov_kpi, metric: aov, grain: month, breakdowns: [channel]}
  - {name: avg_kpi, metric: avg_amount, grain: month, breakdowns: [channel]}
  - {name: buyers_kpi, metric: buyers, grain: month, breakdowns: [channel]}
  - name: revenue_kpi
    metric: revenue
    grain: month
    decomposition: orders * aov
    drivers: [orders, aov, big_orders]
";

/// (ordered_at, channel, customer, amount) rows of the ratio project.
const RATIO_ROWS: [(&str, Option<&str>, &str, f64); 13] = [
    ("2024-01-05", Some("web"), "c1", 10.0),
    ("2024-01-12", Some("web"), "c2", 30.0),
    ("2024-01-20", Some("app"), "c1", 60.0),
    ("2024-01-28", Some("store"), "c3", 20.0),
    ("2024-02-02", Some("web"), "c1", 10.0),
    ("2024-02-09", Some("web"), "c4", 20.0),
    ("2024-02-16", Some("web"), "c1", 30.0),
    ("2024-02-20", Some("app"), "c2", 90.0),
    ("2024-02-25", None, "c5", 50.0),
    ("2024-03-03", Some("web"), "c1", 50.0),
    ("2024-03-10", Some("web"), "c2", 50.0),
    ("2024-03-17", Some("app"), "c3", 50.0),
    ("2024-03-24", Some("app"), "c4", 50.0),
];

pub fn ratio_project() -> Project {
    let csv = csv_text(
        "ordered_at,channel,customer,amount",
        RATIO_ROWS
            .iter()
            .map(|(t, ch, c, a)| format!("{t},{},{c},{a}", ch.unwrap_or(""))),
    );
    Project::new(&[("models/m.yml", RATIO_MODELS), ("data/orders.csv", &csv)])
}

/// Sum of amounts and count of orders of a month (and channel member, if given).
fn ratio_ab(month: &str, member: Option<Option<&str>>) -> (f64, f64) {
    let sel: Vec<_> = RATIO_ROWS
        .iter()
        .filter(|r| r.0.starts_with(month) && member.is_none_or(|m| r.1 == m))
        .collect();
    (sel.iter().map(|r| r.3).sum(), sel.len() as f64)
}

/// §7 breakdowns of ratio metrics (`a / b` and `avg(x)`): mix and rate
/// effects, the zero-denominator rule, contributions summing exactly to the
/// KPI change; other metrics (count distinct): actual/previous/change only.
#[test]
fn ratio_breakdowns_mix_and_rate_effects() {
    let p = ratio_project();
    let db = p.run("2024-03-31");
    let bd = db.breakdowns();
    let res = db.results();

    for kpi in ["aov_kpi", "avg_kpi"] {
        for (period, baseline) in [("2024-02", "2024-01"), ("2024-03", "2024-02")] {
            let (a0, b0) = ratio_ab(baseline, None);
            let (a1, b1) = ratio_ab(period, None);
            let (big_r0, big_r1) = (a0 / b0, a1 / b1);
            let kpi_change = big_r1 - big_r0;
            res.get(kpi, period).check("change", Some(kpi_change));
            let mut members: Vec<Option<&str>> = RATIO_ROWS
                .iter()
                .filter(|r| r.0.starts_with(period) || r.0.starts_with(baseline))
                .map(|r| r.1)
                .collect();
            members.sort();
            members.dedup();
            assert_eq!(
                breakdowns_of(&bd, kpi, period, "channel").len(),
                members.len(),
                "{kpi} {period}"
            );
            let mut total = 0.0;
            for m in members {
                let (ai0, bi0) = ratio_ab(baseline, Some(m));
                let (ai1, bi1) = ratio_ab(period, Some(m));
                let (w0, w1) = (bi0 / b0, bi1 / b1);
                let raw0 = (bi0 > 0.0).then(|| ai0 / bi0);
                let raw1 = (bi1 > 0.0).then(|| ai1 / bi1);
                // A member with a zero denominator takes its ratio from the other period.
                let r0 = raw0.or(raw1).unwrap();
                let r1 = raw1.or(raw0).unwrap();
                let mix = (w1 - w0) * (r0 - big_r0);
                let rate = w1 * (r1 - r0);
                total += mix + rate;
                let row = breakdown(&bd, kpi, period, "channel", m);
                row.check("actual", raw1)
                    .check("previous", raw0)
                    .check("mix_effect", Some(mix))
                    .check("rate_effect", Some(rate))
                    .check("contribution", Some(mix + rate))
                    .check("share_of_change", div(Some(mix + rate), Some(kpi_change)));
                if raw0.is_some() && raw1.is_some() {
                    row.check("change", sub(raw1, raw0));
                }
            }
            assert!(
                close(total, kpi_change),
                "test bug: mix + rate must sum to the change"
            );
        }
        // By hand, February vs January (R0 = 120 / 4 = 30, R1 = 200 / 5 = 40):
        // web   w 0.5 -> 0.6, r 20 -> 20: mix 0.1 * (20 - 30) = -1, rate 0
        // app   w 0.25 -> 0.2, r 60 -> 90: mix -0.05 * 30 = -1.5, rate 0.2 * 30 = 6
        // store w 0.25 -> 0, r 20 (borrowed): mix -0.25 * (20 - 30) = 2.5, rate 0
        // NULL  w 0 -> 0.2, r 50 (borrowed): mix 0.2 * (50 - 30) = 4, rate 0
        // total -1 + 4.5 + 2.5 + 4 = 10 = 40 - 30.
        breakdown(&bd, kpi, "2024-02", "channel", Some("app"))
            .check("actual", Some(90.0))
            .check("previous", Some(60.0))
            .check("change", Some(30.0))
            .check("mix_effect", Some(-1.5))
            .check("rate_effect", Some(6.0))
            .check("contribution", Some(4.5))
            .check("share_of_change", Some(0.45));
        breakdown(&bd, kpi, "2024-02", "channel", Some("store"))
            .check("actual", None)
            .check("previous", Some(20.0))
            .check("mix_effect", Some(2.5))
            .check("rate_effect", Some(0.0));
        breakdown(&bd, kpi, "2024-02", "channel", None)
            .check("actual", Some(50.0))
            .check("previous", None)
            .check("mix_effect", Some(4.0))
            .check("rate_effect", Some(0.0));
        breakdown(&bd, kpi, "2024-02", "channel", Some("web"))
            .check("mix_effect", Some(-1.0))
            .check("contribution", Some(-1.0));
    }

    // Count distinct: actual, previous, change only (members in both periods).
    // March vs February: web {c1, c2} vs {c1, c4}; app {c3, c4} vs {c2}.
    breakdown(&bd, "buyers_kpi", "2024-03", "channel", Some("web"))
        .check("actual", Some(2.0))
        .check("previous", Some(2.0))
        .check("change", Some(0.0))
        .check("contribution", None)
        .check("share_of_change", None)
        .check("mix_effect", None)
        .check("rate_effect", None);
    breakdown(&bd, "buyers_kpi", "2024-03", "channel", Some("app"))
        .check("actual", Some(2.0))
        .check("previous", Some(1.0))
        .check("change", Some(1.0))
        .check("contribution", None)
        .check("share_of_change", None)
        .check("mix_effect", None)
        .check("rate_effect", None);
}

// ---------------------------------------------------------------------------
// kpi_drivers
// ---------------------------------------------------------------------------

/// §7 drivers: `log` split for a product/quotient identity
/// (contribution_j = ΔK · e_j · ln(d1_j/d0_j) / ln(K1/K0)), `shapley` when the
/// log split is undefined (K1 = K0), `none` for a listed metric outside the
/// identity; contributions sum to the KPI change; NULL contributions in the
/// first period.
#[test]
fn driver_attribution_log_shapley_and_none() {
    let p = ratio_project();
    let db = p.run("2024-03-31");
    let dr = db.drivers();
    let res = db.results();

    // Month values: revenue, orders, aov, big_orders (amount >= 50).
    // Jan 120, 4, 30, 1 | Feb 200, 5, 40, 2 | Mar 200, 4, 50, 4.
    let (rev, ord, aov, big) = (
        [120.0, 200.0, 200.0],
        [4.0, 5.0, 4.0],
        [30.0, 40.0, 50.0],
        [1.0, 2.0, 4.0],
    );
    for (i, m) in ["2024-01", "2024-02", "2024-03"].iter().enumerate() {
        let (r, o) = ratio_ab(m, None);
        let big_n = RATIO_ROWS
            .iter()
            .filter(|x| x.0.starts_with(m) && x.3 >= 50.0)
            .count() as f64;
        assert!(
            close(r, rev[i]) && close(o, ord[i]) && close(r / o, aov[i]) && close(big_n, big[i]),
            "test bug"
        );
    }

    // revenue = orders * aov. February: log split, ln(200/120) = ln(5/3).
    let dk = 80.0;
    let l = (200.0f64 / 120.0).ln();
    driver(&dr, "revenue_kpi", "2024-02", "orders")
        .check_method("log")
        .check("actual", Some(5.0))
        .check("previous", Some(4.0))
        .check("change_pct", Some(0.25))
        .check("contribution", Some(dk * (5.0f64 / 4.0).ln() / l))
        .check("share_of_change", Some((5.0f64 / 4.0).ln() / l));
    driver(&dr, "revenue_kpi", "2024-02", "aov")
        .check_method("log")
        .check("actual", Some(40.0))
        .check("previous", Some(30.0))
        .check("contribution", Some(dk * (40.0f64 / 30.0).ln() / l));
    driver(&dr, "revenue_kpi", "2024-02", "big_orders")
        .check_method("none")
        .check("actual", Some(2.0))
        .check("previous", Some(1.0))
        .check("change_pct", Some(1.0))
        .check("contribution", None)
        .check("share_of_change", None);
    res.get("revenue_kpi", "2024-02").check("change", Some(dk));

    // March: K1 = K0 = 200, the log split is undefined -> exact Shapley split
    // of orders * aov: orders (4 - 5) * (40 + 50) / 2 = -45,
    // aov (50 - 40) * (5 + 4) / 2 = 45; KPI change 0 -> share NULL.
    driver(&dr, "revenue_kpi", "2024-03", "orders")
        .check_method("shapley")
        .check("contribution", Some(-45.0))
        .check("share_of_change", None);
    driver(&dr, "revenue_kpi", "2024-03", "aov")
        .check_method("shapley")
        .check("contribution", Some(45.0));
    driver(&dr, "revenue_kpi", "2024-03", "big_orders")
        .check_method("none")
        .check("contribution", None);

    // First period: no baseline, no attribution.
    for name in ["orders", "aov", "big_orders"] {
        driver(&dr, "revenue_kpi", "2024-01", name)
            .check("contribution", None)
            .check("share_of_change", None);
    }
    driver(&dr, "revenue_kpi", "2024-01", "big_orders").check_method("none");

    // aov = revenue / orders with no declared drivers: the drivers are the
    // expression's inputs, log split with exponents +1 and -1.
    // February: K 30 -> 40. March: K 40 -> 50, revenue flat (ln 1 = 0).
    let l = (40.0f64 / 30.0).ln();
    driver(&dr, "aov_kpi", "2024-02", "revenue")
        .check_method("log")
        .check("contribution", Some(10.0 * (200.0f64 / 120.0).ln() / l));
    driver(&dr, "aov_kpi", "2024-02", "orders")
        .check_method("log")
        .check("contribution", Some(-10.0 * (5.0f64 / 4.0).ln() / l));
    driver(&dr, "aov_kpi", "2024-03", "revenue").check("contribution", Some(0.0));
    driver(&dr, "aov_kpi", "2024-03", "orders")
        .check("contribution", Some(10.0))
        .check("share_of_change", Some(1.0));

    // Attributed contributions sum to the KPI change in every later period.
    for (kpi, attributed) in [
        ("revenue_kpi", ["orders", "aov"]),
        ("aov_kpi", ["revenue", "orders"]),
    ] {
        for period in ["2024-02", "2024-03"] {
            let sum: f64 = attributed
                .iter()
                .map(|n| driver(&dr, kpi, period, n).contribution.unwrap_or(f64::NAN))
                .sum();
            let change = res.get(kpi, period).change.unwrap_or(f64::NAN);
            assert!(
                close(sum, change),
                "kpi_drivers {kpi} {period}: contributions {sum} vs change {change}"
            );
        }
    }
}

fn offset_project() -> Project {
    Project::new(&[
        (
            "data.csv",
            "day,amount\n2023-01-10,10\n2023-02-10,20\n2023-03-10,30\n2024-01-10,15\n2024-02-10,40\n2024-03-05,12\n2024-03-20,99\n",
        ),
        (
            "models/m.yml",
            "sources:\n  - name: s\n    path: data.csv\n    time: day\n\
             metrics:\n  - name: revenue\n    source: s\n    measure: sum(amount)\n\
             \x20 - name: growth\n    expr: revenue / offset(revenue, 1 year) - 1\n\
             \x20 - name: mom\n    expr: revenue - offset(revenue, 1 month)\n\
             kpis:\n  - name: g\n    metric: growth\n    grain: month\n    target: 0.1\n\
             \x20 - name: m\n    metric: mom\n    grain: month\n    target: 0\n\
             \x20 - name: q\n    metric: growth\n    grain: quarter\n    target: 0\n",
        ),
    ])
}

/// §3.2: a derived `expr` may use `offset(metric, N unit)`: the metric's
/// value for the period N units earlier (NULL before the first period),
/// calendar-correct; the projection of the current period uses the
/// offset period's (complete) value.
#[test]
fn derived_offset_metrics() {
    let p = offset_project();
    let db = p.run("2024-03-10");
    let res = db.results();
    // A year before 2023 is before the data: NULL.
    res.get("g", "2023-02")
        .check("actual", None)
        .check_status("no_data");
    res.get("g", "2024-01")
        .check("actual", Some(15.0 / 10.0 - 1.0));
    res.get("g", "2024-02")
        .check("actual", Some(40.0 / 20.0 - 1.0));
    // March 2024 to 2024-03-10: 12 so far, 12 × 31/10 projected, against
    // the whole of March 2023 (30); previous is February like for like:
    // Feb 1-10 2024 (40) over Feb 1-10 2023 (20).
    res.get("g", "2024-03")
        .check("actual", Some(12.0 / 30.0 - 1.0))
        .check("projected", Some(12.0 * 31.0 / 10.0 / 30.0 - 1.0))
        .check("previous", Some(40.0 / 20.0 - 1.0));
    res.get("m", "2023-01").check("actual", None);
    res.get("m", "2023-02").check("actual", Some(20.0 - 10.0));
    res.get("m", "2023-04").check("actual", Some(0.0 - 30.0));
    res.get("m", "2024-03")
        .check("actual", Some(12.0 - 40.0))
        .check("projected", Some(12.0 * 31.0 / 10.0 - 40.0));
    // Quarter grain: 1 year back is 4 quarters back.
    res.get("q", "2024-Q1")
        .check("actual", Some((15.0 + 40.0 + 12.0) / 60.0 - 1.0));
}

/// An offset must move by whole periods of the KPI's grain.
#[test]
fn offset_finer_than_the_grain_is_an_error() {
    let p = Project::new(&[
        ("data.csv", "day,amount\n2024-01-10,10\n"),
        (
            "models/m.yml",
            "sources:\n  - name: s\n    path: data.csv\n    time: day\n\
             metrics:\n  - name: revenue\n    source: s\n    measure: sum(amount)\n\
             \x20 - name: wow\n    expr: revenue - offset(revenue, 1 week)\n\
             kpis:\n  - name: k\n    metric: wow\n    grain: month\n    target: 0\n",
        ),
    ]);
    let out = p.kpic(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("KPI220") && stderr.contains("models/m.yml:10:21"),
        "{stderr}"
    );
}

fn period_agg_project() -> Project {
    Project::new(&[
        (
            "data.csv",
            "day,x\n2024-01-01,1\n2024-01-02,1\n2024-01-05,1\n2024-02-01,1\n2024-02-03,1\n",
        ),
        (
            "models/m.yml",
            "sources:\n  - name: s\n    path: data.csv\n    time: day\n\
             metrics:\n\
             \x20 - {name: w_last, source: s, measure: count(*), window: 2 days}\n\
             \x20 - {name: w_first, source: s, measure: count(*), window: 2 days, period_agg: first}\n\
             \x20 - {name: w_avg, source: s, measure: count(*), window: 2 days, period_agg: average}\n\
             \x20 - {name: ytd_avg, source: s, measure: sum(x), to_date: year, period_agg: average}\n\
             kpis:\n\
             \x20 - {name: a, metric: w_last, grain: month, target: 1}\n\
             \x20 - {name: b, metric: w_first, grain: month, target: 1}\n\
             \x20 - {name: c, metric: w_avg, grain: month, target: 1}\n\
             \x20 - {name: e, metric: ytd_avg, grain: month, target: 1}\n",
        ),
    ])
}

/// §3.2 `period_agg`: which daily value of a rolling metric stands for the
/// period: the last day's (default), the first day's, or the mean over the
/// period's days (so far). Values computed by hand in the comments.
#[test]
fn period_agg_first_last_average() {
    let p = period_agg_project();
    let res = p.run("2024-02-03").results();
    // last: [Jan 30, Feb 1) is empty; February so far ends at as_of + 1:
    // [Feb 2, Feb 4) holds Feb 3. Previous like for like: [Jan 2, Jan 4).
    res.get("a", "2024-01").check("actual", Some(0.0));
    res.get("a", "2024-02")
        .check("actual", Some(1.0))
        .check("previous", Some(1.0));
    // first: [Dec 31, Jan 2) holds Jan 1; [Jan 31, Feb 2) holds Feb 1.
    res.get("b", "2024-01").check("actual", Some(1.0));
    res.get("b", "2024-02").check("actual", Some(1.0));
    // average of the daily 2-day counts: January 1,2,1,0,1,1 then 25 zeros;
    // February so far 1,1,1; previous = January's first 3 days (1,2,1).
    res.get("c", "2024-01").check("actual", Some(6.0 / 31.0));
    res.get("c", "2024-02")
        .check("actual", Some(1.0))
        .check("previous", Some(4.0 / 3.0));
    // average of the daily year-to-date sums: January 1,2,2,2 then 27 × 3;
    // February so far 4,4,5.
    res.get("e", "2024-01").check("actual", Some(88.0 / 31.0));
    res.get("e", "2024-02").check("actual", Some(13.0 / 3.0));
}

/// A `table:` source read from the DuckDB database kpic writes into (a
/// DuckDB file is a warehouse too): columns are checked against the table.
#[test]
fn table_source_in_the_duckdb_file() {
    let p = Project::new(&[(
        "models/m.yml",
        "sources:\n  - name: orders\n    table: main.orders\n    time: day\n\
         metrics:\n  - name: revenue\n    source: orders\n    measure: sum(amount)\n    filter: status = 'a'\n\
         kpis:\n  - {name: k, metric: revenue, grain: month, target: 5}\n",
    )]);
    std::fs::create_dir_all(p.path().join("target")).unwrap();
    {
        let conn = duckdb::Connection::open(p.db_path()).unwrap();
        conn.execute_batch(
            "CREATE TABLE orders AS SELECT * FROM (VALUES \
             (DATE '2024-01-05', 10.0, 'a'), (DATE '2024-01-20', 7.0, 'b'), \
             (DATE '2024-02-05', 20.0, 'a')) t(day, amount, status)",
        )
        .unwrap();
    }
    let res = p.run("2024-02-29").results();
    res.get("k", "2024-01").check("actual", Some(10.0));
    res.get("k", "2024-02")
        .check("actual", Some(20.0))
        .check("previous", Some(10.0));
    // A misspelt column is caught by `check` against the table's schema.
    p.write(
        "models/m.yml",
        &p.read("models/m.yml")
            .replace("status = 'a'", "statuss = 'a'"),
    );
    let db = p.db_path().to_string_lossy().into_owned();
    let out = p.kpic(&["run", "--db", &db]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("KPI211") && stderr.contains("did you mean `status`?"),
        "{stderr}"
    );
}

/// The five output tables of one project as (key, numbers) rows: the
/// text of every column that is not DOUBLE (`computed_at` aside), and the
/// DOUBLE columns, ordered by the key.
type TableRows = Vec<(Vec<String>, Vec<Option<f64>>)>;

fn output_tables(db: &Path) -> BTreeMap<&'static str, TableRows> {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut all = BTreeMap::new();
    for table in [
        "kpi_results",
        "kpi_metrics",
        "kpi_breakdowns",
        "kpi_drivers",
        "kpi_definitions",
    ] {
        let mut st = conn
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_name = ? AND column_name <> 'computed_at' ORDER BY ordinal_position",
            )
            .unwrap();
        let columns: Vec<(String, String)> = st
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let (numbers, keys): (Vec<_>, Vec<_>) = columns.iter().partition(|(_, t)| t == "DOUBLE");
        let key_sql: Vec<String> = keys
            .iter()
            .map(|(c, _)| format!("coalesce(CAST(\"{c}\" AS VARCHAR), '<null>')"))
            .collect();
        let number_sql: Vec<String> = numbers.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let sql = format!(
            "SELECT {}, {} FROM {table} ORDER BY {}",
            key_sql.join(", "),
            number_sql.join(", "),
            key_sql.join(", ")
        );
        let mut st = conn.prepare(&sql).unwrap();
        let rows = st
            .query_map([], |r| {
                let key = (0..keys.len())
                    .map(|i| r.get::<_, String>(i))
                    .collect::<Result<Vec<_>, _>>()?;
                let values = (0..numbers.len())
                    .map(|i| r.get::<_, Option<f64>>(keys.len() + i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((key, values))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        all.insert(table, rows);
    }
    all
}

fn assert_same_tables(what: &str, a: &Path, b: &Path) {
    let (a, b) = (output_tables(a), output_tables(b));
    for (table, rows) in &a {
        let other = &b[table];
        assert_eq!(rows.len(), other.len(), "{what}: {table} row count");
        assert!(
            !rows.is_empty() || *table == "kpi_drivers",
            "{what}: {table} is empty"
        );
        for ((ka, va), (kb, vb)) in rows.iter().zip(other) {
            assert_eq!(ka, kb, "{what}: {table}");
            for (x, y) in va.iter().zip(vb) {
                let same = match (x, y) {
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                    (None, None) => true,
                    _ => false,
                };
                assert!(same, "{what}: {table} {ka:?}: {va:?} vs {vb:?}");
            }
        }
    }
}

/// The example read from its CSV files, from Parquet copies of them and
/// from tables of the DuckDB database gives the same five tables. Sources
/// without joins in Parquet or in a table are read again by each
/// aggregate instead of being copied first (`cheap_to_read_again`), CSV
/// sources and sources with joins are materialized: both plans must agree,
/// at a fixed `as_of` and at `latest` (where the scans also give as_of).
#[test]
fn csv_parquet_and_table_sources_give_the_same_tables() {
    let csv = crate::dialects::example_project();
    let parquet = crate::dialects::example_project();
    let tables = crate::dialects::example_project();
    let sources = csv.read("models/sources.yml");
    let files: Vec<String> = sources
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path: ").map(str::to_string))
        .collect();
    assert_eq!(files.len(), 4, "{sources}");
    let mut as_parquet = sources.clone();
    let mut as_tables = String::new();
    std::fs::create_dir_all(tables.path().join("target")).unwrap();
    let loader = duckdb::Connection::open(tables.db_path()).unwrap();
    loader.execute_batch("CREATE SCHEMA analytics").unwrap();
    for (i, file) in files.iter().enumerate() {
        let copy = format!("data/source_{i}.parquet");
        let from = csv.path().join(file).to_string_lossy().replace('\'', "''");
        let to = parquet
            .path()
            .join(&copy)
            .to_string_lossy()
            .replace('\'', "''");
        std::fs::create_dir_all(parquet.path().join("data")).unwrap();
        loader
            .execute_batch(&format!(
                "COPY (SELECT * FROM read_csv_auto('{from}')) TO '{to}' (FORMAT parquet)"
            ))
            .unwrap();
        as_parquet = as_parquet.replace(&format!("path: {file}"), &format!("path: {copy}"));
    }
    for line in sources.lines() {
        match line.trim().strip_prefix("path: ") {
            Some(file) => {
                // The `table:` line that follows names the table to load.
                let table = sources
                    .split(line)
                    .nth(1)
                    .and_then(|rest| rest.lines().nth(1))
                    .and_then(|l| l.trim().strip_prefix("table: "))
                    .unwrap_or_else(|| panic!("no table after {line}"));
                let from = csv.path().join(file).to_string_lossy().replace('\'', "''");
                loader
                    .execute_batch(&format!(
                        "CREATE TABLE {table} AS SELECT * FROM read_csv_auto('{from}')"
                    ))
                    .unwrap();
            }
            None => {
                as_tables.push_str(line);
                as_tables.push('\n');
            }
        }
    }
    drop(loader);
    parquet.write("models/sources.yml", &as_parquet);
    tables.write("models/sources.yml", &as_tables);
    for as_of in [Some("2026-06-21"), None] {
        for p in [&csv, &parquet, &tables] {
            let out = p.try_run(as_of, &[]);
            p.expect_success(&out, &format!("kpic run, as_of {as_of:?}"));
        }
        let what = |form: &str| format!("{form} against CSV, as_of {as_of:?}");
        assert_same_tables(&what("Parquet"), &csv.db_path(), &parquet.db_path());
        assert_same_tables(&what("tables"), &csv.db_path(), &tables.db_path());
    }
    // The plans differ as described: Parquet sessions are read where they
    // are used, CSV sessions copied once, and support tickets (joined to
    // customers for a breakdown by plan) copied once from Parquet too.
    let plan = |p: &Project| {
        let out = p.kpic(&["compile", "--as-of", "2026-06-21"]);
        p.expect_success(&out, "kpic compile");
        p.read("target/compiled/duckdb/build.sql")
    };
    assert!(plan(&csv).contains("TEMPORARY TABLE kpic_scan_sessions"));
    let parquet_plan = plan(&parquet);
    assert!(!parquet_plan.contains("TEMPORARY TABLE kpic_scan_sessions"));
    // Nor a CTE, which DuckDB would materialize where a statement reads it
    // twice: the file is read in place.
    assert!(!parquet_plan.contains("kpic_scan_sessions AS ("));
    assert!(parquet_plan.contains("read_parquet"));
    assert!(plan(&parquet).contains("TEMPORARY TABLE kpic_scan_support_tickets"));
}

/// (ordered_at, channel, device, amount, status) rows of the roll-up
/// project: NULL channels and amounts, and orders after as_of.
type RollUpRow = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<f64>,
    &'static str,
);
const ROLL_UP_ROWS: [RollUpRow; 14] = [
    ("2024-01-03", Some("web"), "ios", Some(10.0), "paid"),
    ("2024-01-09", Some("app"), "android", Some(25.5), "paid"),
    ("2024-01-20", None, "ios", Some(4.0), "refunded"),
    ("2024-01-28", Some("web"), "android", None, "paid"),
    ("2024-02-02", Some("web"), "ios", Some(7.0), "paid"),
    ("2024-02-05", Some("app"), "ios", Some(-3.0), "refunded"),
    ("2024-02-11", None, "android", Some(90.0), "paid"),
    ("2024-02-26", Some("app"), "android", Some(12.0), "paid"),
    ("2024-03-01", Some("web"), "ios", Some(30.0), "paid"),
    ("2024-03-06", None, "ios", Some(1.5), "refunded"),
    ("2024-03-07", Some("app"), "android", None, "paid"),
    ("2024-03-20", Some("web"), "android", Some(500.0), "paid"),
    ("2024-03-31", Some("app"), "ios", Some(8.0), "paid"),
    ("2024-04-02", Some("web"), "ios", Some(1.0), "paid"),
];

/// Metrics of the roll-up project: (name, measure, filter).
const ROLL_UP_METRICS: [(&str, &str, Option<&str>); 7] = [
    ("revenue", "sum(amount)", None),
    ("orders", "count(*)", None),
    ("amounts", "count(amount)", None),
    ("biggest", "max(amount)", None),
    ("smallest", "min(amount)", None),
    ("avg_amount", "avg(amount)", None),
    ("paid", "sum(amount)", Some("status = 'paid'")),
];

fn roll_up_project() -> Project {
    let csv = csv_text(
        "ordered_at,channel,device,amount,status",
        ROLL_UP_ROWS.iter().map(|(t, ch, dev, a, st)| {
            format!(
                "{t},{},{dev},{},{st}",
                ch.unwrap_or(""),
                a.map(|v| v.to_string()).unwrap_or_default()
            )
        }),
    );
    let mut models = String::from(
        "sources:\n  - name: orders\n    path: data/orders.csv\n    time: ordered_at\n    dimensions: [channel, device, status]\nmetrics:\n",
    );
    for (name, measure, filter) in ROLL_UP_METRICS {
        models.push_str(&format!(
            "  - name: {name}\n    source: orders\n    measure: {measure}\n"
        ));
        if let Some(f) = filter {
            models.push_str(&format!("    filter: \"{f}\"\n"));
        }
    }
    models.push_str("kpis:\n");
    for (name, _, _) in ROLL_UP_METRICS {
        models.push_str(&format!(
            "  - {{name: {name}_kpi, metric: {name}, grain: month, breakdowns: [channel, device]}}\n"
        ));
    }
    Project::new(&[("models/m.yml", &models), ("data/orders.csv", &csv)])
}

/// Period aggregates rolled up from member aggregates
/// (`Renderer::roll_up_source`): every combinable aggregate (sum, count,
/// min, max, avg, a filtered sum) of KPIs with breakdowns over two
/// dimensions, one with NULL members, at a mid-month as_of so the
/// like-for-like twins are read too; each value against plain Rust over
/// the rows.
#[test]
fn rolled_up_period_aggregates_match_the_rows() {
    let metrics = ROLL_UP_METRICS;
    let p = roll_up_project();
    let plan = {
        let out = p.kpic(&["compile", "--as-of", "2024-03-10"]);
        p.expect_success(&out, "kpic compile");
        p.read("target/compiled/duckdb/build.sql")
    };
    // The month aggregate reads the member aggregate, not the rows.
    let month = plan
        .split("TEMPORARY TABLE kpic_agg_orders_month AS")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no month aggregate in\n{plan}"));
    assert!(month.contains("FROM kpic_agg_orders_month__by"), "{month}");

    let as_of = d("2024-03-10");
    let res = p.run("2024-03-10").results();
    // Rows of [from, to) on or before as_of.
    let rows = |from: NaiveDate, to: NaiveDate| -> Vec<_> {
        ROLL_UP_ROWS
            .iter()
            .filter(|r| {
                let t = d(r.0);
                t >= from && t < to && t <= as_of
            })
            .collect()
    };
    let amounts = |from, to| -> Vec<f64> { rows(from, to).iter().filter_map(|r| r.3).collect() };
    let value = |metric: &str, from: NaiveDate, to: NaiveDate| -> Option<f64> {
        let a = amounts(from, to);
        let fold = |f: fn(f64, f64) -> f64| a.iter().copied().reduce(f);
        match metric {
            "revenue" => (!a.is_empty()).then(|| a.iter().sum()),
            "orders" => Some(rows(from, to).len() as f64),
            "amounts" => Some(a.len() as f64),
            "biggest" => fold(f64::max),
            "smallest" => fold(f64::min),
            "avg_amount" => (!a.is_empty()).then(|| a.iter().sum::<f64>() / a.len() as f64),
            "paid" => {
                let paid: Vec<f64> = rows(from, to)
                    .iter()
                    .filter(|r| r.4 == "paid")
                    .filter_map(|r| r.3)
                    .collect();
                (!paid.is_empty()).then(|| paid.iter().sum())
            }
            other => panic!("no metric {other}"),
        }
    };
    let zero_when_empty =
        |metric: &str| matches!(metric, "revenue" | "orders" | "amounts" | "paid");
    let value_or_zero = |metric: &str, from, to| match value(metric, from, to) {
        None if zero_when_empty(metric) => Some(0.0),
        v => v,
    };
    for (metric, _, _) in metrics {
        let kpi = format!("{metric}_kpi");
        for (label, start, end) in [
            ("2024-01", d("2024-01-01"), d("2024-02-01")),
            ("2024-02", d("2024-02-01"), d("2024-03-01")),
        ] {
            res.get(&kpi, label)
                .check("actual", value_or_zero(metric, start, end));
        }
        // March is incomplete: its previous value is February's first ten
        // days (like for like).
        res.get(&kpi, "2024-03")
            .check(
                "actual",
                value_or_zero(metric, d("2024-03-01"), d("2024-04-01")),
            )
            .check(
                "previous",
                value_or_zero(metric, d("2024-02-01"), d("2024-02-11")),
            );
    }
}

fn measure_division_project() -> Project {
    Project::new(&[
        ("data.csv", "day,a,b\n2024-01-05,6,3\n2024-02-05,5,0\n"),
        (
            "models/m.yml",
            "sources:\n  - name: s\n    path: data.csv\n    time: day\n\
             metrics:\n  - name: r\n    source: s\n    measure: sum(a) / sum(b)\n\
             kpis:\n  - {name: k, metric: r, grain: month, target: 1}\n",
        ),
    ])
}

/// §7 "Division is NULL when the divisor is 0" holds inside measures too.
#[test]
fn division_inside_a_measure_is_null_on_zero() {
    let p = measure_division_project();
    let res = p.run("2024-02-29").results();
    res.get("k", "2024-01").check("actual", Some(2.0));
    res.get("k", "2024-02")
        .check("actual", None)
        .check_status("no_data");
}

fn shapley_project() -> Project {
    Project::new(&[
        (
            "data/orders.csv",
            "day,amount\n2024-01-02,40\n2024-01-09,20\n2024-01-16,30\n2024-01-23,10\n\
             2024-02-02,10\n2024-02-05,-50\n2024-02-09,10\n2024-02-16,5\n2024-02-20,5\n\
             2024-03-04,30\n2024-03-11,20\n2024-03-18,10\n",
        ),
        (
            "models/m.yml",
            "sources:\n  - name: orders\n    path: data/orders.csv\n    time: day\n\
             metrics:\n  - {name: profit, source: orders, measure: sum(amount)}\n\
             \x20 - {name: orders, source: orders, measure: count(*)}\n\
             \x20 - {name: ppo, expr: profit / orders}\n\
             kpis:\n  - {name: profit_kpi, metric: profit, grain: month, decomposition: orders * ppo}\n",
        ),
    ])
}

/// §7 Drivers: a log split is undefined when a value is ≤ 0; the exact
/// Shapley split takes over, and the contributions still sum to the
/// KPI's change. Here profit turns negative in February (refunds).
#[test]
fn negative_values_force_the_shapley_split() {
    let p = shapley_project();
    let db = p.run("2024-03-31");
    let dr = db.drivers();
    let res = db.results();
    // Jan: profit 100, 4 orders, ppo 25. Feb: -20, 5, -4. Mar: 60, 3, 20.
    // Feb Shapley: orders (5 - 4)(25 + -4)/2 = 10.5; ppo (-4 - 25)(4 + 5)/2 = -130.5.
    res.get("profit_kpi", "2024-02")
        .check("change", Some(-120.0));
    driver(&dr, "profit_kpi", "2024-02", "orders")
        .check_method("shapley")
        .check("contribution", Some(10.5))
        .check("share_of_change", Some(10.5 / -120.0));
    driver(&dr, "profit_kpi", "2024-02", "ppo")
        .check_method("shapley")
        .check("actual", Some(-4.0))
        .check("previous", Some(25.0))
        .check("contribution", Some(-130.5));
    // Mar: from a negative baseline, Shapley again: orders (3 - 5)(-4 + 20)/2 = -16,
    // ppo (20 - -4)(5 + 3)/2 = 96; change 80.
    driver(&dr, "profit_kpi", "2024-03", "orders")
        .check_method("shapley")
        .check("contribution", Some(-16.0));
    driver(&dr, "profit_kpi", "2024-03", "ppo").check("contribution", Some(96.0));
    res.get("profit_kpi", "2024-03").check("change", Some(80.0));
    // January has no baseline: no contribution; the identity is a product,
    // so the split that applies is `log`.
    driver(&dr, "profit_kpi", "2024-01", "orders")
        .check_method("log")
        .check("contribution", None);
}

/// Every project of the execution tests above, with the `as_of` its test
/// runs at, and `table:` next to each source `path:` (for the engine
/// tests). Left out: projects whose point is an error
/// (`offset_finer_than_the_grain_is_an_error`), the fixture projects
/// (listed by the dialect and engine tests themselves), and the project of
/// `table_source_in_the_duckdb_file`, whose source is a table the test
/// creates in its own DuckDB file (no local file to load elsewhere).
pub fn execution_projects() -> Vec<(String, Project, &'static str)> {
    type Constructor = fn() -> Project;
    let all: [(&str, Constructor, &'static str); 16] = [
        ("labels", labels_project, "2026-03-15"),
        ("leap", leap_project, "2025-03-01"),
        ("derived", derived_project, "2024-04-10"),
        ("status", status_project, "2024-04-15"),
        ("empty", empty_project, "2024-03-31"),
        ("window", window_project, "2024-03-10"),
        ("definitions", definitions_project, "2024-02-01"),
        ("timestamp", timestamp_project, "2024-03-31"),
        // Its test runs without --as-of: the latest time of the KPI sources.
        ("latest", latest_project, "2024-03-10"),
        ("ratio", ratio_project, "2024-03-31"),
        ("offset", offset_project, "2024-03-10"),
        ("period_agg", period_agg_project, "2024-02-03"),
        ("measure_division", measure_division_project, "2024-02-29"),
        ("shapley", shapley_project, "2024-03-31"),
        // Mid-week and mid-month: like-for-like ranges of trailing windows.
        ("trailing", crate::trailing::project, "2024-05-15"),
        // Period aggregates rolled up from member aggregates, mid-month.
        ("roll_up", roll_up_project, "2024-03-10"),
    ];
    all.into_iter()
        .map(|(name, project, as_of)| {
            let p = project();
            add_tables(&p);
            (name.to_string(), p, as_of)
        })
        .collect()
}

/// §7 Drivers with the largest identity kpic attributes (10 metrics): a
/// sum's exact Shapley split gives each term its own change. The identity
/// is evaluated once per coalition (1,024 of them) in the driver step, so
/// this runs in about a second (written out per driver it took DuckDB's
/// optimizer 20 s and 3.7 GB).
#[test]
fn ten_drivers_split_a_sum_exactly() {
    let n = 10;
    let mut csv = String::from("day,g,amount\n");
    // Group g sells g + 1 in January and 3g + 2 in February.
    for g in 0..n {
        csv.push_str(&format!("2024-01-10,{g},{}\n", g + 1));
        csv.push_str(&format!("2024-02-10,{g},{}\n", 3 * g + 2));
    }
    let mut models = String::from(
        "sources:\n  - name: s\n    path: data/s.csv\n    time: day\nmetrics:\n  - {name: total, source: s, measure: sum(amount)}\n",
    );
    for g in 0..n {
        models.push_str(&format!(
            "  - {{name: m{g}, source: s, measure: sum(amount), filter: g = {g}}}\n"
        ));
    }
    let terms: Vec<String> = (0..n).map(|g| format!("m{g}")).collect();
    models.push_str(&format!(
        "kpis:\n  - {{name: total_kpi, metric: total, grain: month, decomposition: {}}}\n",
        terms.join(" + ")
    ));
    let p = Project::new(&[("data/s.csv", &csv), ("models/m.yml", &models)]);
    let db = p.run("2024-02-29");
    let dr = db.drivers();
    for g in 0..n {
        let change = (3 * g + 2 - (g + 1)) as f64;
        driver(&dr, "total_kpi", "2024-02", &format!("m{g}"))
            .check_method("shapley")
            .check("contribution", Some(change));
    }
}
