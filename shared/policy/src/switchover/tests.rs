use super::*;
use crate::config::Config;
use crate::gtid::{BinlogPos, GtidSet, MariaPos};
use crate::incident::{Pause, Phase};
use chrono::TimeZone;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");
const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn site(id: &str) -> SiteConfig {
    let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    for s in v["sites"].as_array_mut().unwrap() {
        if s["id"] == "orders" {
            s["fence"] = serde_json::json!({"parameter_group": "orders-primary-params"});
        }
    }
    Config::from_document(&v.to_string())
        .unwrap()
        .site(id)
        .unwrap()
        .clone()
}

fn orders() -> SiteConfig {
    site("orders")
}

fn target() -> DbRef {
    DbRef {
        id: "orders-replica-1".into(),
        region: "us-west-2".into(),
    }
}

fn req() -> Request {
    Request {
        target: target(),
        by: "ana".into(),
        reason: "quarterly DR test".into(),
        max_wait_secs: Some(30),
        drill: false,
    }
}

fn healthy() -> Observed {
    Observed {
        primary_available: true,
        primary_reachable: true,
        target_status: Some("available".into()),
        target_replicating: Some(true),
        target_lag_secs: Some(0.0),
        backup_running: false,
        primary_gtid: Some(true),
        target_read_only_group: None,
    }
}

fn ma(s: &str) -> Position {
    Position::MariadbGtid(MariaPos::parse(s).unwrap())
}
fn my(s: &str) -> Position {
    Position::MysqlGtid(GtidSet::parse(s).unwrap())
}
fn bl(s: &str) -> Position {
    Position::Binlog(BinlogPos::parse(s).unwrap())
}

