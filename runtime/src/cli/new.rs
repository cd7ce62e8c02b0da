//! `kumo new NAME --lang rust|python|js`: writes a function project (its
//! source, a `kumo.toml` with a route and a build command, a `.gitignore`
//! and a short README) that `kumo up --build` serves at once.
//!
//! The templates are files in `templates/`, compiled into the binary, with
//! `{{name}}`-style placeholders. The Python and JavaScript SDKs (`sdk/python`,
//! `sdk/js`) are compiled in too and written into the project, so a project
//! builds wherever it is, with no package of Kumo's own to install. A Rust
//! project depends on `kumo-sdk` by path when the Kumo checkout this binary
//! was built from is still there, and on the `wasip2` crate alone when not.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The componentize-py version the Python template and the tests use.
pub(crate) const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The componentize-js version the JavaScript template pins (as
/// `sdk/js/package.json` does).
pub(crate) const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// The preview2-shim componentize-js runs on: it imports the package but
/// declares it only as a development dependency, so projects name it.
pub(crate) const PREVIEW2_SHIM_VERSION: &str = "0.25.0";

/// A language `kumo new` writes a project in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Language {
    /// Rust, built with cargo for `wasm32-wasip2`.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

impl Language {
    /// The language's name, for people.
    fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
        }
    }
}

/// The Python SDK, as written into a project's `kumo/` folder.
const PYTHON_SDK: [(&str, &str); 6] = [
    (
        "kumo/__init__.py",
        include_str!("../../../sdk/python/kumo/__init__.py"),
    ),
    (
        "kumo/_wasi.py",
        include_str!("../../../sdk/python/kumo/_wasi.py"),
    ),
    (
        "kumo/env.py",
        include_str!("../../../sdk/python/kumo/env.py"),
    ),
    (
        "kumo/event.py",
        include_str!("../../../sdk/python/kumo/event.py"),
    ),
    (
        "kumo/http.py",
        include_str!("../../../sdk/python/kumo/http.py"),
    ),
    (
        "kumo/log.py",
        include_str!("../../../sdk/python/kumo/log.py"),
    ),
];

/// The JavaScript SDK and its types.
const JS_SDK: [(&str, &str); 2] = [
    ("kumo.js", include_str!("../../../sdk/js/kumo.js")),
    ("kumo.d.ts", include_str!("../../../sdk/js/kumo.d.ts")),
];

/// The toolchain file of the Kumo repository: Rust projects build with the
/// toolchain Kumo is tested with, and rustup adds `wasm32-wasip2` to it.
const RUST_TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// Where `kumo-sdk` was when this binary was built.
fn built_sdk_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")
}

/// The files of a new project, relative to its folder. `sdk` is the folder
/// of `kumo-sdk` for a Rust project, if there is one.
fn project_files(name: &str, language: Language, sdk: Option<&Path>) -> Vec<(String, String)> {
    let crate_name = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{componentize_py}}", COMPONENTIZE_PY_VERSION)
            .replace("{{componentize_js}}", COMPONENTIZE_JS_VERSION)
            .replace("{{preview2_shim}}", PREVIEW2_SHIM_VERSION)
    };
    let mut files: Vec<(String, String)> = Vec::new();
    match language {
        Language::Python => {
            files.push((
                "app.py".into(),
                fill(include_str!("templates/python/app.py")),
            ));
            files.push((
                "kumo.toml".into(),
                fill(include_str!("templates/python/kumo.toml")),
            ));
            files.push((
                ".gitignore".into(),
                fill(include_str!("templates/python/gitignore")),
            ));
            files.push((
                "README.md".into(),
                fill(include_str!("templates/python/README.md")),
            ));
            files.extend(
                PYTHON_SDK
                    .iter()
                    .map(|(path, text)| ((*path).to_string(), (*text).to_string())),
            );
        }
        Language::Js => {
            files.push(("app.js".into(), fill(include_str!("templates/js/app.js"))));
            files.push((
                "kumo.toml".into(),
                fill(include_str!("templates/js/kumo.toml")),
            ));
            files.push((
                "package.json".into(),
                fill(include_str!("templates/js/package.json")),
            ));
            files.push((
                ".gitignore".into(),
                fill(include_str!("templates/js/gitignore")),
            ));
            files.push((
                "README.md".into(),
                fill(include_str!("templates/js/README.md")),
            ));
            files.extend(
                JS_SDK
                    .iter()
                    .map(|(path, text)| ((*path).to_string(), (*text).to_string())),
            );
        }
        Language::Rust => {
            let (dependency, source) = match sdk {
                Some(sdk) => (
                    format!("kumo-sdk = {{ path = {:?} }}", sdk.display().to_string()),
                    fill(include_str!("templates/rust/lib.rs")),
                ),
                // No Kumo checkout: a plain wasi:http component, the
                // `plain` example.
                None => (
                    "wasip2 = \"1\"".to_string(),
                    include_str!("../../../examples/plain/src/lib.rs").to_string(),
                ),
            };
            let cargo = fill(include_str!("templates/rust/Cargo.toml"))
                .replace("{{dependency}}", &dependency);
            files.push(("Cargo.toml".into(), cargo));
            files.push(("src/lib.rs".into(), source));
            files.push(("rust-toolchain.toml".into(), RUST_TOOLCHAIN.to_string()));
            files.push((
                "kumo.toml".into(),
                fill(include_str!("templates/rust/kumo.toml")),
            ));
            files.push((
                ".gitignore".into(),
                fill(include_str!("templates/rust/gitignore")),
            ));
            files.push((
                "README.md".into(),
                fill(include_str!("templates/rust/README.md")),
            ));
        }
    }
    files
}

