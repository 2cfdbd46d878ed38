//! Regional loss and honest votes, as decision tables over the example configuration: the
//! quorum weighs up votes, RDS's own Multi-AZ failover is recognised from status alone, a canary
//! the server answers with an error is an up vote announced once, and the configuration refuses
//! an `auto` site that could not decide without its primary's region.
//!
//! Each test here fails on the code before issue 10: the old quorum (`down >= k`) fails over a
//! live primary in the first, the hold depended on the RDS event in the second, the canary's
//! error was a down vote in the third, and the configuration checks did not exist.

use chrono::{DateTime, Duration, TimeZone, Utc};
use failover_policy::config::{AlarmRole, DbRef};
use failover_policy::evidence::{
    AlarmEvidence, CanaryResult, CandidateEvidence, DbObservation, Evidence,
};
use failover_policy::signal::{AlarmState, Delivery};
use failover_policy::verdict::GuardResult;
use failover_policy::*;

const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");
const ACCOUNT: &str = "123456789012";

fn cfg() -> Config {
    Config::from_document(EXAMPLE).unwrap()
}

/// Tuesday 2026-11-24 10:00 UTC: outside every maintenance window of the example.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + Duration::seconds(secs)
}

fn tick(n: i64, time: DateTime<Utc>) -> Signal {
    Signal {
        id: format!("tick-{n}"),
        delivery: Delivery::EventBridge,
        source: "aws.events".into(),
        account: Some(ACCOUNT.into()),
        region: Some("us-west-2".into()),
        time: Some(time),
        kind: SignalKind::Tick,
    }
}

fn alarm(name: &str, state: Option<AlarmState>) -> AlarmEvidence {
    AlarmEvidence {
        name: name.into(),
        role: AlarmRole::Availability,
        state,
    }
}

fn replica(id: &str) -> CandidateEvidence {
    CandidateEvidence {
        db: DbRef {
            id: id.into(),
            region: "us-west-2".into(),
        },
        status: DbObservation::status("available"),
        replica_of_primary: Some(true),
        lag_secs: Some(1.0),
        lag_at: None,
        replication: None,
        created_at: None,
    }
}

fn orders(
    availability: Option<AlarmState>,
    witness: Option<AlarmState>,
    primary: DbObservation,
    canary: CanaryResult,
) -> Evidence {
    Evidence {
        alarms: vec![
            alarm("orders-primary-availability", availability),
            alarm("orders-primary-canary", witness),
        ],
        primary,
        candidates: vec![replica("orders-replica-1"), replica("orders-replica-2")],
        canary,
        primary_multi_az: Some(false),
        vantage_region: Some("us-west-2".into()),
        primary_gtid: None,
        read_only_groups: vec![],
    }
}

/// Evaluates `ev` on every tick `every` seconds apart for `secs`, as the handler would (the
/// record written back, the outbox flushed); returns every decision.
fn run(site: &SiteConfig, ev: &dyn Fn(i64) -> Evidence, every: i64, secs: i64) -> Vec<Decision> {
    let mut st = SiteState::new(&site.id);
    let mut out = vec![];
    for (n, s) in (0..=secs).step_by(every as usize).enumerate() {
        let d = decide(site, &tick(n as i64, at(s)), Some(&ev(s)), &st, at(s));
        if let Some(next) = &d.next {
            st = next.clone();
            st.outbox.clear();
        }
        out.push(d);
    }
    out
}

fn decided(ds: &[Decision]) -> usize {
    ds.iter()
        .filter(|d| matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }))
        .count()
}

fn emitted(ds: &[Decision], t: EventType) -> Vec<&DomainEvent> {
    ds.iter()
        .flat_map(|d| d.emit.iter())
        .filter(|e| e.event_type == t)
        .collect()
}

fn quorum(d: &Decision) -> &failover_policy::verdict::GuardCheck {
    d.verdict
        .guards
        .iter()
        .find(|g| g.guard == Guard::Quorum)
        .expect("quorum guard")
}

// ------------------------------------------------------------------ scenario 4: up votes weigh

