//! Deterministic interleavings of two concurrent invocations, for tests: every port a handler is
//! given is wrapped in [`Gated`], which waits for its invocation's turn under a [`Scheduler`]
//! before calling the fake behind it. A schedule `(i, j)` lets X make its first `i` port calls,
//! then Y its first `j`, then X runs to the end, then Y: every schedule with one preemption, the
//! shape of a duplicate delivery overtaking another. Each invocation runs inside
//! `WHO.scope(0 | 1, ...)` on one task (`tokio::join!`), so the order is exact and repeatable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use failover_policy::config::{DbRef, SiteConfig};
use failover_policy::pin::{ChangeInfo, RecordChange, RecordQuery, RecordSet};
use failover_policy::signal::AlarmState;
use failover_policy::{DomainEvent, SiteState};
use tokio::sync::Notify;

use crate::control::{DatabaseControl, MutationAck, WritabilityCheck};
use crate::dns::Dns;
use crate::mysql::Writability;
use crate::ports::{
    ClusterInfo, DatabaseTopology, EventBus, GlobalClusterInfo, InstanceInfo, LagMetric, Ledger,
    Metrics, PortError,
};

tokio::task_local! {
    /// Which of the two racing invocations is calling: 0 = X, 1 = Y.
    pub static WHO: usize;
}

/// The schedule: (whose turn, how many calls it may make in it; `usize::MAX` = to the end).
struct Turns {
    plan: Vec<(usize, usize)>,
    at: usize,
    taken: usize,
    done: [bool; 2],
    calls: [usize; 2],
}

pub struct Scheduler {
    turns: Mutex<Turns>,
    /// Wakes the waiting invocation when the turn may have changed hands. Waiting on it (not
    /// spinning) leaves the runtime idle while the one whose turn it is sleeps, so tokio's paused
    /// clock can advance through that sleep.
    changed: Notify,
}

impl Scheduler {
    /// X makes `i` calls, Y `j`, then X to the end, then Y; `new(usize::MAX, 0)` = X alone.
    pub fn new(i: usize, j: usize) -> Self {
        Self {
            turns: Mutex::new(Turns {
                plan: vec![(0, i), (1, j), (0, usize::MAX), (1, usize::MAX)],
                at: 0,
                taken: 0,
                done: [false; 2],
                calls: [0; 2],
            }),
            changed: Notify::new(),
        }
    }

    /// Waits until the calling invocation may make its next port call.
    pub async fn turn(&self) {
        let who = WHO.try_with(|w| *w).unwrap_or(0);
        loop {
            if self.take(who) {
                return;
            }
            // Not ours: the turn may just have passed to the other one (this call is past our
            // limit), so wake it — before registering, or the wake-up would be our own — then
            // wait for it to hand the turn back or finish.
            self.changed.notify_waiters();
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.take(who) {
                return;
            }
            changed.await;
        }
    }

    /// Takes one call of the current turn if it is `who`'s.
    fn take(&self, who: usize) -> bool {
        let mut t = self.turns.lock().unwrap();
        while t.at < t.plan.len() {
            let (owner, limit) = t.plan[t.at];
            if t.done[owner] || t.taken >= limit {
                t.at += 1;
                t.taken = 0;
            } else {
                break;
            }
        }
        if t.at >= t.plan.len() || t.plan[t.at].0 == who {
            t.taken += 1;
            t.calls[who] += 1;
            return true;
        }
        false
    }

    /// Invocation `who` has answered: its turns pass to the other.
    pub fn finished(&self, who: usize) {
        self.turns.lock().unwrap().done[who] = true;
        self.changed.notify_waiters();
    }

    /// How many port calls X and Y made.
    pub fn calls(&self) -> [usize; 2] {
        self.turns.lock().unwrap().calls
    }
}

/// The invariants a schedule broke: the message of every check that does not hold.
pub fn broken(checks: impl IntoIterator<Item = (bool, String)>) -> Vec<String> {
    checks
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, why)| why)
        .collect()
}

/// A port that waits for its invocation's turn, then calls the fake behind it.
pub struct Gated<T: ?Sized> {
    inner: Arc<T>,
    s: Arc<Scheduler>,
}

/// `inner` behind the scheduler.
pub fn gated<T: ?Sized>(inner: Arc<T>, s: &Arc<Scheduler>) -> Arc<Gated<T>> {
    Arc::new(Gated {
        inner,
        s: s.clone(),
    })
}

#[async_trait]
impl Ledger for Gated<dyn Ledger> {
    async fn load(&self, site: &str) -> Result<SiteState, PortError> {
        self.s.turn().await;
        self.inner.load(site).await
    }
    async fn commit(&self, next: &SiteState) -> Result<(), PortError> {
        self.s.turn().await;
        self.inner.commit(next).await
    }
}

