//! Finding and reading a project's files.
//!
//! In: the project root. Out: kpic.yml, every model YAML file and every
//! macro file registered in the [`SourceMap`] and converted to a
//! [`RawProject`], plus diagnostics. Reading is defensive: files over
//! [`MAX_FILE_BYTES`] are refused before they are read, non-UTF-8 text is
//! an error naming the file and line, FIFOs and devices are refused without
//! being opened, a symlinked directory that loops back to one of its
//! ancestors or leads outside the project is reported and not entered (each
//! directory is entered once, by canonical path; depth and the number of
//! directories are capped), and unreadable directories are diagnostics,
//! never panics. A file refused as a whole is still registered in the
//! [`SourceMap`] (with its first line when it can be read cheaply, else
//! empty), so its diagnostic points at `file:1`.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::load::convert;
use crate::load::raw::{MacroFile, RawProject, RawTarget, Text};
use crate::load::yaml;
use crate::source::{FileId, SourceMap, Span, Spanned};

/// Largest file kpic reads (definitions are a few KB; a target file a few
/// thousand rows). A larger file is refused before it is read, so a stray
/// data dump or a sparse 100 GB file named `.yml` costs nothing.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Deepest directory nesting walked under a model or macro dir.
const MAX_WALK_DEPTH: usize = 32;
/// Most files collected under one directory.
const MAX_FILES: usize = 10_000;
/// Most directories entered under one model or macro dir. Real projects
/// have tens; the cap bounds the walk of a dir that is (or links to) a
/// large tree such as `/`.
const MAX_DIRS: usize = 2_000;
/// Bytes of a refused file's first line kept for its diagnostic.
const FIRST_LINE_BYTES: usize = 200;

const CONFIG_FILE: &str = "kpic.yml";

/// Reads the project at `root`: kpic.yml (when present), the YAML files
/// under the model dirs and the `.sql` files under the macro dirs.
pub fn load_project(root: &Path, sources: &mut SourceMap) -> (RawProject, Diagnostics) {
    let mut diags = Diagnostics::new();
    let mut project = RawProject::default();

    let config_path = root.join(CONFIG_FILE);
    // `symlink_metadata` first: a dangling kpic.yml link is reported, not
    // mistaken for "no kpic.yml".
    if fs::symlink_metadata(&config_path).is_ok()
        && let Some(file) = read_file(&config_path, CONFIG_FILE.to_string(), sources, &mut diags)
    {
        let root_node = yaml::parse(&sources.get(file).text, file, &mut diags);
        project.config = Some(convert::config_file(file, root_node.as_ref(), &mut diags));
    }
    let config = project.config.as_ref();

    // The project's own output dir is never searched for definitions.
    let target_dir = config
        .and_then(|c| c.target.as_ref())
        .map(|t| root.join(&t.value))
        .unwrap_or_else(|| root.join("target"));
    let skip: HashSet<PathBuf> = fs::canonicalize(&target_dir).into_iter().collect();
    let root_canonical = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let bounds = Bounds {
        root: &root_canonical,
        skip: &skip,
    };

    // Model dirs.
    let model_dirs = dirs(config.and_then(|c| c.models.as_ref()), "models");
    if let Some(models) = config.and_then(|c| c.models.as_ref())
        && models.value.is_empty()
    {
        diags.push(
            Diagnostic::new(Code::ModelDir, "`models` lists no directory")
                .at(models.span, "no model directory")
                .with_help("list at least one directory, e.g. `models: [models]`"),
        );
    }
    let mut seen_files: HashSet<PathBuf> = HashSet::new();
    let mut model_files: Vec<(String, PathBuf)> = Vec::new();
    for dir in &model_dirs {
        let path = root.join(&dir.value);
        let where_ = if dir.configured {
            " (from kpic.yml `models`)"
        } else {
            ""
        };
        if !path.is_dir() {
            let what = match (fs::symlink_metadata(&path), fs::metadata(&path)) {
                (Ok(_), Ok(_)) => "is not a directory".to_string(),
                // A link that loops or dangles.
                (Ok(_), Err(e)) => format!("cannot be read ({e})"),
                (Err(_), _) => "does not exist".to_string(),
            };
            diags.push(with_span(
                Diagnostic::new(
                    Code::ModelDir,
                    format!("model directory `{}` {what}{where_}", dir.value),
                )
                .with_help("create it with your YAML definitions, or correct `models` in kpic.yml"),
                dir,
                "model directory",
            ));
            continue;
        }
        let found = walk(&path, &dir.value, &["yml", "yaml"], &bounds, &mut diags);
        if found.is_empty() {
            diags.push(with_span(
                Diagnostic::new(
                    Code::ModelDir,
                    format!(
                        "model directory `{}` holds no YAML files{where_}",
                        dir.value
                    ),
                )
                .with_help("add `.yml` files with `sources`, `metrics` and `kpis`"),
                dir,
                "no YAML files here",
            ));
        }
        for (display, p, _) in found {
            // The same file reached through two model dirs is read once.
            let key = fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if seen_files.insert(key) {
                model_files.push((display, p));
            }
        }
    }
    model_files.sort();
    for (display, path) in model_files {
        let Some(file) = read_file(&path, display, sources, &mut diags) else {
            continue;
        };
        let node = yaml::parse(&sources.get(file).text, file, &mut diags);
        project
            .files
            .push(convert::model_file(file, node.as_ref(), &mut diags));
    }

    // Macro dirs: a missing one is simply no macros.
    let macro_dirs = dirs(config.and_then(|c| c.macros.as_ref()), "macros");
    let mut macro_files: Vec<(String, PathBuf, String)> = Vec::new();
    for dir in &macro_dirs {
        let path = root.join(&dir.value);
        if !path.is_dir() {
            continue;
        }
        macro_files.extend(walk(&path, &dir.value, &["sql"], &bounds, &mut diags));
    }
    macro_files.sort();
    macro_files.dedup_by(|a, b| a.1 == b.1);
    for (display, path, name) in macro_files {
        if let Some(file) = read_file(&path, display, sources, &mut diags) {
            project.macros.push(MacroFile { file, name });
        }
    }

    read_target_files(root, &mut project, sources, &mut diags);

    (project, diags)
}

