//! The second SRE review of the data-plane switch (issue 14): what the switch saw after the put,
//! an unacknowledged put, the tool's own SECONDARY reading, the answer verified at the deadline.

use super::dataplane::{metric, secondary_at, served, summaries, switch_world, HUMAN};
use super::*;

/// Finding 1: Route 53 dark, no reading on record (the SECONDARY is NOT checked), the SECONDARY
/// re-pointed at a third host C. The put latches the alarm and the name servers answer C: that
/// is neither the old PRIMARY nor the new writer, so the pinner pages CRITICAL at once naming
/// what each server answers, puts 0 back (traffic off C) and never puts 1 again for the epoch.
#[tokio::test(start_paused = true)]
async fn a_third_host_answering_after_the_put_pages_at_once_and_the_switch_is_put_back() {
    let w = switch_world(None);
    w.dns.put("Z0ORDERSEXAMPLE", secondary_at(HUMAN));

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "continued", "{}", r.detail);
    let puts = w.switch.puts.lock().unwrap().clone();
    assert_eq!(
        puts[..2],
        [(metric(), 1.0), (metric(), 0.0)],
        "put, then put back at once"
    );
    assert!(
        puts[2..].iter().all(|p| p.1 == 0.0),
        "0 again on every try: {puts:?}"
    );
    assert_eq!(served(&w), vec![OLD_HOST], "traffic is off the third host");
    let pages: Vec<String> = summaries(&w, EventType::DnsPinDelayed)
        .into_iter()
        .filter(|p| p.starts_with(failover_policy::dataplane::WRONG_ANSWER))
        .collect();
    let [page] = &pages[..] else {
        panic!("one wrong-answer page: {:?}", w.bus.types())
    };
    assert!(
        page.contains(&format!("{NS_ONE} (CNAME): CNAME {HUMAN}"))
            && page.contains("neither the old primary")
            && page.contains("put back to 0")
            && page.contains("SECONDARY record is wrong"),
        "{page}"
    );
    let st = w.ledger.get("orders").unwrap();
    let sw = st
        .data_plane_switch
        .as_ref()
        .expect("the put stays on record");
    assert!(
        sw.observed.as_ref().is_some_and(|o| o.seen.contains(HUMAN)),
        "{sw:?}"
    );
    // The chain goes on with the records only: never 1 again, 0 again on every try, never a
    // second page. Put back, the switch is no way to the writer: at the deadline the epoch is
    // `failed` (DNS not pinned), and that page states what the name servers answered.
    let (_, last) = run_chain_from(&w, continuation(&w), 200).await;
    let e = last.unwrap_err();
    assert_eq!(e.error_type(), "Fatal.PinDeadline", "{e}");
    let puts = w.switch.puts.lock().unwrap().clone();
    assert_eq!(puts.iter().filter(|p| p.1 == 1.0).count(), 1, "{puts:?}");
    assert!(
        puts.iter().skip(2).all(|p| p.1 == 0.0) && puts.len() > 2,
        "{puts:?}"
    );
    assert_eq!(served(&w), vec![OLD_HOST]);
    let pages = summaries(&w, EventType::DnsPinDelayed);
    assert_eq!(
        pages
            .iter()
            .filter(|p| p.starts_with(failover_policy::dataplane::WRONG_ANSWER))
            .count(),
        1,
        "{pages:?}"
    );
    let [failed] = &summaries(&w, EventType::FailoverFailed)[..] else {
        panic!("one FailoverFailed: {:?}", w.bus.types())
    };
    assert!(
        failed.contains("name servers last answered") && failed.contains(HUMAN),
        "{failed}"
    );
    assert!(!failed.contains("MAY MOVE AT ANY MOMENT"), "{failed}");
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Failed);
}

const NS_ONE: &str = "ns-1.awsdns-01.org";

async fn run_chain_from(
    w: &World,
    mut ev: Value,
    max: usize,
) -> (usize, Result<Response, PinError>) {
    for n in 1..=max {
        let r = handle(&w.deps, ev.clone(), later(INVOCATION)).await;
        match &r {
            Ok(resp) if resp.outcome == "continued" => ev = continuation(w),
            _ => return (n, r),
        }
    }
    panic!("still continuing after {max} invocations");
}

