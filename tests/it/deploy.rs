//! The deployment files (`deploy/`, `Dockerfile`) checked against the code they deploy: the ConfigMap is a config
//! the daemon accepts, probes and scrapes hit the port it listens on, the token file is where the config says and
//! can rotate, commands exist, and every metric an alert or a dashboard panel names is one the daemon exports.
//! These tests read files and call pure functions only: no database, no network, no Docker, no cluster (one runs
//! `cargo metadata --offline` on the Docker build context, which reads the local registry cache only).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use rostersync::cli::{Cli, Command};
use rostersync::config::{Settings, TokenSource};
use rostersync::metrics::{Metrics, OutcomeLabels, ReasonLabels, RunLabels};
use serde::Deserialize;
use serde_yaml_ng::Value;

const K8S: &str = "deploy/kubernetes";
const SYSTEMD_UNIT: &str = "deploy/systemd/rostersync.service";
const DASHBOARD: &str = "deploy/grafana/rostersync-dashboard.json";

/// Labels Prometheus (or the Prometheus Operator) adds to every scraped series; the daemon never exports them.
const TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "namespace",
    "pod",
    "service",
    "endpoint",
    "container",
];

// -----------------------------------------------------------------------------------------------------------------
// Reading the files
// -----------------------------------------------------------------------------------------------------------------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Every non-empty YAML document in a file (`---`-separated documents included).
fn yaml_documents(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of `kind` in a manifest file.
fn manifest(file: &str, kind: &str) -> Value {
    let rel = format!("{K8S}/{file}");
    let mut found: Vec<Value> = yaml_documents(&rel)
        .into_iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "{rel} should hold exactly one {kind}");
    found.remove(0)
}

fn text<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, got {v:?}"))
}

fn items<'a>(v: &'a Value, what: &str) -> &'a [Value] {
    v.as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{what} should be a list, got {v:?}"))
}

fn yaml_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join(K8S))
        .expect("deploy/kubernetes exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    files.sort();
    files
}

fn deployment() -> Value {
    manifest("deployment.yaml", "Deployment")
}

fn container(deployment: &Value) -> &Value {
    let containers = items(
        &deployment["spec"]["template"]["spec"]["containers"],
        "containers",
    );
    containers
        .iter()
        .find(|c| c["name"].as_str() == Some("rostersync"))
        .expect("a container named rostersync")
}

/// The pod volume a container mount refers to.
fn mounted_volume<'a>(deployment: &'a Value, mount: &Value) -> Option<&'a Value> {
    items(
        &deployment["spec"]["template"]["spec"]["volumes"],
        "volumes",
    )
    .iter()
    .find(|v| v["name"] == mount["name"])
}

fn secret() -> Value {
    manifest("secret.yaml", "Secret")
}

fn configmap_toml() -> String {
    let cm = manifest("configmap.yaml", "ConfigMap");
    text(
        &cm["data"]["rostersync.toml"],
        "ConfigMap data rostersync.toml",
    )
    .to_owned()
}

/// The container's environment as the pod sees it, with `secretKeyRef`s resolved from the example Secret.
fn container_env(container: &Value, secret: &Value) -> HashMap<String, String> {
    let mut env = HashMap::new();
    let Some(vars) = container["env"].as_sequence() else {
        return env;
    };
    for var in vars {
        let name = text(&var["name"], "env name").to_owned();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_owned()
        } else {
            let key_ref = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(
                key_ref["name"].as_str(),
                secret["metadata"]["name"].as_str(),
                "env {name} must come from the rostersync Secret"
            );
            let key = text(&key_ref["key"], "secretKeyRef key");
            text(
                &secret["stringData"][key],
                &format!("Secret key `{key}` used by env {name}"),
            )
            .to_owned()
        };
        env.insert(name, value);
    }
    env
}

/// The Secret volumes of the Deployment as the kubelet mounts them, under a temporary root: every projected key a
/// file at `root/<mountPath>/<path>`. The daemon checks `canvas.token_file` at load, so the pod's config can only
/// be loaded where the token file exists.
struct PodFilesystem {
    root: tempfile::TempDir,
}

