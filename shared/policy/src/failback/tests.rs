use super::*;
use crate::config::Config;
use crate::evidence::CanaryResult;
use crate::incident::{DnsRecord, PromotionRecord};
use crate::pin::{FailoverRole, RecordSet};
use crate::topology::Topology;
use crate::unpin::Original;
use chrono::TimeZone;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");
const OLD: &str = "orders-primary.cabcdefghijk.us-east-1.rds.amazonaws.com";
const DR: &str = "orders-replica-1.cabcdefghijk.us-west-2.rds.amazonaws.com";
const NAME: &str = "db.orders.example.com.";

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn site() -> SiteConfig {
    Config::from_document(EXAMPLE)
        .unwrap()
        .site("orders")
        .unwrap()
        .clone()
}

fn db(id: &str, region: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: region.into(),
    }
}

fn dr() -> DbRef {
    db("orders-replica-1", "us-west-2")
}

/// Epoch 1 failed over to orders-replica-1 (us-west-2) and was completed: the ledger's topology
/// names it the writer, with `candidates` as the ones it knows.
fn failed_over(candidates: Vec<DbRef>) -> SiteState {
    let mut s = SiteState::new("orders");
    s.version = 9;
    s.epoch = 1;
    s.phase = Phase::Completed;
    s.topology = Some(Topology {
        epoch: 1,
        primary: dr(),
        endpoint: Some(format!("{DR}:3306")),
        candidates,
        at: t(0),
        configured_primary: Some(site().primary),
    });
    s
}

fn seen(db: DbRef, status: &str, replicating: Option<bool>, lag: Option<f64>) -> CandidateEvidence {
    CandidateEvidence {
        db,
        status: DbObservation::Status {
            status: status.into(),
        },
        replica_of_primary: replicating,
        lag_secs: lag,
        lag_at: None,
        replication: None,
        created_at: None,
    }
}

fn evidence(candidates: Vec<CandidateEvidence>) -> Evidence {
    Evidence {
        alarms: vec![],
        primary: DbObservation::Status {
            status: "available".into(),
        },
        candidates,
        canary: CanaryResult::Reachable { latency_ms: 3 },
        primary_multi_az: None,
        vantage_region: None,
        primary_gtid: Some(true),
        read_only_groups: vec![],
    }
}

fn judge(st: &SiteState, ev: &Evidence) -> Result<DbRef, Refused> {
    let cfg = site();
    let live = crate::topology::effective(&cfg, st).into_owned();
    target(&cfg, &live, st, ev)
}

fn home() -> DbRef {
    db("orders-primary-rp", "us-east-1")
}

#[test]
fn the_replica_reprotected_in_the_original_region_is_the_target() {
    let st = failed_over(vec![
        site().primary,
        home(),
        db("orders-replica-2", "us-west-2"),
    ]);
    let ev = evidence(vec![
        // The old primary: fenced, replicating from nothing.
        seen(site().primary, "available", Some(false), None),
        seen(
            db("orders-replica-2", "us-west-2"),
            "available",
            Some(true),
            Some(0.0),
        ),
        seen(home(), "available", Some(true), Some(1.0)),
    ]);
    assert_eq!(judge(&st, &ev), Ok(home()));
}

