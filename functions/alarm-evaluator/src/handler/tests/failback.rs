//! Issue 13's `failback` on the handler, through the fakes: after a failover to us-west-2 and a
//! re-protection back into us-east-1, one command switches over to the us-east-1 replica (fence,
//! capture, catch-up, the promoter's and the pinner's ledger entries), and on `done` the epoch
//! is completed and the writer name's recorded PRIMARY/SECONDARY pair is requested back.

use failover_policy::config::DbRef;
use failover_policy::events::EventType;
use failover_policy::fence::AttachedGroup;
use failover_policy::gtid::{MariaPos, Position};
use failover_policy::incident::{DnsRecord, PromotionRecord};
use failover_policy::pin::{ChangeAction, FailoverRole, RecordSet};
use failover_policy::switchover::SwPhase;
use failover_policy::topology::Topology;
use failover_policy::verdict::{Outcome, RefusalReason};

use super::*;

const GROUP: &str = "orders-params";
const HOME: &str = "orders-primary.x.us-east-1.rds.amazonaws.com";
const DR: &str = "orders-replica-1.x.us-west-2.rds.amazonaws.com";
const NAME: &str = "db.orders.example.com.";

fn pos(s: &str) -> Position {
    Position::MariadbGtid(MariaPos::parse(s).unwrap())
}

fn db(id: &str, region: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: region.into(),
    }
}

/// The team's pair: PRIMARY → the us-east-1 writer (health-checked), SECONDARY → DR.
fn recorded() -> Vec<RecordSet> {
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
        rec("orders-primary", FailoverRole::Primary, HOME, Some("hc-1")),
        rec("orders-dr", FailoverRole::Secondary, DR, None),
    ]
}

/// Both members naming `host`: what a pin leaves.
fn pinned_to(host: &str) -> Vec<RecordSet> {
    recorded()
        .into_iter()
        .map(|r| RecordSet {
            values: vec![host.into()],
            ttl: Some(30),
            ..r
        })
        .collect()
}

/// Epoch 1 failed over to orders-replica-1 (us-west-2), pinned and completed; orders-primary
/// was rebuilt in us-east-1 as its replica (re-protected under its own identifier) and has
/// applied `applied`; orders-replica-1 answers over SQL at 0-1-105.
fn failed_over_and_reprotected(applied: &str) -> World {
    let w = world();
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["fence"] = json!({"parameter_group": GROUP});
    doc["sites"][0]["dns"]["mode"] =
        json!({"kind": "failover-pin", "primary_set_identifier": "orders-primary"});
    let w = w.with_config(Config::from_document(&doc.to_string()).unwrap());
    let dr_arn = "arn:aws:rds:us-west-2:123456789012:db:orders-replica-1";
    w.topology.set_instance(InstanceInfo {
        endpoint: Some((DR.into(), 3306)),
        ..instance("orders-replica-1", "available", None)
    });
    w.topology.set_instance(InstanceInfo {
        endpoint: Some((HOME.into(), 3306)),
        ..instance("orders-primary", "available", Some(dr_arn))
    });
    w.topology
        .set_instance(instance("orders-replica-2", "available", None));
    w.metrics.set_lag("orders-primary", 0.0);
    w.fence.state.lock().unwrap().groups.insert(
        "orders-replica-1".into(),
        vec![AttachedGroup {
            name: GROUP.into(),
            apply_status: "in-sync".into(),
        }],
    );
    let mut s = w.old_primary.state.lock().unwrap();
    s.reachable = true;
    s.follows = Some((w.fence.clone(), GROUP.into()));
    s.sessions = vec![7];
    s.position = Some(pos("0-1-105"));
    s.target_applied = Some(pos(applied));
    drop(s);
    let mut st = failover_policy::SiteState::new("orders");
    st.version = 3;
    st.epoch = 1;
    st.phase = Phase::Completed;
    st.topology = Some(Topology {
        epoch: 1,
        primary: db("orders-replica-1", "us-west-2"),
        endpoint: Some(format!("{DR}:3306")),
        candidates: vec![
            db("orders-primary", "us-east-1"),
            db("orders-replica-2", "us-west-2"),
        ],
        at: t0(),
        configured_primary: Some(db("orders-primary", "us-east-1")),
    });
    st.dns = Some(DnsRecord {
        epoch: 1,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: NAME.into(),
        record_type: "CNAME".into(),
        set_identifier: Some("orders-primary".into()),
        previous_values: vec![HOME.into()],
        previous_ttl: Some(60),
        new_value: DR.into(),
        change_id: Some("C1".into()),
        insync_at: Some(t0()),
        previous_records: Some(recorded()),
    });
    w.ledger.put(st);
    w
}

