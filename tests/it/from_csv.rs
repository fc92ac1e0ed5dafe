//! `kpic init --from-csv` (issue 6, point 7): CSV files the test writes
//! itself (a sales file with dates, categories, amounts and ids; a file of
//! timestamps with hostile headers; a file without time; a gzipped file; a
//! text time column with junk) become a project that `kpic check` and
//! `kpic run` accept at once, and whose KPI and metric values equal sums
//! the test computes from the rows it wrote. Error cases: missing, binary,
//! empty, header-only, non-UTF-8 files, and existing project files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::common::*;

/// A deterministic pseudo-random sequence (no kpic code, no crate).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `kpic --project DIR --color never ARGS` run from `cwd`.
fn kpic_in(cwd: &Path, project: &Path, args: &[&str]) -> Output {
    let project = project.to_str().expect("temporary paths are UTF-8");
    let mut all = vec!["--project", project];
    all.extend_from_slice(args);
    crate::cli::kpic_in(cwd, &all)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn expect_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "`{what}` failed ({})\n--- stderr ---\n{}\n--- stdout ---\n{}",
        out.status,
        stderr(out),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The sales file: one row per order. Returns the text and the rows
/// (date, region, channel, amount, quantity).
struct Sale {
    date: NaiveDate,
    region: &'static str,
    channel: &'static str,
    amount_cents: i64,
}

fn sales_csv() -> (String, Vec<Sale>) {
    let mut rng = Lcg(7);
    let regions = ["north", "south", "east"];
    let channels = ["web", "store"];
    let mut rows = Vec::new();
    let mut text =
        String::from("order_id,order_date,customer_id,region,Channel Name,amount,quantity,notes\n");
    for i in 1..=300 {
        // 2024-01-01 .. 2024-05-29: a span under a year, over 60 days: weeks.
        let date = d("2024-01-01") + Duration::days(rng.next(150) as i64);
        let sale = Sale {
            date,
            region: regions[rng.next(3) as usize],
            channel: channels[rng.next(2) as usize],
            amount_cents: 100 + rng.next(99_900) as i64,
        };
        let customer = 1 + rng.next(40);
        let quantity = 1 + rng.next(5);
        text.push_str(&format!(
            "{i},{},{customer},{},{},{}.{:02},{quantity},note {i}\n",
            ymd(sale.date),
            sale.region,
            sale.channel,
            sale.amount_cents / 100,
            sale.amount_cents % 100
        ));
        rows.push(sale);
    }
    (text, rows)
}

/// Events with hostile headers: a space, a keyword, unicode, quotes, two
/// names equal but for case, two that collide once sanitized, Jinja.
struct Event {
    date: NaiveDate,
    said: String,
    value: f64,
}

const EVENTS_HEADER: &str =
    "order date,select,Größe,\"say \"\"hi\"\"\",Value,value,a-b,a_b,{{x}}\n";

fn events_csv() -> (String, Vec<Event>) {
    let mut rng = Lcg(11);
    let mut rows = Vec::new();
    let mut text = String::from(EVENTS_HEADER);
    for i in 0..120 {
        // 2024-03-01 .. 2024-03-28: under 60 days: days.
        let day = rng.next(28) as i64;
        let date = d("2024-03-01") + Duration::days(day);
        let said = format!("q{}", rng.next(3));
        let value = rng.next(1000) as f64 / 4.0;
        text.push_str(&format!(
            "{} {:02}:{:02}:00,{},{},{said},{value},{},{},{},{}\n",
            ymd(date),
            rng.next(24),
            rng.next(60),
            ["x", "y"][rng.next(2) as usize],
            ["s", "m", "l"][rng.next(3) as usize],
            i % 5,
            i as f64 * 1.5,
            i % 4,
            ["p", "q"][i % 2],
        ));
        rows.push(Event { date, said, value });
    }
    (text, rows)
}

/// Semicolons, no time column.
fn untimed_csv() -> (String, f64) {
    let mut text = String::from("product;price;category\n");
    let mut total = 0.0;
    for i in 0..30 {
        let price = i as f64 * 2.5;
        total += price;
        text.push_str(&format!("p{i};{price};{}\n", ["a", "b"][i % 2]));
    }
    (text, total)
}

/// `models/<file>.yml` as YAML.
fn model(dir: &Path, file: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(dir.join("models").join(file))
        .unwrap_or_else(|e| panic!("read models/{file}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("models/{file} is not YAML: {e}"))
}

fn entry<'a>(doc: &'a serde_yaml::Value, list: &str, name: &str) -> &'a serde_yaml::Value {
    doc[list]
        .as_sequence()
        .unwrap_or_else(|| panic!("no `{list}` list"))
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {list} entry named `{name}` in {doc:?}"))
}

/// Evaluates a generated metric's `measure` in DuckDB over its source file,
/// as written (the Jinja `raw` wrapper removed): this checks that the
/// column quoting reaches the column the test means.
fn measure_value(dir: &Path, metric: &str) -> f64 {
    let metrics = model(dir, "metrics.yml");
    let sources = model(dir, "sources.yml");
    let m = entry(&metrics, "metrics", metric);
    let source = entry(&sources, "sources", m["source"].as_str().expect("source"));
    let measure = m["measure"]
        .as_str()
        .expect("measure")
        .replace("{% raw %}", "")
        .replace("{% endraw %}", "");
    let path = dir.join(source["path"].as_str().expect("path"));
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    let sql = format!(
        "SELECT CAST({measure} AS DOUBLE) FROM read_csv_auto('{}')",
        path.display()
    );
    conn.query_row(&sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn sniffed_project_checks_runs_and_sums_match_the_rows() {
    let (sales, sale_rows) = sales_csv();
    let (events, event_rows) = events_csv();
    let (untimed, untimed_total) = untimed_csv();
    let p = Project::new(&[
        ("data/sales.csv", &sales),
        ("data/events.csv", &events),
        ("data/untimed.csv", &untimed),
    ]);
    let out = p.kpic(&[
        "init",
        "--from-csv",
        "data/sales.csv",
        "data/events.csv",
        "data/untimed.csv",
    ]);
    expect_ok(&out, "kpic init --from-csv");
    for f in [
        "kpic.yml",
        "README.md",
        "models/sources.yml",
        "models/metrics.yml",
        "models/kpis.yml",
    ] {
        assert!(p.path().join(f).is_file(), "{f} was not written");
    }
    // Files inside the project are referenced in place, not copied.
    assert!(!p.path().join("fixtures").exists());
    let sources = model(p.path(), "sources.yml");
    assert_eq!(
        entry(&sources, "sources", "sales")["path"].as_str(),
        Some("data/sales.csv")
    );

    // The roles the sniffer gave: time, dimensions, and no time for the
    // untimed file (so no KPI on it).
    let s = entry(&sources, "sources", "sales");
    assert_eq!(s["time"].as_str(), Some("order_date"));
    let dims: Vec<&str> = s["dimensions"]
        .as_sequence()
        .expect("sales dimensions")
        .iter()
        .map(|d| d.as_str().or(d["name"].as_str()).expect("dimension name"))
        .collect();
    assert_eq!(
        dims,
        ["region", "channel_name"],
        "notes (unique text) is no dimension"
    );
    let e = entry(&sources, "sources", "events");
    assert_eq!(e["time"].as_str(), Some("\"order date\""));
    assert!(entry(&sources, "sources", "untimed").get("time").is_none());
    let kpis = model(p.path(), "kpis.yml");
    let kpi_names: Vec<&str> = kpis["kpis"]
        .as_sequence()
        .expect("kpis")
        .iter()
        .map(|k| k["name"].as_str().expect("kpi name"))
        .collect();
    assert_eq!(
        kpi_names,
        [
            "sales_rows_weekly",
            "sales_amount_weekly",
            "events_rows_daily",
            "events_value_daily"
        ]
    );
    assert_eq!(
        entry(&kpis, "kpis", "sales_amount_weekly")["breakdowns"][1].as_str(),
        Some("channel_name")
    );

    // Metrics: ids give distinct counts (not sums), amounts sums and
    // averages, integers sums only; hostile names reach the right column.
    let metrics = model(p.path(), "metrics.yml");
    let names: Vec<&str> = metrics["metrics"]
        .as_sequence()
        .expect("metrics")
        .iter()
        .map(|m| m["name"].as_str().expect("metric name"))
        .collect();
    for expected in [
        "sales_rows",
        "sales_distinct_order_id",
        "sales_distinct_customer_id",
        "sales_amount",
        "sales_amount_avg",
        "sales_quantity",
        "events_value",
        "events_value_1",
        "events_a_b",
        "events_a_b_2",
        "untimed_rows",
        "untimed_price",
    ] {
        assert!(
            names.contains(&expected),
            "no metric {expected} in {names:?}"
        );
    }
    assert!(
        !names.contains(&"sales_order_id"),
        "an id is not summed: {names:?}"
    );
    assert!(
        !names.contains(&"sales_quantity_avg"),
        "integer columns get no average"
    );
    let amount_total: f64 = sale_rows
        .iter()
        .map(|s| s.amount_cents as f64 / 100.0)
        .sum();
    assert_num(
        "sum(amount)",
        Some(amount_total),
        Some(measure_value(p.path(), "sales_amount")),
    );
    let value_total: f64 = event_rows.iter().map(|e| e.value).sum();
    assert_num(
        "sum(Value)",
        Some(value_total),
        Some(measure_value(p.path(), "events_value")),
    );
    let lower_value_total: f64 = (0..120).map(|i| (i % 5) as f64).sum();
    assert_num(
        "sum(value), DuckDB's value_1",
        Some(lower_value_total),
        Some(measure_value(p.path(), "events_value_1")),
    );
    let ab_total: f64 = (0..120).map(|i| i as f64 * 1.5).sum();
    assert_num(
        "sum(a-b)",
        Some(ab_total),
        Some(measure_value(p.path(), "events_a_b")),
    );
    let a_b_total: f64 = (0..120).map(|i| (i % 4) as f64).sum();
    assert_num(
        "sum(a_b)",
        Some(a_b_total),
        Some(measure_value(p.path(), "events_a_b_2")),
    );
    assert_num(
        "sum(price)",
        Some(untimed_total),
        Some(measure_value(p.path(), "untimed_price")),
    );

    // `kpic check`: exit 0, and the hygiene warnings the user must address.
    let check = p.kpic(&["check"]);
    expect_ok(&check, "kpic check");
    let text = stderr(&check);
    for code in ["KPI252", "KPI253", "KPI254"] {
        assert!(
            text.contains(code),
            "kpic check does not warn {code}:\n{text}"
        );
    }

    // `kpic run`: the weekly sales KPIs and the daily events KPI equal the
    // sums of the rows, period by period.
    let as_of = d("2024-05-31");
    let db = p.run(&ymd(as_of));
    let results = db.results();
    let first_sale = sale_rows.iter().map(|s| s.date).min().unwrap();
    let amounts: Vec<(NaiveDate, f64)> = sale_rows
        .iter()
        .map(|s| (s.date, s.amount_cents as f64 / 100.0))
        .collect();
    let counts: Vec<(NaiveDate, f64)> = sale_rows.iter().map(|s| (s.date, 1.0)).collect();
    check_additive(
        &results,
        "sales_amount_weekly",
        &additive(Grain::Week, &amounts, first_sale, as_of),
    );
    check_additive(
        &results,
        "sales_rows_weekly",
        &additive(Grain::Week, &counts, first_sale, as_of),
    );
    let first_event = event_rows.iter().map(|e| e.date).min().unwrap();
    let values: Vec<(NaiveDate, f64)> = event_rows.iter().map(|e| (e.date, e.value)).collect();
    let expected_events = additive(Grain::Day, &values, first_event, as_of);
    check_additive(&results, "events_value_daily", &expected_events);
    let metric_rows = db.metrics();
    for e in &expected_events {
        check_metric(
            &metric_rows,
            "events_value",
            "day",
            &e.period,
            Some(e.actual),
        );
    }
    assert!(
        results
            .kpi("sales_rows_weekly")
            .iter()
            .all(|r| r.owner.is_none())
    );

    // Breakdowns over the `say "hi"` column: each member's sum on a day.
    let day = expected_events
        .iter()
        .find(|e| e.actual > 0.0)
        .expect("a day with events");
    let conn = db.conn();
    let mut stmt = conn
        .prepare(
            "SELECT member, CAST(actual AS DOUBLE) FROM kpi_breakdowns \
             WHERE kpi = 'events_value_daily' AND dimension = 'say_hi' AND period = ?",
        )
        .expect("query kpi_breakdowns");
    let got: BTreeMap<String, f64> = stmt
        .query_map([&day.period], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("kpi_breakdowns rows")
        .collect::<Result<_, _>>()
        .expect("read kpi_breakdowns");
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for e in event_rows.iter().filter(|e| ymd(e.date) == day.period) {
        *want.entry(e.said.clone()).or_default() += e.value;
    }
    for (member, value) in &want {
        assert_num(
            &format!("kpi_breakdowns say_hi={member} on {}", day.period),
            Some(*value),
            got.get(member).copied(),
        );
    }
}

#[test]
fn outside_files_are_copied_gzip_and_text_times_are_read() {
    let ws = Project::new(&[]);
    // A text time column with junk (DuckDB types it VARCHAR): parsed with
    // TRY_CAST; the junk rows have no period. No numeric column at all.
    let mut signups = String::from("created,plan,ref\n");
    let mut dates = Vec::new();
    for i in 0..40 {
        if i == 17 {
            signups.push_str("n/a,free,r17\n");
            continue;
        }
        let date = d("2023-01-01") + Duration::days(i * 11);
        dates.push(date);
        signups.push_str(&format!(
            "{},{},r{i}\n",
            ymd(date),
            ["free", "pro"][i as usize % 2]
        ));
    }
    ws.write("in/2024 Sign-ups.csv", &signups);
    // Two files whose names collide once sanitized.
    ws.write("in/sales.csv", "id,score\n1,3\n2,4\n3,5\n");
    ws.write("in/other/Sales.csv", "id,score\n1,10\n2,20\n");
    // Times with offsets (TIMESTAMP WITH TIME ZONE): read in UTC, so the
    // 01:30+02:00 row belongs to the day before.
    ws.write(
        "in/tz.csv",
        "ts,amount\n2024-03-01T10:00:00Z,1.5\n2024-03-02T01:30:00+02:00,2.25\n\
         2024-03-02T12:00:00Z,4\n2024-03-04T00:00:00Z,8\n",
    );
    let tz_amounts = [
        (d("2024-03-01"), 1.5),
        (d("2024-03-01"), 2.25),
        (d("2024-03-02"), 4.0),
        (d("2024-03-04"), 8.0),
    ];
    // A gzipped CSV, written by DuckDB.
    let (events, event_rows) = events_csv();
    ws.write("in/plain_events.csv", &events);
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    let dir = ws.path().join("in");
    conn.execute_batch(&format!(
        "COPY (SELECT * FROM read_csv('{0}/plain_events.csv', header = true, all_varchar = true)) \
         TO '{0}/events.csv.gz' (FORMAT csv, HEADER, COMPRESSION gzip)",
        dir.display()
    ))
    .expect("write the gzipped CSV");

    let out = kpic_in(
        ws.path(),
        ws.path(),
        &[
            "init",
            "proj",
            "--from-csv",
            "in/2024 Sign-ups.csv",
            "in/sales.csv",
            "in/other/Sales.csv",
            "in/events.csv.gz",
            "in/tz.csv",
        ],
    );
    expect_ok(&out, "kpic init proj --from-csv");
    let proj = ws.path().join("proj");
    for f in [
        "fixtures/data/n2024_sign_ups.csv",
        "fixtures/data/sales.csv",
        "fixtures/data/sales_2.csv",
        "fixtures/data/events.csv.gz",
    ] {
        assert!(proj.join(f).is_file(), "{f} was not copied");
    }
    let sources = model(&proj, "sources.yml");
    assert_eq!(
        entry(&sources, "sources", "n2024_sign_ups")["time"].as_str(),
        Some("TRY_CAST(created AS TIMESTAMP)")
    );
    assert_eq!(
        entry(&sources, "sources", "tz")["time"].as_str(),
        Some("CAST(ts AS TIMESTAMP)")
    );
    assert_eq!(
        entry(&sources, "sources", "sales_2")["path"].as_str(),
        Some("fixtures/data/sales_2.csv")
    );
    assert!(
        entry(&sources, "sources", "sales").get("time").is_none(),
        "no time column, no time"
    );
    assert_num(
        "sum(score) of the 2nd Sales",
        Some(30.0),
        Some(measure_value(&proj, "sales_2_score")),
    );

    expect_ok(&kpic_in(ws.path(), &proj, &["check"]), "kpic check");
    let db_path = proj.join("target").join("t.duckdb");
    let as_of = d("2024-03-31");
    let run = kpic_in(
        ws.path(),
        &proj,
        &[
            "run",
            "--as-of",
            &ymd(as_of),
            "--db",
            &db_path.to_string_lossy(),
        ],
    );
    expect_ok(&run, "kpic run");
    let results = Db { path: db_path }.results();
    // 2023-01-01 + 39 * 11 days: more than a year of data: months.
    let counts: Vec<(NaiveDate, f64)> = dates.iter().map(|d| (*d, 1.0)).collect();
    check_additive(
        &results,
        "n2024_sign_ups_rows_monthly",
        &additive(Grain::Month, &counts, dates[0], as_of),
    );
    assert!(
        results.kpi("n2024_sign_ups_rows_monthly").len() > 12,
        "monthly periods over the whole span"
    );
    let first_event = event_rows.iter().map(|e| e.date).min().unwrap();
    let values: Vec<(NaiveDate, f64)> = event_rows.iter().map(|e| (e.date, e.value)).collect();
    check_additive(
        &results,
        "events_value_daily",
        &additive(Grain::Day, &values, first_event, as_of),
    );
    check_additive(
        &results,
        "tz_amount_daily",
        &additive(Grain::Day, &tz_amounts, d("2024-03-01"), as_of),
    );
    assert!(
        results.kpis().iter().all(|k| !k.starts_with("sales")),
        "no KPI without time"
    );

    // Running it again never overwrites: exit 2, naming the file.
    let again = kpic_in(
        ws.path(),
        ws.path(),
        &["init", "proj", "--from-csv", "in/sales.csv"],
    );
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn bad_inputs_are_clear_errors_and_write_nothing() {
    let ws = Project::new(&[("ok.csv", "day,amount\n2024-01-01,1\n2024-01-02,2\n")]);
    std::fs::write(
        ws.path().join("binary.csv"),
        [0x00u8, 0x01, 0xff, 0x10, 0x00, 0x42],
    )
    .unwrap();
    std::fs::write(ws.path().join("empty.csv"), "").unwrap();
    std::fs::write(ws.path().join("header_only.csv"), "a,b,c\n").unwrap();
    std::fs::write(ws.path().join("latin1.csv"), b"caf\xe9,amount\nx,1\n").unwrap();
    std::fs::write(ws.path().join("data.parquet"), "PAR1").unwrap();
    let cases: [(&str, &str); 6] = [
        ("missing.csv", "missing.csv"),
        ("binary.csv", "binary"),
        ("empty.csv", "empty"),
        ("header_only.csv", "no rows"),
        ("latin1.csv", "UTF-8"),
        ("data.parquet", "not a CSV"),
    ];
    for (file, says) in cases {
        let dir = format!("proj_{}", file.replace('.', "_"));
        let out = kpic_in(
            ws.path(),
            ws.path(),
            &["init", &dir, "--from-csv", "ok.csv", file],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(
            err.contains(says),
            "{file}: the error should say `{says}`:\n{err}"
        );
        assert!(
            err.contains(file),
            "{file}: the error should name the file:\n{err}"
        );
        assert!(!err.contains("panicked"), "{file}: {err}");
        assert!(!ws.path().join(&dir).exists(), "{file}: {dir} was created");
    }

    // An existing project file: exit 2 naming it, the file untouched and
    // nothing else written.
    ws.write("proj/kpic.yml", "name: mine\n");
    let out = kpic_in(
        ws.path(),
        ws.path(),
        &["init", "proj", "--from-csv", "ok.csv"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("kpic.yml") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(ws.read("proj/kpic.yml"), "name: mine\n");
    assert!(!ws.path().join("proj/models").exists());
    assert!(!ws.path().join("proj/fixtures").exists());
}
