//! `kpic explain` (SPEC §6): the JSON object's exact shape, the planted
//! cause of the repository's example, known causes of generated cubes at
//! depths 1–3 (additive, up-and-down, ratio), numbers checked against sums
//! computed here from the generated rows, the three formats, baselines
//! (`previous`, `last_year`, a label), usage errors, and `check`'s
//! decomposition warning (KPI256).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{Project, close};

/// `kpic explain ARGS… --format json` in `p`; parses stdout.
fn explain_json(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = p.kpic(&all);
    assert!(
        out.status.success(),
        "kpic {all:?} failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kpic explain --format json must print one JSON object ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

fn number_or_null(v: &Value, what: &str) {
    assert!(
        v.is_number() || v.is_null(),
        "{what} must be a number or null, got {v}"
    );
}

/// The object of SPEC §6, key for key and type for type.
fn assert_spec_shape(v: &Value) {
    let mut top = vec![
        "kpi",
        "period",
        "baseline",
        "actual",
        "previous",
        "change",
        "change_pct",
        "target",
        "status",
        "drivers",
        "root_causes",
        "action_plan",
    ];
    top.sort();
    assert_eq!(keys(v), top, "top-level keys of the explain object");
    assert!(v["kpi"].is_string());
    for p in ["period", "baseline"] {
        assert_eq!(keys(&v[p]), ["end", "label", "start"], "{p}");
        for k in ["end", "label", "start"] {
            assert!(v[p][k].is_string(), "{p}.{k} is a string");
        }
    }
    for k in ["actual", "previous", "change", "change_pct", "target"] {
        number_or_null(&v[k], k);
    }
    assert!(
        ["on_track", "at_risk", "off_track", "no_target", "no_data"]
            .contains(&v["status"].as_str().unwrap_or("")),
        "status {}",
        v["status"]
    );
    assert!(v["action_plan"].is_string() || v["action_plan"].is_null());
    for d in v["drivers"].as_array().expect("drivers is an array") {
        let mut want = vec![
            "metric",
            "actual",
            "previous",
            "change_pct",
            "contribution",
            "share_of_change",
            "method",
        ];
        want.sort();
        assert_eq!(keys(d), want, "driver keys");
        assert!(d["metric"].is_string());
        assert!(["log", "shapley", "none"].contains(&d["method"].as_str().unwrap_or("")));
        for k in [
            "actual",
            "previous",
            "change_pct",
            "contribution",
            "share_of_change",
        ] {
            number_or_null(&d[k], k);
        }
    }
    for c in v["root_causes"]
        .as_array()
        .expect("root_causes is an array")
    {
        let mut want = vec![
            "segment",
            "actual",
            "previous",
            "change",
            "share_of_change",
            "mix_effect",
            "rate_effect",
        ];
        want.sort();
        assert_eq!(keys(c), want, "root cause keys");
        for (_, member) in c["segment"].as_object().expect("segment is an object") {
            assert!(member.is_string() || member.is_null());
        }
        for k in [
            "actual",
            "previous",
            "change",
            "share_of_change",
            "mix_effect",
            "rate_effect",
        ] {
            number_or_null(&c[k], k);
        }
    }
}

/// Segments of the answer as sorted (dimension, member) lists.
fn segments(v: &Value) -> Vec<Vec<(String, String)>> {
    v["root_causes"]
        .as_array()
        .expect("root_causes")
        .iter()
        .map(|c| {
            let mut s: Vec<(String, String)> = c["segment"]
                .as_object()
                .expect("segment")
                .iter()
                .map(|(k, m)| (k.clone(), m.as_str().unwrap_or("NULL").to_string()))
                .collect();
            s.sort();
            s
        })
        .collect()
}

fn seg(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.sort();
    s
}

/// The repository's planted story: from 2026-04-01 conversion of mobile
/// sessions from paid search collapsed. Explaining 2026-Q2 names exactly
/// that segment first, and the conversion driver carries most of the
/// change.
#[test]
fn explain_finds_the_planted_cause_of_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = tempfile::tempdir().expect("temp dir");
    let out = crate::cli::kpic_in(
        cwd.path(),
        &[
            "--project",
            &root.to_string_lossy(),
            "explain",
            "quarterly_revenue",
            "--period",
            "2026-Q2",
            "--format",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_spec_shape(&v);
    assert_eq!(v["period"]["label"], "2026-Q2");
    assert_eq!(v["baseline"]["label"], "2026-Q1");
    assert_eq!(v["status"], "off_track");
    let segs = segments(&v);
    assert_eq!(
        segs.first(),
        Some(&seg(&[("channel", "paid_search"), ("device", "mobile")])),
        "the planted segment comes first: {segs:?}"
    );
    let top_driver = v["drivers"]
        .as_array()
        .expect("drivers")
        .iter()
        .max_by(|a, b| {
            let c = |d: &Value| d["contribution"].as_f64().unwrap_or(0.0).abs();
            c(a).total_cmp(&c(b))
        })
        .expect("a driver");
    assert_eq!(top_driver["metric"], "conversion_rate");
    // Attributed contributions add up to the KPI's change.
    let sum: f64 = v["drivers"]
        .as_array()
        .expect("drivers")
        .iter()
        .filter(|d| d["method"] != "none")
        .map(|d| d["contribution"].as_f64().expect("contribution"))
        .sum();
    let change = v["change"].as_f64().expect("change");
    assert!(close(change, sum), "drivers sum {sum} vs change {change}");
}

// ---------------------------------------------------------------------------
// Generated cubes with known causes
// ---------------------------------------------------------------------------

/// A deterministic xorshift generator (no dependency, same numbers on
/// every machine).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

const DIMS: [(&str, usize); 4] = [("a", 4), ("b", 3), ("c", 5), ("d", 3)];

/// One leaf: members of a, b, c, d; (baseline, current) of num and den.
type Leaf = ([String; 4], [f64; 2], [f64; 2]);

/// A cause: members it fixes (dimension index, member) and the factor
/// applied to the numerator of the leaves under it.
type Cause<'a> = (&'a [(usize, &'a str)], f64);

fn generate(seed: u64, causes: &[Cause]) -> Vec<Leaf> {
    let mut rng = Rng(seed);
    let mut leaves = Vec::new();
    for a in 1..=DIMS[0].1 {
        for b in 1..=DIMS[1].1 {
            for c in 1..=DIMS[2].1 {
                for d in 1..=DIMS[3].1 {
                    let members = [
                        format!("a{a}"),
                        format!("b{b}"),
                        format!("c{c}"),
                        format!("d{d}"),
                    ];
                    // Heavy tailed, some cells empty.
                    let u = rng.next();
                    let base = if u < 0.05 {
                        0.0
                    } else {
                        (100.0 / (1.0 - u * 0.9)).round()
                    };
                    let den0 = (1000.0 + 4000.0 * rng.next()).round();
                    let den1 = (den0 * (0.98 + 0.04 * rng.next())).round();
                    let mut factor = 1.02 + 0.04 * (rng.next() - 0.5);
                    for (fixed, f) in causes {
                        if fixed.iter().all(|(i, m)| members[*i] == *m) {
                            factor *= f;
                        }
                    }
                    leaves.push((members, [base, (base * factor).round()], [den0, den1]));
                }
            }
        }
    }
    leaves
}

/// A project over the leaves: rows dated in January (baseline) and
/// February (current); KPI `k` is `sum(num)` or `sum(num) / sum(den)`.
fn cube_project(leaves: &[Leaf], ratio: bool) -> Project {
    let mut csv = String::from("day,a,b,c,d,num,den\n");
    for (m, num, den) in leaves {
        for (period, day) in ["2026-01-15", "2026-02-15"].iter().enumerate() {
            csv.push_str(&format!(
                "{day},{},{},{},{},{},{}\n",
                m[0], m[1], m[2], m[3], num[period], den[period]
            ));
        }
    }
    let metric = if ratio { "rate" } else { "num_total" };
    let models = format!(
        "sources:\n  - name: leaves\n    path: data/leaves.csv\n    time: day\n    dimensions: [a, b, c, d]\n\
         metrics:\n  - {{name: num_total, source: leaves, measure: sum(num)}}\n\
         \x20 - {{name: den_total, source: leaves, measure: sum(den)}}\n\
         \x20 - {{name: rate, expr: num_total / den_total}}\n\
         kpis:\n  - name: k\n    metric: {metric}\n    grain: month\n    target: 1\n    breakdowns: [a, b, c, d]\n"
    );
    Project::new(&[
        (
            "kpic.yml",
            "name: cube\nmodels: [models]\nas_of: 2026-02-28\n",
        ),
        ("models/m.yml", &models),
        ("data/leaves.csv", &csv),
    ])
}

/// Sums of (num0, num1, den0, den1) over the leaves under `fixed`.
fn sums(leaves: &[Leaf], fixed: &[(usize, &str)]) -> [f64; 4] {
    let mut s = [0.0; 4];
    for (m, num, den) in leaves {
        if fixed.iter().all(|(i, v)| m[*i] == *v) {
            s[0] += num[0];
            s[1] += num[1];
            s[2] += den[0];
            s[3] += den[1];
        }
    }
    s
}

fn as_segment(fixed: &[(usize, &str)]) -> Vec<(String, String)> {
    let pairs: Vec<(&str, &str)> = fixed.iter().map(|(i, m)| (DIMS[*i].0, *m)).collect();
    seg(&pairs)
}

/// Explains February vs January of a generated cube; asserts the answer
/// is exactly the planted causes, and its numbers are the sums computed
/// here.
fn check_cube(seed: u64, causes: &[Cause], ratio: bool) {
    let leaves = generate(seed, causes);
    let p = cube_project(&leaves, ratio);
    let v = explain_json(&p, &["k", "--period", "2026-02"]);
    assert_spec_shape(&v);
    let mut want: Vec<_> = causes.iter().map(|(f, _)| as_segment(f)).collect();
    want.sort();
    let mut got = segments(&v);
    got.sort();
    assert_eq!(got, want, "root causes of seed {seed}");

    let total = sums(&leaves, &[]);
    let value = |s: [f64; 4], period: usize| {
        if ratio {
            s[period] / s[2 + period]
        } else {
            s[period]
        }
    };
    let (k1, k0) = (value(total, 1), value(total, 0));
    for (key, expected) in [("actual", k1), ("previous", k0), ("change", k1 - k0)] {
        let got = v[key].as_f64().expect(key);
        assert!(close(expected, got), "{key}: {got} vs {expected}");
    }
    for c in v["root_causes"].as_array().expect("root_causes") {
        let pairs: Vec<(usize, String)> = c["segment"]
            .as_object()
            .expect("segment")
            .iter()
            .map(|(d, m)| {
                let i = DIMS.iter().position(|(n, _)| n == d).expect("a dimension");
                (i, m.as_str().expect("member").to_string())
            })
            .collect();
        let fixed: Vec<(usize, &str)> = pairs.iter().map(|(i, m)| (*i, m.as_str())).collect();
        let s = sums(&leaves, &fixed);
        let (a1, a0) = (value(s, 1), value(s, 0));
        assert!(close(a1, c["actual"].as_f64().expect("actual")));
        assert!(close(a0, c["previous"].as_f64().expect("previous")));
        assert!(close(a1 - a0, c["change"].as_f64().expect("change")));
        let contribution = if ratio {
            // SPEC §7: mix (w1 − w0)(r0 − R0) + rate w1 (r1 − r0).
            let (w1, w0) = (s[3] / total[3], s[2] / total[2]);
            let mix = (w1 - w0) * (a0 - k0);
            let rate = w1 * (a1 - a0);
            assert!(close(mix, c["mix_effect"].as_f64().expect("mix")));
            assert!(close(rate, c["rate_effect"].as_f64().expect("rate")));
            mix + rate
        } else {
            assert!(c["mix_effect"].is_null() && c["rate_effect"].is_null());
            a1 - a0
        };
        let share = c["share_of_change"].as_f64().expect("share");
        assert!(
            close(contribution / (k1 - k0), share),
            "share {share} vs {}",
            contribution / (k1 - k0)
        );
    }
}

#[test]
fn explain_finds_a_cause_at_depth_1() {
    check_cube(11, &[(&[(1, "b2")], 0.4)], false);
}

#[test]
fn explain_finds_a_cause_at_depth_2() {
    check_cube(12, &[(&[(0, "a1"), (2, "c3")], 2.5)], false);
}

#[test]
fn explain_finds_a_cause_at_depth_3() {
    check_cube(13, &[(&[(0, "a2"), (1, "b1"), (3, "d3")], 0.1)], false);
}

/// One segment up and another down in the same change.
#[test]
fn explain_separates_an_increase_and_a_decrease() {
    check_cube(
        14,
        &[(&[(2, "c1")], 1.8), (&[(0, "a4"), (3, "d2")], 0.3)],
        false,
    );
}

/// A ratio KPI: the rate of one segment fell; numerator and denominator
/// are summed per segment, never averaged.
#[test]
fn explain_localizes_a_ratio_kpi() {
    check_cube(15, &[(&[(2, "c2"), (3, "d1")], 0.4)], true);
}

// ---------------------------------------------------------------------------
// Formats, baselines, errors, check
// ---------------------------------------------------------------------------

fn monthly_project() -> Project {
    let mut csv = String::from("day,channel,amount\n");
    // Two years of months; in 2025-03 the web channel doubles.
    for (month, web, app) in [
        ("2024-01", 100.0, 50.0),
        ("2024-02", 100.0, 50.0),
        ("2024-03", 110.0, 60.0),
        ("2025-01", 100.0, 55.0),
        ("2025-02", 105.0, 50.0),
        ("2025-03", 210.0, 52.0),
    ] {
        csv.push_str(&format!("{month}-10,web,{web}\n{month}-12,app,{app}\n"));
    }
    Project::new(&[
        ("data/orders.csv", &csv),
        (
            "models/m.yml",
            "sources:\n  - name: orders\n    path: data/orders.csv\n    time: day\n    dimensions: [channel]\n\
             metrics:\n  - {name: revenue, source: orders, measure: sum(amount), format: currency}\n\
             kpis:\n  - name: rev\n    metric: revenue\n    label: Revenue\n    grain: month\n    target: 300\n    owner: sales\n\
             \x20   breakdowns: [channel]\n    action_plan: Call the web team.\n",
        ),
    ])
}

#[test]
fn explain_baselines_previous_last_year_and_a_label() {
    let p = monthly_project();
    let as_of = ["--as-of", "2025-03-31"];
    let prev = explain_json(&p, &["rev", as_of[0], as_of[1]]);
    assert_eq!(prev["period"]["label"], "2025-03");
    assert_eq!(prev["baseline"]["label"], "2025-02");
    assert_eq!(prev["previous"].as_f64(), Some(155.0));
    assert_eq!(prev["actual"].as_f64(), Some(262.0));
    assert_eq!(segments(&prev), vec![seg(&[("channel", "web")])]);
    let ly = explain_json(&p, &["rev", "--vs", "last_year", as_of[0], as_of[1]]);
    assert_eq!(ly["baseline"]["label"], "2024-03");
    assert_eq!(ly["previous"].as_f64(), Some(170.0));
    let label = explain_json(&p, &["rev", "--vs", "2024-01", as_of[0], as_of[1]]);
    assert_eq!(label["baseline"]["start"], "2024-01-01");
    assert_eq!(label["baseline"]["end"], "2024-02-01");
    assert_eq!(label["previous"].as_f64(), Some(150.0));
    assert_eq!(label["change"].as_f64(), Some(112.0));
}

#[test]
fn explain_text_and_markdown_tell_what_so_what_now_what() {
    let p = monthly_project();
    for (format, marks) in [
        ("text", ["What", "So What", "Now What"]),
        ("markdown", ["## What", "## So What", "## Now What"]),
    ] {
        let out = p.kpic(&[
            "explain",
            "rev",
            "--as-of",
            "2025-03-31",
            "--format",
            format,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut at = 0;
        for m in marks {
            let found = text[at..]
                .find(m)
                .unwrap_or_else(|| panic!("{format}: `{m}` missing or out of order:\n{text}"));
            at += found + m.len();
        }
        // Numbers in the metric's format (currency), the segment, the plan.
        assert!(text.contains("$262"), "{format}:\n{text}");
        assert!(text.contains("+$107"), "{format}:\n{text}");
        assert!(text.contains("channel = web"), "{format}:\n{text}");
        assert!(text.contains("Call the web team."), "{format}:\n{text}");
        assert!(text.contains("sales"), "{format}:\n{text}");
    }
}

#[test]
fn explain_usage_errors_exit_2() {
    let p = monthly_project();
    for (args, needle) in [
        (vec!["explain", "revv"], "did you mean `rev`"),
        (
            vec!["explain", "rev", "--period", "2025-Q1"],
            "grain is month",
        ),
        (
            vec!["explain", "rev", "--period", "2023-01"],
            "no period 2023-01",
        ),
        (
            vec!["explain", "rev", "--vs", "yesterday"],
            "neither `previous`",
        ),
        (vec!["explain", "rev", "--depth", "0"], "at least 1"),
    ] {
        let out = p.kpic(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: `{needle}` not in:\n{err}");
    }
}

/// `kpic check` warns (KPI256, exit 0) when a declared decomposition does
/// not hold on the data beyond 0.1%, and stays quiet when it does.
#[test]
fn check_warns_when_a_decomposition_does_not_hold() {
    let csv = "day,amount,status\n2024-01-03,10,ok\n2024-01-05,30,ok\n2024-02-01,20,cancelled\n2024-02-07,40,ok\n";
    let models = |decomposition: &str| {
        format!(
            "sources:\n  - name: orders\n    path: data/orders.csv\n    time: day\n\
             metrics:\n  - {{name: revenue, source: orders, measure: sum(amount)}}\n\
             \x20 - {{name: orders, source: orders, measure: count(*)}}\n\
             \x20 - {{name: ok_orders, source: orders, measure: count(*), filter: \"status = 'ok'\"}}\n\
             \x20 - {{name: aov, expr: revenue / orders}}\n\
             kpis:\n  - name: rev\n    metric: revenue\n    grain: month\n    target: 1\n    owner: o\n    action_plan: a\n\
             \x20   decomposition: {decomposition}\n"
        )
    };
    let holds = Project::new(&[
        ("data/orders.csv", csv),
        ("models/m.yml", &models("orders * aov")),
    ]);
    let out = holds.kpic(&["check"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("KPI256"));

    // ok_orders misses February's cancelled order: 1 × 30 ≠ 60.
    let broken = Project::new(&[
        ("data/orders.csv", csv),
        ("models/m.yml", &models("ok_orders * aov")),
    ]);
    let out = broken.kpic(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a warning, not an error: {err}");
    assert!(err.contains("warning[KPI256]"), "{err}");
    assert!(err.contains("2024-02"), "names the period: {err}");
    assert!(
        err.contains("models/m.yml:"),
        "points at the identity: {err}"
    );
}

/// Sanity of the helpers: the generated cube has the planted effect.
#[test]
fn generated_cube_helper_plants_the_cause() {
    let leaves = generate(3, &[(&[(1, "b2")], 0.5)]);
    assert_eq!(leaves.len(), 4 * 3 * 5 * 3);
    let s = sums(&leaves, &[(1, "b2")]);
    let r = sums(&leaves, &[(1, "b1")]);
    assert!(s[1] / s[0] < 0.55 && r[1] / r[0] > 0.98, "{s:?} {r:?}");
    let by_member: BTreeMap<String, usize> =
        leaves.iter().fold(BTreeMap::new(), |mut m, (k, _, _)| {
            *m.entry(k[0].clone()).or_default() += 1;
            m
        });
    assert_eq!(by_member.len(), 4);
}

/// Drivers of `explain` vs the previous period are kpi_drivers' numbers:
/// the SQL split of `kpic run` and explain's split agree, period by period,
/// for the log split (February) and the Shapley fallback (March, flat KPI).
#[test]
fn explain_drivers_match_kpi_drivers() {
    let p = crate::execute::ratio_project();
    let db = p.run("2024-03-31");
    let table = db.drivers();
    for period in ["2024-02", "2024-03"] {
        let v = explain_json(
            &p,
            &["revenue_kpi", "--period", period, "--as-of", "2024-03-31"],
        );
        let drivers = v["drivers"].as_array().expect("drivers");
        assert_eq!(drivers.len(), 3, "{period}: orders, aov, big_orders");
        for d in drivers {
            let name = d["metric"].as_str().expect("metric");
            let row = table
                .iter()
                .find(|r| r.kpi == "revenue_kpi" && r.period == period && r.driver == name)
                .unwrap_or_else(|| panic!("kpi_drivers has no {name} row for {period}"));
            assert_eq!(
                Some(d["method"].as_str().expect("method")),
                row.method.as_deref()
            );
            for (key, expected) in [
                ("actual", row.actual),
                ("previous", row.previous),
                ("change_pct", row.change_pct),
                ("contribution", row.contribution),
                ("share_of_change", row.share_of_change),
            ] {
                match (expected, d[key].as_f64()) {
                    (None, None) => {}
                    (Some(e), Some(g)) => assert!(close(e, g), "{period} {name} {key}: {g} vs {e}"),
                    (e, g) => panic!("{period} {name} {key}: explain {g:?}, kpi_drivers {e:?}"),
                }
            }
        }
    }
}

/// Odd arguments and odd data never make explain panic: each ends with a
/// clear error (exit 1 or 2) or an answer (exit 0).
#[test]
fn explain_never_panics_on_odd_input() {
    let p = monthly_project();
    for args in [
        vec!["explain", "rev", "--period", "2025-13"],
        vec!["explain", "rev", "--period", "2025-W99"],
        vec!["explain", "rev", "--vs", "2025-02-30"],
        vec![
            "explain",
            "rev",
            "--vs",
            "last_year",
            "--period",
            "2024-01",
            "--as-of",
            "2025-03-31",
        ],
        vec![
            "explain",
            "rev",
            "--depth",
            "1000",
            "--top",
            "100000",
            "--as-of",
            "2025-03-31",
        ],
        vec!["explain", "rev", "--top", "0"],
        vec!["explain", "révénue"],
        vec!["explain", "rev", "--as-of", "1970-01-01"],
        vec!["explain", "rev", "--as-of", "9999-12-31", "--timeout", "30"],
        vec!["explain", "rev", "--timeout", "1e300"],
        vec!["explain", "rev", "--timeout", "-1"],
    ] {
        let out = p.kpic(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0..=2)) && !err.contains("panicked"),
            "{args:?}: {:?}\n{err}",
            out.status.code()
        );
    }
    // A data file with only a header: the measure's column has no type.
    let empty = Project::new(&[
        ("data/orders.csv", "day,channel,amount\n"),
        (
            "models/m.yml",
            "sources:\n  - {name: orders, path: data/orders.csv, time: day, dimensions: [channel]}\n\
             metrics:\n  - {name: revenue, source: orders, measure: sum(amount)}\n\
             kpis:\n  - {name: rev, metric: revenue, grain: month, breakdowns: [channel]}\n",
        ),
    ]);
    let out = empty.kpic(&["explain", "rev", "--as-of", "2024-01-31"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("models/m.yml:"),
        "points at the measure: {err}"
    );
}
