//! Two deliveries of the same ReplicaPromoted racing, at every interleaving of their AWS calls
//! that one preemption can produce: X makes its first `i` port calls (ledger, bus, Route 53), Y
//! its first `j`, then X runs to the end, then Y (`failover_adapters::interleave`). EventBridge
//! delivers at least once and Lambda runs duplicates side by side, so each (i, j) is a schedule
//! production can take. Both writer-record modes: CNAME swap (orders) and failover-record pin
//! (billing). After both answers (and Lambda's retry of a retryable one), whatever the schedule:
//! - the epoch ends `dns-pinned`, never `failed`, and no FailoverFailed is emitted;
//! - every record set of the writer name (both members of a failover pair) holds the new primary,
//!   each with its identity (set, health check) kept, and nothing else in the zone changed; the
//!   name changed value exactly once — a duplicate may resend a same-value compare-and-set batch
//!   (counted), never another value;
//! - the ledger keeps the record's *original* previous values (what failback restores), its
//!   committed phases only move promoted → dns-pinned, and the pinned record names the change
//!   that went INSYNC;
//! - every DnsPinned published is this epoch's, and at least one is.
//!
//! The figures are what the cases observed: a panic in a case is caught and counted; a mutation
//! is a change of the writer record beyond the one to the new primary (another value, or a
//! second change of value); a duplicate counts as collapsed when the pair together made one
//! Route 53 change and published one DnsPinned — the second delivery visibly did nothing.

use failover_adapters::interleave::{broken, gated, run_isolated, Scheduler, WHO};
use failover_policy::pin::RecordChange;

use super::*;

const EPOCHS: [(&str, u64, &str, &str); 2] = [
    ("orders", 3, "orders-replica-1", "Z0ORDERSEXAMPLE"),
    ("billing", 5, "billing-2", "Z0BILLINGEXAMPLE"),
];

/// A fresh world for `site` whose ledger, bus and Route 53 wait for the scheduler; changes stay
/// PENDING for two polls, so the duplicate can meet the change in flight.
fn racing_world(site: &str, s: &Arc<Scheduler>) -> World {
    let mut w = if site == "orders" {
        orders_world()
    } else {
        billing_world()
    };
    w.dns.insync_after_polls(2);
    let d = &mut w.deps;
    d.ledger = gated(d.ledger.clone(), s);
    d.bus = gated(d.bus.clone(), s);
    d.dns = gated(d.dns.clone(), s);
    w
}

/// Runs X and Y under the schedule; a retryable failure is delivered again, as Lambda does.
async fn race(w: &World, ev: &Value, s: &Arc<Scheduler>) -> [String; 2] {
    let run = |who: usize| {
        WHO.scope(who, async move {
            let r = handle(&w.deps, ev.clone(), later(100)).await;
            s.finished(who);
            r
        })
    };
    let (x, y) = tokio::join!(run(0), run(1));
    let mut answers = [String::new(), String::new()];
    for (k, r) in [x, y].into_iter().enumerate() {
        answers[k] = match r {
            Ok(r) => r.outcome.to_string(),
            Err(e) if e.error_type().starts_with("Retryable.") => {
                let again = WHO.scope(k, handle(&w.deps, ev.clone(), later(100))).await;
                format!("{e} then {:?}", again.map(|r| r.outcome))
            }
            Err(e) => panic!("invocation {k} failed: {e:?}"),
        };
    }
    answers
}

/// The value each accepted batch that touched the writer name gave it: every record set a batch
/// creates must get the same value (both members of a failover pair), else `["<mixed>"]`.
fn value_history(batches: &[(String, Vec<RecordChange>)], q: &RecordQuery) -> Vec<Vec<String>> {
    batches
        .iter()
        .filter_map(|(_, changes)| {
            let mut set: Vec<&Vec<String>> = changes
                .iter()
                .filter(|c| {
                    pin::same_name(&c.record.name, &q.name) && c.action != pin::ChangeAction::Delete
                })
                .map(|c| &c.record.values)
                .collect();
            set.dedup();
            match set.as_slice() {
                [] => None,
                [one] => Some((*one).clone()),
                _ => Some(vec!["<mixed>".to_owned()]),
            }
        })
        .collect()
}

/// A fresh current-thread runtime with tokio's clock paused (the backoff sleeps instantly).
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// What one schedule observed.
struct Observed {
    broken: Vec<String>,
    answers: [String; 2],
    resent: usize,
    unwanted: usize,
    collapsed: bool,
}

