//! Two deliveries of the same FailoverDecided racing, at every interleaving of their AWS calls
//! that one preemption can produce: X makes its first `i` port calls, Y makes its first `j`, then
//! X runs to the end, then Y. EventBridge delivers at least once and Lambda runs duplicates side
//! by side, so each (i, j) is a schedule production can take; the storm suite (tests/test_storm.py)
//! found one of them against the emulator, after the fact — this explores them all, per engine
//! kind, deterministically.
//!
//! Every port the handler is given (ledger, bus, topology, metrics, RDS mutations, the write
//! check) waits for its turn (`failover_adapters::interleave`). After both answers
//! (and Lambda's retry of a delivery that lost too many compare-and-set races, and the
//! continuation events the bus carries), whatever the schedule:
//! - exactly one promotion mutation was sent, and only after the ledger recorded the request;
//! - the epoch ends `promoted` at the verified endpoint: a duplicate never fails it;
//! - no FailoverFailed is emitted, and every ReplicaPromoted is the same epoch's;
//! - the ledger's committed phases only move promoting → promoted.
//!
//! The figures are what the cases observed: a panic in a case is caught and counted; a mutation
//! is a promotion sent beyond the first; a duplicate counts as collapsed when the pair together
//! sent one promotion and published one ReplicaPromoted — the second delivery visibly did nothing.

use failover_adapters::interleave::{broken, gated, run_isolated, Scheduler, WHO};

use super::*;

/// The engine kinds, as the happy-path tests set them up: (site, epoch, promotion API, endpoint
/// the writer name goes to — an Aurora cluster's writer endpoint for the Aurora kinds).
/// (site, epoch, promotion API, the writer name's endpoint).
type EngineCase = (&'static str, u64, &'static str, fn() -> String);

const ENGINES: [EngineCase; 4] = [
    ("orders", 3, "PromoteReadReplica", || ep("orders-replica-1")),
    ("billing", 2, "FailoverDBCluster", || cep("billing-cluster")),
    ("payments", 5, "FailoverGlobalCluster", || {
        cep("payments-west")
    }),
    ("inventory", 1, "RebootDBInstance", || ep("inventory-db")),
];

/// A fresh world for `site` whose ports wait for the scheduler; the topology moves one step per
/// `polls` describes, so the duplicate can meet the promotion at every status it passes through.
fn racing_world(site: &str, epoch: u64, s: &Arc<Scheduler>) -> (World, DomainEvent) {
    let mut w = world();
    if matches!(site, "orders" | "payments") {
        w.topology.kill_region("us-east-1");
    }
    w.control.inner.set_polls_per_phase(2);
    let e = w.decided(site, epoch);
    let d = &mut w.deps;
    d.ledger = gated(d.ledger.clone(), s);
    d.bus = gated(d.bus.clone(), s);
    d.topology = gated(d.topology.clone(), s);
    d.metrics = gated(d.metrics.clone(), s);
    d.control = gated(d.control.clone(), s);
    d.writability = gated(d.writability.clone(), s);
    (w, e)
}