#[test]
fn preconditions_table() {
    type Case = (
        &'static str,
        fn(&mut SiteConfig, &mut SiteState, &mut Request, &mut Observed),
        Option<RefusalReason>,
    );
    let cases: Vec<Case> = vec![
        ("all healthy", |_, _, _, _| {}, None),
        (
            "paused",
            |_, st, _, _| {
                st.paused = Some(Pause {
                    by: "bo".into(),
                    reason: "freeze".into(),
                    at: t(0),
                })
            },
            Some(RefusalReason::Paused),
        ),
        (
            "target not a candidate",
            |_, _, r, _| r.target.id = "orders-replica-9".into(),
            Some(RefusalReason::NoHealthyCandidate),
        ),
        (
            "primary not available",
            |_, _, _, o| o.primary_available = false,
            Some(RefusalReason::PrimaryUnhealthy),
        ),
        (
            "primary does not answer over SQL",
            |_, _, _, o| o.primary_reachable = false,
            Some(RefusalReason::PrimaryUnhealthy),
        ),
        (
            "target replicates from elsewhere",
            |_, _, _, o| o.target_replicating = Some(false),
            Some(RefusalReason::NoHealthyCandidate),
        ),
        (
            "target topology unreadable",
            |_, _, _, o| o.target_replicating = None,
            Some(RefusalReason::NoHealthyCandidate),
        ),
        (
            "target rebooting",
            |_, _, _, o| o.target_status = Some("rebooting".into()),
            Some(RefusalReason::NoHealthyCandidate),
        ),
        (
            "lag at the bound",
            |_, _, _, o| o.target_lag_secs = Some(MAX_START_LAG_SECS),
            None,
        ),
        (
            "lag above the bound",
            |_, _, _, o| o.target_lag_secs = Some(MAX_START_LAG_SECS + 0.5),
            Some(RefusalReason::RpoExceeded),
        ),
        (
            "lag unknown",
            |_, _, _, o| o.target_lag_secs = None,
            Some(RefusalReason::LagUnknown),
        ),
        (
            "site RPO tighter than the bound",
            |s, _, _, o| {
                s.thresholds.max_lag_secs = 1;
                o.target_lag_secs = Some(2.0)
            },
            Some(RefusalReason::RpoExceeded),
        ),
        (
            "backup running (observed)",
            |_, _, _, o| o.backup_running = true,
            Some(RefusalReason::BackupRunning),
        ),
        (
            "backup running (ledger: RDS event)",
            |_, st, _, _| {
                st.backups_running.insert("orders-replica-1".into());
            },
            Some(RefusalReason::BackupRunning),
        ),
        (
            "no fence section",
            |s, _, _, _| s.fence = None,
            Some(RefusalReason::NotFenceable),
        ),
        // Review finding b: binlog coordinates only → refused before anything is fenced.
        (
            "GTIDs off (binlog coordinates only)",
            |_, _, _, o| o.primary_gtid = Some(false),
            Some(RefusalReason::NoGtid),
        ),
        (
            "GTID mode unreadable",
            |_, _, _, o| o.primary_gtid = None,
            Some(RefusalReason::NoGtid),
        ),
        // Issue 13 finding 1: promoted, a target whose group holds read_only=1 stays read-only.
        (
            "target's group holds an explicit read_only=1",
            |_, _, _, o| o.target_read_only_group = Some("orders-params".into()),
            Some(RefusalReason::TargetReadOnly),
        ),
        (
            "max_wait 0",
            |_, _, r, _| r.max_wait_secs = Some(0),
            Some(RefusalReason::BadWait),
        ),
        (
            "max_wait too long",
            |_, _, r, _| r.max_wait_secs = Some(MAX_WAIT_LIMIT_SECS + 1),
            Some(RefusalReason::BadWait),
        ),
        (
            "max_wait defaulted",
            |_, _, r, _| r.max_wait_secs = None,
            None,
        ),
    ];
    for (name, f, want) in cases {
        let (mut s, mut st, mut r, mut o) = (orders(), SiteState::new("orders"), req(), healthy());
        f(&mut s, &mut st, &mut r, &mut o);
        let got = preconditions(&s, &st, &r, &o);
        match (want, got) {
            (None, Ok(g)) => assert!(
                g.iter().all(|g| g.result == GuardResult::Pass),
                "{name}: {g:?}"
            ),
            (Some(w), Err(e)) => {
                assert_eq!(e.reason, w, "{name}: {}", e.detail);
                // Shown like a verdict: every guard judged, the failing one among them.
                assert!(e.guards.len() >= 7, "{name}: {:?}", e.guards);
                assert!(e
                    .guards
                    .iter()
                    .any(|g| g.result == GuardResult::Fail && g.detail == e.detail));
            }
            (w, g) => panic!("{name}: wanted {w:?}, got {g:?}"),
        }
    }
}

#[test]
fn preconditions_of_managed_engines_skip_lag_and_fence() {
    for (id, t) in [
        ("billing", "billing-2"),
        ("payments", "payments-west"),
        ("inventory", "inventory-db"),
    ] {
        let s = site(id);
        let r = Request {
            target: DbRef {
                id: t.into(),
                region: if id == "payments" || id == "billing" || id == "inventory" {
                    "us-west-2".into()
                } else {
                    unreachable!()
                },
            },
            ..req()
        };
        let o = Observed {
            target_replicating: (id != "inventory").then_some(true),
            target_lag_secs: None,
            ..healthy()
        };
        let g = preconditions(&s, &SiteState::new(id), &r, &o)
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert!(g
            .iter()
            .any(|g| g.guard == Guard::Rpo && g.result == GuardResult::NotApplicable));
        assert!(!g.iter().any(|g| g.guard == Guard::Fence));
    }
}

#[test]
fn admit_deduplicates_and_refuses_concurrent() {
    let s = orders();
    let mut st = SiteState::new("orders");
    assert_eq!(admit(&st, &req()), Admit::Start);
    st.epoch = 3;
    st.phase = Phase::Promoting;
    st.switchover = Some(start(&s, 3, &req(), t(0)));
    assert!(matches!(admit(&st, &req()), Admit::Duplicate(_)));
    let other = Request {
        target: DbRef {
            id: "orders-replica-2".into(),
            region: "us-west-2".into(),
        },
        ..req()
    };
    assert!(matches!(admit(&st, &other), Admit::Busy(_)));
    let drill = Request {
        drill: true,
        ..req()
    };
    assert!(matches!(admit(&st, &drill), Admit::Busy(_)));
    // A closed epoch does not hold the site, whatever its record last said; an open incident
    // does.
    st.phase = Phase::Completed;
    assert_eq!(admit(&st, &req()), Admit::Start);
    st.phase = Phase::Suspected;
    st.switchover = None;
    assert!(matches!(admit(&st, &req()), Admit::Busy(d) if d.contains("incident")));
    // A record of an older epoch is history: the open incident is what holds the site.
    st.switchover = Some(start(&s, 2, &req(), t(0)));
    assert!(matches!(admit(&st, &req()), Admit::Busy(d) if d.contains("incident")));
}

