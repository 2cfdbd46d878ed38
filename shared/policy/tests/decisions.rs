//! Decision tables for every guard: what the evaluator concludes from a signal, the evidence and
//! the ledger record — including unknown evidence and every refusal reason — and which domain
//! events it emits. Black-box: only the crate's public API, with the example site configuration.

use chrono::{DateTime, Duration, TimeZone, Utc};
use failover_policy::config::{AlarmRole, DbRef};
use failover_policy::evidence::{
    AlarmEvidence, CanaryResult, CandidateEvidence, DbObservation, Evidence, LagSample,
};
use failover_policy::incident::Pause;
use failover_policy::signal::{
    AlarmSignal, AlarmState, Delivery, OperatorAction, OperatorCommand, RdsMeaning, RdsSignal,
    RdsSourceType,
};
use failover_policy::verdict::{GuardResult, IgnoreReason, RefusalReason};
use failover_policy::*;

const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");
const ACCOUNT: &str = "123456789012";

fn cfg() -> Config {
    Config::from_document(EXAMPLE).unwrap()
}

/// Tuesday 2026-11-24 10:00 UTC: outside every maintenance window of the example.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
fn fresh_id() -> String {
    format!(
        "evt-{}",
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn alarm(name: &str, state: AlarmState, time: DateTime<Utc>) -> Signal {
    Signal {
        id: fresh_id(),
        delivery: Delivery::EventBridge,
        source: "aws.cloudwatch".into(),
        account: Some(ACCOUNT.into()),
        region: Some("us-west-2".into()),
        time: Some(time),
        kind: SignalKind::Alarm(AlarmSignal {
            name: name.into(),
            arn: None,
            state,
            previous: None,
            composite: false,
            reason: String::new(),
        }),
    }
}

fn tick(time: DateTime<Utc>) -> Signal {
    Signal {
        id: fresh_id(),
        delivery: Delivery::EventBridge,
        source: "aws.events".into(),
        account: Some(ACCOUNT.into()),
        region: Some("us-west-2".into()),
        time: Some(time),
        kind: SignalKind::Tick,
    }
}

fn rds(source_id: &str, event_id: &str, meaning: RdsMeaning, time: DateTime<Utc>) -> Signal {
    Signal {
        id: fresh_id(),
        delivery: Delivery::EventBridge,
        source: "aws.rds".into(),
        account: Some(ACCOUNT.into()),
        region: Some("us-west-2".into()),
        time: Some(time),
        kind: SignalKind::Rds(RdsSignal {
            source_type: RdsSourceType::Instance,
            source_id: source_id.into(),
            source_arn: None,
            event_id: event_id.into(),
            message: String::new(),
            meaning,
        }),
    }
}

fn op(
    site: &str,
    command: OperatorAction,
    override_rpo: bool,
    reason: Option<&str>,
    epoch: Option<u64>,
) -> Signal {
    Signal {
        id: fresh_id(),
        delivery: Delivery::Direct,
        source: "rds-failover.operator".into(),
        account: None,
        region: None,
        time: None,
        kind: SignalKind::Operator(OperatorCommand {
            command,
            site: site.into(),
            reason: reason.map(String::from),
            operator: Some("alice@example.com".into()),
            override_rpo,
            epoch,
            candidate: None,
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

/// Evidence for `orders` (quorum 2 of: two availability alarms, RDS status, canary).
#[derive(Clone)]
struct World {
    availability: Option<AlarmState>,
    canary_alarm: Option<AlarmState>,
    primary: DbObservation,
    canary: CanaryResult,
    r1: DbObservation,
    r1_replica: Option<bool>,
    r1_lag: Option<f64>,
    r2: DbObservation,
    r2_lag: Option<f64>,
}

impl World {
    fn healthy() -> Self {
        Self {
            availability: Some(AlarmState::Ok),
            canary_alarm: Some(AlarmState::Ok),
            primary: DbObservation::status("available"),
            canary: CanaryResult::Reachable { latency_ms: 3 },
            r1: DbObservation::status("available"),
            r1_replica: Some(true),
            r1_lag: Some(2.0),
            r2: DbObservation::status("available"),
            r2_lag: Some(4.0),
        }
    }
    /// The primary is gone: alarms fire, RDS in the dead region can't be read, SQL is refused,
    /// replication stopped so lag reads -1 (no reading).
    fn outage() -> Self {
        Self {
            availability: Some(AlarmState::Alarm),
            canary_alarm: Some(AlarmState::Alarm),
            primary: DbObservation::Unreadable {
                error: "timeout".into(),
            },
            canary: CanaryResult::Unreachable {
                error: "connection refused".into(),
            },
            r1_lag: None,
            r2_lag: None,
            ..Self::healthy()
        }
    }
    fn evidence(&self) -> Evidence {
        Evidence {
            primary_multi_az: None,
            vantage_region: Some("us-west-2".into()),
            primary_gtid: None,
            read_only_groups: vec![],
            alarms: vec![
                AlarmEvidence {
                    name: "orders-primary-availability".into(),
                    role: AlarmRole::Availability,
                    state: self.availability,
                },
                AlarmEvidence {
                    name: "orders-primary-canary".into(),
                    role: AlarmRole::Availability,
                    state: self.canary_alarm,
                },
                AlarmEvidence {
                    name: "orders-replica-lag".into(),
                    role: AlarmRole::Lag,
                    state: Some(AlarmState::Ok),
                },
            ],
            primary: self.primary.clone(),
            candidates: vec![
                CandidateEvidence {
                    db: DbRef {
                        id: "orders-replica-1".into(),
                        region: "us-west-2".into(),
                    },
                    status: self.r1.clone(),
                    replica_of_primary: self.r1_replica,
                    lag_secs: self.r1_lag,
                    lag_at: None,
                    replication: None,
                    created_at: None,
                },
                CandidateEvidence {
                    db: DbRef {
                        id: "orders-replica-2".into(),
                        region: "us-west-2".into(),
                    },
                    status: self.r2.clone(),
                    replica_of_primary: Some(true),
                    lag_secs: self.r2_lag,
                    lag_at: None,
                    replication: None,
                    created_at: None,
                },
            ],
            canary: self.canary.clone(),
        }
    }
}

/// Runs one signal for `site` and returns the decision, applying `next` to `state` like a ledger.
fn step(
    site: &str,
    signal: &Signal,
    world: &World,
    state: &mut SiteState,
    now: DateTime<Utc>,
) -> Decision {
    let c = cfg();
    let sc = c.site(site).unwrap();
    let ev = world.evidence();
    let evidence = needs_evidence(signal).then_some(&ev);
    let d = decide(sc, signal, evidence, state, now);
    if let Some(next) = &d.next {
        assert_eq!(
            next.version,
            state.version + 1,
            "every write bumps the version by one"
        );
        assert_eq!(
            next.outbox.len(),
            state.outbox.len() + d.emit.len(),
            "emitted events ride in the outbox"
        );
        *state = next.clone();
        state.outbox.clear(); // as the handler does once the bus confirms
    }
    d
}

fn types(d: &Decision) -> Vec<&'static str> {
    d.emit.iter().map(|e| e.event_type.detail_type()).collect()
}

fn guard(d: &Decision, g: Guard) -> &failover_policy::verdict::GuardCheck {
    d.verdict
        .guards
        .iter()
        .find(|c| c.guard == g)
        .unwrap_or_else(|| panic!("guard {g:?} not in {:#?}", d.verdict.guards))
}

/// Drives `orders` from healthy to a confirmed outage (quorum held for the 120 s window).
fn confirmed_outage(world: &World, state: &mut SiteState) -> Decision {
    step("orders", &tick(at(-60)), &World::healthy(), state, at(-60));
    let first = step(
        "orders",
        &alarm("orders-primary-availability", AlarmState::Alarm, at(0)),
        world,
        state,
        at(0),
    );
    assert_eq!(first.verdict.outcome, Outcome::Suspected);
    step("orders", &tick(at(60)), world, state, at(60))
        .verdict
        .outcome
        .eq(&Outcome::Suspected)
        .then_some(())
        .expect("still inside the window");
    step("orders", &tick(at(120)), world, state, at(120))
}

// ------------------------------------------------------------------------ routing

#[test]
fn routing_rejects_foreign_forged_stale_and_future_before_any_aws_call() {
    let c = cfg();
    let mut s = alarm("orders-primary-availability", AlarmState::Alarm, t0());
    s.account = Some("999999999999".into());
    assert_ignored(&c, &s, IgnoreReason::ForeignAccount);

    let mut s = alarm("orders-primary-availability", AlarmState::Alarm, t0());
    s.account = None;
    assert_ignored(&c, &s, IgnoreReason::ForeignAccount);

    let s = alarm("somebody-elses-alarm", AlarmState::Alarm, t0());
    assert_ignored(&c, &s, IgnoreReason::UnknownResource);

    let s = rds("attacker-db", "RDS-EVENT-0004", RdsMeaning::Outage, t0());
    assert_ignored(&c, &s, IgnoreReason::UnknownResource);

    let mut s = rds("orders-primary", "RDS-EVENT-0004", RdsMeaning::Outage, t0());
    if let SignalKind::Rds(r) = &mut s.kind {
        r.source_arn = Some("arn:aws:rds:us-east-1:999999999999:db:orders-primary".into());
    }
    assert_ignored(&c, &s, IgnoreReason::UnknownResource);

    let mut s = alarm("orders-primary-availability", AlarmState::Alarm, t0());
    s.source = "my.fake.cloudwatch".into();
    assert_ignored(&c, &s, IgnoreReason::WrongSource);

    let mut s = alarm("orders-primary-availability", AlarmState::Alarm, t0());
    s.region = Some("ap-south-1".into());
    assert_ignored(&c, &s, IgnoreReason::ForeignRegion);

    let s = alarm(
        "orders-primary-availability",
        AlarmState::Alarm,
        t0() - Duration::days(4),
    );
    let v = assert_ignored(&c, &s, IgnoreReason::Stale);
    assert_eq!(v.guards[0].limit, Some(900.0));
    assert_eq!(v.guards[0].observed, Some(4.0 * 86400.0));

    let s = alarm(
        "orders-primary-availability",
        AlarmState::Alarm,
        t0() + Duration::hours(2),
    );
    assert_ignored(&c, &s, IgnoreReason::FromTheFuture);

    let s = op("nosuchsite", OperatorAction::Failover, false, None, None);
    assert_ignored(&c, &s, IgnoreReason::UnknownSite);
}

fn assert_ignored(c: &Config, s: &Signal, reason: IgnoreReason) -> Verdict {
    match route(c, s, t0()) {
        Routing::Ignore(v) => {
            assert_eq!(v.outcome, Outcome::Ignore { reason }, "{}", v.summary);
            assert!(v.guards.iter().any(|g| g.result == GuardResult::Fail));
            v
        }
        Routing::Sites(s) => panic!("expected {reason:?}, routed to {s:?}"),
    }
}

#[test]
fn routing_names_the_owning_site_and_ticks_reach_every_site() {
    let c = cfg();
    assert_eq!(
        route(
            &c,
            &alarm("billing-writer-availability", AlarmState::Alarm, t0()),
            t0()
        ),
        Routing::Sites(vec!["billing".into()])
    );
    assert_eq!(
        route(
            &c,
            &rds(
                "orders-replica-1",
                "RDS-EVENT-0001",
                RdsMeaning::BackupStarted,
                t0()
            ),
            t0()
        ),
        Routing::Sites(vec!["orders".into()])
    );
    assert_eq!(
        route(&c, &tick(t0()), t0()),
        Routing::Sites(vec![
            "orders".into(),
            "billing".into(),
            "payments".into(),
            "inventory".into()
        ])
    );
    // A primary-region event (us-east-1) is legitimate for a site whose primary lives there.
    let mut s = alarm("orders-primary-availability", AlarmState::Alarm, t0());
    s.region = Some("us-east-1".into());
    assert!(matches!(route(&c, &s, t0()), Routing::Sites(_)));
}

// ------------------------------------------------------------------------ quorum, window, unknowns

#[test]
fn healthy_evidence_is_ignored_and_records_lag() {
    let mut st = SiteState::new("orders");
    let d = step("orders", &tick(t0()), &World::healthy(), &mut st, t0());
    assert_eq!(
        d.verdict.outcome,
        Outcome::Ignore {
            reason: IgnoreReason::Healthy
        }
    );
    assert_eq!(st.phase, Phase::Idle);
    assert_eq!(
        st.last_good_lag["orders-replica-1"],
        LagSample {
            secs: 2.0,
            at: t0(),
            created_at: None,
        }
    );
    assert!(d.emit.is_empty());
}

#[test]
fn a_single_vote_is_suspected_never_a_failover() {
    let mut st = SiteState::new("orders");
    let mut w = World::healthy();
    w.availability = Some(AlarmState::Alarm);
    for i in 0..10 {
        let d = step("orders", &tick(at(i * 60)), &w, &mut st, at(i * 60));
        assert_eq!(d.verdict.outcome, Outcome::Suspected);
        assert_eq!(guard(&d, Guard::Quorum).result, GuardResult::Fail);
        assert_eq!(guard(&d, Guard::Quorum).observed, Some(1.0));
        assert_eq!(guard(&d, Guard::Quorum).limit, Some(2.0));
        assert_eq!(types(&d), Vec::<&str>::new(), "suspected is announced once");
    }
    assert_eq!(st.epoch, 1);
}

#[test]
fn unknown_evidence_counts_neither_as_down_nor_as_healthy() {
    // One real down vote plus three unknowns: quorum 2 *could* be met but is not known to be.
    let mut st = SiteState::new("orders");
    let mut w = World::outage();
    w.availability = Some(AlarmState::InsufficientData);
    w.canary_alarm = None;
    let d = step("orders", &tick(t0()), &w, &mut st, t0());
    assert_eq!(d.verdict.outcome, Outcome::Suspected);
    assert_eq!(guard(&d, Guard::Quorum).result, GuardResult::Unknown);
    for i in 1..10 {
        let d = step("orders", &tick(at(i * 60)), &w, &mut st, at(i * 60));
        assert_ne!(d.verdict.outcome.name(), "failover-decided");
    }

    // Every voter unknown: nothing opens and an open incident is not closed either.
    let all_unknown = World {
        availability: Some(AlarmState::InsufficientData),
        canary_alarm: Some(AlarmState::InsufficientData),
        canary: CanaryResult::Unknown {
            reason: "secret unreadable".into(),
        },
        ..World::outage()
    };
    let mut fresh = SiteState::new("orders");
    let d = step("orders", &tick(t0()), &all_unknown, &mut fresh, t0());
    assert_eq!(d.verdict.outcome, Outcome::Watch);
    assert_eq!(fresh.phase, Phase::Idle);
    let d = step("orders", &tick(at(600)), &all_unknown, &mut st, at(600));
    assert_eq!(d.verdict.outcome, Outcome::Watch);
    assert_eq!(st.phase, Phase::Suspected, "unknown is not recovery");
}

#[test]
fn a_sustained_corroborated_outage_decides_a_failover_to_the_first_candidate() {
    let mut st = SiteState::new("orders");
    let d = confirmed_outage(&World::outage(), &mut st);
    assert_eq!(
        d.verdict.outcome,
        Outcome::FailoverDecided {
            candidate: DbRef {
                id: "orders-replica-1".into(),
                region: "us-west-2".into()
            }
        }
    );
    assert_eq!(d.verdict.epoch, 1);
    assert_eq!(st.phase, Phase::Promoting);
    // The cooldown starts when RDS is asked (promote::request), not at the decision.
    assert_eq!(st.last_failover_at, None);
    assert_eq!(types(&d), vec!["FailoverDecided"]);
    let ev = &d.emit[0];
    assert_eq!(ev.epoch, 1);
    assert_eq!(ev.candidate.as_ref().unwrap().id, "orders-replica-1");
    // The old primary's fence is recorded with the decision, with the lag it was decided on.
    let fence = st
        .fence
        .as_ref()
        .expect("fence intent recorded with the decision");
    assert_eq!(
        (fence.epoch, fence.old_primary.id.as_str()),
        (1, "orders-primary")
    );
    assert!(
        fence
            .decided_lag
            .as_deref()
            .is_some_and(|l| l.contains("lag")),
        "{:?}",
        fence.decided_lag
    );
    // Every guard was evaluated and explained.
    for g in [
        Guard::Duplicate,
        Guard::InFlight,
        Guard::Quorum,
        Guard::ManagedFailover,
        Guard::Sustained,
        Guard::Pause,
        Guard::MaintenanceWindow,
        Guard::Cooldown,
        Guard::DeliberateStop,
        Guard::Candidate,
        Guard::Rpo,
        Guard::Approval,
        Guard::Shadow,
    ] {
        assert_eq!(
            guard(&d, g).result,
            GuardResult::Pass,
            "{g:?}: {}",
            guard(&d, g).detail
        );
    }
    let rpo = guard(&d, Guard::Rpo);
    assert_eq!((rpo.observed, rpo.limit), (Some(2.0), Some(30.0)));
    assert!(
        rpo.detail.contains("last known good"),
        "lag -1 now: the pre-outage reading is used: {}",
        rpo.detail
    );
    let sustained = guard(&d, Guard::Sustained);
    assert_eq!(
        (sustained.observed, sustained.limit),
        (Some(120.0), Some(120.0))
    );
}

#[test]
fn losing_the_quorum_restarts_the_sustained_window() {
    let mut st = SiteState::new("orders");
    let w = World::outage();
    let mut one_vote = World::outage();
    one_vote.canary_alarm = Some(AlarmState::Ok);
    one_vote.canary = CanaryResult::Reachable { latency_ms: 900 };
    step(
        "orders",
        &tick(at(-60)),
        &World::healthy(),
        &mut st,
        at(-60),
    );
    step("orders", &tick(at(0)), &w, &mut st, at(0));
    step("orders", &tick(at(60)), &one_vote, &mut st, at(60));
    step("orders", &tick(at(90)), &w, &mut st, at(90));
    let d = step("orders", &tick(at(150)), &w, &mut st, at(150));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Suspected,
        "only 60 s of uninterrupted quorum"
    );
    assert_eq!(guard(&d, Guard::Sustained).observed, Some(60.0));
    let d = step("orders", &tick(at(210)), &w, &mut st, at(210));
    assert!(matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }));
}

#[test]
fn a_flapping_alarm_is_one_incident_one_message_and_never_fails_over() {
    // The canary alarm flaps ALARM/OK every 50 s for 500 s. Each ALARM meets the quorum for a
    // moment; before the flap window, that was five incidents and ten pages.
    let mut st = SiteState::new("orders");
    let mut sent = vec![];
    for cycle in 0..5 {
        let base = cycle * 100;
        let d = step(
            "orders",
            &alarm("orders-primary-availability", AlarmState::Alarm, at(base)),
            &World::outage(),
            &mut st,
            at(base),
        );
        assert_eq!(d.verdict.outcome, Outcome::Suspected);
        sent.extend(types(&d));
        let d = step(
            "orders",
            &alarm("orders-primary-availability", AlarmState::Ok, at(base + 50)),
            &World::healthy(),
            &mut st,
            at(base + 50),
        );
        assert_eq!(d.verdict.outcome, Outcome::Watch);
        sent.extend(types(&d));
        assert_eq!(st.phase, Phase::Suspected, "still one open incident");
    }
    // Quiet for the whole flap window (300 s): closed, with one message that says what flapped.
    step(
        "orders",
        &tick(at(700)),
        &World::healthy(),
        &mut st,
        at(700),
    );
    let d = step(
        "orders",
        &tick(at(760)),
        &World::healthy(),
        &mut st,
        at(760),
    );
    sent.extend(types(&d));
    assert_eq!(st.phase, Phase::Aborted);
    assert_eq!(st.epoch, 1, "the flaps fold into one incident");
    assert_eq!(sent, vec!["IncidentSuspected", "IncidentCleared"]);
    let cleared = &d.emit[0].verdict.summary;
    assert!(
        cleared.contains("cleared and came back 4 time(s)"),
        "{cleared}"
    );
    assert!(
        cleared.contains("alarm orders-primary-availability"),
        "{cleared}"
    );
    assert!(st.last_failover_at.is_none());
}

#[test]
fn down_votes_below_the_quorum_page_nobody() {
    // One flaky voter for an hour, never corroborated: no page at all, open or closed.
    let mut st = SiteState::new("orders");
    let mut w = World::healthy();
    let mut sent = vec![];
    for i in 0..60 {
        w.availability = Some(if i % 2 == 0 {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        });
        let d = step("orders", &tick(at(i * 60)), &w, &mut st, at(i * 60));
        sent.extend(types(&d));
    }
    w.availability = Some(AlarmState::Ok);
    for i in 60..70 {
        let d = step("orders", &tick(at(i * 60)), &w, &mut st, at(i * 60));
        sent.extend(types(&d));
    }
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(st.phase, Phase::Aborted);
}

// ------------------------------------------------------------------------ refusals

fn refused_with(
    mut st: SiteState,
    w: World,
    now_offset: i64,
    reason: RefusalReason,
) -> (Decision, SiteState) {
    let d = confirmed_outage(&w, &mut st);
    let _ = now_offset;
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused { reason },
        "{:#?}",
        d.verdict
    );
    assert_eq!(st.phase, Phase::Refused);
    assert_eq!(types(&d), vec!["FailoverRefused"]);
    assert!(d
        .emit
        .iter()
        .all(|e| e.event_type != EventType::FailoverDecided));
    (d, st)
}

#[test]
fn pause_refuses_and_names_who_paused() {
    let mut st = SiteState::new("orders");
    st.paused = Some(Pause {
        by: "bob".into(),
        reason: "us-east-1 regional event".into(),
        at: at(-3600),
    });
    let (d, _) = refused_with(st, World::outage(), 0, RefusalReason::Paused);
    assert!(guard(&d, Guard::Pause)
        .detail
        .contains("us-east-1 regional event"));
}

#[test]
fn maintenance_window_refuses() {
    // Sunday 2026-11-29 03:10 UTC is inside orders' sun:03:00-sun:04:00.
    let sunday = Utc.with_ymd_and_hms(2026, 11, 29, 3, 10, 0).unwrap();
    let c = cfg();
    let sc = c.site("orders").unwrap();
    let mut st = SiteState::new("orders");
    let w = World::outage();
    let mut last = None;
    for s in [0, 60, 120] {
        let sig = tick(sunday + Duration::seconds(s));
        let d = decide(
            sc,
            &sig,
            Some(&w.evidence()),
            &st,
            sunday + Duration::seconds(s),
        );
        st = d.next.clone().unwrap();
        last = Some(d);
    }
    let d = last.unwrap();
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::MaintenanceWindow
        }
    );
    assert!(guard(&d, Guard::MaintenanceWindow)
        .detail
        .contains("sun:03:00-sun:04:00"));
}