/// Runs X and Y under schedule (i, j), then what AWS would deliver next; returns both answers.
async fn race(w: &World, e: &DomainEvent, s: &Arc<Scheduler>) -> [String; 2] {
    let run = |who: usize| {
        WHO.scope(who, async move {
            let r = w.invoke(e, LONG).await;
            s.finished(who);
            r
        })
    };
    let (x, y) = tokio::join!(run(0), run(1));
    let mut answers = [String::new(), String::new()];
    for (k, r) in [x, y].into_iter().enumerate() {
        answers[k] = match r {
            Ok(r) => format!("{:?}", r.outcome),
            // Lambda retries a delivery that lost every compare-and-set race.
            Err(err) if err.error_type().starts_with("Retryable.") => {
                let again = WHO.scope(k, w.invoke(e, LONG)).await;
                format!("{err} then {:?}", again.map(|r| r.outcome))
            }
            Err(err) => panic!("invocation {k} failed: {err:?}"),
        };
    }
    // Out of budget (the two share the virtual clock, so each one's waits use up the other's
    // time too): the bus carries PromotionContinued to the next invocation, until none is left.
    let mut delivered = 0;
    for _ in 0..20 {
        let next: Vec<DomainEvent> = w.bus.published.lock().unwrap()[delivered..].to_vec();
        delivered += next.len();
        let continued: Vec<_> = next
            .into_iter()
            .filter(|c| c.event_type == EventType::PromotionContinued)
            .collect();
        if continued.is_empty() {
            return answers;
        }
        for c in continued {
            WHO.scope(0, w.invoke(&c, LONG)).await.unwrap();
        }
    }
    panic!("the promotion never settled: {answers:?}")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// What one schedule observed.
struct Observed {
    broken: Vec<String>,
    answers: [String; 2],
    extra_promotions: usize,
    failed_epoch: bool,
    collapsed: bool,
}

#[test]
fn duplicate_decisions_racing_at_every_interleaving_promote_once_and_never_fail_the_epoch() {
    let (mut cases, mut wrong, mut extra_promotions, mut failed_epochs) = (0, 0, 0, 0);
    let (mut panics, mut collapsed) = (0usize, 0usize);
    let mut failures: Vec<String> = vec![];
    for (site, epoch, api, endpoint) in ENGINES {
        // How many port calls one delivery makes alone: the schedules' horizon.
        let n = run_isolated(runtime, || async {
            let solo = Arc::new(Scheduler::new(usize::MAX, 0));
            let (w, e) = racing_world(site, epoch, &solo);
            WHO.scope(0, w.invoke(&e, LONG)).await.unwrap();
            solo.calls()[0]
        })
        .expect("the solo run does not panic");
        assert!(n >= 5, "{site}: a promotion makes several calls ({n})");

        for i in 0..=n {
            for j in 1..=n {
                cases += 1;
                let ran = run_isolated(runtime, || async {
                    let s = Arc::new(Scheduler::new(i, j));
                    let (w, e) = racing_world(site, epoch, &s);
                    let answers = race(&w, &e, &s).await;

                    let mutations = w.mutations();
                    let st = w.state(site);
                    let rec = st.promotion.clone();
                    let promoted = published(&w, EventType::ReplicaPromoted);
                    let phases: Vec<Phase> = w
                        .ledger
                        .commits
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|c| c.phase)
                        .collect();
                    let broken = broken([
                        (
                            mutations.len() == 1,
                            format!("promotion mutations {mutations:?}"),
                        ),
                        (
                            *w.control.recorded_before.lock().unwrap() == [true],
                            "a mutation not preceded by its recorded request".into(),
                        ),
                        (
                            st.phase == Phase::Promoted,
                            format!("ends {} ({:?})", st.phase, st.failure),
                        ),
                        (
                            rec.as_ref().is_some_and(|r| {
                                r.action == api
                                    && r.endpoint == Some(endpoint())
                                    && r.writable_verified_at.is_some()
                            }),
                            format!("promotion record {rec:?}"),
                        ),
                        (
                            published(&w, EventType::FailoverFailed).is_empty(),
                            "FailoverFailed emitted".into(),
                        ),
                        (
                            !promoted.is_empty() && promoted.iter().all(|p| p.epoch == epoch),
                            format!("{} ReplicaPromoted", promoted.len()),
                        ),
                        (
                            phases.windows(2).all(|p| {
                                p[0] == p[1] || (p[0], p[1]) == (Phase::Promoting, Phase::Promoted)
                            }),
                            format!("ledger phases {phases:?}"),
                        ),
                    ]);
                    Observed {
                        broken,
                        answers,
                        extra_promotions: mutations.len().saturating_sub(1),
                        failed_epoch: st.phase == Phase::Failed,
                        collapsed: mutations.len() == 1 && promoted.len() == 1,
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
                extra_promotions += o.extra_promotions;
                failed_epochs += usize::from(o.failed_epoch);
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
        "suite": "interleavings",
        "cases": cases, "panics": panics, "mutations": extra_promotions,
        "duplicates_collapsed": collapsed, "faults_injected": 0,
        "convergences": cases - wrong, "consistent_stops": 0, "wrong_actions": wrong,
        "notes": format!(
            "a case = two deliveries of one FailoverDecided racing under one schedule: X makes its first i AWS \
             calls, Y its first j, then X, then Y (every i, j up to a solo run's calls; RDS read replica, Aurora \
             cluster, Aurora Global, Multi-AZ) over the handler's fakes; converged = one promotion, epoch promoted \
             at the verified endpoint, no FailoverFailed; a mutation = a promotion sent beyond the first; a duplicate \
             collapsed = the pair sent one promotion and published one ReplicaPromoted; epochs failed by a duplicate: \
             {failed_epochs}"
        ),
    });
    failover_adapters::figures::write_reliability_figures("interleavings", &figures);
    eprintln!("{cases} schedules explored, {wrong} wrong");
    assert!(
        failures.is_empty(),
        "{} of {cases} schedules broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        (panics, extra_promotions),
        (0, 0),
        "observed panics and extra promotions"
    );
    assert!(cases > 100, "{cases} schedules");
}
