//! Cold-start setup: environment → typed settings → clients → [`Deps`].
//!
//! Variables: `FAILOVER_CONFIG`, `FAILOVER_CONFIG_PATH` or `FAILOVER_CONFIG_S3`, `LEDGER_TABLE`, `EVENT_BUS_NAME`, and
//! optionally `RDS_FAILOVER_REPLAY_CLOCK` (see `failover_adapters::settings`).

use std::sync::Arc;

use failover_adapters::aws::{AwsClients, DynamoLedger, EventBridgeBus};
use failover_adapters::config_store::{Hot, S3ConfigStore};
use failover_adapters::dns::Route53Dns;
use failover_adapters::ports::{Clock, FixedClock, SystemClock};
use failover_adapters::resolve::HickoryResolve;
use failover_adapters::settings::Settings;
use failover_adapters::switch::CloudWatchSwitch;
use failover_policy::Config;

use crate::handler::Deps;

/// The data-plane switch's CloudWatch clients: one per region a site's switch metric lives in.
fn switch(clients: &AwsClients, cfg: &Config) -> Arc<CloudWatchSwitch> {
    Arc::new(CloudWatchSwitch::new(
        clients,
        cfg.sites
            .iter()
            .filter_map(|s| s.dns.mode.switch_metric())
            .map(|m| m.region.as_str()),
    ))
}

pub async fn deps_from_env() -> Result<Hot<Deps>, lambda_runtime::Error> {
    let clients = Arc::new(AwsClients::from_env().await);
    let (settings, live) =
        Settings::load_from_env(|at| Arc::new(S3ConfigStore::new(&clients, at))).await?;
    let clock: Arc<dyn Clock> = match settings.replay_clock {
        Some(t) => {
            tracing::warn!(clock = %t, "RDS_FAILOVER_REPLAY_CLOCK is set: time is pinned (replay/drill only)");
            Arc::new(FixedClock::at(t))
        }
        None => Arc::new(SystemClock),
    };
    let deps = Deps {
        ledger: Arc::new(DynamoLedger::new(&clients, &settings.ledger_table)),
        bus: Arc::new(EventBridgeBus::new(&clients, &settings.event_bus)),
        dns: Arc::new(Route53Dns::new(&clients)),
        resolve: Arc::new(HickoryResolve::default()),
        switch: switch(&clients, &settings.config),
        clock,
        jitter: Arc::new(rand::random::<f64>),
        cfg: settings.config,
    };
    // A new version from the store: the same deps under it (a switch metric may be in a new region).
    Ok(Hot::new(deps, live, move |d: &Deps, l| Deps {
        cfg: l.config.clone(),
        switch: switch(&clients, &l.config),
        ..d.clone()
    }))
}