#[test]
fn refused_while_not_reprotected_there_the_old_primary_is_never_a_target() {
    let st = failed_over(vec![site().primary, db("orders-replica-2", "us-west-2")]);
    let ev = evidence(vec![
        seen(site().primary, "available", Some(false), None),
        seen(
            db("orders-replica-2", "us-west-2"),
            "available",
            Some(false),
            None,
        ),
    ]);
    let e = judge(&st, &ev).unwrap_err();
    assert!(matches!(e, Refused::NotReprotected { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("us-east-1")
            && text.contains("orders-primary (us-east-1) is available, not replicating"),
        "{text}"
    );
}

#[test]
fn refused_while_the_home_replica_lags_or_is_still_being_created() {
    let st = failed_over(vec![home()]);
    for (status, lag) in [
        ("available", Some(12.0)),
        ("creating", Some(0.0)),
        ("available", None),
    ] {
        let ev = evidence(vec![seen(home(), status, Some(true), lag)]);
        let e = judge(&st, &ev).unwrap_err();
        assert!(
            matches!(e, Refused::NotReprotected { .. }),
            "{status} {lag:?}: {e}"
        );
    }
}

#[test]
fn a_replica_in_another_region_is_refused_as_elsewhere() {
    let other = db("orders-replica-2", "us-west-2");
    let st = failed_over(vec![other.clone()]);
    let ev = evidence(vec![seen(other, "available", Some(true), Some(0.0))]);
    let e = judge(&st, &ev).unwrap_err();
    assert!(matches!(e, Refused::ReplicaElsewhere { .. }), "{e}");
    assert!(
        e.to_string().contains("orders-replica-2 (us-west-2)"),
        "{e}"
    );
}

#[test]
fn refused_while_an_incident_or_switchover_is_open() {
    let mut st = failed_over(vec![home()]);
    let ev = evidence(vec![seen(home(), "available", Some(true), Some(0.0))]);
    for phase in [Phase::Suspected, Phase::Promoting, Phase::DnsPinned] {
        st.phase = phase;
        let e = judge(&st, &ev).unwrap_err();
        assert!(matches!(e, Refused::IncidentOpen { .. }), "{phase}: {e}");
    }
}

#[test]
fn refused_when_the_writer_is_in_the_original_region_already() {
    let mut st = failed_over(vec![]);
    st.topology = None;
    let ev = evidence(vec![seen(dr(), "available", Some(true), Some(0.0))]);
    let e = judge(&st, &ev).unwrap_err();
    assert!(matches!(e, Refused::NotFailedOver { .. }), "{e}");
}

fn pair(primary_host: &str) -> Vec<RecordSet> {
    let rec = |set: &str, role, host: &str, hc: Option<&str>| RecordSet {
        name: NAME.into(),
        record_type: "CNAME".into(),
        set_identifier: Some(set.into()),
        failover: Some(role),
        ttl: Some(60),
        values: vec![host.into()],
        health_check_id: hc.map(String::from),
        alias_target: None,
    };
    vec![
        rec(
            "orders-primary",
            FailoverRole::Primary,
            primary_host,
            Some("hc-1"),
        ),
        rec("orders-dr", FailoverRole::Secondary, DR, None),
    ]
}

/// Epoch 2, the failback switchover to `target` at `host`, promoted, verified and pinned: what
/// the driver's commit holds when the record reaches `done`.
fn pinned_failback(target: DbRef, host: &str) -> (SiteState, SwitchoverRecord) {
    let mut st = failed_over(vec![target.clone()]);
    st.epoch = 2;
    st.phase = Phase::DnsPinned;
    st.original_dns = Some(Original {
        epoch: 1,
        records: pair(OLD),
    });
    st.promotion = Some(PromotionRecord {
        epoch: 2,
        candidate: target.clone(),
        action: "PromoteReadReplica".into(),
        requested_at: t(100),
        completed_at: Some(t(130)),
        endpoint: Some(format!("{host}:3306")),
        writable_verified_at: Some(t(130)),
        resolved: None,
    });
    st.dns = Some(DnsRecord {
        epoch: 2,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: NAME.into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        previous_values: vec![DR.into()],
        previous_ttl: Some(30),
        new_value: host.into(),
        change_id: Some("C2".into()),
        insync_at: Some(t(140)),
        previous_records: None,
    });
    let req = crate::switchover::Request {
        target,
        by: "ana".into(),
        reason: "back home".into(),
        max_wait_secs: Some(60),
        drill: false,
    };
    let live = crate::topology::effective(&site(), &st).into_owned();
    let mut rec = crate::switchover::start(&live, 2, &req, t(90));
    rec.failback = true;
    rec.phase = crate::switchover::SwPhase::Done;
    rec.measured = Some(crate::switchover::Measured {
        rto_ms: 38_000,
        rpo_transactions: Some(0),
    });
    st.switchover = Some(rec.clone());
    (st, rec)
}

#[test]
fn done_completes_the_epoch_and_requests_the_recorded_shape_back() {
    // Re-protected under the original identifier: the recorded PRIMARY names the writer again.
    let (mut st, rec) = pinned_failback(site().primary, OLD);
    finish(&site(), &mut st, &rec, t(141));
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.topology.as_ref().unwrap().primary, site().primary);
    let u = crate::unpin::pending(&st).expect("the unpin is requested");
    assert_eq!(u.epoch, 2);
    let kinds: Vec<_> = st.outbox.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        vec![EventType::FailoverCompleted, EventType::UnpinRequested]
    );
    let s = &st.outbox[0].verdict.summary;
    assert!(
        s.starts_with("failback switchover") && s.contains("38000 ms") && s.contains("RPO 0"),
        "{s}"
    );
}

#[test]
fn done_on_a_new_replica_completes_but_never_points_the_name_at_the_old_primary() {
    let host = "orders-primary-rp.cabcdefghijk.us-east-1.rds.amazonaws.com";
    let (mut st, rec) = pinned_failback(home(), host);
    finish(&site(), &mut st, &rec, t(141));
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.topology.as_ref().unwrap().primary, home());
    assert!(
        crate::unpin::pending(&st).is_none(),
        "the recorded PRIMARY names the old primary"
    );
    assert_eq!(st.outbox.len(), 1);
    let s = &st.outbox[0].verdict.summary;
    assert!(s.contains("stays pinned") && s.contains(OLD), "{s}");
}
