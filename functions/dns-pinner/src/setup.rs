//! Cold-start setup: environment → typed settings → clients → [`Deps`].
//!
//! Variables: `FAILOVER_CONFIG` or `FAILOVER_CONFIG_PATH`, `LEDGER_TABLE`, `EVENT_BUS_NAME`, and
//! optionally `RDS_FAILOVER_REPLAY_CLOCK` (see `failover_adapters::settings`).

use std::sync::Arc;

use failover_adapters::aws::{AwsClients, DynamoLedger, EventBridgeBus};
use failover_adapters::dns::Route53Dns;
use failover_adapters::ports::{Clock, FixedClock, SystemClock};
use failover_adapters::resolve::HickoryResolve;
use failover_adapters::settings::Settings;
use failover_adapters::switch::CloudWatchSwitch;

use crate::handler::Deps;

pub async fn deps_from_env() -> Result<Deps, lambda_runtime::Error> {
    let settings = Settings::from_env()?;
    let clients = AwsClients::from_env().await;
    let clock: Arc<dyn Clock> = match settings.replay_clock {
        Some(t) => {
            tracing::warn!(clock = %t, "RDS_FAILOVER_REPLAY_CLOCK is set: time is pinned (replay/drill only)");
            Arc::new(FixedClock::at(t))
        }
        None => Arc::new(SystemClock),
    };
    Ok(Deps {
        ledger: Arc::new(DynamoLedger::new(&clients, &settings.ledger_table)),
        bus: Arc::new(EventBridgeBus::new(&clients, &settings.event_bus)),
        dns: Arc::new(Route53Dns::new(&clients)),
        resolve: Arc::new(HickoryResolve::default()),
        switch: Arc::new(CloudWatchSwitch::new(
            &clients,
            settings
                .config
                .sites
                .iter()
                .filter_map(|s| s.dns.mode.switch_metric())
                .map(|m| m.region.as_str()),
        )),
        clock,
        jitter: Arc::new(rand::random::<f64>),
        cfg: settings.config,
    })
}