impl World {
    async fn failback(&self) -> Response {
        handle(
            &self.deps,
            json!({"command": "failback", "site": "orders", "reason": "back home",
                   "max_wait_secs": 60, "operator": "alice"}),
        )
        .await
        .unwrap()
    }
    async fn fb_tick(&self, n: usize, secs: i64) {
        self.clock.advance(secs);
        handle(&self.deps, tick_event(&format!("fb{n}"), self.clock.now()))
            .await
            .unwrap();
    }
    fn summaries(&self, t: EventType) -> Vec<String> {
        self.bus
            .published
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.event_type == t)
            .map(|e| e.verdict.summary.clone())
            .collect()
    }
    /// What the promoter and then the pinner record for the epoch, at these instants.
    fn promoter_and_pinner(
        &self,
        requested: DateTime<Utc>,
        verified: DateTime<Utc>,
        pinned: DateTime<Utc>,
    ) {
        let mut st = self.ledger.get("orders").unwrap();
        let epoch = st.epoch;
        st.promotion = Some(PromotionRecord {
            epoch,
            candidate: db("orders-primary", "us-east-1"),
            action: "PromoteReadReplica".into(),
            requested_at: requested,
            completed_at: Some(verified),
            endpoint: Some(format!("{HOME}:3306")),
            writable_verified_at: Some(verified),
            resolved: None,
        });
        st.original_dns = Some(failover_policy::unpin::carry(&st, &pinned_to(DR)));
        st.dns = Some(DnsRecord {
            epoch,
            zone_id: "Z0ORDERSEXAMPLE".into(),
            name: NAME.into(),
            record_type: "CNAME".into(),
            set_identifier: Some("orders-primary".into()),
            previous_values: vec![DR.into()],
            previous_ttl: Some(30),
            new_value: HOME.into(),
            change_id: Some("C2".into()),
            insync_at: Some(pinned),
            previous_records: Some(pinned_to(DR)),
        });
        st.transition(epoch, Phase::Promoted, verified, "promoted")
            .unwrap();
        st.transition(epoch, Phase::DnsPinned, pinned, "pinned")
            .unwrap();
        st.version += 1;
        self.ledger.put(st);
    }
}

#[tokio::test]
async fn failback_switches_over_to_the_reprotected_home_replica_then_restores_the_recorded_pair() {
    let w = failed_over_and_reprotected("0-1-105");
    let r = w.failback().await;
    let v = orders_verdict(&r);
    assert_eq!(v.outcome.name(), "failover-decided", "{}", v.summary);
    assert!(
        v.summary.contains("planned failback decided"),
        "{}",
        v.summary
    );
    let rec = w.ledger.get("orders").unwrap().switchover.unwrap();
    assert!(rec.failback);
    assert_eq!(rec.target, db("orders-primary", "us-east-1"));
    assert_eq!(rec.old_primary, db("orders-replica-1", "us-west-2"));

    // The same command again: one failback.
    let again = w.failback().await;
    assert!(
        orders_verdict(&again).summary.contains("duplicate"),
        "{}",
        orders_verdict(&again).summary
    );

    w.fb_tick(1, 10).await;
    let rec = w.ledger.get("orders").unwrap().switchover.unwrap();
    assert_eq!(rec.phase, SwPhase::Promoting, "{rec:?}");
    assert_eq!(rec.captured, Some(pos("0-1-105")));
    assert_eq!(
        w.fence.state.lock().unwrap().calls,
        vec![format!("ModifyDBParameterGroup {GROUP}")],
        "the DR writer fenced through its group, nothing else"
    );

    let started = rec.fence_started_at.unwrap();
    w.promoter_and_pinner(
        started + Duration::seconds(3),
        started + Duration::seconds(27),
        started + Duration::seconds(33),
    );
    w.fb_tick(2, 60).await;
    w.fb_tick(3, 60).await;
    let st = w.ledger.get("orders").unwrap();
    let rec = st.switchover.clone().unwrap();
    assert_eq!(rec.phase, SwPhase::Done, "{rec:?}");
    assert_eq!(rec.measured.as_ref().unwrap().rto_ms, 27_000);
    // Step two, in the ledger: the epoch completed on the home writer, the unpin requested.
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(
        st.topology.as_ref().unwrap().primary,
        db("orders-primary", "us-east-1")
    );
    assert!(
        failover_policy::unpin::pending(&st).is_some(),
        "{:?}",
        st.unpin
    );
    let done = w.summaries(EventType::FailoverCompleted);
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(
        done[0].starts_with("failback switchover") && done[0].contains("27000 ms"),
        "{done:?}"
    );
    let unpin = w.summaries(EventType::UnpinRequested);
    assert_eq!(unpin.len(), 1, "{unpin:?}");
    assert!(unpin[0].starts_with("failback:"), "{unpin:?}");

    // DNS restored: the dns-pinner's plan on this ledger, against the name as the failback's pin
    // left it, is the one batch back to the recorded pair (the PRIMARY health-checked again).
    let site = w.deps.cfg.site("orders").unwrap();
    let batch = failover_policy::unpin::plan(site, &st, &pinned_to(HOME)).unwrap();
    let created: Vec<_> = batch
        .iter()
        .filter(|c| c.action == ChangeAction::Create)
        .map(|c| c.record.clone())
        .collect();
    assert_eq!(created, recorded());
}

