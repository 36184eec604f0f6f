//! The house's rules, read from the sources (ARCHITECTURE.md, "The crates and their arrows"):
//! the binary never imports the runtime, the registry links neither the client nor the
//! runtime, the modules of a crate import each other without a loop, and the documents point
//! at nothing outside the repository. No binary is run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A source without its comments (line and block) and string literals, so that a path named
/// in prose or in a message is no import.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // a raw string r"…" or r#"…"#
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // a character literal ('"' would open a string above)
            i += 3;
            out.push_str("' '");
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            let end = b[i + 3..]
                .iter()
                .position(|c| *c == b'\'')
                .map_or(b.len(), |p| i + 4 + p);
            i = end;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Code without its `#[cfg(test)]` modules: what a test reads is no import of the crate.
fn without_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        if !item.starts_with("mod ") {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        // Skip to the end of the module's braces (strings and comments are gone already).
        let open = item.find(['{', ';']).unwrap_or(item.len());
        let mut depth = 0;
        let mut end = item.len();
        for (i, c) in item[open..].char_indices() {
            match c {
                ';' if depth == 0 => {
                    end = open + i + 1;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The module a file is (`engine/mod.rs` and `engine.rs`: `engine`; `lib.rs`: the crate).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn ident_at(s: &[u8], mut i: usize) -> Option<(String, usize)> {
    let start = i;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    (i > start).then(|| (String::from_utf8_lossy(&s[start..i]).into_owned(), i))
}

fn skip_space(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The paths of a use tree at `i` (`a::b::{c, d::e}` gives `a::b::c` and `a::b::d::e`),
/// each appended to `prefix`.
fn use_tree(s: &[u8], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        i = skip_space(s, i);
        if s.get(i) == Some(&b'{') {
            i += 1;
            loop {
                i = skip_space(s, i);
                if s.get(i) == Some(&b'}') {
                    return i + 1;
                }
                i = use_tree(s, i, path.clone(), out);
                i = skip_space(s, i);
                match s.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => return i + 1,
                    _ => return i,
                }
            }
        }
        match ident_at(s, i) {
            Some((id, next)) => {
                path.push(id);
                i = next;
            }
            None => {
                out.push(path);
                return i;
            }
        }
        let j = skip_space(s, i);
        if s[j..].starts_with(b"::") {
            i = j + 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// The paths a file names through `crate::`, `super::` or `self::`, as absolute module
/// paths of its crate.
fn paths_named(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let s = code.as_bytes();
    let mut raw = Vec::new();
    for (i, _) in code.match_indices("::") {
        // the first segment of a path: an identifier before `::` not itself after `::`
        let start = code[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        let first = &code[start..i];
        if !matches!(first, "crate" | "super" | "self") {
            continue;
        }
        if code[..start].ends_with("::") {
            continue; // `super::super::x` is read from its first `super`
        }
        let mut paths = Vec::new();
        use_tree(s, start, Vec::new(), &mut paths);
        raw.extend(paths);
    }
    raw.into_iter()
        .filter_map(|p| {
            let mut abs: Vec<String> = Vec::new();
            let mut rest = p.as_slice();
            match rest.first().map(String::as_str) {
                Some("crate") => rest = &rest[1..],
                Some("self") => {
                    abs = module.to_vec();
                    rest = &rest[1..];
                }
                Some("super") => {
                    abs = module.to_vec();
                    while rest.first().map(String::as_str) == Some("super") {
                        abs.pop()?;
                        rest = &rest[1..];
                    }
                }
                _ => return None,
            }
            abs.extend(rest.iter().cloned());
            Some(abs)
        })
        .collect()
}

/// The import graph between a crate's modules: an edge from each module to each other module
/// whose items it names, except to its own ancestors (a module may use what its parent holds
/// for its children). Inline `mod tests` blocks count as their file's module.
fn module_graph(src_root: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files = rust_files(src_root);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src_root, f)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let m = module_of(src_root, f);
        let code = without_test_modules(&code_only(&std::fs::read_to_string(f).unwrap()));
        let edges = graph.entry(m.clone()).or_default();
        for path in paths_named(&code, &m) {
            // The longest module the path names.
            let mut target = path;
            while !target.is_empty() && !modules.contains(&target) {
                target.pop();
            }
            if target != m && !m.starts_with(&target) {
                edges.insert(target);
            }
        }
    }
    graph
}

/// A loop in the graph, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                let mut cycle: Vec<String> = stack[at..].iter().map(|m| m.join("::")).collect();
                cycle.push(n.join("::"));
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_module_graph_reader_sees_a_loop() {
    // The check below must be able to fail: two sibling modules that name each other.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod engine;\nmod leaf;\n").unwrap();
    std::fs::write(
        src.join("engine/mod.rs"),
        "// crate::leaf::X in a comment is no import\nmod a;\nmod b;\npub struct E;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("engine/a.rs"),
        "use super::{b::B, E};\npub struct A;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("engine/b.rs"),
        "pub struct B;\nfn f() -> crate::engine::a::A { todo!(\"crate::leaf\") }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("leaf.rs"),
        "pub struct X;\n#[cfg(test)]\nmod tests {\n    use crate::engine::E;\n    fn f() { { } }\n}\n",
    )
    .unwrap();
    let graph = module_graph(src);
    let key = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(
        graph[&key("engine::a")],
        BTreeSet::from([key("engine::b")]),
        "the parent's items are no edge"
    );
    assert_eq!(graph[&key("engine")], BTreeSet::new(), "{graph:?}");
    assert_eq!(
        graph[&key("leaf")],
        BTreeSet::new(),
        "a test module's imports are no edge"
    );
    let cycle = find_cycle(&graph).expect("a loop between engine::a and engine::b");
    assert!(cycle.contains(&"engine::a".to_string()), "{cycle:?}");
    // Without b's back edge, no loop.
    std::fs::write(src.join("engine/b.rs"), "pub struct B;\n").unwrap();
    assert_eq!(find_cycle(&module_graph(src)), None);
}

#[test]
fn modules_import_each_other_without_a_loop() {
    for (krate, src) in [
        ("berth", "src"),
        ("berth-client", "client/src"),
        ("berth-registry", "registry/src"),
        ("berth-remote", "remote/src"),
        ("berth-storage", "storage/src"),
        ("berth-runtime", "runtime/src"),
    ] {
        let graph = module_graph(&repo().join(src));
        assert!(graph.len() > 1, "{krate}: no modules read under {src}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: an import loop: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_binary_never_imports_the_runtime() {
    let mut found = Vec::new();
    for f in rust_files(&repo().join("src")) {
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        if code.contains("berth_runtime") {
            found.push(f.display().to_string());
        }
    }
    assert!(found.is_empty(), "berth_runtime named in {found:?}");
    assert!(
        !workspace_deps(&repo().join("Cargo.toml")).contains("berth-runtime"),
        "the berth package depends on berth-runtime directly"
    );
}

/// The workspace crates a manifest depends on to build (not its dev-dependencies).
fn workspace_deps(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut deps = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        let building = section == "dependencies"
            || section == "build-dependencies"
            || (section.starts_with("target.")
                && (section.ends_with(".dependencies")
                    || section.ends_with(".build-dependencies")));
        if let Some(name) = line.split(['.', ' ', '=']).next() {
            if building && name.starts_with("berth-") {
                deps.insert(name.to_string());
            }
        }
    }
    deps
}

#[test]
fn the_registry_links_neither_the_client_nor_the_runtime() {
    let dir_of = |krate: &str| krate.strip_prefix("berth-").unwrap().to_string();
    let mut seen = BTreeSet::new();
    let mut todo = vec!["berth-registry".to_string()];
    while let Some(k) = todo.pop() {
        if seen.insert(k.clone()) {
            todo.extend(workspace_deps(&repo().join(dir_of(&k)).join("Cargo.toml")));
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["berth-registry", "berth-remote", "berth-storage"].map(String::from)),
        "berth-registry's workspace dependencies, direct and indirect"
    );
    // The reader sees the arrows there are: the client does depend on the runtime.
    assert!(workspace_deps(&repo().join("client/Cargo.toml")).contains("berth-runtime"));
}

#[test]
fn the_documents_point_at_nothing_outside_the_repository() {
    for doc in ["ARCHITECTURE.md", "README.md", "bench/README.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        // No path climbs out of the repository (`../x`; a bare `../` names the refusal of
        // one in a build context).
        for (i, _) in text.match_indices("../") {
            let next = text[i + 3..].chars().next();
            assert!(
                !next.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.'),
                "{doc} points out of the repository: {}",
                &text[i..(i + 40).min(text.len())]
            );
        }
        // Every link is to a file of the repository or to the web.
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap_or_default();
            let target = target.split('#').next().unwrap_or_default();
            if target.is_empty() || target.starts_with("http") {
                continue;
            }
            let base = repo().join(doc);
            let here = base.parent().unwrap();
            assert!(here.join(target).exists(), "{doc} links to {target}");
        }
    }
}

#[test]
fn a_directory_per_object_and_one_formatter() {
    // docker's layout: src/cli/<object>/ holds its verbs; only src/cli/format/ prints tables,
    // templates and indented JSON.
    let cli = repo().join("src/cli");
    for object in [
        "container",
        "image",
        "network",
        "volume",
        "system",
        "registry",
        "serve",
    ] {
        assert!(
            cli.join(object).join("mod.rs").exists(),
            "src/cli/{object}/"
        );
    }
    let format = cli.join("format");
    let mut found = Vec::new();
    for f in rust_files(&repo().join("src")) {
        if f.starts_with(&format) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        for formatter in ["PrettyFormatter", "to_string_pretty", "gotmpl", "tabwriter"] {
            if code.contains(formatter) {
                found.push(format!("{}: {formatter}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "formatting outside src/cli/format/: {found:?}"
    );
}