/// The name servers' answers, stale (the old primary) for the first `after` queries, then as the
/// zone serves them: a name server catching up between the last verification and the re-ask.
struct CatchesUp {
    inner: Arc<FakeDns>,
    after: usize,
    asked: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl failover_adapters::resolve::Resolve for CatchesUp {
    async fn ask(&self, server: &str, name: &str, record_type: &str) -> answer::Answer {
        let n = self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n >= self.after {
            self.inner.stale.lock().unwrap().clear();
        }
        self.inner.ask(server, name, record_type).await
    }
}

/// Finding 5: past the pin deadline, the records changed and INSYNC, the name server still
/// answering the old primary at the attempt's verification; asked again just before the deadline
/// page it answers the new writer. That is a verified pin: `dns-pinned`, never `failed`.
#[tokio::test(start_paused = true)]
async fn an_answer_verified_by_the_re_ask_at_the_deadline_commits_the_pin() {
    let mut w = orders_world();
    let mut st = w.ledger.get("orders").unwrap();
    for t in st.timeline.iter_mut() {
        t.at -= chrono::Duration::days(1);
    }
    let p = st.promotion.as_mut().unwrap();
    p.completed_at = p.completed_at.map(|t| t - chrono::Duration::days(1));
    w.ledger.put(st);
    w.dns.insync_after_polls(0);
    let site = w
        .deps
        .cfg
        .sites
        .iter_mut()
        .find(|s| s.id == "orders")
        .unwrap();
    site.dns.name_servers = vec![NS_ONE.into()];
    w.dns.stale.lock().unwrap().insert(
        NS_ONE.into(),
        vec![answer::AnswerRecord {
            name: "db.orders.example.com.".into(),
            record_type: "CNAME".into(),
            value: format!("{OLD_HOST}."),
            ttl: 300,
        }],
    );
    // One verification round (CNAME and A) stale, then caught up.
    w.deps.resolve = Arc::new(CatchesUp {
        inner: w.dns.clone(),
        after: answer::QUERY_TYPES.len(),
        asked: Default::default(),
    });

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        // Less than the first backoff (0.5 s at least): one attempt, then the hand-on.
        Instant::now() + std::time::Duration::from_millis(400),
    )
    .await;

    let r = r.unwrap();
    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
    assert_eq!(count(&w.bus, "FailoverFailed"), 0, "{:?}", w.bus.types());
    let [pinned] = &summaries(&w, EventType::DnsPinned)[..] else {
        panic!("one DnsPinned: {:?}", w.bus.types())
    };
    assert!(
        pinned.contains(&format!("verified: db.orders.example.com CNAME {NEW_HOST}"))
            && pinned.contains("asked again"),
        "{pinned}"
    );
}

