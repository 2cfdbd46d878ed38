//! Issue 13's `drill` on the handler, through the fakes: refused outside the site's maintenance
//! windows before any AWS call; an out leg whose target never catches up is rolled back by the
//! switchover driver, and the drill ends `rolled-back` saying so (the old primary writable).

use failover_policy::drill::DrillPhase;
use failover_policy::fence::AttachedGroup;
use failover_policy::switchover::SwPhase;
use failover_policy::verdict::Outcome;

use super::switchover::fenced_world;
use super::*;

fn drill_world(applied: &str) -> World {
    let w = fenced_world(applied);
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["fence"] = json!({"parameter_group": "orders-primary-params"});
    doc["sites"][0]["reprotect"] = json!({
        "region": "us-east-1", "parameter_group": "orders-rp-params",
        "security_groups": ["sg-0123abcd"], "subnet_group": "orders-subnets"
    });
    w.with_config(Config::from_document(&doc.to_string()).unwrap())
}

async fn drill(w: &World, outside_window: bool) -> Response {
    handle(
        &w.deps,
        json!({"command": "drill", "site": "orders", "candidate": "orders-replica-1",
               "reason": "quarterly DR drill", "max_wait_secs": 30, "operator": "alice",
               "outside_window": outside_window}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_drill_outside_every_window_is_refused_before_any_aws_mutation() {
    let w = drill_world("0-1-105");
    let now = w.clock.now();
    let site = w.deps.cfg.site("orders").unwrap().clone();
    assert!(
        site.in_maintenance(now).is_none(),
        "the fake clock is outside sun:03:00-sun:04:00"
    );
    let r = drill(&w, false).await;
    let s = &r.verdicts[0].summary;
    assert!(
        s.contains("outside every maintenance window") && s.contains("sun:03:00-sun:04:00"),
        "{s}"
    );
    let st = w
        .ledger
        .get("orders")
        .unwrap_or_else(|| SiteState::new("orders"));
    assert!(st.drill.is_none() && st.switchover.is_none());
    assert!(
        w.fence.state.lock().unwrap().calls.is_empty(),
        "no fence call"
    );
}

#[tokio::test]
async fn an_out_leg_that_times_out_rolls_back_and_the_drill_says_so() {
    let w = drill_world("0-1-100");
    let r = drill(&w, true).await;
    assert!(
        matches!(r.verdicts[0].outcome, Outcome::FailoverDecided { .. }),
        "{:?}",
        r.verdicts[0]
    );
    for (n, secs) in [(1, 5), (2, 60), (3, 60), (4, 60)] {
        w.sw_tick(n, secs).await;
    }
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.switchover.as_ref().unwrap().phase, SwPhase::RolledBack);
    let d = st.drill.clone().unwrap();
    assert_eq!(d.phase, DrillPhase::RolledBack, "{d:?}");
    assert!(d.note.unwrap().contains("stays on orders-primary"));
    assert_eq!(st.drills.len(), 1);
    assert!(
        !w.old_primary.state.lock().unwrap().read_only,
        "writable again"
    );
    let aborted = w.published("FailoverAborted");
    assert!(
        aborted
            .iter()
            .any(|m| m.starts_with("DRILL 1 out leg") && m.contains("ROLLED BACK")),
        "{aborted:?}"
    );
    assert!(
        aborted.iter().any(|m| m.starts_with("DRILL switchover")),
        "{aborted:?}"
    );
}

/// Issue 13 finding 1: a target whose own parameter group holds an explicit read_only=1 (fenced
/// in an earlier epoch, never reset) would stay read-only once promoted — both sides read-only.
/// The drill (its out leg's switchover) is refused before the fence, naming the group.
#[tokio::test]
async fn a_target_whose_group_holds_read_only_1_is_refused_before_the_fence() {
    let w = drill_world("0-1-105");
    {
        let mut f = w.fence.state.lock().unwrap();
        f.groups.insert(
            "orders-replica-1".into(),
            vec![AttachedGroup {
                name: "orders-replica-params".into(),
                apply_status: "in-sync".into(),
            }],
        );
        f.values.insert("orders-replica-params".into(), "1".into());
    }
    let r = drill(&w, true).await;
    let v = &r.verdicts[0];
    assert!(
        matches!(
            v.outcome,
            Outcome::Refused {
                reason: failover_policy::verdict::RefusalReason::TargetReadOnly
            }
        ),
        "{v:?}"
    );
    assert!(
        v.summary.contains("orders-replica-params") && v.summary.contains("read_only=1"),
        "{}",
        v.summary
    );
    let st = w
        .ledger
        .get("orders")
        .unwrap_or_else(|| SiteState::new("orders"));
    assert!(st.switchover.is_none() && st.drill.is_none(), "{st:?}");
    assert!(
        w.fence.state.lock().unwrap().calls.is_empty(),
        "no fence call"
    );
}
