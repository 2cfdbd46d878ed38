use super::*;
use crate::config::{Config, DbRef};
use crate::fence::intent;
use crate::incident::Forced;
use crate::switchover::{advance, start, Request};
use chrono::TimeZone;

const EXAMPLE: &str = include_str!("../../../../../infra/sites.example.json");

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn orders() -> SiteConfig {
    let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    v["sites"][0]["fence"] = serde_json::json!({"parameter_group": "orders-primary-params"});
    Config::from_document(&v.to_string())
        .unwrap()
        .site("orders")
        .unwrap()
        .clone()
}

/// The state a `switchover` command records for `orders` at t(0), max_wait 30 s.
fn recorded() -> (SiteConfig, SiteState) {
    let site = orders();
    let mut st = SiteState::new("orders");
    st.open_incident(t(0), "planned switchover").unwrap();
    st.transition(st.epoch, Phase::Promoting, t(0), "switchover")
        .unwrap();
    let req = Request {
        target: DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        },
        by: "ana".into(),
        reason: "planned".into(),
        max_wait_secs: Some(30),
        drill: false,
    };
    st.switchover = Some(start(&site, st.epoch, &req, t(0)));
    st.fence = Some(intent(&site, st.epoch, None, t(0)));
    st.forced = Some(Forced {
        epoch: st.epoch,
        by: "ana".into(),
        reason: "planned".into(),
        at: t(0),
        fence_first: true,
    });
    (site, st)
}

fn set(st: &mut SiteState, step: Step, state: StepState) {
    let f = st.fence.as_mut().unwrap();
    f.steps.iter_mut().find(|s| s.step == step).unwrap().state = state;
}

fn done(at: i64) -> StepState {
    StepState::Done {
        at: t(at),
        observed: "seen".into(),
    }
}

#[test]
fn the_fence_is_observed_step_by_step_from_the_ledger() {
    let (_, mut st) = recorded();
    let rec = st.switchover.clone().unwrap();
    assert_eq!(
        from_ledger(&st, &rec, t(1)),
        Some((Observation::FenceAsked, t(1))),
        "the start is the driver's, before the fence's first call"
    );
    let mut rec = rec;
    rec.fence_started_at = Some(t(1));
    assert_eq!(from_ledger(&st, &rec, t(2)), None);
    set(&mut st, Step::ParameterReadOnly, done(2));
    set(&mut st, Step::SqlReadOnly, done(3));
    assert_eq!(from_ledger(&st, &rec, t(4)), None, "sessions not ended yet");
    let mut no_sessions = st.clone();
    set(
        &mut no_sessions,
        Step::EndSessions,
        StepState::NotApplicable { reason: "x".into() },
    );
    assert_eq!(
        from_ledger(&no_sessions, &rec, t(4)),
        Some((Observation::Fenced, t(3)))
    );
    set(&mut st, Step::EndSessions, done(5));
    assert_eq!(
        from_ledger(&st, &rec, t(9)),
        Some((Observation::Fenced, t(5))),
        "at the last step's own time"
    );
    set(
        &mut st,
        Step::SqlReadOnly,
        StepState::Refused {
            reason: "no SQL login".into(),
        },
    );
    assert!(matches!(
        from_ledger(&st, &rec, t(9)),
        Some((Observation::FenceRefused(w), _)) if w.contains("no SQL login")
    ));
}

#[test]
fn ending_sessions_runs_before_the_promotion_only_for_a_fencing_switchover() {
    let (_, mut st) = recorded();
    assert!(runs_before_promotion(&st, Step::EndSessions));
    assert!(!runs_before_promotion(&st, Step::Snapshot));
    st.switchover.as_mut().unwrap().phase = SwPhase::Capturing;
    assert!(!runs_before_promotion(&st, Step::EndSessions));
    st.switchover = None;
    assert!(!runs_before_promotion(&st, Step::EndSessions));
    assert!(runs_before_promotion(&st, Step::ParameterReadOnly));
}