#[test]
fn the_promotion_is_held_until_the_target_caught_up() {
    let s = orders();
    let mut st = SiteState::new("orders");
    st.epoch = 3;
    st.phase = Phase::Promoting;
    assert_eq!(holds_promotion(&st), None, "not a switchover");
    let mut r = start(&s, 3, &req(), t(0));
    for o in [
        Observation::Fenced,
        Observation::Captured(ma("0-1-5")),
        Observation::Applied(ma("0-1-4")),
    ] {
        st.switchover = Some(r.clone());
        assert!(matches!(holds_promotion(&st), Some(Ok(_))), "{:?}", r.phase);
        r = advance(&r, o, t(1)).unwrap().record;
    }
    st.switchover = Some(r.clone());
    assert!(matches!(holds_promotion(&st), Some(Ok(_))));
    let caught = advance(&r, Observation::Applied(ma("0-1-5")), t(2))
        .unwrap()
        .record;
    st.switchover = Some(caught);
    assert_eq!(holds_promotion(&st), None);
    let rolled = advance(&r, Observation::Tick, t(100)).unwrap().record;
    st.switchover = Some(rolled);
    assert!(matches!(holds_promotion(&st), Some(Err(_))));
    // Another epoch's record holds nothing.
    st.epoch = 4;
    assert_eq!(holds_promotion(&st), None);
}

#[test]
fn caught_up_table() {
    let cases = [
        (ma("0-1-100"), ma("0-1-100"), true),
        (ma("0-1-100"), ma("0-1-99"), false),
        (ma("0-1-100"), ma("0-1-101"), true), // the target is a replica: nothing of its own
        (ma("0-1-100,1-1-5"), ma("0-1-100"), false),
        (ma("0-1-100,1-1-5"), ma("1-1-5,0-1-100"), true),
        (my(&format!("{A}:1-100")), my(&format!("{A}:1-100")), true),
        (my(&format!("{A}:1-100")), my(&format!("{A}:1-99")), false),
        (
            my(&format!("{A}:1-100")),
            my(&format!("{A}:1-50:52-100")),
            false,
        ), // a gap
        (bl("mysql-bin.000042:154"), bl("mysql-bin.000042:154"), true),
        (
            bl("mysql-bin.000042:900"),
            bl("mysql-bin.000042:154"),
            false,
        ),
        (bl("mysql-bin.000009:900"), bl("mysql-bin.000010:4"), true), // rotated
        // Shapes that cannot be compared are never "caught up".
        (ma("0-1-100"), bl("mysql-bin.000042:154"), false),
        (my(&format!("{A}:1-3")), ma("0-1-100"), false),
    ];
    for (c, a, want) in cases {
        assert_eq!(caught_up(&c, &a), want, "{c} vs {a}");
    }
}

