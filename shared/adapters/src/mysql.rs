//! The SQL canary and the writability check, over a real MySQL connection.
//!
//! RDS can report `available` while no client can reach the database (security groups, a dead AZ
//! route, a hung server); the canary asks what clients experience: does `SELECT 1` answer from the
//! DR side. Every step is bounded by the site's timeouts, because a blackholed primary does not
//! refuse connections — it never answers, and an unbounded probe would hang the evaluator.
//!
//! Connections are plain TCP (`prefer_socket(false)`: the driver would otherwise switch to the
//! server's unix socket when it sees 127.0.0.1), opened per probe and always closed, so a canary
//! that runs every minute never accumulates sessions on the primary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use failover_policy::config::{CanaryConfig, SiteConfig};
use failover_policy::evidence::{CanaryResult, NO_CANARY};
use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::ports::{Canary, Credentials, ErrorKind, PortError};

/// How long to wait for a connection and for each query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub query: Duration,
}

impl Timeouts {
    pub fn of(canary: &CanaryConfig) -> Self {
        Self {
            connect: Duration::from_millis(canary.connect_timeout_ms),
            query: Duration::from_millis(canary.query_timeout_ms),
        }
    }
}

/// Whether a server accepts writes. Aurora readers report `innodb_read_only`; RDS replicas and
/// promoted-but-not-yet-writable instances report `read_only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writability {
    pub read_only: bool,
    pub innodb_read_only: bool,
}

impl Writability {
    pub fn is_writable(self) -> bool {
        !self.read_only && !self.innodb_read_only
    }
}

/// Why one bounded query did not produce a row.
enum Failure {
    ConnectTimeout(Duration),
    QueryTimeout(Duration),
    Mysql(mysql_async::Error),
}

impl Failure {
    fn describe(&self, endpoint: &str, sql: &str) -> String {
        match self {
            Failure::ConnectTimeout(t) => {
                format!("{endpoint}: no connection within {} ms", t.as_millis())
            }
            Failure::QueryTimeout(t) => format!(
                "{endpoint}: `{sql}` did not answer within {} ms",
                t.as_millis()
            ),
            Failure::Mysql(e) => format!("{endpoint}: {e}"),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Failure::ConnectTimeout(_) | Failure::QueryTimeout(_) => ErrorKind::Timeout,
            // ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
            Failure::Mysql(mysql_async::Error::Server(e))
                if matches!(e.code, 1044 | 1045 | 1698) =>
            {
                ErrorKind::AccessDenied
            }
            Failure::Mysql(mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)) => {
                ErrorKind::Unavailable
            }
            Failure::Mysql(_) => ErrorKind::Other,
        }
    }
}

fn opts(host: &str, port: u16, user: &str, password: &str, database: Option<&str>) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .prefer_socket(false)
        .socket(None::<String>)
        .user(Some(user))
        .pass(Some(password))
        .db_name(database)
        .into()
}

/// Connects, runs `sql`, disconnects; each step within its timeout.
async fn query_one<T: FromRow + Send + 'static>(
    opts: Opts,
    timeouts: Timeouts,
    sql: &'static str,
) -> Result<Option<T>, Failure> {
    let mut conn = match tokio::time::timeout(timeouts.connect, Conn::new(opts)).await {
        Err(_) => return Err(Failure::ConnectTimeout(timeouts.connect)),
        Ok(conn) => conn.map_err(Failure::Mysql)?,
    };
    let result = tokio::time::timeout(timeouts.query, conn.query_first::<T, _>(sql)).await;
    // Bounded as well: a server that stopped answering mid-query will not acknowledge COM_QUIT.
    let _ = tokio::time::timeout(timeouts.query, conn.disconnect()).await;
    match result {
        Err(_) => Err(Failure::QueryTimeout(timeouts.query)),
        Ok(rows) => rows.map_err(Failure::Mysql),
    }
}

/// The canary: `SELECT 1` as the site's canary user, from the DR side.
pub struct MysqlCanary {
    credentials: Arc<dyn Credentials>,
}

impl MysqlCanary {
    pub fn new(credentials: Arc<dyn Credentials>) -> Self {
        Self { credentials }
    }
}

#[async_trait]
impl Canary for MysqlCanary {
    async fn probe(&self, site: &SiteConfig) -> CanaryResult {
        const SQL: &str = "SELECT 1";
        let Some(canary) = &site.canary else {
            return CanaryResult::Unknown {
                reason: NO_CANARY.into(),
            };
        };
        // Without a password we could not even try: that says nothing about the primary.
        let password = match self.credentials.password(&canary.credentials).await {
            Ok(p) => p,
            Err(e) => {
                return CanaryResult::Unknown {
                    reason: format!("canary credentials unavailable: {e}"),
                }
            }
        };
        let (host, port) = canary.host_port();
        let started = Instant::now();
        let opts = opts(&host, port, &canary.user, &password, Some(&canary.database));
        match query_one::<i64>(opts, Timeouts::of(canary), SQL).await {
            Ok(Some(1)) => CanaryResult::Reachable {
                latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
            Ok(other) => CanaryResult::Unreachable {
                error: format!("{}: `{SQL}` returned {other:?}", canary.endpoint),
            },
            Err(f) => CanaryResult::Unreachable {
                error: f.describe(&canary.endpoint, SQL),
            },
        }
    }
}

/// Reads whether the server at `endpoint` (`host:port`) accepts writes: after a promotion, the new
/// writer is only done when both flags are off.
pub async fn check_writable(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
) -> Result<Writability, PortError> {
    const OP: &str = "CheckWritable";
    const SQL: &str = "SELECT @@global.read_only, @@global.innodb_read_only";
    let (host, port) = endpoint
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .filter(|(h, p)| !h.is_empty() && *p != 0)
        .ok_or_else(|| {
            PortError::new(
                ErrorKind::Other,
                OP,
                format!("endpoint `{endpoint}` is not host:port"),
            )
        })?;
    match query_one::<(i64, i64)>(opts(host, port, user, password, None), timeouts, SQL).await {
        Ok(Some((read_only, innodb_read_only))) => Ok(Writability {
            read_only: read_only != 0,
            innodb_read_only: innodb_read_only != 0,
        }),
        Ok(None) => Err(PortError::new(
            ErrorKind::Other,
            OP,
            format!("{endpoint}: `{SQL}` returned no row"),
        )),
        Err(f) => Err(PortError::new(f.kind(), OP, f.describe(endpoint, SQL))),
    }
}