impl PodFilesystem {
    fn mount_secrets(deployment: &Value, secret: &Value) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for mount in items(&container(deployment)["volumeMounts"], "volumeMounts") {
            let Some(volume) = mounted_volume(deployment, mount) else {
                continue;
            };
            let source = &volume["secret"];
            if source["secretName"].as_str() != secret["metadata"]["name"].as_str() {
                continue;
            }
            let dir = root
                .path()
                .join(text(&mount["mountPath"], "mountPath").trim_start_matches('/'));
            std::fs::create_dir_all(&dir).expect("mount dir");
            let data = secret["stringData"]
                .as_mapping()
                .expect("Secret stringData");
            let projected: Vec<(String, String)> = match source["items"].as_sequence() {
                Some(list) => list
                    .iter()
                    .map(|i| {
                        (
                            text(&i["key"], "item key").to_owned(),
                            text(&i["path"], "item path").to_owned(),
                        )
                    })
                    .collect(),
                None => data
                    .keys()
                    .map(|k| {
                        (
                            text(k, "Secret key").to_owned(),
                            text(k, "Secret key").to_owned(),
                        )
                    })
                    .collect(),
            };
            for (key, path) in projected {
                let value = text(&secret["stringData"][key.as_str()], "Secret value");
                std::fs::write(dir.join(path), value).expect("write Secret file");
            }
        }
        Self { root }
    }

    /// The ConfigMap's TOML with `canvas.token_file` moved under the root, as this test sees the pod's file.
    fn rooted_toml(&self, toml: &str) -> String {
        toml.lines()
            .map(|line| match line.trim_start().strip_prefix("token_file") {
                Some(rest) => {
                    let pod_path = rest.trim_start_matches([' ', '=']).trim_matches('"');
                    format!("token_file = \"{}\"", self.host_path(pod_path))
                }
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The pod's absolute path as seen from this test.
    fn host_path(&self, pod_path: &str) -> String {
        self.root
            .path()
            .join(pod_path.trim_start_matches('/'))
            .display()
            .to_string()
    }

    /// The path the pod sees for a path under the root.
    fn pod_path(&self, host_path: &Path) -> PathBuf {
        host_path
            .strip_prefix(self.root.path())
            .map_or_else(|_| host_path.to_owned(), |rel| Path::new("/").join(rel))
    }
}

/// What the daemon in the pod loads: the ConfigMap's file plus the container's environment, with the Secret
/// volumes mounted. `canvas.token_file` is reported as the pod sees it.
fn pod_settings() -> Settings {
    let deployment = deployment();
    let secret = secret();
    let pod = PodFilesystem::mount_secrets(&deployment, &secret);
    let toml = pod.rooted_toml(&configmap_toml());
    let path = pod.root.path().join("rostersync.toml");
    std::fs::write(&path, toml).expect("write config");
    let env = container_env(container(&deployment), &secret);
    let mut settings = Settings::load_with_env(Some(&path), Some(env)).unwrap_or_else(|e| {
        panic!("the daemon would refuse the ConfigMap + Deployment env + Secret: {e}")
    });
    if let TokenSource::File(host) = &settings.canvas.token {
        settings.canvas.token = TokenSource::File(pod.pod_path(host));
    }
    settings
}

fn listen_port() -> u16 {
    pod_settings().server.listen.port()
}

fn token_file() -> PathBuf {
    match pod_settings().canvas.token {
        TokenSource::File(path) => path,
        TokenSource::Inline(_) => panic!("the pod must read the Canvas token from a file"),
    }
}

/// A probe, port or targetPort that names the container port `metrics` or gives its number.
fn is_metrics_port(port: &Value, number: u16) -> bool {
    port.as_str() == Some("metrics") || port.as_u64() == Some(u64::from(number))
}

fn parse_cli(args: &[&str]) -> Cli {
    let argv = std::iter::once("rostersync").chain(args.iter().copied());
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("`rostersync {}`: {e}", args.join(" ")))
}

// -----------------------------------------------------------------------------------------------------------------
// Kubernetes
// -----------------------------------------------------------------------------------------------------------------

#[test]
fn every_kubernetes_yaml_document_parses_with_kind_name_and_namespace() {
    let files = yaml_files();
    assert!(files.len() >= 8, "expected the manifests, found {files:?}");
    for file in files {
        let rel = format!("{K8S}/{file}");
        let docs = yaml_documents(&rel);
        assert!(!docs.is_empty(), "{rel} holds no YAML document");
        for doc in docs {
            let kind = text(&doc["kind"], &format!("{rel}: kind"));
            assert!(
                doc["apiVersion"].as_str().is_some(),
                "{rel}: {kind} has no apiVersion"
            );
            if kind == "Kustomization" {
                continue;
            }
            let name = text(&doc["metadata"]["name"], &format!("{rel}: metadata.name"));
            if kind != "Namespace" {
                assert_eq!(
                    doc["metadata"]["namespace"].as_str(),
                    Some("rostersync"),
                    "{rel}: {kind} {name} should be in namespace rostersync"
                );
            }
        }
    }
}

#[test]
fn kustomization_lists_every_manifest_but_the_placeholder_secret() {
    let kustomization = manifest("kustomization.yaml", "Kustomization");
    let listed: BTreeSet<String> = items(&kustomization["resources"], "resources")
        .iter()
        .map(|r| text(r, "resource").to_owned())
        .collect();
    let expected: BTreeSet<String> = yaml_files()
        .into_iter()
        .filter(|f| f != "kustomization.yaml" && f != "secret.yaml")
        .collect();
    assert_eq!(listed, expected);
    // Applying placeholder credentials would overwrite the real Secret on every `kubectl apply -k`.
    assert!(!listed.contains("secret.yaml"));
}

#[test]
fn configmap_toml_is_accepted_with_the_secrets_the_deployment_injects() {
    let settings = pod_settings();
    assert_eq!(
        settings.database.url.expose(),
        text(&secret()["stringData"]["database-url"], "database-url"),
        "database.url should come from ROSTERSYNC__DATABASE__URL"
    );
    assert_eq!(
        token_file(),
        Path::new("/var/run/secrets/rostersync/canvas-token")
    );
    let deployment = deployment();
    let env = container_env(container(&deployment), &secret());
    assert!(
        !env.contains_key("ROSTERSYNC__CANVAS__TOKEN"),
        "the token must not be inline in the environment: it could not rotate"
    );
}

/// The ConfigMap is the reference of every key: the values it shows must be the daemon's defaults. Compared
/// through `Settings`' Debug form (secrets redacted) against a config that sets only the required keys.
#[test]
fn configmap_values_are_the_code_defaults() {
    let toml = configmap_toml();
    let db_url = "postgres://rostersync:pw@db.example:5432/rostersync";
    assert!(
        !toml.lines().any(|l| l.trim_start().starts_with("url")),
        "database.url / sis.url must not be in the ConfigMap: they come from the Secret"
    );
    let pod = PodFilesystem::mount_secrets(&deployment(), &secret());
    let with_url = pod.rooted_toml(&toml).replacen(
        "[database]",
        &format!("[database]\nurl = \"{db_url}\""),
        1,
    );
    let shown = Settings::from_toml_str(&with_url)
        .unwrap_or_else(|e| panic!("the ConfigMap's TOML is refused: {e}"));
    let TokenSource::File(token_file) = &shown.canvas.token else {
        panic!("canvas.token_file expected");
    };
    let minimal = format!(
        "[canvas]\nbase_url = \"{}\"\ntoken_file = \"{}\"\n[database]\nurl = \"{db_url}\"\n",
        shown.canvas.base_url,
        token_file.display()
    );
    let defaults = Settings::from_toml_str(&minimal).expect("minimal config");
    assert_eq!(
        format!("{shown:#?}"),
        format!("{defaults:#?}"),
        "a value in configmap.yaml differs from the code's default"
    );
}

#[test]
fn probes_hit_healthz_and_readyz_on_the_configured_listen_port() {
    let port = listen_port();
    let deployment = deployment();
    let c = container(&deployment);
    let ports = items(&c["ports"], "ports");
    let metrics = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("metrics"))
        .expect("a container port named metrics");
    assert_eq!(
        metrics["containerPort"].as_u64(),
        Some(u64::from(port)),
        "containerPort vs server.listen"
    );
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe} path");
        assert!(
            is_metrics_port(&get["port"], port),
            "{probe} port {:?} is not the metrics port {port}",
            get["port"]
        );
    }
}