/// The happy path of an RDS read replica: every phase in order, one message at the end, and the
/// RTO and RPO measured from the record's own timestamps.
#[test]
fn rds_replica_happy_path_measures_rto_and_rpo() {
    let mut r = start(&orders(), 7, &req(), t(0));
    assert_eq!(next_action(&r, t(0)), Action::Fence);
    let steps = [
        (1, Observation::FenceAsked, SwPhase::Fencing),
        (3, Observation::Fenced, SwPhase::Capturing),
        (4, Observation::Captured(ma("0-1-120")), SwPhase::CatchingUp),
        (5, Observation::Applied(ma("0-1-118")), SwPhase::CatchingUp),
        (6, Observation::Applied(ma("0-1-120")), SwPhase::Promoting),
        (7, Observation::PromotionRequested, SwPhase::VerifyingWrites),
        (9, Observation::WritesVerified, SwPhase::MovingDns),
    ];
    for (at, obs, want) in steps {
        let a = advance(&r, obs.clone(), t(at)).unwrap();
        assert_eq!(a.record.phase, want, "{obs:?}");
        assert_eq!(a.message, None, "{obs:?}");
        r = a.record;
    }
    assert_eq!(
        next_action(&r, t(9)),
        Action::MoveDns,
        "DNS moves only after writes were verified"
    );
    let m = r.measured.clone().unwrap();
    assert_eq!(
        m.rto_ms, 8_000,
        "fence asked at 1 s, writes verified at 9 s"
    );
    assert_eq!(m.rpo_transactions, Some(0));
    let done = advance(&r, Observation::DnsMoved, t(10)).unwrap();
    assert_eq!(done.record.phase, SwPhase::Done);
    let msg = done.message.unwrap();
    assert!(msg.contains("8000 ms") && msg.contains("RPO 0"), "{msg}");
    assert_eq!(next_action(&done.record, t(11)), Action::Finished);
}

#[test]
fn catch_up_waits_with_the_time_left() {
    let mut r = start(&orders(), 7, &req(), t(0));
    for (at, o) in [
        (2, Observation::FenceAsked),
        (4, Observation::Fenced),
        (5, Observation::Captured(ma("0-1-9"))),
    ] {
        r = advance(&r, o, t(at)).unwrap().record;
    }
    assert_eq!(
        next_action(&r, t(10)),
        Action::WaitForTarget {
            position: ma("0-1-9"),
            secs: 22
        },
        "30 s from the fence's start at 2 s"
    );
    // A second capture after a crash keeps the first: heartbeat writes may have moved the live one.
    let again = advance(&r, Observation::Captured(ma("0-1-10")), t(11)).unwrap();
    assert_eq!(again.record.captured, Some(ma("0-1-9")));
}

/// Scenario 2: the target lags past `max_wait_secs` → rolled back, one message, DNS untouched.
#[test]
fn a_lagging_target_rolls_back_with_one_message() {
    let mut r = start(&orders(), 7, &req(), t(0));
    for (at, o) in [
        (1, Observation::FenceAsked),
        (2, Observation::Fenced),
        (3, Observation::Captured(ma("0-1-500"))),
        (10, Observation::Applied(ma("0-1-200"))),
        (25, Observation::Applied(ma("0-1-400"))),
    ] {
        r = advance(&r, o, t(at)).unwrap().record;
        assert_eq!(r.phase, if at < 3 { r.phase } else { SwPhase::CatchingUp });
    }
    // Caught up one second too late: the deadline promised to the operator wins.
    let a = advance(&r, Observation::Applied(ma("0-1-500")), t(31)).unwrap();
    assert_eq!(a.record.phase, SwPhase::RollingBack);
    let msg = a.message.clone().unwrap();
    assert!(
        msg.contains("ROLLED BACK") && msg.contains("DNS was not touched"),
        "{msg}"
    );
    assert_eq!(next_action(&a.record, t(31)), Action::UndoFence);
    assert!(a.record.promotion_requested_at.is_none());
    // Everything after is quiet until the old primary is seen writable; then finished.
    let b = advance(&a.record, Observation::Tick, t(32)).unwrap();
    assert_eq!(b.message, None);
    let c = advance(&b.record, Observation::WritableAgain, t(33)).unwrap();
    assert_eq!(c.record.phase, SwPhase::RolledBack);
    assert_eq!(c.message, None, "one message per rollback");
    assert_eq!(c.record.rollback.unwrap().writable_again_at, Some(t(33)));
}

