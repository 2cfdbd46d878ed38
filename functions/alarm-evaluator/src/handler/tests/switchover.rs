//! Issue 13's rds-replica switchover on the handler, through the fakes of RDS, of the old
//! primary's SQL and of the target's catch-up: the command records the epoch, the tick fences,
//! captures, waits and releases the promotion, takes the promoter's and the pinner's ledger
//! entries into the record (the RTO from their timestamps), or rolls back before the promotion.

use failover_policy::fence::{AttachedGroup, Step};
use failover_policy::gtid::{MariaPos, Position};
use failover_policy::incident::{DnsRecord, PromotionRecord};
use failover_policy::switchover::SwPhase;

use super::*;

const GROUP: &str = "orders-primary-params";

fn pos(s: &str) -> Position {
    Position::MariadbGtid(MariaPos::parse(s).unwrap())
}

/// `orders` with its own fence group, the old primary answering (read_only following the
/// group), two sessions open, at 0-1-105; the target orders-replica-1 has applied `applied`.
pub(super) fn fenced_world(applied: &str) -> World {
    let w = world();
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["fence"] = json!({"parameter_group": GROUP});
    let w = w.with_config(Config::from_document(&doc.to_string()).unwrap());
    let src = "arn:aws:rds:us-east-1:123456789012:db:orders-primary";
    w.topology.set_instance(InstanceInfo {
        endpoint: Some((
            "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
            3306,
        )),
        ..instance("orders-replica-1", "available", Some(src))
    });
    w.fence.state.lock().unwrap().groups.insert(
        "orders-primary".into(),
        vec![AttachedGroup {
            name: GROUP.into(),
            apply_status: "in-sync".into(),
        }],
    );
    let mut s = w.old_primary.state.lock().unwrap();
    s.reachable = true;
    s.follows = Some((w.fence.clone(), GROUP.into()));
    s.sessions = vec![41, 42];
    s.position = Some(pos("0-1-105"));
    s.target_applied = Some(pos(applied));
    drop(s);
    w
}

impl World {
    async fn switchover(&self, max_wait: u64) -> Response {
        handle(
            &self.deps,
            json!({"command": "switchover", "site": "orders", "candidate": "orders-replica-1",
                   "reason": "planned move", "max_wait_secs": max_wait, "operator": "alice"}),
        )
        .await
        .unwrap()
    }
    pub(super) async fn sw_tick(&self, n: usize, secs: i64) -> Response {
        self.clock.advance(secs);
        handle(&self.deps, tick_event(&format!("s{n}"), self.clock.now()))
            .await
            .unwrap()
    }
    fn record(&self) -> failover_policy::switchover::SwitchoverRecord {
        self.ledger.get("orders").unwrap().switchover.unwrap()
    }
    pub(super) fn published(&self, t: &str) -> Vec<String> {
        self.bus
            .published
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.event_type.detail_type() == t)
            .map(|e| e.verdict.summary.clone())
            .collect()
    }
    /// What the promoter and the pinner record, at these instants.
    fn promoted_and_pinned(&self, requested: DateTime<Utc>, verified: DateTime<Utc>) {
        let mut st = self.ledger.get("orders").unwrap();
        st.promotion = Some(PromotionRecord {
            epoch: st.epoch,
            candidate: self.record().target,
            action: "PromoteReadReplica".into(),
            requested_at: requested,
            completed_at: Some(verified),
            endpoint: Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306".into()),
            writable_verified_at: Some(verified),
            resolved: None,
        });
        st.version += 1;
        self.ledger.put(st);
    }
}

