//! The sdk's top-level modules are layers that depend one way only: this
//! test reads every source file under `src/<layer>/` (and `src/<layer>.rs`),
//! collects the `crate::<module>` paths outside comments, and fails on a
//! cycle among the top-level modules, or on a layer that uses one listed
//! after it, naming the files. (`super::` never leaves a layer: each layer's
//! files reach the others only through `crate::` paths, which this reads.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules of `src` (the folders and files beside `lib.rs`).
fn top_level(src: &Path) -> BTreeSet<String> {
    fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_owned();
            let module = p.is_dir() || p.extension().is_some_and(|e| e == "rs");
            (module && name != "lib" && name != "bin").then_some(name)
        })
        .collect()
}

/// `crate::<ident>` paths in code (not in comments), as the idents.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue; // `some_crate::`, or `$crate::` in a macro for users
            }
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(ident);
        }
    }
    found
}

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Edges between top-level modules, each with the files that make it.
fn graph(src: &Path) -> Result<Graph, Vec<String>> {
    let modules = top_level(src);
    let mut edges: Graph = BTreeMap::new();
    let mut unknown = Vec::new();
    for module in &modules {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(src).unwrap().display().to_string();
            for target in crate_paths(&text) {
                if target == *module {
                    continue;
                }
                if !modules.contains(&target) {
                    // A root re-export would hide which layer is used.
                    unknown.push(format!("{shown}: crate::{target} (use the layer's path)"));
                    continue;
                }
                edges
                    .entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(shown.clone());
            }
        }
    }
    if unknown.is_empty() {
        Ok(edges)
    } else {
        Err(unknown)
    }
}

/// A cycle in `edges`, as the modules along it.
fn find_cycle(edges: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_sdk_layers_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src).unwrap_or_else(|unknown| {
        panic!(
            "paths through the crate root instead of a layer:\n{}",
            unknown.join("\n")
        )
    });
    if let Some(cycle) = find_cycle(&edges) {
        let proof: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} -> {} in {:?}", w[0], w[1], edges[&w[0]][&w[1]]))
            .collect();
        panic!("a cycle among the sdk's layers:\n{}", proof.join("\n"));
    }
    // The layers named in lib.rs are the ones on disk, and each uses only
    // those before it in this order.
    const ORDER: [&str; 10] = [
        "vocab", "record", "sync", "tasks", "run", "config", "tracing", "read", "tools", "load",
    ];
    assert_eq!(
        top_level(&src),
        ORDER.iter().map(|l| l.to_string()).collect::<BTreeSet<_>>(),
        "the top-level modules are exactly the layers"
    );
    let rank = |m: &str| ORDER.iter().position(|l| *l == m).unwrap();
    for (from, targets) in &edges {
        for (to, files) in targets {
            assert!(
                rank(to) < rank(from),
                "{from} uses {to}, a layer above it, in {files:?}"
            );
        }
    }
}

#[test]
fn the_cycle_check_can_fail() {
    let mut edges = Graph::new();
    let files = || BTreeSet::from(["f.rs".to_owned()]);
    edges
        .entry("a".into())
        .or_default()
        .insert("b".into(), files());
    edges
        .entry("b".into())
        .or_default()
        .insert("c".into(), files());
    assert_eq!(find_cycle(&edges), None);
    edges
        .entry("c".into())
        .or_default()
        .insert("a".into(), files());
    assert_eq!(
        find_cycle(&edges).unwrap(),
        ["a", "b", "c", "a"].map(String::from)
    );
    assert_eq!(
        crate_paths("use crate::read::x; // crate::tools\nfoo_crate::bar; $crate::x; crate::run"),
        ["read", "run"]
    );
}