/// Writes the project `name` in `language` into `folder` (default
/// `./NAME`), which must not exist yet.
///
/// # Errors
///
/// An invalid name, a folder that exists, or a file that cannot be written.
pub(crate) fn new_project(
    name: &str,
    language: Language,
    folder: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    crate::model::check_function_name(name).map_err(|invalid| anyhow::anyhow!(invalid.0))?;
    let folder = folder.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if folder.exists() {
        bail!(
            "{} already exists; hint: kumo new never writes into an existing folder, choose another name or --path",
            folder.display()
        );
    }
    let sdk = built_sdk_folder();
    let sdk = sdk
        .join("Cargo.toml")
        .is_file()
        .then(|| std::fs::canonicalize(&sdk).unwrap_or(sdk));
    let files = project_files(name, language, sdk.as_deref());
    std::fs::create_dir_all(
        folder
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .with_context(|| format!("cannot create the parent folder of {}", folder.display()))?;
    // `create_dir`, not `create_dir_all`: a folder made meanwhile is refused too.
    std::fs::create_dir(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    for (path, text) in &files {
        let path = folder.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(folder)
}

/// What to do next, printed after the project is written.
pub(crate) fn next_steps(name: &str, language: Language, folder: &Path) -> String {
    let needs = match language {
        Language::Rust => {
            "the wasm32-wasip2 target (rust-toolchain.toml asks rustup for it)".to_string()
        }
        Language::Python => format!(
            "componentize-py: python3 -m pip install componentize-py=={COMPONENTIZE_PY_VERSION}"
        ),
        Language::Js => "Node.js and npm (the build installs componentize-js)".to_string(),
    };
    format!(
        "kumo: wrote {name} ({language}) in {folder}\n\
         kumo: it needs {needs}\n\
         kumo: next: cd {folder} && kumo up --build, then curl http://127.0.0.1:3000/{name}\n",
        folder = folder.display(),
        language = language.name(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_gets_a_manifest_a_source_and_its_sdk_with_the_name_filled_in() {
        // (language, sdk folder, files that must be there, text the source holds)
        let sdk = PathBuf::from("/somewhere/kumo/sdk");
        let cases: [(Language, Option<&Path>, &[&str], &str); 4] = [
            (
                Language::Python,
                None,
                &["app.py", "kumo/_wasi.py", "kumo/event.py", ".gitignore"],
                "kumo.http_handler(handle)",
            ),
            (
                Language::Js,
                None,
                &["app.js", "kumo.js", "kumo.d.ts", "package.json"],
                "export const incomingHandler = serve(async (request)",
            ),
            (
                Language::Rust,
                Some(&sdk),
                &["src/lib.rs", "Cargo.toml", "rust-toolchain.toml"],
                "kumo_sdk::http_handler!(handle)",
            ),
            (
                Language::Rust,
                None,
                &["src/lib.rs", "Cargo.toml"],
                "wasip2::http::proxy::export!",
            ),
        ];
        for (language, sdk, expected, source_holds) in cases {
            let files = project_files("my-fn", language, sdk);
            let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
            for name in expected.iter().chain(&["kumo.toml", "README.md"]) {
                assert!(names.contains(name), "{language:?}: no {name} in {names:?}");
            }
            for (name, text) in &files {
                assert!(
                    !text.contains("{{"),
                    "{language:?}: {name} keeps a placeholder"
                );
            }
            let source = files
                .iter()
                .find(|(name, _)| ["app.py", "app.js", "src/lib.rs"].contains(&name.as_str()))
                .map(|(_, text)| text.as_str())
                .unwrap();
            assert!(source.contains(source_holds), "{language:?}: {source}");
            let manifest = &files
                .iter()
                .find(|(name, _)| name == "kumo.toml")
                .unwrap()
                .1;
            assert!(manifest.contains("[function.my-fn]"), "{manifest}");
            assert!(manifest.contains("route = \"/my-fn/...\""), "{manifest}");
        }
        let rust = project_files("my-fn", Language::Rust, Some(&sdk));
        let cargo = &rust
            .iter()
            .find(|(name, _)| name == "Cargo.toml")
            .unwrap()
            .1;
        assert!(
            cargo.contains("kumo-sdk = { path = \"/somewhere/kumo/sdk\" }"),
            "{cargo}"
        );
        let manifest = &rust.iter().find(|(name, _)| name == "kumo.toml").unwrap().1;
        assert!(manifest.contains("release/my_fn.wasm"), "{manifest}");
    }

    #[test]
    fn the_js_template_pins_the_componentize_js_of_the_sdk_lock() {
        let package = include_str!("../../../sdk/js/package.json");
        assert!(
            package.contains(&format!(
                "\"@bytecodealliance/componentize-js\": \"{COMPONENTIZE_JS_VERSION}\""
            )),
            "{package}"
        );
    }

    #[test]
    fn an_existing_folder_or_a_bad_name_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let taken = parent.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("keep.txt"), "mine").unwrap();
        let error = new_project("taken", Language::Python, Some(&taken))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("already exists") && error.contains("hint"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_to_string(taken.join("keep.txt")).unwrap(),
            "mine"
        );
        assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);

        let error = new_project("Bad_Name", Language::Js, Some(&parent.path().join("x")))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("invalid function name `Bad_Name`"),
            "{error}"
        );
        assert!(!parent.path().join("x").exists());

        let folder =
            new_project("fresh", Language::Js, Some(&parent.path().join("fresh"))).unwrap();
        assert!(folder.join("kumo.js").is_file());
    }
}
