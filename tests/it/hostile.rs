//! Hostile input (issue 5): malformed projects must give exit 1 and a coded
//! error at the right file and line, never a panic or a hang.
//!
//! Every case is a small valid project (`BASE`) with one hostile change,
//! generated in a temporary directory (big files are written at test time,
//! never committed). The table of cases is grouped by category, one test
//! per category; each case runs `kpic check` (and `kpic compile` and `kpic
//! run` when it concerns data or SQL) under a watchdog and must:
//! - exit with code 1 (SPEC §4: the project has errors), not be killed by
//!   a signal (a stack overflow aborts);
//! - print `error[KPIxxx]` with the expected code and the expected place
//!   (`file:line`, or the path of a directory, which has no lines);
//! - not print "panicked";
//! - finish in under a second (re-run once before failing, for CI noise;
//!   killed after 10 s and reported as a hang).
//!
//! All failing cases of a category are reported together, by name.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The valid project every case starts from. Line numbers quoted by cases
/// are computed from the text they write, never hard-coded.
const BASE: &str = "\
sources:
  - name: orders
    path: data/orders.csv
    time: ordered_at
    dimensions:
      - channel
      - status
    joins:
      - source: customers
        on: customer_id
  - name: customers
    path: data/customers.csv
    dimensions:
      - plan

metrics:
  - name: revenue
    source: orders
    measure: sum(amount)
    filter: status = 'completed'
  - name: order_count
    source: orders
    measure: count(*)
  - name: aov
    expr: revenue / order_count

kpis:
  - name: monthly_revenue
    metric: revenue
    grain: month
    owner: growth
    target: 100
    tolerance: 10%
    breakdowns: [channel]
    action_plan: Review the funnel.
";

const ORDERS: &str = "\
order_id,ordered_at,customer_id,status,channel,amount
1,2024-01-05,1,completed,web,100
2,2024-01-20,2,completed,store,50
3,2024-02-03,1,cancelled,web,70
4,2024-02-15,3,completed,web,120
5,2024-03-02,2,completed,store,80
";

const CUSTOMERS: &str = "\
customer_id,plan
1,pro
2,free
3,pro
";

/// Wall-clock budget of one kpic invocation.
const BUDGET: Duration = Duration::from_secs(1);
/// A run still going after this is killed and reported as a hang.
const WATCHDOG: Duration = Duration::from_secs(10);

const MODEL: &str = "models/m.yml";

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

struct Case {
    name: &'static str,
    /// Files of the project (relative path, bytes); starts as BASE.
    files: Vec<(String, Vec<u8>)>,
    /// (link, target) symlinks; in the target, `{root}` is the project dir
    /// and `{outside}` a directory next to it, outside the project.
    links: Vec<(String, String)>,
    /// Named pipes to create.
    fifos: Vec<String>,
    /// Sparse files of a given size (relative path, bytes).
    sparse: Vec<(String, u64)>,
    /// Big files written at set-up time: (relative path, head, line
    /// repeated, bytes of repeated lines).
    filled: Vec<(String, String, String, usize)>,
    /// Expected diagnostic code, e.g. `KPI107`.
    code: &'static str,
    /// Expected place: `file:line`, or a path for directories.
    at: String,
    /// Also run `compile` and `run` (the case concerns data or SQL).
    data: bool,
}

fn case(name: &'static str, code: &'static str) -> Case {
    Case {
        name,
        files: vec![
            (MODEL.into(), BASE.into()),
            ("data/orders.csv".into(), ORDERS.into()),
            ("data/customers.csv".into(), CUSTOMERS.into()),
        ],
        links: Vec::new(),
        fifos: Vec::new(),
        sparse: Vec::new(),
        filled: Vec::new(),
        code,
        at: String::new(),
        data: false,
    }
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &[u8], needle: &[u8]) -> usize {
    let at = text
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("test bug: {:?} not found", String::from_utf8_lossy(needle)));
    text[..at].iter().filter(|b| **b == b'\n').count() + 1
}

impl Case {
    fn file(mut self, rel: &str, bytes: impl Into<Vec<u8>>) -> Case {
        let bytes = bytes.into();
        match self.files.iter_mut().find(|(r, _)| r == rel) {
            Some(f) => f.1 = bytes,
            None => self.files.push((rel.to_string(), bytes)),
        }
        self
    }

    fn text(&self, rel: &str) -> &[u8] {
        &self
            .files
            .iter()
            .find(|(r, _)| r == rel)
            .unwrap_or_else(|| panic!("test bug: case {} has no {rel}", self.name))
            .1
    }

    /// Replaces the one occurrence of `old` in models/m.yml.
    fn edit(self, old: &str, new: &str) -> Case {
        let text = String::from_utf8(self.text(MODEL).to_vec()).expect("BASE is text");
        assert_eq!(
            text.matches(old).count(),
            1,
            "test bug: {old:?} should occur once in {MODEL} (case {})",
            self.name
        );
        let text = text.replacen(old, new, 1);
        self.file(MODEL, text)
    }

    /// Expects the error at `rel:<line of needle>`.
    fn at_line(mut self, rel: &str, needle: impl AsRef<[u8]>) -> Case {
        let line = line_of(self.text(rel), needle.as_ref());
        self.at = format!("{rel}:{line}");
        self
    }

    /// Expects the error at a fixed place (`file:line`, or a path).
    fn at(mut self, at: impl Into<String>) -> Case {
        self.at = at.into();
        self
    }

    fn data(mut self) -> Case {
        self.data = true;
        self
    }

    fn link(mut self, link: &str, target: &str) -> Case {
        self.links.push((link.into(), target.into()));
        self
    }

    fn fifo(mut self, rel: &str) -> Case {
        self.fifos.push(rel.into());
        self
    }

    fn sparse(mut self, rel: &str, size: u64) -> Case {
        self.sparse.push((rel.into(), size));
        self
    }

    /// A file of `head` then `line` repeated to about `bytes` bytes,
    /// written when the case runs (never held in memory).
    fn filled(mut self, rel: &str, head: &str, line: &str, bytes: usize) -> Case {
        self.filled
            .push((rel.into(), head.into(), line.into(), bytes));
        self
    }

    fn without(mut self, rel: &str) -> Case {
        self.files.retain(|(r, _)| r != rel);
        self
    }
}

// ---------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------

struct Outcome {
    status: ExitStatus,
    stderr: String,
    elapsed: Duration,
}

