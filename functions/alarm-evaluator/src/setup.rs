//! Cold-start setup: environment → typed settings → clients → [`Deps`].
//!
//! Every missing or invalid variable fails the cold start with a message naming it, so a bad
//! deploy is caught by the first invocation instead of by the first outage.

use std::sync::Arc;

use failover_adapters::aws::{
    AwsClients, CloudWatchMetrics, DynamoLedger, EventBridgeBus, RdsTopology,
    SecretsManagerCredentials,
};
use failover_adapters::fence::RdsFence;
use failover_adapters::mysql::{MysqlCanary, MysqlOldPrimary};
use failover_adapters::ports::{Clock, FixedClock, StdoutLines, SystemClock};
use failover_adapters::recheck::{Rechecks, SqsRechecks, TickOnly};
use failover_adapters::settings::{Fanout, Settings};

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
    let fanout = Fanout::from_env()?;
    fanout.check_sites(settings.config.sites.len())?;
    let credentials = Arc::new(SecretsManagerCredentials::new(&clients));
    // Config validation's fence warnings: a primary the tool cannot fence without affecting
    // others (default or shared parameter group), or a site that does not let it fence at all.
    for w in failover_policy::fence::warnings(&settings.config) {
        tracing::warn!(warning = %w, "fence");
    }
    let rechecks: Arc<dyn Rechecks> = match std::env::var("RECHECK_QUEUE_URL") {
        Ok(url) if !url.trim().is_empty() => Arc::new(SqsRechecks::new(&clients, url.trim())),
        _ => {
            tracing::warn!("RECHECK_QUEUE_URL is not set: a decision waits for the next scheduled tick after its window closes");
            Arc::new(TickOnly)
        }
    };
    Ok(Deps {
        rechecks,
        fence: Arc::new(RdsFence::new(&clients)),
        old_primary: Arc::new(MysqlOldPrimary::new(credentials.clone())),
        topology: Arc::new(RdsTopology::new(&clients)),
        metrics: Arc::new(CloudWatchMetrics::new(&clients)),
        ledger: Arc::new(DynamoLedger::new(&clients, &settings.ledger_table)),
        bus: Arc::new(EventBridgeBus::new(&clients, &settings.event_bus)),
        canary: Arc::new(MysqlCanary::new(credentials)),
        clock,
        fanout,
        cfg: settings.config,
        metric_lines: Arc::new(StdoutLines),
    })
}
