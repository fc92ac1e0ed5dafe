//! `kpic report`: the self-contained HTML KPI report.
//!
//! Without a browser: the page is written, references nothing outside
//! itself, has one card per KPI whose numbers are the kpi_results rows
//! read back here with SQL of our own, escapes labels, and shows explicit
//! empty states. With headless Chromium (`KPIC_CHROMIUM`, from
//! tests/tools/setup.sh): the page renders with no script error and no
//! failed or blocked load (a hook script and Chromium's console log both
//! watch; deliberately broken pages prove they catch each kind), the cards
//! and charts are in the rendered DOM, and a screenshot is a real PNG.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Db, Project, close, tool};

use crate::cli::{kpic_in as kpic, s};

fn expect_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "`{what}` failed with {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `kpic report --db <project>/target/t.duckdb` on a test project; returns
/// the page and the database.
fn report_of(p: &Project, extra: &[&str]) -> (String, Db) {
    std::fs::create_dir_all(p.path().join("target")).unwrap();
    let db = p.db_path();
    let mut args = vec!["report", "--db", s(&db)];
    args.extend_from_slice(extra);
    let out = p.kpic(&args);
    p.expect_success(&out, "kpic report");
    // The default output: <target>/report.html.
    let html = p.read("target/report.html");
    (html, p.db())
}

/// The repository's example project, reported into a temporary directory
/// (nothing is written into the repository).
fn example_report(tmp: &Path) -> (PathBuf, Db) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let db = tmp.join("example.duckdb");
    let page = tmp.join("report.html");
    let out = kpic(
        tmp,
        &[
            "--project",
            s(root),
            "report",
            "--db",
            s(&db),
            "--out",
            s(&page),
        ],
    );
    expect_ok(&out, "kpic report on the example project");
    (page, Db { path: db })
}

// ---------------------------------------------------------------------------
// Reading the page (plain string scanning: the page's markup is ours)
// ---------------------------------------------------------------------------

/// The `<article class="kpi-card" ...>...</article>` of each KPI, by name.
fn cards(html: &str) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<article class=\"kpi-card") {
        let from = &rest[i..];
        let end = from.find("</article>").expect("card is closed") + "</article>".len();
        let card = &from[..end];
        out.push((attr(card, "data-kpi").expect("card has data-kpi"), card));
        rest = &from[end..];
    }
    out
}

/// The value of the first `name="..."` attribute in `html`.
fn attr(html: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let i = html.find(&key)? + key.len();
    let len = html[i..].find('"')?;
    Some(html[i..i + len].to_string())
}

/// The `<td data-role=ROLE data-field=FIELD ...>` cell of a card:
/// (data-value, displayed text).
fn cell(card: &str, role: &str, field: &str) -> Option<(String, String)> {
    let key = format!("<td data-role=\"{role}\" data-field=\"{field}\" ");
    let i = card.find(&key)?;
    let td = &card[i..];
    let value = attr(td, "data-value")?;
    let open = td.find('>')? + 1;
    let close = td.find("</td>")?;
    let inner = &td[open..close];
    // Text without tags (the status cell wraps its text in a badge).
    let mut text = String::new();
    let mut in_tag = false;
    for c in inner.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some((value, text))
}

fn num(value: &str) -> Option<f64> {
    (!value.is_empty()).then(|| {
        value
            .parse()
            .unwrap_or_else(|e| panic!("data-value {value:?} is not a number: {e}"))
    })
}

/// Every `http://`/`https://` (or protocol-relative) URL the page would
/// load: in src=, href=, url() or @import.
fn external_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for pattern in [
        "src=\"",
        "src='",
        "href=\"",
        "href='",
        "url(",
        "url(\"",
        "url('",
        "@import \"",
        "@import '",
        "@import url(",
    ] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(pattern) {
            let at = from + i + pattern.len();
            let target = lower[at..].trim_start_matches(['"', '\'', ' ']);
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("//")
            {
                found.push(lower[at..(at + 60).min(lower.len())].to_string());
            }
            from = at;
        }
    }
    found
}

// ---------------------------------------------------------------------------
// The expected numbers, read back with our own SQL
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Expected {
    period: String,
    actual: Option<f64>,
    target: Option<f64>,
    attainment: Option<f64>,
    projected: Option<f64>,
    change_pct: Option<f64>,
    yoy_change_pct: Option<f64>,
    status: String,
}