#[test]
fn cooldown_refuses_with_its_numbers() {
    let mut st = SiteState::new("orders");
    st.last_failover_at = Some(at(-600));
    let (d, _) = refused_with(st, World::outage(), 0, RefusalReason::Cooldown);
    let g = guard(&d, Guard::Cooldown);
    assert_eq!((g.observed, g.limit), (Some(720.0), Some(3600.0)));
}

/// An earlier epoch's promotion, requested at `at(-7200)` and failed afterwards (`pinned` says
/// whether DNS was pinned for it before the incident closed).
fn after_a_promotion(pinned: bool) -> SiteState {
    use failover_policy::incident::{DnsRecord, PromotionRecord};
    let mut st = SiteState::new("orders");
    st.epoch = 1;
    st.phase = if pinned {
        Phase::Completed
    } else {
        Phase::Failed
    };
    st.last_failover_at = Some(at(-7200));
    let r1 = DbRef {
        id: "orders-replica-1".into(),
        region: "us-west-2".into(),
    };
    st.promotion = Some(PromotionRecord {
        epoch: 1,
        candidate: r1,
        action: "PromoteReadReplica".into(),
        requested_at: at(-7200),
        completed_at: Some(at(-7000)),
        endpoint: Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306".into()),
        writable_verified_at: Some(at(-7000)),
        resolved: None,
    });
    st.dns = Some(DnsRecord {
        epoch: 1,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: "db.orders.example.com".into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        previous_values: vec!["orders-primary.x.us-east-1.rds.amazonaws.com".into()],
        previous_ttl: Some(300),
        new_value: "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
        change_id: Some("C1".into()),
        insync_at: pinned.then(|| at(-6990)),
        previous_records: None,
    });
    st
}