/// Reads every target file (`target: {file: …}`) the KPIs name, once per
/// path, into the source map, so `model` parses text kpic has already
/// checked (size, regular file, UTF-8) and its diagnostics point at the
/// CSV's lines. A file that cannot be read is reported here (KPI216, at the
/// first `file:` naming it) and recorded as `None`.
fn read_target_files(
    root: &Path,
    project: &mut RawProject,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) {
    let mut paths: Vec<&Text> = Vec::new();
    for f in &project.files {
        for k in &f.kpis {
            if let Some(RawTarget::File { path, .. }) = &k.target
                && !paths.iter().any(|p| p.value == path.value)
            {
                paths.push(path);
            }
        }
    }
    let mut loaded = std::collections::BTreeMap::new();
    for path in paths {
        let display = path.value.clone();
        let full = root.join(&path.value);
        let file = match read_text(&full, &display) {
            Ok(text) => Some(sources.add(&full, display, text)),
            Err(e) => {
                let d = match e {
                    // Where the bad byte is.
                    e @ ReadError::NotUtf8 { .. } => {
                        let (d, at) = refusal(e, &full, &display, sources);
                        match at {
                            Some((span, label)) => d
                                .at(span, label)
                                .with_secondary(path.span, "target file named here"),
                            None => d.at(path.span, "this target file"),
                        }
                    }
                    // A file refused as a whole: at the `file:` naming it.
                    ReadError::Whole {
                        diagnostic, label, ..
                    } => diagnostic.at(path.span, label),
                };
                diags.push(
                    Diagnostic {
                        code: Code::TargetFile,
                        ..d
                    }
                    .with_help(
                        "a target file is a CSV with columns period, target (and optionally kpi)",
                    ),
                );
                None
            }
        };
        loaded.insert(path.value.clone(), file);
    }
    project.target_files = loaded;
}

/// A configured (or default) directory.
struct Dir {
    value: String,
    span: Option<crate::source::Span>,
    configured: bool,
}

fn dirs(configured: Option<&Spanned<Vec<Text>>>, default: &str) -> Vec<Dir> {
    match configured {
        Some(list) => list
            .value
            .iter()
            .map(|t| Dir {
                value: t.value.trim_end_matches(['/', '\\']).to_string(),
                span: Some(t.span),
                configured: true,
            })
            .collect(),
        None => vec![Dir {
            value: default.to_string(),
            span: None,
            configured: false,
        }],
    }
}

