//! `unpin` over the faithful fakes: after a failover-pin and a failback, the recorded pair comes
//! back in ONE batch; a human edit since the pin fails it loudly with nothing changed.

use failover_policy::signal::AlarmState;
use failover_policy::topology::Topology;

use super::*;

/// billing pinned to billing-2 at epoch 5, then failed back by hand to billing-1, which the
/// ledger's topology names as the writer again; the evaluator accepted `unpin`.
async fn pinned_failed_back_unpin_requested() -> (World, Vec<RecordSet>) {
    let w = billing_world();
    let before = w.dns.records("Z0BILLINGEXAMPLE");
    let r = handle(
        &w.deps,
        replica_promoted("billing", 5, "billing-2"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{r:?}");
    let mut st = w.ledger.get("billing").unwrap();
    assert_eq!(
        st.original_dns.as_ref().map(|o| &o.records),
        Some(&before),
        "the pin keeps the original shape"
    );
    st.phase = Phase::Completed;
    st.topology = Some(Topology {
        epoch: 5,
        primary: db("billing-1"),
        endpoint: Some(format!("{BILLING_OLD}:3306")),
        candidates: vec![db("billing-2")],
        at: t0(),
        configured_primary: None,
    });
    w.ledger.put(st.clone());
    let cmd = failover_policy::parse_signal(&json!({
        "command": "unpin", "site": "billing", "operator": "alice", "reason": "failed back"
    }))
    .unwrap();
    let site = w.deps.cfg.site("billing").unwrap();
    let d = failover_policy::decide(site, &cmd, None, &st, t0());
    assert!(d.next.is_some(), "{:?}", d.verdict);
    w.ledger.put(d.next.unwrap());
    (w, before)
}

fn unpin_requested() -> Value {
    let mut e: DomainEvent =
        serde_json::from_value(replica_promoted("billing", 5, "billing-2")["detail"].clone())
            .unwrap();
    e.event_type = EventType::UnpinRequested;
    let mut v = replica_promoted("billing", 5, "billing-2");
    v["detail-type"] = json!("UnpinRequested");
    v["detail"] = serde_json::to_value(e).unwrap();
    v
}

#[tokio::test(start_paused = true)]
async fn unpin_restores_the_recorded_pair_in_one_batch_and_says_what() {
    let (w, before) = pinned_failed_back_unpin_requested().await;
    let batches_before = w.dns.batches.lock().unwrap().len();
    let r = handle(&w.deps, unpin_requested(), later(100))
        .await
        .unwrap();
    assert_eq!(r.outcome, "unpinned", "{r:?}");
    let now = w.dns.records("Z0BILLINGEXAMPLE");
    assert_eq!(now.len(), 2);
    for b in &before {
        assert!(
            now.iter().any(|n| pin::same_record_set(n, b)),
            "{b:?} not restored: {now:?}"
        );
    }
    let batches = w.dns.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), batches_before + 1, "one batch");
    let last = &batches.last().unwrap().1;
    assert_eq!(last.len(), 4);
    let published = w.bus.published.lock().unwrap().clone();
    let ev = published.last().unwrap();
    assert_eq!(ev.event_type, EventType::DnsUnpinned);
    assert!(
        ev.verdict.summary.contains(BILLING_OLD) && ev.verdict.summary.contains("hc-primary"),
        "{}",
        ev.verdict.summary
    );
    // A re-delivery changes nothing.
    let again = handle(&w.deps, unpin_requested(), later(100))
        .await
        .unwrap();
    assert_eq!((again.outcome, again.changed), ("ignored", false));
}

#[tokio::test(start_paused = true)]
async fn a_human_edit_since_the_pin_fails_the_unpin_loudly_and_changes_nothing() {
    let (w, _) = pinned_failed_back_unpin_requested().await;
    let mut edited = w.dns.records("Z0BILLINGEXAMPLE")[1].clone();
    edited.values = vec!["hand-picked.cdef.us-west-2.rds.amazonaws.com".into()];
    w.dns.put("Z0BILLINGEXAMPLE", edited);
    let held = w.dns.records("Z0BILLINGEXAMPLE");
    let batches_before = w.dns.batches.lock().unwrap().len();
    let e = handle(&w.deps, unpin_requested(), later(100))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("hand-picked"), "{e}");
    assert_eq!(
        w.dns.batches.lock().unwrap().len(),
        batches_before,
        "no change sent"
    );
    assert_eq!(w.dns.records("Z0BILLINGEXAMPLE"), held);
    let published = w.bus.published.lock().unwrap().clone();
    assert_eq!(published.last().unwrap().event_type, EventType::UnpinFailed);
}