/// An operator's failover of `orders` (with an RPO override) during the outage.
fn fail_over_by_hand(st: &mut SiteState) -> Decision {
    // No candidate ever reported a lag reading here: the operator must name the one to promote.
    let mut cmd = op(
        "orders",
        OperatorAction::Failover,
        true,
        Some("replica-1 fenced by hand"),
        None,
    );
    named(&mut cmd, "orders-replica-2");
    step("orders", &cmd, &World::outage(), st, t0())
}

/// Sets the candidate an operator's command names.
fn named(s: &mut Signal, id: &str) {
    if let SignalKind::Operator(c) = &mut s.kind {
        c.candidate = Some(id.into());
    }
}

#[test]
fn a_promotion_that_failed_before_dns_was_pinned_is_never_followed_by_an_automatic_one() {
    // Found by the fault matrix: epoch 1 promoted orders-replica-1, then DNS could not be pinned
    // (IAM) and the epoch failed. After the cooldown, the next outage of the old primary must
    // not promote orders-replica-2 as well: two writers.
    let (d, st) = refused_with(
        after_a_promotion(false),
        World::outage(),
        0,
        RefusalReason::UnresolvedPromotion,
    );
    assert_eq!(st.epoch, 2);
    let g = guard(&d, Guard::Candidate);
    assert_eq!(g.result, GuardResult::Fail);
    assert!(g.detail.contains("orders-replica-1"), "{}", g.detail);
    // A human may still decide it.
    let mut st = after_a_promotion(false);
    let d = fail_over_by_hand(&mut st);
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:#?}",
        d.verdict
    );
    // A promotion that was pinned and completed by a human holds nothing back.
    let mut st = after_a_promotion(true);
    let d = confirmed_outage(&World::outage(), &mut st);
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:#?}",
        d.verdict
    );
}

#[test]
fn a_human_resolves_an_unpinned_promotion_with_complete_naming_its_epoch() {
    let resolve = |epoch| {
        op(
            "orders",
            OperatorAction::Complete,
            false,
            Some("replica-1 fenced off by hand, DNS left on the primary"),
            Some(epoch),
        )
    };
    // Right after the epoch failed: the hold is lifted, the phase stays failed, people are told.
    let mut st = after_a_promotion(false);
    let d = step("orders", &resolve(1), &World::outage(), &mut st, t0());
    assert_eq!(d.verdict.outcome, Outcome::Completed, "{:#?}", d.verdict);
    assert_eq!(st.phase, Phase::Failed);
    let r = st.promotion.as_ref().unwrap().resolved.clone().unwrap();
    assert!(r.reason.contains("fenced off") && r.at == t0(), "{r:?}");
    assert_eq!(d.emit.len(), 1);
    assert_eq!(d.emit[0].event_type, EventType::FailoverCompleted);
    // The next outage is decided again, automatically.
    let d = confirmed_outage(&World::outage(), &mut st);
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:#?}",
        d.verdict
    );

    // After automation already refused a later epoch: `complete` names the failed one.
    let (_, mut st) = refused_with(
        after_a_promotion(false),
        World::outage(),
        0,
        RefusalReason::UnresolvedPromotion,
    );
    let wrong = step("orders", &resolve(2), &World::outage(), &mut st, t0());
    assert_eq!(
        wrong.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert!(wrong.next.is_none(), "a refused command writes nothing");
    let d = step("orders", &resolve(1), &World::outage(), &mut st, t0());
    assert_eq!(d.verdict.outcome, Outcome::Completed, "{:#?}", d.verdict);
    assert_eq!((st.epoch, st.phase), (2, Phase::Refused));
    // Said twice: the second changes nothing.
    let again = step("orders", &resolve(1), &World::outage(), &mut st, t0());
    assert!(
        again.next.is_none() && again.emit.is_empty(),
        "{:#?}",
        again.verdict
    );

    // Not while a later epoch is in flight: the manual failover under way clears it when pinned.
    let mut st = after_a_promotion(false);
    fail_over_by_hand(&mut st);
    assert_eq!(st.phase, Phase::Promoting);
    let d = step("orders", &resolve(1), &World::outage(), &mut st, t0());
    assert!(d.next.is_none(), "{:#?}", d.verdict);
    assert!(st.promotion.as_ref().unwrap().resolved.is_none());
}

#[test]
fn a_deliberately_stopped_primary_is_left_to_humans() {
    let mut w = World::outage();
    w.primary = DbObservation::status("stopped");
    refused_with(
        SiteState::new("orders"),
        w,
        0,
        RefusalReason::DeliberateStop,
    );
}

#[test]
fn lag_beyond_the_rpo_refuses_and_says_how_to_override() {
    let mut w = World::outage();
    w.r1_lag = Some(45.0);
    w.r2_lag = Some(50.0);
    let (d, _) = refused_with(SiteState::new("orders"), w, 0, RefusalReason::RpoExceeded);
    let g = guard(&d, Guard::Rpo);
    assert_eq!((g.observed, g.limit), (Some(45.0), Some(30.0)));
    assert!(
        d.verdict.summary.contains("override_rpo"),
        "{}",
        d.verdict.summary
    );
}

#[test]
fn lag_never_known_refuses_as_unknown() {
    // Lag has never been readable (a fresh deployment during an outage): cannot bound the loss.
    let mut st = SiteState::new("orders");
    let w = World::outage();
    step("orders", &tick(at(0)), &w, &mut st, at(0));
    step("orders", &tick(at(60)), &w, &mut st, at(60));
    let d = step("orders", &tick(at(120)), &w, &mut st, at(120));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::LagUnknown
        }
    );
    assert_eq!(guard(&d, Guard::Rpo).result, GuardResult::Unknown);
}

