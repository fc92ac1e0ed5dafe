//! The fuzz targets' shared harness: an input is a whole project, written
//! into one directory per process, then taken through kpic's compile path.
//!
//! Input format (so one input can hold several files, and a plain model
//! file is a valid input as it is): the text is cut at lines of the form
//! `#@ <relative path>` (a YAML comment, so seeds stay YAML). The part
//! before the first marker is `models/m.yml` (none when the input starts
//! with a marker); each marker starts a new
//! file at its path. Paths are confined to the project: characters other
//! than `[A-Za-z0-9_.-]` become `_`, `.`/`..` components and absolute
//! prefixes are dropped, depth is at most four. A later file at the same
//! path replaces an earlier one. Bytes are written as they are (invalid
//! UTF-8 is the loader's KPI101).
//!
//! The directory (`$KPIC_FUZZ_DIR`, else /dev/shm, else the temporary
//! directory, then `kpic-fuzz-<pid>/project`) is created once per process
//! and made to hold exactly each input's files (hundreds of inputs a
//! second: no fresh temporary directory per input). It is left behind when
//! the fuzzer exits; `fuzz/run.sh` points it into the fuzz target dir.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kpic::diagnostics::Diagnostics;
use kpic::semantic::{NoCatalog, SemanticModel};

/// Where a marker-less input goes.
pub const DEFAULT_FILE: &str = "models/m.yml";

/// The marker that starts a file in a multi-file input.
pub const MARKER: &[u8] = b"#@ ";

/// The project directory of this process (see [`write_project`]).
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = std::env::var_os("KPIC_FUZZ_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                if shm.is_dir() {
                    shm.to_path_buf()
                } else {
                    std::env::temp_dir()
                }
            });
        base.join(format!("kpic-fuzz-{}", std::process::id()))
            .join("project")
    })
}

/// A marker's path, confined to the project; `None` when nothing is left.
fn sanitize(path: &[u8]) -> Option<PathBuf> {
    let text = String::from_utf8_lossy(path);
    let mut out = PathBuf::new();
    for part in text.trim().split(['/', '\\']) {
        if part.is_empty() || part == "." || part == ".." {
            continue;
        }
        let clean: String = part
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.push(clean);
    }
    let depth = out.components().count();
    (depth > 0 && depth <= 4).then_some(out)
}

/// The files of an input: (relative path, bytes), in input order.
pub fn split_files(data: &[u8]) -> Vec<(PathBuf, &[u8])> {
    let mut files: Vec<(PathBuf, &[u8])> = Vec::new();
    let mut path = Some(PathBuf::from(DEFAULT_FILE));
    let mut start = 0;
    let mut line_start = 0;
    while line_start <= data.len() {
        let line_end = data[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| line_start + i);
        let line = &data[line_start..line_end];
        if let Some(rest) = line.strip_prefix(MARKER) {
            // An input that starts with a marker has no default file.
            if let Some(p) = path.take()
                && line_start > 0
            {
                files.push((p, &data[start..line_start]));
            }
            path = sanitize(rest);
            start = (line_end + 1).min(data.len());
        }
        line_start = line_end + 1;
    }
    if let Some(p) = path {
        files.push((p, &data[start..]));
    }
    files
}

/// Makes the process's project directory hold exactly the input's files
/// and returns the project root. Write errors (a file where a directory is
/// wanted, …) are ignored: the loader sees what exists.
///
/// Only what changed is removed: deleting files costs half a millisecond
/// each on a disk mounted with `discard`, more than the rest of an input.
/// (The directory is on /dev/shm when there is one, for the same reason.)
pub fn write_project(data: &[u8]) -> &'static Path {
    use std::collections::{BTreeMap, BTreeSet};
    let root = root();
    let mut files: BTreeMap<PathBuf, &[u8]> = BTreeMap::new();
    for (rel, bytes) in split_files(data) {
        files.insert(rel, bytes);
    }
    let dirs: BTreeSet<&Path> = files
        .keys()
        .flat_map(|f| f.ancestors().skip(1))
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    // Remove every entry the new input does not have (so the directory
    // depends on this input only, and a crash reproduces from it).
    fn prune(root: &Path, rel: &Path, files: &BTreeMap<PathBuf, &[u8]>, dirs: &BTreeSet<&Path>) {
        let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
            return;
        };
        for entry in entries.flatten() {
            let child = rel.join(entry.file_name());
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && dirs.contains(child.as_path()) {
                prune(root, &child, files, dirs);
            } else if is_dir {
                let _ = std::fs::remove_dir_all(root.join(&child));
            } else if !files.contains_key(&child) {
                let _ = std::fs::remove_file(root.join(&child));
            }
        }
    }
    std::fs::create_dir_all(root).expect("create the fuzz project directory");
    prune(root, Path::new(""), &files, &dirs);
    for (rel, bytes) in &files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&path, bytes);
    }
    root
}

