//! The deploy folder, checked offline (#35): every manifest of `deploy/kubernetes/` is valid
//! Kubernetes 1.31 (kubernetes-validate, pinned, strict: unknown fields are errors), the
//! configuration its ConfigMap carries is one this Cella accepts, and both HAProxy
//! configurations (the tests' and the manifests') pass `haproxy -c` with the pinned HAProxy.

use cella_e2e::{python_venv, repo_root};
use cella_runtime::Config;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The Kubernetes version the manifests are checked against.
const KUBERNETES: &str = "1.31.0";

fn manifests() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/kubernetes");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization.yaml");
    let listed: Vec<PathBuf> = kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|f| f.ends_with(".yaml"))
        .map(|f| dir.join(f))
        .collect();
    let mut present: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, present, "kustomization.yaml lists every manifest of the folder");
    listed
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    let python = python_venv("kubernetes");
    let validator = python.with_file_name("kubernetes-validate");
    std::process::Command::new(validator)
        .args(["--strict", "-k", KUBERNETES])
        .args(files)
        .output()
        .expect("kubernetes-validate runs")
}

#[test]
fn every_manifest_is_valid_kubernetes_and_a_broken_one_is_caught() {
    let files = manifests();
    let out = validate(&files);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for kind in [
        "statefulset/cella",
        "service/cella-nodes",
        "poddisruptionbudget/cella",
        "deployment/cella-router",
        "secret/cella-secrets",
    ] {
        assert!(text.contains(&format!("passed for resource {kind}")), "{kind}: {text}");
    }
    // The check checks: a misspelt field is refused.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let broken = dir.path().join("broken.yaml");
    let statefulset = std::fs::read_to_string(repo_root().join("deploy/kubernetes/statefulset.yaml")).expect("read");
    std::fs::write(&broken, statefulset.replace("  replicas: 3", "  replica: 3")).expect("write");
    assert!(!validate(&[broken]).status.success(), "a misspelt field fails the validation");
}

/// The `data` of the ConfigMap `name` in `file`, read with PyYAML.
fn configmap_data(file: &Path, name: &str, key: &str) -> String {
    let python = python_venv("kubernetes");
    let script = "import sys, yaml\nfor d in yaml.safe_load_all(open(sys.argv[1])):\n    if d and d['kind'] == 'ConfigMap' and d['metadata']['name'] == sys.argv[2]:\n        sys.stdout.write(d['data'][sys.argv[3]])";
    let out =
        std::process::Command::new(python).args(["-c", script]).arg(file).args([name, key]).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_configmap_holds_a_configuration_this_cella_accepts() {
    let text = configmap_data(&repo_root().join("deploy/kubernetes/configmap.yaml"), "cella-config", "cella.json");
    let hash = cella_runtime::tenancy::hash_key("a-tenant-key");
    let env = |name: &str| -> Option<String> {
        match name {
            "POD_NAME" => Some("cella-1".into()),
            "CELLA_TENANT_KEY_SHA256" | "CELLA_ADMIN_KEY_SHA256" => Some(hash.clone()),
            "CELLA_STORE_URL" => Some("s3://cella-snapshots/cluster-a".into()),
            _ => None,
        }
    };
    let expanded = cella_runtime::config::expand_with(&text, &env).expect("every variable is set by the pod");
    let config = Config::from_json(&expanded, &repo_root()).unwrap_or_else(|e| panic!("{e}: {expanded}"));
    assert!(config.server.cluster.enabled);
    assert_eq!(config.server.snapshots.node.as_deref(), Some("cella-1"), "the pod's name is its node id");
    assert_eq!(config.server.cluster.advertise.as_deref(), Some("http://cella-1.cella-nodes:18890"));
    assert_eq!(config.server.host, "0.0.0.0");
    let value: Value = serde_json::from_str(&expanded).expect("JSON");
    assert!(value["tenants"].as_object().is_some_and(|t| !t.is_empty()), "it serves tenants with keys");
}

#[test]
fn both_haproxy_configurations_pass_haproxys_own_check() {
    let root = repo_root();
    let haproxy = cella_e2e::nodes::haproxy();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let k8s = dir.path().join("haproxy.cfg");
    std::fs::write(&k8s, configmap_data(&root.join("deploy/kubernetes/router.yaml"), "cella-router", "haproxy.cfg"))
        .expect("write");
    for cfg in [root.join("deploy/router/haproxy.cfg"), k8s] {
        let out = std::process::Command::new(&haproxy)
            .args(["-c", "-f"])
            .arg(&cfg)
            .env("ROUTER_BIND", "127.0.0.1:18999")
            .env("CELLA_NODE_0", "127.0.0.1:1")
            .env("CELLA_NODE_1", "127.0.0.2:1")
            .env("CELLA_NODE_2", "127.0.0.3:1")
            .output()
            .expect("haproxy runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("Configuration file is valid"), "{}: {text}", cfg.display());
    }
}
