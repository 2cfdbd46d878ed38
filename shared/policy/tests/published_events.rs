//! Payloads AWS itself publishes — the CloudWatch, RDS, Aurora and Lambda guides' examples and
//! the AWS-maintained Lambda event libraries' fixtures, stored verbatim in `events/published/`
//! (`SOURCES.md` says where each came from) — each used twice, as every recorded event is:
//!
//! - **as published**: nothing in them is configured here (or, where the documentation's
//!   placeholder account happens to be the example configuration's, they are years old), so each
//!   must be a typed error or an ignore before any AWS call — never a site;
//! - **retargeted**: `MANIFEST.json` rewrites only identity fields and times (the `set` paths; a
//!   `$json` step descends into a JSON document held in a string, the SNS `Message`) so that the
//!   payload names a configured resource, and the parsed meaning — shape, account, region, time,
//!   alarm or RDS event, the site it routes to — must be what the manifest says.
//!
//! The same files and rewrites are replayed through cargo-lambda by
//! `tests/test_replay_evaluator.py::test_published`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use failover_policy::signal::{parse_bytes, AlarmState, RdsSourceType, SignalKind};
use failover_policy::{route, Config, Routing};
use serde_json::Value;

/// The replay clock of `tests/test_replay_evaluator.py`.
const REPLAY_CLOCK: &str = "2026-11-24T03:05:00Z";

/// The only keys a retarget may rewrite: what names the account, region, resource or alarm, and
/// the times.
const IDENTITY_AND_TIME: &[&str] = &[
    "account",
    "accountId",
    "region",
    "resources",
    "alarmArn",
    "alarmName",
    "time",
    "timestamp",
    "SourceArn",
    "SourceIdentifier",
    "Date",
    "EventSubscriptionArn",
    "TopicArn",
    "Timestamp",
    "AlarmName",
    "AlarmArn",
    "AWSAccountId",
    "Region",
    "StateChangeTime",
    "Source ID",
    "Source ARN",
    "Identifier Link",
    "Event Time",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/published")
}

fn manifest() -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir().join("MANIFEST.json")).unwrap()).unwrap()
}

fn cfg() -> Config {
    Config::from_document(include_str!("../../../infra/sites.example.json")).unwrap()
}

fn clock() -> DateTime<Utc> {
    REPLAY_CLOCK.parse().unwrap()
}

/// Sets `value` at `path` (keys, indices, and `$json` to descend into a JSON string).
fn set(doc: &mut Value, path: &[Value], value: Value) {
    let Some((head, rest)) = path.split_first() else {
        *doc = value;
        return;
    };
    match head {
        Value::String(s) if s == "$json" => {
            let mut inner: Value = serde_json::from_str(doc.as_str().expect("$json on a string"))
                .expect("$json on a JSON document");
            set(&mut inner, rest, value);
            *doc = Value::String(inner.to_string());
        }
        Value::String(k) => set(
            doc.get_mut(k.as_str())
                .unwrap_or_else(|| panic!("no key {k}")),
            rest,
            value,
        ),
        Value::Number(i) => set(
            doc.get_mut(i.as_u64().unwrap() as usize)
                .unwrap_or_else(|| panic!("no index {i}")),
            rest,
            value,
        ),
        other => panic!("bad path element {other}"),
    }
}

fn retargeted(entry: &Value) -> Vec<u8> {
    let file = entry["file"].as_str().unwrap();
    let mut doc: Value = serde_json::from_slice(&std::fs::read(dir().join(file)).unwrap()).unwrap();
    for op in entry["retarget"]["set"].as_array().unwrap() {
        let path = op[0].as_array().unwrap();
        set(&mut doc, path, op[1].clone());
    }
    serde_json::to_vec(&doc).unwrap()
}

fn answer(bytes: &[u8]) -> String {
    match parse_bytes(bytes) {
        Err(_) => "BadInput".into(),
        Ok(s) => match route(&cfg(), &s, clock()) {
            Routing::Ignore(v) => format!(
                "ignore:{}",
                serde_json::to_value(&v.outcome).unwrap()["reason"]
                    .as_str()
                    .unwrap()
            ),
            Routing::Sites(sites) => format!("sites:{}", sites.join(",")),
        },
    }
}