#[test]
fn service_servicemonitor_and_pdb_select_the_pods_and_the_metrics_port() {
    let port = listen_port();
    let deployment = deployment();
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("pod labels")
        .clone();
    let selects_pods = |selector: &Value, what: &str| {
        let selector = selector.as_mapping().unwrap_or_else(|| panic!("{what}"));
        assert!(!selector.is_empty(), "{what} is empty");
        for (k, v) in selector {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "{what} {k:?} does not match the pods"
            );
        }
    };
    selects_pods(
        &deployment["spec"]["selector"]["matchLabels"],
        "Deployment selector",
    );
    let service = manifest("service.yaml", "Service");
    selects_pods(&service["spec"]["selector"], "Service selector");
    let pdb = manifest("pdb.yaml", "PodDisruptionBudget");
    selects_pods(&pdb["spec"]["selector"]["matchLabels"], "PDB selector");

    let service_port = items(&service["spec"]["ports"], "Service ports")
        .iter()
        .find(|p| p["name"].as_str() == Some("metrics"))
        .expect("a Service port named metrics");
    assert!(is_metrics_port(&service_port["targetPort"], port));

    let monitor = manifest("servicemonitor.yaml", "ServiceMonitor");
    assert_eq!(
        monitor["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1")
    );
    let service_labels = service["metadata"]["labels"]
        .as_mapping()
        .expect("Service labels");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("ServiceMonitor selector")
    {
        assert_eq!(
            service_labels.get(k),
            Some(v),
            "ServiceMonitor selector {k:?}"
        );
    }
    let endpoints = items(&monitor["spec"]["endpoints"], "ServiceMonitor endpoints");
    assert!(!endpoints.is_empty());
    for endpoint in endpoints {
        assert_eq!(endpoint["port"].as_str(), Some("metrics"));
        assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    }
}

