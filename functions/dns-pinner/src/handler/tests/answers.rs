//! What resolvers get (issue 14): the pin is only `DnsPinned` once every authoritative name server
//! answers the new primary, and the message says what was seen; a name already answering the new
//! primary in the other shape is done; no Route 53 call outlives the invocation's finish reserve.

use failover_policy::answer::AnswerRecord;

use super::*;

const STALE_NS: &str = "ns-2.awsdns-02.com";

fn pinned_summary(w: &World) -> String {
    w.bus
        .published
        .lock()
        .unwrap()
        .iter()
        .rfind(|e| e.event_type == EventType::DnsPinned)
        .map(|e| e.verdict.summary.clone())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn scenario_1_the_pin_is_verified_at_every_name_server_with_the_old_primary_unhealthy() {
    // The old primary's health check is unhealthy: the name servers answer with the SECONDARY,
    // which names a reader before the pin.
    let w = billing_world();
    w.dns.put(
        "Z0BILLINGEXAMPLE",
        failover(
            "billing-secondary",
            FailoverRole::Secondary,
            "billing-3.cdef.us-west-2.rds.amazonaws.com",
            "hc-secondary",
        ),
    );
    w.dns.unhealthy.lock().unwrap().insert("hc-primary".into());
    let before = w.dns.served("db.billing.example.com").unwrap();
    assert_eq!(before.failover, Some(FailoverRole::Secondary));

    let r = handle(
        &w.deps,
        replica_promoted("billing", 5, "billing-2"),
        later(100),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "pinned", "{r:?}");
    let served = w.dns.served("db.billing.example.com").unwrap();
    assert_eq!(
        served.values,
        vec![BILLING_NEW],
        "the SECONDARY answers the new primary"
    );
    // Every name server of the delegation set was asked both questions.
    let asked = w.dns.asked.lock().unwrap().clone();
    for ns in ["ns-1.awsdns-01.org", STALE_NS] {
        for t in ["CNAME", "A"] {
            assert!(
                asked.iter().any(|(s, _, q)| s == ns && q == t),
                "{ns} {t}: {asked:?}"
            );
        }
    }
    let msg = pinned_summary(&w);
    assert!(
        msg.contains(&format!("verified: db.billing.example.com CNAME {BILLING_NEW} TTL 30 from all 2 authoritative name servers")),
        "{msg}"
    );
    assert!(msg.contains("the previous record's TTL was 60 s"), "{msg}");
}

#[tokio::test(start_paused = true)]
async fn a_name_server_still_answering_the_old_primary_is_not_pinned_and_people_are_told_what_it_said(
) {
    let w = orders_world();
    w.dns.stale.lock().unwrap().insert(
        STALE_NS.into(),
        vec![AnswerRecord {
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

    assert_eq!(r.outcome, "continued", "{r:?}");
    assert_eq!(
        orders_record(&w).await.values,
        vec![NEW_HOST],
        "Route 53 holds the change"
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Promoted, "INSYNC alone is not DnsPinned");
    let said = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .rfind(|e| e.event_type == EventType::DnsPinContinued)
        .map(|e| e.verdict.summary.clone())
        .unwrap();
    assert!(
        said.contains(&format!("{STALE_NS} (A): CNAME {OLD_HOST}. TTL 300")),
        "{said}"
    );
    assert_eq!(count(&w.bus, "DnsPinned"), 0);

    // The server catches up: the continuation verifies and pins, with no second change.
    w.dns.stale.lock().unwrap().clear();
    let r = handle(&w.deps, continuation(&w), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(r.outcome, "pinned", "{r:?}");
    assert_eq!(w.dns.change_count(), 1);
    assert!(
        pinned_summary(&w).contains("from all 2 authoritative"),
        "{}",
        pinned_summary(&w)
    );
}

#[tokio::test(start_paused = true)]
async fn name_servers_the_site_names_are_asked_instead_of_the_delegation_set() {
    let mut w = orders_world();
    let site = w
        .deps
        .cfg
        .sites
        .iter_mut()
        .find(|s| s.id == "orders")
        .unwrap();
    site.dns.name_servers = vec!["127.0.0.1:5353".into()];

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(INVOCATION),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "pinned", "{r:?}");
    let asked: Vec<String> = w
        .dns
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.0.clone())
        .collect();
    assert_eq!(asked, vec!["127.0.0.1:5353", "127.0.0.1:5353"]);
    assert!(
        pinned_summary(&w).contains("(127.0.0.1:5353)"),
        "{}",
        pinned_summary(&w)
    );
}

#[tokio::test(start_paused = true)]
async fn failover_pin_finding_a_simple_cname_already_at_the_new_primary_is_done_and_recorded_so() {
    // billing is configured failover-pin, but someone already replaced the pair with a simple
    // CNAME to the promoted candidate.
    let w = world();
    w.ledger.put(promoted(
        "billing",
        5,
        "billing-2",
        &format!("{BILLING_NEW}:3306"),
    ));
    w.dns.put(
        "Z0BILLINGEXAMPLE",
        cname("db.billing.example.com", BILLING_NEW, 60),
    );

    let r = handle(
        &w.deps,
        replica_promoted("billing", 5, "billing-2"),
        later(100),
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "pinned", "{r:?}");
    assert_eq!(w.dns.change_count(), 0, "nothing to change");
    let msg = pinned_summary(&w);
    assert!(
        msg.contains("already answered")
            && msg.contains("as a simple CNAME, not the failover pair"),
        "{msg}"
    );
    assert!(msg.contains("verified:"), "{msg}");
}

/// Route 53 whose every call takes ten minutes to answer (a connection that hangs).
struct Route53Hangs {
    inner: Arc<FakeDns>,
}

impl Route53Hangs {
    async fn hang(&self) {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

#[async_trait::async_trait]
impl Dns for Route53Hangs {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        self.hang().await;
        self.inner.record_sets(q).await
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[pin::RecordChange],
        comment: &str,
    ) -> Result<pin::ChangeInfo, PortError> {
        self.hang().await;
        self.inner.change(zone_id, changes, comment).await
    }
    async fn change_status(&self, change_id: &str) -> Result<pin::ChangeInfo, PortError> {
        self.hang().await;
        self.inner.change_status(change_id).await
    }
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        self.hang().await;
        self.inner.name_servers(zone_id).await
    }
    async fn health_check_status(
        &self,
        id: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        self.hang().await;
        self.inner.health_check_status(id).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_route53_call_never_eats_the_finish_reserve() {
    let mut w = orders_world();
    w.deps.dns = Arc::new(Route53Hangs {
        inner: w.dns.clone(),
    });
    let start = Instant::now();
    let wait_until = later(INVOCATION) - FINISH_RESERVE;

    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        wait_until,
    )
    .await
    .unwrap();

    assert_eq!(r.outcome, "continued", "{r:?}");
    assert!(
        Instant::now() <= wait_until,
        "returned {:?} after the start, the wait deadline was {:?}",
        start.elapsed(),
        wait_until - start
    );
    assert!(r.detail.contains("ListResourceRecordSets"), "{}", r.detail);
}

/// Review finding: a private hosted zone has no delegation set, and its answers are served only
/// inside its VPCs. The pin must not wait forever for name servers that do not exist: the
/// records read back are its proof, and the message says DNS was not asked and why.
#[tokio::test(start_paused = true)]
async fn a_private_zone_without_name_servers_is_pinned_on_the_records_read_back_and_says_so() {
    let w = billing_world();
    w.dns.name_servers.lock().unwrap().clear();
    let r = handle(
        &w.deps,
        replica_promoted("billing", 5, "billing-2"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{r:?}");
    let summary = pinned_summary(&w);
    assert!(summary.contains("private hosted zone"), "{summary}");
    assert!(w.dns.asked.lock().unwrap().is_empty(), "no DNS query sent");
}

/// Medium (issue 14 review): the name servers are asked again right before a CRITICAL page about
/// a wrong answer (the escalations and the deadline), so the page states what they answer then.
#[tokio::test(start_paused = true)]
async fn the_name_servers_are_asked_again_right_before_a_page_about_a_wrong_answer() {
    let mut w = orders_world();
    w.deps.clock = Arc::new(TokioClock {
        base: t0(),
        start: Instant::now(),
    });
    w.dns.stale.lock().unwrap().insert(
        STALE_NS.into(),
        vec![AnswerRecord {
            name: "db.orders.example.com.".into(),
            record_type: "CNAME".into(),
            value: format!("{OLD_HOST}."),
            ttl: 300,
        }],
    );

    let (_, r) = run_chain(&w, 200).await;

    assert!(r.is_err(), "the deadline fails the epoch: {r:?}");
    let pages: Vec<String> = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e.event_type,
                EventType::DnsPinDelayed | EventType::FailoverFailed
            )
        })
        .map(|e| e.verdict.summary.clone())
        .collect();
    assert!(
        pages.len() >= 3,
        "two escalations and the deadline: {pages:?}"
    );
    for p in &pages {
        assert!(
            p.contains("(asked again just before this message)")
                && p.contains(&format!("{STALE_NS} (A): CNAME {OLD_HOST}. TTL 300")),
            "{p}"
        );
    }
    // A plain hand-on (no page due) does not ask again.
    let continued: Vec<String> = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == EventType::DnsPinContinued)
        .map(|e| e.verdict.summary.clone())
        .collect();
    assert!(
        continued.iter().any(|c| !c.contains("asked again")),
        "{continued:?}"
    );
}
