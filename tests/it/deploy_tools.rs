//! deploy/ through the tools an operator runs on it (issue 16): `kubectl kustomize` renders the example with the
//! image pinned by digest, every object it renders validates against its schema (Kubernetes' own for the built-in
//! kinds, the Prometheus Operator's for ServiceMonitor and PrometheusRule), and `promtool check rules` accepts the
//! alerts. Each validator is also shown a broken copy, so that a validator that accepts anything cannot pass.
//!
//! The tools come from `scripts/k8s-tools.sh` (which `.ci/run` runs). Without one, a test says so and skips, except
//! under CI (`CI` set), where a missing tool fails it: CI must validate.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first candidate that answers `version` (its arguments for printing its version), else `None` after saying
/// why (or a panic under CI).
fn tool(name: &str, candidates: &[PathBuf], version: &[&str]) -> Option<PathBuf> {
    for candidate in candidates {
        let runs = Command::new(candidate)
            .args(version)
            .output()
            .is_ok_and(|o| o.status.success());
        if runs {
            return Some(candidate.clone());
        }
    }
    let why = format!("{name} is not installed: run scripts/k8s-tools.sh (.ci/run does)");
    assert!(std::env::var_os("CI").is_none(), "CI must have it: {why}");
    eprintln!("skipped: {why}");
    None
}

fn kubectl() -> Option<PathBuf> {
    tool("kubectl", &["kubectl".into()], &["version", "--client"])
}

fn kubernetes_validate() -> Option<PathBuf> {
    tool(
        "kubernetes-validate",
        &[
            repo().join("target/k8s-tools/venv/bin/kubernetes-validate"),
            "kubernetes-validate".into(),
        ],
        &["--version"],
    )
}

