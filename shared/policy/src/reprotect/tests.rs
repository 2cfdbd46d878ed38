use super::*;
use crate::config::Config;
use crate::incident::Phase;
use chrono::TimeZone;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn cfg(group: &str) -> ReprotectConfig {
    ReprotectConfig {
        region: "us-east-1".into(),
        parameter_group: group.into(),
        security_groups: vec!["sg-0123abcd".into()],
        subnet_group: Some("orders-east".into()),
        kms_key_id: Some("alias/orders".into()),
        instance_class: None,
        auto: false,
        backup_retention_days: 7,
    }
}

fn site() -> SiteConfig {
    let mut s = Config::from_document(EXAMPLE)
        .unwrap()
        .site("orders")
        .unwrap()
        .clone();
    s.reprotect = Some(cfg("orders-replica-params"));
    s
}

/// Failed over to orders-replica-1 and completed: the ledger owns the topology.
fn completed() -> SiteState {
    let mut s = SiteState::new("orders");
    s.epoch = 1;
    s.phase = Phase::Completed;
    s.topology = Some(Topology {
        epoch: 1,
        primary: DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        },
        endpoint: Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306".into()),
        candidates: vec![DbRef {
            id: "orders-primary".into(),
            region: "us-east-1".into(),
        }],
        at: t(0),
        configured_primary: None,
    });
    s
}

#[test]
fn a_default_parameter_group_is_refused_by_validation() {
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["reprotect"] = serde_json::to_value(cfg("default.mariadb10.11")).unwrap();
    let e = Config::from_document(&doc.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("reprotect.parameter_group") && e.contains("default.mariadb10.11"),
        "{e}"
    );
    doc["sites"][0]["reprotect"] = serde_json::to_value(cfg("orders-replica-params")).unwrap();
    assert!(Config::from_document(&doc.to_string()).is_ok());
}

/// Issue 13 finding 1: the fence sets read_only=1 in its group; a replica created with that same
/// group (same region) would stay read-only once promoted — refused by validation, naming it.
#[test]
fn a_reprotect_group_equal_to_the_fence_group_is_refused_by_validation() {
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["fence"] = serde_json::json!({"parameter_group": "orders-params"});
    let mut rp = serde_json::to_value(cfg("orders-params")).unwrap();
    rp["region"] = serde_json::json!("us-east-1");
    doc["sites"][0]["reprotect"] = rp.clone();
    let e = Config::from_document(&doc.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("reprotect.parameter_group")
            && e.contains("orders-params")
            && e.contains("read_only=1"),
        "{e}"
    );
    rp["parameter_group"] = serde_json::json!("orders-rp-params");
    doc["sites"][0]["reprotect"] = rp;
    assert!(Config::from_document(&doc.to_string()).is_ok());
}

#[test]
fn the_replica_is_of_the_ledgers_primary_into_the_configured_region() {
    let r = start(&site(), &completed(), "req-1", None, t(1)).unwrap();
    assert_eq!(r.source.id, "orders-replica-1");
    assert_eq!(
        (r.replica.id.as_str(), r.replica.region.as_str()),
        ("orders-replica-1-rp1", "us-east-1")
    );
    assert_eq!(r.phase, RpPhase::WaitingForRegion);
}

#[test]
fn refusals_and_dedupe() {
    let mut plain = site();
    plain.reprotect = None;
    assert!(matches!(
        start(&plain, &completed(), "r", None, t(1)),
        Err(Refused::NotConfigured(_))
    ));
    let mut open = completed();
    open.phase = Phase::DnsPinned;
    assert!(matches!(
        start(&site(), &open, "r", None, t(1)),
        Err(Refused::MidIncident { .. })
    ));
    let mut st = completed();
    st.reprotect = Some(start(&site(), &st, "req-1", None, t(1)).unwrap());
    assert_eq!(
        start(&site(), &st, "req-1", None, t(2)).unwrap(),
        st.reprotect.clone().unwrap()
    );
    assert!(matches!(
        start(&site(), &st, "req-2", None, t(2)),
        Err(Refused::InFlight { .. })
    ));
}

#[test]
fn scenario_4_a_dark_region_waits_and_says_so_once_then_creates_when_it_answers() {
    let r = start(&site(), &completed(), "req-1", None, t(1)).unwrap();
    let (r, m1) = advance(
        &r,
        Observation::RegionDark("timeout after 15 s".into()),
        t(60),
    );
    assert!(m1
        .unwrap()
        .contains("UNPROTECTED: us-east-1 does not answer"));
    let (r, m2) = advance(
        &r,
        Observation::RegionDark("timeout after 15 s".into()),
        t(120),
    );
    assert_eq!(
        (r.phase, m2),
        (RpPhase::WaitingForRegion, None),
        "no new message each tick"
    );
    let (r, m) = advance(&r, Observation::SourceBackups(0), t(180));
    assert_eq!(r.phase, RpPhase::EnablingBackups);
    assert!(m.unwrap().contains("automated backups"));
    let (r, m) = advance(&r, Observation::SourceBackups(1), t(240));
    assert_eq!(r.phase, RpPhase::Creating);
    assert!(m.unwrap().contains("orders-replica-params"));
    let (r, _) = advance(&r, Observation::Created, t(300));
    assert_eq!(r.phase, RpPhase::CatchingUp);
    let seen = |lag| Observation::Replica {
        available: true,
        replicating_from_source: true,
        lag_secs: lag,
    };
    let (r, m) = advance(&r, seen(Some(3.0)), t(360));
    assert_eq!((r.phase, m), (RpPhase::CatchingUp, None));
    let (r, m) = advance(&r, seen(None), t(400));
    assert_eq!(
        (r.phase, m),
        (RpPhase::CatchingUp, None),
        "unknown lag is not lag 0"
    );
    let (r, m) = advance(&r, seen(Some(0.0)), t(420));
    assert_eq!(r.phase, RpPhase::Protected);
    assert!(m.unwrap().contains("protected again"));
    let mut st = completed();
    assert!(unprotected(&st).is_some());
    let topo = protected_topology(&site(), &st, &r, t(421)).unwrap();
    assert_eq!(topo.candidates[0], r.replica);
    st.reprotect = Some(r);
    st.topology = Some(topo);
    assert_eq!(unprotected(&st), None);
}