#[test]
fn timeouts_and_refusals_before_the_promotion_roll_back() {
    let s = orders();
    // The fence never observed within the wait.
    let r = start(&s, 7, &req(), t(0));
    let r = advance(&r, Observation::FenceAsked, t(1)).unwrap().record;
    assert_eq!(
        advance(&r, Observation::Tick, t(30)).unwrap().record.phase,
        SwPhase::Fencing
    );
    assert_eq!(
        advance(&r, Observation::Tick, t(31)).unwrap().record.phase,
        SwPhase::RollingBack
    );
    // A refused fence step.
    let a = advance(&r, Observation::FenceRefused("shared group".into()), t(2)).unwrap();
    assert_eq!(a.record.phase, SwPhase::RollingBack);
    assert!(a.message.unwrap().contains("shared group"));
    // A hard failure while capturing.
    let r = advance(&r, Observation::Fenced, t(2)).unwrap().record;
    let a = advance(&r, Observation::Failed("access denied".into()), t(3)).unwrap();
    assert_eq!(a.record.phase, SwPhase::RollingBack);
}

#[test]
fn after_the_promotion_request_it_never_rolls_back() {
    let mut r = start(&orders(), 7, &req(), t(0));
    for (at, o) in [
        (1, Observation::Fenced),
        (2, Observation::Captured(ma("0-1-5"))),
        (3, Observation::Applied(ma("0-1-5"))),
        (4, Observation::PromotionRequested),
    ] {
        r = advance(&r, o, t(at)).unwrap().record;
    }
    assert!(!may_roll_back(&r));
    // Long past the wait: still verifying, never rolling back.
    let a = advance(&r, Observation::Tick, t(4000)).unwrap();
    assert_eq!(a.record.phase, SwPhase::VerifyingWrites);
    let f = advance(&r, Observation::Failed("candidate failed".into()), t(4001)).unwrap();
    assert_eq!(f.record.phase, SwPhase::VerifyingWrites);
    assert!(f.message.unwrap().contains("stays read-only"));
    assert!(advance(&r, Observation::WritableAgain, t(5)).is_err());
    // Caught up at 3 s, promotion not yet requested: the deadline no longer matters (the target
    // has everything; promoting is the fastest way back to writes).
    let mut p = start(&orders(), 7, &req(), t(0));
    for (at, o) in [
        (1, Observation::Fenced),
        (2, Observation::Captured(ma("0-1-5"))),
        (3, Observation::Applied(ma("0-1-5"))),
    ] {
        p = advance(&p, o, t(at)).unwrap().record;
    }
    assert_eq!(p.phase, SwPhase::Promoting);
    assert!(!may_roll_back(&p));
    assert_eq!(
        advance(&p, Observation::Tick, t(100)).unwrap().record.phase,
        SwPhase::Promoting
    );
}

#[test]
fn managed_engines_start_at_promoting() {
    for id in ["billing", "payments", "inventory"] {
        let s = site(id);
        let r = start(&s, 2, &req(), t(0));
        assert_eq!(r.phase, SwPhase::Promoting, "{id}");
        assert_eq!(next_action(&r, t(0)), Action::Promote);
        let r = advance(&r, Observation::PromotionRequested, t(1))
            .unwrap()
            .record;
        let r = advance(&r, Observation::WritesVerified, t(5))
            .unwrap()
            .record;
        let m = r.measured.clone().unwrap();
        assert_eq!(m.rto_ms, 5_000, "{id}: from the request (no fence of ours)");
        assert_eq!(m.rpo_transactions, None, "{id}: AWS's, not measured by us");
        let d = advance(&r, Observation::DnsMoved, t(6)).unwrap();
        assert!(d.message.unwrap().contains("unmeasured"));
    }
}

#[test]
fn an_unobserved_fence_start_counts_from_the_request() {
    let r = start(&orders(), 2, &req(), t(0));
    let r = advance(&r, Observation::Fenced, t(4)).unwrap().record;
    assert_eq!(r.fence_started_at, Some(t(0)));
    let r = advance(&r, Observation::Captured(ma("0-1-1")), t(5))
        .unwrap()
        .record;
    let r = advance(&r, Observation::Applied(ma("0-1-1")), t(6))
        .unwrap()
        .record;
    let r = advance(&r, Observation::PromotionRequested, t(7))
        .unwrap()
        .record;
    let r = advance(&r, Observation::WritesVerified, t(9))
        .unwrap()
        .record;
    assert_eq!(r.measured.unwrap().rto_ms, 9_000);
}