/// Records, at each datapoint put, how many Route 53 batches had been sent and what was served:
/// the order of the switch against the restoring batch.
struct OrderedSwitch {
    inner: Arc<FakeSwitch>,
    dns: Arc<FakeDns>,
    seen: std::sync::Mutex<Vec<(f64, usize, Vec<String>)>>,
    /// At each alarm read: what it answered, how many batches had been sent.
    reads: std::sync::Mutex<Vec<(AlarmState, usize)>>,
}

#[async_trait::async_trait]
impl failover_adapters::switch::MetricSwitch for OrderedSwitch {
    async fn put(
        &self,
        metric: &failover_policy::config::SwitchMetric,
        value: f64,
    ) -> Result<(), PortError> {
        let batches = self.dns.batches.lock().unwrap().len();
        let served = self
            .dns
            .served("db.orders.example.com")
            .map(|r| r.values)
            .unwrap_or_default();
        self.seen.lock().unwrap().push((value, batches, served));
        self.inner.put(metric, value).await
    }

    async fn alarm_state(
        &self,
        metric: &failover_policy::config::SwitchMetric,
    ) -> Result<failover_policy::signal::AlarmState, PortError> {
        let state = self.inner.alarm_state(metric).await?;
        let batches = self.dns.batches.lock().unwrap().len();
        self.reads.lock().unwrap().push((state, batches));
        Ok(state)
    }
}

/// orders pinned on the data-plane switch at epoch 3 (Route 53 answering), failed back by hand to
/// orders-primary, `unpin` accepted; the switch's reads and puts recorded in order. Returns the
/// world, the recorder and the UnpinRequested to deliver.
async fn switch_pinned_failed_back() -> (World, Arc<OrderedSwitch>, Value) {
    use super::dataplane::switch_world;
    let mut w = switch_world(Some(std::time::Duration::ZERO));
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert_eq!(w.switch.puts.lock().unwrap().last().unwrap().1, 1.0);
    // Failed back by hand to orders-primary; the evaluator accepted `unpin`.
    let site = w.deps.cfg.site("orders").unwrap().clone();
    let mut st = w.ledger.get("orders").unwrap();
    st.phase = Phase::Completed;
    st.topology = Some(Topology {
        epoch: 3,
        primary: site.primary.clone(),
        endpoint: Some(format!("{OLD_HOST}:3306")),
        candidates: site.candidates.clone(),
        at: t0(),
        configured_primary: None,
    });
    w.ledger.put(st.clone());
    let cmd = failover_policy::parse_signal(&json!({
        "command": "unpin", "site": "orders", "operator": "alice", "reason": "failed back"
    }))
    .unwrap();
    let d = failover_policy::decide(&site, &cmd, None, &st, t0());
    assert!(d.next.is_some(), "{:?}", d.verdict);
    w.ledger.put(d.next.unwrap());
    let ordered = Arc::new(OrderedSwitch {
        inner: w.switch.clone(),
        dns: w.dns.clone(),
        seen: std::sync::Mutex::default(),
        reads: std::sync::Mutex::default(),
    });
    w.deps.switch = ordered.clone();
    let mut ev = unpin_requested();
    ev["detail"]["site"] = json!("orders");
    ev["detail"]["epoch"] = json!(3);
    (w, ordered, ev)
}

