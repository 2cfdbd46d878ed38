//! Cold-start setup: environment → typed settings → clients → [`Deps`].
//!
//! The same variables as every function (`FAILOVER_CONFIG[_PATH|_S3]`, `LEDGER_TABLE`,
//! `EVENT_BUS_NAME`, `RDS_FAILOVER_REPLAY_CLOCK`). A pinned replay clock pins the timestamps the
//! ledger records; the invocation's time budget and the waits between polls always run on real
//! time ([`SystemPacer`]), so a pinned clock can never make the function overrun its deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use failover_adapters::aws::{
    AwsClients, CloudWatchMetrics, DynamoLedger, EventBridgeBus, RdsTopology,
    SecretsManagerCredentials,
};
use failover_adapters::config_store::{Hot, S3ConfigStore};
use failover_adapters::control::{MysqlWritability, RdsControl};
use failover_adapters::mysql::MysqlCanary;
use failover_adapters::ports::{Clock, FixedClock, SystemClock};
use failover_adapters::settings::Settings;

use crate::handler::{Deps, Pacer};

/// Real time, real sleeps, and jitter from the thread-local generator.
pub struct SystemPacer;

#[async_trait]
impl Pacer for SystemPacer {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    fn jitter(&self) -> f64 {
        rand::random::<f64>()
    }
}

pub async fn deps_from_env() -> Result<Hot<Deps>, lambda_runtime::Error> {
    let clients = AwsClients::from_env().await;
    let (settings, live) =
        Settings::load_from_env(|at| Arc::new(S3ConfigStore::new(&clients, at))).await?;
    let clock: Arc<dyn Clock> = match settings.replay_clock {
        Some(t) => {
            tracing::warn!(clock = %t, "RDS_FAILOVER_REPLAY_CLOCK is set: time is pinned (replay/drill only)");
            Arc::new(FixedClock::at(t))
        }
        None => Arc::new(SystemClock),
    };
    let credentials = Arc::new(SecretsManagerCredentials::new(&clients));
    let deps = Deps {
        topology: Arc::new(RdsTopology::new(&clients)),
        metrics: Arc::new(CloudWatchMetrics::new(&clients)),
        control: Arc::new(RdsControl::new(&clients)),
        writability: Arc::new(MysqlWritability::new(credentials.clone())),
        canary: Arc::new(MysqlCanary::new(credentials)),
        ledger: Arc::new(DynamoLedger::new(&clients, &settings.ledger_table)),
        bus: Arc::new(EventBridgeBus::new(&clients, &settings.event_bus)),
        clock,
        pacer: Arc::new(SystemPacer),
        fallback_budget: failover_adapters::settings::fallback_budget_from_env()?,
        cfg: settings.config,
    };
    // A new version from the store: the same deps under it.
    Ok(Hot::new(deps, live, |d: &Deps, l| Deps {
        cfg: l.config.clone(),
        ..d.clone()
    }))
}
