//! dbt integration (issue 6): kpic reads a real dbt project's manifest
//! (built by the real `dbt build` on dbt-duckdb), its KPIs equal SQL written
//! by hand over the same DuckDB file, and `kpic dbt emit` + `dbt build
//! --select tag:kpi` give the tables `kpic run` gives. The error tests use a
//! hand-written manifest (fixtures/dbt_manifest/) and need no dbt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Project, copy_tree, tool};

/// `fixtures/<name>` of the repository (the dbt fixtures are not kpic
/// projects, so they live outside fixtures/projects/).
fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

// ---------------------------------------------------------------------------
// With the real dbt
// ---------------------------------------------------------------------------

/// `dbt ARGS` in `dir` (offline, no usage statistics); panics on failure.
fn dbt(venv: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new(venv.join("bin").join("dbt"))
        .args(args)
        .args(["--profiles-dir", "."])
        .current_dir(dir)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env_remove("DBT_SHOP_DB")
        .output()
        .expect("start dbt");
    assert!(
        out.status.success(),
        "dbt {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SHOP_MODELS: &str = r#"
sources:
  - name: orders
    ref: fct_orders                   # a dbt model in the `marts` schema
    time: ordered_at
    dimensions: [channel, country]
  - name: customers
    sql: "select * from {{ source('shop_raw', 'customers') }} where customer_id > 0"
    time: signed_up_at
  - name: staged
    table: "{{ ref('dbt_shop', 'stg_orders') }}"
    time: ordered_at
  - name: paying_customers
    ref: dim_customers.v2             # a pinned version of a versioned model
    time: signed_up_at
  - name: all_customers               # unpinned: latest_version (1)
    sql: "select * from {{ ref('dim_customers') }}"
    time: signed_up_at
metrics:
  - name: revenue
    source: orders
    measure: sum(amount)
    filter: status = 'completed'
  - name: completed_orders
    source: orders
    measure: count(*)
    filter: status = 'completed'
  - name: aov
    expr: revenue / completed_orders
  - name: orders
    source: staged
    measure: count(*)
  - name: new_customers
    source: customers
    measure: count(*)
  - name: paying_signups
    source: paying_customers
    measure: count(*)
  - name: signups
    source: all_customers
    measure: count(*)
kpis:
  - name: monthly_revenue
    metric: revenue
    grain: month
    target: 5000
    owner: growth
    action_plan: "Literal {{ braces }} and {% tags %} stay text in dbt"
    breakdowns: [channel, country]
    drivers: [completed_orders, aov]
    decomposition: completed_orders * aov
  - name: weekly_orders
    metric: orders
    grain: week
    target: 10
    owner: ops
    action_plan: Call the partners.
  - name: new_customers
    metric: new_customers
    grain: month
    target: {change: +10%, vs: previous}
    owner: growth
    action_plan: Run the referral campaign.
  - name: paying_signups
    metric: paying_signups
    grain: month
    target: 2
    owner: growth
    action_plan: Push the paid plans.
  - name: signups
    metric: signups
    grain: month
    target: 3
    owner: growth
    action_plan: Run the referral campaign.
"#;

/// The dbt project built by dbt in `<tmp>/dbt`, and a kpic project beside
/// it reading it through `dbt: {project_dir: ../dbt}`.
struct Shop {
    kpic: Project,
    dbt_dir: PathBuf,
}

fn shop(venv: &Path) -> Shop {
    let kpic = Project::new(&[
        (
            "kpic.yml",
            "name: shop_kpis\ndbt: {project_dir: dbt_project}\n",
        ),
        ("models/shop.yml", SHOP_MODELS),
    ]);
    let dbt_dir = kpic.path().join("dbt_project");
    copy_tree(&fixture_dir("dbt_shop"), &dbt_dir);
    let _ = std::fs::remove_dir_all(dbt_dir.join("target"));
    dbt(venv, &dbt_dir, &["build"]);
    Shop { kpic, dbt_dir }
}

/// A copy of the dbt DuckDB file with the same name (so the catalog name in
/// dbt's relation names, the file's stem, still resolves).
fn copy_db(shop: &Shop, dir: &str) -> PathBuf {
    let to = shop.kpic.path().join(dir);
    std::fs::create_dir_all(&to).unwrap();
    let db = to.join("shop.duckdb");
    std::fs::copy(shop.dbt_dir.join("shop.duckdb"), &db).unwrap();
    db
}

/// Every row of `table` or view (columns sorted by name, `computed_at`
/// left out, numbers rounded to 9 decimals), sorted.
fn rows(conn: &duckdb::Connection, catalog: &str, table: &str) -> Vec<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_catalog = '{catalog}' AND table_schema = 'main' AND table_name = '{table}' \
             AND column_name <> 'computed_at' ORDER BY column_name"
        ))
        .unwrap();
    let cols: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!cols.is_empty(), "{catalog}.main.{table} has no columns");
    let select: Vec<String> = cols
        .iter()
        .map(|(c, t)| {
            if t == "DOUBLE" || t == "FLOAT" || t.starts_with("DECIMAL") {
                format!("CAST(round(\"{c}\", 9) AS VARCHAR)")
            } else {
                format!("CAST(\"{c}\" AS VARCHAR)")
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM \"{catalog}\".main.\"{table}\"",
        select.join(", ")
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let n = cols.len();
    let mut out: Vec<Vec<String>> = stmt
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| {
                    r.get::<_, Option<String>>(i)
                        .unwrap()
                        .unwrap_or("NULL".into())
                })
                .collect())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    out.sort();
    out
}