/// Finding 3: the switch is refused (the SECONDARY names a third host), the records path pins
/// both records to the writer (the tool's own batch), the name server lags so the pin is handed
/// on. The continuation must not read the tool's own SECONDARY back as a reason to put the
/// switch, nor store it as the reading; the reading the pin leaves is what the pin wrote.
#[tokio::test(start_paused = true)]
async fn the_tools_own_secondary_write_never_lifts_a_refusal_nor_poisons_the_reading() {
    let w = switch_world(Some(std::time::Duration::ZERO));
    w.dns.put("Z0ORDERSEXAMPLE", secondary_at(HUMAN));
    w.dns.stale.lock().unwrap().insert(
        NS_ONE.into(),
        vec![answer::AnswerRecord {
            name: "db.orders.example.com.".into(),
            record_type: "CNAME".into(),
            value: format!("{OLD_HOST}."),
            ttl: 300,
        }],
    );

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "continued", "{}", r.detail);
    assert!(w.switch.puts.lock().unwrap().is_empty());
    assert_eq!(
        super::dataplane::values(&w),
        vec![vec![NEW_HOST], vec![NEW_HOST]],
        "the tool's own batch pinned both"
    );
    let reading = |w: &World| w.ledger.get("orders").unwrap().secondary_reading.unwrap();
    assert_eq!(
        reading(&w).values,
        vec![HUMAN],
        "what was read before the batch"
    );

    // The continuation: the SECONDARY now names the writer, by the tool's own write.
    let r = handle(&w.deps, continuation(&w), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(r.outcome, "continued", "{}", r.detail);
    assert!(
        w.switch.puts.lock().unwrap().is_empty(),
        "the refusal stands for the epoch: {:?}",
        w.switch.puts.lock().unwrap()
    );
    assert_eq!(
        reading(&w).values,
        vec![HUMAN],
        "never the tool's own write"
    );

    // The name server catches up: pinned; the reading is now what the pin wrote, said so.
    w.dns.stale.lock().unwrap().clear();
    let r = handle(&w.deps, continuation(&w), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert!(w.switch.puts.lock().unwrap().is_empty());
    let st = w.ledger.get("orders").unwrap();
    let reading = st.secondary_reading.unwrap();
    assert_eq!(reading.values, vec![NEW_HOST]);
    assert_eq!(reading.epoch, 3);
    assert_eq!(refusals(&w), 1, "paged once");
}

fn refusals(w: &World) -> usize {
    summaries(w, EventType::DnsPinDelayed)
        .iter()
        .filter(|p| p.starts_with(failover_policy::secondary::SWITCH_REFUSED))
        .count()
}

/// Finding 2: CloudWatch refuses every put (AccessDenied) and Route 53 refuses the records. The
/// intent keeps the epoch from `failed` (a put may land), but nothing may say the switch was put:
/// the page says it was NOT confirmed, what CloudWatch said, and the exact command to put it.
#[tokio::test(start_paused = true)]
async fn a_switch_cloudwatch_never_acknowledged_is_paged_as_not_confirmed_with_the_command() {
    let (w, _) = super::dataplane::flaky_world(super::dataplane::Api::Denied);
    w.switch
        .faults
        .inject("PutMetricData", ErrorKind::AccessDenied, 1000);

    let e = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap_err();

    assert_eq!(e.error_type(), "Fatal.AccessDenied", "{e}");
    assert!(w.switch.puts.lock().unwrap().is_empty(), "nothing was put");
    assert_eq!(served(&w), vec![OLD_HOST]);
    let st = w.ledger.get("orders").unwrap();
    let sw = st
        .data_plane_switch
        .as_ref()
        .expect("the intent is on record");
    assert!(sw.put_only && sw.acked_at.is_none(), "{sw:?}");
    assert!(
        sw.put_error
            .as_deref()
            .is_some_and(|e| e.contains("PutMetricData")),
        "{sw:?}"
    );
    let cmd = "aws cloudwatch put-metric-data --region us-west-2 --namespace RdsFailover/Switch --metric-name ServeSecondary --dimensions Site=orders --value 1";
    let pages = summaries(&w, EventType::DnsPinDelayed);
    let [page] = &pages[..] else {
        panic!("one page: {pages:?}")
    };
    let pinned = summaries(&w, EventType::DnsPinned);
    for m in pages.iter().chain(&pinned) {
        assert!(
            m.contains("switch was NOT confirmed")
                && m.contains("CloudWatch never acknowledged")
                && m.contains(cmd)
                && !m.contains("the switch metric was put")
                && !m.contains("MAY MOVE AT ANY MOMENT"),
            "{m}"
        );
    }
    assert!(!page.contains("do NOT set it back"), "{page}");
}

/// The switch as CloudWatch sees it, checking from inside the put that the intent is already in
/// the ledger (finding 7: the H1 ordering, caught where it matters); `hang` puts that never
/// answer, standing for an invocation killed between the intent and the put.
struct OrderedSwitch {
    inner: Arc<FakeSwitch>,
    ledger: Arc<FakeLedger>,
    hang: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl failover_adapters::switch::MetricSwitch for OrderedSwitch {
    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<(), PortError> {
        if value == failover_policy::dataplane::SWITCH_TO_SECONDARY {
            let st = self.ledger.get("orders").unwrap();
            assert!(
                st.data_plane_switch
                    .as_ref()
                    .is_some_and(|s| s.epoch == st.epoch),
                "PutMetricData sent before the intent was in the ledger"
            );
        }
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.put(metric, value).await
    }
    async fn alarm_state(
        &self,
        metric: &SwitchMetric,
    ) -> Result<failover_policy::signal::AlarmState, PortError> {
        self.inner.alarm_state(metric).await
    }
}

/// Finding 7: the intent is in the ledger before every put; an invocation killed between the
/// intent and the put leaves it there, and Lambda's re-delivery resumes from it: the switch is
/// put, seen, and reported once.
#[tokio::test(start_paused = true)]
async fn the_intent_precedes_every_put_and_a_kill_between_them_resumes() {
    let mut w = switch_world(None);
    let ordered = Arc::new(OrderedSwitch {
        inner: w.switch.clone(),
        ledger: w.ledger.clone(),
        hang: true.into(),
    });
    w.deps.switch = ordered.clone();

    // Killed: the invocation never gets past the put.
    let killed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        handle(
            &w.deps,
            replica_promoted("orders", 3, "orders-replica-1"),
            later(INVOCATION),
        ),
    )
    .await;
    assert!(killed.is_err(), "the invocation was killed in the put");
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Promoted);
    let sw = st.data_plane_switch.as_ref().expect("the intent survived");
    assert!(sw.put_only && sw.acked_at.is_none(), "{sw:?}");
    assert!(w.switch.puts.lock().unwrap().is_empty());

    // Lambda re-delivers the same event: resumed from the intent.
    ordered
        .hang
        .store(false, std::sync::atomic::Ordering::SeqCst);
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
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
    let sw = st.data_plane_switch.as_ref().unwrap();
    assert!(!sw.put_only && sw.acked_at.is_some(), "{sw:?}");
    assert_eq!(count(&w.bus, "DnsPinned"), 1);
}

/// Finding 4: with Route 53's API dark, a reading of the SECONDARY older than
/// `thresholds.secondary_reading_max_age_secs` (7 days by default) decides nothing: the switch is
/// put as NOT checked, and the message says how old the reading was.
#[tokio::test(start_paused = true)]
async fn a_reading_older_than_a_week_is_not_trusted_and_the_message_says_its_age() {
    let w = switch_world(None);
    let mut st = w.ledger.get("orders").unwrap();
    st.secondary_reading = Some(failover_policy::secondary::SecondaryReading {
        values: vec![NEW_HOST.into()],
        at: t0() - chrono::Duration::days(8),
        epoch: 2,
    });
    w.ledger.put(st);

    handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(*w.switch.puts.lock().unwrap(), vec![(metric(), 1.0)]);
    let [pinned] = &summaries(&w, EventType::DnsPinned)[..] else {
        panic!("one DnsPinned: {:?}", w.bus.types())
    };
    assert!(
        pinned.contains("the SECONDARY was NOT checked")
            && pinned.contains("older than thresholds.secondary_reading_max_age_secs")
            && !pinned.contains("NOT read now"),
        "{pinned}"
    );
}
