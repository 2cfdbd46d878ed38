//! The drill's state machine on the pure policy: the command's refusals, both legs driven
//! through the switchover's own `advance` and the driver's `commit` (the promoter's and the
//! pinner's ledger entries written as they write them), the re-protection in between, a leg
//! that times out, a real incident mid-drill, a duplicate command.

use super::*;
use crate::config::Config;
use crate::evidence::{CanaryResult, CandidateEvidence, DbObservation};
use crate::gtid::{MariaPos, Position};
use crate::incident::{DnsRecord, PromotionRecord};
use crate::signal::{Delivery, Signal, SignalKind};
use crate::switchover::{advance, drive, Observation};
use chrono::TimeZone;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");
const NAME: &str = "db.orders.example.com.";

/// Sunday 2026-12-06 03:10 UTC + `s` seconds: inside the example's `sun:03:00-sun:04:00`.
fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 3, 10, 0).unwrap() + chrono::Duration::seconds(s)
}

fn site_with(f: impl FnOnce(&mut serde_json::Value)) -> SiteConfig {
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["fence"] = serde_json::json!({"parameter_group": "orders-params"});
    doc["sites"][0]["reprotect"] = serde_json::json!({
        "region": "us-east-1", "parameter_group": "orders-rp-params",
        "security_groups": ["sg-0123abcd"], "subnet_group": "orders-subnets", "kms_key_id": "alias/orders"
    });
    f(&mut doc);
    Config::from_document(&doc.to_string())
        .unwrap()
        .site("orders")
        .unwrap()
        .clone()
}

fn site() -> SiteConfig {
    site_with(|_| {})
}

fn db(id: &str, region: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: region.into(),
    }
}

fn host(id: &str, region: &str) -> String {
    format!("{id}.cabcdefghijk.{region}.rds.amazonaws.com")
}

fn pos(s: &str) -> Position {
    Position::MariadbGtid(MariaPos::parse(s).unwrap())
}

fn signal(id: &str, kind: SignalKind) -> Signal {
    Signal {
        id: id.into(),
        delivery: Delivery::EventBridge,
        source: "rds-failover.operator".into(),
        account: None,
        region: None,
        time: None,
        kind,
    }
}

fn drill_cmd(id: &str, candidate: &str, outside_window: bool) -> Signal {
    signal(
        id,
        SignalKind::Operator(OperatorCommand {
            command: OperatorAction::Drill,
            site: "orders".into(),
            reason: Some("quarterly DR drill".into()),
            operator: Some("ana@example.com".into()),
            override_rpo: false,
            epoch: None,
            candidate: Some(candidate.into()),
            force: false,
            override_cooldown: false,
            primary: None,
            max_wait_secs: Some(60),
            outside_window,
            principal: None,
            drill: None,
        }),
    )
}

fn replica(db: DbRef, lag: f64) -> CandidateEvidence {
    CandidateEvidence {
        db,
        status: DbObservation::status("available"),
        replica_of_primary: Some(true),
        lag_secs: Some(lag),
        lag_at: None,
        replication: None,
        created_at: None,
    }
}

/// A healthy writer answering over SQL by GTID, with these replicas.
fn evidence(candidates: Vec<CandidateEvidence>) -> Evidence {
    Evidence {
        alarms: vec![],
        primary: DbObservation::status("available"),
        candidates,
        canary: CanaryResult::Reachable { latency_ms: 3 },
        primary_multi_az: None,
        vantage_region: None,
        primary_gtid: Some(true),
        read_only_groups: vec![],
    }
}

fn home_ev() -> Evidence {
    evidence(vec![
        replica(db("orders-replica-1", "us-west-2"), 0.0),
        replica(db("orders-replica-2", "us-west-2"), 0.0),
    ])
}

fn decide_on(
    site: &SiteConfig,
    sig: &Signal,
    ev: &Evidence,
    st: &SiteState,
    now: DateTime<Utc>,
) -> Decision {
    crate::decide::decide(site, sig, Some(ev), st, now)
}

