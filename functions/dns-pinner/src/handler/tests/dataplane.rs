//! `data-plane-switch` over the fakes: the switch (a datapoint that turns the PRIMARY's
//! `CLOUDWATCH_METRIC` health check unhealthy) moves the answer while Route 53's API is down, and
//! the records are pinned when it answers — reported for what was seen, never more.

use std::time::Duration;

use failover_policy::config::{DnsMode, SwitchMetric};

use super::*;

const NS: &str = "ns-1.awsdns-01.org";
const NAME: &str = "db.orders.example.com";

pub(super) fn metric() -> SwitchMetric {
    SwitchMetric {
        namespace: "RdsFailover/Switch".into(),
        name: "ServeSecondary".into(),
        region: "us-west-2".into(),
        alarm: "rds-failover-orders-serve-secondary".into(),
        dimensions: [("Site".to_string(), "orders".to_string())].into(),
    }
}

/// Orders in data-plane-switch mode, epoch 3 promoted to orders-replica-1: the PRIMARY names the
/// old primary behind `hc-switch` (the check on the tool's alarm), the SECONDARY the replica.
/// Route 53's API is down for `outage` (None: for good).
pub(super) fn switch_world(outage: Option<Duration>) -> World {
    switch_world_promoting(outage, "orders-replica-1", NEW_HOST)
}

/// The same pair (the SECONDARY names orders-replica-1, `dns.mode.secondary_candidate`), epoch 3
/// having promoted `candidate` at `host`.
pub(super) fn switch_world_promoting(
    outage: Option<Duration>,
    candidate: &str,
    host: &str,
) -> World {
    let mut w = world();
    w.ledger
        .put(promoted("orders", 3, candidate, &format!("{host}:3306")));
    let zone = "Z0ORDERSEXAMPLE";
    let member = |set: &str, role, value, hc: Option<&str>| RecordSet {
        name: NAME.into(),
        health_check_id: hc.map(Into::into),
        ..failover(set, role, value, "")
    };
    let primary = member(
        "orders-primary",
        FailoverRole::Primary,
        OLD_HOST,
        Some("hc-switch"),
    );
    w.dns.put(zone, primary);
    let secondary = member("orders-secondary", FailoverRole::Secondary, NEW_HOST, None);
    w.dns.put(zone, secondary);
    let site = w
        .deps
        .cfg
        .sites
        .iter_mut()
        .find(|s| s.id == "orders")
        .unwrap();
    site.dns.name_servers = vec![NS.into()];
    site.dns.mode = DnsMode::DataPlaneSwitch {
        primary_set_identifier: "orders-primary".into(),
        secondary_candidate: "orders-replica-1".into(),
        metric: metric(),
    };
    let start = Instant::now();
    w.deps.clock = Arc::new(TokioClock { base: t0(), start });
    w.deps.dns = Arc::new(Route53Outage {
        inner: w.dns.clone(),
        until: outage.map(|d| start + d),
        calls: std::sync::Mutex::default(),
    });
    w
}

pub(super) fn served(w: &World) -> Vec<String> {
    w.dns.served(NAME).map(|r| r.values).unwrap_or_default()
}

pub(super) fn values(w: &World) -> Vec<Vec<String>> {
    w.dns
        .records("Z0ORDERSEXAMPLE")
        .into_iter()
        .map(|r| r.values)
        .collect()
}

