use super::*;
use crate::settings::{Settings, SettingsError};

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");

/// The example with one site's RPO changed: valid, and another version.
fn with_rpo(secs: u64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    v["sites"][0]["thresholds"]["max_lag_secs"] = secs.into();
    serde_json::to_string_pretty(&v).unwrap()
}

/// The example with a typo an operator could make: an 11-digit account id.
fn invalid() -> String {
    EXAMPLE.replace("\"123456789012\"", "\"12345678901\"")
}

async fn live(store: &Arc<FakeConfigStore>) -> LiveConfig {
    LiveConfig::cold_start(store.clone(), Duration::from_secs(60))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_version_is_picked_up_by_a_warm_function_without_a_cold_start() {
    let store = Arc::new(FakeConfigStore::default());
    let first = store.put(EXAMPLE);
    let hot = Hot::new(
        (String::new(), None::<String>),
        Some(live(&store).await),
        |_, l| (l.version.hash.clone(), l.version.object_version.clone()),
    );
    let t0 = Instant::now();
    let before = hot.live().unwrap().current();
    assert_eq!(
        before.version.object_version.as_deref(),
        Some(first.as_str())
    );
    let second = store.put(&with_rpo(45));
    // Inside the interval: no call, the old version still serves.
    assert_eq!(hot.get_at(t0 + Duration::from_secs(10)).await.0, "");
    assert_eq!(store.calls().0, 1);
    let deps = hot.get_at(t0 + Duration::from_secs(61)).await;
    let now = hot.live().unwrap().current();
    assert_eq!(now.config.sites[0].thresholds.max_lag_secs, 45);
    assert_ne!(now.version.hash, before.version.hash);
    assert_eq!(*deps, (now.version.hash.clone(), Some(second)));
}

#[tokio::test]
async fn an_invalid_update_keeps_the_previous_version_and_is_reported_once() {
    let store = Arc::new(FakeConfigStore::default());
    store.put(EXAMPLE);
    let live = live(&store).await;
    let good = live.current().version.clone();
    let bad = store.put(&invalid());
    let t0 = Instant::now();
    let mut rejected = vec![];
    for i in 1..=4 {
        match live.refresh_at(t0 + Duration::from_secs(61 * i)).await {
            Refresh::Rejected { version, error } => rejected.push((version, error.to_string())),
            Refresh::NotModified => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0.as_deref(), Some(bad.as_str()));
    assert!(rejected[0].1.contains("account_id"), "{}", rejected[0].1);
    assert_eq!(live.current().version, good);
    assert_eq!(live.parses(), 2, "the bad version is parsed once");
    // The fix is the next upload, and it takes effect.
    store.put(&with_rpo(40));
    assert!(matches!(
        live.refresh_at(t0 + Duration::from_secs(61 * 5)).await,
        Refresh::Updated(_)
    ));
    assert_eq!(live.current().config.sites[0].thresholds.max_lag_secs, 40);
}

#[tokio::test]
async fn an_unchanged_document_costs_a_304_and_no_parse() {
    let store = Arc::new(FakeConfigStore::default());
    store.put(EXAMPLE);
    let live = live(&store).await;
    let t0 = Instant::now();
    for i in 1..=3 {
        assert!(matches!(
            live.refresh_at(t0 + Duration::from_secs(60 * i)).await,
            Refresh::NotModified
        ));
    }
    assert_eq!(store.calls(), (4, 3));
    assert_eq!(live.parses(), 1);
}

#[tokio::test]
async fn a_missing_object_at_cold_start_is_a_typed_error() {
    let store = Arc::new(FakeConfigStore::default());
    assert!(matches!(
        LiveConfig::cold_start(store.clone(), Duration::from_secs(60)).await,
        Err(ConfigLoadError::Fetch(PortError {
            kind: ErrorKind::NotFound,
            ..
        }))
    ));
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

const BASE: [(&str, &str); 3] = [
    ("FAILOVER_CONFIG_S3", "s3://acme-failover-config/sites.json"),
    ("LEDGER_TABLE", "rds-failover-ledger"),
    ("EVENT_BUS_NAME", "rds-failover"),
];

#[tokio::test]
async fn the_s3_source_loads_at_cold_start_and_an_invalid_document_refuses_to_run() {
    let store = Arc::new(FakeConfigStore::default());
    store.put(EXAMPLE);
    let s = store.clone();
    let (settings, live) = Settings::load(env(&BASE), move |loc| {
        assert_eq!(loc.to_string(), "s3://acme-failover-config/sites.json");
        s as Arc<dyn ConfigStore>
    })
    .await
    .unwrap();
    assert_eq!(settings.config.sites.len(), 4);
    assert!(live.is_some());

    let bad = Arc::new(FakeConfigStore::default());
    let id = bad.put(&invalid());
    let e = Settings::load(env(&BASE), move |_| bad as Arc<dyn ConfigStore>)
        .await
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(matches!(e, SettingsError::Store { .. }), "{msg}");
    assert!(
        msg.contains("s3://acme-failover-config/sites.json")
            && msg.contains(&id)
            && msg.contains("account_id"),
        "{msg}"
    );
}

#[tokio::test]
async fn exactly_one_source_and_a_well_formed_location_or_a_typed_error() {
    let never = |_: &S3Location| -> Arc<dyn ConfigStore> { panic!("no read for bad settings") };
    let both = [BASE[0], BASE[1], BASE[2], ("FAILOVER_CONFIG", EXAMPLE)];
    let e = Settings::load(env(&both), never).await.err().unwrap();
    assert!(
        matches!(&e, SettingsError::BothConfigs { set } if set == "FAILOVER_CONFIG, FAILOVER_CONFIG_S3"),
        "{e}"
    );
    for url in [
        "acme/sites.json",
        "s3://acme",
        "s3://Acme_Bad/sites.json",
        "s3://acme-x/",
    ] {
        let e = Settings::load(env(&[("FAILOVER_CONFIG_S3", url), BASE[1], BASE[2]]), never)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&e, SettingsError::Invalid { var: "FAILOVER_CONFIG_S3", got, .. } if got == url),
            "{url}: {e}"
        );
    }
    let e = Settings::load(
        env(&[
            BASE[0],
            BASE[1],
            BASE[2],
            ("FAILOVER_CONFIG_REFRESH_SECS", "0"),
        ]),
        never,
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("FAILOVER_CONFIG_REFRESH_SECS"),
        "{e}"
    );
    // The environment sources still work through the same loader, with nothing to re-check.
    let (_, live) = Settings::load(
        env(&[("FAILOVER_CONFIG", EXAMPLE), BASE[1], BASE[2]]),
        never,
    )
    .await
    .unwrap();
    assert!(live.is_none());
}

#[tokio::test]
async fn a_functions_own_check_applies_to_every_new_version() {
    let store = Arc::new(FakeConfigStore::default());
    store.put(EXAMPLE);
    let live = live(&store).await.with_check(|c| {
        (c.sites.len() <= 4)
            .then_some(())
            .ok_or(ConfigError::Invalid {
                field: "sites".into(),
                expected: "at most 4 sites for this fan-out".into(),
                got: c.sites.len().to_string(),
            })
    });
    let mut five: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    let mut extra = five["sites"][0].clone();
    let text = serde_json::to_string(&extra)
        .unwrap()
        .replace("orders", "orders-b")
        .replace("ORDERS", "ORDERSB");
    extra = serde_json::from_str(&text).unwrap();
    five["sites"].as_array_mut().unwrap().push(extra);
    store.put(&five.to_string());
    match live
        .refresh_at(Instant::now() + Duration::from_secs(61))
        .await
    {
        Refresh::Rejected { error, .. } => {
            assert!(error.to_string().contains("fan-out"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.current().config.sites.len(), 4);
}

/// A store whose region is impaired: every fetch after the cold start hangs.
struct Hanging(Arc<FakeConfigStore>, std::sync::atomic::AtomicBool);

#[async_trait]
impl ConfigStore for Hanging {
    async fn fetch(&self, if_none_match: Option<&str>) -> Result<ConfigFetch, PortError> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.0.fetch(if_none_match).await
    }
}

#[tokio::test]
async fn a_store_that_hangs_never_holds_a_warm_invocation_and_the_current_version_stays() {
    let inner = Arc::new(FakeConfigStore::default());
    let first = inner.put(EXAMPLE);
    let store = Arc::new(Hanging(inner, std::sync::atomic::AtomicBool::new(false)));
    let live = LiveConfig::cold_start(store.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    store.1.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let r = live
        .refresh_at(Instant::now() + Duration::from_secs(61))
        .await;
    assert!(matches!(r, Refresh::Unreachable(_)), "{r:?}");
    assert!(
        started.elapsed() < REFRESH_BOUND + Duration::from_secs(2),
        "held the invocation {:?}",
        started.elapsed()
    );
    assert_eq!(
        live.current().version.object_version.as_deref(),
        Some(first.as_str())
    );
}
