//! Scenario 3 of issue 13, the crash matrix: the evaluator's invocation is killed (its future
//! dropped, as Lambda's timeout or a crash ends it) at every call it makes to the ledger, the bus,
//! RDS (the fence's parameter group) and the old primary's or the target's SQL during a
//! switchover; the next ticks restart from the ledger. Invariants, at every crash point and at the
//! end: the promotion is released only while the old primary is read-only in its group and on
//! its server (never two writers); the switchover converges (`done` after the promoter's and the
//! pinner's entries) or rolls back with the old primary writable and DNS never asked.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use failover_adapters::fence::{FenceControl, OldPrimarySql, Sessions};
use failover_adapters::ports::{EventBus, Ledger, PortError};
use failover_policy::config::{DbRef, SiteConfig};
use failover_policy::fence::{AttachedGroup, FencedFirst};
use failover_policy::gtid::Position;
use failover_policy::switchover::SwPhase;
use failover_policy::DomainEvent;
use tokio::sync::Notify;

use super::switchover::fenced_world;
use super::*;

/// Lets `left` calls through, then never answers the next one and says so (the test drops the
/// invocation there: a crash between two calls).
struct Crash {
    left: AtomicUsize,
    calls: AtomicUsize,
    hit: Notify,
}

impl Crash {
    fn after(k: usize) -> Arc<Self> {
        Arc::new(Self {
            left: AtomicUsize::new(k),
            calls: AtomicUsize::new(0),
            hit: Notify::new(),
        })
    }
    async fn gate(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            self.hit.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

struct C<T: ?Sized>(Arc<T>, Arc<Crash>);

#[async_trait]
impl Ledger for C<dyn Ledger> {
    async fn load(&self, site: &str) -> Result<SiteState, PortError> {
        self.1.gate().await;
        self.0.load(site).await
    }
    async fn commit(&self, next: &SiteState) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.commit(next).await
    }
    async fn in_flight(&self) -> Result<Vec<SiteState>, PortError> {
        self.1.gate().await;
        self.0.in_flight().await
    }
}

#[async_trait]
impl EventBus for C<dyn EventBus> {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.publish(events).await
    }
}

#[async_trait]
impl FenceControl for C<dyn FenceControl> {
    async fn parameter_groups(&self, db: &DbRef) -> Result<Option<Vec<AttachedGroup>>, PortError> {
        self.1.gate().await;
        self.0.parameter_groups(db).await
    }
    async fn set_read_only(&self, region: &str, group: &str) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.set_read_only(region, group).await
    }
    async fn set_writable(&self, region: &str, group: &str) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.set_writable(region, group).await
    }
    async fn restore_read_only(
        &self,
        region: &str,
        group: &str,
        value: Option<&str>,
    ) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.restore_read_only(region, group, value).await
    }
    async fn read_only_in_group(
        &self,
        region: &str,
        group: &str,
    ) -> Result<Option<String>, PortError> {
        self.1.gate().await;
        self.0.read_only_in_group(region, group).await
    }
    async fn create_snapshot(&self, db: &DbRef, id: &str) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.create_snapshot(db, id).await
    }
    async fn snapshot_status(&self, region: &str, id: &str) -> Result<Option<String>, PortError> {
        self.1.gate().await;
        self.0.snapshot_status(region, id).await
    }
    async fn stop(&self, db: &DbRef) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.stop(db).await
    }
    async fn security_groups(
        &self,
        db: &DbRef,
    ) -> Result<Option<Vec<(String, String)>>, PortError> {
        self.1.gate().await;
        self.0.security_groups(db).await
    }
    async fn quarantine(&self, db: &DbRef, sg: &str) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.quarantine(db, sg).await
    }
    async fn replication_source(
        &self,
        db: &DbRef,
    ) -> Result<Option<failover_adapters::fence::SourceInfo>, PortError> {
        self.1.gate().await;
        self.0.replication_source(db).await
    }
    async fn enable_backups(&self, db: &DbRef, days: u32) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.enable_backups(db, days).await
    }
    async fn create_read_replica(
        &self,
        r: &failover_adapters::fence::ReplicaRequest,
    ) -> Result<(), PortError> {
        self.1.gate().await;
        self.0.create_read_replica(r).await
    }
}

