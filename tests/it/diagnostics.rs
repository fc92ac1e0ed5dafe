//! Every diagnostic code, from a project that triggers it.
//!
//! `fixtures/invalid/<CODE>_<slug>/` is one small project per error case;
//! it is valid except for one mistake, so it must fail for exactly that
//! reason. The fixture's files mark where the diagnostic must point with a
//! trailing comment on the caret line:
//!
//! ```yaml
//!     metric: revnue  # error: KPI203
//! ```
//!
//! (`# warning: KPI252` for a warning). A code may be marked on several lines
//! when more than one position is right (the two metrics of a cycle, the two
//! conflicting keys of a metric, every level of an alias bomb whose limit is
//! crossed at a level that depends on the limit). A diagnostic without a
//! position is declared in the fixture's `expected.txt` instead, one
//! `error: KPI106` line per code.
//!
//! For each fixture, `kpic check --format json` (or `kpic run`, for the
//! `KPI403_*` fixtures, since a join's fan-out is only seen in the data) must:
//! - not panic, and finish in well under a second (5 s asserted, for a loaded CI);
//! - exit 1 when an error is marked, 0 when only warnings are;
//! - report every marked code with its severity, and point every diagnostic of
//!   a marked code at one of that code's marked lines (same file, same line;
//!   `file` null for codes in `expected.txt`);
//! - report no error of an unmarked code (no cascade of follow-up errors).
//!
//! The human output of each fixture is snapshotted (`it__diagnostics__<fixture>.snap`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const KPIC: &str = env!("CARGO_BIN_EXE_kpic");

/// Codes of `codes.rs` that no project can trigger, with the reason. Every
/// other code up to KPI221, KPI251–KPI255, KPI257–KPI258 and KPI403 needs a
/// fixture.
const NO_FIXTURE: &[(&str, &str)] = &[];

fn invalid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid")
}

/// The fixture directories, sorted by name.
fn fixtures() -> Vec<(String, PathBuf)> {
    let dir = invalid_dir();
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("read fixtures/invalid entry").path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures under {}", dir.display());
    out
}

/// `Some(n)` for `KPInnn_...`.
fn fixture_code(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("KPI")?.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || name.as_bytes().get(6) != Some(&b'_') {
        return None;
    }
    digits.parse().ok()
}

/// Where a code must point: `None` file for a diagnostic without a position.
type Position = (Option<String>, Option<u64>);

#[derive(Default, Debug)]
struct Expected {
    /// code → severity ("error" / "warning") and the accepted positions.
    codes: BTreeMap<String, (String, BTreeSet<Position>)>,
}

impl Expected {
    fn add(&mut self, fixture: &str, severity: &str, code: &str, pos: Position) {
        let entry = self
            .codes
            .entry(code.to_string())
            .or_insert_with(|| (severity.to_string(), BTreeSet::new()));
        assert_eq!(
            entry.0, severity,
            "{fixture}: {code} is marked both as an error and as a warning"
        );
        entry.1.insert(pos);
    }

    fn has_errors(&self) -> bool {
        self.codes.values().any(|(s, _)| s == "error")
    }
}

/// `severity: KPInnn` occurrences in a line (`# error: KPI203`).
fn markers(line: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for severity in ["error", "warning"] {
        let needle = format!("# {severity}: KPI");
        let mut rest = line;
        while let Some(i) = rest.find(&needle) {
            let after = &rest[i + needle.len()..];
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if digits.len() == 3 {
                out.push((severity, format!("KPI{digits}")));
            }
            rest = after;
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn rel_slash(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .expect("file under the fixture")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads the markers of a fixture. Files are read as bytes (a fixture may
/// hold invalid UTF-8 on purpose).
fn expected(name: &str, dir: &Path) -> Expected {
    let mut exp = Expected::default();
    let mut files = Vec::new();
    walk(dir, &mut files);
    for path in files {
        let rel = rel_slash(dir, &path);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let text = String::from_utf8_lossy(&bytes);
        if rel == "expected.txt" {
            for line in text.lines() {
                let line = line.trim();
                for severity in ["error", "warning"] {
                    if let Some(code) = line.strip_prefix(&format!("{severity}: ")) {
                        exp.add(name, severity, code.trim(), (None, None));
                    }
                }
            }
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            for (severity, code) in markers(line) {
                exp.add(
                    name,
                    severity,
                    &code,
                    (Some(rel.clone()), Some(i as u64 + 1)),
                );
            }
        }
    }
    exp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let p = entry.expect("dir entry").path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", p.display(), dest.display()));
        }
    }
}

/// A fixture copied into a temporary directory (so kpic never writes into
/// the repository), with the directory for a DuckDB file next to it.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new(fixture: &Path) -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix("kpic-diag-")
            .tempdir()
            .expect("create temp dir");
        copy_dir(fixture, &tmp.path().join("project"));
        Sandbox { tmp }
    }

    fn project(&self) -> PathBuf {
        self.tmp.path().join("project")
    }

    /// Runs `kpic --project <copy> --color never <args>`.
    fn kpic(&self, args: &[&str]) -> (Output, Duration) {
        let start = Instant::now();
        let out = Command::new(KPIC)
            .arg("--project")
            .arg(self.project())
            .args(["--color", "never"])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run kpic");
        (out, start.elapsed())
    }

    /// The command that reveals the fixture's error: `run` for KPI403.
    fn args(&self, name: &str, json: bool) -> Vec<String> {
        if name.starts_with("KPI403_") {
            let db = self.tmp.path().join("t.duckdb");
            vec![
                "run".into(),
                "--db".into(),
                db.to_string_lossy().into_owned(),
            ]
        } else if json {
            vec!["check".into(), "--format".into(), "json".into()]
        } else {
            vec!["check".into()]
        }
    }

    /// Text with the sandbox's absolute paths replaced by stable names.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        let project = self.project();
        let candidates = [
            (project.to_string_lossy().into_owned(), "[PROJECT]"),
            (
                std::fs::canonicalize(&project)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                "[PROJECT]",
            ),
            (self.tmp.path().to_string_lossy().into_owned(), "[TMP]"),
            (
                std::fs::canonicalize(self.tmp.path())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                "[TMP]",
            ),
        ];
        for (from, to) in candidates {
            if !from.is_empty() {
                text = text.replace(&from, to);
            }
        }
        text
    }
}

