//! Cold-start setup: environment → typed settings → clients → [`Deps`].
//!
//! Every missing or invalid variable fails the cold start with a message naming it, so a bad
//! deploy is caught by the first invocation instead of by the first outage. With
//! `FAILOVER_CONFIG_S3` the configuration is re-checked on warm invocations ([`Hot`]); a new
//! valid version takes effect without a cold start, an invalid one is refused and reported once.

use std::sync::Arc;

use failover_adapters::aws::{
    AwsClients, CloudWatchMetrics, DynamoLedger, EventBridgeBus, RdsTopology,
    SecretsManagerCredentials,
};
use failover_adapters::config_store::{Hot, Loaded, S3ConfigStore};
use failover_adapters::fence::RdsFence;
use failover_adapters::mysql::{MysqlCanary, MysqlOldPrimary};
use failover_adapters::ports::{Clock, FixedClock, StdoutLines, SystemClock};
use failover_adapters::recheck::{Rechecks, SqsRechecks, TickOnly};
use failover_adapters::settings::{Fanout, Settings};

use failover_policy::ConfigError;

use crate::handler::Deps;

/// The same deps under a configuration taken from the store.
fn with_config(d: &Deps, l: &Loaded) -> Deps {
    Deps {
        cfg: l.config.clone(),
        cfg_object_version: l.version.object_version.clone(),
        ..d.clone()
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
    let fanout = Fanout::from_env()?;
    fanout.check_sites(settings.config.sites.len())?;
    // A later version from the store must fit the fan-out too, or it is refused like a bad one.
    let live = live.map(|l| {
        l.with_check(move |c| {
            fanout
                .check_sites(c.sites.len())
                .map_err(|e| ConfigError::Invalid {
                    field: "sites".into(),
                    expected:
                        "no more sites than EVALUATOR_SITE_CONCURRENCY can judge inside the timeout"
                            .into(),
                    got: e.to_string(),
                })
        })
    });
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
    let deps = Deps {
        cfg_object_version: live
            .as_ref()
            .and_then(|l| l.current().version.object_version.clone()),
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
    };
    Ok(Hot::new(deps, live, with_config))
}
