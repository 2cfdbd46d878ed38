//! The issue-12 scenarios on the handler: the tick fences, watches and measures the old primary
//! of a pinned failover, through the fakes of RDS and of the old primary's SQL.

use failover_policy::fence::{AttachedGroup, Step, StepState};
use failover_policy::gtid::{MariaPos, Position};
use failover_policy::incident::PromotionRecord;

use super::*;

const GROUP: &str = "orders-primary-params";

/// The world with `orders` fenced by `fence` (and `billing` by `billing_fence`, if any), and
/// orders' failover to orders-replica-1 complete and pinned, recorded as the functions do.
/// `payments_fence`: the fence of payments, whose primary is in us-east-1 as orders' is (a
/// parameter group is regional, so only a same-region site can share orders' group).
fn pinned_world(fence: Value, payments_fence: Option<Value>) -> World {
    let w = world();
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["fence"] = fence;
    if let Some(b) = payments_fence {
        assert_eq!(doc["sites"][2]["id"], "payments");
        assert_eq!(doc["sites"][2]["primary"]["region"], "us-east-1");
        doc["sites"][2]["fence"] = b;
    }
    let cfg = Config::from_document(&doc.to_string()).unwrap();
    let site = cfg.site("orders").unwrap().clone();
    let w = w.with_config(cfg);
    let now = w.clock.now();
    let mut st = SiteState::new("orders");
    st.epoch = 1;
    st.phase = Phase::DnsPinned;
    st.version = 7;
    st.candidate = Some(site.candidates[0].clone());
    st.promotion = Some(PromotionRecord {
        epoch: 1,
        candidate: site.candidates[0].clone(),
        action: "PromoteReadReplica".into(),
        requested_at: now,
        completed_at: Some(now),
        endpoint: Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306".into()),
        writable_verified_at: Some(now),
        resolved: None,
    });
    let mut f =
        failover_policy::fence::intent(&site, 1, Some("orders-replica-1 lag 1 s".into()), now);
    f.promoted_position = Some(Position::MariadbGtid(MariaPos::parse("0-1-100").unwrap()));
    st.fence = Some(f);
    w.ledger.put(st);
    w.fence.state.lock().unwrap().groups.insert(
        "orders-primary".into(),
        vec![AttachedGroup {
            name: GROUP.into(),
            apply_status: "in-sync".into(),
        }],
    );
    // The old primary is dark (its region is), and holds 5 transactions past the replica's.
    {
        let mut s = w.old_primary.state.lock().unwrap();
        s.follows = Some((w.fence.clone(), GROUP.into()));
        s.sessions = vec![41, 42];
        s.position = Some(Position::MariadbGtid(MariaPos::parse("0-1-105").unwrap()));
    }
    w.fence.state.lock().unwrap().dark_regions = vec!["us-east-1".into()];
    w
}

fn own() -> Value {
    json!({"parameter_group": GROUP})
}

impl World {
    async fn tick(&self, n: usize) -> Response {
        self.clock.advance(60);
        handle(&self.deps, tick_event(&format!("f{n}"), self.clock.now()))
            .await
            .unwrap()
    }
    fn region_back(&self) {
        self.fence.state.lock().unwrap().dark_regions.clear();
        self.old_primary.state.lock().unwrap().reachable = true;
    }
    fn fence(&self) -> failover_policy::fence::FenceRecord {
        self.ledger.get("orders").unwrap().fence.unwrap()
    }
    fn pages(&self, t: &str) -> Vec<String> {
        self.bus
            .published
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.event_type.detail_type() == t)
            .map(|e| e.verdict.summary.clone())
            .collect()
    }
}

fn fake_fence(w: &World) -> std::sync::MutexGuard<'_, failover_adapters::fence::FakeFenceState> {
    w.fence.state.lock().unwrap()
}