#[tokio::test]
async fn scenario_1_one_tick_fences_captures_and_releases_a_caught_up_target_then_measures_the_rto()
{
    let w = fenced_world("0-1-105");
    let r = w.switchover(60).await;
    assert_eq!(
        r.verdicts[0].outcome.name(),
        "failover-decided",
        "{}",
        r.verdicts[0].summary
    );
    assert_eq!(w.record().phase, SwPhase::Fencing);
    assert!(
        w.fence.state.lock().unwrap().calls.is_empty(),
        "the command fences nothing itself"
    );
    let st = w.ledger.get("orders").unwrap();
    assert!(matches!(
        failover_policy::fence::fenced_first(&st),
        failover_policy::fence::FencedFirst::Waiting(_)
    ));

    w.sw_tick(1, 10).await;
    let rec = w.record();
    assert_eq!(rec.phase, SwPhase::Promoting, "{rec:?}");
    assert_eq!(rec.captured, Some(pos("0-1-105")));
    assert_eq!(rec.applied, Some(pos("0-1-105")));
    let started = rec.fence_started_at.unwrap();
    assert!(started <= rec.fenced_at.unwrap());
    assert_eq!(
        w.fence.state.lock().unwrap().calls,
        vec![format!("ModifyDBParameterGroup {GROUP}")]
    );
    assert!(
        w.old_primary.state.lock().unwrap().sessions.is_empty(),
        "sessions ended before the capture"
    );
    let st = w.ledger.get("orders").unwrap();
    assert!(
        matches!(
            failover_policy::fence::fenced_first(&st),
            failover_policy::fence::FencedFirst::Done(_)
        ),
        "the promoter is released"
    );
    assert_eq!(
        st.fence
            .as_ref()
            .unwrap()
            .state(Step::Snapshot)
            .map(|s| s.is_pending()),
        Some(true),
        "nothing past the sessions runs before the promotion"
    );

    // The promoter asks RDS 2 s later and verifies writes 40 s after the fence's start.
    w.promoted_and_pinned(
        started + Duration::seconds(2),
        started + Duration::seconds(40),
    );
    w.sw_tick(2, 60).await;
    let rec = w.record();
    assert_eq!(rec.phase, SwPhase::MovingDns, "{rec:?}");
    let m = rec.measured.clone().unwrap();
    assert_eq!(
        m.rto_ms, 40_000,
        "from the fence's start to the promoter's verified writes"
    );
    assert_eq!(m.rpo_transactions, Some(0));

    let mut st = w.ledger.get("orders").unwrap();
    st.dns = Some(DnsRecord {
        epoch: st.epoch,
        zone_id: "Z1".into(),
        name: "orders-writer.internal.example.com.".into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        previous_values: vec!["orders-primary.x".into()],
        previous_ttl: Some(30),
        new_value: "orders-replica-1.x".into(),
        change_id: Some("C1".into()),
        insync_at: Some(started + Duration::seconds(45)),
        previous_records: None,
    });
    st.version += 1;
    w.ledger.put(st);
    w.sw_tick(3, 60).await;
    assert_eq!(w.record().phase, SwPhase::Done);
    assert!(w.published("FailoverAborted").is_empty());
}

#[tokio::test]
async fn scenario_2_a_target_lagging_past_max_wait_is_rolled_back_old_primary_writable_one_message()
{
    let w = fenced_world("0-1-100");
    w.switchover(30).await;
    w.sw_tick(1, 5).await;
    let rec = w.record();
    assert_eq!(rec.phase, SwPhase::CatchingUp, "{rec:?}");
    assert!(w.old_primary.state.lock().unwrap().read_only, "fenced");
    let before = w.bus.published.lock().unwrap().len();

    // The region's API is dark at the deadline: the rollback is recorded (epoch closed), the
    // old primary cannot be given writes back yet.
    w.fence.state.lock().unwrap().dark_regions = vec!["us-east-1".into()];
    w.sw_tick(2, 60).await;
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Aborted);
    assert_eq!(w.record().phase, SwPhase::RollingBack);
    assert!(
        st.outbox.is_empty() && w.published("FailoverAborted").len() == 1,
        "the message went out with the rollback's commit, before the undo"
    );

    w.fence.state.lock().unwrap().dark_regions.clear();
    w.sw_tick(3, 60).await;
    w.sw_tick(4, 60).await;
    let rec = w.record();
    assert_eq!(rec.phase, SwPhase::RolledBack, "{rec:?}");
    assert!(rec.rollback.unwrap().writable_again_at.is_some());
    assert!(
        !w.old_primary.state.lock().unwrap().read_only,
        "writable again"
    );
    let f = w.fence.state.lock().unwrap();
    assert_eq!(
        f.values.get(GROUP),
        None,
        "the group did not set read_only before the fence: reset, not set to 0"
    );
    assert_eq!(
        f.calls.last().map(String::as_str),
        Some(format!("ResetDBParameterGroup {GROUP} read_only").as_str())
    );
    drop(f);
    let after: Vec<String> = w.bus.published.lock().unwrap()[before..]
        .iter()
        .map(|e| e.event_type.detail_type().to_string())
        .collect();
    assert_eq!(after, vec!["FailoverAborted"], "one message");
    let m = &w.published("FailoverAborted")[0];
    assert!(
        m.contains("ROLLED BACK") && m.contains("DNS was not touched"),
        "{m}"
    );
}