#[test]
fn every_published_file_is_listed_once_with_its_source() {
    let files: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && n != "MANIFEST.json")
        .collect();
    let listed: Vec<String> = manifest()
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, listed.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(listed.len(), files.len(), "listed twice");
    let sources = std::fs::read_to_string(dir().join("SOURCES.md")).unwrap();
    for e in manifest() {
        let file = e["file"].as_str().unwrap();
        assert!(sources.contains(file), "SOURCES.md says nothing of {file}");
        let commit = e["source"]["commit"].as_str().unwrap();
        assert_eq!(commit.len(), 40, "{file}: a full commit id");
        assert!(sources.contains(commit), "SOURCES.md names {file}'s commit");
    }
    assert!(files.len() >= 20, "{} published payloads", files.len());
}

#[test]
fn as_published_each_is_refused_or_ignored_before_any_aws_call() {
    for e in manifest() {
        let file = e["file"].as_str().unwrap();
        let got = answer(&std::fs::read(dir().join(file)).unwrap());
        assert!(
            !got.starts_with("sites:"),
            "{file}: nothing published is configured here, yet it reached {got}"
        );
        assert_eq!(got, e["as_published"].as_str().unwrap(), "{file}");
    }
}

#[test]
fn a_retarget_rewrites_only_identity_fields_and_times() {
    for e in manifest() {
        let file = e["file"].as_str().unwrap();
        for op in e["retarget"]["set"].as_array().unwrap() {
            let path = op[0].as_array().unwrap();
            // The key the value lands under (an index lands in the array named before it).
            let key = path
                .iter()
                .rev()
                .find_map(|p| p.as_str().filter(|k| *k != "$json"))
                .unwrap();
            assert!(
                IDENTITY_AND_TIME.contains(&key),
                "{file}: the retarget rewrites `{key}`, which is neither identity nor time"
            );
        }
    }
}

#[test]
fn retargeted_each_means_what_the_manifest_says() {
    let mut signals = 0;
    for e in manifest() {
        let file = e["file"].as_str().unwrap();
        let r = &e["retarget"];
        let bytes = retargeted(&e);
        let parsed = parse_bytes(&bytes);
        if r["expect"] == "malformed" {
            parsed.expect_err(file);
            continue;
        }
        let s = parsed.unwrap_or_else(|err| panic!("{file} retargeted: {err}"));
        assert_eq!(
            s.account.as_deref(),
            r["account"].as_str(),
            "{file}: account"
        );
        assert_eq!(s.region.as_deref(), r["region"].as_str(), "{file}: region");
        let want: DateTime<Utc> = r["time"].as_str().unwrap().parse().unwrap();
        assert_eq!(s.time, Some(want), "{file}: time");
        match (&s.kind, r["shape"].as_str().unwrap()) {
            (SignalKind::Alarm(a), "eventbridge-alarm" | "alarm-action" | "sns-alarm") => {
                let m = &r["alarm"];
                assert_eq!(a.name, m["alarm_name"].as_str().unwrap(), "{file}");
                let state = |v: &Value| AlarmState::parse(v.as_str().unwrap()).unwrap();
                assert_eq!(a.state, state(&m["state"]), "{file}");
                assert_eq!(a.previous, Some(state(&m["previous_state"])), "{file}");
                assert_eq!(a.composite, m["composite"].as_bool().unwrap(), "{file}");
            }
            (SignalKind::Rds(rds), "eventbridge-rds" | "sns-rds") => {
                let m = &r["rds"];
                assert_eq!(rds.source_id, m["source_id"].as_str().unwrap(), "{file}");
                assert_eq!(rds.event_id, m["event_id"].as_str().unwrap(), "{file}");
                assert_eq!(
                    serde_json::to_value(rds.meaning).unwrap(),
                    m["meaning"],
                    "{file}"
                );
                let st = match m["source_type"].as_str().unwrap() {
                    "instance" => RdsSourceType::Instance,
                    "cluster" => RdsSourceType::Cluster,
                    other => panic!("{file}: {other}"),
                };
                assert_eq!(rds.source_type, st, "{file}");
            }
            (SignalKind::Tick, "scheduled") => {}
            (k, shape) => panic!("{file}: parsed as {k:?}, manifest says {shape}"),
        }
        let sites: Vec<String> = r["routes_to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        match route(&cfg(), &s, clock()) {
            Routing::Sites(got) => assert_eq!(got, sites, "{file}"),
            Routing::Ignore(v) => panic!("{file} retargeted was ignored: {}", v.summary),
        }
        signals += 1;
    }
    assert!(signals >= 15, "{signals} retargeted payloads reach a site");
}
