//! A planned switchover, from the evaluator's `switchover` command to the promoter's mutation:
//! the record `decide` writes is what the promoter is given. The managed engines are carried out
//! (their own API with the target, against a primary that answers); an RDS read replica
//! switchover record that has not released the promotion (`switchover::holds_promotion`) is never
//! promoted, even with its fence observed.

use super::*;
use failover_policy::evidence::{CandidateEvidence, DbObservation, Evidence};
use failover_policy::signal::{Delivery, OperatorAction, OperatorCommand};
use failover_policy::switchover::{self, Observation, Request, SwPhase};
use failover_policy::{Signal, SignalKind};

fn command(site: &str, target: &str) -> Signal {
    Signal {
        id: format!("op-{site}"),
        delivery: Delivery::Direct,
        source: "rds-failover.operator".into(),
        account: None,
        region: None,
        time: None,
        kind: SignalKind::Operator(OperatorCommand {
            command: OperatorAction::Switchover,
            site: site.into(),
            reason: Some("planned move".into()),
            operator: Some("alice".into()),
            override_rpo: false,
            epoch: None,
            candidate: Some(target.into()),
            force: false,
            override_cooldown: false,
            primary: None,
            max_wait_secs: None,
            outside_window: false,
            principal: None,
            drill: None,
        }),
    }
}

fn healthy(target: &DbRef) -> Evidence {
    Evidence {
        alarms: vec![],
        primary: DbObservation::status("available"),
        candidates: vec![CandidateEvidence {
            db: target.clone(),
            status: DbObservation::status("available"),
            replica_of_primary: Some(true),
            lag_secs: Some(0.0),
            lag_at: None,
            replication: None,
            created_at: None,
        }],
        canary: CanaryResult::Reachable { latency_ms: 2 },
        primary_multi_az: None,
        vantage_region: Some("us-west-2".into()),
        primary_gtid: Some(true),
        read_only_groups: vec![],
    }
}

#[tokio::test]
async fn a_switchover_command_is_carried_out_for_every_managed_engine() {
    for (site, api, endpoint) in [
        ("billing", "FailoverDBCluster", cep("billing-cluster")),
        ("payments", "SwitchoverGlobalCluster", cep("payments-west")),
        ("inventory", "RebootDBInstance", ep("inventory-db")),
    ] {
        let w = world();
        w.primary_alive(site);
        let cfg = w.deps.cfg.site(site).unwrap().clone();
        let target = candidate_of(site);
        let d = failover_policy::decide(
            &cfg,
            &command(site, &target.id),
            Some(&healthy(&target)),
            &SiteState::new(site),
            w.clock.now(),
        );
        let mut st = d.next.unwrap_or_else(|| panic!("{site}: {:?}", d.verdict));
        st.outbox.clear();
        assert_eq!(st.switchover.as_ref().unwrap().phase, SwPhase::Promoting);
        w.ledger.put(st);

        let r = w.invoke(&d.emit[0], LONG).await.unwrap();

        assert_promoted(&w, site, &r, api, &endpoint).await;
        assert_eq!(w.mutations().len(), 1, "{site}: {:?}", w.mutations());
    }
}

#[tokio::test]
async fn an_rds_replica_switchover_that_has_not_caught_up_is_never_promoted() {
    let w = world();
    let e = w.decided("orders", 3);
    w.primary_alive("orders");
    w.decided_by("orders", DecisionTrigger::PlannedSwitchover, 0);
    let site = w.deps.cfg.site("orders").unwrap().clone();
    let now = w.clock.now();
    w.edit("orders", |s| {
        s.forced = Some(failover_policy::incident::Forced {
            epoch: 3,
            by: "alice".into(),
            reason: "planned switchover".into(),
            at: now,
            fence_first: true,
        });
        // The fence observed (both steps done), but the target has not applied the captured
        // position: the switchover record holds the promotion.
        let mut f = failover_policy::fence::intent(&site, 3, None, now);
        for step in [
            failover_policy::fence::Step::ParameterReadOnly,
            failover_policy::fence::Step::SqlReadOnly,
        ] {
            f.steps.iter_mut().find(|r| r.step == step).unwrap().state =
                failover_policy::fence::StepState::Done {
                    at: now,
                    observed: "read_only=1".into(),
                };
        }
        s.fence = Some(f);
        let req = Request {
            target: candidate_of("orders"),
            by: "alice".into(),
            reason: "planned".into(),
            max_wait_secs: Some(60),
            drill: false,
        };
        let mut r = switchover::start(&site, 3, &req, now);
        for o in [
            Observation::Fenced,
            Observation::Captured(failover_policy::gtid::Position::MariadbGtid(
                failover_policy::gtid::MariaPos::parse("0-1-10").unwrap(),
            )),
        ] {
            r = switchover::advance(&r, o, now).unwrap().record;
        }
        assert_eq!(r.phase, SwPhase::CatchingUp);
        s.switchover = Some(r);
    });

    let r = w.invoke(&e, LONG).await.unwrap();

    assert!(
        w.mutations().is_empty(),
        "{:?} / {:#?}",
        w.mutations(),
        r.outcome
    );
    let st = w.state("orders");
    assert!(st.promotion.is_none(), "nothing requested");
}
