//! Every recorded trigger in `events/` parses to what `events/MANIFEST.json` says a real account's
//! delivery means (or is rejected as malformed, or refused as self-contradicting, with a typed
//! error naming the fields), and routes as the example configuration requires. The manifest is written from AWS's documented formats independently of
//! the parser, so this is a cross-check, not a restatement. The same files are replayed through
//! cargo-lambda by `tests/test_replay_evaluator.py`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use failover_policy::signal::{parse_bytes, AlarmState, RdsSourceType, SignalError, SignalKind};
use failover_policy::{route, Config, Routing};
use serde_json::Value;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn manifest() -> Vec<Value> {
    let text =
        std::fs::read_to_string(events_dir().join("MANIFEST.json")).expect("events/MANIFEST.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}

#[test]
fn every_file_has_a_manifest_entry_and_every_entry_a_file() {
    let files: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && n != "MANIFEST.json")
        .collect();
    let listed: BTreeSet<String> = manifest()
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, listed);
    assert!(
        files.len() >= 30,
        "at least 30 recorded events, found {}",
        files.len()
    );
}

#[test]
fn every_recorded_event_parses_to_its_documented_meaning() {
    let mut checked = 0;
    for entry in manifest() {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(events_dir().join(file)).unwrap();
        let parsed = parse_bytes(&bytes);
        if entry["expect"] == "malformed" {
            let err = parsed.expect_err(file);
            assert!(!err.to_string().is_empty());
            checked += 1;
            continue;
        }
        if entry["expect"] == "refused" {
            let err = parsed.expect_err(file);
            let SignalError::Contradiction { first, second, .. } = &err else {
                panic!("{file}: refused as a contradiction, got {err}")
            };
            let want: Vec<&str> = entry["refused_fields"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: refused_fields"))
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            assert_eq!(vec![first.as_str(), second.as_str()], want, "{file}: {err}");
            checked += 1;
            continue;
        }
        let s = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
        if let Some(acc) = entry.get("account").and_then(Value::as_str) {
            if s.account.is_some() {
                assert_eq!(s.account.as_deref(), Some(acc), "{file}: account");
            }
        }
        if let (Some(t), Some(st)) = (entry.get("time").and_then(Value::as_str), s.time) {
            let want: DateTime<Utc> = t
                .parse()
                .unwrap_or_else(|e| panic!("{file}: manifest time {t}: {e}"));
            assert!(
                (want - st).num_seconds().abs() <= 1,
                "{file}: time {st} vs {want}"
            );
        }
        match (&s.kind, entry["shape"].as_str().unwrap()) {
            (SignalKind::Alarm(a), "eventbridge-alarm" | "alarm-action" | "sns-alarm") => {
                let m = &entry["alarm"];
                assert_eq!(a.name, m["alarm_name"].as_str().unwrap(), "{file}");
                assert_eq!(a.state, state(&m["state"]), "{file}");
                if let Some(p) = m.get("previous_state").filter(|p| !p.is_null()) {
                    assert_eq!(a.previous, Some(state(p)), "{file}");
                }
                if let Some(c) = m.get("composite").and_then(Value::as_bool) {
                    assert_eq!(a.composite, c, "{file}: composite");
                }
            }
            (SignalKind::Rds(r), "eventbridge-rds" | "sns-rds") => {
                let m = &entry["rds"];
                assert_eq!(r.source_id, m["source_id"].as_str().unwrap(), "{file}");
                assert_eq!(r.event_id, m["event_id"].as_str().unwrap(), "{file}");
                let st = match m["source_type"].as_str().unwrap() {
                    "instance" => RdsSourceType::Instance,
                    "cluster" => RdsSourceType::Cluster,
                    "global-cluster" => RdsSourceType::GlobalCluster,
                    other => panic!("{file}: source_type {other}"),
                };
                assert_eq!(r.source_type, st, "{file}");
                if let Some(meaning) = m.get("meaning") {
                    assert_eq!(&serde_json::to_value(r.meaning).unwrap(), meaning, "{file}");
                }
            }
            (SignalKind::Tick, "scheduled") => {}
            (SignalKind::Operator(c), "operator" | "eventbridge-operator") => {
                let m = &entry["operator"];
                assert_eq!(
                    serde_json::to_value(c.command).unwrap(),
                    m["command"],
                    "{file}"
                );
                assert_eq!(c.site, m["site"].as_str().unwrap(), "{file}");
                if let Some(o) = m.get("override_rpo").and_then(Value::as_bool) {
                    assert_eq!(c.override_rpo, o, "{file}");
                }
            }
            (k, shape) => panic!("{file}: parsed as {k:?}, manifest says {shape}"),
        }
        checked += 1;
    }
    assert!(checked >= 30);
}

fn state(v: &Value) -> AlarmState {
    AlarmState::parse(v.as_str().unwrap()).unwrap()
}

/// Forged, foreign and unknown deliveries never reach a site; everything else reaches the right one.
#[test]
fn recorded_events_route_to_their_site_or_are_rejected() {
    let cfg = Config::from_document(include_str!("../../../infra/sites.example.json")).unwrap();
    let mut routed = 0;
    let mut rejected = 0;
    for entry in manifest() {
        if entry["expect"] != "signal" {
            continue;
        }
        let file = entry["file"].as_str().unwrap();
        let s = parse_bytes(&std::fs::read(events_dir().join(file)).unwrap()).unwrap();
        // Judge each event at its own time plus a minute, so only the deliberately stale or
        // future fixtures trip the age guard.
        let now = s
            .time
            .map(|t| t + chrono::Duration::seconds(60))
            .unwrap_or_else(Utc::now);
        let now = if file.contains("stale") || file.contains("future") || file.contains("old") {
            "2026-11-24T03:05:00Z".parse().unwrap()
        } else {
            now
        };
        match route(&cfg, &s, now) {
            Routing::Sites(sites) => {
                assert!(!sites.is_empty());
                for bad in [
                    "foreign", "forged", "unknown", "stale", "future", "attacker",
                ] {
                    assert!(
                        !file.contains(bad),
                        "{file} should have been rejected, routed to {sites:?}"
                    );
                }
                routed += 1;
            }
            Routing::Ignore(v) => {
                assert!(
                    ["foreign", "forged", "unknown", "stale", "future", "attacker", "old"]
                        .iter()
                        .any(|b| file.contains(b)),
                    "{file} was rejected: {}",
                    v.summary
                );
                rejected += 1;
            }
        }
    }
    assert!(
        routed > 20 && rejected >= 5,
        "routed {routed}, rejected {rejected}"
    );
}