#[tokio::test]
async fn scenario_1_a_region_dark_for_30_minutes_is_fenced_within_one_tick_of_its_return() {
    let w = pinned_world(own(), None);
    for n in 0..30 {
        w.tick(n).await;
    }
    let f = w.fence();
    assert!(
        matches!(
            f.state(Step::ParameterReadOnly),
            Some(StepState::Pending { attempts: 30, .. })
        ),
        "{:?}",
        f.steps
    );
    assert!(fake_fence(&w).calls.is_empty());
    assert_eq!(
        w.pages("FenceChanged").len(),
        1,
        "the plan pages once; 30 failed retries do not"
    );
    w.region_back();
    w.tick(30).await;
    let f = w.fence();
    assert!(
        f.state(Step::ParameterReadOnly).unwrap().is_done(),
        "{:?}",
        f.steps
    );
    assert!(
        f.state(Step::SqlReadOnly).unwrap().is_done(),
        "verified over SQL in the same tick"
    );
    assert!(f.state(Step::EndSessions).unwrap().is_done());
    assert_eq!(
        fake_fence(&w).calls[0],
        format!("ModifyDBParameterGroup {GROUP}")
    );
    assert!(
        w.old_primary.state.lock().unwrap().sessions.is_empty(),
        "sessions ended"
    );
    assert!(
        w.pages("OldPrimaryWritable").is_empty(),
        "fenced before the probe: never writable"
    );
    assert_eq!(w.pages("FenceChanged").len(), 2);
    // The snapshot is `creating` for a while; the step is done when it reads `available`.
    w.tick(31).await;
    assert!(w.fence().state(Step::Snapshot).unwrap().is_pending());
    w.tick(32).await;
    let f = w.fence();
    assert!(f.finished(), "{:?}", f.describe());
    assert_eq!(f.headline(), "orders-primary (us-east-1) is fenced");
    assert_eq!(
        f.snapshot_id.as_deref(),
        Some("orders-primary-fence-epoch-1")
    );
    assert_eq!(
        w.pages("FenceChanged").len(),
        3,
        "one page per change of fence state"
    );
    w.tick(33).await;
    assert_eq!(w.pages("FenceChanged").len(), 3);
    // Scenario 4 on the fakes (the real-MariaDB run is the emulator's): exactly the 5 lost.
    let d = f.divergence.as_ref().unwrap();
    assert_eq!(d.lost.count, Some(5));
    assert!(!d.provisional);
    let reports = w.pages("DivergenceMeasured");
    assert_eq!(
        reports.len(),
        2,
        "measured when read-only, again once the snapshot exists: {reports:#?}"
    );
    assert!(
        reports[1].contains("holds 5 transaction(s)"),
        "{}",
        reports[1]
    );
    assert!(
        reports[1].contains("lost: domain 0: 0-1-101..0-1-105"),
        "{}",
        reports[1]
    );
    assert!(
        reports[1].contains("decided on: orders-replica-1 lag 1 s"),
        "{}",
        reports[1]
    );
    assert!(
        reports[1].contains("DB snapshot `orders-primary-fence-epoch-1`"),
        "{}",
        reports[1]
    );
    for e in w.bus.published.lock().unwrap().iter() {
        if e.event_type.detail_type() == "FenceChanged" {
            println!(
                "{} FenceChanged: {}",
                e.occurred_at.format("%H:%M:%SZ"),
                e.verdict.summary
            );
        }
    }
    println!("{}", f.describe().join("\n"));
    println!("{}", failover_policy::fence::report(&f).join("\n"));
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
}