#[test]
fn duplicate_promotions_racing_at_every_interleaving_pin_once_and_keep_what_failback_needs() {
    let (mut cases, mut wrong, mut resent, mut panics, mut mutations, mut collapsed) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let mut failures: Vec<String> = vec![];
    for (site, epoch, candidate, zone) in EPOCHS {
        let ev = replica_promoted(site, epoch, candidate);
        let (old, new) = if site == "orders" {
            (OLD_HOST, NEW_HOST)
        } else {
            (BILLING_OLD, BILLING_NEW)
        };
        // How many port calls one delivery makes alone: the schedules' horizon.
        let (n, before) = run_isolated(paused_runtime, || async {
            let solo = Arc::new(Scheduler::new(usize::MAX, 0));
            let w = racing_world(site, &solo);
            let r = WHO.scope(0, handle(&w.deps, ev.clone(), later(100))).await;
            assert_eq!(r.unwrap().outcome, "pinned");
            (solo.calls()[0], w.dns.records(zone))
        })
        .expect("the solo run does not panic");
        assert!(n >= 6, "{site}: a pin makes several calls ({n})");

        for i in 0..=n {
            for j in 1..=n {
                cases += 1;
                let ran = run_isolated(paused_runtime, || async {
                    let s = Arc::new(Scheduler::new(i, j));
                    let w = racing_world(site, &s);
                    let answers = race(&w, &ev, &s).await;

                    let st = w.ledger.get(site).unwrap();
                    let q = pin::query(w.deps.cfg.site(site).unwrap());
                    let after = w.dns.records(zone);
                    let record = after.clone();
                    let history = value_history(&w.dns.batches.lock().unwrap(), &q);
                    let mut transitions = 0usize;
                    let mut value = vec![old.to_owned()];
                    for v in &history {
                        if !v.iter().zip(&value).all(|(a, b)| pin::same_name(a, b)) {
                            transitions += 1;
                            value = v.clone();
                        }
                    }
                    let is_new = |v: &Vec<String>| v.len() == 1 && pin::same_name(&v[0], new);
                    // Unwanted: a change to anything but the new primary, or a second change of value.
                    let unwanted = history.iter().filter(|v| !is_new(v)).count()
                        + transitions.saturating_sub(1);
                    let pinned = published_types(&w.bus, "DnsPinned");
                    let phases: Vec<Phase> = w
                        .ledger
                        .commits
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|c| c.phase)
                        .collect();
                    let d = st.dns.clone();
                    let identity_kept = |r: &RecordSet| {
                        let was = before
                            .iter()
                            .find(|b| b.set_identifier == r.set_identifier)
                            .unwrap();
                        r.health_check_id == was.health_check_id && r.failover == was.failover
                    };
                    let broken = broken([
                        (
                            st.phase == Phase::DnsPinned,
                            format!("ends {} ({:?})", st.phase, st.failure),
                        ),
                        (
                            count(&w.bus, "FailoverFailed") == 0,
                            "FailoverFailed emitted".into(),
                        ),
                        (
                            record.iter().all(|r| {
                                r.values.len() == 1
                                    && pin::same_name(&r.values[0], new)
                                    && identity_kept(r)
                            }),
                            format!("writer record sets {record:?}"),
                        ),
                        (
                            after.len() == before.len()
                                && after
                                    .iter()
                                    .filter(|r| !pin::same_name(&r.name, &q.name))
                                    .all(|r| before.contains(r)),
                            format!("other records changed: {after:?}"),
                        ),
                        (
                            transitions == 1 && history.iter().all(|v| v == &value),
                            format!("writer values over time {history:?}"),
                        ),
                        (
                            d.as_ref().is_some_and(|d| {
                                d.epoch == epoch
                                    && d.previous_values == [old]
                                    && pin::same_name(&d.new_value, new)
                                    && d.insync_at.is_some()
                                    && d.change_id.is_some()
                            }),
                            format!("ledger DNS record {d:?}"),
                        ),
                        (
                            !pinned.is_empty() && pinned.iter().all(|e| *e == epoch),
                            format!("DnsPinned epochs {pinned:?}"),
                        ),
                        (
                            phases.windows(2).all(|p| {
                                p[0] == p[1] || (p[0], p[1]) == (Phase::Promoted, Phase::DnsPinned)
                            }),
                            format!("ledger phases {phases:?}"),
                        ),
                    ]);
                    Observed {
                        broken,
                        answers,
                        resent: history.len() - transitions,
                        unwanted,
                        collapsed: history.len() == 1 && pinned.len() == 1,
                    }
                });
                let case = format!("{site}: X {i} calls, Y {j} calls, then X, then Y");
                let o = match ran {
                    Ok(o) => o,
                    Err(_) => {
                        panics += 1;
                        wrong += 1;
                        failures.push(format!("{case}: PANIC"));
                        continue;
                    }
                };
                resent += o.resent;
                mutations += o.unwanted;
                collapsed += usize::from(o.collapsed);
                if !o.broken.is_empty() {
                    wrong += 1;
                    failures.push(format!("{case} → {:?}: {}", o.answers, o.broken.join("; ")));
                }
            }
        }
    }
    // The figures (RELIABILITY.md), written before the verdict so a failure shows in the report.
    let figures = json!({
        "suite": "dns-interleavings",
        "cases": cases, "panics": panics, "mutations": mutations,
        "duplicates_collapsed": collapsed, "faults_injected": 0,
        "convergences": cases - wrong, "consistent_stops": 0, "wrong_actions": wrong,
        "notes": format!(
            "a case = two deliveries of one ReplicaPromoted racing under one schedule: X makes its first i AWS \
             calls, Y its first j, then X, then Y (every i, j up to a solo run's calls; CNAME swap and failover-record \
             pin) over the handler's fakes; converged = epoch dns-pinned, the writer record changed value once to the \
             new primary with its identity kept, the original previous values kept for failback; a mutation = the \
             writer record changed to another value or a second time; a duplicate collapsed = the pair made one \
             Route 53 change and published one DnsPinned; same-value compare-and-set batches \
             a duplicate resent (harmless, counted apart from mutations): {resent}"
        ),
    });
    failover_adapters::figures::write_reliability_figures("dns-interleavings", &figures);
    eprintln!("{cases} schedules explored, {wrong} wrong, {resent} same-value batches resent");
    assert!(
        failures.is_empty(),
        "{} of {cases} schedules broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        (panics, mutations),
        (0, 0),
        "observed panics and unwanted DNS changes"
    );
    assert!(cases > 50, "{cases} schedules");
}

/// The epochs of the published events of one detail-type.
fn published_types(bus: &FakeBus, t: &str) -> Vec<u64> {
    bus.published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type.detail_type() == t)
        .map(|e| e.epoch)
        .collect()
}