/// The latest complete (`complete = true`) or the running period of a KPI.
fn expected(db: &Db, kpi: &str, complete: bool) -> Option<Expected> {
    let conn = db.conn();
    let sql = "SELECT period, CAST(actual AS DOUBLE), CAST(target AS DOUBLE), \
               CAST(attainment AS DOUBLE), CAST(projected AS DOUBLE), CAST(change_pct AS DOUBLE), \
               CAST(yoy_change_pct AS DOUBLE), status FROM kpi_results \
               WHERE kpi = ? AND is_complete = ? ORDER BY period_start DESC LIMIT 1";
    let mut st = conn.prepare(sql).expect("prepare");
    let mut rows = st
        .query_map(duckdb::params![kpi, complete], |r| {
            Ok(Expected {
                period: r.get(0)?,
                actual: r.get(1)?,
                target: r.get(2)?,
                attainment: r.get(3)?,
                projected: r.get(4)?,
                change_pct: r.get(5)?,
                yoy_change_pct: r.get(6)?,
                status: r.get(7)?,
            })
        })
        .expect("query kpi_results");
    rows.next().map(|r| r.expect("row"))
}

fn kpi_names(db: &Db) -> Vec<String> {
    let conn = db.conn();
    let mut st = conn
        .prepare("SELECT kpi FROM kpi_definitions ORDER BY kpi")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn check_num(ctx: &str, expected: Option<f64>, got: Option<f64>) {
    match (expected, got) {
        (None, None) => {}
        (Some(e), Some(g)) if close(e, g) => {}
        _ => panic!("{ctx}: the page says {got:?}, kpi_results has {expected:?}"),
    }
}

/// Every card against kpi_results: the latest complete period and the
/// running one (when there is one), each field; the card's status is the
/// running period's, else the latest complete one's. Returns the names of
/// the KPIs that are off track or at risk in either period.
fn check_cards(html: &str, db: &Db) -> Vec<String> {
    let names = kpi_names(db);
    let found = cards(html);
    let mut card_names: Vec<String> = found.iter().map(|(n, _)| n.clone()).collect();
    card_names.sort();
    assert_eq!(card_names, names, "one card per KPI of kpi_definitions");
    let mut flagged = Vec::new();
    for (kpi, card) in &found {
        let complete = expected(db, kpi, true);
        let running = expected(db, kpi, false);
        for (role, e) in [("latest_complete", &complete), ("current", &running)] {
            let Some(e) = e else {
                assert!(
                    cell(card, role, "actual").is_none(),
                    "{kpi}: the card shows a {role} period kpi_results does not have"
                );
                continue;
            };
            let header = format!("data-role=\"{role}\" data-period=\"{}\"", e.period);
            assert!(
                card.contains(&header),
                "{kpi}: the {role} column is not period {}",
                e.period
            );
            let fields = [
                ("actual", e.actual),
                ("target", e.target),
                ("attainment", e.attainment),
                ("change_pct", e.change_pct),
                ("yoy_change_pct", e.yoy_change_pct),
            ];
            for (field, want) in fields {
                let (value, _) = cell(card, role, field)
                    .unwrap_or_else(|| panic!("{kpi}: no {role} {field} cell"));
                check_num(&format!("{kpi} {role} {field}"), want, num(&value));
            }
            let (status, text) = cell(card, role, "status").expect("status cell");
            assert_eq!(status, e.status, "{kpi} {role} status");
            assert_eq!(text, e.status.replace('_', " "), "{kpi} {role} status text");
            if role == "current" {
                let (value, _) = cell(card, role, "projected").expect("projected cell");
                check_num(&format!("{kpi} projected"), e.projected, num(&value));
                let pacing = match (e.projected, e.target) {
                    (Some(p), Some(t)) if t != 0.0 => Some(p / t),
                    _ => None,
                };
                let (value, _) = cell(card, role, "pacing").expect("pacing cell");
                check_num(&format!("{kpi} pacing"), pacing, num(&value));
            }
        }
        let headline = running
            .as_ref()
            .or(complete.as_ref())
            .map_or("no_data", |e| e.status.as_str());
        assert_eq!(
            attr(card, "data-status").as_deref(),
            Some(headline),
            "{kpi}: card status"
        );
        assert!(card.contains("<svg class=\"trend"), "{kpi}: no trend chart");
        let bad = |e: &Option<Expected>| {
            e.as_ref()
                .is_some_and(|e| e.status == "off_track" || e.status == "at_risk")
        };
        if bad(&complete) || bad(&running) {
            flagged.push(kpi.clone());
        }
    }
    flagged.sort();
    flagged
}

/// The KPIs with a Why section.
fn whys(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<article class=\"why") {
        let from = &rest[i..];
        out.push(attr(from, "data-kpi").expect("why has data-kpi"));
        rest = &from[1..];
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// Without a browser
// ---------------------------------------------------------------------------

#[test]
fn example_project_report_cards_match_kpi_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (page, db) = example_report(tmp.path());
    let html = std::fs::read_to_string(&page).expect("the report is written to --out");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        external_references(&html),
        Vec::<String>::new(),
        "the page loads nothing from the network"
    );
    assert!(!html.contains("<script"), "the report needs no script");
    let flagged = check_cards(&html, &db);
    // The example's planted story: quarterly revenue misses its plan.
    assert!(
        flagged.contains(&"quarterly_revenue".to_string()),
        "flagged: {flagged:?}"
    );
    assert_eq!(whys(&html), flagged, "one Why section per flagged KPI");
    // The Why of quarterly revenue: drivers from kpi_drivers / explain, a
    // segment, and the action plan of the YAML.
    let i = html
        .find("<article class=\"why status-off_track\" id=\"why-quarterly_revenue\"")
        .or_else(|| html.find("id=\"why-quarterly_revenue\""))
        .expect("why of quarterly_revenue");
    let why = &html[i..i + html[i..].find("</article>").unwrap()];
    for part in ["class=\"what\"", "class=\"so-what\"", "class=\"now-what\""] {
        assert!(why.contains(part), "the Why has {part}");
    }
    for driver in ["sessions", "conversion_rate", "aov"] {
        assert!(
            why.contains(&format!("class=\"driver\" data-metric=\"{driver}\"")),
            "driver {driver} listed"
        );
    }
    assert!(why.contains("class=\"segment\""), "a top segment is listed");
    assert!(
        why.contains("checkout-team reviews the funnel"),
        "the action plan is shown"
    );
    // Diagnostic metric charts: one per driver series of kpi_metrics.
    let conn = db.conn();
    let sessions: i64 = conn
        .query_row(
            "SELECT count(*) FROM kpi_metrics WHERE metric = 'sessions' AND grain = 'quarter'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sessions > 0);
    assert!(html.contains(
        "<figure class=\"metric-chart\" data-metric=\"sessions\" data-grain=\"quarter\">"
    ));
    assert!(html.matches("<figure class=\"metric-chart\"").count() >= 5);
}

#[test]
fn fixture_report_formats_card_values_per_kpi_format() {
    // monthly_orders: six revenue KPIs (currency), every target form.
    let p = Project::from_fixture("monthly_orders");
    let (html, db) = report_of(&p, &[]);
    assert_eq!(external_references(&html), Vec::<String>::new());
    check_cards(&html, &db);
    // The displayed text follows the metric's format: currency, rounded,
    // thousands separators (values here are small).
    for (kpi, card) in cards(&html) {
        for role in ["latest_complete", "current"] {
            if let Some((value, text)) = cell(card, role, "actual")
                && let Some(v) = num(&value)
            {
                assert_eq!(text, dollars(v), "{kpi} {role} actual as currency");
            }
        }
    }
}

/// `$1,234`: whole dollars with thousands separators.
fn dollars(v: f64) -> String {
    let digits = (v.abs().round() as u64).to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if v < 0.0 && v.round() != 0.0 {
        format!("-${grouped}")
    } else {
        format!("${grouped}")
    }
}

#[test]
fn report_of_other_fixtures_and_as_of() {
    for fixture in ["orders_customers", "iso_weeks"] {
        let p = Project::from_fixture(fixture);
        let (html, db) = report_of(&p, &[]);
        assert_eq!(
            external_references(&html),
            Vec::<String>::new(),
            "{fixture}"
        );
        check_cards(&html, &db);
    }
    // --as-of moves the periods the cards show.
    let p = Project::from_fixture("monthly_orders");
    let (html, db) = report_of(&p, &["--as-of", "2024-02-10"]);
    check_cards(&html, &db);
    assert!(html.contains("<time id=\"as-of\">2024-02-10</time>"));
    let e = expected(&db, "revenue_abs", false).expect("a running period");
    assert_eq!(e.period, "2024-02");
}

#[test]
fn labels_and_plans_are_html_escaped() {
    let p = Project::from_fixture("monthly_orders");
    let kpis = p.read("models/kpis.yml").replace(
        "  - name: revenue_abs\n",
        "  - name: revenue_abs\n    label: \"<script>alert('x')</script> & \\\"quoted\\\"\"\n    owner: \"<b>ops</b>\"\n    action_plan: \"If off track: call <img src=x onerror=alert(1)> & co\"\n",
    );
    assert!(kpis.contains("<script>"), "test bug: label not inserted");
    p.write("models/kpis.yml", &kpis);
    let (html, _) = report_of(&p, &[]);
    assert!(!html.contains("<script"), "a label became markup");
    assert!(!html.contains("<img"), "a plan became markup");
    assert!(!html.contains("<b>ops"), "an owner became markup");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"),
        "the label is shown, escaped"
    );
    let (_, card) = cards(&html)
        .into_iter()
        .find(|(k, _)| k == "revenue_abs")
        .expect("card");
    assert!(card.contains("class=\"kpi-label\">&lt;script&gt;"));
}