/// One step of the tick's switchover driver: advance, commit as the driver does.
fn step(site: &SiteConfig, st: &SiteState, obs: Observation, now: DateTime<Utc>) -> SiteState {
    let rec = st.switchover.clone().expect("a switchover");
    let adv = advance(&rec, obs, now).expect("legal");
    drive::commit(site, st, adv.record, adv.message, now).unwrap_or_else(|| st.clone())
}

/// The leg's switchover driven to `done` from `start` (seconds): fenced, captured, caught up,
/// promoted by the promoter, writes verified, pinned by the pinner, DNS moved. The measured RTO
/// is what these instants make it (fence start → writes verified).
fn run_leg(site: &SiteConfig, mut st: SiteState, start: i64, verified: i64) -> SiteState {
    let rec = st.switchover.clone().unwrap();
    let rds = matches!(site.engine, Engine::RdsReplica);
    if rds {
        st = step(
            site,
            &st,
            Observation::BeforeFence(crate::switchover::BeforeFence {
                group_read_only: None,
                server_read_only: false,
            }),
            t(start),
        );
        st = step(site, &st, Observation::Fenced, t(start + 2));
        st = step(
            site,
            &st,
            Observation::Captured(pos("0-1-100")),
            t(start + 3),
        );
        st = step(
            site,
            &st,
            Observation::Applied(pos("0-1-100")),
            t(start + 4),
        );
    }
    st = step(site, &st, Observation::PromotionRequested, t(start + 5));
    // The promoter's and the pinner's own writes.
    let h = host(&rec.target.id, &rec.target.region);
    st.phase = Phase::DnsPinned;
    st.promotion = Some(PromotionRecord {
        epoch: rec.epoch,
        candidate: rec.target.clone(),
        action: "PromoteReadReplica".into(),
        requested_at: t(start + 5),
        completed_at: Some(t(verified)),
        endpoint: Some(format!("{h}:3306")),
        writable_verified_at: Some(t(verified)),
        resolved: None,
    });
    st.dns = Some(DnsRecord {
        epoch: rec.epoch,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: NAME.into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        previous_values: vec![host(&rec.old_primary.id, &rec.old_primary.region)],
        previous_ttl: Some(30),
        new_value: h,
        change_id: Some(format!("C{}", rec.epoch)),
        insync_at: Some(t(verified + 1)),
        previous_records: None,
    });
    st = step(site, &st, Observation::WritesVerified, t(verified));
    step(site, &st, Observation::DnsMoved, t(verified + 1))
}

fn summaries(st: &SiteState) -> Vec<String> {
    st.outbox
        .iter()
        .map(|e| e.verdict.summary.clone())
        .collect()
}

#[test]
fn refused_outside_every_window_naming_the_next_one_and_nothing_recorded() {
    let st = SiteState::new("orders");
    let wed = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
    let d = decide_on(
        &site(),
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &st,
        wed,
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NotDrillable
        }
    );
    assert!(
        d.verdict.summary.contains("sun:03:00-sun:04:00")
            && d.verdict.summary.contains("Sun 2026-12-06 03:00 UTC"),
        "{}",
        d.verdict.summary
    );
    assert!(d
        .next
        .as_ref()
        .is_none_or(|n| n.drill.is_none() && n.switchover.is_none()));
    // With `outside_window` (and the reason the command must carry) it starts.
    let d = decide_on(
        &site(),
        &drill_cmd("d2", "orders-replica-1", true),
        &home_ev(),
        &st,
        wed,
    );
    let next = d.next.unwrap();
    let drill = next.drill.as_ref().unwrap();
    assert_eq!(drill.phase, DrillPhase::Out);
    assert_eq!(drill.outside_window.as_deref(), Some("quarterly DR drill"));
    assert!(next.switchover.as_ref().unwrap().drill);
}