/// Runs kpic with `args` on the project at `root`, killing it after
/// [`WATCHDOG`].
fn invoke(root: &Path, scratch: &Path, args: &[&str]) -> Result<Outcome, String> {
    let out_path = scratch.join("stdout.txt");
    let err_path = scratch.join("stderr.txt");
    let stdout = std::fs::File::create(&out_path).map_err(|e| format!("create stdout: {e}"))?;
    let stderr = std::fs::File::create(&err_path).map_err(|e| format!("create stderr: {e}"))?;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpic"))
        .args(["--color", "never", "--project"])
        .arg(root)
        .args(args)
        .current_dir(scratch)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start kpic: {e}"))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > WATCHDOG => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`kpic {}` hangs: killed after {} s",
                    args.join(" "),
                    WATCHDOG.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for kpic: {e}")),
        }
    };
    let elapsed = started.elapsed();
    let stderr = std::fs::read(&err_path).map_err(|e| format!("read stderr: {e}"))?;
    Ok(Outcome {
        status,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed,
    })
}

#[cfg(unix)]
fn signal_of(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_: &ExitStatus) -> Option<i32> {
    None
}

/// What is wrong with one outcome, timing aside.
fn judge(c: &Case, command: &str, o: &Outcome) -> Option<String> {
    let mut problems = Vec::new();
    if let Some(sig) = signal_of(&o.status) {
        problems.push(format!(
            "killed by signal {sig} (an abort, e.g. a stack overflow?)"
        ));
    } else if o.status.code() != Some(1) {
        problems.push(format!("exit code {:?}, expected 1", o.status.code()));
    }
    for bad in ["panicked", "stack overflow", "fatal runtime error"] {
        if o.stderr.contains(bad) {
            problems.push(format!("stderr says {bad:?}"));
        }
    }
    let code = format!("error[{}]", c.code);
    if !o.stderr.contains(&code) {
        problems.push(format!("no `{code}` on stderr"));
    }
    if !o.stderr.contains(&c.at) {
        problems.push(format!("stderr does not name the place `{}`", c.at));
    }
    if problems.is_empty() {
        return None;
    }
    let mut shown: String = o.stderr.chars().take(3000).collect();
    if shown.len() < o.stderr.len() {
        shown.push_str("\n[…]");
    }
    Some(format!(
        "`kpic {command}`: {}\n--- stderr ---\n{shown}",
        problems.join("; ")
    ))
}

fn set_up(c: &Case, scratch: &Path) -> Result<std::path::PathBuf, String> {
    let root = scratch.join("project");
    let outside = scratch.join("outside");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
    std::fs::write(outside.join("elsewhere.yml"), "metrics: []\n").map_err(|e| e.to_string())?;
    let mkdir = |p: &Path| {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))
        } else {
            Ok(())
        }
    };
    for (rel, bytes) in &c.files {
        let p = root.join(rel);
        mkdir(&p)?;
        std::fs::write(&p, bytes).map_err(|e| format!("write {rel}: {e}"))?;
    }
    for (rel, head, line, bytes) in &c.filled {
        use std::io::Write as _;
        let p = root.join(rel);
        mkdir(&p)?;
        let f = std::fs::File::create(&p).map_err(|e| format!("create {rel}: {e}"))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let chunk = line.repeat((1 << 20) / line.len().max(1) + 1);
        let mut written = 0;
        w.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        while written < *bytes {
            w.write_all(chunk.as_bytes()).map_err(|e| e.to_string())?;
            written += chunk.len();
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    for (rel, size) in &c.sparse {
        let p = root.join(rel);
        mkdir(&p)?;
        let f = std::fs::File::create(&p).map_err(|e| format!("create {rel}: {e}"))?;
        f.set_len(*size)
            .map_err(|e| format!("set_len {rel}: {e}"))?;
    }
    for rel in &c.fifos {
        let p = root.join(rel);
        mkdir(&p)?;
        let ok = Command::new("mkfifo")
            .arg(&p)
            .status()
            .map_err(|e| format!("mkfifo {rel}: {e}"))?;
        if !ok.success() {
            return Err(format!("mkfifo {rel} failed"));
        }
    }
    for (link, target) in &c.links {
        let p = root.join(link);
        mkdir(&p)?;
        let target = target
            .replace("{root}", &root.to_string_lossy())
            .replace("{outside}", &outside.to_string_lossy());
        symlink(&target, &p)?;
    }
    Ok(root)
}

#[cfg(unix)]
fn symlink(target: &str, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| format!("symlink {} -> {target}: {e}", link.display()))
}

#[cfg(not(unix))]
fn symlink(_: &str, _: &Path) -> Result<(), String> {
    Err("symlinks are tested on unix only".into())
}