/// GTIDs off: the report names the binlog range between the replica's executed source
/// coordinates and the old primary's `SHOW MASTER STATUS`, with its transactions as the old
/// primary's binlog counts them; counted again only when the old primary's position moves.
#[tokio::test]
async fn with_gtids_off_the_divergence_is_the_binlog_range_with_its_counted_transactions() {
    use failover_policy::gtid::BinlogPos;
    let w = pinned_world(own(), None);
    let b = |s: &str| Position::Binlog(BinlogPos::parse(s).unwrap());
    let mut st = w.ledger.get("orders").unwrap();
    st.fence.as_mut().unwrap().promoted_position = Some(b("mysql-bin.000007:1545"));
    w.ledger.put(st);
    {
        let mut s = w.old_primary.state.lock().unwrap();
        s.position = Some(b("mysql-bin.000008:620"));
        s.binlog
            .insert("mysql-bin.000007:1545 .. mysql-bin.000008:620".into(), 4);
    }
    w.tick(1).await;
    w.region_back();
    for n in 2..6 {
        w.tick(n).await;
    }
    let d = w.fence().divergence.unwrap();
    assert_eq!(d.lost.count, Some(4));
    assert_eq!(
        d.lost.ranges,
        vec!["mysql-bin.000007:1545 .. mysql-bin.000008:620"]
    );
    let reports = w.pages("DivergenceMeasured");
    assert!(
        reports
            .last()
            .unwrap()
            .contains("holds 4 transaction(s) (counted in its binlog; GTIDs are off)"),
        "{reports:#?}"
    );
    assert_eq!(
        w.old_primary.state.lock().unwrap().binlog_reads.len(),
        1,
        "the old primary did not move: counted once"
    );
}

/// Step 4, asked for: the old primary moved into the site's quarantine security group alone
/// (read back from DescribeDBInstances, `adding` then `active`), then stopped; when RDS starts
/// it again by itself (seven days later) the stop step is pending again, pages, and the stop is
/// sent again.
#[tokio::test]
async fn the_old_primary_is_quarantined_then_stopped_and_stopped_again_when_rds_restarts_it() {
    let fence = json!({"parameter_group": GROUP, "quarantine_security_group": "sg-0a1b2c3d4e5f60718",
        "stop": true});
    let w = pinned_world(fence, None);
    fake_fence(&w).security_groups.insert(
        "orders-primary".into(),
        vec![("sg-app".into(), "active".into())],
    );
    w.region_back();
    for n in 0..10 {
        w.tick(n).await;
        if fake_fence(&w)
            .calls
            .iter()
            .any(|c| c.starts_with("StopDBInstance"))
        {
            break;
        }
    }
    let f = w.fence();
    assert!(
        matches!(f.state(Step::Quarantine), Some(StepState::Done { .. })),
        "{:?}",
        f.steps
    );
    assert_eq!(
        fake_fence(&w).security_groups["orders-primary"],
        vec![("sg-0a1b2c3d4e5f60718".to_string(), "active".to_string())]
    );
    let calls = fake_fence(&w).calls.clone();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with(
                "ModifyDBInstance orders-primary VpcSecurityGroupIds=sg-0a1b2c3d4e5f60718"
            ))
            .count(),
        1,
        "asked once, then read back: {calls:?}"
    );
    let stops = |w: &World| {
        fake_fence(w)
            .calls
            .iter()
            .filter(|c| *c == "StopDBInstance orders-primary")
            .count()
    };
    assert_eq!(stops(&w), 1, "{calls:?}");
    assert!(w.fence().state(Step::Stop).unwrap().is_pending());
    // RDS answers `stopping`: not asked again while it stops.
    w.topology.set_status("orders-primary", "stopping");
    w.tick(6).await;
    assert_eq!(stops(&w), 1);
    w.topology.set_status("orders-primary", "stopped");
    w.tick(60).await;
    assert!(
        matches!(w.fence().state(Step::Stop), Some(StepState::Done { .. })),
        "{:?}",
        w.fence().steps
    );
    let pages = w.pages("FenceChanged").len();
    w.tick(7).await;
    assert_eq!(stops(&w), 1, "stopped: not asked again");
    // Seven days on, RDS starts it again.
    w.topology.set_status("orders-primary", "available");
    w.tick(8).await;
    assert_eq!(stops(&w), 2, "stopped again");
    assert!(w.fence().state(Step::Stop).unwrap().is_pending());
    assert!(w.pages("FenceChanged").len() > pages, "the restart pages");
}