/// load → model → semantic on the input, with no catalog (every column
/// trusted; no engine), and both diagnostic renderers run on the result.
pub fn analyze(data: &[u8]) -> (SemanticModel, Diagnostics) {
    let root = write_project(data);
    let (model, diags) = kpic::analyze_project(root, &mut NoCatalog);
    let _ = kpic::diagnostics::render::human(&diags, &model.sources, false);
    let _ = kpic::diagnostics::render::json(&diags, &model.sources);
    (model, diags)
}

/// [`analyze`], and when the only errors are sources' missing files
/// (`path:`s the input names but does not hold: most mutations of a
/// valid project), again with those files added as empty files (markers
/// appended to the input, so it stays the whole story). The compile path
/// reads no source file (no catalog), so the `compile` target reaches plan
/// and SQL far more often.
pub fn analyze_with_data(data: &[u8]) -> (SemanticModel, Diagnostics) {
    use kpic::diagnostics::Code;
    let (model, diags) = analyze(data);
    let only_missing_files = diags.has_errors()
        && diags
            .iter()
            .filter(|d| d.is_error())
            .all(|d| d.code == Code::PathNotFound);
    if !only_missing_files {
        return (model, diags);
    }
    let mut input = data.to_vec();
    for source in &model.project.sources {
        if let kpic::model::Relation::Path { path, .. } = &source.relation
            && !path.value.contains(['\n', '\r'])
        {
            input.extend_from_slice(format!("\n#@ {}\n", path.value).as_bytes());
        }
    }
    analyze(&input)
}

/// How deep the re-parse check lets sqlparser recurse. Its default (50)
/// is a guard for untrusted SQL, not an engine limit, and compiled SQL
/// legitimately nests deeper (derived metrics are inlined up to 32 levels,
/// each a few expression levels); sqlparser grows its stack as it
/// recurses, so a high limit is safe.
pub const REPARSE_DEPTH: usize = 4096;

/// Parses `sql` with the dialect's sqlparser dialect; panics (a fuzz
/// finding) when it does not parse.
pub fn assert_reparses(dialect: &dyn kpic::sql::Dialect, what: &str, sql: &str) {
    let parser = dialect.parser();
    let parsed = sqlparser::parser::Parser::new(parser.as_ref())
        .with_recursion_limit(REPARSE_DEPTH)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    if let Err(e) = parsed {
        panic!(
            "{what} for {} does not re-parse with sqlparser: {e}\n{sql}",
            dialect.name()
        );
    }
}