/// Runs one case; `Err` says what went wrong.
fn run_case(c: &Case) -> Result<(), String> {
    assert!(
        !c.at.is_empty(),
        "test bug: case {} expects no place",
        c.name
    );
    let tmp = tempfile::Builder::new()
        .prefix("kpic-hostile-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let root = set_up(c, tmp.path())?;
    let out_dir = tmp.path().join("compiled");
    let db = tmp.path().join("t.duckdb");
    let mut commands: Vec<Vec<&str>> = vec![vec!["check"]];
    if c.data {
        commands.push(vec!["compile", "--out", out_dir.to_str().ok_or("path")?]);
        commands.push(vec!["run", "--db", db.to_str().ok_or("path")?]);
    }
    for args in &commands {
        let command = args.join(" ");
        let mut first_time = None;
        loop {
            let o = invoke(&root, tmp.path(), args)?;
            if let Some(problem) = judge(c, &command, &o) {
                return Err(problem);
            }
            if o.elapsed <= BUDGET {
                break;
            }
            // Over budget: once more before failing (CI noise).
            match first_time {
                None => first_time = Some(o.elapsed),
                Some(t) => {
                    return Err(format!(
                        "`kpic {command}` is too slow: {t:?}, then {:?} (budget {BUDGET:?})",
                        o.elapsed
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs every case of a category and reports all failures by name.
fn run_all(category: &str, cases: Vec<Case>) {
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "test bug: two cases named {}", c.name);
    }
    let mut failures = String::new();
    let mut failed = 0;
    for c in &cases {
        if let Err(e) = run_case(c) {
            failed += 1;
            let _ = write!(
                failures,
                "\n=== {category}/{} (expected {} at {}) ===\n{e}\n",
                c.name, c.code, c.at
            );
        }
    }
    assert!(
        failed == 0,
        "{failed} of {} {category} cases failed:\n{failures}",
        cases.len()
    );
}

// ---------------------------------------------------------------------------
// Sanity: the base project is valid, so every error comes from the change.
// ---------------------------------------------------------------------------

#[test]
fn base_project_is_valid() {
    let c = case("base", "none").at("-");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = set_up(&c, tmp.path()).expect("set up");
    let db = tmp.path().join("t.duckdb");
    for args in [
        vec!["check"],
        vec!["run", "--db", db.to_str().expect("utf-8")],
    ] {
        let o = invoke(&root, tmp.path(), &args).expect("kpic runs");
        assert_eq!(
            o.status.code(),
            Some(0),
            "`kpic {}` on BASE: {}",
            args.join(" "),
            o.stderr
        );
        assert!(
            !o.stderr.contains("warning["),
            "BASE has warnings: {}",
            o.stderr
        );
    }
}

// ---------------------------------------------------------------------------
// YAML alias bombs ("billion laughs")
// ---------------------------------------------------------------------------

/// `a: &a [x × 10]`, `b: &b [*a × 10]`, …: level `k` expands to 10^k nodes.
/// Levels a–d stay within the node budget (about 2 × 11 110 nodes with the
/// anchored copies); level e (100 000 more) is where it is exceeded.
fn bomb_lines(flow_map: bool) -> Vec<String> {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let mut lines = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let items: Vec<String> = if i == 0 {
            vec!["lol".to_string(); 10]
        } else {
            vec![format!("*{}", names[i - 1]); 10]
        };
        let body = if flow_map {
            let kv: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(j, v)| format!("k{j}: {v}"))
                .collect();
            format!("{{{}}}", kv.join(", "))
        } else {
            format!("[{}]", items.join(", "))
        };
        lines.push(format!("{n}: &{n} {body}"));
    }
    lines
}

#[test]
fn yaml_alias_bombs() {
    let seq = bomb_lines(false).join("\n") + "\n";
    let map = bomb_lines(true).join("\n") + "\n";
    let big = "x".repeat(1024 * 1024);
    let string_bomb = format!(
        "metrics:\n  - name: s\n    description: &s \"{big}\"\n    label: [{}]\n",
        vec!["*s"; 100].join(", ")
    );
    let one_line = format!("name: shop\nvars: {{{}}}\n", bomb_lines(false).join(", "));
    let cases = vec![
        // Nested sequences of aliases in a model file.
        case("billion_laughs_sequences", "KPI107")
            .file("models/bomb.yml", seq.clone())
            .at_line("models/bomb.yml", "e: &e"),
        // The same with mappings.
        case("billion_laughs_mappings", "KPI107")
            .file("models/bomb.yml", map.clone())
            .at_line("models/bomb.yml", "e: &e"),
        // Aliases of one 1 MB string: bounded by bytes, not nodes.
        case("alias_of_a_large_string", "KPI107")
            .file("models/bomb.yml", string_bomb.clone())
            .at_line("models/bomb.yml", "label: ["),
        // In kpic.yml `vars`, all on one line (vars reach templates).
        case("billion_laughs_in_kpic_yml_vars", "KPI107")
            .file("kpic.yml", one_line.clone())
            .at("kpic.yml:2"),
        // An alias inside the node it names.
        case("alias_inside_its_anchor", "KPI102")
            .file("models/bomb.yml", "metrics: &m [1, *m]\n")
            .at("models/bomb.yml:1"),
        // An alias of an anchor that does not exist.
        case("undefined_alias", "KPI102")
            .file("models/bomb.yml", "metrics:\n  - *nowhere\n")
            .at("models/bomb.yml:2"),
        // Merge keys (YAML 1.1) are refused, so they cannot multiply keys.
        case("merge_key_of_a_bomb", "KPI102")
            .file(
                "models/bomb.yml",
                "a: &a {x: 1}\nmetrics:\n  - <<: [*a, *a, *a]\n",
            )
            .at("models/bomb.yml:3"),
    ];
    run_all("yaml_alias_bombs", cases);
}

// ---------------------------------------------------------------------------
// Deep nesting: YAML, SQL, templates, definitions
// ---------------------------------------------------------------------------

#[test]
fn deep_nesting() {
    let n = 100_000;
    let deep_seq = format!("metrics: {}{}\n", "[".repeat(n), "]".repeat(n));
    let deep_map = format!("metrics: {}1{}\n", "{a: ".repeat(n), "}".repeat(n));
    let unclosed = format!("metrics:\n  - {}", "[".repeat(n));
    let dashes = format!("metrics:\n{}x\n", "- ".repeat(1_000_000));
    // Block mappings, one more level per line: line k opens level k, and
    // the limit is 64 levels, so line 65 is one too deep.
    let indented: String = std::iter::once("kpis:\n".to_string())
        .chain((1..3000).map(|i| format!("{}a{i}:\n", " ".repeat(i))))
        .collect();
    let deep_config = format!("vars: {}1{}\n", "{v: ".repeat(n), "}".repeat(n));
    // Derived metrics: a chain of 5000 (m32 is the 33rd level), and a chain
    // where every level uses the previous one twice (2^40 terms written out).
    let chain: String = std::iter::once("metrics:\n".to_string())
        .chain((0..5000).map(|i| {
            let prev = if i == 0 {
                "revenue".to_string()
            } else {
                format!("m{}", i - 1)
            };
            format!("  - name: m{i}\n    expr: {prev} + 1\n")
        }))
        .collect();
    let doubling: String = std::iter::once("metrics:\n".to_string())
        .chain((0..40).map(|i| {
            let prev = if i == 0 {
                "revenue".to_string()
            } else {
                format!("m{}", i - 1)
            };
            format!("  - name: m{i}\n    expr: {prev} + {prev}\n")
        }))
        .collect();
    let cycle: String = std::iter::once("metrics:\n".to_string())
        .chain((0..5000).map(|i| format!("  - name: c{i}\n    expr: c{}\n", (i + 1) % 5000)))
        .collect();
    let deep_dir = format!("models/{}m.yml", "d/".repeat(40));
    let cases = vec![
        case("yaml_100k_brackets", "KPI107")
            .file("models/deep.yml", deep_seq)
            .at("models/deep.yml:1"),
        case("yaml_100k_braces", "KPI107")
            .file("models/deep.yml", deep_map)
            .at("models/deep.yml:1"),
        case("yaml_100k_unclosed_brackets", "KPI107")
            .file("models/deep.yml", unclosed)
            .at("models/deep.yml:2"),
        case("yaml_a_million_dashes", "KPI107")
            .file("models/deep.yml", dashes)
            .at("models/deep.yml:2"),
        case("yaml_3000_levels_of_indentation", "KPI107")
            .file("models/deep.yml", indented)
            .at("models/deep.yml:65"),
        case("yaml_100k_braces_in_kpic_yml", "KPI107")
            .file("kpic.yml", deep_config)
            .at("kpic.yml:1"),
        // SQL: parentheses hit the parser's nesting limit; operator chains
        // (`a + a + …`) parse into trees as deep as the chain, which used to
        // overflow the stack while being cloned.
        case("sql_100k_parentheses", "KPI107")
            .edit(
                "measure: sum(amount)",
                &format!("measure: sum({}amount{})", "(".repeat(n), ")".repeat(n)),
            )
            .at_line(MODEL, "measure: sum((")
            .data(),
        case("sql_chain_of_100k_additions", "KPI107")
            .edit(
                "measure: sum(amount)",
                &format!("measure: sum(amount{})", " + amount".repeat(n)),
            )
            .at_line(MODEL, "measure: sum(amount +")
            .data(),
        case("sql_filter_of_10k_conditions", "KPI107")
            .edit(
                "filter: status = 'completed'",
                &format!(
                    "filter: {}",
                    vec!["status = 'completed'"; 10_000].join(" and ")
                ),
            )
            .at_line(MODEL, "filter: status = 'completed' and")
            .data(),
        case("sql_100k_nots", "KPI107")
            .edit(
                "filter: status = 'completed'",
                &format!("filter: {}true", "not ".repeat(n)),
            )
            .at_line(MODEL, "filter: not not")
            .data(),
        case("sql_10k_nested_cases", "KPI107")
            .edit(
                "measure: sum(amount)",
                &format!(
                    "measure: sum({}amount{})",
                    "case when true then ".repeat(10_000),
                    " end".repeat(10_000)
                ),
            )
            .at_line(MODEL, "measure: sum(case")
            .data(),
        case("sql_long_chain_in_derived_expr", "KPI107")
            .edit(
                "expr: revenue / order_count",
                &format!("expr: revenue{}", " - revenue".repeat(20_000)),
            )
            .at_line(MODEL, "expr: revenue - revenue")
            .data(),
        // Templates: nested blocks hit minijinja's limit; a template over
        // 256 KB is refused before it is compiled.
        case("jinja_10k_nested_ifs", "KPI108")
            .edit(
                "filter: status = 'completed'",
                &format!(
                    "filter: \"{}status = 'completed'{}\"",
                    "{% if true %}".repeat(10_000),
                    "{% endif %}".repeat(10_000)
                ),
            )
            .at_line(MODEL, "filter: \"{% if"),
        case("jinja_chain_of_200k_additions", "KPI107")
            .edit(
                "filter: status = 'completed'",
                &format!("filter: \"{{{{ 1{} }}}} = 1\"", "+1".repeat(200_000)),
            )
            .at_line(MODEL, "filter: \"{{ 1+1"),
        case("jinja_chain_in_a_macro_file", "KPI107")
            .edit("measure: sum(amount)", "measure: \"{{ f() }}\"")
            .file(
                "macros/chain.sql",
                format!(
                    "{{% macro f() %}}{{{{ 1{} }}}}{{% endmacro %}}\n",
                    "+1".repeat(200_000)
                ),
            )
            .at("macros/chain.sql:1"),
        // Definitions: derived metrics 5000 levels deep, and 40 levels that
        // each double the written-out formula.
        case("derived_metrics_5000_levels", "KPI107")
            .edit("metric: revenue", "metric: m4999")
            .file("models/chain.yml", chain.clone())
            .at_line("models/chain.yml", "expr: m31 + 1")
            .data(),
        case("derived_metrics_doubling_40_times", "KPI107")
            .edit("metric: revenue", "metric: m39")
            .file("models/chain.yml", doubling.clone())
            // 2 * (terms of m(i-1)) + 1 terms: m9 has 2047 > 2000.
            .at_line("models/chain.yml", "expr: m8 + m8")
            .data(),
        case("metric_cycle_of_5000", "KPI206")
            .edit("metric: revenue", "metric: c0")
            .file("models/cycle.yml", cycle)
            .at_line("models/cycle.yml", "name: c0"),
        case("model_dirs_40_levels_deep", "KPI107")
            .file(&deep_dir, "metrics: []\n")
            .at("models/d/d/d/d/d"),
    ];
    run_all("deep_nesting", cases);
}

// ---------------------------------------------------------------------------
// 100 MB files
// ---------------------------------------------------------------------------

#[test]
fn huge_files() {
    const MB: usize = 1024 * 1024;
    let padding = "# padding padding padding padding padding padding padding\n";
    let long_line = format!(
        "metrics:\n  - name: big\n    description: \"{}\"\n    expr: revenue\n    colour: red\n",
        "x".repeat(9 * MB)
    );
    let many_lines = format!(
        "{}metrics:\n  - name: late\n    expr: revenue\n    colour: red\n",
        "# filler\n".repeat(900_000)
    );
    let cases = vec![
        case("model_file_of_100mb_text", "KPI107")
            .filled("models/huge.yml", "", padding, 100 * MB)
            .at("models/huge.yml:1"),
        case("model_file_of_100mb_sparse", "KPI107")
            .sparse("models/huge.yml", 100 * MB as u64)
            .at("models/huge.yml:1"),
        case("model_file_of_100gb_sparse", "KPI107")
            .sparse("models/huge.yml", 100 * 1024 * MB as u64)
            .at("models/huge.yml:1"),
        case("model_file_of_100mb_on_one_line", "KPI107")
            .filled("models/huge.yml", "metrics: [", "x, ", 100 * MB)
            .at("models/huge.yml:1"),
        case("kpic_yml_of_100mb", "KPI107")
            .filled("kpic.yml", "", padding, 100 * MB)
            .at("kpic.yml:1"),
        case("macro_file_of_100mb", "KPI107")
            .filled("macros/huge.sql", "", padding, 100 * MB)
            .at("macros/huge.sql:1"),
        case("target_file_of_100mb", "KPI216")
            .edit("target: 100", "target: {file: data/targets.csv}")
            .filled(
                "data/targets.csv",
                "period,target\n",
                "2024-01,100\n",
                100 * MB,
            )
            .at_line(MODEL, "target: {file:")
            .data(),
        // Under the limit, big input is read quickly and errors still point
        // at their line: a 9 MB line, and 900 000 lines before an error.
        case("nine_mb_line_then_an_unknown_key", "KPI103")
            .file("models/big.yml", long_line)
            .at_line("models/big.yml", "colour: red"),
        case("900k_lines_then_an_unknown_key", "KPI103")
            .file("models/big.yml", many_lines)
            .at_line("models/big.yml", "colour: red"),
    ];
    run_all("huge_files", cases);
}

// ---------------------------------------------------------------------------
// Binary files
// ---------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// `file:line` of the first byte that is not UTF-8.
fn first_invalid_line(rel: &str, bytes: &[u8]) -> String {
    let at = std::str::from_utf8(bytes)
        .err()
        .map(|e| e.valid_up_to())
        .expect("test bug: the bytes are valid UTF-8");
    let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
    format!("{rel}:{line}")
}

#[test]
fn binary_files() {
    let random = random_bytes(0x5EED, 64 * 1024);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(random_bytes(7, 4096));
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(BASE.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let with_bytes = |marker: &str, bytes: &[u8]| -> Vec<u8> {
        let text = BASE.replacen("owner: growth", &format!("owner: {marker}"), 1);
        let mut out = Vec::new();
        let (head, tail) = text.split_once(marker).expect("marker");
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(tail.as_bytes());
        out
    };
    let latin1 = with_bytes("@@", b"caf\xe9");
    let overlong = with_bytes("@@", b"gr\xc0\x80wth");
    let surrogate = with_bytes("@@", b"\xed\xa0\x80");
    let cases = vec![
        case("random_bytes", "KPI101")
            .file("models/noise.yml", random.clone())
            .at(first_invalid_line("models/noise.yml", &random)),
        case("png_named_yml", "KPI101")
            .file("models/logo.yml", png.clone())
            .at("models/logo.yml:1"),
        case("nul_bytes", "KPI102")
            .file("models/nul.yml", vec![0u8; 4096])
            .at("models/nul.yml:1"),
        case("nul_inside_a_value", "KPI102")
            .edit("owner: growth", "owner: gro\0wth")
            .at_line(MODEL, "owner: gro"),
        case("latin1_byte", "KPI101")
            .file(MODEL, latin1.clone())
            .at(first_invalid_line(MODEL, &latin1)),
        case("overlong_utf8", "KPI101")
            .file(MODEL, overlong.clone())
            .at(first_invalid_line(MODEL, &overlong)),
        case("utf8_encoded_surrogate", "KPI101")
            .file(MODEL, surrogate.clone())
            .at(first_invalid_line(MODEL, &surrogate)),
        case("utf16_with_bom", "KPI101")
            .file(MODEL, utf16.clone())
            .at("models/m.yml:1"),
        case("terminal_escape_sequence_in_a_value", "KPI102")
            .edit("owner: growth", "owner: \u{1b}[2J\u{1b}[31mgrowth\u{7}")
            .at_line(MODEL, "owner: "),
        case("binary_kpic_yml", "KPI101")
            .file("kpic.yml", b"name: shop\n\xff\xfe\x00\x01".to_vec())
            .at("kpic.yml:2"),
        case("binary_macro_file", "KPI101")
            .file(
                "macros/m.sql",
                b"{% macro f() %}\n1\n\xff{% endmacro %}".to_vec(),
            )
            .at("macros/m.sql:3"),
        case("png_as_target_file", "KPI216")
            .edit("target: 100", "target: {file: data/targets.csv}")
            .file("data/targets.csv", png.clone())
            .at("data/targets.csv:1")
            .data(),
        case("right_to_left_override_in_a_name", "KPI201")
            .edit("name: aov", "name: ao\u{202e}v")
            .at_line(MODEL, "name: ao"),
    ];
    run_all("binary_files", cases);
}

// ---------------------------------------------------------------------------
// Symlinks, FIFOs, devices
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn symlinks_and_special_files() {
    let have_mkfifo = Command::new("mkfifo")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    let mut cases = vec![
        // Directory loops: absolute, relative, and through two links.
        case("dir_symlink_to_models", "KPI101")
            .link("models/a/loop", "{root}/models")
            .at("`models/a/loop`"),
        case("dir_symlink_to_parent", "KPI101")
            .link("models/up", "..")
            .at("`models/up`"),
        case("two_links_making_a_cycle", "KPI101")
            .file("models/x/x.yml", "metrics: []\n")
            .file("models/y/y.yml", "metrics: []\n")
            .link("models/x/to_y", "../y")
            .link("models/y/to_x", "../x")
            .at("is a symlink loop"),
        // Leaving the project: `/` (a loop too), and a directory outside.
        case("dir_symlink_to_filesystem_root", "KPI101")
            .link("models/root", "/")
            .at("`models/root`"),
        case("dir_symlink_outside_the_project", "KPI101")
            .link("models/shared", "{outside}")
            .at("`models/shared`"),
        // Files: a self-link, a dangling link, a device.
        case("yml_symlink_to_itself", "KPI101")
            .link("models/self.yml", "self.yml")
            .at("models/self.yml:1"),
        case("dangling_yml_symlink", "KPI101")
            .link("models/gone.yml", "nowhere.yml")
            .at("models/gone.yml:1"),
        case("yml_symlink_to_dev_zero", "KPI101")
            .link("models/zero.yml", "/dev/zero")
            .at("models/zero.yml:1"),
        case("yml_symlink_to_dev_urandom", "KPI101")
            .link("models/random.yml", "/dev/urandom")
            .at("models/random.yml:1"),
        case("kpic_yml_symlink_to_itself", "KPI101")
            .link("kpic.yml", "kpic.yml")
            .at("kpic.yml:1"),
        case("macro_dir_loop_and_self_linked_macro", "KPI101")
            .link("macros/sub/loop", "{root}/macros")
            .link("macros/self.sql", "self.sql")
            .at("macros/self.sql:1"),
        case("models_dir_links_to_itself", "KPI106")
            .without(MODEL)
            .link("models", "models")
            .at("`models`"),
        // Data files that are not files: a directory, a device.
        case("source_path_is_a_directory", "KPI212")
            .edit("path: data/orders.csv", "path: data")
            .at_line(MODEL, "path: data\n")
            .data(),
        case("source_path_is_dev_zero", "KPI212")
            .edit("path: data/orders.csv", "path: /dev/zero")
            .at_line(MODEL, "path: /dev/zero")
            .data(),
        case("target_file_is_dev_zero", "KPI216")
            .edit("target: 100", "target: {file: /dev/zero}")
            .at_line(MODEL, "target: {file:")
            .data(),
        case("target_file_is_a_directory", "KPI216")
            .edit("target: 100", "target: {file: data}")
            .at_line(MODEL, "target: {file:")
            .data(),
    ];
    if Path::new("/proc/self").exists() {
        cases.push(
            case("dir_symlink_to_proc_self", "KPI101")
                .link("models/proc", "/proc/self")
                .at("`models/proc`"),
        );
    }
    if have_mkfifo {
        cases.push(
            case("fifo_named_yml", "KPI101")
                .fifo("models/pipe.yml")
                .at("models/pipe.yml:1"),
        );
        cases.push(
            case("source_path_is_a_fifo", "KPI212")
                .edit("path: data/orders.csv", "path: data/pipe.csv")
                .fifo("data/pipe.csv")
                .at_line(MODEL, "path: data/pipe.csv")
                .data(),
        );
        cases.push(
            case("target_file_is_a_fifo", "KPI216")
                .edit("target: 100", "target: {file: data/pipe.csv}")
                .fifo("data/pipe.csv")
                .at_line(MODEL, "target: {file:")
                .data(),
        );
    }
    run_all("symlinks_and_special_files", cases);
}

// ---------------------------------------------------------------------------
// Jinja that never ends
// ---------------------------------------------------------------------------

#[test]
fn runaway_templates() {
    // The measure calls `f()` from macros/m.sql.
    let with_macro = |name: &'static str, code: &'static str, body: &str| {
        case(name, code)
            .edit(
                "measure: sum(amount)",
                "measure: \"sum(amount) + {{ f() }}\"",
            )
            .file("macros/m.sql", body.to_string())
            .at_line(MODEL, "measure: \"sum(amount)")
    };
    let doubling_sets = "{% set x = x + x %}".repeat(40);
    let cases = vec![
        with_macro(
            "macro_calling_itself",
            "KPI108",
            "{% macro f() %}{{ f() }}{% endmacro %}",
        ),
        with_macro(
            "macros_calling_each_other",
            "KPI108",
            "{% macro f() %}{{ g() }}{% endmacro %}\n{% macro g() %}{{ f() }}{% endmacro %}",
        ),
        with_macro(
            "range_of_a_billion",
            "KPI108",
            "{% macro f() %}{% for i in range(1000000000) %}x{% endfor %}{% endmacro %}",
        ),
        with_macro(
            "nested_loops_of_100k",
            "KPI108",
            "{% macro f() %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endmacro %}",
        ),
        with_macro(
            "string_times_a_trillion",
            "KPI108",
            "{% macro f() %}{{ 'x' * 1000000000000 }}{% endmacro %}",
        ),
        with_macro(
            "string_doubling_in_a_loop",
            "KPI108",
            "{% macro f() %}{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}{% endmacro %}",
        ),
        // minijinja materializes a long chain of list concatenations without
        // charging fuel: only the time limit stops these.
        with_macro(
            "list_doubling_in_a_loop",
            "KPI108",
            "{% macro f() %}{% set ns = namespace(x=[1]) %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}1{% endmacro %}",
        ),
        case("list_doubling_unrolled_in_a_field", "KPI108")
            .edit(
                "measure: sum(amount)",
                &format!("measure: \"sum(amount) + {{% set x = [1] %}}{doubling_sets}1\""),
            )
            .at_line(MODEL, "measure: \"sum(amount)"),
        case("macro_file_whose_import_never_ends", "KPI108")
            .file(
                "macros/m.sql",
                format!("{{% set x = [1] %}}{doubling_sets}\n{{% macro f() %}}1{{% endmacro %}}\n"),
            )
            .at("macros/m.sql:1"),
        with_macro(
            "recursive_for_loop",
            "KPI108",
            "{% macro f() %}{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}{% endmacro %}",
        ),
        case("endless_loop_inline", "KPI108")
            .edit(
                "filter: status = 'completed'",
                "filter: \"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}status = 'completed'\"",
            )
            .at_line(MODEL, "filter: \"{% for"),
        case("macro_file_syntax_error", "KPI108")
            .file("macros/m.sql", "{% macro f() %}{{ {% endmacro %}\n")
            .at("macros/m.sql:1"),
    ];
    run_all("runaway_templates", cases);
}

// ---------------------------------------------------------------------------
// SQL injection: a field is an expression (a source's `sql:` one SELECT),
// never a statement; names are identifiers; values are data.
// ---------------------------------------------------------------------------

#[test]
fn sql_injection() {
    let filter = "filter: status = 'completed'";
    let inject_filter = |name: &'static str, code: &'static str, text: &str| {
        case(name, code)
            .edit(filter, &format!("filter: {text}"))
            .at_line(MODEL, "filter: ")
            .data()
    };
    let sql_source = |name: &'static str, sql: &str| {
        case(name, "KPI109")
            .edit("path: data/orders.csv", &format!("sql: {sql}"))
            .at_line(MODEL, "sql: ")
            .data()
    };
    let target_file = |name: &'static str, csv: &str, needle: &str| {
        case(name, "KPI216")
            .edit("target: 100", "target: {file: data/targets.csv}")
            .file("data/targets.csv", csv.to_string())
            .at_line("data/targets.csv", needle)
            .data()
    };
    let cases = vec![
        // Filters.
        inject_filter("filter_statement", "KPI109", "\"1=1; drop table x\""),
        inject_filter(
            "filter_comment_then_statement",
            "KPI109",
            "\"status = 'completed' /* */; drop table x\"",
        ),
        inject_filter(
            "filter_statement_then_line_comment",
            "KPI109",
            "\"status = 'x'; drop table x --\"",
        ),
        inject_filter(
            "filter_quote_breakout",
            "KPI109",
            "\"status = 'x' or '1'='1\"",
        ),
        inject_filter(
            "filter_paren_breakout",
            "KPI109",
            "\"status = 'x') or (1=1\"",
        ),
        inject_filter(
            "filter_unterminated_block_comment",
            "KPI109",
            "\"status = 'x' /* and\"",
        ),
        inject_filter(
            "filter_closing_a_comment_it_did_not_open",
            "KPI109",
            "\"status = 'x' */ or 1=1\"",
        ),
        inject_filter(
            "filter_subquery_then_statement",
            "KPI109",
            "\"exists (select 1); drop table x\"",
        ),
        inject_filter(
            "filter_subquery_that_inserts",
            "KPI109",
            "\"amount in (insert into x select 1 returning 1)\"",
        ),
        inject_filter(
            "filter_subquery_with_cte_that_inserts",
            "KPI109",
            "\"amount in (with a as (select 1) insert into x select * from a)\"",
        ),
        inject_filter(
            "filter_select_into",
            "KPI109",
            "\"amount in (select 1 into y)\"",
        ),
        // Other SQL fields.
        case("measure_breakout", "KPI109")
            .edit(
                "measure: sum(amount)",
                "measure: \"sum(amount)); drop table x; select (1\"",
            )
            .at_line(MODEL, "measure: ")
            .data(),
        case("derived_expr_statement", "KPI109")
            .edit(
                "expr: revenue / order_count",
                "expr: \"revenue; drop table x\"",
            )
            .at_line(MODEL, "expr: ")
            .data(),
        case("decomposition_statement", "KPI109")
            .edit(
                "breakdowns: [channel]",
                "breakdowns: [channel]\n    decomposition: \"aov * order_count; drop table x\"",
            )
            .at_line(MODEL, "decomposition: ")
            .data(),
        case("kpi_filter_statement", "KPI109")
            .edit(
                "breakdowns: [channel]",
                "breakdowns: [channel]\n    filter: \"1=1; delete from orders\"",
            )
            .at_line(MODEL, "filter: \"1=1")
            .data(),
        case("dimension_expr_statement", "KPI109")
            .edit(
                "      - status\n",
                "      - status\n      - {name: shouting, expr: \"upper(channel); drop table x\"}\n",
            )
            .at_line(MODEL, "name: shouting")
            .data(),
        case("join_condition_statement", "KPI109")
            .edit(
                "on: customer_id",
                "on: \"orders.customer_id = customers.customer_id; drop table x\"",
            )
            .at_line(MODEL, "on: ")
            .data(),
        case("time_column_statement", "KPI109")
            .edit("time: ordered_at", "time: \"ordered_at; drop table x\"")
            .at_line(MODEL, "time: ")
            .data(),
        case("table_name_statement", "KPI109")
            .edit(
                "path: data/customers.csv",
                "table: \"customers; drop table x\"",
            )
            .at_line(MODEL, "table: ")
            .data(),
        case("path_breakout", "KPI212")
            .edit(
                "path: data/orders.csv",
                "path: \"data/orders.csv'); drop table x; --\"",
            )
            .at_line(MODEL, "path: \"data")
            .data(),
        // `sql:` sources: one SELECT, which only reads.
        sql_source(
            "sql_source_two_statements",
            "\"select * from read_csv('data/orders.csv'); drop table x\"",
        ),
        sql_source(
            "sql_source_comment_hiding_a_statement",
            "\"select * from read_csv('data/orders.csv') /* x */ ; drop table x --\"",
        ),
        sql_source("sql_source_drop", "\"drop table x\""),
        sql_source("sql_source_attach", "\"attach 'other.duckdb'\""),
        sql_source("sql_source_copy_to", "\"copy (select 1) to 'x.csv'\""),
        sql_source("sql_source_insert", "\"insert into x select 1\""),
        sql_source(
            "sql_source_cte_then_insert",
            "\"with a as (select 1) insert into x select * from a\"",
        ),
        sql_source(
            "sql_source_insert_inside_a_cte",
            "\"with a as (insert into x select 1 returning *) select * from read_csv('data/orders.csv')\"",
        ),
        sql_source(
            "sql_source_select_into",
            "\"select * into x from read_csv('data/orders.csv')\"",
        ),
        // Names are identifiers `[a-z][a-z0-9_]*`, never quoted into SQL.
        case("metric_name_with_quote", "KPI201")
            .edit("name: aov", "name: \"aov'; drop table x; --\"")
            .at_line(MODEL, "name: \"aov"),
        case("source_name_with_backticks", "KPI201")
            .edit("name: customers", "name: \"`customers`\"")
            .at_line(MODEL, "name: \"`"),
        case("kpi_name_with_semicolon", "KPI201")
            .edit("name: monthly_revenue", "name: \"monthly_revenue; drop table x\"")
            .at_line(MODEL, "name: \"monthly"),
        case("dimension_name_with_double_quote", "KPI201")
            .edit("      - status\n", "      - status\n      - {name: \"x\\\"; drop\", expr: channel}\n")
            .at_line(MODEL, "name: \"x"),
        case("breakdown_with_statement", "KPI205")
            .edit("breakdowns: [channel]", "breakdowns: [\"channel; drop table x\"]")
            .at_line(MODEL, "breakdowns: ")
            .data(),
        // Values: labels, numbers and dates are parsed, never pasted.
        case("target_label_injection", "KPI215")
            .edit(
                "target: 100",
                "target: {values: {\"2024-01'; drop table x; --\": 100}}",
            )
            .at_line(MODEL, "target: {values")
            .data(),
        target_file(
            "target_file_number_cell_injection",
            "period,target\n2024-01,100\n2024-02,\"100); drop table x; --\"\n",
            "2024-02,",
        ),
        target_file(
            "target_file_period_cell_injection",
            "period,target\n2024-01,100\n\"2024-02'; drop table x; --\",5\n",
            "\"2024-02'",
        ),
        target_file(
            "target_file_ragged_row",
            "period,target\n2024-01,100\n2024-02,5,'); drop table x; --\n",
            "2024-02,5",
        ),
        case("as_of_injection", "KPI110")
            .file("kpic.yml", "as_of: \"2024-01-01'; drop table x; --\"\n")
            .at("kpic.yml:1")
            .data(),
        case("grain_injection", "KPI110")
            .edit("grain: month", "grain: \"month; drop table x\"")
            .at_line(MODEL, "grain: ")
            .data(),
        case("tolerance_injection", "KPI110")
            .edit("tolerance: 10%", "tolerance: \"0.1; drop table x\"")
            .at_line(MODEL, "tolerance: ")
            .data(),
        case("window_injection", "KPI110")
            .edit(
                "measure: count(*)",
                "measure: count(*)\n    window: \"30 days; drop table x\"",
            )
            .at_line(MODEL, "window: ")
            .data(),
        case("var_injection_through_a_template", "KPI109")
            .file(
                "kpic.yml",
                "vars:\n  status: \"completed'; drop table x; --\"\n",
            )
            .edit(filter, "filter: \"status = '{{ var('status') }}'\"")
            .at_line(MODEL, "filter: ")
            .data(),
    ];
    run_all("sql_injection", cases);
}

// ---------------------------------------------------------------------------
// What is not an error: free text is data, comments are dropped.
// ---------------------------------------------------------------------------

#[test]
fn free_text_with_sql_is_stored_verbatim() {
    let evil = "x'); drop table kpi_results; --";
    let c = case("free_text", "none").at("-").edit(
        "action_plan: Review the funnel.",
        &format!(
            "action_plan: \"{evil}\"\n    label: \"{evil}\"\n    description: \"/* {evil} */\""
        ),
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = set_up(&c, tmp.path()).expect("set up");
    let db = tmp.path().join("t.duckdb");
    let o = invoke(
        &root,
        tmp.path(),
        &["run", "--db", db.to_str().expect("utf-8")],
    )
    .expect("kpic runs");
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let conn = duckdb::Connection::open(&db).expect("open the database");
    let (plan, label, description): (String, String, String) = conn
        .query_row(
            "SELECT action_plan, label, description FROM kpi_definitions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("kpi_definitions has the KPI");
    assert_eq!(plan, evil);
    assert_eq!(label, evil);
    assert_eq!(description, format!("/* {evil} */"));
    let results: i64 = conn
        .query_row("SELECT count(*) FROM kpi_results", [], |r| r.get(0))
        .expect("kpi_results still exists");
    assert!(results > 0);
}

#[test]
fn sql_comments_in_a_filter_are_dropped() {
    // A comment cannot hide or add anything: kpic prints SQL from the
    // parsed expression, so the comment's text never reaches the engine.
    let c = case("comment", "none").at("-").edit(
        "filter: status = 'completed'",
        "filter: \"status = 'completed' -- ) or (1=1\"",
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = set_up(&c, tmp.path()).expect("set up");
    let out = tmp.path().join("compiled");
    let o = invoke(
        &root,
        tmp.path(),
        &["compile", "--out", out.to_str().expect("utf-8")],
    )
    .expect("kpic runs");
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let sql = std::fs::read_to_string(out.join("duckdb").join("kpi_results.sql"))
        .expect("kpi_results.sql");
    assert!(!sql.contains("1=1") && !sql.contains("1 = 1"), "{sql}");
    assert!(sql.contains("'completed'"), "{sql}");
}

// ---------------------------------------------------------------------------
// Hostile text in valid projects: what kpic prints for people shows control
// and bidi characters instead of sending them to the terminal (CSV and JSON
// keep the exact values); target file rows naming no KPI are warnings;
// did-you-mean hints never suggest the name as written.
// ---------------------------------------------------------------------------

/// Runs kpic on a valid project: (exit code, stdout, stderr).
fn output_of(root: &Path, scratch: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_kpic"))
        .args(["--color", "never", "--project"])
        .arg(root)
        .args(args)
        .current_dir(scratch)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("kpic runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Characters that drive a terminal or reorder what it shows.
fn terminal_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(c)
                || ('\u{2066}'..='\u{2069}').contains(c)
        })
        .collect()
}

#[test]
fn data_and_yaml_text_cannot_drive_the_terminal() {
    // A breakdown member from the data, a label and an owner from YAML
    // escapes: ESC sequences, BEL, a bidi override, C1 CSI.
    let member = "\u{1b}[31mstore\u{202e}\u{9b}2J";
    let label = "\u{1b}]0;pwned\u{7}Revenue\u{202e}";
    let c = case("escapes", "none")
        .at("-")
        .edit("owner: growth", "owner: \"\\e[1mgrowth\"")
        .edit(
            "action_plan: Review the funnel.",
            "action_plan: \"Review\\e[2J the funnel.\"\n    label: \"\\e]0;pwned\\aRevenue\\u202e\"",
        )
        .file("data/orders.csv", ORDERS.replace("store", member));
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = set_up(&c, tmp.path()).expect("set up");
    let db = tmp.path().join("t.duckdb");
    let db = db.to_str().expect("utf-8");
    let human = |args: &[&str], shown: &[&str]| {
        let (code, out, err) = output_of(&root, tmp.path(), args);
        assert_eq!(code, Some(0), "kpic {args:?}: {err}");
        assert_eq!(
            terminal_controls(&out),
            Vec::<char>::new(),
            "kpic {args:?} printed control characters:\n{out}"
        );
        assert_eq!(terminal_controls(&err), Vec::<char>::new(), "{err}");
        for s in shown {
            assert!(out.contains(s), "kpic {args:?} does not show {s:?}:\n{out}");
        }
    };
    human(&["run", "--db", db], &["␛]0;pwned␇Revenue�"]);
    human(&["list"], &["␛[1mgrowth"]);
    let segment = "channel = ␛[31mstore�\\u{9b}2J";
    for format in ["text", "markdown"] {
        human(
            &["explain", "monthly_revenue", "--format", format],
            &[segment, "Review␛[2J the funnel.", "␛[1mgrowth"],
        );
    }
    // Machine formats keep the exact values.
    let (code, csv, err) = output_of(&root, tmp.path(), &["run", "--db", db, "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(csv.contains(label), "{csv:?}");
    let (code, json, err) = output_of(&root, tmp.path(), &["run", "--db", db, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(rows[0]["label"], label, "{json}");
    let (code, json, err) = output_of(
        &root,
        tmp.path(),
        &["explain", "monthly_revenue", "--format", "json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let members: Vec<&serde_json::Value> = v["root_causes"]
        .as_array()
        .expect("root_causes")
        .iter()
        .map(|c| &c["segment"]["channel"])
        .collect();
    assert!(members.iter().any(|m| *m == member), "{json}");
}

#[test]
fn target_file_rows_naming_no_kpi_are_warnings() {
    let targets = "\
kpi,period,target
monthly_revenue,2024-01,100
montly_revenue,2024-02,110
montly_revenue,2024-03,120
zzz_unrelated,2024-03,1
";
    let c = case("target_rows", "none")
        .at("-")
        .edit("target: 100", "target: {file: targets.csv}")
        .file("targets.csv", targets);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = set_up(&c, tmp.path()).expect("set up");
    let (code, _, err) = output_of(&root, tmp.path(), &["check"]);
    assert_eq!(code, Some(0), "warnings only:\n{err}");
    // One warning per unknown name, at its first row.
    assert_eq!(err.matches("warning[KPI257]").count(), 2, "{err}");
    assert!(err.contains("targets.csv:3:"), "{err}");
    assert!(err.contains("did you mean `monthly_revenue`?"), "{err}");
    assert!(err.contains("2 rows name it"), "{err}");
    assert!(err.contains("targets.csv:5:"), "{err}");
    assert!(err.contains("KPIs: monthly_revenue"), "{err}");
}

#[test]
fn did_you_mean_never_suggests_the_written_name() {
    let dims = "      - status\n      - name: ch\n        expr: upper(channel)\n";
    let check = |c: Case| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = set_up(&c, tmp.path()).expect("set up");
        let (code, _, err) = output_of(&root, tmp.path(), &["check"]);
        assert_eq!(code, Some(1), "{}: {err}", c.name);
        err
    };
    // A dimension where only columns may be used: it exists, so say what
    // is wrong instead of "did you mean `ch`?".
    let err = check(case("dimension_in_dimension", "KPI211").at("-").edit(
        "      - status\n",
        &format!("{dims}      - name: ch2\n        expr: lower(ch)\n"),
    ));
    assert!(err.contains("error[KPI211]"), "{err}");
    assert!(!err.contains("did you mean `ch`?"), "{err}");
    assert!(err.contains("`ch` is a dimension, not a column"), "{err}");
    // A KPI where a metric is expected.
    let err = check(
        case("kpi_as_metric", "KPI203")
            .at("-")
            .edit("metric: revenue", "metric: monthly_revenue"),
    );
    assert!(
        err.contains("`monthly_revenue` is a KPI, not a metric"),
        "{err}"
    );
    // A name differing only in case gets its twin.
    let err = check(
        case("case", "KPI211")
            .at("-")
            .edit("      - status\n", dims)
            .edit("measure: count(*)", "measure: count(distinct CH)"),
    );
    assert!(err.contains("did you mean `ch`?"), "{err}");
    // A column two joined sources have: ambiguous, not unknown.
    let err = check(
        case("ambiguous", "KPI211")
            .at("-")
            .edit(
                "        on: customer_id
",
                "        on: customer_id
      - source: accounts
        on: customer_id
",
            )
            .edit(
                "      - plan
",
                "      - plan
  - name: accounts
    path: data/accounts.csv
",
            )
            .file("data/accounts.csv", CUSTOMERS)
            .edit("measure: count(*)", "measure: count(distinct plan)"),
    );
    assert!(
        err.contains("`plan` is ambiguous: joined sources `customers` and `accounts`"),
        "{err}"
    );
}