#[test]
fn a_rollback_closes_the_epoch_with_one_message_and_its_undo_adds_none() {
    let (site, st) = recorded();
    let rec = st.switchover.clone().unwrap();
    let adv = advance(&rec, Observation::Tick, t(31)).unwrap();
    assert_eq!(adv.record.phase, SwPhase::RollingBack);
    let next = commit(&site, &st, adv.record.clone(), adv.message, t(31)).unwrap();
    assert_eq!(next.phase, Phase::Aborted);
    assert_eq!(next.version, st.version + 1);
    assert_eq!(next.outbox.len(), 1);
    assert_eq!(next.outbox[0].event_type, EventType::FailoverAborted);
    assert!(next.outbox[0]
        .verdict
        .summary
        .contains("DNS was not touched"));
    // The promoter's gate no longer holds a promotion: the epoch is closed.
    assert_eq!(
        crate::fence::fenced_first(&next),
        crate::fence::FencedFirst::NotNeeded
    );
    let again = Request {
        target: rec.target.clone(),
        by: "bo".into(),
        reason: "again".into(),
        max_wait_secs: None,
        drill: false,
    };
    assert!(
        matches!(crate::switchover::admit(&next, &again), crate::switchover::Admit::Busy(w) if w.contains("not yet seen writable")),
        "no new epoch drops the undo"
    );
    let mut flushed = next.clone();
    flushed.outbox.clear();
    let undone = advance(&adv.record, Observation::WritableAgain, t(33)).unwrap();
    let last = commit(&site, &flushed, undone.record, undone.message, t(33)).unwrap();
    assert_eq!(last.switchover.as_ref().unwrap().phase, SwPhase::RolledBack);
    assert!(last.outbox.is_empty() && last.phase == Phase::Aborted);
    assert_eq!(
        commit(&site, &last, last.switchover.clone().unwrap(), None, t(40)),
        None,
        "nothing new: nothing written"
    );
    assert_eq!(
        crate::switchover::admit(&last, &again),
        crate::switchover::Admit::Start
    );
}

/// Review finding: the epoch closed (an operator's abort, the promoter's pre-checks) while the
/// record waited at `promoting`, before RDS was asked. The old primary is read-only since the
/// fence: the record must roll back (writes given back), not wait forever.
#[test]
fn an_epoch_closed_before_the_promotion_request_rolls_back_and_says_so() {
    let (site, mut st) = recorded();
    let mut rec = st.switchover.clone().unwrap();
    rec.phase = SwPhase::Promoting;
    rec.fence_started_at = Some(t(1));
    rec.fenced_at = Some(t(2));
    rec.caught_up_at = Some(t(3));
    st.switchover = Some(rec.clone());
    st.transition(
        st.epoch,
        Phase::Aborted,
        t(4),
        "aborted by ana: wrong target",
    )
    .unwrap();
    let (obs, at) = from_ledger(&st, &rec, t(5)).expect("the closed epoch is observed");
    assert!(
        matches!(&obs, Observation::Failed(w) if w.contains("before RDS was asked")),
        "{obs:?}"
    );
    let adv = advance(&rec, obs, at).unwrap();
    assert_eq!(adv.record.phase, SwPhase::RollingBack);
    let next = commit(&site, &st, adv.record.clone(), adv.message, t(5)).unwrap();
    assert_eq!(next.phase, Phase::Aborted, "the epoch stays closed");
    assert_eq!(
        next.outbox.len(),
        1,
        "one message: writes are being given back"
    );
    assert_eq!(next.outbox[0].event_type, EventType::FailoverAborted);

    // Once RDS was asked (the promoter recorded it), a closed epoch rolls forward only.
    let mut asked = st.clone();
    asked.promotion = Some(
        serde_json::from_value(serde_json::json!({
            "epoch": st.epoch, "candidate": {"id": "orders-replica-1", "region": "us-west-2"},
            "action": "PromoteReadReplica", "requested_at": "2027-01-15T08:00:05Z"
        }))
        .unwrap(),
    );
    let obs = from_ledger(&asked, &rec, t(6)).expect("the request is observed");
    assert_eq!(obs.0, Observation::PromotionRequested);
}

