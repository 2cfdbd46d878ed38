//! Cold-start setup: environment → typed settings → clients → [`Deps`].
//!
//! Variables: `TOPIC_ARN` (the SNS topic), `LEDGER_TABLE` (each event is checked against the site's record there, read only),
//! `NOTICE_TABLE` (the dedupe claims; defaults to the ledger table), and
//! optionally `RDS_FAILOVER_REPLAY_CLOCK`. No site configuration: messages are composed from the
//! event alone.

use std::sync::Arc;

use failover_adapters::aws::{AwsClients, DynamoLedgerReader};
use failover_adapters::notify::{DynamoNotificationLog, SnsNotifications};
use failover_adapters::ports::{Clock, FixedClock, SystemClock};
use failover_adapters::settings::NotifierSettings;

use crate::handler::Deps;

pub async fn deps_from_env() -> Result<Deps, lambda_runtime::Error> {
    let settings = NotifierSettings::from_env()?;
    let clients = AwsClients::from_env().await;
    let clock: Arc<dyn Clock> = match settings.replay_clock {
        Some(t) => {
            tracing::warn!(clock = %t, "RDS_FAILOVER_REPLAY_CLOCK is set: time is pinned (replay/drill only)");
            Arc::new(FixedClock::at(t))
        }
        None => Arc::new(SystemClock),
    };
    Ok(Deps {
        ledger: Arc::new(DynamoLedgerReader::new(&clients, &settings.ledger_table)),
        log: Arc::new(DynamoNotificationLog::new(&clients, &settings.notice_table)),
        channel: Arc::new(SnsNotifications::new(&clients, &settings.topic_arn)),
        clock,
        token: Arc::new(|| format!("{:032x}", rand::random::<u128>())),
    })
}
