//! Issue 14's scenarios 1 and 3 over the faithful fakes: every answer Route 53 can give after a
//! failover-pin is the new primary (both members of the pair rewritten in one atomic batch), and a
//! human edit that lands between the pinner's read and its change fails the batch loudly instead
//! of being overwritten (Route 53's DELETE must match the current values exactly).

use super::*;

const READER: &str = "billing-3.cdef.us-west-2.rds.amazonaws.com";
const HUMAN: &str = "hand-picked.cdef.us-west-2.rds.amazonaws.com";

/// billing with its SECONDARY pointing at a reader, not at the promoted candidate.
fn billing_secondary_elsewhere() -> World {
    let w = billing_world();
    w.dns.put(
        "Z0BILLINGEXAMPLE",
        failover(
            "billing-secondary",
            FailoverRole::Secondary,
            READER,
            "hc-secondary",
        ),
    );
    w
}

#[tokio::test(start_paused = true)]
async fn scenario_1_after_a_failover_pin_every_answer_route53_can_give_is_the_new_primary() {
    // GIVEN the PRIMARY's health check watches the old primary (unhealthy: Route 53 answers with
    // the SECONDARY) and the SECONDARY names a reader.
    let w = billing_secondary_elsewhere();
    // WHEN the pinner pins.
    let r = handle(
        &w.deps,
        replica_promoted("billing", 5, "billing-2"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{r:?}");
    // THEN both answers — PRIMARY (healthy) and SECONDARY (PRIMARY unhealthy) — are the new
    // primary, each record keeping its role and health check, changed in ONE batch.
    let records = w.dns.records("Z0BILLINGEXAMPLE");
    assert_eq!(records.len(), 2);
    for (set, role, hc) in [
        ("billing-primary", FailoverRole::Primary, "hc-primary"),
        ("billing-secondary", FailoverRole::Secondary, "hc-secondary"),
    ] {
        let rec = records
            .iter()
            .find(|r| r.set_identifier.as_deref() == Some(set))
            .unwrap();
        assert_eq!(rec.values, vec![BILLING_NEW], "{set}");
        assert_eq!(
            (rec.failover, rec.health_check_id.as_deref(), rec.ttl),
            (Some(role), Some(hc), Some(30)),
            "{set}"
        );
    }
    let batches = w.dns.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "one atomic change batch");
    let actions: Vec<_> = batches[0].1.iter().map(|c| c.action).collect();
    use pin::ChangeAction::{Create, Delete};
    assert_eq!(actions, vec![Delete, Create, Delete, Create]);
    // The ledger keeps both members as they were, for failback.
    let d = w.ledger.get("billing").unwrap().dns.unwrap();
    let prev = d.previous_records.unwrap();
    assert!(prev.iter().any(|r| r.values == [READER]), "{prev:?}");
    let pinned = w.bus.published.lock().unwrap().clone();
    let msg = &pinned.last().unwrap().verdict.summary;
    assert!(
        msg.contains(
            "PRIMARY SetIdentifier billing-primary and SECONDARY SetIdentifier billing-secondary"
        ),
        "{msg}"
    );
}

/// Route 53 as a human sees it: just before the pinner's change arrives, someone UPSERTs the
/// writer record by hand.
struct HumanEditsFirst {
    inner: Arc<FakeDns>,
    zone: &'static str,
    edit: RecordSet,
}

#[async_trait::async_trait]
impl Dns for HumanEditsFirst {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        self.inner.record_sets(q).await
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[pin::RecordChange],
        comment: &str,
    ) -> Result<pin::ChangeInfo, PortError> {
        self.inner.put(self.zone, self.edit.clone());
        self.inner.change(zone_id, changes, comment).await
    }
    async fn change_status(&self, change_id: &str) -> Result<pin::ChangeInfo, PortError> {
        self.inner.change_status(change_id).await
    }
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        self.inner.name_servers(zone_id).await
    }
    async fn health_check_status(
        &self,
        id: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        self.inner.health_check_status(id).await
    }
}

#[tokio::test(start_paused = true)]
async fn scenario_3_a_human_edit_between_read_and_change_fails_the_batch_and_is_not_overwritten() {
    for site in ["orders", "billing"] {
        let mut w = if site == "orders" {
            orders_world()
        } else {
            billing_secondary_elsewhere()
        };
        let (zone, edit, epoch, candidate) = if site == "orders" {
            (
                "Z0ORDERSEXAMPLE",
                cname("db.orders.example.com", HUMAN, 60),
                3,
                "orders-replica-1",
            )
        } else {
            (
                "Z0BILLINGEXAMPLE",
                failover(
                    "billing-secondary",
                    FailoverRole::Secondary,
                    HUMAN,
                    "hc-secondary",
                ),
                5,
                "billing-2",
            )
        };
        w.deps.dns = Arc::new(HumanEditsFirst {
            inner: w.dns.clone(),
            zone,
            edit: edit.clone(),
        });
        let e = handle(
            &w.deps,
            replica_promoted(site, epoch, candidate),
            later(100),
        )
        .await
        .unwrap_err();
        // THEN the change failed loudly with a typed error, ...
        assert_eq!(
            e.error_type(),
            "Fatal.RecordChangedConcurrently",
            "{site}: {e}"
        );
        // ... nothing the human wrote was overwritten and nothing of the batch applied, ...
        let now = w.dns.records(zone);
        assert!(
            now.contains(&RecordSet {
                name: format!("{}.", edit.name),
                ..edit.clone()
            }),
            "{site}: {now:?}"
        );
        assert!(
            now.iter().all(
                |r| !r.values.iter().any(|v| v == NEW_HOST || v == BILLING_NEW)
                    || r.set_identifier.as_deref() == Some("billing-secondary")
            ),
            "{site}: {now:?}"
        );
        assert_eq!(w.dns.change_count(), 0, "{site}: no batch was accepted");
        // ... and people are told what is there now.
        let st = w.ledger.get(site).unwrap();
        assert_eq!(st.phase, Phase::Failed, "{site}");
        assert_eq!(w.bus.types(), vec!["FailoverFailed"], "{site}");
        let msg = w.bus.published.lock().unwrap()[0].verdict.summary.clone();
        assert!(
            msg.contains("changed by someone else")
                && msg.contains(HUMAN)
                && msg.contains("Nothing was overwritten"),
            "{site}: {msg}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_human_edit_after_the_previous_record_was_recorded_is_not_overwritten_by_a_continuation()
{
    // GIVEN an attempt recorded the record as it was, then Route 53's change API failed.
    let w = orders_world();
    w.dns
        .faults
        .inject("ChangeResourceRecordSets", ErrorKind::Throttled, 1_000);
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(20),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "continued", "{r:?}");
    // WHEN a human repoints the name by hand, and Route 53 recovers.
    w.dns
        .put("Z0ORDERSEXAMPLE", cname("db.orders.example.com", HUMAN, 60));
    w.dns.faults.clear();
    let e = handle(&w.deps, continuation(&w), later(100))
        .await
        .unwrap_err();
    // THEN the continuation does not overwrite it: the epoch fails, people are told.
    assert_eq!(e.error_type(), "Fatal.RecordChangedConcurrently", "{e}");
    assert_eq!(orders_record(&w).await.values, vec![HUMAN]);
    assert_eq!(w.dns.change_count(), 0);
    assert_eq!(count(&w.bus, "FailoverFailed"), 1);
}