#[test]
fn candidates_are_taken_in_preference_order_skipping_unfit_ones() {
    // replica-1 is being backed up (RDS event), so replica-2 is chosen.
    let mut st = SiteState::new("orders");
    step(
        "orders",
        &tick(at(-120)),
        &World::healthy(),
        &mut st,
        at(-120),
    );
    step(
        "orders",
        &rds(
            "orders-replica-1",
            "RDS-EVENT-0001",
            RdsMeaning::BackupStarted,
            at(-90),
        ),
        &World::healthy(),
        &mut st,
        at(-90),
    );
    let d = confirmed_outage(&World::outage(), &mut st);
    assert_eq!(
        d.verdict.outcome,
        Outcome::FailoverDecided {
            candidate: DbRef {
                id: "orders-replica-2".into(),
                region: "us-west-2".into()
            }
        }
    );
    assert!(guard(&d, Guard::Candidate)
        .detail
        .contains("backup is running"));

    // replica-1 does not replicate from the primary, replica-2 is rebooting: nobody to promote.
    let mut w = World::outage();
    w.r1_replica = Some(false);
    w.r2 = DbObservation::status("rebooting");
    let (d, _) = refused_with(
        SiteState::new("orders"),
        w,
        0,
        RefusalReason::NoHealthyCandidate,
    );
    let detail = &guard(&d, Guard::Candidate).detail;
    assert!(
        detail.contains("does not replicate") && detail.contains("rebooting"),
        "{detail}"
    );
}

// ------------------------------------------------------------------------ approval, shadow, in flight

fn billing_world() -> Evidence {
    Evidence {
        primary_multi_az: None,
        vantage_region: Some("us-west-2".into()),
        primary_gtid: None,
        read_only_groups: vec![],
        alarms: vec![AlarmEvidence {
            name: "billing-writer-availability".into(),
            role: AlarmRole::Availability,
            state: Some(AlarmState::Alarm),
        }],
        primary: DbObservation::status("failed"),
        candidates: vec![CandidateEvidence {
            db: DbRef {
                id: "billing-2".into(),
                region: "us-west-2".into(),
            },
            status: DbObservation::status("available"),
            replica_of_primary: Some(true),
            lag_secs: Some(0.02),
            lag_at: None,
            replication: None,
            created_at: None,
        }],
        canary: CanaryResult::Unknown {
            reason: failover_policy::evidence::NO_CANARY.into(),
        },
    }
}

#[test]
fn require_approval_waits_and_only_the_matching_approval_proceeds() {
    let c = cfg();
    let sc = c.site("billing").unwrap();
    let ev = billing_world();
    let mut st = SiteState::new("billing");
    let run = |sig: Signal, now: DateTime<Utc>, st: &mut SiteState| {
        let d = decide(sc, &sig, needs_evidence(&sig).then_some(&ev), st, now);
        if let Some(n) = &d.next {
            *st = n.clone();
        }
        d
    };
    run(tick(at(0)), at(0), &mut st);
    let d = run(tick(at(60)), at(60), &mut st);
    assert!(
        matches!(d.verdict.outcome, Outcome::AwaitingApproval { .. }),
        "{:#?}",
        d.verdict
    );
    assert_eq!(types(&d), vec!["ApprovalRequested"]);
    assert_eq!(guard(&d, Guard::Approval).result, GuardResult::Fail);

    let d = run(tick(at(120)), at(120), &mut st);
    assert!(d.emit.is_empty(), "asked once");

    let before = st.clone();
    let d = run(
        op("billing", OperatorAction::Approve, false, None, Some(7)),
        at(130),
        &mut st,
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::StaleApproval
        }
    );
    assert!(d.next.is_none(), "a refused command writes nothing");
    assert_eq!(st, before);

    let d = run(
        op("billing", OperatorAction::Approve, false, None, Some(1)),
        at(140),
        &mut st,
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::FailoverDecided {
            candidate: DbRef {
                id: "billing-2".into(),
                region: "us-west-2".into()
            }
        }
    );
    assert_eq!(types(&d), vec!["FailoverDecided"]);
    assert!(guard(&d, Guard::Approval)
        .detail
        .contains("approved by alice@example.com"));

    let d = run(
        op("billing", OperatorAction::Approve, false, None, Some(1)),
        at(150),
        &mut st,
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToApprove
        }
    );
}

#[test]
fn shadow_mode_says_what_it_would_do_and_never_decides() {
    let c = cfg();
    let sc = c.site("payments").unwrap();
    let ev = Evidence {
        primary_multi_az: None,
        vantage_region: Some("us-west-2".into()),
        primary_gtid: None,
        read_only_groups: vec![],
        // us-east-1 is lost: its alarm cannot be read; the witness's alarm in us-west-2 fires.
        alarms: vec![
            AlarmEvidence {
                name: "payments-primary-availability".into(),
                role: AlarmRole::Availability,
                state: None,
            },
            AlarmEvidence {
                name: "payments-primary-canary".into(),
                role: AlarmRole::Availability,
                state: Some(AlarmState::Alarm),
            },
        ],
        primary: DbObservation::Unreadable {
            error: "us-east-1 timeout".into(),
        },
        candidates: vec![CandidateEvidence {
            db: DbRef {
                id: "payments-west".into(),
                region: "us-west-2".into(),
            },
            status: DbObservation::status("available"),
            replica_of_primary: Some(true),
            lag_secs: Some(0.9),
            lag_at: None,
            replication: None,
            created_at: None,
        }],
        canary: CanaryResult::Unreachable {
            error: "connect timed out".into(),
        },
    };
    let mut st = SiteState::new("payments");
    let mut all = vec![];
    for s in (0..=600).step_by(60) {
        let d = decide(sc, &tick(at(s)), Some(&ev), &st, at(s));
        st = d.next.clone().unwrap();
        all.extend(types(&d));
        if s >= 180 {
            assert!(matches!(
                d.verdict.outcome,
                Outcome::ShadowWouldFailOver { .. }
            ));
        }
    }
    // Even an operator's failover is only shadowed on a shadow site.
    let d = decide(
        sc,
        &op(
            "payments",
            OperatorAction::Failover,
            false,
            Some("drill"),
            None,
        ),
        Some(&ev),
        &st,
        at(700),
    );
    assert!(matches!(
        d.verdict.outcome,
        Outcome::ShadowWouldFailOver { .. }
    ));
    assert_eq!(all, vec!["IncidentSuspected", "ShadowFailover"]);
    assert!(st.last_failover_at.is_none());
}

#[test]
fn nothing_new_is_decided_while_a_failover_is_in_flight() {
    let mut st = SiteState::new("orders");
    confirmed_outage(&World::outage(), &mut st);
    assert_eq!(st.phase, Phase::Promoting);
    for s in [180, 240, 300] {
        let d = step(
            "orders",
            &alarm("orders-primary-availability", AlarmState::Alarm, at(s)),
            &World::outage(),
            &mut st,
            at(s),
        );
        assert_eq!(d.verdict.outcome, Outcome::Watch);
        assert_eq!(guard(&d, Guard::InFlight).result, GuardResult::Fail);
        assert!(d.emit.is_empty());
    }
    let d = step(
        "orders",
        &op(
            "orders",
            OperatorAction::Failover,
            false,
            Some("impatient"),
            None,
        ),
        &World::outage(),
        &mut st,
        at(400),
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::AlreadyInFlight
        }
    );
    assert!(d.next.is_none());
    assert_eq!(st.epoch, 1);
}

#[test]
fn duplicate_deliveries_are_ignored_without_a_write() {
    let mut st = SiteState::new("orders");
    let sig = alarm("orders-primary-availability", AlarmState::Alarm, at(0));
    step("orders", &sig, &World::outage(), &mut st, at(0));
    let d = step("orders", &sig, &World::outage(), &mut st, at(5));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Ignore {
            reason: IgnoreReason::Duplicate
        }
    );
    assert!(d.next.is_none());
}

#[test]
fn rds_managed_failover_in_progress_is_not_raced() {
    let c = cfg();
    let sc = c.site("inventory").unwrap();
    let ev = Evidence {
        primary_multi_az: None,
        vantage_region: Some("us-west-2".into()),
        primary_gtid: None,
        read_only_groups: vec![],
        alarms: vec![AlarmEvidence {
            name: "inventory-db-availability".into(),
            role: AlarmRole::Availability,
            state: Some(AlarmState::Alarm),
        }],
        primary: DbObservation::status("rebooting"),
        candidates: vec![],
        // Connections are refused while RDS fails over: with the alarm, a quorum of 2.
        canary: CanaryResult::Unreachable {
            error: "connection refused".into(),
        },
    };
    let mut st = SiteState::new("inventory");
    let started = rds(
        "inventory-db",
        "RDS-EVENT-0013",
        RdsMeaning::ManagedFailoverStarted,
        at(0),
    );
    let d = decide(sc, &started, Some(&ev), &st, at(0));
    st = d.next.unwrap();
    for s in [60, 180, 600] {
        let d = decide(sc, &tick(at(s)), Some(&ev), &st, at(s));
        assert_eq!(d.verdict.outcome, Outcome::Watch, "at {s}");
        assert_eq!(guard(&d, Guard::ManagedFailover).result, GuardResult::Fail);
        st = d.next.unwrap();
    }
    // RDS finished its failover; the alarm clears.
    let done = rds(
        "inventory-db",
        "RDS-EVENT-0049",
        RdsMeaning::ManagedFailoverCompleted,
        at(700),
    );
    let mut ok = ev.clone();
    ok.alarms[0].state = Some(AlarmState::Ok);
    ok.primary = DbObservation::status("available");
    ok.canary = CanaryResult::Reachable { latency_ms: 2 };
    let d = decide(sc, &done, Some(&ok), &st, at(700));
    assert_eq!(d.next.as_ref().unwrap().managed_failover, None);
    st = d.next.unwrap();
    assert_eq!(st.phase, Phase::Suspected, "held open for the flap window");
    let d = decide(sc, &tick(at(1000)), Some(&ok), &st, at(1000));
    assert_eq!(d.next.as_ref().unwrap().phase, Phase::Aborted);
}