#[test]
fn two_alarms_firing_against_rds_available_and_an_answering_canary_is_not_an_outage() {
    let c = cfg();
    let site = c.site("orders").unwrap();
    // Both availability alarms in ALARM (their metrics went missing and missing is breaching),
    // while RDS says available and the canary answers.
    let ev = |_| {
        orders(
            Some(AlarmState::Alarm),
            Some(AlarmState::Alarm),
            DbObservation::status("available"),
            CanaryResult::Reachable { latency_ms: 4 },
        )
    };
    let ds = run(site, &ev, 60, 3600);
    assert_eq!(decided(&ds), 0, "a live primary is never failed over");
    let last = ds.last().unwrap();
    let q = quorum(last);
    assert_ne!(q.result, GuardResult::Pass);
    assert!(q.detail.starts_with("down 2, up 2,"), "{}", q.detail);
    assert!(
        last.verdict.summary.contains("down 2, up 2"),
        "{}",
        last.verdict.summary
    );
}

// ------------------------------------------------------- scenario 5: Multi-AZ seen from status

fn multi_az_failing_over(status: &'static str) -> impl Fn(i64) -> Evidence {
    move |_| Evidence {
        alarms: vec![alarm("inventory-db-availability", Some(AlarmState::Alarm))],
        primary: DbObservation::status(status),
        candidates: vec![],
        canary: CanaryResult::Unreachable {
            error: "connection refused".into(),
        },
        primary_multi_az: Some(true),
        vantage_region: Some("us-west-2".into()),
        primary_gtid: None,
        read_only_groups: vec![],
    }
}

#[test]
fn a_multi_az_failover_seen_only_as_status_is_not_raced_within_the_grace() {
    let c = cfg();
    let site = c.site("inventory").unwrap();
    assert_eq!(site.thresholds.managed_recovery_grace_secs, 180);
    for status in ["rebooting", "failing-over", "modifying"] {
        // 150 s of `rebooting` with the alarm firing and the canary refused, and no RDS event.
        let ds = run(site, &multi_az_failing_over(status), 10, 150);
        assert_eq!(
            decided(&ds),
            0,
            "{status}: RDS's own failover must not be raced"
        );
        let held = ds.last().unwrap();
        let g = held
            .verdict
            .guards
            .iter()
            .find(|g| g.guard == Guard::ManagedFailover)
            .unwrap();
        assert_eq!(g.result, GuardResult::Fail, "{status}");
        assert!(g.detail.contains(status), "{}", g.detail);
        assert_eq!((g.observed, g.limit), (Some(150.0), Some(180.0)));
    }
}

#[test]
fn a_multi_az_status_that_outlasts_the_grace_falls_back_to_the_normal_rules() {
    let c = cfg();
    let site = c.site("inventory").unwrap();
    let ds = run(site, &multi_az_failing_over("rebooting"), 10, 400);
    assert_eq!(
        decided(&ds),
        1,
        "exactly one decision once the grace has passed"
    );
    let first = ds
        .iter()
        .position(|d| matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }))
        .unwrap();
    assert_eq!(
        first as i64 * 10,
        180,
        "decided on the first tick past the grace"
    );
    let g = ds[first]
        .verdict
        .guards
        .iter()
        .find(|g| g.guard == Guard::ManagedFailover)
        .unwrap();
    assert_eq!(g.result, GuardResult::Pass);
    assert!(
        g.detail.contains("longer than the 180 s grace"),
        "{}",
        g.detail
    );
}

#[test]
fn a_rebooting_primary_that_is_not_multi_az_gets_no_grace() {
    let c = cfg();
    let site = c.site("orders").unwrap();
    let ev = |_| {
        orders(
            Some(AlarmState::Alarm),
            Some(AlarmState::Alarm),
            DbObservation::status("rebooting"),
            CanaryResult::Unreachable {
                error: "refused".into(),
            },
        )
    };
    let ds = run(site, &ev, 10, 150);
    assert_eq!(
        decided(&ds),
        1,
        "a single-AZ reboot has no standby to fail over to"
    );
}

// -------------------------------------------- scenario 6: a canary the server answers with 1045

