//! `deploy/`: the Kubernetes manifests and the container recipe stay
//! consistent with Kumo's flags and with each other. The YAML is read with
//! PyYAML (as `kubectl` would read it) and checked here: every flag and
//! `KUMO_*` variable the manifests and the recipe set is one `kumo server
//! --help` lists, every secret key a node reads is in the Secret, and the
//! Services, the HPA and the volume claim name what exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{ensure_python_package, repo_root};

/// Every YAML document of every file in `deploy/kubernetes`, as JSON.
fn documents() -> Vec<Value> {
    ensure_python_package("import yaml", "PyYAML>=6");
    let folder = repo_root().join("deploy/kubernetes");
    let output = Command::new("python3")
        .args([
            "-c",
            "import glob, json, sys, yaml\n\
             docs = []\n\
             for name in sorted(glob.glob(sys.argv[1] + '/*.yaml')):\n\
             \x20   docs.extend(d for d in yaml.safe_load_all(open(name)) if d)\n\
             print(json.dumps(docs))",
        ])
        .arg(&folder)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn server_help() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["server", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// `--flag` of `--flag=value` or `--flag`.
fn flag_name(argument: &str) -> &str {
    argument.split('=').next().unwrap()
}

#[test]
fn the_kubernetes_manifests_use_flags_kumo_has_and_name_what_exists() {
    let documents = documents();
    let help = server_help();
    let deployments = of_kind(&documents, "Deployment");
    assert_eq!(deployments.len(), 1);
    let deployment = deployments[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    for argument in container["args"].as_array().unwrap() {
        let flag = flag_name(argument.as_str().unwrap());
        assert!(
            flag.starts_with("--") && help.contains(&format!("{flag} ")),
            "{flag} is not a flag of kumo server"
        );
    }
    let secret = of_kind(&documents, "Secret")[0];
    let secret_name = secret["metadata"]["name"].as_str().unwrap();
    for variable in container["env"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        assert!(
            help.contains(&format!("[env: {name}")),
            "kumo server reads no {name}"
        );
        if let Some(reference) = variable["valueFrom"].get("secretKeyRef") {
            assert_eq!(reference["name"], secret_name, "{name}");
            let key = reference["key"].as_str().unwrap();
            assert!(
                secret["stringData"].get(key).is_some(),
                "{name} reads `{key}`, which the Secret lacks"
            );
        }
    }
    // The database URL and the admin token come from the Secret.
    let from_secret: BTreeSet<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|variable| variable["valueFrom"].get("secretKeyRef").is_some())
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    for needed in ["KUMO_DATABASE_URL", "KUMO_ADMIN_TOKEN"] {
        assert!(
            from_secret.contains(needed),
            "{needed} is not read from the Secret"
        );
    }

    let ports: BTreeSet<&str> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|port| port["name"].as_str().unwrap())
        .collect();
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for service in of_kind(&documents, "Service") {
        for (key, value) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &labels[key], value,
                "the selector of {}",
                service["metadata"]["name"]
            );
        }
        for port in service["spec"]["ports"].as_array().unwrap() {
            let target = port["targetPort"].as_str().unwrap();
            assert!(ports.contains(target), "no container port `{target}`");
        }
    }
    let hpa = of_kind(&documents, "HorizontalPodAutoscaler")[0];
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let claims: BTreeSet<&str> = of_kind(&documents, "PersistentVolumeClaim")
        .iter()
        .map(|claim| claim["metadata"]["name"].as_str().unwrap())
        .collect();
    for volume in pod["volumes"].as_array().unwrap() {
        if let Some(claim) = volume.get("persistentVolumeClaim") {
            let name = claim["claimName"].as_str().unwrap();
            assert!(claims.contains(name), "no volume claim `{name}`");
        }
    }
}

#[test]
fn the_container_recipe_sets_only_variables_kumo_reads() {
    let help = server_help();
    let recipe = std::fs::read_to_string(repo_root().join("deploy/Containerfile")).unwrap();
    let variables: Vec<&str> = recipe
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|word| word.split_once('=').map(|(name, _)| name))
        .filter(|name| name.starts_with("KUMO_"))
        .collect();
    assert!(variables.contains(&"KUMO_STORAGE_DIR"), "{variables:?}");
    for name in variables {
        assert!(
            help.contains(&format!("[env: {name}")),
            "kumo server reads no {name}"
        );
    }
    assert!(recipe.contains(r#"ENTRYPOINT ["kumo", "server"]"#));
    assert!(Path::new(&repo_root().join("deploy/kubernetes")).is_dir());
}