#[test]
fn empty_states_for_no_kpis_and_a_kpi_without_data() {
    // No KPI at all: the page says so.
    let p = Project::from_fixture("monthly_orders");
    p.write("models/kpis.yml", "kpis: []\n");
    let out = p.kpic(&["report", "--db", s(&p.db_path())]);
    p.expect_success(&out, "kpic report without KPIs");
    let html = p.read("target/report.html");
    assert!(html.contains("id=\"no-kpis\""), "an explicit empty state");
    assert!(cards(&html).is_empty());

    // A KPI whose source has no rows has no kpi_results rows: its card
    // says no data instead of numbers, and the others are unaffected.
    let p = Project::from_fixture("monthly_orders");
    p.write(
        "models/empty.yml",
        "sources:\n  - name: nothing\n    sql: \"select * from read_csv('data/orders.csv') where false\"\n    time: ordered_at\n\
         metrics:\n  - name: nothing_revenue\n    source: nothing\n    measure: sum(amount)\n\
         kpis:\n  - name: empty_kpi\n    metric: nothing_revenue\n    grain: month\n    target: 10\n",
    );
    let (html, db) = report_of(&p, &[]);
    let rows: i64 = db
        .conn()
        .query_row(
            "SELECT count(*) FROM kpi_results WHERE kpi = 'empty_kpi' AND actual IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "test bug: the KPI should have no data");
    check_cards(&html, &db);
    let (_, card) = cards(&html)
        .into_iter()
        .find(|(k, _)| k == "empty_kpi")
        .expect("a card for the KPI without data");
    assert!(
        card.contains("class=\"empty-state no-data\"") || card.contains("data-value=\"no_data\""),
        "{card}"
    );
}

#[test]
fn a_memory_database_is_refused_with_a_usage_error() {
    let p = Project::from_fixture("monthly_orders");
    let out = p.kpic(&["report", "--db", ":memory:"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--db"), "{err}");
}

// ---------------------------------------------------------------------------
// Headless Chromium
// ---------------------------------------------------------------------------

/// Records every script error, failed or blocked load into attributes of
/// `<html>` (which `--dump-dom` prints); put first in `<head>`, before the
/// report's Content-Security-Policy, so it runs.
const HOOK: &str = r#"<script>(function(){var d=document.documentElement;function mark(m){d.setAttribute("data-kpic-errors",(d.getAttribute("data-kpic-errors")||"")+"|"+m);}window.addEventListener("error",function(e){if(e.target&&e.target!==window){mark("load failed: "+(e.target.src||e.target.href||e.target.tagName));}else{mark("script: "+e.message);}},true);document.addEventListener("securitypolicyviolation",function(e){mark("blocked: "+e.blockedURI);});window.addEventListener("load",function(){d.setAttribute("data-kpic-loaded","1");});})();</script>"#;

/// Runs Chromium headless with a fresh profile; fails the test after 90 s.
fn chromium(browser: &Path, profile: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--no-first-run", "--disable-extensions"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    // Read the pipes on threads so a full pipe cannot stall the browser.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Loads `page` (with [`HOOK`] inserted) and returns (problems, DOM): the
/// hook's records, every console message Chromium logged, and a missing
/// load event.
fn render_problems(browser: &Path, page: &Path, work: &Path) -> (Vec<String>, String) {
    let html = std::fs::read_to_string(page).unwrap();
    // Beside the page, so relative references resolve the same way.
    let hooked = page.parent().unwrap().join(format!(
        "hooked-{}",
        page.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &hooked,
        html.replacen("<head>", &format!("<head>{HOOK}"), 1),
    )
    .unwrap();
    let profile = tempfile::tempdir_in(work).unwrap();
    let url = format!("file://{}", hooked.display());
    let out = chromium(
        browser,
        profile.path(),
        &["--enable-logging=stderr", "--v=0", "--dump-dom", &url],
    );
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut problems: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let root = &dom[dom.find("<html").unwrap_or(0)..];
    let root = &root[..root.find('>').unwrap_or(root.len())];
    if let Some(errors) = attr(root, "data-kpic-errors") {
        problems.extend(
            errors
                .split('|')
                .filter(|e| !e.is_empty())
                .map(String::from),
        );
    }
    if attr(root, "data-kpic-loaded").as_deref() != Some("1") {
        problems.push(format!("the page did not finish loading; DOM: {root}"));
    }
    (problems, dom)
}

#[test]
fn the_render_check_catches_script_errors_and_failed_loads() {
    let Some(browser) = tool("KPIC_CHROMIUM") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let page = |name: &str, body: &str| {
        let path = tmp.path().join(name);
        std::fs::write(
            &path,
            format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>t</title></head><body><p>x</p>{body}</body></html>"),
        )
        .unwrap();
        path
    };
    let clean = page("clean.html", "");
    let (problems, _) = render_problems(&browser, &clean, tmp.path());
    assert_eq!(problems, Vec::<String>::new(), "a clean page passes");
    for (name, body, what) in [
        (
            "script.html",
            "<script>undefinedFunction();</script>",
            "a script error",
        ),
        (
            "missing.html",
            "<img src=\"missing.png\">",
            "a missing image",
        ),
        (
            "remote.html",
            "<link rel=\"stylesheet\" href=\"https://cdn.invalid/x.css\">",
            "a remote stylesheet",
        ),
        (
            "csp.html",
            "<meta http-equiv=\"Content-Security-Policy\" content=\"img-src data:\"><img src=\"https://example.invalid/x.png\">",
            "a load the page's policy blocks",
        ),
    ] {
        let broken = page(name, body);
        let (problems, _) = render_problems(&browser, &broken, tmp.path());
        assert!(!problems.is_empty(), "{what} is not caught");
    }
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(browser) = tool("KPIC_CHROMIUM") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (page, db) = example_report(tmp.path());
    let (problems, dom) = render_problems(&browser, &page, tmp.path());
    assert_eq!(
        problems,
        Vec::<String>::new(),
        "the report renders without console errors or failed loads"
    );
    // The rendered DOM has the cards, their trend charts and the metric
    // charts (counted against the database).
    let kpis = kpi_names(&db);
    let mut rendered: Vec<String> = cards(&dom).into_iter().map(|(k, _)| k).collect();
    rendered.sort();
    assert_eq!(rendered, kpis, "one rendered card per KPI");
    assert_eq!(dom.matches("<svg class=\"trend\"").count(), kpis.len());
    assert!(dom.matches("<figure class=\"metric-chart\"").count() >= 5);
    assert!(dom.contains("<article class=\"why"));

    let shot = tmp.path().join("report.png");
    let profile = tempfile::tempdir_in(tmp.path()).unwrap();
    let out = chromium(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,2000",
            "--hide-scrollbars",
            &format!("file://{}", page.display()),
        ],
    );
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot is written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1400, 2000), "the window size");
    // A blank page compresses to a few KB; cards and charts do not.
    assert!(
        png.len() > 50_000,
        "the screenshot looks blank ({} bytes)",
        png.len()
    );
}
