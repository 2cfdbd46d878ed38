//! Issue 13's `reprotect` on the handler, through the fakes of RDS: the command records it, the
//! tick waits out a dark target region (saying so once), turns the source's automated backups
//! on, creates the replica with the configured settings, and on lag 0 the ledger's topology
//! lists it as a candidate.

use failover_policy::config::DbRef;
use failover_policy::reprotect::RpPhase;
use failover_policy::topology::Topology;

use super::*;

const SRC_ARN: &str = "arn:aws:rds:us-west-2:123456789012:db:orders-replica-1";
const REPLICA: &str = "orders-replica-1-rp1";

/// `orders` failed over to orders-replica-1 (us-west-2) and completed; `reprotect` configured
/// back into us-east-1, whose RDS API is dark; the new primary has automated backups off.
fn failed_over_world() -> World {
    let w = world();
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["reprotect"] = json!({
        "region": "us-east-1", "parameter_group": "orders-rp-params",
        "security_groups": ["sg-0123abcd"], "subnet_group": "orders-subnets",
        "kms_key_id": "alias/orders-east"
    });
    let w = w.with_config(Config::from_document(&doc.to_string()).unwrap());
    let mut st = failover_policy::SiteState::new("orders");
    st.epoch = 1;
    st.phase = Phase::Completed;
    st.topology = Some(Topology {
        epoch: 1,
        primary: DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        },
        endpoint: Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306".into()),
        candidates: vec![],
        at: t0(),
        configured_primary: None,
    });
    w.ledger.put(st);
    w.topology
        .set_instance(instance("orders-replica-1", "available", None));
    w.topology.kill_region("us-east-1");
    let mut f = w.fence.state.lock().unwrap();
    f.dark_regions.push("us-east-1".into());
    f.sources
        .insert("orders-replica-1".into(), (SRC_ARN.into(), 0));
    drop(f);
    w
}

fn command() -> Value {
    json!({"command": "reprotect", "site": "orders", "operator": "alice", "reason": "after epoch 1"})
}

fn reprotect_messages(w: &World) -> Vec<String> {
    w.bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == failover_policy::events::EventType::ReprotectChanged)
        .map(|e| e.verdict.summary.clone())
        .collect()
}

async fn tick(w: &World, n: i64) {
    w.clock.set(t0() + Duration::seconds(60 * n));
    handle(&w.deps, tick_event(&format!("tick-{n}"), w.clock.now()))
        .await
        .unwrap();
}

#[tokio::test]
async fn scenario_4_dark_region_waits_once_then_backups_then_created_then_protected() {
    let w = failed_over_world();
    handle(&w.deps, command()).await.unwrap();
    // The same command delivered again: still one re-protection.
    handle(&w.deps, command()).await.unwrap();
    assert_eq!(
        reprotect_messages(&w).len(),
        1,
        "{:?}",
        reprotect_messages(&w)
    );

    // Target region dark: waits, says so once over several ticks, creates nothing.
    for n in 1..=3 {
        tick(&w, n).await;
    }
    let msgs = reprotect_messages(&w);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[1].contains("us-east-1 does not answer"), "{msgs:?}");
    assert!(w.fence.state.lock().unwrap().replicas_created.is_empty());
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.reprotect.unwrap().phase, RpPhase::WaitingForRegion);

    // The region answers: backups first (retention 0), then the replica.
    w.topology.dead_regions.lock().unwrap().clear();
    w.fence.state.lock().unwrap().dark_regions.clear();
    tick(&w, 4).await;
    tick(&w, 5).await;
    {
        let f = w.fence.state.lock().unwrap();
        let calls: Vec<&str> = f
            .calls
            .iter()
            .map(String::as_str)
            .filter(|c| c.contains("BackupRetention") || c.contains("ReadReplica"))
            .collect();
        assert_eq!(
            calls,
            [
                "ModifyDBInstance orders-replica-1 BackupRetentionPeriod=7",
                "CreateDBInstanceReadReplica orders-replica-1-rp1"
            ]
        );
        let r = &f.replicas_created[0];
        assert_eq!(r.source_arn, SRC_ARN);
        assert_eq!(r.replica.region, "us-east-1");
        assert_eq!(r.parameter_group, "orders-rp-params");
        assert_eq!(r.security_groups, ["sg-0123abcd"]);
        assert_eq!(r.subnet_group.as_deref(), Some("orders-subnets"));
        assert_eq!(r.kms_key_id.as_deref(), Some("alias/orders-east"));
    }
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.reprotect.as_ref().unwrap().phase, RpPhase::CatchingUp);
    assert!(failover_policy::reprotect::unprotected(&st).is_some());

    // Not yet available: still catching up, nothing said.
    let said = reprotect_messages(&w).len();
    w.topology.set_instance(instance(REPLICA, "creating", None));
    tick(&w, 6).await;
    assert_eq!(reprotect_messages(&w).len(), said);

    // Available, replicating from the new primary, lag 0: protected, and a candidate.
    w.topology
        .set_instance(instance(REPLICA, "available", Some(SRC_ARN)));
    w.metrics.set_lag(REPLICA, 0.0);
    tick(&w, 7).await;
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.reprotect.as_ref().unwrap().phase, RpPhase::Protected);
    let t = st.topology.as_ref().unwrap();
    assert_eq!(t.candidates[0].id, REPLICA);
    assert_eq!(t.candidates[0].region, "us-east-1");
    assert!(failover_policy::reprotect::unprotected(&st).is_none());
    let msgs = reprotect_messages(&w);
    assert!(msgs.last().unwrap().contains("protected again"), "{msgs:?}");

    // Another reprotect now: refused, no second replica.
    let mut again = command();
    again["reason"] = json!("again");
    let r = handle(&w.deps, again).await.unwrap();
    assert!(
        r.verdicts[0].summary.contains("already protected"),
        "{}",
        r.verdicts[0].summary
    );
    tick(&w, 8).await;
    assert_eq!(w.fence.state.lock().unwrap().replicas_created.len(), 1);
}

#[tokio::test]
async fn a_source_still_backing_up_is_waited_for_not_failed() {
    let w = failed_over_world();
    w.topology.dead_regions.lock().unwrap().clear();
    w.fence.state.lock().unwrap().dark_regions.clear();
    handle(&w.deps, command()).await.unwrap();
    tick(&w, 1).await; // enabling-backups: backups turned on
    w.topology.set_status("orders-replica-1", "backing-up");
    tick(&w, 2).await;
    tick(&w, 3).await;
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.reprotect.as_ref().unwrap().phase, RpPhase::Creating);
    assert!(w.fence.state.lock().unwrap().replicas_created.is_empty());
    w.topology.set_status("orders-replica-1", "available");
    tick(&w, 4).await;
    assert_eq!(w.fence.state.lock().unwrap().replicas_created.len(), 1);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.reprotect.as_ref().unwrap().phase, RpPhase::CatchingUp);
}
