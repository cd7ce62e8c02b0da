//! `kumo up` refuses bad manifests and bad components with a message that
//! names the file, the line or function, and gives a hint; it never panics.

use crate::harness::{example, toml_path, up_expecting_failure};

fn assert_refused(manifest: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let exited = up_expecting_failure(dir.path(), manifest);
    assert!(!exited.status.success(), "{exited:#?}");
    assert!(
        !exited.stderr.contains("panicked"),
        "kumo panicked on bad input:\n{}",
        exited.stderr
    );
    for word in expected {
        assert!(
            exited.stderr.contains(word),
            "expected {word:?} in kumo's error:\n{}",
            exited.stderr
        );
    }
}

#[test]
fn manifest_mistakes_name_the_file_line_and_key() {
    let hello = toml_path(&example("hello"));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("[function.hello]\nsource = {hello}\nmemroy_mb = 64\n"),
            vec!["kumo.toml:3:1", "unknown field `memroy_mb`", "hint:"],
        ),
        (
            format!("[function.hello]\nsource = {hello}\ntimeout_ms = \"fast\"\n"),
            vec!["kumo.toml:3:", "invalid type", "hint:"],
        ),
        (
            "[function.hello]\nmemory_mb = 64\n".to_string(),
            vec!["kumo.toml:1:", "missing field `source`", "hint:"],
        ),
        (
            format!(
                "[function.hello]\nsource = {hello}\n\
                 [[trigger.http]]\nroute = \"/a\"\nfunction = \"hello\"\n\
                 [[trigger.http]]\nroute = \"/a\"\nfunction = \"hello\"\n"
            ),
            vec![
                "kumo.toml:7:",
                "route `/a` is already used by the trigger on line 4",
                "hint:",
            ],
        ),
        (
            format!(
                "[function.hello]\nsource = {hello}\n\
                 [[trigger.http]]\nroute = \"/a\"\nfunction = \"helo\"\n"
            ),
            vec![
                "kumo.toml:5:",
                "unknown function `helo`",
                "hint: the functions in this manifest are: hello",
            ],
        ),
        (
            format!(
                "[function.hello]\nsource = {hello}\n\
                 [trigger.http]\nroute = \"/a\"\nfunction = \"hello\"\n"
            ),
            vec![
                "kumo.toml:3:",
                "`[trigger.http]` is a single table, but triggers are a list",
                "hint: write [[trigger.http]] (double brackets): each route is one entry of a list",
            ],
        ),
        (
            format!(
                "[function.hello]\nsource = {hello}\n\
                 [[trigger.http]]\nroute = \"/a\"\nfunction = \"helo:live\"\n"
            ),
            vec![
                "kumo.toml:5:",
                "unknown function `helo` (in `helo:live`)",
                "hint: the functions in this manifest are: hello",
            ],
        ),
    ];
    for (manifest, expected) in cases {
        assert_refused(&manifest, &expected);
    }
}

#[test]
fn a_missing_manifest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["up", "-f"])
        .arg(dir.path().join("nope.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nope.toml") && stderr.contains("cannot read the manifest"),
        "{stderr}"
    );
}

#[test]
fn bad_components_are_refused_naming_the_function_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (dir.path().join("missing.wasm"), "cannot read source"),
        (
            write("text.wasm", b"this is not wasm at all"),
            "is not a WebAssembly file",
        ),
        (
            write("core.wasm", b"\0asm\x01\0\0\0"),
            "is a core WebAssembly module, not a component",
        ),
        // An empty component: valid, but exports nothing.
        (
            write("empty.wasm", b"\0asm\x0d\0\x01\0"),
            "does not export `wasi:http/incoming-handler`",
        ),
        (
            write("garbage.wasm", b"\0asm\x0d\0\x01\0\xff\xff\xff\xff"),
            "is not a valid component",
        ),
    ];
    for (path, expected) in cases {
        let manifest = format!(
            "[function.broken]\nsource = {}\n[[trigger.http]]\nroute = \"/b\"\nfunction = \"broken\"\n",
            toml_path(&path)
        );
        let file_name = path.file_name().unwrap().to_str().unwrap();
        assert_refused(
            &manifest,
            &["function `broken`", file_name, expected, "hint:"],
        );
    }
}