/// Finding 3: the alarm follows the 0 only after its "M out of N" periods (here: three puts). While
/// it reads ALARM the records are not restored (restored, Route 53 would answer the SECONDARY, the
/// demoted server); the 0 is put again before each read; restored once it reads OK.
#[tokio::test(start_paused = true)]
async fn a_data_plane_unpin_restores_the_records_only_once_the_alarm_reads_ok() {
    use super::dataplane::served;
    let (w, ordered, ev) = switch_pinned_failed_back().await;
    *w.switch.datapoints_to_alarm.lock().unwrap() = 3;
    let batches_before = w.dns.batches.lock().unwrap().len();

    let r = handle(&w.deps, ev, later(INVOCATION)).await.unwrap();

    assert_eq!(r.outcome, "unpinned", "{r:?}");
    let reads = ordered.reads.lock().unwrap().clone();
    assert_eq!(
        reads,
        vec![
            (AlarmState::Alarm, batches_before),
            (AlarmState::Alarm, batches_before),
            (AlarmState::Ok, batches_before)
        ],
        "no restoring batch while the alarm read ALARM"
    );
    let puts: Vec<f64> = ordered.seen.lock().unwrap().iter().map(|p| p.0).collect();
    assert_eq!(
        puts,
        vec![0.0, 0.0, 0.0],
        "the 0 put again before every read"
    );
    assert_eq!(
        w.dns.batches.lock().unwrap().len(),
        batches_before + 2,
        "two phases: the PRIMARY, then the SECONDARY"
    );
    assert_eq!(served(&w), vec![OLD_HOST], "the PRIMARY answers again");
    let st = w.ledger.get("orders").unwrap();
    assert!(st.unpin.as_ref().unwrap().switched_back_at.is_some());
}