#[test]
fn refused_while_paused_or_an_incident_is_open_or_without_a_way_back() {
    let mut paused = SiteState::new("orders");
    paused.paused = Some(crate::incident::Pause {
        by: "bob".into(),
        reason: "maintenance".into(),
        at: t(0),
    });
    let mut open = SiteState::new("orders");
    open.open_incident(t(0), "suspected").unwrap();
    for st in [paused, open] {
        let d = decide_on(
            &site(),
            &drill_cmd("d1", "orders-replica-1", false),
            &home_ev(),
            &st,
            t(1),
        );
        assert!(
            matches!(d.verdict.outcome, Outcome::Refused { .. }),
            "{:?}",
            d.verdict
        );
        assert!(d.next.as_ref().is_none_or(|n| n.drill.is_none()));
    }
    let no_way_back = site_with(|d| d["sites"][0]["reprotect"]["region"] = "eu-west-1".into());
    let e = check(&no_way_back, &SiteState::new("orders"), false, t(0)).unwrap_err();
    assert!(matches!(e, Refused::NoWayBack { .. }), "{e}");
}

/// Out (a DRILL switchover to us-west-2) → re-protect into us-east-1 → back (a DRILL failback)
/// → done, each leg's RTO and RPO recorded from what its switchover measured.
#[test]
fn out_reprotect_back_records_both_legs_rto_and_rpo_zero() {
    let site = site();
    let st = SiteState::new("orders");
    let d = decide_on(
        &site,
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &st,
        t(0),
    );
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:?}",
        d.verdict
    );
    let st = d.next.unwrap();
    assert!(d.verdict.summary.contains("DRILL"), "{}", d.verdict.summary);
    // Out leg: fence at 10 s, writes verified at 19 s: 9 000 ms of write unavailability.
    let st = run_leg(&site, st, 10, 19);
    let drill = st.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Reprotecting);
    let out = drill.leg(Leg::Out).unwrap();
    assert_eq!((out.rto_ms, out.rpo_transactions), (Some(9_000), Some(0)));
    assert_eq!(st.phase, Phase::Completed);
    let rp = st.reprotect.clone().unwrap();
    assert_eq!(rp.replica.region, "us-east-1");
    assert_eq!(rp.source, db("orders-replica-1", "us-west-2"));
    assert!(
        summaries(&st)
            .iter()
            .any(|s| s.starts_with("DRILL 1 out leg")
                && s.contains("RTO 9000 ms")
                && s.contains("RPO 0")),
        "{:?}",
        summaries(&st)
    );
    // A tick before the re-protection is protected starts nothing.
    let mut st = st;
    st.outbox.clear();
    let dr_ev = evidence(vec![replica(rp.replica.clone(), 0.0)]);
    let tick = signal("tick-1", SignalKind::Tick);
    let d = decide_on(&site, &tick, &dr_ev, &st, t(100));
    assert!(d
        .next
        .as_ref()
        .is_none_or(|n| n.drill.as_ref().unwrap().phase == DrillPhase::Reprotecting));
    // The re-protection driver reaches `protected`.
    let mut done_rp = rp.clone();
    done_rp.phase = crate::reprotect::RpPhase::Protected;
    done_rp.protected_at = Some(t(600));
    let st = crate::reprotect::commit(&site, &st, done_rp, None, t(600)).unwrap();
    // The next tick starts the back leg: a DRILL failback to the new us-east-1 replica.
    let d = decide_on(
        &site,
        &signal("tick-2", SignalKind::Tick),
        &dr_ev,
        &st,
        t(660),
    );
    let st = d.next.expect("the back leg starts");
    let sw = st.switchover.clone().unwrap();
    assert!(sw.drill && sw.failback, "{sw:?}");
    assert_eq!(sw.target, rp.replica);
    assert_eq!(st.drill.as_ref().unwrap().phase, DrillPhase::Back);
    // Back leg: fence at 670 s, writes verified at 676 s.
    let st = run_leg(&site, st, 670, 676);
    let drill = st.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Done, "{:?}", drill.note);
    let back = drill.leg(Leg::Back).unwrap();
    assert_eq!((back.rto_ms, back.rpo_transactions), (Some(6_000), Some(0)));
    assert_eq!(st.drills.len(), 1);
    assert_eq!(st.drills[0], drill);
    let all = summaries(&st);
    assert!(
        all.iter().any(|s| s.starts_with("DRILL 1 back leg")
            && s.contains("RTO 6000 ms")
            && s.contains("out leg RTO 9000 ms")
            && s.contains("UNPROTECTED")
            && s.contains("orders-replica-1-rp1")),
        "{all:?}"
    );
    // The failback's own second step ran: the writer name's recorded shape is asked back.
    assert!(
        all.iter().any(|s| s.starts_with("DRILL failback")),
        "{all:?}"
    );
}