// ------------------------------------------------------------------------ operator commands

#[test]
fn pause_resume_and_status() {
    let mut st = SiteState::new("orders");
    let d = step(
        "orders",
        &op(
            "orders",
            OperatorAction::Pause,
            false,
            Some("regional event"),
            None,
        ),
        &World::healthy(),
        &mut st,
        t0(),
    );
    assert_eq!(d.verdict.outcome, Outcome::Paused);
    assert_eq!(types(&d), vec!["AutomationPaused"]);
    assert_eq!(st.paused.as_ref().unwrap().by, "alice@example.com");

    let before = st.clone();
    let d = step(
        "orders",
        &op("orders", OperatorAction::Status, false, None, None),
        &World::healthy(),
        &mut st,
        at(1),
    );
    assert_eq!(d.verdict.outcome, Outcome::Status);
    assert!(d.verdict.summary.contains("paused by alice@example.com"));
    assert!(d.next.is_none(), "status is read only");
    assert_eq!(st, before);

    let d = step(
        "orders",
        &op("orders", OperatorAction::Resume, false, None, None),
        &World::healthy(),
        &mut st,
        at(2),
    );
    assert_eq!(d.verdict.outcome, Outcome::Resumed);
    assert_eq!(types(&d), vec!["AutomationResumed"]);
    assert!(st.paused.is_none());

    // A direct invoke carries no delivery id: pausing again is a new command, not a duplicate.
    let d = step(
        "orders",
        &op(
            "orders",
            OperatorAction::Pause,
            false,
            Some("second drill"),
            None,
        ),
        &World::healthy(),
        &mut st,
        at(3),
    );
    assert_eq!(d.verdict.outcome, Outcome::Paused);
    assert!(st.paused.is_some(), "pause after resume takes effect");
}

#[test]
fn an_rpo_override_needs_a_reason_and_is_recorded() {
    let mut w = World::outage();
    w.r1_lag = Some(400.0);
    let mut st = SiteState::new("orders");
    let d = step(
        "orders",
        &op("orders", OperatorAction::Failover, true, None, None),
        &w,
        &mut st,
        t0(),
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::OverrideWithoutReason
        }
    );
    assert!(d.next.is_none());

    let d = step(
        "orders",
        &op(
            "orders",
            OperatorAction::Failover,
            false,
            Some("region gone"),
            None,
        ),
        &w,
        &mut st,
        t0(),
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::RpoExceeded
        }
    );

    let d = step(
        "orders",
        &op(
            "orders",
            OperatorAction::Failover,
            true,
            Some("us-east-1 is gone; accept 7 min loss"),
            None,
        ),
        &w,
        &mut st,
        at(10),
    );
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:#?}",
        d.verdict
    );
    let o = st.rpo_override.as_ref().unwrap();
    assert_eq!(o.reason, "us-east-1 is gone; accept 7 min loss");
    assert!(guard(&d, Guard::Rpo)
        .detail
        .contains("overridden by alice@example.com"));
    assert_eq!(
        d.emit[0].rpo_override.as_ref().unwrap().by,
        "alice@example.com"
    );
}

#[test]
fn manual_failover_skips_quorum_and_window_but_not_pause() {
    // The primary does not answer (canary refused, RDS unreadable, alarms without data); the
    // replicas still report lag. Below the quorum, and no window has run.
    let mut dark = World::healthy();
    dark.availability = Some(AlarmState::InsufficientData);
    dark.canary_alarm = Some(AlarmState::InsufficientData);
    dark.primary = DbObservation::Unreadable {
        error: "timeout".into(),
    };
    dark.canary = CanaryResult::Unreachable {
        error: "connection refused".into(),
    };
    let mut st = SiteState::new("orders");
    st.paused = Some(Pause {
        by: "bob".into(),
        reason: "drill".into(),
        at: at(-10),
    });
    let d = step(
        "orders",
        &op(
            "orders",
            OperatorAction::Failover,
            false,
            Some("planned"),
            None,
        ),
        &dark,
        &mut st,
        t0(),
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::Paused
        }
    );

    let mut st = SiteState::new("orders");
    let d = step(
        "orders",
        &op(
            "orders",
            OperatorAction::Failover,
            false,
            Some("planned"),
            None,
        ),
        &dark,
        &mut st,
        t0(),
    );
    assert!(matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }));
    assert_eq!(st.epoch, 1);
    assert_eq!(st.phase, Phase::Promoting);
}

/// `orders` at epoch 1 in `dns-pinned`, with the promotion and the pin recorded.
fn pinned_epoch_1() -> SiteState {
    let mut st = SiteState::new("orders");
    st.open_incident(t0(), "test").unwrap();
    for p in [Phase::Promoting, Phase::Promoted, Phase::DnsPinned] {
        st.transition(1, p, t0(), "test").unwrap();
    }
    pin_record(&mut st, 1);
    st
}

/// What the promoter and pinner record for a pinned epoch: orders-replica-1 promoted, the
/// writer CNAME pinned to it.
fn pin_record(st: &mut SiteState, epoch: u64) {
    use failover_policy::incident::{DnsRecord, PromotionRecord};
    st.promotion = Some(PromotionRecord {
        epoch,
        candidate: DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        },
        action: "PromoteReadReplica".into(),
        requested_at: t0(),
        completed_at: Some(t0()),
        endpoint: Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306".into()),
        writable_verified_at: Some(t0()),
        resolved: None,
    });
    st.dns = Some(DnsRecord {
        epoch,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: "db.orders.example.com".into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        previous_values: vec!["orders-primary.x.us-east-1.rds.amazonaws.com".into()],
        previous_ttl: Some(60),
        new_value: "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
        change_id: Some("C1".into()),
        insync_at: Some(t0()),
        previous_records: None,
    });
}

// ------------------------------------------------------------------------ exhaustive table