/// A node drain never waits on a pod that is not ready (it protects nothing), and the NetworkPolicy lets in the
/// metrics port and out DNS, PostgreSQL and Canvas (HTTPS), on the Deployment's pods.
#[test]
fn pdb_evicts_unhealthy_pods_and_the_network_policy_fits_the_daemon() {
    let pdb = manifest("pdb.yaml", "PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["unhealthyPodEvictionPolicy"].as_str(),
        Some("AlwaysAllow")
    );
    let policy = manifest("networkpolicy.yaml", "NetworkPolicy");
    let pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("pod labels")
        .clone();
    let selector = policy["spec"]["podSelector"]["matchLabels"]
        .as_mapping()
        .expect("podSelector");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(pod_labels.get(k), Some(v), "podSelector {k:?}");
    }
    let types: Vec<&str> = items(&policy["spec"]["policyTypes"], "policyTypes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types, ["Ingress", "Egress"]);
    let port = listen_port();
    let ingress_ports: Vec<&Value> = items(&policy["spec"]["ingress"], "ingress")
        .iter()
        .flat_map(|rule| items(&rule["ports"], "ingress ports"))
        .map(|p| &p["port"])
        .collect();
    assert!(
        ingress_ports.iter().any(|p| is_metrics_port(p, port)),
        "ingress to the metrics port: {ingress_ports:?}"
    );
    let egress_ports: BTreeSet<(u64, String)> = items(&policy["spec"]["egress"], "egress")
        .iter()
        .flat_map(|rule| items(&rule["ports"], "egress ports"))
        .map(|p| {
            (
                p["port"].as_u64().unwrap_or_default(),
                p["protocol"].as_str().unwrap_or("TCP").to_owned(),
            )
        })
        .collect();
    for needed in [(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")] {
        assert!(
            egress_ports.contains(&(needed.0, needed.1.to_owned())),
            "egress {needed:?}: {egress_ports:?}"
        );
    }
    // The database port of the URL the Secret documents is one the policy lets out.
    let url = secret()["stringData"]["database-url"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    let db_port = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(5432);
    assert!(egress_ports.contains(&(u64::from(db_port), "TCP".into())));
}

/// kube-prometheus-stack selects ServiceMonitors and PrometheusRules by `release`; without the label they are
/// silently ignored.
#[test]
fn servicemonitor_and_rules_carry_the_release_label() {
    for (file, kind) in [
        ("servicemonitor.yaml", "ServiceMonitor"),
        ("prometheusrule.yaml", "PrometheusRule"),
    ] {
        let m = manifest(file, kind);
        assert!(
            m["metadata"]["labels"]["release"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{file}: a `release` label"
        );
    }
    assert!(
        read("README.md").contains("release:"),
        "the README says what `release` must be"
    );
}

/// RELIABILITY.md #17: a subPath mount is a bind of one inode, which never sees the kubelet's symlink swap, so the
/// token could not rotate without a restart.
#[test]
fn canvas_token_file_comes_from_a_whole_secret_volume_not_a_subpath() {
    let token_file = token_file();
    let deployment = deployment();
    let c = container(&deployment);
    let secret = secret();
    let mounts = items(&c["volumeMounts"], "volumeMounts");
    let mount = mounts
        .iter()
        .filter(|m| token_file.starts_with(text(&m["mountPath"], "mountPath")))
        .max_by_key(|m| text(&m["mountPath"], "mountPath").len())
        .unwrap_or_else(|| panic!("no volume is mounted above {}", token_file.display()));
    assert!(
        mount["subPath"].is_null() && mount["subPathExpr"].is_null(),
        "the token volume must not be a subPath mount"
    );
    let volume = mounted_volume(&deployment, mount).expect("the mounted volume");
    let source = &volume["secret"];
    assert_eq!(
        source["secretName"].as_str(),
        secret["metadata"]["name"].as_str(),
        "the token volume should be the rostersync Secret"
    );
    let relative = token_file
        .strip_prefix(text(&mount["mountPath"], "mountPath"))
        .expect("under the mount")
        .to_string_lossy()
        .into_owned();
    let key = match source["items"].as_sequence() {
        Some(list) => text(
            &list
                .iter()
                .find(|i| i["path"].as_str() == Some(relative.as_str()))
                .unwrap_or_else(|| panic!("no Secret item is projected to {relative}"))["key"],
            "item key",
        ),
        None => relative.as_str(),
    };
    assert!(
        secret["stringData"][key].is_string(),
        "the Secret has no key `{key}`"
    );
    // Kubernetes writes the file as root with this mode; fsGroup lets the non-root user read it.
    let mode = source["defaultMode"].as_u64().expect("defaultMode");
    assert_eq!(mode & 0o007, 0, "the token must not be world-readable");
    assert!(
        deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"].is_u64(),
        "fsGroup is needed for the non-root user to read the token"
    );
    for m in mounts {
        assert!(m["subPath"].is_null(), "no mount should use subPath: {m:?}");
    }
}

#[test]
fn deployment_args_are_the_run_command_on_the_mounted_configmap() {
    let deployment = deployment();
    let c = container(&deployment);
    assert!(
        c["command"].is_null(),
        "command would replace the image's ENTRYPOINT"
    );
    let args: Vec<&str> = items(&c["args"], "args")
        .iter()
        .map(|a| text(a, "arg"))
        .collect();
    let cli = parse_cli(&args);
    assert!(matches!(cli.command, Command::Run), "args {args:?}");
    let config = cli.config.expect("--config");
    let mount = items(&c["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| config.parent() == Some(Path::new(text(&m["mountPath"], "mountPath"))))
        .unwrap_or_else(|| {
            panic!(
                "nothing is mounted at {}",
                config.parent().unwrap().display()
            )
        });
    let volume = mounted_volume(&deployment, mount).expect("the config volume");
    let configmap = manifest("configmap.yaml", "ConfigMap");
    assert_eq!(
        volume["configMap"]["name"], configmap["metadata"]["name"],
        "the config volume should be the ConfigMap"
    );
    let file_name = config.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        configmap["data"][file_name.as_str()].is_string(),
        "the ConfigMap has no key {file_name}"
    );
}

#[test]
fn deployment_runs_two_non_root_hardened_replicas_with_a_grace_above_45_seconds() {
    let deployment = deployment();
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(2));
    assert_eq!(spec["strategy"]["type"].as_str(), Some("RollingUpdate"));
    let pod = &spec["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace > 45,
        "the daemon may take 45 s to finish in-flight changes"
    );
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"].as_bool(), Some(true));
    let uid = pod_security["runAsUser"].as_u64().expect("runAsUser");
    assert_ne!(uid, 0);
    assert_eq!(
        pod_security["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = container(&deployment);
    let security = &c["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    let dropped: Vec<&str> = items(&security["capabilities"]["drop"], "drop")
        .iter()
        .map(|d| text(d, "capability"))
        .collect();
    assert!(dropped.contains(&"ALL"), "{dropped:?}");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        Some(uid.to_string()),
        dockerfile_final_stage_user().map(|u| u.split(':').next().unwrap_or_default().to_owned()),
        "runAsUser should be the image's USER"
    );
}

// -----------------------------------------------------------------------------------------------------------------
// Metrics: alerts and dashboard against the real /metrics output
// -----------------------------------------------------------------------------------------------------------------

/// Sample name → label names, from the daemon's OpenMetrics output with one sample in every labelled family.
fn exported_series() -> HashMap<String, BTreeSet<String>> {
    let m = Metrics::new();
    m.count_request("GET", "200");
    m.count_change("enroll", "failed");
    m.count_retry("throttled");
    m.cycles
        .get_or_create(&OutcomeLabels {
            outcome: "succeeded".into(),
        })
        .inc();
    m.skipped_rows
        .get_or_create(&ReasonLabels {
            reason: "bad_role".into(),
        })
        .inc();
    m.cycle_duration.observe(12.0);
    m.count_path_fallback("sis_import");
    m.tripped_run
        .get_or_create(&RunLabels { run_id: "r".into() })
        .set(1);
    let mut series: HashMap<String, BTreeSet<String>> = HashMap::new();
    for line in m.encode().lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = series.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let close = line.find('}').expect("closing brace");
            labels.extend(matcher_labels(&line[name_end + 1..close]));
        }
    }
    series
}

/// Label names in `a="x",b=~"y"` (commas inside quotes are not separators).
fn matcher_labels(inside: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut current = String::new();
    for ch in inside.chars().chain(std::iter::once(',')) {
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                let name: String = current
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    labels.push(name);
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        if !in_quotes {
            current.push(ch);
        }
    }
    labels
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The prefixes of the metric families the daemon exports: its own and the standard process ones.
const METRIC_PREFIXES: [&str; 2] = ["rostersync_", "process_"];

/// Every `rostersync_*` and `process_*` metric named in a string, with the label names of its `{...}` selector if
/// any.
fn referenced_metrics(s: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(pos) = METRIC_PREFIXES.iter().filter_map(|p| rest.find(p)).min() {
        let start = offset + pos;
        let boundary = s[..start].chars().next_back().is_none_or(|c| !is_ident(c));
        let name: String = s[start..].chars().take_while(|c| is_ident(*c)).collect();
        let after = start + name.len();
        if boundary {
            let labels = if s[after..].starts_with('{') {
                let close = s[after..]
                    .find('}')
                    .map(|i| after + i)
                    .expect("closing brace");
                matcher_labels(&s[after + 1..close])
            } else {
                Vec::new()
            };
            found.push((name.clone(), labels));
        }
        offset = after;
        rest = &s[after..];
    }
    found
}

/// Label names in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for keyword in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut from = 0;
        while let Some(pos) = expr[from..].find(keyword) {
            let start = from + pos;
            let end = start + keyword.len();
            from = end;
            let before_ok = expr[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !is_ident(c));
            let after = expr[end..].trim_start();
            if !before_ok || !after.starts_with('(') {
                continue;
            }
            let close = after.find(')').expect("closing parenthesis");
            labels.extend(
                after[1..close]
                    .split(',')
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    labels
}

/// Checks a PromQL expression or a text that names metrics; returns the problems found.
fn check_references(
    where_: &str,
    s: &str,
    is_expr: bool,
    exported: &HashMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut known_labels: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
    for (name, labels) in referenced_metrics(s) {
        // Prose may name a histogram by its family name; a query must use `_bucket`, `_sum` or `_count`.
        let prose_family = (!is_expr)
            .then(|| exported.get(&format!("{name}_bucket")))
            .flatten();
        let Some(exported_labels) = exported.get(&name).or(prose_family) else {
            problems.push(format!("{where_}: `{name}` is not exported by the daemon"));
            continue;
        };
        known_labels.extend(exported_labels.iter().cloned());
        for label in labels {
            if !exported_labels.contains(&label) && !TARGET_LABELS.contains(&label.as_str()) {
                problems.push(format!("{where_}: `{name}` has no label `{label}`"));
            }
        }
    }
    if is_expr {
        for label in grouping_labels(s) {
            if !known_labels.contains(&label) {
                problems.push(format!(
                    "{where_}: grouping label `{label}` is on none of the expression's metrics"
                ));
            }
        }
    }
    problems
}

fn yaml_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(list) => list.iter().for_each(|i| yaml_strings(i, out)),
        Value::Mapping(map) => map.iter().for_each(|(k, v)| {
            yaml_strings(k, out);
            yaml_strings(v, out);
        }),
        Value::Tagged(tagged) => yaml_strings(&tagged.value, out),
        _ => {}
    }
}

fn json_strings(v: &serde_json::Value, out: &mut Vec<(String, String)>, key: &str) {
    match v {
        serde_json::Value::String(s) => out.push((key.to_owned(), s.clone())),
        serde_json::Value::Array(list) => list.iter().for_each(|i| json_strings(i, out, key)),
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| json_strings(v, out, k)),
        _ => {}
    }
}

fn alert_rules() -> Vec<Value> {
    let rule = manifest("prometheusrule.yaml", "PrometheusRule");
    items(&rule["spec"]["groups"], "groups")
        .iter()
        .flat_map(|g| items(&g["rules"], "rules").to_vec())
        .collect()
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

#[test]
fn every_metric_and_label_in_the_alerts_is_exported() {
    let exported = exported_series();
    let rule = manifest("prometheusrule.yaml", "PrometheusRule");
    let mut problems = Vec::new();
    let mut named = 0;
    for r in alert_rules() {
        let alert = text(&r["alert"], "alert name").to_owned();
        let expr = text(&r["expr"], &format!("{alert} expr"));
        named += referenced_metrics(expr).len();
        problems.extend(check_references(&alert, expr, true, &exported));
    }
    // Annotations and any other text that names a metric.
    let mut strings = Vec::new();
    yaml_strings(&rule, &mut strings);
    for s in strings {
        problems.extend(check_references(
            "prometheusrule.yaml",
            &s,
            false,
            &exported,
        ));
    }
    assert!(named >= 10, "the alerts should name the daemon's metrics");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_metric_and_label_in_the_dashboard_is_exported() {
    let exported = exported_series();
    let mut strings = Vec::new();
    json_strings(&dashboard(), &mut strings, "");
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (key, s) in &strings {
        let is_expr = key == "expr";
        used.extend(referenced_metrics(s).into_iter().map(|(n, _)| n));
        problems.extend(check_references(DASHBOARD, s, is_expr, &exported));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every family the daemon exports has a panel.
    let families: BTreeSet<String> = exported
        .keys()
        .map(|n| {
            ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|suffix| n.strip_suffix(suffix))
                .unwrap_or(n)
                .to_owned()
        })
        .collect();
    let used_families: BTreeSet<String> = used
        .iter()
        .map(|n| {
            ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|suffix| n.strip_suffix(suffix))
                .unwrap_or(n)
                .to_owned()
        })
        .collect();
    let missing: Vec<&String> = families.difference(&used_families).collect();
    assert!(missing.is_empty(), "no dashboard panel shows {missing:?}");
}

#[test]
fn alerts_have_severity_summary_description_and_runbook() {
    let rules = alert_rules();
    let mut names = BTreeSet::new();
    for r in &rules {
        let alert = text(&r["alert"], "alert name");
        assert!(names.insert(alert.to_owned()), "duplicate alert {alert}");
        let severity = r["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{alert}: severity {severity:?}"
        );
        for annotation in ["summary", "description", "runbook"] {
            let value = r["annotations"][annotation].as_str().unwrap_or_default();
            assert!(
                value.trim().len() > 20,
                "{alert}: annotation `{annotation}` is missing or too short to act on"
            );
        }
    }
    for expected in [
        "RostersyncNoSuccessfulCycle",
        "RostersyncChangesFailing",
        "RostersyncSafetyGuardTripped",
        "RostersyncNoLeader",
        "RostersyncCanvasRetriesHigh",
        "RostersyncUsersNotFoundGrowing",
    ] {
        assert!(names.contains(expected), "missing alert {expected}");
    }
}

/// The anchors a Markdown file offers: GitHub's slug of every heading (lower case, punctuation dropped, spaces as
/// `-`), and every explicit `<a id="...">`.
fn markdown_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line.strip_prefix('#') {
            let title = heading.trim_start_matches('#').trim();
            let slug: String = title
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect();
            anchors.insert(slug);
        }
        for (i, _) in line.match_indices("<a id=\"") {
            let rest = &line[i + 7..];
            if let Some(end) = rest.find('"') {
                anchors.insert(rest[..end].to_owned());
            }
        }
    }
    anchors
}

/// Every alert links its runbook: a `runbook_url` into README.md whose anchor is a heading there, whose section
/// says what the alert means and what to do, and all URLs share one base (one placeholder to replace).
#[test]
fn every_alert_has_a_runbook_url_whose_anchor_is_in_the_readme() {
    let readme = read("README.md");
    let anchors = markdown_anchors(&readme);
    let mut bases = BTreeSet::new();
    let rules = alert_rules();
    assert!(rules.len() >= 11, "{} alerts", rules.len());
    for r in &rules {
        let alert = text(&r["alert"], "alert name");
        let url = r["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{alert}: no runbook_url annotation"));
        let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{alert}: {url}: {e}"));
        assert_eq!(parsed.scheme(), "https", "{alert}: {url}");
        assert!(parsed.path().ends_with("/README.md"), "{alert}: {url}");
        let fragment = parsed
            .fragment()
            .unwrap_or_else(|| panic!("{alert}: {url} has no #anchor"));
        assert!(
            anchors.contains(fragment),
            "{alert}: README.md has no heading or anchor `{fragment}`"
        );
        assert_eq!(fragment, alert.to_lowercase(), "{alert}: its own section");
        // The section itself: a heading named after the alert, saying what it means and what to do.
        let start = readme
            .find(&format!("\n### {alert}\n"))
            .unwrap_or_else(|| panic!("README.md: no `### {alert}` section"));
        let section = &readme[start + 1..];
        let section = &section[..section[4..].find("\n#").map_or(section.len(), |e| e + 4)];
        assert!(
            section.contains("**Means**") && section.contains("**Do**"),
            "{alert}: the runbook says what it means and what to do:\n{section}"
        );
        bases.insert(url.split('#').next().unwrap_or_default().to_owned());
    }
    assert_eq!(bases.len(), 1, "one README for every runbook: {bases:?}");
    // Links between runbooks resolve too.
    for (i, _) in readme.match_indices("](#") {
        let rest = &readme[i + 3..];
        let target = &rest[..rest.find(')').unwrap_or(0)];
        assert!(
            anchors.contains(target),
            "README.md links to #{target}, which does not exist"
        );
    }
}