#[test]
fn aurora_drills_come_back_by_a_second_switchover() {
    let site = site_with(|d| {
        d["sites"][0]["engine"] =
            serde_json::json!({"kind": "aurora-cluster", "cluster_id": "orders-cluster"});
        d["sites"][0]["candidates"] =
            serde_json::json!([{"id": "orders-reader-1", "region": "us-east-1"}]);
    });
    let ev = evidence(vec![replica(db("orders-reader-1", "us-east-1"), 0.0)]);
    let d = decide_on(
        &site,
        &drill_cmd("d1", "orders-reader-1", false),
        &ev,
        &SiteState::new("orders"),
        t(0),
    );
    let st = d.next.expect("started");
    let st = run_leg(&site, st, 10, 40);
    assert_eq!(st.drill.as_ref().unwrap().phase, DrillPhase::Back);
    let out = st.drill.as_ref().unwrap().leg(Leg::Out).unwrap().clone();
    // No fence of ours: counted from the request (t 0) to writes verified (t 40).
    assert_eq!(out.rto_ms, Some(40_000));
    let back_ev = evidence(vec![replica(site.primary.clone(), 0.0)]);
    let d = decide_on(
        &site,
        &signal("tick-1", SignalKind::Tick),
        &back_ev,
        &st,
        t(60),
    );
    let st = d.next.expect("the back leg starts");
    assert_eq!(st.switchover.as_ref().unwrap().target, site.primary);
    let st = run_leg(&site, st, 70, 95);
    let drill = st.drill.unwrap();
    assert_eq!(drill.phase, DrillPhase::Done);
    assert_eq!(drill.leg(Leg::Back).unwrap().rto_ms, Some(35_000));
}

#[test]
fn a_leg_that_times_out_rolls_back_and_the_drill_says_where_the_site_is() {
    let site = site();
    let d = decide_on(
        &site,
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &SiteState::new("orders"),
        t(0),
    );
    let mut st = d.next.unwrap();
    st = step(
        &site,
        &st,
        Observation::BeforeFence(crate::switchover::BeforeFence {
            group_read_only: None,
            server_read_only: false,
        }),
        t(1),
    );
    st = step(&site, &st, Observation::Fenced, t(2));
    st = step(&site, &st, Observation::Captured(pos("0-1-100")), t(3));
    st = step(&site, &st, Observation::Applied(pos("0-1-90")), t(10));
    // max_wait_secs 60 from the fence's start: past it, the leg rolls back.
    st = step(&site, &st, Observation::Tick, t(62));
    let drill = st.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::RolledBack);
    assert_eq!(
        drill.leg(Leg::Out).unwrap().outcome.as_deref(),
        Some("rolled-back")
    );
    assert!(
        drill
            .note
            .as_deref()
            .unwrap()
            .contains("stays on orders-primary"),
        "{:?}",
        drill.note
    );
    assert!(
        summaries(&st)
            .iter()
            .any(|s| s.contains("DRILL 1 out leg") && s.contains("ROLLED BACK")),
        "{:?}",
        summaries(&st)
    );
    assert_eq!(st.drills.len(), 1);
    assert!(
        st.reprotect.is_none(),
        "no way back is started after a rolled-back out leg"
    );
}