/// The alarm never follows: the wait hands itself on across invocations (`UnpinContinued`, a stale
/// one ignored) until `thresholds.pin_deadline_secs` after the first 0, then ONE page
/// (`UnpinFailed`) saying the records stay pinned — and they do, both naming the writer.
#[tokio::test(start_paused = true)]
async fn a_switch_alarm_that_never_follows_pages_once_at_the_deadline_and_the_records_stay_pinned()
{
    use super::dataplane::served;
    let (mut w, _ordered, ev) = switch_pinned_failed_back().await;
    w.deps.clock = Arc::new(TokioClock {
        base: t0(),
        start: Instant::now(),
    });
    *w.switch.datapoints_to_alarm.lock().unwrap() = u32::MAX;
    let pinned = w.dns.records("Z0ORDERSEXAMPLE");
    let batches_before = w.dns.batches.lock().unwrap().len();
    let deadline = w
        .deps
        .cfg
        .site("orders")
        .unwrap()
        .thresholds
        .pin_deadline_secs;
    let mut event = ev;
    let mut first_continuation = None;
    let mut links = 0;
    let err = loop {
        links += 1;
        assert!(links < 200, "the chain does not end");
        match handle(&w.deps, event.clone(), later(INVOCATION)).await {
            Ok(r) => {
                assert_eq!(r.outcome, "continued", "{r:?}");
                let published = w.bus.published.lock().unwrap().clone();
                let next = published
                    .iter()
                    .rfind(|e| e.event_type == EventType::UnpinContinued)
                    .unwrap()
                    .clone();
                let mut v = event.clone();
                v["detail-type"] = json!("UnpinContinued");
                v["detail"] = serde_json::to_value(&next).unwrap();
                first_continuation.get_or_insert_with(|| event.clone());
                event = v;
            }
            Err(e) => break e,
        }
    };
    assert!(links > 2, "it continued itself ({links} invocations)");
    let PinError::Failed {
        error_type, reason, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(error_type, "Fatal.UnpinSwitchDeadline");
    assert!(
        reason.contains("NOT restored and stay pinned") && reason.contains(&format!("{deadline}")),
        "{reason}"
    );
    assert_eq!(
        w.dns.batches.lock().unwrap().len(),
        batches_before,
        "no batch"
    );
    assert_eq!(w.dns.records("Z0ORDERSEXAMPLE"), pinned);
    assert_eq!(served(&w), vec![NEW_HOST], "still the writer");
    let published = w.bus.published.lock().unwrap().clone();
    let pages: Vec<_> = published
        .iter()
        .filter(|e| e.event_type == EventType::UnpinFailed)
        .collect();
    assert_eq!(pages.len(), 1, "one page");
    // A stale continuation delivered again after the end changes nothing.
    let r = handle(&w.deps, first_continuation.unwrap(), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(r.outcome, "ignored", "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_data_plane_sites_unpin_puts_0_before_the_restoring_batch() {
    use super::dataplane::{served, switch_world};
    let mut w = switch_world(Some(std::time::Duration::ZERO));
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert_eq!(w.switch.puts.lock().unwrap().last().unwrap().1, 1.0);
    // Failed back by hand to orders-primary; the evaluator accepted `unpin`.
    let site = w.deps.cfg.site("orders").unwrap().clone();
    let mut st = w.ledger.get("orders").unwrap();
    st.phase = Phase::Completed;
    st.topology = Some(Topology {
        epoch: 3,
        primary: site.primary.clone(),
        endpoint: Some(format!("{OLD_HOST}:3306")),
        candidates: site.candidates.clone(),
        at: t0(),
        configured_primary: None,
    });
    w.ledger.put(st.clone());
    let cmd = failover_policy::parse_signal(&json!({
        "command": "unpin", "site": "orders", "operator": "alice", "reason": "failed back"
    }))
    .unwrap();
    let d = failover_policy::decide(&site, &cmd, None, &st, t0());
    assert!(d.next.is_some(), "{:?}", d.verdict);
    w.ledger.put(d.next.unwrap());
    let ordered = Arc::new(OrderedSwitch {
        inner: w.switch.clone(),
        dns: w.dns.clone(),
        seen: std::sync::Mutex::default(),
        reads: std::sync::Mutex::default(),
    });
    w.deps.switch = ordered.clone();
    let batches_before = w.dns.batches.lock().unwrap().len();
    let mut ev = unpin_requested();
    ev["detail"]["site"] = json!("orders");
    ev["detail"]["epoch"] = json!(3);

    let r = handle(&w.deps, ev, later(100)).await.unwrap();

    assert_eq!(r.outcome, "unpinned", "{r:?}");
    let seen = ordered.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(0.0, batches_before, vec![NEW_HOST.to_string()])],
        "one 0, put before the restoring batch, while the pinned records still served"
    );
    assert_eq!(w.dns.batches.lock().unwrap().len(), batches_before + 2);
    assert_eq!(served(&w), vec![OLD_HOST], "the PRIMARY answers again");
    let published = w.bus.published.lock().unwrap().clone();
    let ev = published.last().unwrap();
    assert_eq!(ev.event_type, EventType::DnsUnpinned);
    assert!(
        ev.verdict.summary.contains("switch set back")
            && ev.verdict.summary.contains("ServeSecondary"),
        "{}",
        ev.verdict.summary
    );
}

/// (operation, served values, batches so far, health read: healthy?)
type Noted = (&'static str, Vec<String>, usize, Option<bool>);

/// Route 53 as the pinner sees it, noting after every call what a resolver would be answered
/// (`FakeDns::served`), how many batches were sent, and what each health-status read said.
struct Watched {
    inner: Arc<dyn Dns>,
    fake: Arc<FakeDns>,
    log: std::sync::Mutex<Vec<Noted>>,
}

impl Watched {
    fn note(&self, op: &'static str, healthy: Option<bool>) {
        let served = self
            .fake
            .served("db.orders.example.com")
            .map(|r| r.values)
            .unwrap_or_default();
        let batches = self.fake.batches.lock().unwrap().len();
        self.log
            .lock()
            .unwrap()
            .push((op, served, batches, healthy));
    }
}

#[async_trait::async_trait]
impl Dns for Watched {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        let r = self.inner.record_sets(q).await;
        self.note("ListResourceRecordSets", None);
        r
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[failover_policy::pin::RecordChange],
        comment: &str,
    ) -> Result<failover_policy::pin::ChangeInfo, PortError> {
        let r = self.inner.change(zone_id, changes, comment).await;
        self.note("ChangeResourceRecordSets", None);
        r
    }
    async fn change_status(
        &self,
        change_id: &str,
    ) -> Result<failover_policy::pin::ChangeInfo, PortError> {
        let r = self.inner.change_status(change_id).await;
        self.note("GetChange", None);
        r
    }
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        self.inner.name_servers(zone_id).await
    }
    async fn health_check_status(
        &self,
        id: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        let r = self.inner.health_check_status(id).await;
        self.note("GetHealthCheckStatus", r.as_ref().ok().map(|s| s.healthy()));
        r
    }
}