/// The Prometheus Operator labels scraped series with job = the Service's name; `job="..."` matchers must agree.
#[test]
fn alert_job_matchers_name_the_scraped_service() {
    let service = manifest("service.yaml", "Service");
    let job = text(&service["metadata"]["name"], "Service name");
    for r in alert_rules() {
        let expr = text(&r["expr"], "expr");
        for (pos, _) in expr.match_indices("job=\"") {
            let value: String = expr[pos + 5..].chars().take_while(|c| *c != '"').collect();
            assert_eq!(value, job, "{}: job matcher", text(&r["alert"], "alert"));
        }
    }
}

/// "No successful cycle in 3 intervals" must follow the ConfigMap's schedule (`0 */N * * * *`).
#[test]
fn no_success_alert_threshold_is_three_schedule_intervals() {
    let cron = pod_settings().schedule.cron;
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let minutes: u64 = match fields.as_slice() {
        ["0", every, "*", "*", "*", "*"] => every
            .strip_prefix("*/")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("update this test for schedule {cron}")),
        _ => panic!("update this test for schedule {cron}"),
    };
    let rule = alert_rules()
        .into_iter()
        .find(|r| r["alert"].as_str() == Some("RostersyncNoSuccessfulCycle"))
        .expect("RostersyncNoSuccessfulCycle");
    let expr = text(&rule["expr"], "expr");
    assert!(
        expr.contains("rostersync_last_success_timestamp_seconds")
            && expr.contains(&format!("> 3 * {}", minutes * 60)),
        "{expr}"
    );
}