#[test]
fn a_failover_decided_mid_drill_abandons_it() {
    let site = site();
    let d = decide_on(
        &site,
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &SiteState::new("orders"),
        t(0),
    );
    let st = run_leg(&site, d.next.unwrap(), 10, 19);
    assert_eq!(st.drill.as_ref().unwrap().phase, DrillPhase::Reprotecting);
    // The DR writer is lost while the drill re-protects: an operator fails over for real.
    let mut ev = evidence(vec![replica(db("orders-replica-2", "us-west-2"), 0.0)]);
    ev.primary = DbObservation::status("failed");
    ev.canary = CanaryResult::Unreachable {
        error: "timeout".into(),
    };
    let fail = signal(
        "f1",
        SignalKind::Operator(OperatorCommand {
            command: OperatorAction::Failover,
            site: "orders".into(),
            reason: Some("us-west-2 lost".into()),
            operator: Some("bob".into()),
            override_rpo: false,
            epoch: None,
            candidate: None,
            force: false,
            override_cooldown: false,
            primary: None,
            max_wait_secs: None,
            outside_window: false,
            principal: None,
            drill: None,
        }),
    );
    let d = decide_on(&site, &fail, &ev, &st, t(200));
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:?}",
        d.verdict
    );
    let next = d.next.unwrap();
    let drill = next.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Abandoned);
    assert!(d
        .emit
        .iter()
        .any(|e| e.verdict.summary.contains("DRILL 1 ABANDONED")));
    // No back leg is ever started for it.
    assert!(back_step(&site, &site, &next, &home_ev(), t(300)).is_none());
}

#[test]
fn a_duplicate_drill_command_is_one_drill() {
    let site = site();
    let d = decide_on(
        &site,
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &SiteState::new("orders"),
        t(0),
    );
    let st = d.next.unwrap();
    // The same command again (another delivery id): a duplicate, nothing changes.
    let d = decide_on(
        &site,
        &drill_cmd("d2", "orders-replica-1", false),
        &home_ev(),
        &st,
        t(1),
    );
    assert!(
        d.verdict.summary.starts_with("duplicate"),
        "{}",
        d.verdict.summary
    );
    assert!(d
        .next
        .is_none_or(|n| n.epoch == st.epoch && n.drill == st.drill));
    // Another target while one is in flight: refused.
    let d = decide_on(
        &site,
        &drill_cmd("d3", "orders-replica-2", false),
        &home_ev(),
        &st,
        t(2),
    );
    assert!(matches!(d.verdict.outcome, Outcome::Refused { .. }));
}

#[test]
fn require_approval_sites_wait_for_approve_naming_the_epoch() {
    let site = site_with(|d| d["sites"][0]["approval"] = "require-approval".into());
    let d = decide_on(
        &site,
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &SiteState::new("orders"),
        t(0),
    );
    let st = d.next.unwrap();
    assert_eq!(
        st.drill.as_ref().unwrap().phase,
        DrillPhase::AwaitingApproval
    );
    assert!(
        st.switchover.is_none() && !st.phase.is_open(),
        "nothing fenced before the approval"
    );
    let approve_as = |id: &str, epoch, drill: Option<u64>, who: &str| {
        signal(
            id,
            SignalKind::Operator(OperatorCommand {
                command: OperatorAction::Approve,
                site: "orders".into(),
                reason: None,
                operator: Some(who.into()),
                override_rpo: false,
                epoch: Some(epoch),
                candidate: None,
                force: false,
                override_cooldown: false,
                primary: None,
                max_wait_secs: None,
                outside_window: false,
                principal: None,
                drill,
            }),
        )
    };
    let approve = |id: &str, epoch| approve_as(id, epoch, Some(1), "carol");
    // Issue 13 finding 5: an approval that does not name the drill (what a real incident's
    // approval for epoch 1 looks like) is not taken for the drill's...
    let d = decide_on(
        &site,
        &approve_as("a-1", 1, None, "carol"),
        &home_ev(),
        &st,
        t(5),
    );
    assert!(
        matches!(
            d.verdict.outcome,
            Outcome::Refused {
                reason: RefusalReason::StaleApproval
            }
        ) && d.verdict.summary.contains("names the drill"),
        "{:?}",
        d.verdict
    );
    assert!(d.next.as_ref().is_none_or(|n| n.switchover.is_none()));
    // ...and the requester cannot approve their own drill: a second person does.
    let d = decide_on(
        &site,
        &approve_as("a-2", 1, Some(1), "ana@example.com"),
        &home_ev(),
        &st,
        t(5),
    );
    assert!(
        matches!(
            d.verdict.outcome,
            Outcome::Refused {
                reason: RefusalReason::SelfApproval
            }
        ),
        "{:?}",
        d.verdict
    );
    assert!(d.next.as_ref().is_none_or(|n| n.switchover.is_none()));
    let d = decide_on(&site, &approve("a0", 7), &home_ev(), &st, t(5));
    assert!(matches!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::StaleApproval
        }
    ));
    let d = decide_on(&site, &approve("a1", 1), &home_ev(), &st, t(5));
    let st = d.next.unwrap();
    let drill = st.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Out);
    assert_eq!(drill.approved_by.as_deref(), Some("carol"));
    assert_eq!(st.switchover.as_ref().unwrap().epoch, 1);
}

