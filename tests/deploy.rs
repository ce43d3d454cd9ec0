//! The Kubernetes manifests in `deploy/kubernetes`: the base and every
//! overlay rendered as kustomize would, every object validated strictly
//! against Kubernetes' OpenAPI schemas (`kubernetes-validate`) or its CRD's
//! schema (InferencePool, HTTPRoute, ScaledObject, PodMonitor, from the shared
//! fixtures), the weft.toml each carries accepted by `weft config check`, and
//! the rolling-update settings consistent with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::*;

const K8S_VERSION: &str = "1.34";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validate(deploy: &Path) -> Result<Value, String> {
    let out = Command::new(python())
        .arg(root().join("tests/tools/k8s_validate.py"))
        .arg(deploy)
        .arg(root().join("../shared/fixtures/k8s-crds"))
        .arg(K8S_VERSION)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn manifests_render_and_validate_against_kubernetes_and_crd_schemas() {
    let report = validate(&root().join("deploy/kubernetes")).unwrap_or_else(|e| panic!("{e}"));
    let kustomizations: Vec<&String> = report.as_object().unwrap().keys().collect();
    for k in ["base", "overlays/hpa", "overlays/keda", "overlays/gateway", "overlays/plugins-image"] {
        assert!(kustomizations.iter().any(|x| *x == k), "{k} rendered: {kustomizations:?}");
    }
    let kinds = |k: &str| report[k]["objects"].to_string();
    assert!(kinds("overlays/hpa").contains("HorizontalPodAutoscaler/weft"));
    assert!(kinds("overlays/keda").contains("ScaledObject/weft (CRD keda.sh/v1alpha1)"));
    assert!(kinds("overlays/gateway").contains("InferencePool/weft (CRD inference.networking.k8s.io/v1)"));
    assert!(kinds("overlays/gateway").contains("HTTPRoute/weft (CRD gateway.networking.k8s.io/v1)"));
    assert!(kinds("base").contains("PodMonitor/weft (CRD monitoring.coreos.com/v1)"));

    let dir = std::env::temp_dir().join(format!("weft-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("admin-key");
    std::fs::write(&key, "a-test-admin-key-of-enough-length\n").unwrap();
    for (k, entry) in report.as_object().unwrap() {
        let tomls = entry["weft_toml"].as_array().unwrap();
        assert_eq!(tomls.len(), 1, "{k}: one weft.toml");
        // The Secret is mounted in the cluster; here a file stands in for it.
        let text = tomls[0].as_str().unwrap().replace("/etc/weft/secret/admin-key", key.to_str().unwrap());
        let cfg = dir.join(format!("{}.toml", k.replace('/', "-")));
        std::fs::write(&cfg, &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_weft")).args(["config", "check"]).arg(&cfg).output().unwrap();
        assert!(out.status.success(), "{k}: weft config check: {}", String::from_utf8_lossy(&out.stderr));
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let grace = parsed["server"]["grace_secs"].as_integer().unwrap();
        let drain = parsed["server"]["drain_secs"].as_integer().unwrap();
        assert!(drain < grace, "{k}: the drain fits inside the grace period");
        if k == "overlays/gateway" {
            assert_eq!(parsed["server"]["trusted_gateway"].as_bool(), Some(true));
        }

        let d = &entry["deployments"][0];
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health", "{k}");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready", "{k}");
        let startup = &c["startupProbe"];
        let startup_secs = startup["periodSeconds"].as_i64().unwrap() * startup["failureThreshold"].as_i64().unwrap();
        assert!(startup_secs >= 300, "{k}: the startup probe covers a first model fetch ({startup_secs} s)");
        let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"].as_i64().unwrap();
        let term = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
        assert!(
            term >= pre_stop + grace,
            "{k}: terminationGracePeriodSeconds {term} < preStop {pre_stop} + grace {grace}"
        );
        assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());
        let vols = pod["volumes"].to_string();
        assert!(vols.contains("\"secretName\":\"weft-admin\""), "{k}: admin key from a Secret");
        assert!(
            vols.contains("weft-plugins") || vols.contains("\"image\""),
            "{k}: plugins from a ConfigMap or an image"
        );
    }
    assert!(report["overlays/plugins-image"]["deployments"][0].to_string().contains("\"reference\""));

    // The check can fail: a misspelt field and a CRD object missing a required one.
    for (file, from, to, why) in [
        ("base/deployment.yaml", "livenessProbe:", "livenesProbe:", "livenesProbe"),
        ("overlays/gateway/inferencepool.yaml", "targetPorts:", "targetPort:", "targetPorts"),
    ] {
        let bad = dir.join("bad");
        let _ = std::fs::remove_dir_all(&bad);
        copy_dir(&root().join("deploy/kubernetes"), &bad);
        let p = bad.join(file);
        std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replace(from, to)).unwrap();
        let e = validate(&bad).expect_err("a broken manifest is refused");
        assert!(e.contains(why), "{e}");
    }
}