/// Every combination of the four orders voters (3 states each) × two timings: a failover is
/// decided exactly when at least `quorum` voters, and more voters than say up, say down for the
/// whole window.
#[test]
fn failover_is_decided_exactly_when_quorum_holds_for_the_window() {
    use AlarmState::*;
    let alarm_states = [Some(Ok), Some(Alarm), Some(InsufficientData)];
    let rds_states = [
        DbObservation::status("available"),
        DbObservation::status("failed"),
        DbObservation::Unreadable { error: "x".into() },
    ];
    let canaries = [
        CanaryResult::Reachable { latency_ms: 1 },
        CanaryResult::Unreachable {
            error: "refused".into(),
        },
        CanaryResult::Unknown {
            reason: "no secret".into(),
        },
    ];
    let mut cases = 0;
    for a in alarm_states {
        for b in alarm_states {
            for (ri, r) in rds_states.iter().enumerate() {
                for (ci, c) in canaries.iter().enumerate() {
                    let w = World {
                        availability: a,
                        canary_alarm: b,
                        primary: r.clone(),
                        canary: c.clone(),
                        ..World::healthy()
                    };
                    let down = [a == Some(Alarm), b == Some(Alarm), ri == 1, ci == 1]
                        .iter()
                        .filter(|x| **x)
                        .count();
                    let up = [a == Some(Ok), b == Some(Ok), ri == 0, ci == 0]
                        .iter()
                        .filter(|x| **x)
                        .count();
                    let mut st = SiteState::new("orders");
                    let mut decided = false;
                    for s in [0, 60, 120] {
                        let d = step("orders", &tick(at(s)), &w, &mut st, at(s));
                        decided |= matches!(d.verdict.outcome, Outcome::FailoverDecided { .. });
                        if s < 120 {
                            assert!(!decided, "never before the window");
                        }
                    }
                    // Up votes weigh: two voters down against two up is not an outage.
                    assert_eq!(
                        decided,
                        down >= 2 && down > up,
                        "a={a:?} b={b:?} rds={r:?} canary={c:?}"
                    );
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 81);
}

#[test]
fn only_a_pinned_failover_of_the_named_epoch_can_be_completed() {
    let mut st = SiteState::new("orders");
    let complete = |epoch| {
        op(
            "orders",
            OperatorAction::Complete,
            false,
            Some("config now names orders-replica-1 as primary"),
            Some(epoch),
        )
    };
    // Nothing to complete while idle: refused, nothing written.
    let d = step("orders", &complete(0), &World::healthy(), &mut st, t0());
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert!(d.next.is_none());

    // A failover that reached dns-pinned (as the promoter and pinner leave it).
    st.open_incident(t0(), "test").unwrap();
    let epoch = st.epoch;
    for p in [Phase::Promoting, Phase::Promoted, Phase::DnsPinned] {
        st.transition(epoch, p, t0(), "test").unwrap();
    }
    pin_record(&mut st, epoch);
    // Pinned means in flight: the evaluator decides nothing new, even on a real outage.
    let d = step("orders", &tick(at(600)), &World::outage(), &mut st, at(600));
    assert_eq!(d.verdict.outcome, Outcome::Watch);
    assert!(types(&d).is_empty());

    // The wrong epoch is refused; the right one closes the incident and says so.
    let d = step(
        "orders",
        &complete(epoch + 1),
        &World::healthy(),
        &mut st,
        at(700),
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert_eq!(st.phase, Phase::DnsPinned);
    let d = step(
        "orders",
        &complete(epoch),
        &World::healthy(),
        &mut st,
        at(800),
    );
    assert_eq!(d.verdict.outcome, Outcome::Completed);
    assert_eq!(types(&d), vec!["FailoverCompleted"]);
    assert_eq!((st.phase, st.epoch), (Phase::Completed, epoch));
    assert!(st
        .timeline
        .last()
        .unwrap()
        .note
        .contains("completed by alice@example.com"));
}

// ------------------------------------------------------------------------ guards that hold up (issue 11)

fn step_ev(signal: &Signal, ev: &Evidence, state: &mut SiteState, now: DateTime<Utc>) -> Decision {
    let c = cfg();
    let d = decide(c.site("orders").unwrap(), signal, Some(ev), state, now);
    if let Some(next) = &d.next {
        *state = next.clone();
        state.outbox.clear();
    }
    d
}

/// Ticks at `at(s)` for each `s` until the verdict leaves `suspected`.
fn decide_by(st: &mut SiteState, ev: &Evidence, secs: &[i64]) -> Decision {
    let mut last = None;
    for &s in secs {
        let d = step_ev(&tick(at(s)), ev, st, at(s));
        let done = d.verdict.outcome != Outcome::Suspected;
        last = Some(d);
        if done {
            break;
        }
    }
    last.expect("at least one tick")
}

fn chosen(d: &Decision) -> Option<&str> {
    match &d.verdict.outcome {
        Outcome::FailoverDecided { candidate } => Some(candidate.id.as_str()),
        _ => None,
    }
}

/// replica-1's SQL thread stops at 02:00 (its lag reads -1 from then on, last good 0.4 s at
/// 01:59); replica-2 keeps replicating 1 s behind; the primary dies at 14:00.
fn twelve_hours_of_a_stopped_replica(event: bool) -> (SiteState, Evidence) {
    let day = Utc.with_ymd_and_hms(2026, 11, 24, 1, 59, 0).unwrap();
    let mut st = SiteState::new("orders");
    let mut w = World::healthy();
    w.r1_lag = Some(0.4);
    w.r2_lag = Some(1.0);
    step_ev(&tick(day), &w.evidence(), &mut st, day);
    if event {
        let stopped = rds(
            "orders-replica-1",
            "RDS-EVENT-0057",
            RdsMeaning::ReplicationError,
            day + Duration::seconds(60),
        );
        step_ev(
            &stopped,
            &w.evidence(),
            &mut st,
            day + Duration::seconds(60),
        );
    }
    w.r1_lag = None;
    let mut t = day + Duration::seconds(60);
    let death = day + Duration::hours(12) + Duration::seconds(60);
    while t < death {
        step_ev(&tick(t), &w.evidence(), &mut st, t);
        t += Duration::minutes(10);
    }
    let last = death - Duration::seconds(60);
    step_ev(&tick(last), &w.evidence(), &mut st, last);
    let mut dead = World::outage();
    dead.r1_lag = None;
    dead.r2_lag = None;
    (st, dead.evidence())
}

fn decide_through_the_window(st: &mut SiteState, ev: &Evidence) -> Decision {
    let death = Utc.with_ymd_and_hms(2026, 11, 24, 14, 0, 0).unwrap();
    let mut last = None;
    for s in [0, 60, 120, 180] {
        let d = step_ev(
            &tick(death + Duration::seconds(s)),
            ev,
            st,
            death + Duration::seconds(s),
        );
        let decided = !matches!(d.verdict.outcome, Outcome::Suspected);
        last = Some(d);
        if decided {
            break;
        }
    }
    last.unwrap()
}

#[test]
fn a_twelve_hour_old_last_good_lag_does_not_pass_the_rpo_guard() {
    // No replication event reached us, only the -1 readings: the 0.4 s sample is 12 h older than
    // the outage and bounds nothing. replica-2, 1 s behind a minute before, is promoted.
    let (mut st, dead) = twelve_hours_of_a_stopped_replica(false);
    let d = decide_through_the_window(&mut st, &dead);
    assert_eq!(chosen(&d), Some("orders-replica-2"), "{:#?}", d.verdict);
    let rpo = guard(&d, Guard::Rpo);
    assert!(
        rpo.detail.contains("orders-replica-2") && rpo.detail.contains("before the outage began"),
        "{}",
        rpo.detail
    );
}

#[test]
fn a_datapoint_cloudwatch_keeps_serving_is_as_old_as_it_was_taken_not_as_the_read() {
    // replica-1's metric stopped being published nine minutes before the outage (the instance's
    // publication stalled): GetMetricData's ten-minute window still serves its last datapoint,
    // 0.4 s, on every read, before and after the primary dies. Stamped with the read's time it
    // would pass the 120 s freshness rule as "current"; judged by its own time it bounds nothing,
    // and replica-2 (1 s, live a minute before the outage) is promoted.
    let death = Utc.with_ymd_and_hms(2026, 11, 24, 14, 0, 0).unwrap();
    let taken = death - Duration::seconds(540);
    let mut st = SiteState::new("orders");
    let mut w = World::healthy();
    w.r1_lag = Some(0.4);
    w.r2_lag = Some(1.0);
    let mut ev = w.evidence();
    ev.candidates[0].lag_at = Some(taken);
    for s in [-300, -240, -180, -120, -60] {
        let t = death + Duration::seconds(s);
        step_ev(&tick(t), &ev, &mut st, t);
    }
    assert_eq!(st.last_good_lag["orders-replica-1"].at, taken);
    let mut dead = World::outage();
    dead.r1_lag = Some(0.4);
    dead.r2_lag = None;
    let mut dead = dead.evidence();
    dead.candidates[0].lag_at = Some(taken);
    let d = decide_through_the_window(&mut st, &dead);
    assert_eq!(chosen(&d), Some("orders-replica-2"), "{:#?}", d.verdict);
}

#[test]
fn a_replication_error_event_makes_a_candidate_ineligible_until_it_replicates_again() {
    let (mut st, dead) = twelve_hours_of_a_stopped_replica(true);
    assert!(st.replication_broken.contains_key("orders-replica-1"));
    let d = decide_through_the_window(&mut st, &dead);
    assert_eq!(chosen(&d), Some("orders-replica-2"));
    let c = guard(&d, Guard::Candidate);
    assert!(
        c.detail.contains("replication broken") && c.detail.contains("RDS-EVENT-0057"),
        "{}",
        c.detail
    );

    // Healthy again: StatusInfos `replicating` with a lag reading clears it.
    let (mut st, _) = twelve_hours_of_a_stopped_replica(true);
    let mut ev = World::healthy().evidence();
    ev.candidates[0].replication = Some("replicating".into());
    step_ev(&tick(at(0)), &ev, &mut st, at(0));
    assert!(!st.replication_broken.contains_key("orders-replica-1"));
}

#[test]
fn status_infos_other_than_replicating_makes_a_candidate_ineligible() {
    let mut st = SiteState::new("orders");
    let mut ev = World::healthy().evidence();
    ev.candidates[0].replication = Some("error".into());
    ev.candidates[0].lag_secs = Some(0.0); // RDS may still publish a stale number
    step_ev(&tick(at(-60)), &ev, &mut st, at(-60));
    assert!(
        !st.last_good_lag.contains_key("orders-replica-1"),
        "no sample from a broken replica"
    );
    let mut dead = World::outage().evidence();
    dead.candidates[0].replication = Some("error".into());
    dead.candidates[1].lag_secs = Some(3.0);
    for s in [0, 60, 120] {
        let d = step_ev(&tick(at(s)), &dead, &mut st, at(s));
        if s == 120 {
            assert_eq!(chosen(&d), Some("orders-replica-2"), "{:#?}", d.verdict);
        }
    }
}

#[test]
fn a_recreated_replica_starts_with_no_samples() {
    let mut st = SiteState::new("orders");
    let mut ev = World::healthy().evidence();
    ev.candidates[0].created_at = Some(at(-86_400));
    step_ev(&tick(at(-120)), &ev, &mut st, at(-120));
    assert!(st.last_good_lag.contains_key("orders-replica-1"));
    // Deleted and re-created under the same id; no reading yet.
    ev.candidates[0].created_at = Some(at(-90));
    ev.candidates[0].lag_secs = None;
    step_ev(&tick(at(-60)), &ev, &mut st, at(-60));
    assert!(!st.last_good_lag.contains_key("orders-replica-1"));
}

#[test]
fn an_rpo_override_promotes_the_least_lagged_known_candidate_and_a_never_read_one_only_by_name() {
    let mut st = SiteState::new("orders");
    let mut w = World::healthy();
    w.r1_lag = Some(95.0);
    w.r2_lag = Some(40.0);
    step_ev(&tick(at(-60)), &w.evidence(), &mut st, at(-60));
    let override_cmd = op(
        "orders",
        OperatorAction::Failover,
        true,
        Some("region lost"),
        None,
    );
    let d = step_ev(
        &override_cmd,
        &World::outage().evidence(),
        &mut st.clone(),
        at(0),
    );
    assert_eq!(
        chosen(&d),
        Some("orders-replica-2"),
        "least data loss, not preference order"
    );

    // Neither ever reported: only a named candidate is promoted.
    let mut fresh = SiteState::new("orders");
    let d = step_ev(
        &override_cmd,
        &World::outage().evidence(),
        &mut fresh.clone(),
        at(0),
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NoHealthyCandidate
        }
    );
    assert!(guard(&d, Guard::Candidate).detail.contains("name the one"));
    let mut by_name = override_cmd.clone();
    named(&mut by_name, "orders-replica-2");
    let d = step_ev(&by_name, &World::outage().evidence(), &mut fresh, at(0));
    assert_eq!(chosen(&d), Some("orders-replica-2"));
}

#[test]
fn a_manual_failover_of_a_primary_that_answers_is_refused_unless_forced() {
    let mut st = SiteState::new("orders");
    let cmd = op(
        "orders",
        OperatorAction::Failover,
        false,
        Some("looks slow"),
        None,
    );
    let d = step_ev(&cmd, &World::healthy().evidence(), &mut st, t0());
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::PrimaryAlive
        }
    );
    assert!(d.next.is_none(), "nothing written");
    let g = guard(&d, Guard::PrimaryAlive);
    assert!(
        g.detail.contains("two writers")
            && g.detail.contains("switchover")
            && g.detail.contains("\"force\":true"),
        "{}",
        g.detail
    );

    let mut forced = cmd.clone();
    if let SignalKind::Operator(c) = &mut forced.kind {
        c.force = true;
    }
    let d = step_ev(&forced, &World::healthy().evidence(), &mut st, t0());
    assert_eq!(chosen(&d), Some("orders-replica-1"));
    let f = st.forced.clone().expect("recorded in the ledger");
    assert_eq!(
        (f.epoch, f.by.as_str(), f.reason.as_str()),
        (st.epoch, "alice@example.com", "looks slow")
    );
    assert!(
        f.fence_first,
        "a primary that answers is fenced before RDS is asked"
    );
    assert_eq!(
        guard(&d, Guard::PrimaryAlive).result,
        GuardResult::NotApplicable
    );

    // Forced while the primary does not answer (its region dark): nothing to fence first, and
    // waiting on its dark API would block the failover.
    let mut st = SiteState::new("orders");
    let mut dead = World::outage();
    dead.r1_lag = Some(1.0);
    let d = step_ev(&forced, &dead.evidence(), &mut st, t0());
    assert_eq!(chosen(&d), Some("orders-replica-1"), "{:#?}", d.verdict);
    assert!(!st.forced.clone().unwrap().fence_first);
}

#[test]
fn force_and_override_cooldown_need_a_reason_and_approve_and_abort_an_epoch() {
    for (cmd, field) in [
        (
            json_cmd(r#"{"command":"failover","site":"orders","force":true}"#),
            "reason",
        ),
        (
            json_cmd(r#"{"command":"failover","site":"orders","override_cooldown":true}"#),
            "reason",
        ),
        (
            json_cmd(r#"{"command":"approve","site":"orders"}"#),
            "epoch",
        ),
        (
            json_cmd(r#"{"command":"abort","site":"orders","reason":"x"}"#),
            "epoch",
        ),
        (
            json_cmd(r#"{"command":"abort","site":"orders","epoch":3}"#),
            "reason",
        ),
    ] {
        let e = cmd.expect_err("refused").to_string();
        assert!(e.contains(&format!("`{field}`")), "{e}");
    }
}

fn json_cmd(s: &str) -> Result<Signal, SignalError> {
    parse_signal(&serde_json::from_str(s).unwrap())
}

#[test]
fn a_human_may_override_the_cooldown_with_a_reason() {
    let mut st = SiteState::new("orders");
    st.last_failover_at = Some(at(-600));
    let mut w = World::outage();
    w.r1_lag = Some(1.0);
    let plain = op(
        "orders",
        OperatorAction::Failover,
        false,
        Some("again"),
        None,
    );
    let d = step_ev(&plain, &w.evidence(), &mut st.clone(), t0());
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::Cooldown
        }
    );
    let mut over = plain.clone();
    if let SignalKind::Operator(c) = &mut over.kind {
        c.override_cooldown = true;
    }
    let d = step_ev(&over, &w.evidence(), &mut st, t0());
    assert_eq!(chosen(&d), Some("orders-replica-1"));
    let g = guard(&d, Guard::Cooldown);
    assert_eq!(g.result, GuardResult::NotApplicable);
    assert!(
        g.detail.contains("overridden by alice@example.com: again"),
        "{}",
        g.detail
    );
}

#[test]
fn abort_ends_an_epoch_no_database_acted_on_and_nothing_else() {
    // A Lambda killed between the decision and the request: promoting, nothing asked of RDS.
    let mut st = SiteState::new("orders");
    let mut w = World::outage();
    w.r1_lag = Some(1.0);
    let cmd = op(
        "orders",
        OperatorAction::Failover,
        false,
        Some("region"),
        None,
    );
    step_ev(&cmd, &w.evidence(), &mut st, t0());
    assert_eq!(st.phase, Phase::Promoting);
    let epoch = st.epoch;
    let abort = |e| {
        op(
            "orders",
            OperatorAction::Abort,
            false,
            Some("promoter never ran"),
            Some(e),
        )
    };
    let d = step_ev(&abort(epoch + 1), &w.evidence(), &mut st, at(60));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToAbort
        }
    );
    let d = step_ev(&abort(epoch), &w.evidence(), &mut st, at(60));
    assert_eq!(types(&d), vec!["FailoverAborted"]);
    assert_eq!(st.phase, Phase::Aborted);

    // Requested of RDS a minute ago: it may still happen, so abort is refused.
    let mut st = SiteState::new("orders");
    step_ev(&cmd, &w.evidence(), &mut st, t0());
    let r1 = DbRef {
        id: "orders-replica-1".into(),
        region: "us-west-2".into(),
    };
    st = failover_policy::promote::request(
        &st,
        &r1,
        &failover_policy::promote::PromotionAction::PromoteReadReplica {
            instance: r1.clone(),
        },
        at(10),
    );
    let d = step_ev(&abort(st.epoch), &w.evidence(), &mut st, at(70));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToAbort
        }
    );
    // Ten minutes on, replica-1 is still an available replica of the primary: not promoted.
    let d = step_ev(&abort(st.epoch), &w.evidence(), &mut st, at(700));
    assert_eq!(types(&d), vec!["FailoverAborted"], "{:#?}", d.verdict);
    // RDS documents no moment after which a requested promotion cannot happen: the aborted
    // request still holds automation until a human completes the epoch.
    assert!(st.promotion.as_ref().unwrap().resolved.is_none());
    assert!(
        d.verdict.summary.contains("stays held"),
        "{}",
        d.verdict.summary
    );
    let mut later = st.clone();
    later.last_failover_at = Some(at(-7200));
    for s in [3600, 3660, 3720, 3780] {
        let d = step_ev(&tick(at(s)), &w.evidence(), &mut later, at(s));
        if s == 3780 {
            assert_eq!(
                d.verdict.outcome,
                Outcome::Refused {
                    reason: RefusalReason::UnresolvedPromotion
                },
                "{:#?}",
                d.verdict
            );
        }
    }
}