/// node, with deploy/validate's packages installed.
fn crd_validator() -> Option<PathBuf> {
    let installed = repo()
        .join("deploy/validate/node_modules/@kubernetes-models/prometheus-operator")
        .is_dir();
    let node = tool("node", &["node".into()], &["--version"])?;
    if !installed {
        let why = "deploy/validate's npm packages are not installed: run scripts/k8s-tools.sh (.ci/run does)";
        assert!(std::env::var_os("CI").is_none(), "CI must have them: {why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(node)
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubectl kustomize deploy/kubernetes`, as objects.
fn rendered(kubectl: &Path) -> Vec<Value> {
    let out = Command::new(kubectl)
        .args(["kustomize", "deploy/kubernetes"])
        .current_dir(repo())
        .output()
        .expect("run kubectl kustomize");
    assert!(out.status.success(), "kubectl kustomize: {}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml = serde_yaml_ng::Value::deserialize(doc).expect("kustomize output is YAML");
            serde_json::to_value(yaml).expect("YAML as JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(rel)).expect("read manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml = serde_yaml_ng::Value::deserialize(doc).expect("YAML");
            serde_json::to_value(yaml).expect("YAML as JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

fn is_prometheus_operator(v: &Value) -> bool {
    v["apiVersion"]
        .as_str()
        .is_some_and(|a| a.starts_with("monitoring.coreos.com/"))
}

fn name_of(v: &Value) -> String {
    format!(
        "{}/{}",
        v["kind"].as_str().unwrap_or("?"),
        v["metadata"]["name"].as_str().unwrap_or("?")
    )
}

#[test]
fn kustomize_renders_every_manifest_with_the_image_by_digest() {
    let Some(kubectl) = kubectl() else { return };
    let objects = rendered(&kubectl);
    let kinds: Vec<String> = objects.iter().map(name_of).collect();
    for expected in [
        "Namespace/rostersync",
        "ConfigMap/rostersync-config",
        "Deployment/rostersync",
        "Service/rostersync",
        "PodDisruptionBudget/rostersync",
        "NetworkPolicy/rostersync",
        "ServiceMonitor/rostersync",
        "PrometheusRule/rostersync",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} not in {kinds:?}"
        );
    }
    assert!(
        !kinds.iter().any(|k| k.starts_with("Secret/")),
        "the placeholder Secret is never applied"
    );
    for object in &objects {
        if object["kind"] != "Namespace" {
            assert_eq!(
                object["metadata"]["namespace"],
                "rostersync",
                "{}",
                name_of(object)
            );
        }
    }
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the Deployment");
    for container in deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        let image = container["image"].as_str().expect("image");
        let (_, digest) = image.split_once("@sha256:").unwrap_or_else(|| {
            panic!("not pinned by digest: {image} (does images: name match deployment.yaml?)")
        });
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{image}"
        );
        assert!(!image.contains(":0.1.0"), "the tag is replaced: {image}");
    }
}

#[test]
fn every_kubernetes_object_validates_against_the_kubernetes_schemas_strictly() {
    let (Some(kubectl), Some(validate)) = (kubectl(), kubernetes_validate()) else {
        return;
    };
    let mut objects: Vec<Value> = rendered(&kubectl)
        .into_iter()
        .filter(|o| !is_prometheus_operator(o))
        .collect();
    objects.extend(yaml_file("deploy/kubernetes/secret.yaml"));
    assert!(objects.len() >= 7, "{}", objects.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let file = dir.path().join(format!("{i}.json"));
        std::fs::write(&file, object.to_string()).expect("write object");
        files.push(file);
    }
    let out = Command::new(&validate)
        .arg("--strict")
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let report = said(&out);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "kubernetes-validate --strict:\n{report}"
    );
    for object in &objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            report.contains(&format!("passed for resource {kind}/{name}")),
            "{kind}/{name} was not validated:\n{report}"
        );
    }
    assert!(!report.contains("Couldn't find schema"), "{report}");

    // The validator rejects what the API server would: a wrong type, and (strict) a field the kind lacks.
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the Deployment");
    let mut wrong_type = deployment.clone();
    wrong_type["spec"]["replicas"] = Value::from("two");
    let mut unknown_field = deployment.clone();
    unknown_field["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] =
        Value::from("Always");
    for (what, broken) in [
        ("replicas: \"two\"", wrong_type),
        ("imagePullPolicyy", unknown_field),
    ] {
        let file = dir.path().join("broken.json");
        std::fs::write(&file, broken.to_string()).expect("write");
        let out = Command::new(&validate)
            .arg("--strict")
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        assert!(!out.status.success(), "{what} was accepted: {}", said(&out));
    }
}

/// Runs deploy/validate/validate-crds.mjs on `objects`; (success, what it said).
fn validate_crds(node: &Path, objects: &[Value]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("objects.json");
    std::fs::write(&file, Value::from(objects.to_vec()).to_string()).expect("write objects");
    let out = Command::new(node)
        .arg(repo().join("deploy/validate/validate-crds.mjs"))
        .arg(&file)
        .output()
        .expect("run validate-crds.mjs");
    (out.status.success(), said(&out))
}

#[test]
fn the_prometheus_operator_objects_validate_against_their_crd_schemas() {
    let (Some(kubectl), Some(node)) = (kubectl(), crd_validator()) else {
        return;
    };
    let objects: Vec<Value> = rendered(&kubectl)
        .into_iter()
        .filter(is_prometheus_operator)
        .collect();
    let kinds: Vec<String> = objects.iter().map(name_of).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let (ok, report) = validate_crds(&node, &objects);
    eprintln!("{report}");
    assert!(ok, "{report}");
    for kind in &kinds {
        assert!(
            report.contains(&format!("PASS {kind} ")),
            "{kind}:\n{report}"
        );
    }

    // A broken copy of each fails: a bad duration, a missing required field, a misspelt field.
    let rule = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("PrometheusRule");
    let monitor = objects
        .iter()
        .find(|o| o["kind"] == "ServiceMonitor")
        .expect("ServiceMonitor");
    let mut bad_duration = rule.clone();
    bad_duration["spec"]["groups"][0]["rules"][0]["for"] = Value::from("15 minutes");
    let mut no_expr = rule.clone();
    if let Some(r) = no_expr["spec"]["groups"][0]["rules"][0].as_object_mut() {
        r.remove("expr");
    }
    let mut misspelt = monitor.clone();
    misspelt["spec"]["endpoints"][0]["intervall"] = Value::from("30s");
    for (what, broken) in [
        ("for: 15 minutes", bad_duration),
        ("a rule without expr", no_expr),
        ("endpoints[0].intervall", misspelt),
    ] {
        let (ok, report) = validate_crds(&node, &[broken]);
        assert!(
            !ok && report.contains("FAIL"),
            "{what} was accepted:\n{report}"
        );
    }
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let Some(promtool) = tool("promtool", &["promtool".into()], &["--version"]) else {
        return;
    };
    let rule = yaml_file("deploy/kubernetes/prometheusrule.yaml")
        .into_iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("PrometheusRule");
    // What the Prometheus Operator hands Prometheus: the spec's groups, as a rules file.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rostersync.rules.yml");
    std::fs::write(
        &file,
        serde_yaml_ng::to_string(&rule["spec"]).expect("rules as YAML"),
    )
    .expect("write rules");
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    let report = said(&out);
    eprintln!("{report}");
    assert!(out.status.success(), "promtool check rules:\n{report}");
    let alerts = rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum::<usize>();
    assert!(
        report.contains(&format!("SUCCESS: {alerts} rules found")),
        "{report}"
    );
}
