//! `--build`: run each function's `build` command in the manifest's folder,
//! with this `kumo` first on `PATH` (so a build command may call
//! `kumo wit`, as the Python and JavaScript projects do).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::manifest::Manifest;

/// Runs the distinct build commands of the manifest, in name order of the
/// first function using each, streaming their output.
///
/// # Errors
///
/// Fails, naming the functions and the command, when a command cannot be
/// started or exits unsuccessfully.
pub(crate) fn run_builds(manifest: &Manifest) -> anyhow::Result<()> {
    // Functions that share a command (one cargo workspace) build once.
    let mut commands: Vec<(&str, Vec<&str>)> = Vec::new();
    for spec in manifest.functions.values() {
        let Some(command) = spec.build.as_deref() else {
            continue;
        };
        match commands.iter_mut().find(|(c, _)| *c == command) {
            Some((_, names)) => names.push(&spec.name),
            None => commands.push((command, vec![&spec.name])),
        }
    }
    let folder = manifest.folder();
    for (step, (command, names)) in commands.iter().enumerate() {
        let names = names.join(", ");
        println!(
            "kumo: [{}/{}] building {names}: {command}",
            step + 1,
            commands.len()
        );
        let started = Instant::now();
        let mut shell = shell(command);
        if let Some(path) = path_with_this_kumo_first() {
            shell.env("PATH", path);
        }
        let status = shell
            .current_dir(folder)
            .status()
            .with_context(|| format!("cannot run the build command of {names} (`{command}`)"))?;
        if !status.success() {
            let how = match status.code() {
                Some(code) => format!("exited with code {code}"),
                None => "was killed by a signal".to_string(),
            };
            let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
            bail!(
                "the build of {names} failed: `{command}` {how}; hint: run it in {} to see the whole error",
                folder.display()
            );
        }
        println!(
            "kumo: [{}/{}] built {names} in {:.1}s",
            step + 1,
            commands.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `PATH` with the folder of the running `kumo` in front, so the `kumo` a
/// build command calls is this one (also under `cargo run`).
fn path_with_this_kumo_first() -> Option<std::ffi::OsString> {
    let exe = std::env::current_exe().ok()?;
    let folder = exe.parent()?.to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(folder).chain(std::env::split_paths(&rest))).ok()
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(command);
    shell
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut shell = Command::new("cmd");
    shell.arg("/C").arg(command);
    shell
}