#[test]
fn a_replication_error_reported_during_the_outage_is_the_lost_source_not_a_broken_replica() {
    // The primary dies; replica-1's IO thread cannot reconnect and RDS reports StatusInfos
    // `error` (and RDS-EVENT-0045). That is the outage itself: replica-1 keeps its pre-outage
    // sample and stays the first choice.
    let mut st = SiteState::new("orders");
    step_ev(
        &tick(at(-30)),
        &World::healthy().evidence(),
        &mut st,
        at(-30),
    );
    let mut dead = World::outage().evidence();
    dead.candidates[0].replication = Some("error".into());
    step_ev(&tick(at(0)), &dead, &mut st, at(0));
    let ev = rds(
        "orders-replica-1",
        "RDS-EVENT-0045",
        RdsMeaning::ReplicationError,
        at(10),
    );
    step_ev(&ev, &dead, &mut st, at(10));
    let d = decide_by(&mut st, &dead, &[60, 120, 180]);
    assert_eq!(chosen(&d), Some("orders-replica-1"), "{:#?}", d.verdict);
    assert!(st.replication_broken.is_empty());
}

#[test]
fn a_manual_failover_during_a_partition_is_refused_while_rds_says_the_primary_is_available() {
    // Cross-region packet loss: the DR canary cannot connect (down), but RDS reports the primary
    // `available` and the alarms are OK. Its own region's clients still write to it.
    let mut st = SiteState::new("orders");
    let mut w = World::healthy();
    w.canary = CanaryResult::Unreachable {
        error: "connect timed out".into(),
    };
    let cmd = op(
        "orders",
        OperatorAction::Failover,
        false,
        Some("cannot reach it"),
        None,
    );
    let d = step_ev(&cmd, &w.evidence(), &mut st, t0());
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::PrimaryAlive
        }
    );
}

#[test]
fn an_in_flight_phase_past_its_deadline_pages_once_with_the_next_step() {
    let mut st = SiteState::new("orders");
    let mut w = World::outage();
    w.r1_lag = Some(1.0);
    let cmd = op(
        "orders",
        OperatorAction::Failover,
        false,
        Some("region"),
        None,
    );
    step_ev(&cmd, &w.evidence(), &mut st, t0());
    let mut pages = vec![];
    for m in (1..=30).step_by(1) {
        let d = step_ev(&tick(at(m * 60)), &w.evidence(), &mut st, at(m * 60));
        pages.extend(
            d.emit
                .iter()
                .map(|e| (m, e.event_type.detail_type(), e.verdict.summary.clone())),
        );
    }
    assert_eq!(pages.len(), 1, "{pages:?}");
    let (minute, kind, text) = &pages[0];
    assert_eq!(*kind, "PhaseOverdue");
    assert_eq!(*minute, 15, "10 min pre-check deadline + 5 min slack");
    assert!(
        text.contains("no promotion was ever asked of RDS")
            && text.contains("\"command\":\"abort\""),
        "{text}"
    );
}

#[test]
fn complete_hands_the_topology_to_the_ledger_and_the_old_replicas_of_the_dead_primary_are_not_candidates(
) {
    // Epoch 1 promoted orders-replica-1 and pinned DNS to it; the configuration was not edited.
    let mut st = pinned_epoch_1();
    let complete = op(
        "orders",
        OperatorAction::Complete,
        false,
        Some("DR site serving"),
        Some(1),
    );
    let d = step_ev(&complete, &World::healthy().evidence(), &mut st, at(600));
    assert_eq!(d.verdict.outcome, Outcome::Completed);
    let t = st.topology.clone().expect("the ledger owns the topology");
    assert_eq!(t.primary.id, "orders-replica-1");
    let ids: Vec<&str> = t.candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["orders-primary", "orders-replica-2"]);
    assert_eq!(
        t.endpoint.as_deref(),
        Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306")
    );

    // What automation sees now: the pinned writer is the primary, the canary probes it, and the
    // configured availability alarms (they watch orders-primary) do not vote.
    let c = cfg();
    let live = failover_policy::topology::effective(c.site("orders").unwrap(), &st);
    assert_eq!(live.primary.id, "orders-replica-1");
    assert_eq!(
        live.canary.as_ref().unwrap().endpoint,
        "orders-replica-1.x.us-west-2.rds.amazonaws.com:3306"
    );
    assert!(live
        .alarms
        .iter()
        .all(|a| a.role != AlarmRole::Availability));

    // A DNS record that names something else than the promoted writer: refused.
    let mut bad = pinned_epoch_1();
    bad.dns.as_mut().unwrap().new_value = "orders-replica-2.x.us-west-2.rds.amazonaws.com".into();
    let d = step_ev(&complete, &World::healthy().evidence(), &mut bad, at(600));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert!(
        d.verdict.summary.contains("not point at the pinned writer"),
        "{}",
        d.verdict.summary
    );
}

