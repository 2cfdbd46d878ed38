//! A planned switchover's SQL: capture the fenced primary's executed position, and wait until
//! the target has applied exactly that (see `failover_policy::switchover`).
//!
//! The position is captured once the primary is read-only and compared with what the target
//! reports applied, never with the primary's live position: RDS's own heartbeat writes
//! (`rdsadmin`, which `read_only` does not bind) keep moving that.
//!
//! - MariaDB: `@@global.gtid_binlog_pos` (the last GTID per domain) on the primary;
//!   `MASTER_GTID_WAIT(pos, secs)` then `@@global.gtid_slave_pos` on the target.
//! - MySQL with `gtid_mode=ON`: `@@global.gtid_executed`; `WAIT_FOR_EXECUTED_GTID_SET(set, secs)`
//!   then `@@global.gtid_executed` on the target.
//! - GTIDs off (binlog coordinates): refused with a typed error — this version does not wait on
//!   `MASTER_POS_WAIT`, and a switchover must not guess.

use std::time::Duration;

use failover_policy::gtid::{GtidSet, MariaPos, Position};
use mysql_async::prelude::Queryable;

use crate::mysql::{with_conn, Timeouts, Tls};
use crate::ports::{ErrorKind, PortError};

const CAPTURE: &str = "CapturePosition";
const WAIT: &str = "WaitForPosition";

fn bad(op: &'static str, e: impl std::fmt::Display) -> PortError {
    PortError::new(ErrorKind::Other, op, e.to_string())
}

/// The executed position of the (fenced) primary at `endpoint`.
pub async fn capture(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
) -> Result<Position, PortError> {
    let (version, mode, pos): (String, Option<String>, Option<String>) =
        with_conn(endpoint, user, password, timeouts, tls, CAPTURE, |c| {
            Box::pin(async move {
                let version: String = c.query_first("SELECT @@version").await?.unwrap_or_default();
                if version.contains("MariaDB") {
                    let p = c.query_first("SELECT @@global.gtid_binlog_pos").await?;
                    return Ok((version, None, p));
                }
                let mode: Option<String> = c.query_first("SELECT @@global.gtid_mode").await?;
                let p = if mode.as_deref() == Some("ON") {
                    c.query_first("SELECT @@global.gtid_executed").await?
                } else {
                    None
                };
                Ok((version, mode, p))
            })
        })
        .await?;
    match (version.contains("MariaDB"), pos) {
        (true, Some(p)) => Ok(Position::MariadbGtid(MariaPos::parse(&p).map_err(|e| bad(CAPTURE, e))?)),
        (false, Some(p)) if mode.as_deref() == Some("ON") => {
            Ok(Position::MysqlGtid(GtidSet::parse(&p).map_err(|e| bad(CAPTURE, e))?))
        }
        _ => Err(PortError::new(
            ErrorKind::Other,
            CAPTURE,
            format!(
                "{endpoint} ({version}) has no GTID position (gtid_mode {}): a switchover on binlog coordinates is not supported by this version",
                mode.as_deref().unwrap_or("n/a")
            ),
        )),
    }
}

/// Waits at most `secs` on the target at `endpoint` until it has applied `position`, then
/// returns what it reports applied (judge it with `failover_policy::switchover::caught_up`: the
/// wait's own return value is not trusted on its own).
pub async fn wait_applied(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
    position: &Position,
    secs: u64,
) -> Result<Position, PortError> {
    let (wait_sql, read_sql, maria) = match position {
        Position::MariadbGtid(_) => (
            "SELECT MASTER_GTID_WAIT(?, ?)",
            "SELECT @@global.gtid_slave_pos",
            true,
        ),
        Position::MysqlGtid(_) => (
            "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
            "SELECT @@global.gtid_executed",
            false,
        ),
        Position::Binlog(b) => {
            return Err(PortError::new(
                ErrorKind::Other,
                WAIT,
                format!("binlog coordinates {b}: a switchover on binlog coordinates is not supported by this version"),
            ))
        }
    };
    let wanted = position.to_string_bare();
    // The wait itself may take `secs`: the connection's bound covers it.
    let t = Timeouts {
        connect: timeouts.connect,
        query: timeouts.query + Duration::from_secs(secs),
    };
    let applied: Option<String> = with_conn(endpoint, user, password, t, tls, WAIT, |c| {
        Box::pin(async move {
            let _: Option<Option<i64>> = c.exec_first(wait_sql, (wanted, secs)).await?;
            c.query_first(read_sql).await
        })
    })
    .await?;
    let applied = applied.unwrap_or_default();
    if maria {
        Ok(Position::MariadbGtid(
            MariaPos::parse(&applied).map_err(|e| bad(WAIT, e))?,
        ))
    } else {
        Ok(Position::MysqlGtid(
            GtidSet::parse(&applied).map_err(|e| bad(WAIT, e))?,
        ))
    }
}

/// The position as the server's wait functions take it (no "gtid_executed" label).
trait Bare {
    fn to_string_bare(&self) -> String;
}

impl Bare for Position {
    fn to_string_bare(&self) -> String {
        match self {
            Position::MysqlGtid(s) => s.to_string(),
            Position::MariadbGtid(p) => p.to_string(),
            Position::Binlog(b) => b.to_string(),
        }
    }
}