/// Review finding a: the rollback gives back `read_only` exactly as it was before the fence —
/// here the group held an explicit `read_only=0` set by the team, so it is set back to that
/// (not reset), and the value is recorded before the fence's first call.
#[tokio::test]
async fn a_rollback_restores_the_groups_read_only_exactly_as_it_was_before_the_fence() {
    let w = fenced_world("0-1-100");
    w.fence
        .state
        .lock()
        .unwrap()
        .values
        .insert(GROUP.into(), "0".into());
    w.switchover(30).await;
    w.sw_tick(1, 5).await;
    let rec = w.record();
    let before = rec.before_fence.clone().expect("recorded before the fence");
    assert_eq!(before.group_read_only.as_deref(), Some("0"));
    assert!(!before.server_read_only);
    assert_eq!(rec.phase, SwPhase::CatchingUp, "{rec:?}");
    w.sw_tick(2, 60).await;
    w.sw_tick(3, 60).await;
    assert_eq!(w.record().phase, SwPhase::RolledBack);
    let f = w.fence.state.lock().unwrap();
    assert_eq!(f.values.get(GROUP).map(String::as_str), Some("0"));
    assert!(f.reset.is_empty(), "{:?}", f.calls);
}

/// The fence waits for the value a rollback restores: a tick whose first read of the group
/// fails sets nothing (no `read_only=1` before the value it replaces is recorded).
#[tokio::test]
async fn the_fence_waits_until_the_value_it_replaces_is_recorded() {
    let w = fenced_world("0-1-105");
    w.switchover(60).await;
    w.fence.state.lock().unwrap().dark_regions = vec!["us-east-1".into()];
    w.sw_tick(1, 5).await;
    assert!(w.record().before_fence.is_none());
    assert!(
        w.fence.state.lock().unwrap().calls.is_empty(),
        "nothing fenced"
    );
    w.fence.state.lock().unwrap().dark_regions.clear();
    w.sw_tick(2, 5).await;
    assert_eq!(w.record().phase, SwPhase::Promoting);
}

/// Review finding c: a rollback left pending (the undo could not be done: the region was dark)
/// while a newer epoch — a failover — takes the site never gives the old primary its writes
/// back: the undo is fenced by the epoch, read from the ledger just before the AWS call.
#[tokio::test]
async fn a_stale_rollback_never_makes_the_old_primary_writable_once_a_newer_epoch_owns_the_site() {
    let w = fenced_world("0-1-100");
    w.switchover(30).await;
    w.sw_tick(1, 5).await;
    w.fence.state.lock().unwrap().dark_regions = vec!["us-east-1".into()];
    w.sw_tick(2, 60).await;
    assert_eq!(w.record().phase, SwPhase::RollingBack);
    let stale = w.ledger.get("orders").unwrap();
    let rec = stale.switchover.clone().unwrap();
    // A newer epoch opens (an outage's failover) while the rollback's undo is still owed.
    let mut st = stale.clone();
    st.open_incident(w.clock.now(), "primary unreachable")
        .unwrap();
    st.version += 1;
    w.ledger.put(st);
    w.fence.state.lock().unwrap().dark_regions.clear();
    // A Lambda that loaded the ledger before the new epoch (stale) reaches the undo.
    let site = w.deps.cfg.site("orders").unwrap().clone();
    let obs = crate::switchover::undo_fence(&w.deps, &site, &stale, &rec).await;
    assert_eq!(obs, failover_policy::switchover::Observation::Tick);
    assert_eq!(
        w.fence
            .state
            .lock()
            .unwrap()
            .values
            .get(GROUP)
            .map(String::as_str),
        Some("1"),
        "the old primary stays fenced"
    );
    assert!(w.old_primary.state.lock().unwrap().read_only);
    // And the tick no longer drives the old epoch's record.
    w.sw_tick(3, 60).await;
    assert_eq!(
        w.fence
            .state
            .lock()
            .unwrap()
            .values
            .get(GROUP)
            .map(String::as_str),
        Some("1")
    );
}

/// Review finding b: a primary on binlog coordinates only (GTIDs off) is refused at the command,
/// with a typed reason, before any epoch, fence or AWS call — not fenced and then rolled back.
#[tokio::test]
async fn a_binlog_only_primary_is_refused_in_the_preconditions_nothing_fenced() {
    let w = fenced_world("0-1-105");
    w.old_primary.state.lock().unwrap().position = Some(Position::Binlog(
        failover_policy::gtid::BinlogPos::parse("mysql-bin.000003:1200").unwrap(),
    ));
    let r = w.switchover(60).await;
    let v = &r.verdicts[0];
    assert_eq!(
        v.outcome,
        failover_policy::Outcome::Refused {
            reason: failover_policy::verdict::RefusalReason::NoGtid
        },
        "{}",
        v.summary
    );
    assert!(v.summary.contains("binlog coordinates"), "{}", v.summary);
    w.sw_tick(1, 5).await;
    let st = w.ledger.get("orders").unwrap();
    assert!(st.switchover.is_none() && !st.phase.is_open(), "no epoch");
    assert!(
        w.fence.state.lock().unwrap().calls.is_empty(),
        "no AWS mutation"
    );
    assert!(!w.old_primary.state.lock().unwrap().read_only);
}