#[test]
fn an_outage_that_cannot_be_corroborated_for_a_whole_window_pages_once_naming_the_unreadable_voters(
) {
    // The canary says down; both alarms cannot be read (IAM said no). Quorum 2 is possible but
    // never met: one page after the window, naming what could not be read — not silence.
    let mut st = SiteState::new("orders");
    let mut w = World::healthy();
    w.availability = None;
    w.canary_alarm = None;
    w.primary = DbObservation::Unreadable {
        error: "AccessDenied".into(),
    };
    w.canary = CanaryResult::Unreachable {
        error: "timed out".into(),
    };
    let mut sent = vec![];
    for m in 0..10 {
        let d = step("orders", &tick(at(m * 60)), &w, &mut st, at(m * 60));
        assert_eq!(d.verdict.outcome, Outcome::Suspected);
        sent.extend(
            d.emit
                .iter()
                .filter(|e| e.event_type == EventType::IncidentSuspected)
                .map(|e| (m, e.verdict.summary.clone())),
        );
    }
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, 2, "after the 120 s window");
    assert!(
        sent[0].1.contains("cannot be read")
            && sent[0].1.contains("alarm orders-primary-availability"),
        "{}",
        sent[0].1
    );
}

#[test]
fn complete_after_a_failback_by_hand_names_the_configured_primary_and_anything_else_is_refused() {
    let pinned = pinned_epoch_1;
    let complete_naming = |id: &str| {
        let mut c = op(
            "orders",
            OperatorAction::Complete,
            false,
            Some("failed back"),
            Some(1),
        );
        if let SignalKind::Operator(o) = &mut c.kind {
            o.primary = Some(id.into());
        }
        c
    };
    let mut st = pinned();
    let d = step_ev(
        &complete_naming("orders-primary"),
        &World::healthy().evidence(),
        &mut st,
        at(600),
    );
    assert_eq!(d.verdict.outcome, Outcome::Completed);
    assert!(
        st.topology.is_none(),
        "the configuration is the topology again"
    );

    let mut st = pinned();
    let d = step_ev(
        &complete_naming("orders-replica-2"),
        &World::healthy().evidence(),
        &mut st,
        at(600),
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert!(d.next.is_none());
}

#[test]
fn a_mistaken_complete_naming_a_dead_configured_primary_is_refused() {
    let mut st = pinned_epoch_1();
    let mut c = op(
        "orders",
        OperatorAction::Complete,
        false,
        Some("typo"),
        Some(1),
    );
    if let SignalKind::Operator(o) = &mut c.kind {
        o.primary = Some("orders-primary".into());
    }
    let d = step_ev(&c, &World::outage().evidence(), &mut st, at(600));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert!(
        d.verdict.summary.contains("not available"),
        "{}",
        d.verdict.summary
    );
    assert_eq!(st.phase, Phase::DnsPinned, "nothing changed");
}

#[test]
fn the_ledgers_topology_yields_to_an_edited_configuration_and_to_a_verified_failback() {
    let mut st = pinned_epoch_1();
    let complete = op(
        "orders",
        OperatorAction::Complete,
        false,
        Some("DR serving"),
        Some(1),
    );
    step_ev(&complete, &World::healthy().evidence(), &mut st, at(600));
    let c = cfg();
    let mut edited = c.site("orders").unwrap().clone();
    edited.primary = DbRef {
        id: "orders-primary-rebuilt".into(),
        region: "us-east-1".into(),
    };
    let live = failover_policy::topology::effective(&edited, &st);
    assert_eq!(
        live.primary.id, "orders-primary-rebuilt",
        "an edited configuration wins"
    );

    // Failed back by hand to orders-primary (same id, configuration unchanged): `complete`
    // naming it is accepted once it is seen available and no replica of orders-replica-1.
    let mut back = op(
        "orders",
        OperatorAction::Complete,
        false,
        Some("failed back"),
        Some(1),
    );
    if let SignalKind::Operator(o) = &mut back.kind {
        o.primary = Some("orders-primary".into());
    }
    let mut ev = World::healthy().evidence();
    // Evidence as gathered for the ledger's topology: orders-primary is a candidate there.
    ev.candidates.insert(
        0,
        CandidateEvidence {
            db: DbRef {
                id: "orders-primary".into(),
                region: "us-east-1".into(),
            },
            status: DbObservation::status("available"),
            replica_of_primary: Some(true),
            lag_secs: Some(0.1),
            lag_at: None,
            replication: None,
            created_at: None,
        },
    );
    let d = step_ev(&back, &ev, &mut st.clone(), at(900));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert!(
        d.verdict.summary.contains("still replicates from"),
        "{}",
        d.verdict.summary
    );
    ev.candidates[0].replica_of_primary = Some(false);
    let d = step_ev(&back, &ev, &mut st, at(900));
    assert_eq!(d.verdict.outcome, Outcome::Completed, "{:#?}", d.verdict);
    assert!(st.topology.is_none());
}

/// data-plane-switch, epoch 1: traffic moved to orders-replica-1 on the switch, the failover
/// records never pinned (`records_pending`: whether the pinner is still trying).
fn switched_epoch_1(records_pending: bool) -> SiteState {
    let mut st = pinned_epoch_1();
    st.dns.as_mut().unwrap().insync_at = None;
    st.data_plane_switch = Some(failover_policy::dataplane::SwitchRecord {
        epoch: 1,
        switched_at: t0(),
        host: "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
        records_pending,
        put_only: false,
        before: vec![],
        observed: None,
        put_back_at: None,
        acked_at: None,
        put_error: None,
    });
    st
}

#[test]
fn a_switched_epoch_whose_records_were_never_pinned_can_be_completed_and_says_they_are_not() {
    let complete = op(
        "orders",
        OperatorAction::Complete,
        false,
        Some("DR site serving"),
        Some(1),
    );
    // Traffic on the switch, the records never pinned (no INSYNC), the pinner given up: the
    // operator has a way out, and the completion says the records are NOT pinned and what to do.
    let mut st = switched_epoch_1(false);
    let d = step_ev(&complete, &World::healthy().evidence(), &mut st, at(600));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Completed,
        "{}",
        d.verdict.summary
    );
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.topology.as_ref().unwrap().primary.id, "orders-replica-1");
    let s = &d.verdict.summary;
    assert!(
        s.contains("records are NOT pinned")
            && s.contains("Do NOT set the switch back")
            && s.contains("UPSERT"),
        "{s}"
    );
    assert!(!s.contains("DNS was pinned"), "{s}");
    let [done] = &d.emit[..] else {
        panic!("one event: {:?}", d.emit)
    };
    assert!(
        done.verdict.summary.contains("NOT pinned"),
        "{}",
        done.verdict.summary
    );
    // A pinned epoch's completion says nothing of the sort.
    let mut st = pinned_epoch_1();
    let d = step_ev(&complete, &World::healthy().evidence(), &mut st, at(600));
    assert_eq!(d.verdict.outcome, Outcome::Completed);
    assert!(
        !d.verdict.summary.contains("NOT pinned"),
        "{}",
        d.verdict.summary
    );

    // While the pinner is still pinning the records: refused, saying why and when to come back.
    let mut st = switched_epoch_1(true);
    let d = step_ev(&complete, &World::healthy().evidence(), &mut st, at(600));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToComplete
        }
    );
    assert!(
        d.verdict.summary.contains("still pinning the records"),
        "{}",
        d.verdict.summary
    );
    assert_eq!(st.phase, Phase::DnsPinned);
}

#[test]
fn a_completed_switched_epoch_does_not_hold_the_next_failover_as_an_unpinned_promotion() {
    // The answer moved on the switch (records never pinned) and a human completed the epoch: the
    // next outage is not refused as an `unresolved-promotion`.
    let mut st = after_a_promotion(false);
    st.phase = Phase::Completed;
    st.data_plane_switch = Some(failover_policy::dataplane::SwitchRecord {
        epoch: 1,
        switched_at: at(-7000),
        host: "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
        records_pending: false,
        put_only: false,
        before: vec![],
        observed: None,
        put_back_at: None,
        acked_at: None,
        put_error: None,
    });
    let mut failed = st.clone();
    let d = confirmed_outage(&World::outage(), &mut st);
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:#?}",
        d.verdict
    );
    // A switch noted by a pinner run that died at `promoted` (records still pending) and an epoch
    // that ended failed: that promotion still holds automation.
    failed.phase = Phase::Failed;
    failed.data_plane_switch.as_mut().unwrap().records_pending = true;
    refused_with(
        failed,
        World::outage(),
        0,
        RefusalReason::UnresolvedPromotion,
    );
}

#[test]
fn a_complete_naming_the_configured_primary_is_refused_once_the_switch_was_put() {
    // H1: the switch metric was put for epoch 1 (maybe not seen yet): Route 53 answers, or at any
    // moment will answer, the SECONDARY (the promoted writer). Handing the site back to the
    // configured primary — live and healthy — would make two writers.
    let mut c = op(
        "orders",
        OperatorAction::Complete,
        false,
        Some("looks fine"),
        Some(1),
    );
    if let SignalKind::Operator(o) = &mut c.kind {
        o.primary = Some("orders-primary".into());
    }
    for put_only in [true, false] {
        let mut st = switched_epoch_1(false);
        st.data_plane_switch.as_mut().unwrap().put_only = put_only;
        let d = step_ev(&c, &World::healthy().evidence(), &mut st, at(600));
        assert_eq!(
            d.verdict.outcome,
            Outcome::Refused {
                reason: RefusalReason::NothingToComplete
            },
            "{}",
            d.verdict.summary
        );
        assert!(
            d.verdict.summary.contains("data-plane switch was put")
                && d.verdict.summary.contains("two writers"),
            "{}",
            d.verdict.summary
        );
        assert_eq!(st.phase, Phase::DnsPinned, "nothing changed");
        assert!(st.topology.is_none());
    }
    // Without a switch the same command is judged as before (the primary is live: accepted).
    let mut st = pinned_epoch_1();
    let d = step_ev(&c, &World::healthy().evidence(), &mut st, at(600));
    assert_eq!(
        d.verdict.outcome,
        Outcome::Completed,
        "{}",
        d.verdict.summary
    );
}