#[tokio::test]
async fn failback_before_the_home_replica_replicates_is_refused_nothing_fenced() {
    let w = failed_over_and_reprotected("0-1-105");
    w.topology.set_instance(InstanceInfo {
        endpoint: Some((HOME.into(), 3306)),
        ..instance("orders-primary", "available", None)
    });
    let r = w.failback().await;
    let v = orders_verdict(&r);
    assert_eq!(v.outcome.name(), "refused", "{}", v.summary);
    assert!(
        v.summary
            .contains("not re-protected in its original region us-east-1"),
        "{}",
        v.summary
    );
    assert!(w.ledger.get("orders").unwrap().switchover.is_none());
    assert!(w.fence.state.lock().unwrap().calls.is_empty());
}

#[tokio::test]
async fn a_failback_whose_target_never_catches_up_rolls_back_dr_writer_writable_dns_untouched() {
    let w = failed_over_and_reprotected("0-1-100");
    w.failback().await;
    w.fb_tick(1, 10).await;
    w.fb_tick(2, 60).await;
    w.fb_tick(3, 10).await;
    let st = w.ledger.get("orders").unwrap();
    let rec = st.switchover.clone().unwrap();
    assert_eq!(rec.phase, SwPhase::RolledBack, "{rec:?}");
    assert_eq!(st.phase, Phase::Aborted);
    assert!(
        !w.old_primary.state.lock().unwrap().read_only,
        "the DR writer has its writes back"
    );
    assert_eq!(st.dns.as_ref().unwrap().epoch, 1, "DNS untouched");
    let msgs = w.summaries(EventType::FailoverAborted);
    assert!(
        msgs.len() == 1 && msgs[0].contains("failback switchover"),
        "{msgs:?}"
    );
}

#[tokio::test]
async fn complete_during_a_failback_is_a_typed_refusal_naming_the_failback_and_changes_nothing() {
    let w = failed_over_and_reprotected("0-1-105");
    assert_eq!(
        orders_verdict(&w.failback().await).outcome.name(),
        "failover-decided"
    );
    w.fb_tick(1, 10).await;
    let complete = || async {
        let r = handle(
            &w.deps,
            json!({"command": "complete", "site": "orders", "epoch": 2,
                   "reason": "done, I think", "operator": "bob"}),
        )
        .await
        .unwrap();
        orders_verdict(&r).clone()
    };
    // While the switchover promotes, and once the promoter and the pinner have recorded theirs
    // but before the tick has taken them in: the failback completes the epoch itself.
    let v = complete().await;
    let started = w
        .ledger
        .get("orders")
        .unwrap()
        .switchover
        .unwrap()
        .fence_started_at
        .unwrap();
    w.promoter_and_pinner(
        started + Duration::seconds(3),
        started + Duration::seconds(27),
        started + Duration::seconds(33),
    );
    let pinned = w.ledger.get("orders").unwrap();
    let v2 = complete().await;
    for v in [v, v2] {
        assert_eq!(
            v.outcome,
            Outcome::Refused {
                reason: RefusalReason::FailbackInFlight
            },
            "{}",
            v.summary
        );
        assert!(
            v.summary.contains("failback") && v.summary.contains("epoch 2"),
            "{}",
            v.summary
        );
    }
    let after = w.ledger.get("orders").unwrap();
    assert_eq!(after.phase, pinned.phase);
    assert_eq!(
        after.topology, pinned.topology,
        "the topology is the failback's to write"
    );
    assert!(w.summaries(EventType::FailoverCompleted).is_empty());
    // The failback goes on and completes the epoch as before.
    w.fb_tick(2, 60).await;
    w.fb_tick(3, 60).await;
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.switchover.unwrap().phase, SwPhase::Done);
    assert_eq!(st.phase, Phase::Completed);
}
