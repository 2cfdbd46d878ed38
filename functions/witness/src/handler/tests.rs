//! Handler tests over the fakes: what one invocation probes and publishes, at what cadence, and
//! what a dark DR region or hostile input does to it.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use failover_adapters::fakes::FakeCanary;
use failover_adapters::ports::Clock;
use failover_adapters::witness::{FakeProbeSink, FakeTcpProbe, METRIC_TCP, METRIC_UP};
use serde_json::json;

use super::*;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");

/// Wall-clock time that follows tokio's (paused) clock, so the rounds' timestamps show the cadence.
struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }
}

struct World {
    deps: Deps,
    canary: Arc<FakeCanary>,
    tcp: Arc<FakeTcpProbe>,
    sink: Arc<FakeProbeSink>,
}

fn world() -> World {
    let canary = Arc::new(FakeCanary::default());
    let tcp = Arc::new(FakeTcpProbe::default());
    let sink = Arc::new(FakeProbeSink::default());
    for site in ["orders", "billing", "payments", "inventory"] {
        canary.set(site, CanaryResult::Reachable { latency_ms: 3 });
        tcp.set(site, CanaryResult::Reachable { latency_ms: 1 });
    }
    let deps = Deps {
        cfg: Config::from_document(EXAMPLE).unwrap(),
        vantage: "us-east-2".into(),
        metrics_region: "us-west-2".into(),
        canary: canary.clone(),
        tcp: tcp.clone(),
        sink: sink.clone(),
        clock: Arc::new(TokioClock {
            base: Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap(),
            start: tokio::time::Instant::now(),
        }),
        rounds: 6,
        interval: Duration::from_secs(10),
    };
    World {
        deps,
        canary,
        tcp,
        sink,
    }
}

fn scheduled() -> Value {
    json!({"version": "0", "id": "s-1", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": "2026-11-24T10:00:00Z", "region": "us-east-2",
           "resources": [], "detail": {}})
}

#[tokio::test(start_paused = true)]
async fn one_invocation_publishes_a_sample_per_site_every_ten_seconds_into_the_dr_region() {
    let w = world();
    // orders' primary is gone; payments' name does not resolve from here (unknown).
    w.canary.set(
        "orders",
        CanaryResult::Unreachable {
            error: "no connection within 2000 ms".into(),
        },
    );
    w.tcp.set(
        "orders",
        CanaryResult::Unreachable {
            error: "no TCP connection within 2000 ms".into(),
        },
    );
    let unresolved = CanaryResult::Unknown {
        reason: "name resolution failed".into(),
    };
    w.canary.set("payments", unresolved.clone());
    w.tcp.set("payments", unresolved);
    // billing's canary password was rotated: the server answers 1045, so it is up.
    w.canary.set(
        "billing",
        CanaryResult::Answered {
            code: Some(1045),
            error: "Access denied".into(),
        },
    );

    let r = handle(&w.deps, scheduled()).await.unwrap();

    assert_eq!(r.rounds.len(), 6);
    let gaps: Vec<i64> = r
        .rounds
        .windows(2)
        .map(|p| (p[1].at - p[0].at).num_seconds())
        .collect();
    assert_eq!(gaps, vec![10; 5], "a 10 s cadence");
    assert!(r.rounds.iter().all(|x| x.publish_error.is_none()));
    let dp = w.sink.datapoints.lock().unwrap().clone();
    assert!(dp.iter().all(|d| d.0 == "us-west-2" && d.2 == "us-east-2"));
    assert_eq!(
        w.sink.values("orders", "us-east-2", METRIC_UP),
        vec![0.0; 6]
    );
    assert_eq!(
        w.sink.values("orders", "us-east-2", METRIC_TCP),
        vec![0.0; 6]
    );
    assert_eq!(
        w.sink.values("billing", "us-east-2", METRIC_UP),
        vec![1.0; 6]
    );
    assert_eq!(
        w.sink.values("inventory", "us-east-2", METRIC_UP),
        vec![1.0; 6]
    );
    assert!(
        w.sink.values("payments", "us-east-2", METRIC_UP).is_empty(),
        "unknown publishes nothing: the DR-region alarm reads missing data, not up or down"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dark_dr_region_loses_the_samples_not_the_rounds() {
    let w = world();
    w.sink.dead_regions.lock().unwrap().push("us-west-2".into());
    let r = handle(&w.deps, scheduled()).await.unwrap();
    assert_eq!(r.rounds.len(), 6);
    assert!(r.rounds.iter().all(|x| x
        .publish_error
        .as_deref()
        .is_some_and(|e| e.contains("us-west-2"))));
    assert!(w.sink.datapoints.lock().unwrap().is_empty());
}

/// A blackholed path to the DR region: each PutMetricData hangs for the SDK's whole operation
/// timeout (15 s). A 10 s cadence must not stretch to 15 s (six rounds would then need 90 s, past
/// the 70 s function timeout, and the DR-side alarms would see a 15 s cadence): a round's publish
/// is given up at the end of its slot.
#[tokio::test(start_paused = true)]
async fn a_hanging_publish_is_given_up_at_the_end_of_its_slot_so_the_cadence_holds() {
    let w = world();
    *w.sink.delay.lock().unwrap() = Duration::from_secs(15);
    // The outage case: the primary is dark, so each probe takes its whole 2 s connect timeout
    // before the publish even starts; the slot bounds both.
    *w.tcp.delay.lock().unwrap() = Duration::from_secs(2);
    let r = handle(&w.deps, scheduled()).await.unwrap();
    assert_eq!(r.rounds.len(), 6);
    let gaps: Vec<i64> = r
        .rounds
        .windows(2)
        .map(|p| (p[1].at - p[0].at).num_seconds())
        .collect();
    assert_eq!(gaps, vec![10; 5], "the 10 s cadence holds");
    assert!(
        r.rounds.iter().all(|x| x
            .publish_error
            .as_deref()
            .is_some_and(|e| e.contains("not answered by the end of the round's 10 s slot"))),
        "{:?}",
        r.rounds
            .iter()
            .map(|x| &x.publish_error)
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn no_input_can_point_the_witness_at_another_host() {
    let w = world();
    for bad in [json!("probe"), json!([1, 2]), json!(null), json!(7)] {
        assert!(matches!(
            handle(&w.deps, bad.clone()).await,
            Err(WitnessError::BadInput(_))
        ));
    }
    let refused = json!({failover_policy::signal::REFUSED_INPUT_KEY: "payload over 256 KiB"});
    let e = handle(&w.deps, refused).await.unwrap_err();
    assert!(e.to_string().contains("256 KiB"), "{e}");
    assert!(
        w.sink.datapoints.lock().unwrap().is_empty(),
        "nothing probed or published"
    );

    // Fields that look like targets are ignored: only the configured sites are probed.
    let r = handle(
        &w.deps,
        json!({"endpoint": "attacker.example:3306", "sites": [{"id": "evil"}]}),
    )
    .await
    .unwrap();
    let probed: std::collections::BTreeSet<&str> = r.rounds[0]
        .samples
        .iter()
        .map(|s| s.site.as_str())
        .collect();
    assert_eq!(
        probed,
        ["billing", "inventory", "orders", "payments"].into()
    );
}
