//! YAML text → [`Node`] tree with byte spans.
//!
//! In: the text of one file and its [`FileId`]. Out: the document's root
//! node (`None` for a file without a document, or when the file could not be
//! parsed) plus diagnostics.
//!
//! Built on saphyr-parser's event stream (YAML 1.2: `on`, `yes`, `no` are
//! plain strings; every scalar is kept as text anyway). The tree is built
//! with an explicit stack, so deep input cannot overflow the Rust stack, and
//! it is bounded: at most [`MAX_DEPTH`] nested collections and
//! [`MAX_NODES`] nodes / [`MAX_SCALAR_BYTES`] bytes of scalar text after
//! alias expansion, so an alias bomb ("billion laughs") is refused at once
//! instead of expanding exponentially.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span as YSpan};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::load::raw::{Node, NodeKind};
use crate::source::{FileId, Span};

/// Most nested collections (mappings and sequences) in one file. Real
/// definitions nest 4–5 levels; the limit also keeps the recursive `Drop`
/// and `Clone` of [`Node`] shallow.
pub const MAX_DEPTH: usize = 64;
/// Most nodes in one file, counting every alias expansion.
pub const MAX_NODES: usize = 100_000;
/// Most bytes of scalar text in one file, counting every alias expansion
/// (one alias of a large anchored string must not be copied a million
/// times).
pub const MAX_SCALAR_BYTES: usize = 64 * 1024 * 1024;

const SYNTAX_HELP: &str = "check the indentation, colons and quotes around this position; \
     quote values that contain `: ` or ` #`, or that start with one of `{ [ * & ! % @ |`";

/// Parses one YAML file. Returns the root node of its document, or `None`
/// when the file holds no document (empty, only comments) or could not be
/// parsed (the reason is in `diags`).
pub fn parse(text: &str, file: FileId, diags: &mut Diagnostics) -> Option<Node> {
    if let Some((at, c)) = text.char_indices().find(|(_, c)| !printable(*c)) {
        // saphyr lets some of these through inside scalars; a control
        // character in a definition is a corrupt or binary file, or text
        // meant to fool a terminal, so the file is not parsed.
        diags.push(
            Diagnostic::new(
                Code::YamlSyntax,
                format!(
                    "invalid YAML: control character U+{:04X} is not allowed",
                    u32::from(c)
                ),
            )
            .at(Span::new(file, at, at + c.len_utf8()), "control character")
            .with_help(
                "YAML text may not hold control characters; write one as an escape in a double-quoted string (e.g. \"\\t\") if it is really meant",
            ),
        );
        return None;
    }
    let mut b = Builder {
        file,
        pos: Positions::new(text),
        text,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        root: None,
        documents: 0,
        diags,
    };
    for item in Parser::new_from_str(text) {
        let step = match item {
            Ok((event, span)) => b.event(event, span),
            // saphyr's scanner reads ahead and has its own nesting limit
            // (255 flow levels), which may trip before ours: same meaning.
            Err(e) if e.info() == "recursion limit exceeded" => {
                let at = b.pos.byte(e.marker().index());
                Err(Box::new(too_deep(Span::new(file, at, at))))
            }
            Err(e) => Err(Box::new(b.syntax_error(&e))),
        };
        match step {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => break,
            Err(d) => {
                b.diags.push(*d);
                return None;
            }
        }
    }
    b.root.map(|c| c.node)
}

/// YAML 1.2 `c-printable` (§5.1): tab, line breaks and printable
/// characters; C0/C1 controls (but NEL), DEL and the non-characters
/// U+FFFE/U+FFFF are not.
fn printable(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' | '\u{85}' => true,
        '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    }
}

/// Char index (what saphyr's markers count) → byte offset, in O(1): the byte
/// offset of every `STEP`th char is stored, the rest is a short walk.
struct Positions<'t> {
    text: &'t str,
    checkpoints: Vec<usize>,
}

const STEP: usize = 64;