pub(super) fn summaries(w: &World, t: EventType) -> Vec<String> {
    w.bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == t)
        .map(|e| e.verdict.summary.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn scenario_4_route53_dark_for_thirty_minutes_traffic_moves_by_the_switch_and_records_pin_after(
) {
    let w = switch_world(Some(Duration::from_secs(30 * 60)));
    assert_eq!(served(&w), vec![OLD_HOST]);
    let start = Instant::now();

    let first = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    // Traffic moved with Route 53's API dark: one datapoint, the answer seen, the records as they were.
    assert_eq!(first.outcome, "continued", "{}", first.detail);
    assert_eq!(*w.switch.puts.lock().unwrap(), vec![(metric(), 1.0)]);
    assert_eq!(served(&w), vec![NEW_HOST]);
    assert_eq!(
        values(&w),
        vec![vec![OLD_HOST], vec![NEW_HOST]],
        "no record changed"
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
    assert!(st.data_plane_switch.as_ref().unwrap().records_pending);
    let [pinned] = &summaries(&w, EventType::DnsPinned)[..] else {
        panic!("one DnsPinned: {:?}", w.bus.types())
    };
    assert!(
        pinned.contains("the records are NOT pinned yet"),
        "{pinned}"
    );
    assert!(
        pinned.contains(&format!("verified: {NAME} CNAME {NEW_HOST}")),
        "{pinned}"
    );
    assert!(
        pinned.contains("503"),
        "says what Route 53's API answered: {pinned}"
    );
    let ev = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.event_type == EventType::DnsPinned)
        .unwrap()
        .clone();
    let subject = failover_policy::notice::subject(&ev);
    assert!(
        subject.contains("data-plane switch") && subject.contains("NOT pinned"),
        "the notifier says the records are not pinned: {subject}"
    );

    // The chain goes on, and pins both records once Route 53 answers.
    let mut ev = continuation(&w);
    let r = loop {
        let r = handle(&w.deps, ev.clone(), later(INVOCATION))
            .await
            .unwrap();
        if r.outcome != "continued" {
            break r;
        }
        ev = continuation(&w);
    };
    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert!(start.elapsed() >= Duration::from_secs(30 * 60));
    assert_eq!(values(&w), vec![vec![NEW_HOST], vec![NEW_HOST]]);
    assert_eq!(w.dns.change_count(), 1);
    assert_eq!(
        w.switch.puts.lock().unwrap().len(),
        1,
        "the switch was set once"
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
    assert!(!st.data_plane_switch.as_ref().unwrap().records_pending);
    let note = &st.timeline.last().unwrap().note;
    assert!(note.starts_with("records pinned too"), "{note}");
    assert_eq!(count(&w.bus, "DnsPinned"), 1, "one DnsPinned per epoch");
    assert_eq!(count(&w.bus, "FailoverFailed"), 0);
    assert_eq!(
        count(&w.bus, "DnsPinDelayed"),
        0,
        "traffic moved: nobody paged for the records"
    );
}

/// Finding 4: an "M out of N" alarm does not follow one datapoint (AWS has no latch on the first
/// one). While the answer has not moved and Route 53's API fails, the pinner puts 1 again on every
/// try, until the alarm (two datapoints here) follows and the answer is seen.
#[tokio::test(start_paused = true)]
async fn an_alarm_needing_two_datapoints_gets_them_because_the_pinner_re_puts_while_it_waits() {
    let w = switch_world(Some(Duration::from_secs(30 * 60)));
    *w.switch.datapoints_to_alarm.lock().unwrap() = 2;

    let first = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(first.outcome, "continued", "{}", first.detail);
    assert_eq!(
        *w.switch.puts.lock().unwrap(),
        vec![(metric(), 1.0), (metric(), 1.0)],
        "put again until the answer moved, then no more"
    );
    assert_eq!(served(&w), vec![NEW_HOST]);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
    assert_eq!(summaries(&w, EventType::DnsPinned).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn with_route53_answering_one_dns_pinned_names_the_switch_and_the_records() {
    let w = switch_world(Some(Duration::ZERO));

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert!(
        r.detail.contains("data-plane switch set first"),
        "{}",
        r.detail
    );
    assert_eq!(values(&w), vec![vec![NEW_HOST], vec![NEW_HOST]]);
    assert_eq!(w.bus.types(), vec!["DnsPinned"]);
    let sw = w.ledger.get("orders").unwrap().data_plane_switch.unwrap();
    assert!(
        sw.epoch == 3 && !sw.records_pending,
        "the switch is on record, nothing pending: {sw:?}"
    );
    let ev = w.bus.published.lock().unwrap()[0].clone();
    let subject = failover_policy::notice::subject(&ev);
    assert!(subject.contains("DNS pinned to"), "{subject}");
}

#[tokio::test(start_paused = true)]
async fn nothing_is_claimed_until_the_answer_is_seen() {
    let w = switch_world(None);
    w.switch.dark.lock().unwrap().insert("us-west-2".into());

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "continued");
    assert_eq!(w.ledger.get("orders").unwrap().phase, Phase::Promoted);
    assert_eq!(served(&w), vec![OLD_HOST]);
    assert_eq!(count(&w.bus, "DnsPinned"), 0);

    // CloudWatch answers again: the next link switches.
    w.switch.dark.lock().unwrap().clear();
    let r = handle(&w.deps, continuation(&w), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(r.outcome, "continued");
    assert_eq!(served(&w), vec![NEW_HOST]);
    assert_eq!(w.ledger.get("orders").unwrap().phase, Phase::DnsPinned);
}

#[tokio::test(start_paused = true)]
async fn records_never_pinned_page_once_at_the_deadline_and_the_epoch_stays_switched() {
    let w = switch_world(None);

    let (_, r) = run_chain(&w, 200).await;

    let r = r.unwrap();
    assert_eq!(r.outcome, "records-abandoned", "{}", r.detail);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(
        st.phase,
        Phase::DnsPinned,
        "traffic is on the switch: not failed"
    );
    assert_eq!(served(&w), vec![NEW_HOST]);
    let [delayed] = &summaries(&w, EventType::DnsPinDelayed)[..] else {
        panic!("one DnsPinDelayed: {:?}", w.bus.types())
    };
    assert!(
        delayed.contains("held by the data-plane switch"),
        "{delayed}"
    );
    assert!(
        delayed.contains("UPSERT both failover records"),
        "{delayed}"
    );
    // The way out: `complete` is accepted with the records not pinned (decide.rs), and the page
    // names it.
    assert!(
        delayed.starts_with("CRITICAL: records NOT pinned")
            && delayed.contains("{\"command\":\"complete\",\"site\":\"orders\",\"epoch\":3"),
        "{delayed}"
    );
    let sw = st.data_plane_switch.as_ref().unwrap();
    assert!(
        !sw.records_pending && st.dns.as_ref().is_none_or(|d| d.insync_at.is_none()),
        "nothing claims the records were pinned"
    );
    assert_eq!(count(&w.bus, "FailoverFailed"), 0);
    // A late link changes nothing more.
    let again = handle(&w.deps, continuation(&w), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(again.outcome, "already-pinned");
}

const REPLICA_2: &str = "orders-replica-2.cabc.us-west-2.rds.amazonaws.com";

#[tokio::test(start_paused = true)]
async fn another_candidate_promoted_leaves_the_switch_alone_and_pins_the_records() {
    // The promoter picked orders-replica-2; the SECONDARY names orders-replica-1, a read replica
    // that is not the writer: the switch would send the traffic there.
    let w = switch_world_promoting(Some(Duration::ZERO), "orders-replica-2", REPLICA_2);

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-2"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert!(
        w.switch.puts.lock().unwrap().is_empty(),
        "no datapoint put: {:?}",
        w.switch.puts.lock().unwrap()
    );
    assert_eq!(values(&w), vec![vec![REPLICA_2], vec![REPLICA_2]]);
    assert_eq!(served(&w), vec![REPLICA_2]);
    let [pinned] = &summaries(&w, EventType::DnsPinned)[..] else {
        panic!("one DnsPinned: {:?}", w.bus.types())
    };
    assert!(
        pinned.contains("data-plane switch NOT set")
            && pinned.contains("orders-replica-2")
            && pinned.contains("SECONDARY record names orders-replica-1"),
        "{pinned}"
    );
    assert_eq!(w.ledger.get("orders").unwrap().data_plane_switch, None);
}

#[tokio::test(start_paused = true)]
async fn another_candidate_promoted_with_route53_dark_is_not_switched_either() {
    let w = switch_world_promoting(None, "orders-replica-2", REPLICA_2);

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-2"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "continued", "{}", r.detail);
    assert!(w.switch.puts.lock().unwrap().is_empty());
    assert_eq!(
        served(&w),
        vec![OLD_HOST],
        "traffic not moved to the stale replica"
    );
    assert_eq!(w.ledger.get("orders").unwrap().phase, Phase::Promoted);
    assert_eq!(count(&w.bus, "DnsPinned"), 0);
}

/// What Route 53's API does in [`Flaky`]: down (503), refusing the change (IAM), or a human's
/// edit landing between the pinner's read and its change (the compare-and-set then fails).
#[derive(Clone)]
pub(super) enum Api {
    Down,
    Denied,
    HumanEdits(RecordSet),
}

pub(super) struct Flaky {
    inner: Arc<FakeDns>,
    api: std::sync::Mutex<Api>,
}

impl Flaky {
    fn down(&self, op: &'static str) -> Result<(), PortError> {
        match *self.api.lock().unwrap() {
            Api::Down => Err(PortError::new(
                ErrorKind::Unavailable,
                op,
                "503 Service Unavailable",
            )),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Dns for Flaky {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        self.down("ListResourceRecordSets")?;
        self.inner.record_sets(q).await
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[pin::RecordChange],
        comment: &str,
    ) -> Result<pin::ChangeInfo, PortError> {
        self.down("ChangeResourceRecordSets")?;
        let api = self.api.lock().unwrap().clone();
        match api {
            Api::Denied => {
                return Err(PortError::new(
                    ErrorKind::AccessDenied,
                    "ChangeResourceRecordSets",
                    "AccessDenied: not authorized to perform route53:ChangeResourceRecordSets",
                ))
            }
            Api::HumanEdits(edit) => self.inner.put("Z0ORDERSEXAMPLE", edit),
            Api::Down => {}
        }
        self.inner.change(zone_id, changes, comment).await
    }
    async fn change_status(&self, change_id: &str) -> Result<pin::ChangeInfo, PortError> {
        self.down("GetChange")?;
        self.inner.change_status(change_id).await
    }
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        self.down("GetHostedZone")?;
        self.inner.name_servers(zone_id).await
    }
    async fn health_check_status(
        &self,
        id: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        self.down("GetHealthCheckStatus")?;
        self.inner.health_check_status(id).await
    }
}

pub(super) fn flaky_world(api: Api) -> (World, Arc<Flaky>) {
    let mut w = switch_world(Some(Duration::ZERO));
    let flaky = Arc::new(Flaky {
        inner: w.dns.clone(),
        api: std::sync::Mutex::new(api),
    });
    w.deps.dns = flaky.clone();
    (w, flaky)
}

pub(super) const HUMAN: &str = "hand-picked.cabc.us-east-1.rds.amazonaws.com";

fn human_edit() -> RecordSet {
    RecordSet {
        name: NAME.into(),
        health_check_id: Some("hc-switch".into()),
        ..failover("orders-primary", FailoverRole::Primary, HUMAN, "")
    }
}

/// The page sent when the records cannot be pinned after the switch: CRITICAL, it says traffic
/// moved and the records did not, and what a human must do.
async fn assert_records_failed_paged(w: &World, why: &str) {
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(
        st.phase,
        Phase::DnsPinned,
        "traffic moved: the epoch is not failed"
    );
    let sw = st
        .data_plane_switch
        .as_ref()
        .expect("the switch is on record");
    assert!(sw.epoch == 3 && !sw.records_pending, "{sw:?}");
    assert_eq!(served(w), vec![NEW_HOST], "traffic stays on the switch");
    assert_eq!(count(&w.bus, "FailoverFailed"), 0);
    let [page] = &summaries(w, EventType::DnsPinDelayed)[..] else {
        panic!("one DnsPinDelayed: {:?}", w.bus.types())
    };
    assert!(
        page.starts_with("CRITICAL: records NOT pinned")
            && page.contains(&format!("traffic is on the new primary {NEW_HOST}"))
            && page.contains("UPSERT both failover records")
            && page.contains("\"command\":\"complete\"")
            && page.contains(why),
        "{page}"
    );
    let ev = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.event_type == EventType::DnsPinDelayed)
        .unwrap()
        .clone();
    assert!(
        failover_policy::notice::subject(&ev).starts_with("[CRITICAL]"),
        "{}",
        failover_policy::notice::subject(&ev)
    );
    // The chain is over: a late link changes nothing more.
    let again = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await;
    assert!(
        matches!(again, Ok(ref r) if r.outcome == "already-pinned"),
        "{again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_human_edit_in_the_same_run_as_the_switch_keeps_the_fact_that_traffic_moved_and_pages() {
    let (w, _) = flaky_world(Api::HumanEdits(human_edit()));

    let e = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap_err();

    assert_eq!(e.error_type(), "Fatal.RecordChangedConcurrently", "{e}");
    assert!(
        e.to_string().contains("traffic IS on the new primary"),
        "{e}"
    );
    assert!(
        w.dns
            .records("Z0ORDERSEXAMPLE")
            .iter()
            .any(|r| r.values == vec![HUMAN]),
        "the human's edit is not overwritten"
    );
    assert_eq!(w.dns.change_count(), 0);
    assert_eq!(count(&w.bus, "DnsPinned"), 1, "{:?}", w.bus.types());
    assert_records_failed_paged(&w, HUMAN).await;
}

#[tokio::test(start_paused = true)]
async fn access_denied_on_a_later_link_after_the_switch_is_committed_and_paged() {
    let (w, flaky) = flaky_world(Api::Down);
    let first = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();
    assert_eq!(first.outcome, "continued", "{}", first.detail);
    assert!(failover_policy::dataplane::records_pending(
        &w.ledger.get("orders").unwrap()
    ));

    // Route 53 answers again, but IAM refuses the change.
    *flaky.api.lock().unwrap() = Api::Denied;
    let e = handle(&w.deps, continuation(&w), later(INVOCATION))
        .await
        .unwrap_err();

    assert_eq!(e.error_type(), "Fatal.AccessDenied", "{e}");
    assert_records_failed_paged(&w, "AccessDenied").await;
}

#[tokio::test(start_paused = true)]
async fn a_run_that_died_after_the_switch_was_seen_resumes_from_it_and_never_fails_the_epoch() {
    // The ledger holds the switch seen at `promoted` (the run died before anything else); now
    // CloudWatch is dark too and Route 53 never answers.
    let w = switch_world(None);
    let mut st = w.ledger.get("orders").unwrap();
    st.data_plane_switch = Some(failover_policy::dataplane::SwitchRecord {
        epoch: 3,
        switched_at: t0(),
        host: NEW_HOST.into(),
        records_pending: true,
        put_only: false,
        before: vec![],
        observed: None,
        put_back_at: None,
        acked_at: None,
        put_error: None,
    });
    w.ledger.put(st);
    w.switch.dark.lock().unwrap().insert("us-west-2".into());

    let (_, r) = run_chain(&w, 200).await;

    let r = r.unwrap();
    assert_eq!(r.outcome, "records-abandoned", "{}", r.detail);
    assert_eq!(w.ledger.get("orders").unwrap().phase, Phase::DnsPinned);
    assert_eq!(count(&w.bus, "FailoverFailed"), 0, "{:?}", w.bus.types());
    assert_eq!(count(&w.bus, "DnsPinned"), 1);
}

/// H1: the switch metric is put, the answer has not moved yet (the alarm needs more datapoints),
/// and Route 53 refuses the records for good. The alarm may latch at any moment and move the
/// traffic, so the epoch must never go `failed` (a later `complete` would hand the site back to
/// the old primary: two writers): `dns-pinned` on the switch, and a CRITICAL page saying so.
#[tokio::test(start_paused = true)]
async fn a_switch_put_but_not_seen_then_a_fatal_answer_never_fails_the_epoch() {
    let (w, _) = flaky_world(Api::Denied);
    *w.switch.datapoints_to_alarm.lock().unwrap() = u32::MAX;

    let e = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap_err();

    assert_eq!(e.error_type(), "Fatal.AccessDenied", "{e}");
    assert!(
        !w.switch.puts.lock().unwrap().is_empty(),
        "the switch was put"
    );
    assert_eq!(served(&w), vec![OLD_HOST], "the answer has not moved yet");
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(
        st.phase,
        Phase::DnsPinned,
        "never failed: {:?}",
        st.timeline
    );
    assert_eq!(count(&w.bus, "FailoverFailed"), 0, "{:?}", w.bus.types());
    let sw = st.data_plane_switch.as_ref().expect("the put is on record");
    assert!(
        sw.put_only && sw.epoch == 3 && !sw.records_pending,
        "{sw:?}"
    );
    let [page] = &summaries(&w, EventType::DnsPinDelayed)[..] else {
        panic!("one DnsPinDelayed: {:?}", w.bus.types())
    };
    assert!(
        page.starts_with("CRITICAL: records NOT pinned")
            && page.contains("MAY MOVE AT ANY MOMENT")
            && page.contains(NEW_HOST),
        "{page}"
    );
    // The put was on record before the PutMetricData: a run that dies right after it (or whose
    // put timed out) leaves the same fact for the next one.
    let put_noted = st
        .timeline
        .iter()
        .position(|t| t.note.contains("data-plane switch being put"))
        .expect("the put noted");
    assert!(put_noted < st.timeline.len() - 1);
}

/// H1: the put is committed before the PutMetricData, and a chain whose answer never moves and
/// whose Route 53 never answers ends with the records abandoned at the deadline, never `failed`.
#[tokio::test(start_paused = true)]
async fn a_switch_put_never_seen_is_abandoned_at_the_deadline_never_failed() {
    let w = switch_world(None);
    *w.switch.datapoints_to_alarm.lock().unwrap() = u32::MAX;

    let (_, r) = run_chain(&w, 200).await;

    let r = r.unwrap();
    assert_eq!(r.outcome, "records-abandoned", "{}", r.detail);
    assert_eq!(served(&w), vec![OLD_HOST]);
    assert_eq!(w.ledger.get("orders").unwrap().phase, Phase::DnsPinned);
    assert_eq!(count(&w.bus, "FailoverFailed"), 0, "{:?}", w.bus.types());
    // The escalation pages on the way (at `promoted`), then one CRITICAL.
    let pages = summaries(&w, EventType::DnsPinDelayed);
    let critical: Vec<_> = pages
        .iter()
        .filter(|p| p.starts_with("CRITICAL: records NOT pinned"))
        .collect();
    assert_eq!(critical.len(), 1, "{pages:?}");
    assert!(
        critical[0].contains("MAY MOVE AT ANY MOMENT"),
        "{}",
        critical[0]
    );
}

/// The SECONDARY as a human re-pointed it, at `value`.
pub(super) fn secondary_at(value: &str) -> RecordSet {
    RecordSet {
        name: NAME.into(),
        health_check_id: None,
        ..failover("orders-secondary", FailoverRole::Secondary, value, "")
    }
}

fn refusal_pages(w: &World) -> Vec<String> {
    summaries(w, EventType::DnsPinDelayed)
        .into_iter()
        .filter(|p| p.starts_with(failover_policy::secondary::SWITCH_REFUSED))
        .collect()
}

/// H2: a human pointed the SECONDARY at a third host. The switch would move the writes there: it
/// is not put, people are paged CRITICAL, and the records path pins both records to the writer.
#[tokio::test(start_paused = true)]
async fn a_secondary_naming_a_third_host_refuses_the_switch_and_the_records_are_pinned() {
    let w = switch_world(Some(Duration::ZERO));
    w.dns.put("Z0ORDERSEXAMPLE", secondary_at(HUMAN));

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert!(
        w.switch.puts.lock().unwrap().is_empty(),
        "no datapoint: {:?}",
        w.switch.puts.lock().unwrap()
    );
    assert_eq!(values(&w), vec![vec![NEW_HOST], vec![NEW_HOST]]);
    assert_eq!(served(&w), vec![NEW_HOST]);
    let [page] = &refusal_pages(&w)[..] else {
        panic!("one refusal page: {:?}", w.bus.types())
    };
    assert!(
        page.contains(&format!(
            "names {HUMAN}, not the promoted writer {NEW_HOST}"
        )),
        "{page}"
    );
    let ev = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .find(|e| {
            e.verdict
                .summary
                .starts_with(failover_policy::secondary::SWITCH_REFUSED)
        })
        .unwrap()
        .clone();
    assert!(
        failover_policy::notice::subject(&ev).starts_with("[CRITICAL]"),
        "{}",
        failover_policy::notice::subject(&ev)
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
    assert_eq!(st.data_plane_switch, None, "never put");
    let [pinned] = &summaries(&w, EventType::DnsPinned)[..] else {
        panic!("one DnsPinned: {:?}", w.bus.types())
    };
    assert!(pinned.contains("data-plane switch NOT put"), "{pinned}");
}

/// H2 with Route 53's API dark: the last reading in the ledger decides, and the messages say it
/// was not read now. A reading naming another host refuses the switch; one naming the writer
/// lets it be put, saying how old the reading is.
#[tokio::test(start_paused = true)]
async fn with_route53_dark_the_last_reading_of_the_secondary_decides_and_says_so() {
    let reading = |v: &str| failover_policy::secondary::SecondaryReading {
        values: vec![v.into()],
        at: t0() - chrono::Duration::hours(2),
        epoch: 2,
    };
    // Last read naming a third host: refused, paged once over the whole chain, never switched.
    let w = switch_world(None);
    let mut st = w.ledger.get("orders").unwrap();
    st.secondary_reading = Some(reading(HUMAN));
    w.ledger.put(st);
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "continued", "{}", r.detail);
    let again = handle(&w.deps, continuation(&w), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(again.outcome, "continued", "{}", again.detail);
    assert!(w.switch.puts.lock().unwrap().is_empty());
    assert_eq!(served(&w), vec![OLD_HOST]);
    let [page] = &refusal_pages(&w)[..] else {
        panic!("one refusal page: {:?}", w.bus.types())
    };
    assert!(
        page.contains("did not answer") && page.contains(&format!("named {HUMAN}")),
        "{page}"
    );

    // Last read naming the writer: put, and the note says the SECONDARY was not read now.
    let w = switch_world(None);
    let mut st = w.ledger.get("orders").unwrap();
    st.secondary_reading = Some(reading(NEW_HOST));
    w.ledger.put(st);
    handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();
    assert_eq!(*w.switch.puts.lock().unwrap(), vec![(metric(), 1.0)]);
    assert_eq!(served(&w), vec![NEW_HOST]);
    let [pinned] = &summaries(&w, EventType::DnsPinned)[..] else {
        panic!("one DnsPinned: {:?}", w.bus.types())
    };
    assert!(
        pinned.contains("the SECONDARY was NOT read now")
            && pinned.contains("2h 00m old")
            && pinned.contains(&format!("named {NEW_HOST}")),
        "{pinned}"
    );
    assert!(refusal_pages(&w).is_empty());
}

/// Route 53's API that never answers (a blackhole, not an error).
struct Hanging;

#[async_trait::async_trait]
impl Dns for Hanging {
    async fn record_sets(&self, _: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        std::future::pending().await
    }
    async fn change(
        &self,
        _: &str,
        _: &[pin::RecordChange],
        _: &str,
    ) -> Result<pin::ChangeInfo, PortError> {
        std::future::pending().await
    }
    async fn change_status(&self, _: &str) -> Result<pin::ChangeInfo, PortError> {
        std::future::pending().await
    }
    async fn name_servers(&self, _: &str) -> Result<Vec<String>, PortError> {
        std::future::pending().await
    }
    async fn health_check_status(
        &self,
        _: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        std::future::pending().await
    }
}

/// H2's pre-switch read must not hold the switch back when Route 53's API hangs instead of
/// failing: it is bounded short, then counts as dark, and the switch moves the traffic in the
/// same invocation.
#[tokio::test(start_paused = true)]
async fn a_hanging_route53_api_does_not_hold_the_switch_back() {
    let mut w = switch_world(None);
    w.deps.dns = Arc::new(Hanging);

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "continued", "{}", r.detail);
    assert_eq!(*w.switch.puts.lock().unwrap(), vec![(metric(), 1.0)]);
    assert_eq!(served(&w), vec![NEW_HOST]);
    let [pinned] = &summaries(&w, EventType::DnsPinned)[..] else {
        panic!("one DnsPinned: {:?}", w.bus.types())
    };
    assert!(pinned.contains("the SECONDARY was NOT checked"), "{pinned}");
}