#[test]
fn a_canary_answered_with_access_denied_for_an_hour_is_one_warning_and_no_failover() {
    // quorum 1 and auto, said explicitly: the canary alone could decide.
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["thresholds"]["quorum"] = 1.into();
    doc["sites"][0]["thresholds"]["allow_single_vote"] = true.into();
    let c = Config::from_document(&doc.to_string()).unwrap();
    let site = c.site("orders").unwrap();
    let ev = |_| {
        orders(
            Some(AlarmState::Ok),
            Some(AlarmState::Ok),
            DbObservation::status("available"),
            CanaryResult::Answered {
                code: Some(1045),
                error: "ERROR 1045 (28000): Access denied for user 'failover_canary'".into(),
            },
        )
    };
    let ds = run(site, &ev, 60, 3600);
    assert_eq!(decided(&ds), 0);
    assert!(
        ds.iter().all(|d| d.verdict.epoch == 0),
        "no incident opened"
    );
    let warnings = emitted(&ds, EventType::EvidenceWarning);
    assert_eq!(
        warnings.len(),
        1,
        "one warning per episode, not one per tick"
    );
    let w = &warnings[0].verdict.summary;
    assert!(
        w.contains("canary needs fixing") && w.contains("Access denied"),
        "{w}"
    );
    // The notifier's key for it is its own: a later episode in the same epoch pages again.
    let key = failover_policy::notice::NoticeKey::of(warnings[0]);
    assert!(key.discriminator.is_some());
}

// -------------------------------------------------- config: quorum reachable outside the region

fn with_site(edit: impl Fn(&mut serde_json::Value)) -> Result<Config, ConfigError> {
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    edit(&mut doc["sites"][0]);
    Config::from_document(&doc.to_string())
}

#[test]
fn an_auto_site_whose_quorum_needs_its_primarys_region_is_refused_naming_the_voters() {
    // Without the witness's alarm only the DR-side canary is left when us-east-1 is lost.
    let err = with_site(|s| {
        s["alarms"] = serde_json::json!([
            {"name": "orders-primary-availability", "role": "availability", "region": "us-east-1"},
            {"name": "orders-replica-lag", "role": "lag"}
        ]);
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("sites[0].thresholds.quorum"), "{msg}");
    assert!(
        msg.contains(
            "if us-east-1 is lost, only 1 voters remain (sql canary from us-west-2); quorum is 2"
        ),
        "{msg}"
    );
    // The same site in require-approval is a human's call: allowed.
    with_site(|s| {
        s["alarms"] = serde_json::json!([
            {"name": "orders-primary-availability", "role": "availability", "region": "us-east-1"}
        ]);
        s["approval"] = "require-approval".into();
    })
    .unwrap();
}

#[test]
fn auto_with_a_quorum_of_one_must_be_asked_for() {
    let err = with_site(|s| s["thresholds"]["quorum"] = 1.into()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("sites[0].thresholds.quorum") && msg.contains("allow_single_vote"),
        "{msg}"
    );
    with_site(|s| {
        s["thresholds"]["quorum"] = 1.into();
        s["thresholds"]["allow_single_vote"] = true.into();
    })
    .unwrap();
}

#[test]
fn every_example_site_survives_the_loss_of_its_primarys_region() {
    let c = cfg();
    for site in &c.sites {
        if site.primary.region == c.region {
            continue; // protected against instance and AZ loss; the functions share its region
        }
        let outside = failover_policy::vantage::voters_outside_primary_region(site, &c.region);
        assert!(
            outside.len() as u32 >= site.thresholds.quorum,
            "{}: {outside:?} vs quorum {}",
            site.id,
            site.thresholds.quorum
        );
    }
}

#[test]
fn the_warning_reads_as_a_warning_that_failed_nothing_over() {
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["thresholds"]["quorum"] = 1.into();
    doc["sites"][0]["thresholds"]["allow_single_vote"] = true.into();
    let c = Config::from_document(&doc.to_string()).unwrap();
    let ev = |_| {
        orders(
            Some(AlarmState::Ok),
            Some(AlarmState::Ok),
            DbObservation::status("available"),
            CanaryResult::Answered {
                code: Some(1040),
                error: "ERROR 1040 (08004): Too many connections".into(),
            },
        )
    };
    let ds = run(c.site("orders").unwrap(), &ev, 60, 120);
    let [w] = emitted(&ds, EventType::EvidenceWarning)[..] else {
        panic!("one warning")
    };
    let wire = serde_json::to_value(w).unwrap();
    let back = failover_policy::notice::parse_domain_event(&wire).unwrap();
    let n = failover_policy::notice::compose(&back, at(120));
    let subject = failover_policy::notice::subject(&back);
    assert!(subject.contains("a voter needs attention"), "{subject}");
    assert_eq!(back.event_type.severity(), "warning");
    let body = format!("{n:?}");
    assert!(body.contains("Too many connections"), "{body}");
    assert!(
        body.contains("Nothing was failed over because of it"),
        "{body}"
    );
}