/// Paused is not broken: while `rostersync_paused` is 1, cycles change nothing on purpose, so the alerts that would
/// read that as a failure (no successful cycle, a trip no one can `apply` while paused) are silenced by it, matched
/// on the same labels the alert groups by.
#[test]
fn stale_sync_and_trip_alerts_stay_quiet_while_paused() {
    let rules = alert_rules();
    for alert in [
        "RostersyncNoSuccessfulCycle",
        "RostersyncSafetyGuardTripped",
    ] {
        let rule = rules
            .iter()
            .find(|r| r["alert"].as_str() == Some(alert))
            .unwrap_or_else(|| panic!("{alert}"));
        let expr: String = text(&rule["expr"], "expr")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let (firing, silenced_by) = expr
            .split_once(" unless on (namespace, job) ")
            .unwrap_or_else(|| panic!("{alert} is not silenced while paused: {expr}"));
        assert!(
            firing.contains("by (namespace, job)") && !firing.contains("rostersync_paused"),
            "{alert}: {expr}"
        );
        assert_eq!(
            silenced_by, "max by (namespace, job) (rostersync_paused{job=\"rostersync\"}) == 1",
            "{alert}"
        );
    }
}

/// File provisioning does not resolve `__inputs`: every query goes through the `datasource` template variable,
/// which works there and on import alike.
#[test]
fn dashboard_uses_the_datasource_variable_everywhere() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    let raw = read(DASHBOARD);
    assert!(
        !raw.contains("${DS_"),
        "an import-time input is left unresolved under file provisioning"
    );
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let datasource = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource template variable");
    assert_eq!(datasource["name"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate id: {title}"
        );
        assert!(panel["gridPos"].is_object(), "{title}: gridPos");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}"
            );
        }
    }
    for var in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(var["datasource"]["uid"], "${datasource}");
    }
}

// -----------------------------------------------------------------------------------------------------------------
// systemd
// -----------------------------------------------------------------------------------------------------------------

/// A unit file as systemd reads it: `[Section]`, `Key=Value`, `#`/`;` comments, `\` continuations, repeated keys;
/// an empty assignment resets a list.
struct Unit {
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            if let Some(continued) = line.strip_suffix('\\') {
                pending.push_str(continued);
                pending.push(' ');
                continue;
            }
            let line = std::mem::take(&mut pending) + line;
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{SYSTEMD_UNIT}:{}: not `Key=Value`: {raw}", n + 1));
            assert!(
                !section.is_empty(),
                "{SYSTEMD_UNIT}:{}: key outside a section",
                n + 1
            );
            entries.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
        Unit { entries }
    }

    /// All values of a list-like key, after empty-assignment resets.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        let mut values = Vec::new();
        for (s, k, v) in &self.entries {
            if s == section && k == key {
                if v.is_empty() {
                    values.clear();
                } else {
                    values.push(v.as_str());
                }
            }
        }
        values
    }

    /// The effective value of a single-valued key (the last assignment wins).
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
    }

    fn service(&self, key: &str) -> &str {
        self.get("Service", key)
            .unwrap_or_else(|| panic!("[Service] {key}= is not set"))
    }
}

/// systemd time spans: `75`, `75s`, `1min 15s`, `2m`, `500ms`.
fn systemd_duration(span: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in span.split_whitespace() {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        let n: u64 = digits
            .parse()
            .unwrap_or_else(|_| panic!("bad time span {span}"));
        total += match &part[digits.len()..] {
            "" | "s" | "sec" | "second" | "seconds" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(60 * n),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600 * n),
            unit => panic!("unknown time unit `{unit}` in {span}"),
        };
    }
    total
}

fn unit() -> Unit {
    Unit::parse(&read(SYSTEMD_UNIT))
}

#[test]
fn systemd_unit_is_notify_hardened_and_keeps_core_dumps_off() {
    let unit = unit();
    assert_eq!(unit.service("Type"), "notify");
    assert!(systemd_duration(unit.service("WatchdogSec")) > Duration::ZERO);
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DynamicUser", "yes"),
        ("LimitCORE", "0"),
    ] {
        assert_eq!(unit.service(key), expected, "{key}");
    }
    assert!(
        matches!(
            unit.service("Restart"),
            "on-failure" | "on-abnormal" | "always"
        ),
        "Restart="
    );
    assert!(systemd_duration(unit.service("RestartSec")) >= Duration::from_secs(1));
    let stop = systemd_duration(unit.service("TimeoutStopSec"));
    assert!(
        stop > Duration::from_secs(45),
        "TimeoutStopSec {stop:?} must exceed the daemon's 45 s shutdown grace"
    );
    assert!(
        unit.all("Unit", "Wants")
            .iter()
            .any(|v| v.contains("network-online.target"))
    );
    let after = unit.all("Unit", "After").join(" ");
    assert!(after.contains("network-online.target") && after.contains("postgresql.service"));
}

#[test]
fn systemd_unit_execstart_is_the_run_command() {
    let unit = unit();
    let exec = unit
        .service("ExecStart")
        .trim_start_matches(['-', '@', '+', '!', ':']);
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"/usr/local/bin/rostersync"));
    let cli = parse_cli(&words[1..]);
    assert!(matches!(cli.command, Command::Run), "{exec}");
    assert!(cli.config.is_some(), "ExecStart should name --config");
}

/// `systemctl help rostersync` opens the man page the binary generates (`rostersync man`), and a page the
/// systemd README tells the operator to install.
#[test]
fn systemd_unit_documentation_names_the_man_page_the_binary_generates() {
    let unit = unit();
    let docs: Vec<&str> = unit
        .all("Unit", "Documentation")
        .into_iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    assert!(docs.contains(&"man:rostersync(1)"), "{docs:?}");
    assert!(matches!(parse_cli(&["man"]).command, Command::Man));
    let install = read("deploy/systemd/README.md");
    assert!(
        install.contains("rostersync man |"),
        "the README installs the page"
    );
    for doc in docs.iter().filter_map(|d| d.strip_prefix("file:")) {
        assert!(
            install.contains(doc),
            "{doc} is named by Documentation= but never installed"
        );
    }
}