#[tokio::test]
async fn scenario_2_the_old_primary_back_writable_before_the_fence_lands_pages_critical_and_the_pin_stays(
) {
    let w = pinned_world(own(), None);
    w.tick(0).await;
    // SQL answers, but the old region's RDS API is still dark: read_only cannot be set yet.
    w.old_primary.state.lock().unwrap().reachable = true;
    w.tick(1).await;
    let crit = w.pages("OldPrimaryWritable");
    assert_eq!(crit.len(), 1, "CRITICAL within one tick");
    assert!(
        crit[0].contains("WRITABLE") && crit[0].contains("Do NOT move db.orders.example.com back"),
        "{}",
        crit[0]
    );
    assert!(
        crit[0].contains("fence of orders-primary (us-east-1) in progress"),
        "{}",
        crit[0]
    );
    w.tick(2).await;
    assert_eq!(w.pages("OldPrimaryWritable").len(), 1, "once per episode");
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned, "the pin stays");
    assert!(st.fence.unwrap().divergence.unwrap().provisional);
    // The region returns: fenced, and the critical episode is over.
    w.region_back();
    w.tick(3).await;
    assert!(w.fence().writable_since.is_none());
    assert_eq!(w.pages("OldPrimaryWritable").len(), 1);
}

#[tokio::test]
async fn scenario_3_a_long_transaction_delays_read_only_and_the_fence_waits_for_sql_to_show_it() {
    let w = pinned_world(own(), None);
    w.region_back();
    w.old_primary.state.lock().unwrap().read_only_delay = 3;
    w.tick(0).await;
    let f = w.fence();
    assert!(f.state(Step::ParameterReadOnly).unwrap().is_done());
    assert!(
        f.state(Step::SqlReadOnly).unwrap().is_pending(),
        "{:?}",
        f.describe()
    );
    assert_eq!(
        w.old_primary.state.lock().unwrap().sessions,
        vec![41, 42],
        "not killed before read_only holds"
    );
    w.tick(1).await;
    assert!(w.fence().state(Step::SqlReadOnly).unwrap().is_pending());
    w.tick(2).await;
    let f = w.fence();
    assert!(
        f.state(Step::SqlReadOnly).unwrap().is_done(),
        "{:?}",
        f.describe()
    );
    assert!(f.state(Step::EndSessions).unwrap().is_done());
}

/// Review finding: pooled clients that DNS still sends to the old primary reconnect as soon as
/// their session is ended. Waiting for "none left" would never end (a switchover would always
/// roll back); the step is done once every session the kill pass found is gone, the new ones
/// reported — read_only, confirmed first, holds them.
#[tokio::test]
async fn sessions_that_reconnect_after_the_kill_are_reported_not_waited_for() {
    let w = pinned_world(own(), None);
    w.region_back();
    w.old_primary.state.lock().unwrap().reconnecting = vec![77];
    w.tick(0).await;
    w.tick(1).await;
    let f = w.fence();
    let step = f.state(Step::EndSessions).unwrap();
    assert!(step.is_done(), "{:?}", f.describe());
    assert!(
        format!("{step:?}").contains("1 new one(s) since [77]"),
        "{step:?}"
    );
}