/// The orders site pinned and failed back, `unpin` accepted, the PRIMARY's health check
/// following its alarm `lag` late; Route 53 watched.
async fn lagging_check(
    lag: std::time::Duration,
) -> (World, Arc<OrderedSwitch>, Arc<Watched>, Value) {
    let (mut w, ordered, ev) = switch_pinned_failed_back().await;
    *w.dns.health_lag.lock().unwrap() = lag;
    let watched = Arc::new(Watched {
        inner: w.deps.dns.clone(),
        fake: w.dns.clone(),
        log: std::sync::Mutex::default(),
    });
    w.deps.dns = watched.clone();
    (w, ordered, watched, ev)
}

/// H3: the alarm reads OK a minute before Route 53's check follows it. Restoring both records
/// then would have Route 53 answer the recorded SECONDARY — orders-replica-1, the demoted server.
/// The PRIMARY goes back first with the SECONDARY at the writer; the SECONDARY only after
/// GetHealthCheckStatus reads healthy; at no moment after the first batch is anything but the
/// writer served.
#[tokio::test(start_paused = true)]
async fn the_secondary_is_restored_only_once_route53_reports_the_primarys_check_healthy() {
    use super::dataplane::served;
    let (w, _ordered, watched, ev) = lagging_check(std::time::Duration::from_secs(60)).await;
    let recorded = w
        .ledger
        .get("orders")
        .unwrap()
        .original_dns
        .unwrap()
        .records;
    let before = w.dns.batches.lock().unwrap().len();

    let r = handle(&w.deps, ev, later(INVOCATION)).await.unwrap();

    assert_eq!(r.outcome, "unpinned", "{r:?}");
    let log = watched.log.lock().unwrap().clone();
    let first = log.iter().position(|l| l.2 > before).expect("a batch");
    for (op, served, batches, _) in &log[first..] {
        assert_eq!(
            served,
            &vec![OLD_HOST.to_string()],
            "after {op} ({batches} batches) a resolver is answered {served:?}, not the writer: {log:?}"
        );
    }
    let unhealthy_reads = log
        .iter()
        .filter(|l| l.3 == Some(false) && l.2 == before + 1)
        .count();
    assert!(unhealthy_reads > 0, "the check lagged: {log:?}");
    let healthy_at = log.iter().position(|l| l.3 == Some(true)).unwrap();
    let second = log.iter().position(|l| l.2 == before + 2).unwrap();
    assert!(
        healthy_at < second,
        "phase 2 only after a healthy read: {log:?}"
    );
    assert_eq!(w.dns.batches.lock().unwrap().len(), before + 2);
    let now = w.dns.records("Z0ORDERSEXAMPLE");
    assert!(
        recorded.len() == now.len()
            && recorded
                .iter()
                .all(|b| now.iter().any(|n| pin::same_record_set(n, b))),
        "the recorded pair is back: {now:?}"
    );
    assert_eq!(served(&w), vec![OLD_HOST]);
    let st = w.ledger.get("orders").unwrap();
    let u = st.unpin.unwrap();
    assert!(
        u.primary_change_id.is_some() && u.primary_restored_at.is_some() && u.restored_at.is_some()
    );
}

