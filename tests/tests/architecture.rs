//! The architecture rule every crate keeps: no file imports another file that imports
//! it back, directly or around a longer circle. What two rooms both need lives in a
//! leaf. Read from the sources themselves (`use crate::…`, `crate::…` paths and
//! `super::…` outside test modules), so the check costs nothing to run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library crates of the workspace, by their source folder.
const CRATES: [&str; 6] = [
    "shared-proto/src",
    "main-server/src",
    "local-server/src",
    "mail-gateway/src",
    "client/src",
    "client/ffi/src",
];

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut circles = Vec::new();
    for krate in CRATES {
        let graph = import_graph(&root.join(krate));
        assert!(graph.len() > 2, "{krate}: no modules found");
        for circle in circles_of(&graph) {
            circles.push(format!("{krate}: {}", circle.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "files that import each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_check_finds_a_circle() {
    let graph: Graph = [
        (vec!["a".to_owned()], [vec!["b".to_owned()]].into()),
        (vec!["b".to_owned()], [vec!["a".to_owned()]].into()),
        (vec!["c".to_owned()], [vec!["a".to_owned()]].into()),
    ]
    .into();
    assert_eq!(circles_of(&graph), vec![vec!["a", "b", "a"]]);
}

/// Module path (`["leases", "queue"]`) → the modules its file imports.
type Graph = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// The import graph of one crate's library (binaries under `src/bin` and `main.rs`
/// are crates of their own and left out).
fn import_graph(src: &Path) -> Graph {
    let files = rust_files(src);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .into_iter()
        .filter_map(|file| Some((module_of(src, &file)?, file)))
        .collect();
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, file)| {
            let text = std::fs::read_to_string(file).unwrap();
            let imports = imported_paths(&text, module)
                .into_iter()
                .filter_map(|path| resolve(&known, &path))
                .filter(|target| target != module && !target.is_empty())
                .collect();
            (module.clone(), imports)
        })
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`; `src/lib.rs` is `[]`.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || parts == ["main.rs"] {
        return None;
    }
    let last = parts.pop()?;
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    Some(parts)
}

/// Every module path the text names through `crate::` or `super::`, absolute. Test
/// modules (`#[cfg(test)]` to the end of the file, as this project writes them) are
/// left out: their `super` is the file itself.
fn imported_paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    for (start, anchor) in [("crate::", Vec::new()), ("super::", parent_of(module))] {
        for (at, _) in code.match_indices(start) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            for tail in path_tails(&code[at + start.len()..]) {
                let mut path = anchor.clone();
                path.extend(tail);
                paths.push(path);
            }
        }
    }
    paths
}

fn parent_of(module: &[String]) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// The paths written after `crate::`: one (`a::b::C`) or a group (`{a, b::c}`).
fn path_tails(rest: &str) -> Vec<Vec<String>> {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 1;
        let end = group
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(group.len(), |(i, _)| i);
        return split_top_level(&group[..end])
            .iter()
            .flat_map(|item| path_tails(item.trim()))
            .collect();
    }
    let segments: Vec<String> = rest
        .split("::")
        .map_while(|segment| {
            let word: String = segment
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!word.is_empty() && word.len() == segment.len()).then_some(word)
        })
        .collect();
    // The last segment is cut where the path ends (`a::b;`, `a::b(`): take it too.
    let last: String = rest
        .split("::")
        .nth(segments.len())
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .unwrap_or_default();
    let mut path = segments;
    if !last.is_empty() {
        path.push(last);
    }
    vec![path]
}

fn split_top_level(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// The longest prefix of `path` that is a module of the crate.
fn resolve(known: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// Each circle once, as the path around it (first module repeated at the end).
fn circles_of(graph: &Graph) -> Vec<Vec<String>> {
    let mut circles: Vec<Vec<String>> = Vec::new();
    let mut seen: BTreeSet<BTreeSet<Vec<String>>> = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    let members: BTreeSet<_> = trail.iter().cloned().collect();
                    if seen.insert(members) {
                        let mut names: Vec<String> = trail.iter().map(|m| name(m)).collect();
                        names.push(name(start));
                        circles.push(names);
                    }
                } else if !trail.contains(next) && next > start {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    circles
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("::")
    }
}