impl<'t> Positions<'t> {
    fn new(text: &'t str) -> Self {
        let checkpoints = text
            .char_indices()
            .step_by(STEP)
            .map(|(byte, _)| byte)
            .collect();
        Positions { text, checkpoints }
    }

    fn byte(&self, char_index: usize) -> usize {
        let Some(&base) = self.checkpoints.get(char_index / STEP) else {
            return self.text.len();
        };
        self.text
            .get(base..)
            .and_then(|rest| rest.char_indices().nth(char_index % STEP))
            .map(|(b, _)| base + b)
            .unwrap_or(self.text.len())
    }
}

/// A finished node with the facts the limits need.
struct Complete {
    node: Node,
    /// Nodes in this subtree.
    nodes: usize,
    /// Bytes of scalar text in this subtree.
    bytes: usize,
    /// Collections nested in this subtree, itself included (0 for a scalar).
    height: usize,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// A collection still being read.
struct Frame {
    kind: FrameKind,
    anchor: usize,
    start: usize,
    /// End of the start event (`{`, `[`, or the anchor/tag before a block
    /// collection); the span of an empty block collection.
    start_end: usize,
    nodes: usize,
    bytes: usize,
    height: usize,
}

enum Flow {
    Continue,
    Stop,
}

struct Builder<'t, 'd> {
    file: FileId,
    text: &'t str,
    pos: Positions<'t>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Complete>,
    nodes: usize,
    bytes: usize,
    root: Option<Complete>,
    documents: usize,
    diags: &'d mut Diagnostics,
}

impl Builder<'_, '_> {
    fn span(&self, s: YSpan) -> Span {
        Span::new(
            self.file,
            self.pos.byte(s.start.index()),
            self.pos.byte(s.end.index()),
        )
    }