/// One reported diagnostic: code, severity, file, line.
#[derive(Debug, Clone)]
struct Reported {
    code: String,
    severity: String,
    file: Option<String>,
    line: Option<u64>,
}

fn from_json(stdout: &str) -> Result<Vec<Reported>, String> {
    let v: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|e| format!("stdout is not JSON ({e}): {stdout:?}"))?;
    let list = v["diagnostics"]
        .as_array()
        .ok_or_else(|| format!("no `diagnostics` array in {v}"))?;
    let mut out = Vec::new();
    for d in list {
        out.push(Reported {
            code: d["code"].as_str().unwrap_or_default().to_string(),
            severity: d["severity"].as_str().unwrap_or_default().to_string(),
            file: d["file"].as_str().map(str::to_string),
            line: d["line"].as_u64(),
        });
    }
    let count = |s: &str| out.iter().filter(|d| d.severity == s).count() as u64;
    if v["errors"].as_u64() != Some(count("error"))
        || v["warnings"].as_u64() != Some(count("warning"))
    {
        return Err(format!(
            "`errors`/`warnings` ({}, {}) do not count the diagnostics listed",
            v["errors"], v["warnings"]
        ));
    }
    Ok(out)
}

/// Diagnostics from the human form (`error[KPI403]: …` then ` --> file:line:col`).
fn from_human(stderr: &str) -> Vec<Reported> {
    let mut out: Vec<Reported> = Vec::new();
    let mut open = false;
    for line in stderr.lines() {
        let head = ["error[", "warning["]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (&p[..p.len() - 1], rest)));
        if let Some((severity, rest)) = head
            && let Some(end) = rest.find("]:")
        {
            out.push(Reported {
                code: rest[..end].to_string(),
                severity: severity.to_string(),
                file: None,
                line: None,
            });
            open = true;
            continue;
        }
        if open && let Some(loc) = line.trim_start().strip_prefix("--> ") {
            let mut parts = loc.rsplitn(3, ':');
            let _col = parts.next();
            let line_no = parts.next().and_then(|l| l.parse().ok());
            let file = parts.next().map(str::to_string);
            if let Some(last) = out.last_mut() {
                last.file = file;
                last.line = line_no;
            }
            open = false;
        }
    }
    out
}

fn show(pos: &Position) -> String {
    match pos {
        (Some(f), Some(l)) => format!("{f}:{l}"),
        (Some(f), None) => format!("{f} (no line)"),
        (None, _) => "no position".to_string(),
    }
}