/// (period label, value) pairs of one query, sorted.
fn pairs(conn: &duckdb::Connection, sql: &str) -> Vec<(String, f64)> {
    let mut stmt = conn.prepare(sql).unwrap();
    let mut v: Vec<(String, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn refs_resolve_through_a_real_dbt_manifest_and_emit_builds_equal_tables() {
    let Some(venv) = tool("KPIC_DBT_VENV") else {
        return;
    };
    let shop = shop(&venv);
    let p = &shop.kpic;

    // 1. kpic over the dbt DuckDB file, through ref:, ref() and source().
    let db = copy_db(&shop, "run");
    let out = p.kpic(&["run", "--db", db.to_str().unwrap(), "--format", "csv"]);
    assert!(out.status.success(), "kpic run failed:\n{}", stderr(&out));
    let conn = duckdb::Connection::open(&db).unwrap();
    let kpi = |k: &str| {
        pairs(
            &conn,
            &format!("SELECT period, actual FROM kpi_results WHERE kpi = '{k}'"),
        )
    };
    // By hand, from the seeds (not through kpic nor the dbt models).
    let revenue = pairs(
        &conn,
        "SELECT strftime(ordered_at, '%Y-%m'), sum(amount_cents / 100.0) FROM main.raw_orders \
         WHERE status = 'completed' GROUP BY 1",
    );
    let orders = pairs(
        &conn,
        "SELECT strftime(ordered_at, '%G-W%V'), count(*)::DOUBLE FROM main.raw_orders GROUP BY 1",
    );
    let customers = pairs(
        &conn,
        "SELECT strftime(signed_up_at, '%Y-%m'), count(*)::DOUBLE FROM main.raw_customers GROUP BY 1",
    );
    // dim_customers v2 (pinned) holds the paying customers; v1, the
    // latest version an unpinned ref reads, all of them.
    let paying = pairs(
        &conn,
        "SELECT strftime(signed_up_at, '%Y-%m'), count(*)::DOUBLE FROM main.raw_customers \
         WHERE plan <> 'free' GROUP BY 1",
    );
    for (name, expected) in [
        ("monthly_revenue", revenue),
        ("weekly_orders", orders),
        ("signups", customers.clone()),
        ("new_customers", customers),
        ("paying_signups", paying),
    ] {
        let actual = kpi(name);
        assert!(!expected.is_empty());
        for (period, value) in &expected {
            let got = actual
                .iter()
                .find(|(p, _)| p == period)
                .unwrap_or_else(|| panic!("{name}: no period {period} in {actual:?}"));
            assert!(
                (got.1 - value).abs() < 1e-6 * value.abs().max(1.0),
                "{name} {period}: kpic {} vs SQL {value}",
                got.1
            );
        }
    }
    drop(conn);

    // 2. emit, --check right after, and dbt builds the same tables.
    let out = p.kpic(&["dbt", "emit"]);
    assert!(out.status.success(), "emit failed:\n{}", stderr(&out));
    let emitted = shop.dbt_dir.join("models/kpic");
    let results_sql = std::fs::read_to_string(emitted.join("kpi_results.sql")).unwrap();
    assert!(results_sql.starts_with("{{ config(materialized='table', tags=['kpi']) }}"));
    assert!(results_sql.contains("Generated by kpic"));
    assert!(
        results_sql.contains("{{ ref('fct_orders') }}"),
        "{results_sql}"
    );
    assert!(results_sql.contains("{{ ref('dbt_shop', 'stg_orders') }}"));
    assert!(results_sql.contains("{{ source('shop_raw', 'customers') }}"));
    assert!(
        results_sql.contains("{{ ref('dim_customers', v=2) }}"),
        "{results_sql}"
    );
    assert!(results_sql.contains("{{ ref('dim_customers') }}"));
    assert!(
        !results_sql.contains("\"shop\"."),
        "relation names leaked: {results_sql}"
    );
    assert!(emitted.join("_kpic.yml").is_file());
    let out = p.kpic(&["dbt", "emit", "--check"]);
    assert!(
        out.status.success(),
        "--check after emit:\n{}",
        stderr(&out)
    );
    // Emitting must not make the manifest look stale.
    assert!(!stderr(&out).contains("KPI503"), "{}", stderr(&out));

    let scorecard_sql = std::fs::read_to_string(emitted.join("kpi_scorecard.sql")).unwrap();
    assert!(
        scorecard_sql.starts_with("{{ config(materialized='view', tags=['kpi']) }}"),
        "{scorecard_sql}"
    );
    assert!(scorecard_sql.contains("Generated by kpic"));
    for table in ["kpi_results", "kpi_definitions"] {
        assert!(
            scorecard_sql.contains(&format!("{{{{ ref('{table}') }}}}")),
            "{table} not read through ref():\n{scorecard_sql}"
        );
    }
    let yml = std::fs::read_to_string(emitted.join("_kpic.yml")).unwrap();
    assert!(yml.contains("  - name: kpi_scorecard\n"), "{yml}");
    assert!(yml.contains("      - name: current_status\n"), "{yml}");

    dbt(&venv, &shop.dbt_dir, &["build", "--select", "tag:kpi"]);
    // Each database on its own connection: the catalog is the file's stem
    // (`shop`) on both sides, which dbt's view names in its relations.
    let open = |path: &Path| {
        duckdb::Connection::open_with_flags(
            path,
            duckdb::Config::default()
                .access_mode(duckdb::AccessMode::ReadOnly)
                .unwrap(),
        )
        .unwrap()
    };
    let dbt_side = open(&shop.dbt_dir.join("shop.duckdb"));
    // kpic's tables were written into `run/shop.duckdb`; compare that file
    // with what dbt built.
    let kpic_side = open(&db);
    for name in kpic::sql::OUTPUT_TABLES
        .iter()
        .chain(kpic::sql::OUTPUT_VIEWS)
    {
        let ours = rows(&kpic_side, "shop", name);
        let theirs = rows(&dbt_side, "shop", name);
        assert!(!ours.is_empty(), "{name} is empty");
        assert_eq!(ours.len(), theirs.len(), "{name}: row counts differ");
        assert!(ours == theirs, "{name}: kpic run and dbt build differ");
    }
    let kind: String = dbt_side
        .query_row(
            "SELECT table_type FROM information_schema.tables WHERE table_name = 'kpi_scorecard'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kind, "VIEW");
    // The description with Jinja delimiters reached the table as text.
    let plan: String = dbt_side
        .query_row(
            "SELECT action_plan FROM kpi_definitions WHERE kpi = 'monthly_revenue'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plan, "Literal {{ braces }} and {% tags %} stay text in dbt");
    drop((dbt_side, kpic_side));

    // 3. A changed definition makes --check fail, naming the stale file.
    p.write(
        "models/shop.yml",
        &SHOP_MODELS.replace("target: 5000", "target: 6000"),
    );
    let out = p.kpic(&["dbt", "emit", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("KPI510"), "{err}");
    assert!(err.contains("kpi_results.sql (changed)"), "{err}");
}

// ---------------------------------------------------------------------------
// Errors, with a hand-written manifest (no dbt needed)
// ---------------------------------------------------------------------------

/// A kpic project whose dbt project (`dbt/`) holds the hand-written
/// manifest of fixtures/dbt_manifest/ (adapter postgres, project `shop`).
fn with_manifest(models: &str) -> Project {
    let p = Project::new(&[
        ("kpic.yml", "name: t\ndbt:\n  project_dir: dbt\n"),
        ("models/m.yml", models),
        ("dbt/dbt_project.yml", "name: shop\nprofile: shop\n"),
    ]);
    let manifest = std::fs::read_to_string(fixture_dir("dbt_manifest").join("manifest.json"))
        .expect("manifest fixture");
    p.write("dbt/target/manifest.json", &manifest);
    p
}

const METRIC_KPI: &str = "metrics:\n  - name: n\n    source: s\n    measure: count(*)\nkpis:\n  - name: k\n    metric: n\n    grain: month\n    target: 1\n    owner: o\n    action_plan: p\n";

fn source_with(relation: &str) -> String {
    format!("sources:\n  - name: s\n    {relation}\n    time: t\n{METRIC_KPI}")
}

/// `kpic check` exits 1 with `code` pointing at `location` (`file:line`).
fn expect_error(p: &Project, code: &str, location: &str, also: &str) {
    let out = p.kpic(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("error[{code}]")), "{code}:\n{err}");
    assert!(
        err.contains(&format!("--> {location}:")),
        "{location}:\n{err}"
    );
    assert!(err.contains(also), "`{also}` missing:\n{err}");
}

#[test]
fn refs_resolve_to_relation_names_verbatim_and_the_adapter_sets_the_dialect() {
    let p = with_manifest(&source_with(
        "sql: \"select * from {{ ref('fct_orders') }} join {{ source('raw', 'customers') }} using (id) join {{ ref('stripe', 'payments') }} using (id)\"",
    ));
    let out = p.kpic(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.kpic(&["compile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The adapter (postgres) chose the dialect.
    let sql = p.read("target/compiled/postgres/kpi_results.sql");
    for relation in [
        "\"analytics\".\"marts\".\"fct_orders\"",
        "\"analytics\".\"raw\".\"customers\"",
        "\"analytics\".\"stripe\".\"payments\"",
    ] {
        assert!(sql.contains(relation), "{relation} missing in\n{sql}");
    }
    // warehouse.dialect wins over the adapter.
    p.write(
        "kpic.yml",
        "name: t\nwarehouse: {dialect: snowflake}\ndbt:\n  project_dir: dbt\n",
    );
    let out = p.kpic(&["compile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = p.read("target/compiled/snowflake/kpi_results.sql");
    assert!(
        sql.contains("\"analytics\".\"marts\".\"fct_orders\""),
        "{sql}"
    );
}

#[test]
fn a_missing_manifest_says_to_run_dbt_parse() {
    let p = with_manifest(&source_with("ref: fct_orders"));
    std::fs::remove_file(p.path().join("dbt/target/manifest.json")).unwrap();
    expect_error(&p, "KPI501", "kpic.yml:3", "dbt parse");
    // --dbt-project overrides kpic.yml's project_dir.
    let other = Project::new(&[]);
    other.write(
        "target/manifest.json",
        &std::fs::read_to_string(fixture_dir("dbt_manifest").join("manifest.json")).unwrap(),
    );
    let out = p.kpic(&["--dbt-project", other.path().to_str().unwrap(), "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_stale_manifest_is_an_error_naming_dbt_parse() {
    let p = with_manifest(&source_with("ref: fct_orders"));
    // A model written after the manifest.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.write("dbt/models/new_model.sql", "select 1 as id\n");
    expect_error(&p, "KPI503", "kpic.yml:3", "models/new_model.sql");
    expect_error(&p, "KPI503", "kpic.yml:3", "dbt parse");
}

#[test]
fn unknown_models_and_sources_get_a_did_you_mean() {
    expect_error(
        &with_manifest(&source_with("ref: fct_order")),
        "KPI504",
        "models/m.yml:3",
        "ref('fct_orders')",
    );
    expect_error(
        &with_manifest(&source_with(
            "sql: \"select * from {{ source('raw', 'customer') }}\"",
        )),
        "KPI504",
        "models/m.yml:3",
        "source('raw', 'customers')",
    );
    expect_error(
        &with_manifest(&source_with("table: \"{{ ref('fct_ordrs') }}\"")),
        "KPI504",
        "models/m.yml:3",
        "ref('fct_orders')",
    );
}

#[test]
fn disabled_ephemeral_and_ambiguous_models_are_errors() {
    expect_error(
        &with_manifest(&source_with("ref: legacy_orders")),
        "KPI505",
        "models/m.yml:3",
        "disabled",
    );
    expect_error(
        &with_manifest(&source_with(
            "sql: \"select * from {{ ref('int_orders') }}\"",
        )),
        "KPI506",
        "models/m.yml:3",
        "ephemeral",
    );
    expect_error(
        &with_manifest(&source_with("ref: payments")),
        "KPI507",
        "models/m.yml:3",
        "ref('adyen', 'payments')",
    );
    // With the package named, the same model resolves.
    let p = with_manifest(&source_with("ref: stripe.payments"));
    let out = p.kpic(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_ref_call_is_pointed_at_on_its_own_line() {
    let p = with_manifest(&format!(
        "sources:\n  - name: s\n    sql: |\n      select *\n      from {{{{ ref('fct_orders') }}}}\n      join {{{{ ref('nope') }}}} using (id)\n    time: t\n{METRIC_KPI}"
    ));
    expect_error(&p, "KPI504", "models/m.yml:6", "ref('nope')");
}

#[test]
fn an_adapter_without_a_dialect_is_an_error_at_the_dbt_key() {
    let p = with_manifest(&source_with("ref: fct_orders"));
    let manifest = p.read("dbt/target/manifest.json").replace(
        "\"adapter_type\": \"postgres\"",
        "\"adapter_type\": \"sqlserver\"",
    );
    p.write("dbt/target/manifest.json", &manifest);
    expect_error(&p, "KPI508", "kpic.yml:3", "warehouse");
}

#[test]
fn emit_refuses_local_files_and_needs_a_dbt_project() {
    let p = with_manifest(&source_with("path: data.csv"));
    p.write("data.csv", "t,x\n2026-01-01,1\n");
    let out = p.kpic(&["dbt", "emit"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error[KPI509]"), "{err}");
    assert!(err.contains("--> models/m.yml:3:"), "{err}");
    // path: with table: emits the table.
    let p = with_manifest(&source_with(
        "path: data.csv\n    table: \"{{ source('raw', 'customers') }}\"",
    ));
    p.write("data.csv", "t,x\n2026-01-01,1\n");
    let out = p.kpic(&["dbt", "emit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = p.read("dbt/models/kpic/kpi_results.sql");
    assert!(sql.contains("{{ source('raw', 'customers') }}"), "{sql}");
    // Without dbt configured: a usage error.
    let bare = Project::new(&[("models/m.yml", &source_with("table: x"))]);
    let out = bare.kpic(&["dbt", "emit"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn emit_writes_the_scorecard_as_a_view_over_the_table_models() {
    for dialect in ["postgres", "snowflake", "bigquery"] {
        let p = with_manifest(&source_with("ref: fct_orders"));
        p.write(
            "kpic.yml",
            &format!("name: t\nwarehouse: {{dialect: {dialect}}}\ndbt:\n  project_dir: dbt\n"),
        );
        let out = p.kpic(&["dbt", "emit"]);
        assert!(out.status.success(), "{dialect}: {}", stderr(&out));
        let sql = p.read("dbt/models/kpic/kpi_scorecard.sql");
        assert!(
            sql.starts_with(
                "{{ config(materialized='view', tags=['kpi']) }}\n\n-- Generated by kpic"
            ),
            "{dialect}: {sql}"
        );
        assert!(sql.contains("-- View: kpi_scorecard, for "), "{sql}");
        // The table models through ref(), never their bare names.
        let body: String = sql
            .lines()
            .filter(|l| !l.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for table in ["kpi_results", "kpi_definitions"] {
            let reference = format!("{{{{ ref('{table}') }}}}");
            assert!(body.contains(&reference), "{dialect}: {sql}");
            assert!(
                !body.replace(&reference, "").to_lowercase().contains(table),
                "{dialect}: a bare {table} in\n{sql}"
            );
        }
        assert!(
            !sql.contains("__kpic"),
            "{dialect}: a marker left in\n{sql}"
        );
        let yml = p.read("dbt/models/kpic/_kpic.yml");
        let entry = &yml[yml
            .find("  - name: kpi_scorecard\n")
            .expect("scorecard entry")..];
        let kpi = &entry[entry.find("      - name: kpi\n").expect("kpi column")..];
        let kpi = &kpi[..kpi[1..].find("      - name:").map_or(kpi.len(), |i| i + 1)];
        assert!(
            kpi.contains("- not_null") && kpi.contains("- unique"),
            "{kpi}"
        );
        for column in kpic::sql::scorecard::scorecard_columns() {
            let at = entry
                .find(&format!("      - name: {column}\n"))
                .unwrap_or_else(|| panic!("{column} not documented:\n{entry}"));
            assert!(
                entry[at..]
                    .lines()
                    .nth(1)
                    .unwrap()
                    .contains("description: "),
                "{column} has no description"
            );
        }
        // --check covers the view: a missing or edited one is stale.
        let out = p.kpic(&["dbt", "emit", "--check"]);
        assert!(out.status.success(), "{}", stderr(&out));
        p.write(
            "dbt/models/kpic/kpi_scorecard.sql",
            &format!("{sql}-- edited\n"),
        );
        let out = p.kpic(&["dbt", "emit", "--check"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("kpi_scorecard.sql (changed)"));
        std::fs::remove_file(p.path().join("dbt/models/kpic/kpi_scorecard.sql")).unwrap();
        let out = p.kpic(&["dbt", "emit", "--check"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("kpi_scorecard.sql (missing)"));
    }
}

#[test]
fn pinned_versions_resolve_and_unpinned_refs_read_the_latest_version() {
    // dim_customers has versions 1, 2 and 3; latest_version is 2.
    let p = with_manifest(&format!(
        "sources:\n\
         \x20 - name: s\n\
         \x20   sql: \"select * from {{{{ ref('dim_customers', v=1) }}}} join {{{{ ref('shop', 'dim_customers', version=3) }}}} using (id) join {{{{ ref('dim_customers') }}}} using (id)\"\n\
         \x20   time: t\n\
         \x20 - name: pinned\n\
         \x20   ref: dim_customers.v1\n\
         \x20   time: t\n\
         \x20 - name: pinned_in_package\n\
         \x20   ref: shop.dim_customers.v3\n\
         \x20   time: t\n\
         \x20 - name: unpinned\n\
         \x20   ref: dim_customers\n\
         \x20   time: t\n\
         {METRIC_KPI}\
         \x20 - name: k1\n    metric: n1\n    grain: month\n    target: 1\n    owner: o\n    action_plan: p\n\
         \x20 - name: k2\n    metric: n2\n    grain: month\n    target: 1\n    owner: o\n    action_plan: p\n\
         \x20 - name: k3\n    metric: n3\n    grain: month\n    target: 1\n    owner: o\n    action_plan: p\n"
    )
    .replace(
        "kpis:\n",
        "  - name: n1\n    source: pinned\n    measure: count(*)\n\
         \x20 - name: n2\n    source: pinned_in_package\n    measure: count(*)\n\
         \x20 - name: n3\n    source: unpinned\n    measure: count(*)\nkpis:\n",
    ));
    let out = p.kpic(&["compile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = p.read("target/compiled/postgres/kpi_results.sql");
    let relation = |v: u8| format!("\"analytics\".\"marts\".\"dim_customers_v{v}\"");
    // k reads v1, v3 and (unpinned) v2; k1 v1; k2 v3; k3 v2.
    for v in [1, 2, 3] {
        assert!(sql.contains(&relation(v)), "v{v} missing in\n{sql}");
    }
    // Each scan reads its version: the text from `kpic_scan_<source> AS (`
    // to the next step.
    let scan = |source: &str| {
        let at = sql
            .find(&format!("kpic_scan_{source} AS ("))
            .unwrap_or_else(|| panic!("no scan of {source} in\n{sql}"));
        let rest = &sql[at..];
        let end = rest[1..].find("\n), ").map_or(rest.len(), |e| e + 1);
        rest[..end].to_string()
    };
    for (source, v) in [("pinned", 1), ("pinned_in_package", 3), ("unpinned", 2)] {
        let text = scan(source);
        assert!(text.contains(&relation(v)), "{source} reads v{v}? {text}");
    }

    // emit puts the versions back; an unpinned ref stays unpinned.
    let out = p.kpic(&["dbt", "emit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let emitted = p.read("dbt/models/kpic/kpi_results.sql");
    for call in [
        "{{ ref('dim_customers', v=1) }}",
        "{{ ref('shop', 'dim_customers', v=3) }}",
        "{{ ref('dim_customers') }}",
    ] {
        assert!(emitted.contains(call), "{call} missing in\n{emitted}");
    }
    assert!(!emitted.contains("dim_customers_v"), "{emitted}");
}

#[test]
fn an_unknown_version_lists_the_versions() {
    for (relation, line) in [
        ("sql: \"select * from {{ ref('dim_customers', v=9) }}\"", 3),
        ("ref: dim_customers.v9", 3),
        ("ref: shop.dim_customers.v9", 3),
    ] {
        let p = with_manifest(&source_with(relation));
        expect_error(
            &p,
            "KPI504",
            &format!("models/m.yml:{line}"),
            "its versions: 1, 2, 3, latest 2",
        );
        expect_error(&p, "KPI504", "models/m.yml:3", "has no version 9");
    }
    // A version of a model that has none.
    expect_error(
        &with_manifest(&source_with(
            "sql: \"select * from {{ ref('fct_orders', v=2) }}\"",
        )),
        "KPI504",
        "models/m.yml:3",
        "drop the version: ref('fct_orders')",
    );
    // dbt reads v=0 as unpinned: refused with the way to pin it.
    let p = with_manifest(&source_with(
        "sql: \"select * from {{ ref('dim_customers', v=0) }}\"",
    ));
    let out = p.kpic(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("v='0'"), "{}", stderr(&out));
}