#[test]
fn next_start_of_a_window() {
    let w = crate::config::MaintenanceWindow::parse("sun:03:00-sun:04:00").unwrap();
    let wed = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 30).unwrap();
    assert_eq!(
        w.next_start(wed),
        Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap()
    );
}

/// A drill whose out leg is done and whose re-protection reached `protected` at `protected`
/// seconds: the state the back leg starts from, and the re-protection replica.
fn protected_at(site: &SiteConfig, protected: i64) -> (SiteState, DbRef) {
    let d = decide_on(
        site,
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &SiteState::new("orders"),
        t(0),
    );
    let st = run_leg(site, d.next.unwrap(), 10, 19);
    let mut rp = st.reprotect.clone().unwrap();
    rp.phase = crate::reprotect::RpPhase::Protected;
    rp.protected_at = Some(t(protected));
    let mut st = crate::reprotect::commit(site, &st, rp.clone(), None, t(protected)).unwrap();
    st.outbox.clear();
    (st, rp.replica)
}

fn drill_events(d: &Decision) -> Vec<String> {
    d.emit
        .iter()
        .map(|e| e.verdict.summary.clone())
        .filter(|s| s.starts_with("DRILL 1"))
        .collect()
}

/// Issue 13 finding 3: the way back ready after the window closed does not start at peak
/// traffic: the drill waits for the next window, pages once (not every tick), starts in the
/// window; one still waiting after BACK_WAIT_LIMIT_SECS ends `abandoned`, saying so.
#[test]
fn the_back_leg_waits_for_a_maintenance_window_and_pages_once() {
    let site = site();
    // Protected at 04:10 UTC: the sun:03:00-sun:04:00 window has closed.
    let (st, rp) = protected_at(&site, 3600);
    let ev = evidence(vec![replica(rp.clone(), 0.0)]);
    let d = decide_on(
        &site,
        &signal("tick-1", SignalKind::Tick),
        &ev,
        &st,
        t(3660),
    );
    let st = d.next.clone().expect("the wait is recorded");
    assert!(
        st.switchover.as_ref().is_none_or(|s| !s.failback),
        "no back leg outside the window"
    );
    assert_eq!(st.drill.as_ref().unwrap().phase, DrillPhase::Reprotecting);
    let paged = drill_events(&d);
    assert!(
        paged.len() == 1
            && paged[0].contains("outside every maintenance window")
            && paged[0].contains("sun:03:00-sun:04:00"),
        "{paged:?}"
    );
    // The next tick, still outside: no second page, nothing changes.
    let d = decide_on(
        &site,
        &signal("tick-2", SignalKind::Tick),
        &ev,
        &st,
        t(3720),
    );
    assert!(drill_events(&d).is_empty(), "{:?}", drill_events(&d));
    assert!(d
        .next
        .as_ref()
        .is_none_or(|n| n.switchover.as_ref().is_none_or(|s| !s.failback)));
    // Next Sunday 03:10, inside the window: the back leg starts.
    let week = 7 * 86_400;
    let d = decide_on(
        &site,
        &signal("tick-3", SignalKind::Tick),
        &ev,
        &st,
        t(week),
    );
    let next = d.next.expect("the back leg starts");
    assert!(next
        .switchover
        .as_ref()
        .is_some_and(|s| s.drill && s.failback && s.target == rp));
    assert_eq!(next.drill.as_ref().unwrap().phase, DrillPhase::Back);
    // Nine days on, never started (say the window was missed): abandoned, with a message.
    let d = decide_on(
        &site,
        &signal("tick-4", SignalKind::Tick),
        &ev,
        &st,
        t(9 * 86_400),
    );
    let next = d.next.expect("abandoned");
    let drill = next.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Abandoned);
    assert!(drill.note.unwrap().contains("has not started 8 days"));
    assert!(next.switchover.as_ref().is_none_or(|s| !s.failback));
    assert_eq!(next.drills.len(), 1);
}

