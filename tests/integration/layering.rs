//! The runtime's layers only point down. Each top-level module of
//! `runtime/src` sits on a level of [`LEVELS`] and may use (`crate::X`, in
//! code outside its tests) only modules on lower levels; modules on one
//! level do not use each other. `ARCHITECTURE.md` draws the same picture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. Keep in step with `ARCHITECTURE.md`.
const LEVELS: &[&[&str]] = &[
    &["database", "request_id", "model", "connections"],
    &["engine"],
    &["observability"],
    &["metering"],
    &["pool"],
    &["storage", "events"],
    &["config"],
    &["registry", "manifest"],
    &["live"],
    &["triggers"],
    &["control"],
    &["api"],
    &["gateway", "console"],
    &["server"],
    &["cli"],
    &["lib", "main"],
];

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// The top-level modules `source` uses: `crate::NAME` outside comments and
/// outside a trailing `#[cfg(test)]` module.
fn used_modules(source: &str) -> BTreeSet<String> {
    let code = match source.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &source[..tests],
        None => source,
    };
    let mut used = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (index, _) in line.match_indices("crate::") {
            let preceded_by_identifier = line[..index]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if preceded_by_identifier {
                continue; // `kumo_crate::`, not ours
            }
            let name: String = line[index + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

/// Top-level module → the top-level modules its files use.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = Path::new(first)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let source = std::fs::read_to_string(&file).unwrap();
        let used = graph.entry(module.clone()).or_default();
        used.extend(
            used_modules(&source)
                .into_iter()
                .filter(|name| *name != module),
        );
    }
    graph
}

fn level_of(module: &str) -> Option<usize> {
    LEVELS.iter().position(|level| level.contains(&module))
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let graph = module_graph();
    let mut problems = Vec::new();
    for (module, used) in &graph {
        let Some(level) = level_of(module) else {
            problems.push(format!(
                "module `{module}` has no level; add it to LEVELS (and ARCHITECTURE.md)"
            ));
            continue;
        };
        for name in used {
            match level_of(name) {
                Some(below) if below < level => {}
                Some(_) => problems.push(format!(
                    "`{module}` uses `{name}`, which is not below it; move the shared part down"
                )),
                None => problems.push(format!(
                    "`{module}` uses `crate::{name}`, which has no level"
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_two_modules_use_each_other() {
    let graph = module_graph();
    let mut cycles = Vec::new();
    for (module, used) in &graph {
        for name in used {
            if name > module && graph.get(name).is_some_and(|back| back.contains(module)) {
                cycles.push(format!("{module} <-> {name}"));
            }
        }
    }
    assert!(cycles.is_empty(), "modules using each other: {cycles:?}");
}

#[test]
fn the_scanner_sees_uses_and_ignores_comments_and_tests() {
    let source = "//! see [`crate::docs`]\nuse crate::engine::Engine;\nlet x = crate::pool::Pool::new();\nlet y = kumo_crate::nothing;\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n";
    let used: Vec<String> = used_modules(source).into_iter().collect();
    assert_eq!(used, ["engine", "pool"]);
}