#[async_trait]
impl EventBus for Gated<dyn EventBus> {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PortError> {
        self.s.turn().await;
        self.inner.publish(events).await
    }
}

#[async_trait]
impl DatabaseTopology for Gated<dyn DatabaseTopology> {
    async fn instance(&self, db: &DbRef) -> Result<Option<InstanceInfo>, PortError> {
        self.s.turn().await;
        self.inner.instance(db).await
    }
    async fn cluster(&self, id: &str, region: &str) -> Result<Option<ClusterInfo>, PortError> {
        self.s.turn().await;
        self.inner.cluster(id, region).await
    }
    async fn global_cluster(
        &self,
        id: &str,
        region: &str,
    ) -> Result<Option<GlobalClusterInfo>, PortError> {
        self.s.turn().await;
        self.inner.global_cluster(id, region).await
    }
}

#[async_trait]
impl Metrics for Gated<dyn Metrics> {
    async fn alarm_states(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, AlarmState>, PortError> {
        self.s.turn().await;
        self.inner.alarm_states(region, names).await
    }
    async fn replica_lag(
        &self,
        db: &DbRef,
        metric: LagMetric,
        now: DateTime<Utc>,
    ) -> Result<Option<failover_policy::evidence::LagReading>, PortError> {
        self.s.turn().await;
        self.inner.replica_lag(db, metric, now).await
    }
}

#[async_trait]
impl DatabaseControl for Gated<dyn DatabaseControl> {
    async fn promote_read_replica(&self, i: &DbRef) -> Result<MutationAck, PortError> {
        self.s.turn().await;
        self.inner.promote_read_replica(i).await
    }
    async fn failover_db_cluster(
        &self,
        c: &str,
        r: &str,
        t: &str,
    ) -> Result<MutationAck, PortError> {
        self.s.turn().await;
        self.inner.failover_db_cluster(c, r, t).await
    }
    async fn switchover_global_cluster(
        &self,
        g: &str,
        r: &str,
        t: &str,
    ) -> Result<MutationAck, PortError> {
        self.s.turn().await;
        self.inner.switchover_global_cluster(g, r, t).await
    }
    async fn failover_global_cluster(
        &self,
        g: &str,
        r: &str,
        t: &str,
        a: bool,
    ) -> Result<MutationAck, PortError> {
        self.s.turn().await;
        self.inner.failover_global_cluster(g, r, t, a).await
    }
    async fn reboot_with_failover(&self, i: &DbRef) -> Result<MutationAck, PortError> {
        self.s.turn().await;
        self.inner.reboot_with_failover(i).await
    }
}

#[async_trait]
impl WritabilityCheck for Gated<dyn WritabilityCheck> {
    async fn check(&self, site: &SiteConfig, endpoint: &str) -> Result<Writability, PortError> {
        self.s.turn().await;
        self.inner.check(site, endpoint).await
    }
    async fn position(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<failover_policy::gtid::Position>, PortError> {
        self.s.turn().await;
        self.inner.position(site, endpoint).await
    }
}

#[async_trait]
impl Dns for Gated<dyn Dns> {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        self.s.turn().await;
        self.inner.record_sets(q).await
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeInfo, PortError> {
        self.s.turn().await;
        self.inner.change(zone_id, changes, comment).await
    }
    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo, PortError> {
        self.s.turn().await;
        self.inner.change_status(change_id).await
    }
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        self.s.turn().await;
        self.inner.name_servers(zone_id).await
    }
    async fn health_check_status(
        &self,
        health_check_id: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        self.s.turn().await;
        self.inner.health_check_status(health_check_id).await
    }
}

/// Runs one case on a runtime of its own (`runtime` builds it: the suites pause tokio's clock,
/// which needs tokio's `test-util`) and catches a panic in it, so a suite counts the panics it
/// observed instead of dying at the first one — or writing a zero it never measured.
///
/// The case runs on a thread of its own with a 16 MiB stack: a handler's whole invocation polled
/// as one unoptimised (debug) future nests deeply enough to overflow the 2 MiB a test thread gets.
pub fn run_isolated<Fut, Out>(
    runtime: impl FnOnce() -> tokio::runtime::Runtime + Send,
    case: impl FnOnce() -> Fut + Send,
) -> std::thread::Result<Out>
where
    Fut: std::future::Future<Output = Out>,
    Out: Send,
{
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("interleaving-case".into())
            .stack_size(16 << 20)
            .spawn_scoped(scope, || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runtime().block_on(case())
                }))
            })
            .expect("spawn the case's thread")
            .join()
            .unwrap_or_else(Err)
    })
}