fn reprotect_signal(reason: &str) -> crate::Signal {
    crate::parse_signal(&serde_json::json!({
        "command": "reprotect", "site": "orders", "operator": "alice", "reason": reason
    }))
    .unwrap()
}

#[test]
fn the_command_records_the_request_once_and_says_so() {
    let d = crate::decide(
        &site(),
        &reprotect_signal("after epoch 1"),
        None,
        &completed(),
        t(100),
    );
    let next = d.next.expect("recorded");
    let r = next.reprotect.clone().unwrap();
    assert_eq!(r.phase, RpPhase::WaitingForRegion);
    assert_eq!(r.source.id, "orders-replica-1");
    assert_eq!(d.emit.len(), 1);
    assert_eq!(d.emit[0].event_type, EventType::ReprotectChanged);
    assert!(d.verdict.summary.contains("alice"), "{}", d.verdict.summary);
    // The same command again (a direct invoke's id is per site and command): nothing new.
    let again = crate::decide(&site(), &reprotect_signal("again"), None, &next, t(101));
    assert!(again.next.is_none() && again.emit.is_empty());
    assert!(
        again.verdict.summary.contains("already in flight"),
        "{}",
        again.verdict.summary
    );
    // Another request (another EventBridge event id) while it is in flight: refused, typed.
    let mut other = reprotect_signal("other");
    other.id = "evt-2".into();
    let refused = crate::decide(&site(), &other, None, &next, t(102));
    assert!(refused.next.is_none() && refused.emit.is_empty());
    assert_eq!(
        refused.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NotReprotectable
        }
    );
}

#[test]
fn the_command_is_refused_typed_without_a_section_or_mid_incident_or_reason() {
    let mut bare = site();
    bare.reprotect = None;
    let d = crate::decide(&bare, &reprotect_signal("x"), None, &completed(), t(100));
    assert!(d.next.is_none() && d.emit.is_empty());
    assert!(
        d.verdict.summary.contains("no `reprotect` section"),
        "{}",
        d.verdict.summary
    );
    let mut open = completed();
    open.phase = Phase::Promoting;
    let d = crate::decide(&site(), &reprotect_signal("x"), None, &open, t(100));
    assert!(d.next.is_none() && d.emit.is_empty());
    assert!(
        crate::parse_signal(&serde_json::json!({"command": "reprotect", "site": "orders"}))
            .is_err()
    );
}

#[test]
fn a_protected_primary_is_not_reprotected_twice() {
    let mut st = completed();
    let mut r = start(&site(), &st, "req-1", None, t(1)).unwrap();
    r.phase = RpPhase::Protected;
    st.reprotect = Some(r);
    assert!(matches!(
        start(&site(), &st, "req-2", None, t(2)),
        Err(Refused::AlreadyProtected { .. })
    ));
}

#[test]
fn status_says_unprotected_until_the_primary_is_reprotected() {
    let status =
        crate::parse_signal(&serde_json::json!({"command": "status", "site": "orders"})).unwrap();
    let d = crate::decide(&site(), &status, None, &completed(), t(100));
    assert!(
        d.verdict.summary.contains("UNPROTECTED"),
        "{}",
        d.verdict.summary
    );
    let mut st = completed();
    let mut r = start(&site(), &st, "req-1", None, t(1)).unwrap();
    r.phase = RpPhase::Protected;
    st.reprotect = Some(r);
    let d = crate::decide(&site(), &status, None, &st, t(100));
    assert!(
        !d.verdict.summary.contains("UNPROTECTED"),
        "{}",
        d.verdict.summary
    );
}

#[test]
fn catching_up_has_a_deadline_then_fails_with_a_page_naming_the_replica() {
    let r = start(&site(), &completed(), "req-1", None, t(1)).unwrap();
    let (r, _) = advance(&r, Observation::SourceBackups(1), t(10));
    // A dark region before the creation does not count against the catch-up deadline.
    let created = 10 * 3600;
    let (r, _) = advance(&r, Observation::Created, t(created));
    assert_eq!(r.phase, RpPhase::CatchingUp);
    let lagging = || Observation::Replica {
        available: true,
        replicating_from_source: true,
        lag_secs: Some(30.0),
    };
    let limit = CATCH_UP_DEADLINE_SECS;
    let (r, m) = advance(&r, lagging(), t(created + limit - 60));
    assert_eq!(
        (r.phase, m),
        (RpPhase::CatchingUp, None),
        "within the deadline: waits"
    );
    let (r, m) = advance(&r, lagging(), t(created + limit + 1));
    assert_eq!(r.phase, RpPhase::Failed);
    let m = m.expect("a page");
    assert!(
        m.contains("FAILED")
            && m.contains("orders-replica-1-rp1")
            && m.contains("UNPROTECTED")
            && m.contains(&format!("{} h", limit / 3600)),
        "{m}"
    );
    // A failed re-protection is done: a new command may start another.
    assert!(start(
        &site(),
        &completed_with(r),
        "req-2",
        Some("other-rp"),
        t(created + limit + 60)
    )
    .is_ok());
}

fn completed_with(r: ReprotectRecord) -> SiteState {
    let mut st = completed();
    st.reprotect = Some(r);
    st
}