/// The whole compile path for every dialect: plan (for DuckDB with local
/// files, for the others with tables), refuse what the dialect refuses,
/// render every output table's standalone SELECT and build.sql, and
/// re-parse each in the dialect. Returns how many dialects produced SQL.
pub fn compile_all(model: &SemanticModel) -> usize {
    let plan_for = |local_files| {
        kpic::plan::plan_kpis(
            model,
            &kpic::plan::PlanOptions {
                as_of: None,
                select: vec![],
                local_files,
            },
        )
    };
    let local = plan_for(true);
    let tables = plan_for(false);
    let mut compiled_dialects = 0;
    for name in kpic::sql::DIALECTS {
        let dialect = kpic::sql::dialect_named(name).expect("a listed dialect");
        let dialect = dialect.as_ref();
        let plan = if *name == "duckdb" { &local } else { &tables };
        let Ok(plan) = plan else { continue };
        if kpic::sql::dialect_problems(model, dialect).has_errors() {
            continue;
        }
        let compiled = kpic::sql::plan_to_sql(plan, model, dialect);
        for table in kpic::sql::OUTPUT_TABLES {
            if let Some(mut q) = compiled.standalone(table) {
                dialect.finish_standalone(&mut q);
                assert_reparses(dialect, table, &format!("{q:#}"));
            }
        }
        assert_reparses(dialect, "build.sql", &compiled.build_script(dialect));
        compiled_dialects += 1;
    }
    compiled_dialects
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests that write the process's project directory take turns, and
    /// remove it when done.
    struct Serial {
        _turn: std::sync::MutexGuard<'static, ()>,
    }

    fn serial() -> Serial {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        Serial {
            _turn: LOCK.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    impl Drop for Serial {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(root().parent().expect("a parent"));
        }
    }

    #[test]
    fn plain_text_is_the_default_model_file() {
        let files = split_files(b"sources: []\n");
        assert_eq!(
            files,
            [(PathBuf::from(DEFAULT_FILE), &b"sources: []\n"[..])]
        );
    }

    #[test]
    fn markers_start_files_confined_to_the_project() {
        assert_eq!(
            split_files(b"#@ kpic.yml\nb"),
            [(PathBuf::from("kpic.yml"), &b"b"[..])]
        );
        let files = split_files(b"a\n#@ kpic.yml\nb\n#@ ../../etc/x y\nc\n#@ /\nd");
        assert_eq!(
            files,
            [
                (PathBuf::from(DEFAULT_FILE), &b"a\n"[..]),
                (PathBuf::from("kpic.yml"), &b"b\n"[..]),
                (PathBuf::from("etc/x_y"), &b"c\n"[..]),
            ]
        );
    }

    /// The directory holds exactly the last input's files, so a crash
    /// reproduces from its input alone.
    #[test]
    fn the_project_holds_only_the_last_input() {
        let _serial = serial();
        fn listing(dir: &Path, rel: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir.join(rel)).unwrap().flatten() {
                let child = rel.join(e.file_name());
                out.push(child.display().to_string());
                if e.file_type().unwrap().is_dir() {
                    listing(dir, &child, out);
                }
            }
        }
        write_project(b"a\n#@ macros/x.sql\nm\n#@ data/deep/t.csv\nx\n#@ models\nfile");
        let root = write_project(b"b\n#@ kpic.yml\nname: p\n");
        let mut files = Vec::new();
        listing(root, Path::new(""), &mut files);
        files.sort();
        assert_eq!(files, ["kpic.yml", "models", "models/m.yml"]);
        assert_eq!(std::fs::read(root.join("models/m.yml")).unwrap(), b"b\n");
    }

    /// The repository's example, as one input, reaches SQL for every
    /// dialect (so the `compile` target's seeds exercise plan and SQL).
    #[test]
    fn the_example_compiles_for_every_dialect() {
        let _serial = serial();
        fn add(repo: &Path, rel: &Path, input: &mut Vec<u8>) {
            let path = repo.join(rel);
            if path.is_dir() {
                let mut entries: Vec<_> = std::fs::read_dir(&path).unwrap().flatten().collect();
                entries.sort_by_key(|e| e.file_name());
                for e in entries {
                    add(repo, &rel.join(e.file_name()), input);
                }
            } else {
                // Data as the seed script writes it: binary files empty,
                // text cut (the compile path reads target files only).
                let text = std::fs::read(&path).unwrap();
                let kept: Vec<u8> = match rel.extension().and_then(|e| e.to_str()) {
                    Some("gz" | "parquet" | "md") => Vec::new(),
                    _ => text,
                };
                input.extend_from_slice(format!("#@ {}\n", rel.display()).as_bytes());
                input.extend_from_slice(&kept);
                input.push(b'\n');
            }
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut input = Vec::new();
        for rel in ["kpic.yml", "models", "macros", "fixtures/data"] {
            add(repo, Path::new(rel), &mut input);
        }
        let (model, diags) = analyze(&input);
        assert!(!diags.has_errors(), "{diags:?}");
        assert_eq!(compile_all(&model), kpic::sql::DIALECTS.len());
    }

    /// How many seeds (or corpus entries) in `$KPIC_FUZZ_SEEDS` check
    /// without errors and how many reach SQL: a look at what the corpus
    /// exercises (`cargo test --lib -- --ignored --nocapture`).
    #[test]
    #[ignore = "a report on a seed directory, not a check"]
    fn seed_report() {
        let _serial = serial();
        let Some(dir) = std::env::var_os("KPIC_FUZZ_SEEDS") else {
            return;
        };
        let (mut total, mut checked, mut compiled) = (0, 0, 0);
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let (model, diags) = analyze_with_data(&std::fs::read(e.path()).unwrap());
            total += 1;
            if !diags.has_errors() {
                checked += 1;
                if compile_all(&model) > 0 {
                    compiled += 1;
                }
            }
        }
        println!("{total} inputs, {checked} without errors, {compiled} reach SQL");
    }
}