/// Scenario 5: two `switchover` commands for the same target sent at once (two evaluator
/// invocations), at every interleaving of their ledger, bus, topology and metrics calls with one
/// preemption, make ONE switchover: one epoch, one `FailoverDecided`, one record; the other is
/// answered as a duplicate (or, having lost the compare-and-set, re-reads and finds it).
#[test]
fn scenario_5_concurrent_duplicate_switchover_commands_make_one_switchover() {
    use failover_adapters::interleave::{broken, gated, run_isolated, Scheduler, WHO};
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }
    fn racing(s: &Arc<Scheduler>) -> World {
        let w = fenced_world("0-1-105");
        let d = &w.deps;
        let deps = Deps {
            cfg: d.cfg.clone(),
            cfg_object_version: None,
            topology: gated(d.topology.clone(), s),
            metrics: gated(d.metrics.clone(), s),
            ledger: gated(d.ledger.clone(), s),
            bus: gated(d.bus.clone(), s),
            canary: d.canary.clone(),
            clock: d.clock.clone(),
            fanout: d.fanout,
            fence: d.fence.clone(),
            old_primary: d.old_primary.clone(),
            rechecks: d.rechecks.clone(),
            metric_lines: d.metric_lines.clone(),
        };
        World {
            deps: Arc::new(deps),
            ..w
        }
    }
    async fn race(w: &World, s: &Arc<Scheduler>) -> Vec<String> {
        let run = |who: usize| {
            WHO.scope(who, async move {
                let r = w.switchover(60).await;
                s.finished(who);
                r.verdicts[0].summary.clone()
            })
        };
        let (x, y) = tokio::join!(run(0), run(1));
        vec![x, y]
    }
    let n = run_isolated(runtime, || async {
        let solo = Arc::new(Scheduler::new(usize::MAX, 0));
        let w = racing(&solo);
        WHO.scope(0, w.switchover(60)).await;
        solo.calls()[0]
    })
    .expect("the solo run does not panic");
    assert!(n >= 3, "a command makes several port calls ({n})");
    let (mut cases, mut failures) = (0usize, vec![]);
    for i in 0..=n {
        for j in 1..=n {
            cases += 1;
            let ran = run_isolated(runtime, || async {
                let s = Arc::new(Scheduler::new(i, j));
                let w = racing(&s);
                let answers = race(&w, &s).await;
                let st = w.ledger.get("orders").unwrap();
                // The outbox is at-least-once (an invocation that finds the other's committed
                // event still unflushed sends it too; the promoter dedupes by epoch): every
                // FailoverDecided must be the one decision — same epoch, same instant.
                let decided: Vec<(u64, DateTime<Utc>)> = w
                    .bus
                    .published
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|e| e.event_type.detail_type() == "FailoverDecided")
                    .map(|e| (e.epoch, e.occurred_at))
                    .collect();
                let one_decision = !decided.is_empty() && decided.iter().all(|d| *d == decided[0]);
                let duplicates = answers
                    .iter()
                    .filter(|a| a.starts_with("duplicate"))
                    .count();
                let fenced = !w.fence.state.lock().unwrap().calls.is_empty();
                broken([
                    (st.epoch == 1, format!("epoch {}", st.epoch)),
                    (one_decision, format!("FailoverDecided {decided:?}")),
                    (
                        st.switchover.as_ref().is_some_and(|r| r.epoch == 1),
                        "no switchover record".into(),
                    ),
                    (duplicates == 1, format!("answers {answers:?}")),
                    (!fenced, "the command fenced something".into()),
                ])
            });
            match ran {
                Ok(b) if b.is_empty() => {}
                Ok(b) => failures.push(format!("({i},{j}): {b:?}")),
                Err(_) => failures.push(format!("({i},{j}): panicked")),
            }
        }
    }
    println!(
        "scenario 5: {cases} interleavings of two concurrent switchover commands, {} broken",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A switchover whose fence never started (the old primary's SQL did not answer the read of
/// `read_only` before it) rolls back at the deadline without touching AWS: nothing to give back.
#[tokio::test]
async fn a_fence_that_never_started_rolls_back_without_any_aws_call() {
    let w = fenced_world("0-1-105");
    w.switchover(30).await;
    w.old_primary.state.lock().unwrap().reachable = false;
    w.sw_tick(1, 5).await;
    w.sw_tick(2, 60).await;
    w.sw_tick(3, 60).await;
    let rec = w.record();
    assert_eq!(rec.phase, SwPhase::RolledBack, "{rec:?}");
    assert!(
        w.fence.state.lock().unwrap().calls.is_empty(),
        "no AWS mutation"
    );
    assert_eq!(w.published("FailoverAborted").len(), 1);
}
