//! The crate's module graph has no back-edges between its layers (issue 12).
//!
//! Reads every `crate::<module>` path in `src/**.rs` (in `use` lines, brace
//! groups spread over several lines, and inline paths; comments are left
//! out) and checks it against the layers:
//!
//! ```text
//! policy, uri, tls_roots  <-  engine  <-  testfile  <-  bundle  <-  services (the
//! service seam, ec2, sts, k8s, identity), validate, telemetry  <-  server,
//! commands, registry  <-  main
//! ```
//!
//! A module may import its own layer's modules and the layers below it,
//! never one above; and no two top-level modules may import each other
//! (directly or round a longer cycle). A new top-level module must be given
//! a layer here. A failure names the file and line of every offending path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module: higher layers may import lower ones.
const LAYERS: &[(&str, u8)] = &[
    ("policy", 0),
    ("uri", 0),
    ("tls_roots", 0),
    ("engine", 1),
    ("testfile", 2),
    ("bundle", 3),
    ("ec2", 4),
    ("sts", 4),
    ("k8s", 4),
    ("identity", 4),
    ("service", 4),
    ("s3", 4),
    ("validate", 4),
    ("telemetry", 4),
    ("server", 5),
    ("commands", 5),
    ("registry", 5),
    ("main", 6),
];

/// Back-edges still in the code, each with the work that removes it. The
/// test fails when one of these disappears, so that the list only shrinks.
const KNOWN_BACK_EDGES: &[(&str, &str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to.
fn owner(rel: &Path) -> String {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next().unwrap_or_default().into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_owned()
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every `crate::<module>` in `text` as (line number, module), comments
/// left out. `crate::{a::x, b}` yields `a` and `b`, across lines.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    // Depth of an open `crate::{` group and the line it may continue on.
    let mut group: Option<usize> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = raw.trim_start();
        if trimmed.starts_with("//") || trimmed.starts_with("*") || trimmed.starts_with("/*") {
            continue;
        }
        // Drop a trailing line comment (not `://` inside a URL string).
        let code = match raw.find(" //") {
            Some(i) => &raw[..i],
            None => raw,
        };
        let mut rest = code;
        if let Some(depth) = group.as_mut() {
            let (consumed, names) = scan_group(rest, depth);
            found.extend(names.into_iter().map(|m| (line_no, m)));
            rest = &rest[consumed..];
            if *depth == 0 {
                group = None;
            } else {
                continue;
            }
        }
        while let Some(i) = rest.find("crate::") {
            // `iamgate::crate::` cannot occur; a preceding identifier char
            // means a different path (`mycrate::`).
            let before = rest[..i].chars().last();
            let after = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                rest = after;
                continue;
            }
            if let Some(inner) = after.strip_prefix('{') {
                let mut depth = 1;
                let (consumed, names) = scan_group(inner, &mut depth);
                found.extend(names.into_iter().map(|m| (line_no, m)));
                if depth > 0 {
                    group = Some(depth);
                    break;
                }
                rest = &inner[consumed..];
            } else {
                let name = ident_at(after);
                if !name.is_empty() {
                    found.push((line_no, name.to_owned()));
                }
                rest = &after[name.len()..];
            }
        }
    }
    found
}

/// Reads a `crate::{...}` group from `s` at `depth`: the top-level names
/// and how far it read (to the closing brace, or the whole line).
fn scan_group(s: &str, depth: &mut usize) -> (usize, Vec<String>) {
    let mut names = Vec::new();
    let mut expect_name = *depth == 1;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        let c = bytes[i] as char;
        match c {
            '{' => {
                *depth += 1;
                expect_name = false;
            }
            '}' => {
                *depth -= 1;
                if *depth == 0 {
                    return (i + 1, names);
                }
            }
            ',' => expect_name = *depth == 1,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let name = ident_at(&s[i..]);
                if expect_name && name != "self" {
                    names.push(name.to_owned());
                }
                expect_name = false;
                i += name.len();
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (s.len(), names)
}

#[test]
fn no_back_edges_between_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no source files under {}", src.display());

    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut known_seen = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file);
        let from = owner(rel);
        if from == "lib" {
            continue;
        }
        let shown = format!("src/{}", rel.display());
        let Some(&from_layer) = layers.get(from.as_str()) else {
            problems.push(format!(
                "{shown}: module `{from}` has no layer in tests/module_graph.rs"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (line, to) in crate_paths(&text) {
            if to == from {
                continue;
            }
            let Some(&to_layer) = layers.get(to.as_str()) else {
                // `crate::SomeItem` from lib.rs, or a macro path: not a module.
                continue;
            };
            edges.entry(from.clone()).or_default().insert(to.clone());
            if to_layer > from_layer {
                if let Some(k) = KNOWN_BACK_EDGES
                    .iter()
                    .position(|(f, t, _)| *f == shown && *t == to)
                {
                    known_seen.insert(k);
                    continue;
                }
                problems.push(format!(
                    "{shown}:{line}: `{from}` (layer {from_layer}) imports `crate::{to}` (layer {to_layer}): a back-edge"
                ));
            }
        }
    }

    for (k, (file, to, why)) in KNOWN_BACK_EDGES.iter().enumerate() {
        if !known_seen.contains(&k) {
            problems.push(format!(
                "{file} no longer imports `crate::{to}` ({why}): remove it from KNOWN_BACK_EDGES"
            ));
        }
    }

    // Cycles between top-level modules (same layer included).
    for start in edges.keys() {
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let allowed = path.len() == 2
                        && KNOWN_BACK_EDGES.iter().any(|(f, t, _)| {
                            (f.starts_with(&format!("src/{start}")) && *t == node)
                                || (f.starts_with(&format!("src/{node}")) && t == start)
                        });
                    if !allowed {
                        problems.push(format!(
                            "cycle between modules: {} -> {start}",
                            path.join(" -> ")
                        ));
                    }
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "module graph problems:\n{}",
        problems.join("\n")
    );
}

/// Services that plug in through the seam only (`src/service`): nothing
/// but the registry names them (issue 12).
const SEAM_ONLY_SERVICES: &[&str] = &["s3"];

#[test]
fn seam_only_services_are_named_by_the_registry_alone() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file);
        let from = owner(rel);
        if from == "registry" || from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (line, to) in crate_paths(&text) {
            if to != from && SEAM_ONLY_SERVICES.contains(&to.as_str()) {
                problems.push(format!(
                    "src/{}:{line}: names `crate::{to}`, a service only the registry may name",
                    rel.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn paths_are_read_from_use_groups_and_inline_paths() {
    let text = "use crate::{\n    engine::{Outcome, Reason},\n    policy::PolicyKind,\n};\n\
                // crate::server is only mentioned\n\
                let x = crate::bundle::load(); // crate::ec2 too\n\
                use crate::{self as me, uri::decode};\n";
    let got: Vec<(usize, String)> = crate_paths(text);
    let want: Vec<(usize, String)> = vec![
        (2, "engine".into()),
        (3, "policy".into()),
        (6, "bundle".into()),
        (7, "uri".into()),
    ];
    assert_eq!(got, want);
}