    fn event(&mut self, event: Event<'_>, yspan: YSpan) -> Result<Flow, Box<Diagnostic>> {
        let span = self.span(yspan);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    // Later documents would be silently ignored by a reader
                    // expecting one; refuse them and keep the first.
                    self.diags.push(
                        Diagnostic::new(Code::YamlSyntax, "a file holds one YAML document")
                            .at(span, "a second document starts here")
                            .with_help("remove the `---` line, or move the rest into its own file"),
                    );
                    return Ok(Flow::Stop);
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let is_str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !is_str_tag;
                let (kind, span) =
                    if plain && matches!(&*value, "" | "~" | "null" | "Null" | "NULL") {
                        // An empty value's event span may reach into the next
                        // token; make it zero-width where the value would be.
                        let span = if value.is_empty() {
                            Span::new(self.file, span.start, span.start)
                        } else {
                            span
                        };
                        (NodeKind::Null, span)
                    } else {
                        let text = value.into_owned();
                        (
                            NodeKind::Scalar {
                                text,
                                quoted: !plain,
                            },
                            span,
                        )
                    };
                let bytes = match &kind {
                    NodeKind::Scalar { text, .. } => text.len(),
                    _ => 0,
                };
                self.charge(1, bytes, span)?;
                self.complete(
                    Complete {
                        node: Node { kind, span },
                        nodes: 1,
                        bytes,
                        height: 0,
                    },
                    anchor,
                )?;
            }
            Event::Alias(id) => {
                let Some(anchored) = self.anchors.get(&id) else {
                    // saphyr refuses unknown anchors itself; a known anchor
                    // without a finished node is one the alias sits inside.
                    return Err(Box::new(
                        Diagnostic::new(
                            Code::YamlSyntax,
                            format!(
                                "alias `{}` refers to a node that contains it",
                                self.snippet(span)
                            ),
                        )
                        .at(span, "recursive alias"),
                    ));
                };
                let (nodes, bytes, height) = (anchored.nodes, anchored.bytes, anchored.height);
                if self.stack.len() + height > MAX_DEPTH {
                    return Err(Box::new(too_deep(span)));
                }
                self.charge(nodes, bytes, span)?;
                // Within budget now, so the copy is bounded.
                let Some(anchored) = self.anchors.get(&id) else {
                    return Ok(Flow::Continue);
                };
                let mut node = anchored.node.clone();
                // Inner spans keep pointing at the anchored text (where a fix
                // goes); the copy as a whole is where the alias is.
                node.span = span;
                self.complete(
                    Complete {
                        node,
                        nodes,
                        bytes,
                        height,
                    },
                    0,
                )?;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() + 1 > MAX_DEPTH {
                    return Err(Box::new(too_deep(span)));
                }
                self.charge(1, 0, span)?;
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    FrameKind::Seq(Vec::new())
                } else {
                    FrameKind::Map {
                        entries: Vec::new(),
                        key: None,
                    }
                };
                self.stack.push(Frame {
                    kind,
                    anchor,
                    start: span.start,
                    start_end: span.end,
                    nodes: 1,
                    bytes: 0,
                    height: 1,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Ok(Flow::Continue);
                };
                let children_end = match &frame.kind {
                    FrameKind::Seq(items) => items.last().map(|n| n.span.end),
                    FrameKind::Map { entries, .. } => entries.last().map(|(_, v)| v.span.end),
                };
                let mut end = children_end.unwrap_or(0).max(frame.start_end);
                // A flow collection ends at its bracket; a block one at its
                // last child (its end event points at the next token).
                if matches!(self.snippet(span), "}" | "]") {
                    end = end.max(span.end);
                }
                let whole = Span::new(self.file, frame.start, end);
                let kind = match frame.kind {
                    FrameKind::Seq(items) => NodeKind::Seq(items),
                    FrameKind::Map { entries, .. } => NodeKind::Map(self.check_keys(entries)),
                };
                self.complete(
                    Complete {
                        node: Node { kind, span: whole },
                        nodes: frame.nodes,
                        bytes: frame.bytes,
                        height: frame.height,
                    },
                    frame.anchor,
                )?;
            }
        }
        Ok(Flow::Continue)
    }

    fn snippet(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("")
    }

    /// Counts new nodes against the file's budget.
    fn charge(&mut self, nodes: usize, bytes: usize, span: Span) -> Result<(), Box<Diagnostic>> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.nodes > MAX_NODES || self.bytes > MAX_SCALAR_BYTES {
            return Err(Box::new(
                Diagnostic::new(
                    Code::InputTooLarge,
                    format!(
                        "the file expands to more than {MAX_NODES} YAML nodes or {} MB of text",
                        MAX_SCALAR_BYTES / (1024 * 1024)
                    ),
                )
                .at(span, "the limit is exceeded here")
                .with_help(
                    "split the definitions into several files, or use fewer aliases (`*name`)",
                ),
            ));
        }
        Ok(())
    }

    /// Registers a finished node under its anchor and attaches it to its
    /// parent (or makes it the root).
    fn complete(&mut self, done: Complete, anchor: usize) -> Result<(), Box<Diagnostic>> {
        if anchor > 0 {
            // The stored copy costs memory like the tree itself: count it.
            self.charge(done.nodes, done.bytes, done.node.span)?;
            self.anchors.insert(
                anchor,
                Complete {
                    node: done.node.clone(),
                    nodes: done.nodes,
                    bytes: done.bytes,
                    height: done.height,
                },
            );
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(done);
            return Ok(());
        };
        parent.nodes = parent.nodes.saturating_add(done.nodes);
        parent.bytes = parent.bytes.saturating_add(done.bytes);
        parent.height = parent.height.max(done.height + 1);
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(done.node),
            FrameKind::Map { entries, key } => match key.take() {
                None => *key = Some(done.node),
                Some(k) => entries.push((k, done.node)),
            },
        }
        Ok(())
    }

    /// Duplicate and merge keys. A duplicate key makes the document invalid
    /// YAML (1.2 §3.2.1.1: keys are unique), hence `YamlSyntax` rather than
    /// `UnknownKey`: the key may be perfectly known, it is the repetition
    /// that is wrong. The first entry is kept so the rest of the file is
    /// still checked.
    fn check_keys(&mut self, entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
        let mut seen: HashMap<Option<String>, Span> = HashMap::new();
        let mut dropped: HashSet<usize> = HashSet::new();
        for (i, (k, _)) in entries.iter().enumerate() {
            let ident = match &k.kind {
                NodeKind::Null => None,
                NodeKind::Scalar { text, quoted } => {
                    if !quoted && text == "<<" {
                        self.diags.push(
                            Diagnostic::new(
                                Code::YamlSyntax,
                                "merge keys (`<<`) are not supported",
                            )
                            .at(k.span, "merge key")
                            .with_help(
                                "YAML 1.2 has no merge keys: write the keys out, or use an alias (`*name`) for a whole value",
                            ),
                        );
                        dropped.insert(i);
                        continue;
                    }
                    Some(text.clone())
                }
                // Keys that are collections are refused when the mapping is
                // interpreted; they cannot be compared cheaply here.
                NodeKind::Seq(_) | NodeKind::Map(_) => continue,
            };
            match seen.get(&ident) {
                Some(first) => {
                    self.diags.push(
                        Diagnostic::new(
                            Code::YamlSyntax,
                            format!("duplicate key `{}`", ident.as_deref().unwrap_or("~")),
                        )
                        .at(k.span, "given again here")
                        .with_secondary(*first, "first given here")
                        .with_help("a key may appear once per mapping: remove one of them"),
                    );
                    dropped.insert(i);
                }
                None => {
                    seen.insert(ident, k.span);
                }
            }
        }
        if dropped.is_empty() {
            return entries;
        }
        entries
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, e)| e)
            .collect()
    }

    fn syntax_error(&self, e: &ScanError) -> Diagnostic {
        let mut at = self.pos.byte(e.marker().index());
        // saphyr reports a tab at the start of the scalar it was scanning;
        // the tab itself is what to fix.
        if e.info().contains("tab")
            && let Some(i) = self.text.get(at..).and_then(|rest| rest.find('\t'))
        {
            at += i;
        }
        // Underline the character at the position, unless it is a line
        // break or the end of the file.
        let end = self
            .text
            .get(at..)
            .and_then(|rest| rest.chars().next())
            .filter(|c| *c != '\n' && *c != '\r')
            .map(|c| at + c.len_utf8())
            .unwrap_or(at);
        Diagnostic::new(Code::YamlSyntax, format!("invalid YAML: {}", e.info()))
            .at(Span::new(self.file, at, end), "here")
            .with_help(SYNTAX_HELP)
    }
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::InputTooLarge,
        format!("the YAML nests more than {MAX_DEPTH} levels deep"),
    )
    .at(span, "too deep")
    .with_help("definitions nest a few levels; flatten this value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMap;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn load(text: &str) -> (SourceMap, Option<Node>, Diagnostics) {
        let mut sm = SourceMap::new();
        let file = sm.add(Path::new("t.yml"), "t.yml".into(), text.into());
        let mut diags = Diagnostics::new();
        let node = parse(text, file, &mut diags);
        (sm, node, diags)
    }

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            NodeKind::Map(e) => e,
            other => panic!("expected a map, got {other:?}"),
        }
    }

    fn seq(node: &Node) -> &[Node] {
        match &node.kind {
            NodeKind::Seq(e) => e,
            other => panic!("expected a seq, got {other:?}"),
        }
    }

    fn scalar(node: &Node) -> (&str, bool) {
        match &node.kind {
            NodeKind::Scalar { text, quoted } => (text, *quoted),
            other => panic!("expected a scalar, got {other:?}"),
        }
    }

    fn codes(d: &Diagnostics) -> Vec<&'static str> {
        d.iter().map(|d| d.code.as_str()).collect()
    }

    fn primary<'a>(sm: &'a SourceMap, d: &Diagnostic) -> &'a str {
        sm.snippet(d.primary.as_ref().expect("a primary label").span)
    }

    #[test]
    fn plain_scalar_span_is_exactly_its_text() {
        let (sm, root, d) = load("kpis:\n  - name: x\n    metric: revnue   # typo\n");
        assert!(d.is_empty(), "{d:?}");
        let root = root.expect("root");
        let kpi = &seq(&map(&root)[0].1)[0];
        let (k, v) = &map(kpi)[1];
        assert_eq!(sm.snippet(k.span), "metric");
        assert_eq!(sm.snippet(v.span), "revnue");
        assert_eq!(scalar(v), ("revnue", false));
        assert_eq!(sm.get(v.span.file).line_col(v.span.start), (3, 13));
    }

    #[test]
    fn spans_are_bytes_after_non_ascii_text() {
        let text =
            "# Überblick: Umsätze €€€\nlabel: Café ünd Größe\nmetric: revnue\nx: [é, \"ß\", ü]\n";
        let (sm, root, d) = load(text);
        assert!(d.is_empty(), "{d:?}");
        let root = root.expect("root");
        let m = map(&root);
        assert_eq!(sm.snippet(m[0].1.span), "Café ünd Größe");
        assert_eq!(sm.snippet(m[1].1.span), "revnue");
        let items = seq(&m[2].1);
        assert_eq!(sm.snippet(items[0].span), "é");
        assert_eq!(sm.snippet(items[1].span), "\"ß\"");
        assert_eq!(sm.snippet(items[2].span), "ü");
        assert_eq!(sm.snippet(m[2].1.span), "[é, \"ß\", ü]");
    }

    #[test]
    fn yaml_12_scalars_stay_text_and_nulls_are_null() {
        let (_, root, d) = load(
            "a: on\nb: yes\nc: no\nd: ~\ne: null\nf: NULL\ng:\nh: 'null'\ni: 1.2e6\nj: |\n  x\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let root = root.expect("root");
        let m = map(&root);
        assert_eq!(scalar(&m[0].1), ("on", false));
        assert_eq!(scalar(&m[1].1), ("yes", false));
        assert_eq!(scalar(&m[2].1), ("no", false));
        for (i, (_, v)) in m.iter().enumerate().take(7).skip(3) {
            assert_eq!(v.kind, NodeKind::Null, "entry {i}");
        }
        assert_eq!(scalar(&m[7].1), ("null", true));
        assert_eq!(scalar(&m[8].1), ("1.2e6", false));
        assert_eq!(scalar(&m[9].1), ("x\n", true));
    }

    #[test]
    fn collection_spans_cover_the_collection() {
        let (sm, root, d) = load("top:\n  a: 1\n  b: {c: 2}\nnext: 3\n");
        assert!(d.is_empty(), "{d:?}");
        let root = root.expect("root");
        let m = map(&root);
        assert_eq!(sm.snippet(m[0].1.span), "a: 1\n  b: {c: 2}");
        assert_eq!(sm.snippet(map(&m[0].1)[1].1.span), "{c: 2}");
        assert_eq!(sm.snippet(root.span), "top:\n  a: 1\n  b: {c: 2}\nnext: 3");
    }

    #[test]
    fn empty_and_comment_only_files_have_no_document() {
        for text in ["", "\n\n", "# just a comment\n"] {
            let (_, root, d) = load(text);
            assert!(root.is_none(), "{text:?}");
            assert!(d.is_empty(), "{text:?}: {d:?}");
        }
    }

    #[test]
    fn syntax_error_points_at_saphyr_position() {
        let (sm, root, d) = load("a: b: c\n");
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI102"]);
        let diag = &d.0[0];
        assert!(
            diag.message.starts_with("invalid YAML: "),
            "{}",
            diag.message
        );
        assert_eq!(primary(&sm, diag), ":");
        assert!(diag.help.is_some());

        let (sm, _, d) = load("é: \"unterminated\n");
        assert_eq!(codes(&d), ["KPI102"]);
        let span = d.0[0].primary.as_ref().expect("label").span;
        assert!(sm.get(span.file).text.is_char_boundary(span.start));
    }

    #[test]
    fn multiple_documents_are_refused() {
        let (sm, root, d) = load("a: 1\n---\nb: 2\n");
        assert_eq!(codes(&d), ["KPI102"]);
        assert_eq!(d.0[0].message, "a file holds one YAML document");
        assert_eq!(primary(&sm, &d.0[0]), "---");
        // The first document is kept.
        let root = root.expect("root");
        assert_eq!(scalar(&map(&root)[0].0), ("a", false));

        // One explicit document is fine.
        let (_, root, d) = load("---\na: 1\n...\n");
        assert!(d.is_empty(), "{d:?}");
        assert!(root.is_some());
    }

    #[test]
    fn duplicate_keys_are_errors_and_first_wins() {
        let (sm, root, d) = load("name: a\nlabel: x\nname: b\n");
        assert_eq!(codes(&d), ["KPI102"]);
        assert_eq!(d.0[0].message, "duplicate key `name`");
        assert_eq!(d.0[0].primary.as_ref().map(|l| l.span.start), Some(17));
        assert_eq!(primary(&sm, &d.0[0]), "name");
        assert_eq!(sm.snippet(d.0[0].secondary[0].span), "name");
        assert_eq!(d.0[0].secondary[0].span.start, 0);
        let root = root.expect("root");
        let m = map(&root);
        assert_eq!(m.len(), 2);
        assert_eq!(scalar(&m[0].1), ("a", false));
    }

    #[test]
    fn merge_keys_are_refused() {
        let (sm, _, d) = load("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n");
        assert_eq!(codes(&d), ["KPI102"]);
        assert!(d.0[0].message.contains("merge keys"), "{}", d.0[0].message);
        assert_eq!(primary(&sm, &d.0[0]), "<<");
    }

    #[test]
    fn aliases_expand_to_copies() {
        let (sm, root, d) = load("a: &x [1, 2]\nb: *x\n");
        assert!(d.is_empty(), "{d:?}");
        let root = root.expect("root");
        let m = map(&root);
        let copy = seq(&m[1].1);
        assert_eq!(copy.len(), 2);
        assert_eq!(sm.snippet(m[1].1.span), "*x");
        assert_eq!(sm.snippet(copy[1].span), "2");
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let (prev, next) = (w[0], w[1]);
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("{next}: &{next} [{refs}]\n"));
        }
        let started = Instant::now();
        let (_, root, d) = load(&text);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI107"]);
    }

    #[test]
    fn alias_of_a_large_string_is_bounded_by_bytes() {
        let big = "x".repeat(1024 * 1024);
        let mut text = format!("a: &a \"{big}\"\nb: [");
        text.push_str(&vec!["*a"; 100].join(","));
        text.push_str("]\n");
        let (_, root, d) = load(&text);
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI107"]);
    }

    #[test]
    fn depth_limit() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let (_, root, d) = load(&ok);
        assert!(d.is_empty(), "{d:?}");
        assert!(root.is_some());

        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = Instant::now();
        let (_, root, d) = load(&deep);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI107"]);

        let started = Instant::now();
        let (_, root, d) = load(&"- ".repeat(1_000_000));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI107"]);

        // An alias may not smuggle depth past the limit.
        let inner = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let text = format!("a: &a {inner}\nb: {}*a{}\n", "[".repeat(30), "]".repeat(30));
        let (_, root, d) = load(&text);
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI107"]);
    }

    #[test]
    fn node_budget() {
        let text = format!("[{}]", vec!["1"; MAX_NODES + 10].join(","));
        let (_, root, d) = load(&text);
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI107"]);
    }

    #[test]
    fn control_characters_are_refused_where_they_are() {
        let (sm, root, d) = load("a: ok\nb: \u{1b}[2Jred\u{7}\n");
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI102"]);
        assert!(d.0[0].message.contains("U+001B"), "{}", d.0[0].message);
        let span = d.0[0].primary.as_ref().expect("label").span;
        assert_eq!(sm.get(span.file).line_col(span.start), (2, 4));
        // Tabs, line breaks, NEL and ordinary non-ASCII text are fine.
        let (_, root, d) = load("a: \"x\ty\"\r\nb: caf\u{e9} \u{85} \u{202e}\n");
        assert!(d.is_empty(), "{d:?}");
        assert!(root.is_some());
    }

    #[test]
    fn str_tag_keeps_null_as_text() {
        let (_, root, d) = load("a: !!str null\n");
        assert!(d.is_empty(), "{d:?}");
        let root = root.expect("root");
        assert_eq!(scalar(&map(&root)[0].1), ("null", true));
    }

    #[test]
    fn crlf_bom_and_quoted_spans() {
        let text = "\u{feff}name: \"Umsätze\"\r\nmetric: 'revnue'\r\nkpi: ünd\r\n";
        let (sm, root, d) = load(text);
        assert!(d.is_empty(), "{d:?}");
        let root = root.expect("root");
        let m = map(&root);
        assert_eq!(sm.snippet(m[0].0.span), "name");
        assert_eq!(sm.snippet(m[0].1.span), "\"Umsätze\"");
        assert_eq!(scalar(&m[0].1), ("Umsätze", true));
        assert_eq!(sm.snippet(m[1].1.span), "'revnue'");
        assert_eq!(sm.snippet(m[2].1.span), "ünd");
    }

    #[test]
    fn recursive_alias_is_an_error() {
        let (sm, root, d) = load("a: &x [1, *x]\n");
        assert!(root.is_none());
        assert_eq!(codes(&d), ["KPI102"]);
        assert_eq!(primary(&sm, &d.0[0]), "*x");
    }

    #[test]
    fn malformed_input_never_panics() {
        // Every prefix of a realistic file, cut at every char boundary, plus
        // some hostile snippets: parse must return, with spans inside the
        // text on char boundaries.
        let full = "# Kennzahlen für Q1 — ünd €\nsources:\n  - name: orders\n    path: \"fixtures/ördérs.csv\"\n    dimensions: [channel, {name: country, expr: upper(cc)}]\nmetrics:\n  - &m {name: revenue, measure: sum(amount)}\n  - *m\nkpis:\n  - name: k\n    target: {values: {2026-Q1: 1.0e6}}\n    action_plan: |\n      Prüfen.\n";
        let mut inputs: Vec<String> = full
            .char_indices()
            .map(|(i, _)| full[..i].to_string())
            .collect();
        for hostile in [
            "{",
            "[",
            "]",
            "}",
            ":",
            "- - -",
            "? ",
            "&",
            "*",
            "*nope",
            "!",
            "!!int x",
            "%YAML 1.2\n---\n",
            "\t- a",
            "a:\n\t- b",
            "'",
            "\"\\u12\"",
            "|",
            ">-\n x",
            "a: &a\nb: *a\n",
            "\u{feff}",
            "---\n...\n---",
            "a: b\n c: d",
            "[a: b, c]",
            "{? a : b}",
            "- ? x\n  : y",
        ] {
            inputs.push(hostile.to_string());
        }
        for text in &inputs {
            let (sm, _, d) = load(text);
            for diag in d.iter() {
                if let Some(l) = &diag.primary {
                    assert!(l.span.end <= text.len(), "{text:?}: {diag:?}");
                    assert!(text.is_char_boundary(l.span.start), "{text:?}");
                    assert!(text.is_char_boundary(l.span.end), "{text:?}");
                }
                let _ = sm.snippet(diag.primary.as_ref().map(|l| l.span).unwrap_or(Span::new(
                    FileId(0),
                    0,
                    0,
                )));
            }
        }
    }
}