/// Issue 13 finding 10: the back leg is decided after the tick's own evaluation — a tick that
/// saw the writer down starts no back leg; and a back leg the switchover refuses for good (its
/// target's group holds read_only=1) ends the drill with a message instead of refusing every tick.
#[test]
fn an_outage_tick_starts_no_back_leg_and_a_refused_back_leg_ends_the_drill() {
    let site = site();
    let (st, rp) = protected_at(&site, 600);
    let mut down = evidence(vec![replica(rp.clone(), 0.0)]);
    down.primary = DbObservation::status("failed");
    let d = decide_on(
        &site,
        &signal("tick-1", SignalKind::Tick),
        &down,
        &st,
        t(660),
    );
    assert!(
        d.next
            .as_ref()
            .is_none_or(|n| n.switchover.as_ref().is_none_or(|s| !s.failback)),
        "no back leg on a tick that saw the writer down: {}",
        d.verdict.summary
    );
    let mut ev = evidence(vec![replica(rp.clone(), 0.0)]);
    ev.read_only_groups = vec![crate::evidence::GroupReadOnly {
        db: rp.id.clone(),
        group: "orders-params".into(),
        read_only: Some("1".into()),
    }];
    let d = decide_on(&site, &signal("tick-2", SignalKind::Tick), &ev, &st, t(720));
    let next = d.next.clone().expect("the drill ends");
    assert!(
        next.switchover.as_ref().is_none_or(|s| !s.failback),
        "nothing fenced"
    );
    let drill = next.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Abandoned, "{drill:?}");
    let note = drill.note.unwrap();
    assert!(
        note.contains("orders-params") && note.contains("read_only=1"),
        "{note}"
    );
    assert_eq!(drill_events(&d).len(), 1);
    // The next tick: nothing more (the drill has ended).
    let d = decide_on(
        &site,
        &signal("tick-3", SignalKind::Tick),
        &ev,
        &next,
        t(780),
    );
    assert!(drill_events(&d).is_empty());
}

fn abort_cmd(id: &str, epoch: u64) -> Signal {
    signal(
        id,
        SignalKind::Operator(OperatorCommand {
            command: OperatorAction::Abort,
            site: "orders".into(),
            reason: Some("drill wedged".into()),
            operator: Some("bob@example.com".into()),
            override_rpo: false,
            epoch: Some(epoch),
            candidate: None,
            force: false,
            override_cooldown: false,
            primary: None,
            max_wait_secs: None,
            outside_window: false,
            principal: None,
            drill: None,
        }),
    )
}

