//! The house rule "no two modules import each other, directly or in a circle", checked over
//! the source of every crate of the workspace (the crates themselves cannot form a circle:
//! Cargo refuses one).
//!
//! Each `.rs` file is a module (`src/foo.rs` and `src/foo/bar.rs` are `foo` and `foo::bar`).
//! Every path a file names through `crate::`, `super::` or `self::` (in `use` trees, `{…}`
//! groups included, and in code) is resolved to the deepest module it reaches. A reference
//! from module A to module B is lifted to their nearest common ancestor: it is an edge
//! between the two children of that ancestor on A's and B's side, so `handlers::users` using
//! `tenant` is the edge `handlers → tenant` among the crate's top modules, and
//! `filter::parser` using `schema` is `filter → schema`. Each set of siblings must then have
//! no cycle. A module using its own parent or child is not a sibling edge (the idiom of a
//! `foo.rs` that owns the `foo/` files). Comments and inline `#[cfg(test)]` modules are not
//! read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source roots of the workspace's crates, relative to the repository root.
fn crate_roots(root: &Path) -> Vec<PathBuf> {
    let mut roots = vec![root.join("src")];
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path().join("src"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    crates.sort();
    roots.extend(crates);
    roots
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/foo/bar.rs` → `["foo", "bar"]`; `lib.rs` and `main.rs` are the crate root `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => Vec::new(),
        _ => parts,
    }
}

/// The code of a file: no comments, and nothing from an inline `#[cfg(test)]` on (a file's
/// own test module is where it uses itself).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests {"))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            // A `//` inside a string (a URL) is rare in paths we look at; cut at it anyway:
            // the rest of such a line names no module.
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every module path a text names: `crate::a::b`, `super::x`, `self::y`, `use crate::{a, b::c}`.
/// Paths come back as their segments, the first being `crate`, `super` or `self`.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            // Part of a longer identifier (`my_crate::`): not ours.
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let head = start.trim_end_matches("::").to_owned();
            expand(&code[from..], vec![head], &mut out);
        }
    }
    out
}

/// Reads the rest of a path after `prefix::`, expanding one `{…}` group (recursively).
fn expand(rest: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut s = rest;
    loop {
        let ident: String = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !ident.is_empty() {
            s = &s[ident.len()..];
            path.push(ident);
            if let Some(next) = s.strip_prefix("::") {
                s = next;
                continue;
            }
            out.push(path);
            return;
        }
        if let Some(group) = s.strip_prefix('{') {
            let mut depth = 1;
            let mut end = group.len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = &group[..end];
            let mut depth = 0;
            let mut item_start = 0;
            for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = inner[item_start..i].trim();
                        if !item.is_empty() {
                            expand(item, path.clone(), out);
                        }
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
        }
        out.push(path);
        return;
    }
}

/// The deepest existing module a named path reaches, from module `here`.
fn resolve(
    here: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let (mut base, rest) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (here.to_vec(), &path[1..]),
        Some("super") => {
            let mut base = here.to_vec();
            let mut rest = &path[1..];
            base.pop()?;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => return None,
    };
    for seg in rest {
        let mut next = base.clone();
        next.push(seg.clone());
        if modules.contains(&next) {
            base = next;
        } else {
            break;
        }
    }
    Some(base)
}

/// The cycles among siblings: for each parent module, the strongly connected parts of its
/// children's edges that hold more than one child.
fn sibling_cycles(
    edges: &BTreeMap<Vec<String>, BTreeMap<Vec<String>, Vec<String>>>,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut by_parent: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, tos) in edges {
        for to in tos.keys() {
            let common = from
                .iter()
                .zip(to.iter())
                .take_while(|(a, b)| a == b)
                .count();
            if common == from.len() || common == to.len() {
                continue; // parent and child
            }
            by_parent
                .entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    for (parent, graph) in &by_parent {
        // Tarjan-free: a pair (a, b) is in a cycle when each reaches the other.
        let reach = |a: &str| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![a.to_owned()];
            while let Some(n) = todo.pop() {
                for m in graph.get(&n).into_iter().flatten() {
                    if seen.insert(m.clone()) {
                        todo.push(m.clone());
                    }
                }
            }
            seen
        };
        for a in graph.keys() {
            let from_a = reach(a);
            for b in &from_a {
                if b > a && reach(b).contains(a) {
                    let at = if parent.is_empty() {
                        "the crate root".to_owned()
                    } else {
                        parent.join("::")
                    };
                    found.push(format!("{a} and {b} (under {at}) import each other"));
                }
            }
        }
    }
    found
}

/// All sibling cycles of one crate, with an example reference for each direction.
fn check_crate(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeMap<Vec<String>, Vec<String>>> = BTreeMap::new();
    for f in &files {
        let here = module_of(src, f);
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for path in named_paths(&code_of(&text)) {
            if let Some(to) = resolve(&here, &path, &modules)
                && to != here
            {
                edges
                    .entry(here.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .push(path.join("::"));
            }
        }
    }
    sibling_cycles(&edges)
        .into_iter()
        .map(|c| format!("{}: {c}", src.display()))
        .collect()
}

#[test]
fn no_two_modules_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roots = crate_roots(root);
    assert!(roots.len() >= 5, "the workspace's crates: {roots:?}");
    let cycles: Vec<String> = roots.iter().flat_map(|r| check_crate(r)).collect();
    assert!(cycles.is_empty(), "import circles:\n{}", cycles.join("\n"));
}

#[test]
fn the_layering_check_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "pub mod inner;\nuse self::inner::X;\n").unwrap();
    // A child using its parent, and the parent using its child: not a sibling edge.
    std::fs::write(
        src.join("a").join("inner.rs"),
        "use super::Y;\nuse crate::{b::B, c};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "// crate::a::Z in a comment\nuse crate::c::C;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("c.rs"),
        "fn f() { crate::a::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::b::B;\n}\n",
    )
    .unwrap();
    // a → b → c → a: every pair of the three is in the circle.
    let cycles = check_crate(&src);
    let pairs: Vec<&str> = cycles
        .iter()
        .map(|c| c.rsplit(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        pairs,
        [
            "a and b (under the crate root) import each other",
            "a and c (under the crate root) import each other",
            "b and c (under the crate root) import each other",
        ],
        "{cycles:?}"
    );
    // Without the call from c to a, nothing is circular (b uses c, a uses b and c).
    std::fs::write(src.join("c.rs"), "pub struct C;\n").unwrap();
    assert_eq!(check_crate(&src), Vec::<String>::new());
}