#[tokio::test]
async fn the_group_the_new_primary_also_uses_is_never_set_read_only() {
    let w = pinned_world(own(), None);
    w.region_back();
    // A same-region new primary (moved to us-east-1 in the record) on the old primary's group.
    let mut st = w.ledger.get("orders").unwrap();
    for c in [
        st.candidate.as_mut(),
        st.promotion.as_mut().map(|p| &mut p.candidate),
    ]
    .into_iter()
    .flatten()
    {
        c.region = "us-east-1".into();
    }
    w.ledger.put(st);
    fake_fence(&w).groups.insert(
        "orders-replica-1".into(),
        vec![AttachedGroup {
            name: GROUP.into(),
            apply_status: "in-sync".into(),
        }],
    );
    w.tick(0).await;
    match w.fence().state(Step::ParameterReadOnly) {
        Some(StepState::Refused { reason }) => {
            assert!(reason.contains("would stop the new writer too"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(fake_fence(&w).calls.is_empty());
}

/// A parameter group is regional (ARN `arn:aws:rds:<region>:…:pg:<name>`): the DR replica's group
/// of the same name — what infrastructure-as-code creates in every region — is another group, and
/// the old primary's must still be fenced (today's refusal left the old primary writable).
#[tokio::test]
async fn a_cross_region_new_primary_on_a_same_named_group_does_not_stop_the_fence() {
    let w = pinned_world(own(), None);
    w.region_back();
    fake_fence(&w).groups.insert(
        "orders-replica-1".into(),
        vec![AttachedGroup {
            name: GROUP.into(),
            apply_status: "in-sync".into(),
        }],
    );
    w.tick(0).await;
    let f = w.fence();
    assert!(
        !matches!(
            f.state(Step::ParameterReadOnly),
            Some(StepState::Refused { .. })
        ),
        "{:?}",
        f.describe()
    );
    let calls = fake_fence(&w).calls.clone();
    assert!(
        calls.iter().any(|c| c.contains("ModifyDBParameterGroup")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_multi_az_failover_fences_nothing_and_watches_nothing() {
    let w = pinned_world(own(), None);
    let cfg = w.deps.cfg.clone();
    let site = cfg.site("inventory").unwrap();
    let mut st = w.ledger.get("orders").unwrap();
    st.site = "inventory".into();
    st.fence = Some(failover_policy::fence::intent(site, 1, None, w.clock.now()));
    w.ledger.put(st);
    w.old_primary.state.lock().unwrap().reachable = true;
    w.tick(0).await;
    let inventory_pages = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.site == "inventory" && e.event_type.detail_type() == "OldPrimaryWritable")
        .count();
    assert_eq!(inventory_pages, 0, "the endpoint reaches the new writer");
    let f = w.ledger.get("inventory").unwrap().fence.unwrap();
    assert!(f.headline().contains("not applicable"), "{}", f.headline());
}

#[tokio::test]
async fn scenario_5_a_shared_parameter_group_is_refused_with_the_reason_and_never_modified() {
    let w = pinned_world(own(), Some(own()));
    w.region_back();
    w.tick(0).await;
    let f = w.fence();
    match f.state(Step::ParameterReadOnly) {
        Some(StepState::Refused { reason }) => {
            assert!(reason.contains("shared with site(s) payments"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(fake_fence(&w)
        .calls
        .iter()
        .all(|c| !c.starts_with("ModifyDBParameterGroup")));
    let pages = w.pages("FenceChanged");
    assert!(pages.last().unwrap().contains("working on"), "{pages:?}");
    let crit = w.pages("OldPrimaryWritable");
    assert_eq!(crit.len(), 1);
    assert!(
        crit[0].contains("The tool will not set read_only"),
        "{}",
        crit[0]
    );
    assert!(failover_policy::fence::warnings(&w.deps.cfg)
        .iter()
        .any(|x| x.contains("shared")));
}

/// Issue 11, defect 3: a failover forced over a primary that answers. Before RDS is asked the
/// tick fences the old primary (the promoter waits for it), and does not page it "writable
/// again": it is the writer until it is fenced.
#[tokio::test]
async fn a_forced_failover_over_a_live_primary_is_fenced_before_the_promotion() {
    let w = pinned_world(own(), None);
    let now = w.clock.now();
    let mut st = w.ledger.get("orders").unwrap();
    st.phase = Phase::Promoting;
    st.promotion = None;
    st.forced = Some(failover_policy::incident::Forced {
        epoch: 1,
        by: "alice".into(),
        reason: "move writes now".into(),
        at: now,
        fence_first: true,
    });
    w.ledger.put(st);
    w.region_back(); // the old primary answers: that is why the failover had to be forced

    w.tick(0).await;

    let f = w.fence();
    assert!(
        f.state(Step::ParameterReadOnly).unwrap().is_done(),
        "{:?}",
        f.steps
    );
    assert!(
        f.state(Step::SqlReadOnly).unwrap().is_done(),
        "{:?}",
        f.steps
    );
    assert!(matches!(
        failover_policy::fence::fenced_first(&w.ledger.get("orders").unwrap()),
        failover_policy::fence::FencedFirst::Done(_)
    ));
    assert!(
        w.pages("OldPrimaryWritable").is_empty(),
        "no 'writable again' page for the writer being fenced"
    );
    assert!(
        f.divergence.is_none(),
        "nothing to measure before the promotion"
    );
}