/// Issue 13 finding 6: `abort` ends a drill in flight (recorded, with where the site is left);
/// mid-leg it is refused, saying to wait for the leg to end.
#[test]
fn abort_ends_a_drill_in_flight_but_not_mid_leg() {
    let site = site();
    let d = decide_on(
        &site,
        &drill_cmd("d1", "orders-replica-1", false),
        &home_ev(),
        &SiteState::new("orders"),
        t(0),
    );
    let st = d.next.unwrap();
    let epoch = st.epoch;
    let d = decide_on(&site, &abort_cmd("a1", epoch), &home_ev(), &st, t(5));
    assert!(
        d.verdict.summary.contains("mid-switchover") && d.verdict.summary.contains("wait"),
        "{}",
        d.verdict.summary
    );
    assert!(d
        .next
        .as_ref()
        .is_none_or(|n| n.drill.as_ref().unwrap().phase == DrillPhase::Out));
    let mut st = run_leg(&site, st, 10, 19);
    st.outbox.clear();
    assert_eq!(st.drill.as_ref().unwrap().phase, DrillPhase::Reprotecting);
    let dr_ev = evidence(vec![]);
    let d = decide_on(&site, &abort_cmd("a2", st.epoch), &dr_ev, &st, t(100));
    let next = d.next.clone().expect("the drill ends");
    let drill = next.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Abandoned);
    let note = drill.note.clone().unwrap();
    assert!(
        note.contains("ABANDONED by bob@example.com")
            && note.contains("orders-replica-1")
            && note.contains("not home"),
        "{note}"
    );
    assert_eq!(next.drills, vec![drill]);
    assert_eq!(drill_events(&d).len(), 1);
}

/// Issue 13 finding 6: a drill from the DR side (the site not home), or to a target in the
/// original region, is refused before any AWS call; a re-protection that failed ends the drill.
#[test]
fn refused_away_from_home_or_to_a_home_target_and_ended_by_a_failed_reprotect() {
    let site2 = site_with(|doc| {
        doc["sites"][0]["candidates"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"id": "orders-east-2", "region": "us-east-1"}));
    });
    let mut ev = home_ev();
    ev.candidates
        .push(replica(db("orders-east-2", "us-east-1"), 0.0));
    let d = decide_on(
        &site2,
        &drill_cmd("d1", "orders-east-2", false),
        &ev,
        &SiteState::new("orders"),
        t(0),
    );
    assert!(
        d.verdict
            .summary
            .contains("is in the original region us-east-1"),
        "{}",
        d.verdict.summary
    );
    assert!(d
        .next
        .as_ref()
        .is_none_or(|n| n.drill.is_none() && n.switchover.is_none()));

    let site = site();
    let d = decide_on(
        &site,
        &drill_cmd("d2", "orders-replica-1", false),
        &home_ev(),
        &SiteState::new("orders"),
        t(0),
    );
    let st = run_leg(&site, d.next.unwrap(), 10, 19);
    // Its re-protection fails: the next tick ends the drill, saying so.
    let mut rp = st.reprotect.clone().unwrap();
    rp.phase = crate::reprotect::RpPhase::Failed;
    rp.note = Some("CreateDBInstanceReadReplica refused".into());
    let mut st = crate::reprotect::commit(&site, &st, rp, None, t(300)).unwrap();
    st.outbox.clear();
    let d = decide_on(
        &site,
        &signal("tick-1", SignalKind::Tick),
        &evidence(vec![]),
        &st,
        t(360),
    );
    let st = d.next.expect("the drill ends");
    let drill = st.drill.clone().unwrap();
    assert_eq!(drill.phase, DrillPhase::Abandoned);
    assert!(drill.note.unwrap().contains("FAILED"));
    // The site is on the DR side now: a new drill is refused, naming it.
    let d = decide_on(
        &site,
        &drill_cmd("d3", "orders-replica-2", false),
        &home_ev(),
        &st,
        t(400),
    );
    assert!(
        d.verdict.summary.contains("already on the DR side"),
        "{}",
        d.verdict.summary
    );
}