fn with_span(d: Diagnostic, dir: &Dir, label: &str) -> Diagnostic {
    match dir.span {
        Some(span) => d.at(span, label),
        None => d,
    }
}

/// What a walk may enter: directories inside the project (`root`, canonical)
/// or inside the walked dir itself, never the `skip` dirs.
struct Bounds<'a> {
    root: &'a Path,
    skip: &'a HashSet<PathBuf>,
}

/// Files with one of `exts` under `dir`, as (display path, path, path
/// relative to `dir` with `/`). Hidden entries and `skip` dirs are left
/// out; each directory is entered once (by canonical path). A symlinked
/// directory is followed when it stays inside the project (or the walked
/// dir); one that points back at a directory containing it (a loop) or
/// outside the project is reported and not entered. Anything else with
/// one of `exts` is listed, also when it is not a regular file or a link
/// to nothing: reading it (`read_file`) reports those at `file:1`.
fn walk(
    dir: &Path,
    display: &str,
    exts: &[&str],
    bounds: &Bounds<'_>,
    diags: &mut Diagnostics,
) -> Vec<(String, PathBuf, String)> {
    let mut out = Vec::new();
    let mut visited: HashSet<PathBuf> = HashSet::new();
    let walk_root = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    // (path, components relative to `dir`, canonical paths of the
    // directories walked through to get there)
    let mut stack: Vec<(PathBuf, Vec<String>, Vec<PathBuf>)> =
        vec![(dir.to_path_buf(), Vec::new(), Vec::new())];
    while let Some((path, rel, mut ancestors)) = stack.pop() {
        let canonical = match fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => {
                diags.push(unreadable_dir(display, &rel, &e));
                continue;
            }
        };
        if bounds.skip.contains(&canonical) || !visited.insert(canonical.clone()) {
            continue;
        }
        ancestors.push(canonical.clone());
        if rel.len() > MAX_WALK_DEPTH {
            diags.push(
                Diagnostic::new(
                    Code::InputTooLarge,
                    format!(
                        "directory `{}` is nested more than {MAX_WALK_DEPTH} levels deep; it is not searched",
                        join_display(display, &rel)
                    ),
                )
                .with_help("keep model and macro files within a few levels of their directory"),
            );
            continue;
        }
        if visited.len() > MAX_DIRS {
            diags.push(
                Diagnostic::new(
                    Code::InputTooLarge,
                    format!(
                        "more than {MAX_DIRS} directories under `{display}`; the rest are not searched"
                    ),
                )
                .with_help(
                    "point `models`/`macros` at the directories that hold definitions, not at a large tree",
                ),
            );
            return out;
        }
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) => {
                diags.push(unreadable_dir(display, &rel, &e));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    diags.push(unreadable_dir(display, &rel, &e));
                    continue;
                }
            };
            // Names that are not UTF-8 cannot be shown or sorted reliably;
            // they are not kpic's files.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let child = entry.path();
            let mut child_rel = rel.clone();
            child_rel.push(name.clone());
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            // `metadata` follows symlinks.
            match fs::metadata(&child) {
                Ok(meta) if meta.is_dir() => {
                    if is_link
                        && let Some(d) = linked_dir_problem(
                            &child, &ancestors, &walk_root, bounds, display, &child_rel,
                        )
                    {
                        diags.push(d);
                        continue;
                    }
                    stack.push((child, child_rel, ancestors.clone()));
                }
                // Regular files, and anything else named like one (FIFOs,
                // sockets, devices, dangling or looping symlinks): `read_file`
                // refuses the others without opening them and reports them
                // at the file (`read_text` checks the metadata first).
                _ => {
                    if has_ext(&name, exts) {
                        if out.len() >= MAX_FILES {
                            diags.push(Diagnostic::new(
                                Code::InputTooLarge,
                                format!("more than {MAX_FILES} files under `{display}`; the rest are not read"),
                            ).with_help("split the project, or point `models`/`macros` at fewer directories"));
                            return out;
                        }
                        out.push((
                            join_display(display, &child_rel),
                            child,
                            child_rel.join("/"),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Why a symlinked directory `link` is not entered, if it is not: it
/// points at a directory that contains it, on disk or on the walk's path
/// (`ancestors`, canonical, the link's own directory last) — a loop: the
/// walk would find the same files forever — or outside both the project
/// and the walked dir.
fn linked_dir_problem(
    link: &Path,
    ancestors: &[PathBuf],
    walk_root: &Path,
    bounds: &Bounds<'_>,
    display: &str,
    rel: &[String],
) -> Option<Diagnostic> {
    let shown = join_display(display, rel);
    let target = match fs::canonicalize(link) {
        Ok(t) => t,
        Err(e) => {
            return Some(
                Diagnostic::new(
                    Code::FileUnreadable,
                    format!("cannot read directory `{shown}`: {e}"),
                )
                .with_help("fix or remove the symlink"),
            );
        }
    };
    let to = fs::read_link(link).unwrap_or_else(|_| target.clone());
    let on_disk = ancestors
        .last()
        .is_some_and(|parent| parent.starts_with(&target));
    if on_disk || ancestors.contains(&target) {
        return Some(
            Diagnostic::new(
                Code::FileUnreadable,
                format!(
                    "`{shown}` is a symlink loop: it points to `{}`, which contains it",
                    to.display()
                ),
            )
            .with_help(
                "remove the symlink; kpic does not follow a link back into its own directory",
            ),
        );
    }
    if !target.starts_with(bounds.root) && !target.starts_with(walk_root) {
        return Some(
            Diagnostic::new(
                Code::FileUnreadable,
                format!(
                    "`{shown}` is a symlink to `{}`, outside the project; it is not followed",
                    to.display()
                ),
            )
            .with_help(
                "list that directory in kpic.yml `models` (or `macros`) instead, or copy the files into the project",
            ),
        );
    }
    None
}

fn has_ext(name: &str, exts: &[&str]) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn join_display(display: &str, rel: &[String]) -> String {
    let display = display.replace('\\', "/");
    if rel.is_empty() {
        display
    } else {
        format!("{display}/{}", rel.join("/"))
    }
}

fn unreadable_dir(display: &str, rel: &[String], e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(
        Code::FileUnreadable,
        format!(
            "cannot read directory `{}`: {e}",
            join_display(display, rel)
        ),
    )
    .with_help("check the directory's permissions")
}

/// Reads a file into the source map, refusing files over the size limit
/// (checked before reading, and enforced while reading in case the file
/// grows), files that are not regular files, and text that is not UTF-8.
/// A refused file is registered too (see [`refusal`]) so its diagnostic
/// has a place.
fn read_file(
    path: &Path,
    display: String,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<FileId> {
    match read_text(path, &display) {
        Ok(text) => Some(sources.add(path, display, text)),
        Err(e) => {
            let (d, at) = refusal(e, path, &display, sources);
            diags.push(match at {
                Some((span, label)) => d.at(span, label),
                None => d,
            });
            None
        }
    }
}

/// The diagnostic of a file [`read_text`] refused, and where it points: the
/// first invalid byte of a file that is not UTF-8 (the file is registered
/// with a lossy copy of its text, not parsed), else line 1 of the file (the
/// file is registered with its first line when that can be read without
/// reading the file, else empty).
fn refusal(
    e: ReadError,
    path: &Path,
    display: &str,
    sources: &mut SourceMap,
) -> (Diagnostic, Option<(Span, &'static str)>) {
    match e {
        ReadError::NotUtf8 {
            lossy,
            at,
            diagnostic,
        } => {
            let id = sources.add(path, display.to_string(), lossy);
            let end = sources
                .get(id)
                .text
                .get(at..)
                .and_then(|rest| rest.chars().next())
                .map_or(at, |c| at + c.len_utf8());
            (diagnostic, Some((Span::new(id, at, end), "not UTF-8")))
        }
        ReadError::Whole {
            diagnostic,
            first_line,
            label,
        } => {
            let id = sources.add(path, display.to_string(), first_line);
            let len = sources.get(id).text.len();
            (*diagnostic, Some((Span::new(id, 0, len), label)))
        }
    }
}

enum ReadError {
    NotUtf8 {
        lossy: String,
        /// Byte offset of the first invalid byte (the same in `lossy`).
        at: usize,
        diagnostic: Diagnostic,
    },
    /// The file as a whole is refused (too large, not a regular file,
    /// unreadable); `first_line` is what could be read of it safely.
    Whole {
        diagnostic: Box<Diagnostic>,
        first_line: String,
        label: &'static str,
    },
}

/// The first line of a regular file, at most [`FIRST_LINE_BYTES`], without
/// reading the rest ("" when it cannot be read).
fn first_line(path: &Path) -> String {
    let mut buf = Vec::new();
    let Ok(f) = fs::File::open(path) else {
        return String::new();
    };
    if f.take(FIRST_LINE_BYTES as u64)
        .read_to_end(&mut buf)
        .is_err()
    {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    let line = String::from_utf8_lossy(&buf[..end]);
    line.trim_end_matches('\r').to_string()
}

fn read_text(path: &Path, display: &str) -> Result<String, ReadError> {
    let unreadable = |e: std::io::Error| {
        ReadError::Whole {
        diagnostic: Box::new(
            Diagnostic::new(
                Code::FileUnreadable,
                format!("cannot read `{display}`: {e}"),
            )
            .with_help("check that the file exists and is readable (a dangling symlink, or one that loops?)"),
        ),
        first_line: String::new(),
        label: "cannot be read",
    }
    };
    let too_large = |size: u64| {
        ReadError::Whole {
        diagnostic: Box::new(
            Diagnostic::new(
                Code::InputTooLarge,
                format!(
                    "`{display}` is larger than {} MB",
                    MAX_FILE_BYTES / (1024 * 1024)
                ),
            )
            .with_help(
                "definition, macro and target files are small; split this file or check that it is the right one",
            )
            .with_note(format!("the file has {size} bytes")),
        ),
        first_line: first_line(path),
        label: "file too large",
    }
    };
    let meta = fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "a FIFO, socket or device"
        };
        return Err(ReadError::Whole {
            diagnostic: Box::new(
                Diagnostic::new(
                    Code::FileUnreadable,
                    format!("`{display}` is not a regular file ({what})"),
                )
                .with_help("kpic reads plain text files; point at a file"),
            ),
            first_line: String::new(),
            label: "not a regular file",
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let file = fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let prefix = e.as_bytes().get(..at).unwrap_or(&[]);
        let line = prefix.iter().filter(|b| **b == b'\n').count() + 1;
        ReadError::NotUtf8 {
            lossy: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            at,
            diagnostic: Diagnostic::new(
                Code::FileUnreadable,
                format!("`{display}` is not UTF-8 text (invalid byte at line {line})"),
            )
            .with_help("save the file as UTF-8"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn write(root: &Path, rel: &str, text: &[u8]) {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(p, text).expect("write");
    }

    fn codes(d: &Diagnostics) -> Vec<&'static str> {
        d.iter().map(|d| d.code.as_str()).collect()
    }

    const METRIC: &[u8] = b"metrics:\n  - name: a\n    expr: b\n";

    #[test]
    fn reads_models_sorted_and_macros() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "models/b.yml", METRIC);
        write(root, "models/a/x.yaml", METRIC);
        write(root, "models/a.yml", METRIC);
        write(root, "models/notes.txt", b"not yaml");
        write(root, "models/.hidden.yml", b": bad");
        write(root, "models/.git/x.yml", b": bad");
        write(
            root,
            "macros/util/fmt.sql",
            b"{% macro f() %}1{% endmacro %}",
        );
        write(root, "target/models.yml", b": bad");
        let mut sm = SourceMap::new();
        let (p, d) = load_project(root, &mut sm);
        assert!(d.is_empty(), "{d:?}");
        assert!(p.config.is_none());
        let names: Vec<_> = p
            .files
            .iter()
            .map(|f| sm.get(f.file).display.as_str())
            .collect();
        assert_eq!(names, ["models/a.yml", "models/a/x.yaml", "models/b.yml"]);
        assert_eq!(p.files[0].metrics.len(), 1);
        assert_eq!(p.macros.len(), 1);
        assert_eq!(p.macros[0].name, "util/fmt.sql");
        assert_eq!(sm.get(p.macros[0].file).display, "macros/util/fmt.sql");
    }

    #[test]
    fn missing_model_dir_points_at_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "kpic.yml", b"name: shop\nmodels: [defs, models]\n");
        write(root, "models/a.yml", METRIC);
        let mut sm = SourceMap::new();
        let (p, d) = load_project(root, &mut sm);
        assert_eq!(codes(&d), ["KPI106"]);
        let label = d.0[0].primary.as_ref().expect("label");
        assert_eq!(sm.snippet(label.span), "defs");
        assert!(
            d.0[0].message.contains("`defs` does not exist"),
            "{}",
            d.0[0].message
        );
        assert_eq!(p.files.len(), 1);

        // Without kpic.yml: the default dir is named, without a span.
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, d) = load_project(dir.path(), &mut SourceMap::new());
        assert_eq!(codes(&d), ["KPI106"]);
        assert!(d.0[0].primary.is_none());
        assert!(d.0[0].message.contains("`models`"), "{}", d.0[0].message);
    }

    #[test]
    fn model_dir_without_yaml_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "models/readme.md", b"hi");
        let (_, d) = load_project(dir.path(), &mut SourceMap::new());
        assert_eq!(codes(&d), ["KPI106"]);
        assert!(
            d.0[0].message.contains("holds no YAML files"),
            "{}",
            d.0[0].message
        );
    }

    #[test]
    fn bad_utf8_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "models/ok.yml", METRIC);
        write(
            dir.path(),
            "models/bad.yml",
            b"metrics:\n  - name: caf\xe9\n",
        );
        let mut sm = SourceMap::new();
        let (p, d) = load_project(dir.path(), &mut sm);
        assert_eq!(codes(&d), ["KPI101"]);
        assert_eq!(
            d.0[0].message,
            "`models/bad.yml` is not UTF-8 text (invalid byte at line 2)"
        );
        assert_eq!(p.files.len(), 1);
    }

    #[test]
    fn huge_file_is_refused_without_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "models/ok.yml", METRIC);
        let f = fs::File::create(dir.path().join("models/huge.yml")).expect("create");
        f.set_len(100 * 1024 * 1024).expect("set_len");
        let started = Instant::now();
        let mut sm = SourceMap::new();
        let (p, d) = load_project(dir.path(), &mut sm);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(codes(&d), ["KPI107"]);
        assert_eq!(d.0[0].message, "`models/huge.yml` is larger than 10 MB");
        assert_eq!(p.files.len(), 1);
        // Registered with its first line only, so the error points at it.
        assert_eq!(sm.files().count(), 2);
        let label = d.0[0].primary.as_ref().expect("label");
        assert_eq!(sm.get(label.span.file).display, "models/huge.yml");
        assert!(sm.get(label.span.file).text.len() <= FIRST_LINE_BYTES);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_terminate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "models/a/m.yml", METRIC);
        std::os::unix::fs::symlink(root.join("models"), root.join("models/a/loop"))
            .expect("symlink");
        std::os::unix::fs::symlink("self.yml", root.join("models/self.yml")).expect("symlink");
        std::os::unix::fs::symlink("nowhere", root.join("models/dangling.yml")).expect("symlink");
        let started = Instant::now();
        let mut sm = SourceMap::new();
        let (p, d) = load_project(root, &mut sm);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            p.files.len(),
            1,
            "{:?}",
            sm.files().map(|f| f.1.display.clone()).collect::<Vec<_>>()
        );
        // The loop, the self-link and the dangling `.yml` link are reported.
        let mut c = codes(&d);
        c.sort();
        assert_eq!(c, ["KPI101", "KPI101", "KPI101"], "{d:?}");
        assert!(
            d.iter()
                .any(|d| d.message.contains("`models/a/loop` is a symlink loop")),
            "{d:?}"
        );
        // Files have a place: line 1 of the (empty) registered file.
        for diag in d.iter().filter(|d| d.message.contains(".yml")) {
            let label = diag
                .primary
                .as_ref()
                .expect("a file diagnostic has a place");
            assert!(sm.get(label.span.file).display.ends_with(".yml"));
        }
    }

    #[test]
    fn config_unknown_key_and_macro_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "kpic.yml", b"macro: [m]\nmodels: defs/\n");
        write(dir.path(), "defs/a.yml", METRIC);
        let mut sm = SourceMap::new();
        let (p, d) = load_project(dir.path(), &mut sm);
        assert_eq!(codes(&d), ["KPI103"]);
        assert_eq!(
            d.0[0].primary.as_ref().map(|l| sm.snippet(l.span)),
            Some("macro")
        );
        assert_eq!(sm.get(p.files[0].file).display, "defs/a.yml");
    }

    #[test]
    fn empty_models_list_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "kpic.yml", b"models: []\n");
        let mut sm = SourceMap::new();
        let (_, d) = load_project(dir.path(), &mut sm);
        assert_eq!(codes(&d), ["KPI106"]);
        assert_eq!(
            d.0[0].primary.as_ref().map(|l| sm.snippet(l.span)),
            Some("[]")
        );
    }
}