#[test]
fn drills_say_so() {
    let r = start(
        &orders(),
        2,
        &Request {
            drill: true,
            ..req()
        },
        t(0),
    );
    let a = advance(&r, Observation::FenceRefused("x".into()), t(1)).unwrap();
    assert!(a.message.unwrap().starts_with("DRILL switchover"));
}

/// Scenario 3 in the pure model (the handler's matrix crashes the function between its calls):
/// every sequence of up to four observations, each delivered at a time before or after the wait,
/// with repeats (a crash re-delivers). Whatever happens: never writable again once the promotion
/// was requested, DNS only after verified writes, writes only after the promotion request, and
/// the promotion only after the target applied the captured position.
#[test]
fn no_sequence_makes_two_writers_or_points_dns_at_a_read_only_server() {
    let all = [
        Observation::FenceAsked,
        Observation::Fenced,
        Observation::FenceRefused("r".into()),
        Observation::Captured(ma("0-1-10")),
        Observation::Applied(ma("0-1-9")),
        Observation::Applied(ma("0-1-10")),
        Observation::PromotionRequested,
        Observation::WritesVerified,
        Observation::DnsMoved,
        Observation::WritableAgain,
        Observation::Failed("f".into()),
        Observation::Tick,
    ];
    let times = [5i64, 40];
    let starts: Vec<SwitchoverRecord> = {
        let base = start(&orders(), 7, &req(), t(0));
        let mut v = vec![base.clone()];
        let mut r = base;
        for o in [
            Observation::Fenced,
            Observation::Captured(ma("0-1-10")),
            Observation::Applied(ma("0-1-10")),
            Observation::PromotionRequested,
            Observation::WritesVerified,
        ] {
            r = advance(&r, o, t(1)).unwrap().record;
            v.push(r.clone());
        }
        v
    };
    let mut explored = 0u64;
    fn walk(r: &SwitchoverRecord, depth: u32, all: &[Observation], times: &[i64], n: &mut u64) {
        check(r);
        if depth == 0 {
            return;
        }
        for o in all {
            for &at in times {
                if let Ok(a) = advance(r, o.clone(), t(at)) {
                    *n += 1;
                    if a.record.promotion_requested_at.is_some() {
                        assert!(
                            !matches!(a.record.phase, SwPhase::RollingBack | SwPhase::RolledBack),
                            "rolled back after the promotion request: {:?} after {:?}",
                            a.record,
                            o
                        );
                    }
                    walk(&a.record, depth - 1, all, times, n);
                }
            }
        }
    }
    fn check(r: &SwitchoverRecord) {
        if r.dns_moved_at.is_some() {
            assert!(r.writes_verified_at.is_some(), "DNS before writes: {r:?}");
        }
        if r.writes_verified_at.is_some() {
            assert!(r.promotion_requested_at.is_some(), "{r:?}");
        }
        if r.promotion_requested_at.is_some() || r.phase == SwPhase::Promoting {
            let (c, a) = (r.captured.as_ref().unwrap(), r.applied.as_ref().unwrap());
            assert!(caught_up(c, a), "promoted before caught up: {r:?}");
            assert!(r.rollback.is_none(), "{r:?}");
        }
        if r.phase == SwPhase::RolledBack {
            assert!(r.promotion_requested_at.is_none(), "{r:?}");
        }
    }
    for s in &starts {
        walk(s, 4, &all, &times, &mut explored);
    }
    assert!(explored > 10_000, "explored {explored}");
}

#[test]
fn the_record_round_trips_through_the_ledger_json() {
    let mut r = start(&orders(), 7, &req(), t(0));
    r = advance(&r, Observation::Fenced, t(1)).unwrap().record;
    r = advance(&r, Observation::Captured(my(&format!("{A}:1-7"))), t(2))
        .unwrap()
        .record;
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["phase"], "capturing".replace("capturing", "catching-up"));
    let back: SwitchoverRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}