#[async_trait]
impl OldPrimarySql for C<dyn OldPrimarySql> {
    async fn read_only(&self, site: &SiteConfig, ep: &str) -> Result<bool, PortError> {
        self.1.gate().await;
        self.0.read_only(site, ep).await
    }
    async fn end_sessions(&self, site: &SiteConfig, ep: &str) -> Result<Sessions, PortError> {
        self.1.gate().await;
        self.0.end_sessions(site, ep).await
    }
    async fn position(&self, site: &SiteConfig, ep: &str) -> Result<Option<Position>, PortError> {
        self.1.gate().await;
        self.0.position(site, ep).await
    }
    async fn capture(&self, site: &SiteConfig, ep: &str) -> Result<Position, PortError> {
        self.1.gate().await;
        self.0.capture(site, ep).await
    }
    async fn wait_applied(
        &self,
        site: &SiteConfig,
        ep: &str,
        position: &Position,
        secs: u64,
    ) -> Result<Position, PortError> {
        self.1.gate().await;
        self.0.wait_applied(site, ep, position, secs).await
    }
}

/// `w`'s ports behind `crash`.
fn crashing(w: &World, crash: &Arc<Crash>) -> Deps {
    let d = &w.deps;
    Deps {
        cfg: d.cfg.clone(),
        cfg_object_version: None,
        topology: d.topology.clone(),
        metrics: d.metrics.clone(),
        ledger: Arc::new(C(d.ledger.clone(), crash.clone())),
        bus: Arc::new(C(d.bus.clone(), crash.clone())),
        canary: d.canary.clone(),
        clock: d.clock.clone(),
        fanout: d.fanout,
        fence: Arc::new(C(d.fence.clone(), crash.clone())),
        old_primary: Arc::new(C(d.old_primary.clone(), crash.clone())),
        rechecks: d.rechecks.clone(),
        metric_lines: d.metric_lines.clone(),
    }
}

/// One invocation, killed at its `k`-th port call (`usize::MAX`: runs to the end). Whether it
/// was killed, and how many calls it made.
async fn invoke(w: &World, event: Value, k: usize) -> (bool, usize) {
    let crash = Crash::after(k);
    let deps = crashing(w, &crash);
    let killed = tokio::select! {
        biased;
        _ = crash.hit.notified() => true,
        _ = handle(&deps, event) => false,
    };
    (killed, crash.calls.load(Ordering::SeqCst))
}

/// The old primary is fenced: `read_only=1` in its group and on its server.
fn old_fenced(w: &World) -> bool {
    let group = w.fence.state.lock().unwrap().values.get(GROUP).cloned();
    group.as_deref() == Some("1") && w.old_primary.state.lock().unwrap().read_only
}

/// The promoter's and the pinner's part, once the switchover releases the promotion: what they
/// record. Returns a broken invariant if the release happened while the old primary could write.
fn promoter_and_pinner(w: &World) -> Option<String> {
    let mut st = w.ledger.get("orders").unwrap();
    let sw = st.switchover.clone()?;
    if st.phase != Phase::Promoting || st.promotion.is_some() || sw.phase != SwPhase::Promoting {
        return None;
    }
    if !matches!(
        failover_policy::fence::fenced_first(&st),
        FencedFirst::Done(_)
    ) || failover_policy::switchover::holds_promotion(&st).is_some()
    {
        return None;
    }
    if !old_fenced(w) {
        return Some(format!(
            "promotion released while the old primary can write (group {:?}, server read_only {})",
            w.fence.state.lock().unwrap().values.get(GROUP),
            w.old_primary.state.lock().unwrap().read_only
        ));
    }
    let now = w.clock.now();
    st.promotion = Some(failover_policy::incident::PromotionRecord {
        epoch: st.epoch,
        candidate: sw.target.clone(),
        action: "PromoteReadReplica".into(),
        requested_at: now,
        completed_at: Some(now),
        endpoint: Some("orders-replica-1.x.us-west-2.rds.amazonaws.com:3306".into()),
        writable_verified_at: Some(now),
        resolved: None,
    });
    st.dns = Some(
        serde_json::from_value(json!({
            "epoch": st.epoch, "zone_id": "Z1", "name": "orders-writer.", "record_type": "CNAME",
            "previous_values": ["orders-primary.x"], "new_value": "orders-replica-1.x",
            "insync_at": aws_time(now)
        }))
        .unwrap(),
    );
    st.version += 1;
    w.ledger.put(st);
    None
}