/// Issue 13 review finding f: an Aurora (or Multi-AZ) switchover starts at `promoting` and, like
/// an rds-replica one, is finished by the tick from the promoter's and the pinner's ledger
/// entries — verified writes, then DNS — to `done`, not left at `promoting`.
#[test]
fn a_managed_engine_switchover_is_driven_through_verified_writes_and_dns_to_done() {
    let cfg: crate::config::Config = Config::from_document(EXAMPLE).unwrap();
    let site = cfg.site("billing").unwrap().clone();
    let mut st = SiteState::new("billing");
    st.open_incident(t(0), "planned switchover").unwrap();
    st.transition(st.epoch, Phase::Promoting, t(0), "switchover")
        .unwrap();
    let target = site.candidates[0].clone();
    let req = Request {
        target: target.clone(),
        by: "ana".into(),
        reason: "planned".into(),
        max_wait_secs: Some(60),
        drill: false,
    };
    st.switchover = Some(start(&site, st.epoch, &req, t(0)));
    assert_eq!(st.switchover.as_ref().unwrap().phase, SwPhase::Promoting);
    assert!(driven(&site, &st).is_some(), "the tick drives it");
    assert_eq!(from_ledger(&st, driven(&site, &st).unwrap(), t(1)), None);

    st.promotion = Some(crate::incident::PromotionRecord {
        epoch: st.epoch,
        candidate: target.clone(),
        action: "FailoverDBCluster".into(),
        requested_at: t(2),
        completed_at: None,
        endpoint: None,
        writable_verified_at: None,
        resolved: None,
    });
    let step = |st: &mut SiteState, now: i64| {
        let rec = driven(&site, st).cloned().expect("driven");
        let (obs, at) = from_ledger(st, &rec, t(now)).expect("observed");
        let adv = advance(&rec, obs, at).unwrap();
        *st = commit(&site, st, adv.record, adv.message, t(now)).unwrap();
    };
    step(&mut st, 3);
    assert_eq!(
        st.switchover.as_ref().unwrap().phase,
        SwPhase::VerifyingWrites
    );
    st.promotion.as_mut().unwrap().writable_verified_at = Some(t(30));
    step(&mut st, 31);
    let rec = st.switchover.clone().unwrap();
    assert_eq!(rec.phase, SwPhase::MovingDns);
    assert_eq!(
        rec.measured.as_ref().unwrap().rto_ms,
        30_000,
        "from the request"
    );
    st.dns = Some(
        serde_json::from_value(serde_json::json!({
            "epoch": st.epoch, "zone_id": "Z1", "name": "billing.", "record_type": "CNAME",
            "previous_values": ["billing-1.x"], "new_value": "billing-2.x",
            "insync_at": "2027-01-15T08:00:40Z"
        }))
        .unwrap(),
    );
    step(&mut st, 41);
    assert_eq!(st.switchover.as_ref().unwrap().phase, SwPhase::Done);
    assert!(driven(&site, &st).is_none(), "finished");
}

/// A managed-engine switchover whose epoch closed before the promoter asked AWS is rolled back
/// at once (nothing of ours to undo), with one message, and frees the site.
#[test]
fn a_managed_engine_switchover_closed_before_the_request_is_rolled_back_at_once() {
    let cfg: crate::config::Config = Config::from_document(EXAMPLE).unwrap();
    let site = cfg.site("billing").unwrap().clone();
    let mut st = SiteState::new("billing");
    st.open_incident(t(0), "planned switchover").unwrap();
    st.transition(st.epoch, Phase::Promoting, t(0), "switchover")
        .unwrap();
    let req = Request {
        target: site.candidates[0].clone(),
        by: "ana".into(),
        reason: "planned".into(),
        max_wait_secs: Some(60),
        drill: false,
    };
    st.switchover = Some(start(&site, st.epoch, &req, t(0)));
    st.transition(st.epoch, Phase::Aborted, t(1), "aborted by ana")
        .unwrap();
    let rec = driven(&site, &st).cloned().expect("driven");
    let (obs, at) = from_ledger(&st, &rec, t(2)).expect("observed");
    let adv = advance(&rec, obs, at).unwrap();
    assert_eq!(adv.record.phase, SwPhase::RolledBack);
    assert!(adv.message.as_deref().unwrap().contains("stays the writer"));
    let next = commit(&site, &st, adv.record, adv.message, t(2)).unwrap();
    assert_eq!(next.outbox.len(), 1, "one message");
    assert!(driven(&site, &next).is_none());
    let again = Request { ..req };
    assert_eq!(
        crate::switchover::admit(&next, &again),
        crate::switchover::Admit::Start
    );
}
