//! Rebuilds the crate when a database migration changes (`sqlx::migrate!`
//! embeds `migrations/` at compile time, and stable Rust cannot track it),
//! and embeds the WASI WIT files of the `wasmtime-wasi-http` crate Kumo
//! hosts with, for `kumo wit`: the interfaces a function may import are
//! exactly those, and no copy of them lives in this repository.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-env-changed=KUMO_WASI_WIT_DIR");
    let folder = wasi_wit_folder();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", folder.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "wit"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|path| path.ends_with("http.wit")),
        "{} holds no http.wit; hint: set KUMO_WASI_WIT_DIR to wasmtime-wasi-http's wit/deps folder",
        folder.display()
    );
    let mut code = String::from(
        "/// The WASI packages Kumo hosts: (file name, WIT text), from wasmtime-wasi-http's `wit/deps`.\n\
         pub(crate) const WASI_WIT: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a UTF-8 file name");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("wasi_wit.rs"), code).expect("OUT_DIR is writable");
}

/// `wit/deps` of the `wasmtime-wasi-http` version in `Cargo.lock`, in the
/// cargo registry's sources (or a `vendor/` folder), unless
/// `KUMO_WASI_WIT_DIR` names the folder.
fn wasi_wit_folder() -> PathBuf {
    if let Ok(folder) = std::env::var("KUMO_WASI_WIT_DIR") {
        return PathBuf::from(folder);
    }
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir.parent().expect("runtime/ has a parent");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock is readable");
    let version = locked_version(&lock, "wasmtime-wasi-http")
        .expect("Cargo.lock names wasmtime-wasi-http with a version");
    let crate_folder = format!("wasmtime-wasi-http-{version}");
    let mut candidates = vec![root.join("vendor/wasmtime-wasi-http")];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    if let Some(cargo_home) = cargo_home
        && let Ok(registries) = std::fs::read_dir(cargo_home.join("registry/src"))
    {
        candidates
            .extend(registries.filter_map(|entry| Some(entry.ok()?.path().join(&crate_folder))));
    }
    candidates
        .iter()
        .map(|candidate| candidate.join("wit/deps"))
        .find(|folder| folder.join("http.wit").is_file())
        .unwrap_or_else(|| {
            panic!(
                "cannot find the WIT files of {crate_folder} (looked in {candidates:?}); \
                 hint: set KUMO_WASI_WIT_DIR to its wit/deps folder"
            )
        })
}

/// The version of `package` in a `Cargo.lock`.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_string());
        }
    }
    None
}