#[test]
fn systemd_credential_is_what_the_token_file_variable_points_at() {
    let unit = unit();
    let credentials = unit.all("Service", "LoadCredential");
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    let (name, source) = credentials[0]
        .split_once(':')
        .expect("LoadCredential=ID:PATH");
    assert!(source.starts_with('/'), "{source}");
    let env: Vec<&str> = unit
        .all("Service", "Environment")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    let token_file = env
        .iter()
        .find_map(|kv| kv.strip_prefix("ROSTERSYNC__CANVAS__TOKEN_FILE="))
        .expect("Environment=ROSTERSYNC__CANVAS__TOKEN_FILE=...");
    assert_eq!(token_file, format!("%d/{name}"));
    assert!(
        !env.iter()
            .any(|kv| kv.starts_with("ROSTERSYNC__CANVAS__TOKEN=")),
        "the token must not be inline in the unit"
    );
}

/// The binary calls setrlimit(RLIMIT_CORE) (@resources) and prctl(PR_SET_DUMPABLE) (@process) at start and talks
/// TCP plus sd_notify's AF_UNIX socket: the sandbox must allow exactly that much.
#[test]
fn systemd_sandbox_allows_what_the_binary_does_at_start() {
    let unit = unit();
    let families: Vec<&str> = unit
        .all("Service", "RestrictAddressFamilies")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            families.contains(&family),
            "RestrictAddressFamilies lacks {family}"
        );
    }
    assert!(
        !families.iter().any(|f| f.starts_with('~')),
        "use an allow list"
    );
    let filters = unit.all("Service", "SystemCallFilter");
    assert!(
        filters.iter().any(|f| !f.starts_with('~')),
        "a syscall allow list"
    );
    let denied: Vec<&str> = filters
        .iter()
        .filter_map(|f| f.strip_prefix('~'))
        .flat_map(str::split_whitespace)
        .collect();
    for needed in ["@resources", "setrlimit", "prlimit64", "@process", "prctl"] {
        assert!(
            !denied.contains(&needed),
            "SystemCallFilter denies {needed}"
        );
    }
    assert_eq!(unit.service("CapabilityBoundingSet"), "");
}

// -----------------------------------------------------------------------------------------------------------------
// Dockerfile
// -----------------------------------------------------------------------------------------------------------------

/// Dockerfile instructions as (INSTRUCTION, arguments), continuations joined, comments dropped, split by stage.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = read("Dockerfile");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        let logical = std::mem::take(&mut pending) + line;
        let (instruction, args) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((&logical, ""));
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push((instruction, args.trim().to_owned()));
        }
    }
    stages
}

fn dockerfile_final_stage_user() -> Option<String> {
    dockerfile_stages()
        .last()?
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
}

fn json_array(args: &str) -> Vec<String> {
    serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("not an exec-form JSON array: {args}: {e}"))
}

#[test]
fn dockerfile_final_stage_is_non_root_with_ca_certificates() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "multi-stage build expected");
    let last = stages.last().unwrap();
    assert!(
        last[0].1.starts_with("debian:bookworm-slim"),
        "{:?}",
        last[0]
    );
    let user = dockerfile_final_stage_user().expect("USER in the final stage");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "USER {user}"
    );
    assert!(
        last.iter().any(|(i, a)| i == "RUN"
            && a.contains("apt-get install")
            && a.contains("ca-certificates")),
        "the runtime stage must install ca-certificates (rustls uses the OS trust store)"
    );
    let entrypoint = last
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, a)| json_array(a))
        .expect("ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/rostersync"]);
    assert!(
        last.iter().any(|(i, a)| i == "COPY"
            && a.contains("rostersync")
            && a.ends_with("/usr/local/bin/")),
        "the binary is copied to /usr/local/bin/"
    );
    let cmd = last
        .iter()
        .find(|(i, _)| i == "CMD")
        .map(|(_, a)| json_array(a))
        .expect("CMD");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    assert!(matches!(parse_cli(&cmd).command, Command::Run));
    let port = listen_port().to_string();
    assert!(
        last.iter()
            .any(|(i, a)| i == "EXPOSE" && a.split_whitespace().any(|p| p == port)),
        "EXPOSE {port}"
    );
}

/// The image carries the man page, generated at build time by the binary it ships (so it cannot describe other
/// commands than the image runs).
#[test]
fn dockerfile_ships_the_generated_man_page() {
    let stages = dockerfile_stages();
    let builder = stages
        .iter()
        .find(|s| s[0].1.ends_with(" AS builder"))
        .expect("a builder stage");
    assert!(
        builder
            .iter()
            .any(|(i, a)| i == "RUN" && a.contains("/out/rostersync man > /out/rostersync.1")),
        "the builder generates the page with the built binary"
    );
    let last = stages.last().expect("stages");
    assert!(
        last.iter().any(|(i, a)| i == "COPY"
            && a.starts_with("--from=builder /out/rostersync.1 ")
            && a.ends_with(" /usr/share/man/man1/rostersync.1")),
        "the runtime stage installs it as /usr/share/man/man1/rostersync.1"
    );
}

#[test]
fn dockerfile_builder_meets_rust_version_and_embeds_migrations() {
    let stages = dockerfile_stages();
    let builder = &stages[0];
    let image = builder[0].1.split_whitespace().next().unwrap_or_default();
    let tag = image.strip_prefix("rust:").expect("a rust: builder image");
    let version = |v: &str| -> (u32, u32) {
        let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    let manifest = read("Cargo.toml");
    let required = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|l| l.split('"').nth(1))
        .expect("rust-version in Cargo.toml");
    assert!(
        version(tag) >= version(required),
        "builder rust:{tag} is older than rust-version {required}"
    );
    let builds: Vec<usize> = builder
        .iter()
        .enumerate()
        .filter(|(_, (i, a))| i == "RUN" && a.contains("cargo build"))
        .map(|(n, _)| n)
        .collect();
    let real_build = *builds.last().expect("cargo build");
    assert!(
        builder[real_build].1.contains("--release") && builder[real_build].1.contains("--locked")
    );
    assert!(
        builder[real_build].1.contains("--bin rostersync"),
        "--bin rostersync"
    );
    // sqlx::migrate! embeds migrations/ at compile time.
    let copies_migrations = builder[..real_build]
        .iter()
        .any(|(i, a)| i == "COPY" && a.split_whitespace().next() == Some("migrations"));
    assert!(
        copies_migrations,
        "COPY migrations before the real cargo build"
    );
    let ignored = read(".dockerignore");
    for needed in ["src", "migrations", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !ignored
                .lines()
                .any(|l| l.trim().trim_end_matches('/') == needed),
            ".dockerignore excludes {needed}"
        );
    }
}