/// A Lambda killed between the two batches (the invocation dropped during the health wait):
/// the retry of the same event resumes at phase 2 — no second PRIMARY batch, no datapoint.
#[tokio::test(start_paused = true)]
async fn a_kill_between_the_two_batches_resumes_at_phase_2_without_resending_phase_1() {
    let (w, ordered, watched, ev) = lagging_check(std::time::Duration::from_secs(60)).await;
    let before = w.dns.batches.lock().unwrap().len();

    let killed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        handle(&w.deps, ev.clone(), later(INVOCATION)),
    )
    .await;

    assert!(
        killed.is_err(),
        "the invocation was still waiting: {killed:?}"
    );
    assert_eq!(
        w.dns.batches.lock().unwrap().len(),
        before + 1,
        "phase 1 only"
    );
    let u = w.ledger.get("orders").unwrap().unpin.unwrap();
    assert!(
        u.primary_restored_at.is_some() && u.change_id.is_none(),
        "{u:?}"
    );
    let puts = ordered.seen.lock().unwrap().len();
    let log_at_kill = watched.log.lock().unwrap().len();

    let r = handle(&w.deps, ev, later(INVOCATION)).await.unwrap();

    assert_eq!(r.outcome, "unpinned", "{r:?}");
    let batches = w.dns.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), before + 2, "one batch in the retry");
    let phase2 = &batches.last().unwrap().1;
    assert!(
        phase2
            .iter()
            .any(|c| c.action == failover_policy::pin::ChangeAction::Create
                && c.record.failover == Some(FailoverRole::Secondary)
                && c.record.values == vec![NEW_HOST.to_string()]),
        "the retry's batch restores the SECONDARY: {phase2:?}"
    );
    assert_eq!(
        ordered.seen.lock().unwrap().len(),
        puts,
        "no datapoint again"
    );
    let retry: Vec<_> = watched.log.lock().unwrap()[log_at_kill..].to_vec();
    assert_eq!(
        retry
            .iter()
            .filter(|l| l.0 == "ChangeResourceRecordSets")
            .count(),
        1,
        "{retry:?}"
    );
}

/// The check never turns healthy: handed on across invocations until
/// `thresholds.pin_deadline_secs` after phase 1, then ONE page; the SECONDARY stays at the
/// writer, which is safe (every answer Route 53 can give is the writer).
#[tokio::test(start_paused = true)]
async fn a_check_that_never_turns_healthy_pages_once_and_leaves_the_secondary_at_the_writer() {
    use super::dataplane::served;
    let (w, _ordered, _watched, ev) =
        lagging_check(std::time::Duration::from_secs(10_000_000)).await;
    let before = w.dns.batches.lock().unwrap().len();
    let mut event = ev;
    let mut links = 0;
    let err = loop {
        links += 1;
        assert!(links < 200, "the chain does not end");
        match handle(&w.deps, event.clone(), later(INVOCATION)).await {
            Ok(r) => {
                assert_eq!(r.outcome, "continued", "{r:?}");
                let next = w
                    .bus
                    .published
                    .lock()
                    .unwrap()
                    .iter()
                    .rfind(|e| e.event_type == EventType::UnpinContinued)
                    .unwrap()
                    .clone();
                let mut v = event.clone();
                v["detail-type"] = json!("UnpinContinued");
                v["detail"] = serde_json::to_value(&next).unwrap();
                event = v;
            }
            Err(e) => break e,
        }
    };
    assert!(links > 2, "it continued itself ({links} invocations)");
    let PinError::Failed {
        error_type, reason, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(error_type, "Fatal.UnpinHealthDeadline");
    assert!(
        reason.contains("hc-switch")
            && reason.contains("SECONDARY was NOT restored and stays at the writer"),
        "{reason}"
    );
    assert_eq!(
        w.dns.batches.lock().unwrap().len(),
        before + 1,
        "phase 1 only"
    );
    for r in w.dns.records("Z0ORDERSEXAMPLE") {
        assert_eq!(r.values, vec![OLD_HOST.to_string()], "{r:?}");
    }
    assert_eq!(served(&w), vec![OLD_HOST], "the writer");
    let published = w.bus.published.lock().unwrap().clone();
    let pages = published
        .iter()
        .filter(|e| e.event_type == EventType::UnpinFailed)
        .count();
    assert_eq!(pages, 1, "one page");
    // Re-review N1: the SECONDARY names the writer now, and so does the reading the next epoch
    // judges by with Route 53 dark (not the previous pin's DR host).
    let st = w.ledger.get("orders").unwrap();
    let reading = st
        .secondary_reading
        .expect("phase 1 records the SECONDARY it left");
    assert_eq!(reading.values, vec![OLD_HOST.to_string()], "{reading:?}");
}