const GROUP: &str = "orders-primary-params";

/// Runs one case: the command, then ticks, the `k`-th port call of invocation `victim` killed.
async fn case(applied: &str, victim: usize, k: usize) -> (Vec<String>, SwPhase, bool) {
    let w = fenced_world(applied);
    let mut broken = vec![];
    let mut killed_any = false;
    let cmd = json!({"command": "switchover", "site": "orders", "candidate": "orders-replica-1",
                     "reason": "planned move", "max_wait_secs": 30, "operator": "alice"});
    for n in 0..12 {
        let ev = if n == 0 {
            cmd.clone()
        } else {
            w.clock.advance(10);
            tick_event(&format!("c{n}"), w.clock.now())
        };
        let (killed, _) = invoke(&w, ev, if n == victim { k } else { usize::MAX }).await;
        killed_any |= killed;
        if n == 0 && killed {
            // A command lost to a crash is sent again (the operator's retry, Lambda's).
            invoke(&w, cmd.clone(), usize::MAX).await;
        }
        broken.extend(promoter_and_pinner(&w));
        let st = w.ledger.get("orders").unwrap();
        if st.promotion.is_some() && !old_fenced(&w) {
            broken.push(format!(
                "tick {n}: the target is promoted and the old primary can write"
            ));
        }
        if st
            .switchover
            .as_ref()
            .is_some_and(|s| s.phase.is_terminal())
        {
            break;
        }
    }
    let st = w.ledger.get("orders").unwrap();
    let phase = st
        .switchover
        .as_ref()
        .map(|s| s.phase)
        .unwrap_or(SwPhase::Fencing);
    match phase {
        SwPhase::Done => {}
        SwPhase::RolledBack => {
            if st.dns.is_some() || st.promotion.is_some() {
                broken.push("rolled back after the promotion or DNS".into());
            }
            if w.old_primary.state.lock().unwrap().read_only {
                broken.push("rolled back but the old primary is still read-only".into());
            }
        }
        p => broken.push(format!("did not converge: {p}")),
    }
    (broken, phase, killed_any)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn scenario_3_a_crash_at_every_call_of_the_switchover_converges_or_rolls_back_never_two_writers() {
    use failover_adapters::interleave::run_isolated;
    let mut report = vec![];
    for (applied, want) in [("0-1-105", SwPhase::Done), ("0-1-100", SwPhase::RolledBack)] {
        let (mut cases, mut failures) = (0usize, vec![]);
        // Every invocation of the run (the command, then each tick) and every call in it.
        for victim in 0..6 {
            for k in 0..40 {
                let ran = run_isolated(runtime, || case(applied, victim, k));
                match ran {
                    Ok((_, _, false)) => break, // the invocation made fewer than k calls
                    Ok((b, phase, true)) => {
                        cases += 1;
                        if !b.is_empty() {
                            failures.push(format!("{applied} invocation {victim} call {k}: {b:?}"));
                        } else if phase != want {
                            failures.push(format!(
                                "{applied} invocation {victim} call {k}: ended {phase}, expected {want}"
                            ));
                        }
                    }
                    Err(_) => {
                        failures.push(format!("{applied} invocation {victim} call {k}: panicked"))
                    }
                }
            }
        }
        report.push(format!(
            "target at {applied}: {cases} crash points, {} broken",
            failures.len()
        ));
        assert!(cases > 20, "{applied}: too few crash points ({cases})");
        assert!(failures.is_empty(), "{failures:#?}");
    }
    println!("scenario 3 crash matrix: {}", report.join("; "));
}