/// The production image carries the daemon only: the simulator is a separate `--target canvas-sim`.
#[test]
fn dockerfile_keeps_canvas_sim_out_of_the_production_image() {
    let stages = dockerfile_stages();
    let last = stages.last().expect("stages");
    for (instruction, args) in last {
        assert!(
            !args.contains("canvas-sim"),
            "the production stage mentions canvas-sim: {instruction} {args}"
        );
    }
    let sim = stages
        .iter()
        .find(|s| s[0].1.ends_with(" AS canvas-sim"))
        .expect("a `canvas-sim` target for those who want the simulator image");
    assert!(
        sim.iter()
            .any(|(i, a)| i == "COPY" && a.contains("canvas-sim"))
    );
}

/// The COPY instructions that take files from the build context (not `--from` another stage), as
/// (sources, destination), in order.
fn dockerfile_context_copies() -> Vec<(Vec<String>, String)> {
    let mut copies = Vec::new();
    for stage in dockerfile_stages() {
        for (instruction, args) in stage {
            if instruction != "COPY" && instruction != "ADD" {
                continue;
            }
            let words: Vec<&str> = args.split_whitespace().collect();
            if words.iter().any(|w| w.starts_with("--from")) {
                continue;
            }
            let words: Vec<String> = words
                .into_iter()
                .filter(|w| !w.starts_with("--"))
                .map(str::to_owned)
                .collect();
            let (dest, sources) = words.split_last().expect("COPY SRC... DEST");
            assert!(!sources.is_empty(), "COPY {args}: no source");
            copies.push((sources.to_vec(), dest.clone()));
        }
    }
    copies
}

/// What .dockerignore keeps out of the context that the COPY sources could contain.
fn docker_ignored(relative: &Path) -> bool {
    let text = relative.to_string_lossy();
    relative.components().any(|c| c.as_os_str() == "target")
        || text.starts_with("fuzz/corpus")
        || text.starts_with("fuzz/artifacts")
        || text.ends_with(".profraw")
}

/// Copies `from` (a file or a directory's contents, as COPY does) to `to`, leaving out what .dockerignore drops.
fn copy_like_docker(root: &Path, from: &Path, to: &Path) {
    let relative = from.strip_prefix(root).unwrap_or(from);
    if docker_ignored(relative) {
        return;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            copy_like_docker(root, &entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// (package, kind, target) of every target of the workspace's members in `cargo metadata` output, but tests and
/// examples.
fn workspace_targets(metadata: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let mut targets = BTreeSet::new();
    for package in metadata["packages"].as_array().expect("packages") {
        if !members.contains(package["id"].as_str().unwrap_or_default()) {
            continue;
        }
        for target in package["targets"].as_array().expect("targets") {
            // Integration tests and examples are discovered, not declared: a build without them is complete.
            let kind = target["kind"].to_string();
            if kind.contains("\"test\"") || kind.contains("\"example\"") {
                continue;
            }
            targets.insert((
                package["name"].as_str().unwrap_or_default().to_owned(),
                target["kind"].to_string(),
                target["name"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    targets
}

/// The Dockerfile's build context, assembled from its COPY lines alone in a temp dir, must be a workspace Cargo
/// accepts with the committed Cargo.lock, offline, and hold every file a target of it compiles from: a path the
/// manifest needs and the Dockerfile forgets (the `scale` bench, crates/, build.rs, migrations/) fails here rather
/// than in `docker build`.
#[test]
fn dockerfile_context_is_a_workspace_cargo_accepts() {
    let root = repo();
    let context = tempfile::tempdir().expect("tempdir");
    let ignored = read(".dockerignore");
    for (sources, dest) in dockerfile_context_copies() {
        assert!(
            !dest.starts_with('/'),
            "COPY into {dest}: the builder's WORKDIR is the context"
        );
        let dest_dir = context.path().join(dest.trim_start_matches("./"));
        for source in &sources {
            let from = root.join(source);
            assert!(
                from.exists(),
                "COPY {source}: no such path in the repository"
            );
            assert!(
                !ignored
                    .lines()
                    .any(|l| l.trim().trim_end_matches('/') == source.trim_end_matches('/')),
                ".dockerignore drops {source}, which the Dockerfile copies"
            );
            let to = if from.is_file() && (dest.ends_with('/') || sources.len() > 1) {
                dest_dir.join(from.file_name().expect("file name"))
            } else {
                dest_dir.clone()
            };
            copy_like_docker(root, &from, &to);
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Resolve for this platform only: the registry cache holds the crates this platform builds with, and a
    // Linux image needs no other (android_system_properties and the like are never downloaded here).
    let version = std::process::Command::new(&cargo)
        .arg("-vV")
        .output()
        .expect("cargo -vV");
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("cargo -vV names the host");
    let out = std::process::Command::new(&cargo)
        .args(["metadata", "--offline", "--locked", "--format-version", "1"])
        .args(["--filter-platform", &host, "--manifest-path"])
        .arg(context.path().join("Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata on the Docker build context failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    // Cargo drops a target whose inferred file is missing (a `[[bench]]` without benches/NAME.rs) from metadata,
    // though `cargo build` refuses it: the context must have every target the repository has.
    let in_repo = std::process::Command::new(&cargo)
        .args([
            "metadata",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata on the repository");
    let in_repo: serde_json::Value =
        serde_json::from_slice(&in_repo.stdout).expect("cargo metadata JSON");
    assert_eq!(
        workspace_targets(&metadata),
        workspace_targets(&in_repo),
        "targets of the Docker build context vs the repository"
    );
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert_eq!(members.len(), 2, "rostersync and canvas-sim: {members:?}");
    let mut targets = 0;
    for package in metadata["packages"].as_array().expect("packages") {
        if !members.contains(package["id"].as_str().unwrap_or_default()) {
            continue;
        }
        for target in package["targets"].as_array().expect("targets") {
            let src = PathBuf::from(target["src_path"].as_str().expect("src_path"));
            assert!(
                src.starts_with(context.path()) && src.exists(),
                "{} target `{}` compiles from {}, which the Dockerfile does not copy",
                package["name"],
                target["name"],
                src.display()
            );
            targets += 1;
        }
    }
    assert!(targets >= 5, "lib, bins, bench and build script: {targets}");
    // `sqlx::migrate!("./migrations")` embeds them at compile time.
    let count = |dir: &Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        count(&context.path().join("migrations")),
        count(&root.join("migrations")),
        "migrations/ in the build context"
    );
    // The `scale` bench's module directory (benches/scale/) is not a target but is compiled with it.
    assert!(context.path().join("benches/scale").is_dir());
}