/// Checks one fixture; returns what is wrong.
fn check_fixture(name: &str, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let exp = expected(name, dir);
    match fixture_code(name) {
        None => problems.push("the directory name does not start with `KPInnn_`".into()),
        Some(n) => {
            if !exp.codes.contains_key(&format!("KPI{n:03}")) {
                problems.push(format!(
                    "no `# error: KPI{n:03}` / `# warning: KPI{n:03}` marker (or expected.txt line)"
                ));
            }
        }
    }
    if exp.codes.is_empty() {
        return problems;
    }
    let sandbox = Sandbox::new(dir);
    let is_run = name.starts_with("KPI403_");
    let args = sandbox.args(name, true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, elapsed) = sandbox.kpic(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("panicked") {
        problems.push(format!("kpic panicked: {stderr}"));
    }
    if !is_run && elapsed > Duration::from_secs(5) {
        problems.push(format!("`check` took {elapsed:?}"));
    }
    let want_exit = if exp.has_errors() { 1 } else { 0 };
    if out.status.code() != Some(want_exit) {
        problems.push(format!(
            "exit code {:?}, expected {want_exit}",
            out.status.code()
        ));
    }
    let reported = if is_run {
        Ok(from_human(&stderr))
    } else {
        from_json(&stdout)
    };
    let reported = match reported {
        Ok(r) => r,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    for (code, (severity, positions)) in &exp.codes {
        let mine: Vec<&Reported> = reported.iter().filter(|d| &d.code == code).collect();
        let accepted: Vec<String> = positions.iter().map(show).collect();
        if mine.is_empty() {
            problems.push(format!(
                "{code} not reported (expected at {}); reported: {}",
                accepted.join(" or "),
                summary(&reported)
            ));
        }
        for d in mine {
            if &d.severity != severity {
                problems.push(format!(
                    "{code} reported as {}, expected {severity}",
                    d.severity
                ));
            }
            let at: Position = (d.file.clone(), d.line);
            let ok = positions.iter().any(|p| match p {
                (None, _) => d.file.is_none(),
                (Some(_), _) => p == &at,
            });
            if !ok {
                problems.push(format!(
                    "{code} points at {}, expected {}",
                    show(&at),
                    accepted.join(" or ")
                ));
            }
        }
    }
    let extra: Vec<&Reported> = reported
        .iter()
        .filter(|d| d.severity == "error" && !exp.codes.contains_key(&d.code))
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "unexpected errors (the fixture has one mistake): {}",
            extra
                .iter()
                .map(|d| format!("{} at {}", d.code, show(&(d.file.clone(), d.line))))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if is_run {
        // The fan-out is only visible in the data: `check` accepts the project.
        let (out, _) = sandbox.kpic(&["check", "--format", "json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        match from_json(&stdout) {
            Ok(r) if r.iter().any(|d| d.severity == "error") || out.status.code() != Some(0) => {
                problems.push(format!(
                    "`check` should accept a KPI403 fixture: {}",
                    summary(&r)
                ))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("check: {e}")),
        }
    }
    problems
}

fn summary(reported: &[Reported]) -> String {
    if reported.is_empty() {
        return "nothing".into();
    }
    reported
        .iter()
        .map(|d| format!("{} at {}", d.code, show(&(d.file.clone(), d.line))))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn invalid_fixtures_report_their_code_at_the_marked_line() {
    let mut failures = Vec::new();
    for (name, dir) in fixtures() {
        let problems = check_fixture(&name, &dir);
        if !problems.is_empty() {
            failures.push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) of fixtures/invalid misbehave:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_fixtures_human_output() {
    let mut mismatched = Vec::new();
    for (name, dir) in fixtures() {
        let sandbox = Sandbox::new(&dir);
        let args = sandbox.args(&name, false);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, _) = sandbox.kpic(&args);
        let stderr = sandbox.scrub(&String::from_utf8_lossy(&out.stderr));
        assert!(
            !stderr.contains("panicked"),
            "{name}: kpic panicked:\n{stderr}"
        );
        // Every snapshot is compared (and written as .snap.new) before failing.
        let snap = std::panic::catch_unwind(|| {
            insta::assert_snapshot!(name.as_str(), stderr);
        });
        if snap.is_err() {
            mismatched.push(name);
        }
    }
    assert!(
        mismatched.is_empty(),
        "human output differs from the snapshot for: {}",
        mismatched.join(", ")
    );
}

/// Every error code up to KPI221, every hygiene warning and KPI403 have a
/// fixture `fixtures/invalid/KPInnn_*`.
#[test]
fn every_code_has_a_fixture() {
    let codes_rs = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/diagnostics/codes.rs");
    let text = std::fs::read_to_string(&codes_rs)
        .unwrap_or_else(|e| panic!("read {}: {e}", codes_rs.display()));
    let mut codes: BTreeSet<u32> = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("= \"") {
        let after = &rest[i + 3..];
        if let Some(digits) = after.get(..3)
            && digits.bytes().all(|b| b.is_ascii_digit())
            && after.as_bytes().get(3) == Some(&b'"')
        {
            codes.insert(digits.parse().unwrap());
        }
        rest = after;
    }
    assert!(
        codes.contains(&101) && codes.contains(&203) && codes.contains(&403),
        "could not parse the codes of {}",
        codes_rs.display()
    );
    let covered: BTreeSet<u32> = fixtures()
        .iter()
        .filter_map(|(name, _)| fixture_code(name))
        .collect();
    for (code, reason) in NO_FIXTURE {
        assert!(
            !reason.is_empty(),
            "{code}: give the reason it has no fixture"
        );
    }
    let missing: Vec<String> = codes
        .iter()
        .filter(|&&n| {
            (101..=221).contains(&n)
                || (251..=255).contains(&n)
                || (257..=258).contains(&n)
                || n == 403
        })
        .map(|n| format!("KPI{n:03}"))
        .filter(|c| !NO_FIXTURE.iter().any(|(e, _)| e == c))
        .filter(|c| !covered.contains(&c[3..].parse::<u32>().unwrap()))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a fixture under fixtures/invalid/: {}",
        missing.join(", ")
    );
    let unknown: Vec<String> = covered
        .iter()
        .filter(|n| !codes.contains(n))
        .map(|n| format!("KPI{n:03}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "fixtures named after codes codes.rs does not define: {}",
        unknown.join(", ")
    );
}
