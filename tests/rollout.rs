//! Rolling updates lose nothing: three replicas, each a real host in its own
//! network namespace, behind haproxy health-checking `/ready`, under 16
//! streaming clients; each replica in turn gets SIGTERM, drains, exits 0, is
//! restarted and rejoins. Every response must arrive whole. The harness is
//! `weft bench rollout --check` (the same code prints the figures); skipped,
//! loudly, only where network namespaces cannot be created.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_rolling_restart_under_streaming_load_loses_no_request() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_weft")).args(["bench", "rollout", "--json", "--check"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| {
        panic!("no report (exit {:?}):\n{stdout}\n{stderr}", out.status.code());
    });
    if let Some(why) = report["skipped"].as_str() {
        eprintln!("\n!!!!!!!!\n!!! rolling-update test {why}\n!!!!!!!!\n");
        return;
    }
    eprintln!("{report:#}");
    assert!(out.status.success(), "{report:#}\n{stderr}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["truncated"], 0, "{report:#}");
    assert!(report["served"].as_u64().unwrap() >= 48, "load ran through the whole rollout: {report:#}");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for s in steps {
        assert_eq!(s["exit_code"], 0, "{s}");
        assert!(s["drain_secs"].as_f64().unwrap() >= 3.0, "each replica kept serving through drain_secs: {s}");
    }
}
