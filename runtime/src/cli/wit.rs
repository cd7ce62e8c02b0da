//! `kumo wit DIR`: writes the WIT of the world Kumo hosts, for toolchains
//! that build a component from WIT (componentize-py, componentize-js).
//!
//! The WASI packages are those of the `wasmtime-wasi-http` crate Kumo is
//! built with (embedded by `build.rs`), so they are exactly what Kumo's
//! linker serves. `DIR/world.wit` holds the world `kumo:function/function`:
//! the `wasi:http/proxy` world, plus the environment and filesystem
//! interfaces a function reads its variables and `files` mounts with.
//! `--wasi-version` writes the packages under an older 0.2 version, for a
//! toolchain whose engine is built against one (componentize-js's
//! StarlingMonkey exports `wasi:http/incoming-handler@0.2.10`); Kumo
//! serves every 0.2 version up to its own.

use std::path::Path;

use anyhow::{Context, bail};

include!(concat!(env!("OUT_DIR"), "/wasi_wit.rs"));

/// The world Kumo functions are built against, at a WASI version.
fn world_wit(version: &str) -> String {
    format!(
        "// Written by `kumo wit`: the world a Kumo function is built against.\n\
         package kumo:function;\n\
         \n\
         world function {{\n\
         \x20 include wasi:http/proxy@{version};\n\
         \x20 import wasi:cli/environment@{version};\n\
         \x20 import wasi:filesystem/types@{version};\n\
         \x20 import wasi:filesystem/preopens@{version};\n\
         }}\n"
    )
}

/// The WASI version of the embedded packages (`package wasi:http@X;`).
pub(crate) fn hosted_wasi_version() -> &'static str {
    WASI_WIT
        .iter()
        .find_map(|(_, text)| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix("package wasi:http@"))
        })
        .map(|rest| rest.trim_end_matches(';'))
        .expect("the embedded WIT declares wasi:http")
}

/// `0.2.N` as N, or `None` for another shape.
fn patch_of_0_2(version: &str) -> Option<u32> {
    version.strip_prefix("0.2.")?.parse().ok()
}

/// One WIT file moved from the hosted version to `target` (an older
/// 0.2 version): package and reference versions rewritten, and items
/// stabilised after `target` (`@since(version = 0.2.N)`, N above the
/// target's) gated as unstable, as they were in that release.
fn rewrite_for_version(text: &str, hosted: &str, target: &str) -> String {
    let Some(target_patch) = patch_of_0_2(target) else {
        return text.to_string();
    };
    let mut rewritten = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let newer = trimmed
            .strip_prefix("@since(version = ")
            .and_then(|rest| rest.split(')').next())
            .and_then(patch_of_0_2)
            .is_some_and(|patch| patch > target_patch);
        if newer {
            let indent = &line[..line.len() - trimmed.len()];
            let ending = if line.ends_with('\n') { "\n" } else { "" };
            rewritten.push_str(&format!(
                "{indent}@unstable(feature = kumo-newer-than-{}){ending}",
                target.replace('.', "-")
            ));
        } else {
            rewritten.push_str(&line.replace(&format!("@{hosted}"), &format!("@{target}")));
        }
    }
    rewritten
}

/// Writes the world and its WASI packages into `folder` (`world.wit`,
/// `deps/*.wit`). A file whose content is already right is not written,
/// so a build that runs `kumo wit` does not wake `kumo dev`'s watcher.
///
/// # Errors
///
/// A version Kumo cannot serve, or a file that cannot be written.
pub(crate) fn write_wit(folder: &Path, wasi_version: Option<&str>) -> anyhow::Result<Vec<String>> {
    let hosted = hosted_wasi_version();
    let version = wasi_version.unwrap_or(hosted);
    let (Some(wanted), Some(highest)) = (patch_of_0_2(version), patch_of_0_2(hosted)) else {
        bail!(
            "unknown WASI version `{version}`; hint: Kumo serves 0.2.0 to {hosted}, write it like 0.2.10"
        );
    };
    if wanted > highest {
        bail!(
            "Kumo serves WASI 0.2.0 to {hosted}, not {version}; hint: leave out --wasi-version to get {hosted}"
        );
    }
    let mut files = vec![("world.wit".to_string(), world_wit(version))];
    for (name, text) in WASI_WIT {
        files.push((
            format!("deps/{name}"),
            rewrite_for_version(text, hosted, version),
        ));
    }
    std::fs::create_dir_all(folder.join("deps"))
        .with_context(|| format!("cannot create {}", folder.join("deps").display()))?;
    let mut written = Vec::new();
    for (name, text) in files {
        let path = folder.join(&name);
        if std::fs::read_to_string(&path).is_ok_and(|existing| existing == text) {
            continue;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(name);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_packages_are_wasi_0_2_with_http() {
        let version = hosted_wasi_version();
        assert!(patch_of_0_2(version).is_some(), "{version}");
        for package in [
            "cli",
            "clocks",
            "filesystem",
            "http",
            "io",
            "random",
            "sockets",
        ] {
            assert!(
                WASI_WIT
                    .iter()
                    .any(|(_, text)| text.contains(&format!("package wasi:{package}@{version};"))),
                "wasi:{package} is missing"
            );
        }
    }

    #[test]
    fn an_older_version_renames_references_and_gates_newer_items() {
        let text = "package wasi:cli@0.2.12;\n\
                    interface exit {\n\
                    \x20 use wasi:io/streams@0.2.12.{output-stream};\n\
                    \x20 @since(version = 0.2.0)\n\
                    \x20 exit: func();\n\
                    \x20 @since(version = 0.2.12)\n\
                    \x20 exit-with-code: func(status-code: u8);\n\
                    }\n";
        let cases = [
            ("0.2.12", text.to_string()),
            (
                "0.2.10",
                text.replace("@0.2.12", "@0.2.10").replace(
                    "@since(version = 0.2.12)",
                    "@unstable(feature = kumo-newer-than-0-2-10)",
                ),
            ),
            (
                "0.2.0",
                text.replace("@0.2.12", "@0.2.0").replace(
                    "@since(version = 0.2.12)",
                    "@unstable(feature = kumo-newer-than-0-2-0)",
                ),
            ),
        ];
        for (target, expected) in cases {
            assert_eq!(
                rewrite_for_version(text, "0.2.12", target),
                expected,
                "{target}"
            );
        }
    }

    #[test]
    fn writing_twice_writes_nothing_the_second_time_and_bad_versions_are_refused() {
        let folder = tempfile::tempdir().unwrap();
        let first = write_wit(folder.path(), Some("0.2.10")).unwrap();
        assert!(first.contains(&"world.wit".to_string()), "{first:?}");
        assert!(first.contains(&"deps/http.wit".to_string()), "{first:?}");
        let world = std::fs::read_to_string(folder.path().join("world.wit")).unwrap();
        assert!(world.contains("include wasi:http/proxy@0.2.10;"), "{world}");
        assert_eq!(
            write_wit(folder.path(), Some("0.2.10")).unwrap(),
            Vec::<String>::new()
        );
        let hosted = hosted_wasi_version();
        assert!(!write_wit(folder.path(), None).unwrap().is_empty());
        for bad in ["0.3.0", "1.0", "0.2.999", "latest"] {
            let error = write_wit(folder.path(), Some(bad)).unwrap_err().to_string();
            assert!(error.contains(bad) && error.contains(hosted), "{error}");
        }
    }
}
