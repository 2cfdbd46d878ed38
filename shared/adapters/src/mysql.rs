//! The SQL canary and the writability check, over a real MySQL connection.
//!
//! RDS can report `available` while no client can reach the database (security groups, a dead AZ
//! route, a hung server); the canary asks what clients experience: does `SELECT 1` answer from the
//! DR side. Every step is bounded by the site's timeouts, because a blackholed primary does not
//! refuse connections — it never answers, and an unbounded probe would hang the evaluator.
//!
//! Connections are TCP (`prefer_socket(false)`: the driver would otherwise switch to the
//! server's unix socket when it sees 127.0.0.1), opened per probe and always closed, so a canary
//! that runs every minute never accumulates sessions on the primary. With `canary.tls` they are
//! TLS (rustls), verified against the site's CA bundle only — by default the RDS CA bundle packaged
//! with the functions — so `require_secure_transport=ON` servers work and a server whose
//! certificate we do not trust is named as a certificate problem, not as an outage.
//!
//! The canary's result is a vote, and an honest one ([`Failure::canary_result`]): any error the
//! *server* sends (access denied, too many connections, host blocked, unknown database, secure
//! transport required, a certificate we reject after it greeted us) proves the server is alive;
//! only refused, reset, timed-out or unroutable connections say it may be down; and a name that
//! does not resolve says nothing about the server at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use failover_policy::config::{CanaryConfig, SiteConfig};
use failover_policy::evidence::{CanaryResult, NO_CANARY};
use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};

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

/// How the connection is secured: `None` is plain TCP; `Some` verifies the server's certificate
/// chain and name against the site's CA bundle, and trusts nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca_bundle: String,
}

impl Tls {
    pub fn of(canary: &CanaryConfig) -> Option<Self> {
        canary.tls.as_ref().map(|t| Self {
            ca_bundle: t.ca_bundle.clone(),
        })
    }
}

include!(concat!(env!("OUT_DIR"), "/rds_ca.rs"));

/// The CA certificates to trust for `path`: the file when it can be read; for the default path
/// (`rds-ca/global-bundle.pem`) that is absent from the package, the bundle embedded at build
/// time (build.rs; `sam build` ships only the binary). Anything else is an error naming the path,
/// and a file that holds no PEM certificate is one too.
pub fn ca_certificates(
    path: &str,
    read: std::io::Result<Vec<u8>>,
    embedded: Option<&'static [u8]>,
) -> Result<Vec<u8>, String> {
    let pem = match read {
        Ok(pem) => pem,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path == failover_policy::config::DEFAULT_CA_BUNDLE =>
        {
            match embedded {
                Some(pem) => pem.to_vec(),
                None => {
                    return Err(format!(
                        "TLS CA bundle `{path}` is not in the package and this build embeds none \
                         (run `make rds-ca` before building)"
                    ))
                }
            }
        }
        Err(e) => return Err(format!("TLS CA bundle `{path}` could not be read: {e}")),
    };
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(format!("TLS CA bundle `{path}` holds no PEM certificate"));
    }
    Ok(pem)
}

/// Why one bounded query did not produce a row.
enum Failure {
    /// The name did not resolve: says nothing about the server (our resolver, our VPC's DNS).
    Resolve(String),
    /// We could not set up TLS on our side (the CA bundle is missing or not PEM).
    TlsSetup(String),
    /// The server spoke TLS with a certificate the CA bundle does not vouch for: it is alive.
    TlsRejected(String),
    ConnectTimeout(Duration),
    QueryTimeout(Duration),
    Mysql(mysql_async::Error),
}

/// The rustls error inside an I/O error of the TLS handshake, if that is what it is.
fn handshake_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// What the server said, when it said anything: an error only a live server can send.
fn answered(e: &mysql_async::Error) -> Option<(Option<u16>, String)> {
    use mysql_async::{DriverError, Error, IoError};
    match e {
        // ER_SERVER_SHUTDOWN: answering, but on its way down.
        Error::Server(s) if s.code == 1053 => None,
        Error::Server(s) => Some((Some(s.code), s.to_string())),
        Error::Io(IoError::Io(io)) => handshake_error(io).map(|t| {
            let what = match t {
                rustls::Error::InvalidCertificate(c) => {
                    format!("TLS: the server's certificate was rejected ({c:?}): {t}")
                }
                other => format!("TLS handshake failed: {other}"),
            };
            (None, what)
        }),
        Error::Driver(DriverError::NoClientSslFlagFromServer) => Some((
            None,
            "TLS is required by the canary but the server does not offer it".into(),
        )),
        _ => None,
    }
}

impl Failure {
    fn describe(&self, endpoint: &str, sql: &str) -> String {
        match self {
            Failure::Resolve(e) => format!("{endpoint}: name resolution failed: {e}"),
            Failure::TlsSetup(e) | Failure::TlsRejected(e) => format!("{endpoint}: {e}"),
            Failure::ConnectTimeout(t) => {
                format!("{endpoint}: no connection within {} ms", t.as_millis())
            }
            Failure::QueryTimeout(t) => format!(
                "{endpoint}: `{sql}` did not answer within {} ms",
                t.as_millis()
            ),
            Failure::Mysql(e) => match answered(e) {
                Some((_, what)) => format!("{endpoint}: {what}"),
                None => format!("{endpoint}: {e}"),
            },
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Failure::ConnectTimeout(_) | Failure::QueryTimeout(_) => ErrorKind::Timeout,
            Failure::Resolve(_) => ErrorKind::Unavailable,
            // A certificate we do not trust will not become trusted by retrying.
            Failure::TlsSetup(_) | Failure::TlsRejected(_) => ErrorKind::Other,
            // ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
            Failure::Mysql(mysql_async::Error::Server(e))
                if matches!(e.code, 1044 | 1045 | 1698) =>
            {
                ErrorKind::AccessDenied
            }
            // A certificate we do not trust will not become trusted by retrying.
            Failure::Mysql(e) if answered(e).is_some_and(|(code, _)| code.is_none()) => {
                ErrorKind::Other
            }
            Failure::Mysql(mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)) => {
                ErrorKind::Unavailable
            }
            Failure::Mysql(_) => ErrorKind::Other,
        }
    }

    /// The canary's vote: an error from the server is a live server (*up*, and the canary needs
    /// fixing); refused, reset, timed out or unroutable is *down*; a name that does not resolve,
    /// or TLS we could not set up on our side, is *unknown*.
    fn canary_result(&self, endpoint: &str, sql: &str) -> CanaryResult {
        let error = self.describe(endpoint, sql);
        match self {
            Failure::Resolve(_) | Failure::TlsSetup(_) => CanaryResult::Unknown { reason: error },
            Failure::TlsRejected(_) => CanaryResult::Answered { code: None, error },
            Failure::Mysql(e) => match answered(e) {
                Some((code, _)) => CanaryResult::Answered { code, error },
                None => CanaryResult::Unreachable { error },
            },
            Failure::ConnectTimeout(_) | Failure::QueryTimeout(_) => {
                CanaryResult::Unreachable { error }
            }
        }
    }
}

/// Where to connect and as whom.
struct Target<'a> {
    host: &'a str,
    port: u16,
    user: &'a str,
    password: &'a str,
    database: Option<&'a str>,
    tls: Option<&'a Tls>,
}

/// Resolves the host name ourselves first, so that a name that does not resolve (*unknown*)
/// is told apart from a server that does not answer (*down*); the driver then connects to those
/// addresses and still verifies TLS against the host name.
async fn opts(t: &Target<'_>, timeouts: Timeouts) -> Result<Opts, Failure> {
    let ips: Vec<std::net::IpAddr> = match t.host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let lookup = tokio::net::lookup_host((t.host, t.port));
            match tokio::time::timeout(timeouts.connect, lookup).await {
                Err(_) => {
                    return Err(Failure::Resolve(format!(
                        "`{}` did not resolve within {} ms",
                        t.host,
                        timeouts.connect.as_millis()
                    )))
                }
                Ok(Err(e)) => return Err(Failure::Resolve(format!("`{}`: {e}", t.host))),
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            }
        }
    };
    if ips.is_empty() {
        return Err(Failure::Resolve(format!("`{}` has no addresses", t.host)));
    }
    let ssl = match t.tls {
        None => None,
        Some(tls) => {
            let read = tokio::fs::read(&tls.ca_bundle).await;
            let pem = ca_certificates(&tls.ca_bundle, read, EMBEDDED_RDS_CA)
                .map_err(Failure::TlsSetup)?;
            Some(
                SslOpts::default()
                    .with_root_certs(vec![pem.into()])
                    .with_disable_built_in_roots(true),
            )
        }
    };
    Ok(OptsBuilder::default()
        .ip_or_hostname(t.host)
        .resolved_ips(Some(ips))
        .tcp_port(t.port)
        .prefer_socket(false)
        .socket(None::<String>)
        .user(Some(t.user))
        .pass(Some(t.password))
        .db_name(t.database)
        .ssl_opts(ssl)
        .into())
}

/// Connects, runs `sql`, disconnects; each step within its timeout.
async fn query_one<T: FromRow + Send + 'static>(
    target: &Target<'_>,
    timeouts: Timeouts,
    sql: &'static str,
) -> Result<Option<T>, Failure> {
    let opts = opts(target, timeouts).await?;
    let mut conn = match tokio::time::timeout(timeouts.connect, Conn::new(opts)).await {
        Err(_) => return Err(Failure::ConnectTimeout(timeouts.connect)),
        Ok(Err(e)) => {
            // A certificate we reject: say which bundle it was checked against.
            if let (Some(tls), Some((None, what))) = (target.tls, answered(&e)) {
                return Err(Failure::TlsRejected(format!(
                    "{what} (checked against the CA bundle `{}`)",
                    tls.ca_bundle
                )));
            }
            return Err(Failure::Mysql(e));
        }
        Ok(Ok(conn)) => conn,
    };
    let result = tokio::time::timeout(timeouts.query, conn.query_first::<T, _>(sql)).await;
    // Bounded as well: a server that stopped answering mid-query will not acknowledge COM_QUIT.
    let _ = tokio::time::timeout(timeouts.query, conn.disconnect()).await;
    match result {
        Err(_) => Err(Failure::QueryTimeout(timeouts.query)),
        Ok(rows) => rows.map_err(Failure::Mysql),
    }
}

/// A TCP connect to the primary's port, the witness's second probe: it tells "something listens"
/// from "refused / timed out" even when the SQL canary cannot log in.
pub async fn tcp_connect(endpoint: &str, timeout: Duration) -> CanaryResult {
    let Some((host, port)) = endpoint
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    else {
        return CanaryResult::Unknown {
            reason: format!("endpoint `{endpoint}` is not host:port"),
        };
    };
    let t = Target {
        host,
        port,
        user: "",
        password: "",
        database: None,
        tls: None,
    };
    let timeouts = Timeouts {
        connect: timeout,
        query: timeout,
    };
    let started = Instant::now();
    let addrs = match opts(&t, timeouts).await {
        Ok(o) => o.resolved_ips().clone().unwrap_or_default(),
        Err(f) => return f.canary_result(endpoint, "TCP connect"),
    };
    let sockets: Vec<std::net::SocketAddr> = addrs
        .into_iter()
        .map(|ip| std::net::SocketAddr::new(ip, port))
        .collect();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&*sockets)).await {
        Err(_) => CanaryResult::Unreachable {
            error: format!(
                "{endpoint}: no TCP connection within {} ms",
                timeout.as_millis()
            ),
        },
        Ok(Err(e)) => CanaryResult::Unreachable {
            error: format!("{endpoint}: TCP connect: {e}"),
        },
        Ok(Ok(_)) => CanaryResult::Reachable {
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
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
        let tls = Tls::of(canary);
        let target = Target {
            host: &host,
            port,
            user: &canary.user,
            password: &password,
            database: Some(&canary.database),
            tls: tls.as_ref(),
        };
        let started = Instant::now();
        match query_one::<i64>(&target, Timeouts::of(canary), SQL).await {
            Ok(Some(1)) => CanaryResult::Reachable {
                latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
            Ok(other) => CanaryResult::Unreachable {
                error: format!("{}: `{SQL}` returned {other:?}", canary.endpoint),
            },
            Err(f) => f.canary_result(&canary.endpoint, SQL),
        }
    }
}

/// `host:port` split, or an error naming the endpoint (for `op`).
fn host_port<'a>(endpoint: &'a str, op: &'static str) -> Result<(&'a str, u16), PortError> {
    endpoint
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .filter(|(h, p)| !h.is_empty() && *p != 0)
        .ok_or_else(|| {
            PortError::new(
                ErrorKind::Other,
                op,
                format!("endpoint `{endpoint}` is not host:port"),
            )
        })
}

/// Reads whether the server at `endpoint` (`host:port`) accepts writes: after a promotion, the new
/// writer is only done when both flags are off.
pub async fn check_writable(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
) -> Result<Writability, PortError> {
    const OP: &str = "CheckWritable";
    const SQL: &str = "SELECT @@global.read_only, @@global.innodb_read_only";
    let (host, port) = host_port(endpoint, OP)?;
    let target = Target {
        host,
        port,
        user,
        password,
        database: None,
        tls,
    };
    match query_one::<(i64, i64)>(&target, timeouts, SQL).await {
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

/// Connects to `endpoint` and runs `work` on the connection, each query bounded by `timeouts`;
/// always disconnects.
pub(crate) async fn with_conn<T, F>(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
    op: &'static str,
    work: F,
) -> Result<T, PortError>
where
    F: for<'c> FnOnce(
        &'c mut Conn,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<T, mysql_async::Error>> + Send + 'c>,
    >,
{
    let (host, port) = host_port(endpoint, op)?;
    let target = Target {
        host,
        port,
        user,
        password,
        database: None,
        tls,
    };
    let fail = |f: Failure| PortError::new(f.kind(), op, f.describe(endpoint, op));
    let opts = opts(&target, timeouts).await.map_err(fail)?;
    let mut conn = match tokio::time::timeout(timeouts.connect, Conn::new(opts)).await {
        Err(_) => return Err(fail(Failure::ConnectTimeout(timeouts.connect))),
        Ok(Err(e)) => return Err(fail(Failure::Mysql(e))),
        Ok(Ok(c)) => c,
    };
    let result = tokio::time::timeout(timeouts.query * 4, work(&mut conn)).await;
    let _ = tokio::time::timeout(timeouts.query, conn.disconnect()).await;
    match result {
        Err(_) => Err(fail(Failure::QueryTimeout(timeouts.query * 4))),
        Ok(r) => r.map_err(|e| fail(Failure::Mysql(e))),
    }
}

/// Application sessions: not ours, not system threads, not RDS's own `rdsadmin`, and not the
/// binlog dump threads of replicas still attached (ending those only breaks their replication).
const APP_SESSIONS: &str = "SELECT ID FROM information_schema.PROCESSLIST \
     WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler', 'rdsadmin') \
     AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID')";

/// [`OldPrimarySql`](crate::fence::OldPrimarySql) over a real MySQL/MariaDB connection, with
/// the fence's login ([`crate::fence::sql_login`]) and the canary's timeouts and TLS.
pub struct MysqlOldPrimary {
    credentials: Arc<dyn Credentials>,
}

impl MysqlOldPrimary {
    pub fn new(credentials: Arc<dyn Credentials>) -> Self {
        Self { credentials }
    }

    async fn login(
        &self,
        site: &SiteConfig,
        op: &'static str,
    ) -> Result<(String, String, Timeouts, Option<Tls>), PortError> {
        let (user, source) = crate::fence::sql_login(site).ok_or_else(|| {
            PortError::new(
                ErrorKind::NotFound,
                op,
                format!(
                    "site {} has no SQL login for the old primary (fence.sql_user or canary)",
                    site.id
                ),
            )
        })?;
        let password = self.credentials.password(&source).await?;
        let (timeouts, tls) = match &site.canary {
            Some(c) => (Timeouts::of(c), Tls::of(c)),
            None => (
                Timeouts {
                    connect: Duration::from_secs(2),
                    query: Duration::from_secs(2),
                },
                None,
            ),
        };
        Ok((user, password, timeouts, tls))
    }
}

#[async_trait]
impl crate::fence::OldPrimarySql for MysqlOldPrimary {
    async fn read_only(&self, site: &SiteConfig, endpoint: &str) -> Result<bool, PortError> {
        const OP: &str = "SelectReadOnly";
        let (user, pw, t, tls) = self.login(site, OP).await?;
        let v: Option<i64> = with_conn(endpoint, &user, &pw, t, tls.as_ref(), OP, |c| {
            Box::pin(c.query_first("SELECT @@global.read_only"))
        })
        .await?;
        Ok(v.unwrap_or(0) != 0)
    }

    async fn end_sessions(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<crate::fence::Sessions, PortError> {
        const OP: &str = "EndSessions";
        let (user, pw, t, tls) = self.login(site, OP).await?;
        with_conn(endpoint, &user, &pw, t, tls.as_ref(), OP, |c| {
            Box::pin(async move {
                let ids: Vec<u64> = c.query(APP_SESSIONS).await?;
                let mut ended = vec![];
                for id in ids {
                    match c.exec_drop("CALL mysql.rds_kill(?)", (id,)).await {
                        Ok(()) => ended.push(id),
                        // ER_SP_DOES_NOT_EXIST: not RDS; plain KILL where the engine allows it.
                        Err(mysql_async::Error::Server(e)) if e.code == 1305 => {
                            match c.query_drop(format!("KILL {id}")).await {
                                Ok(()) => ended.push(id),
                                // ER_NO_SUCH_THREAD: it ended by itself meanwhile.
                                Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
                                Err(e) => return Err(e),
                            }
                        }
                        Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
                        Err(e) => return Err(e),
                    }
                }
                let left: Vec<u64> = c.query(APP_SESSIONS).await?;
                Ok(crate::fence::Sessions { ended, left })
            })
        })
        .await
    }

    async fn position(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<failover_policy::gtid::Position>, PortError> {
        const OP: &str = "ReadPosition";
        let (user, pw, t, tls) = self.login(site, OP).await?;
        read_position_of(endpoint, &user, &pw, t, tls.as_ref(), PositionOf::OwnBinlog).await
    }

    async fn binlog_transactions(
        &self,
        site: &SiteConfig,
        endpoint: &str,
        from: &failover_policy::gtid::BinlogPos,
        to: &failover_policy::gtid::BinlogPos,
    ) -> Result<u64, PortError> {
        const OP: &str = "CountBinlogTransactions";
        let (user, pw, t, tls) = self.login(site, OP).await?;
        count_binlog_transactions(endpoint, &user, &pw, t, tls.as_ref(), from, to).await
    }

    async fn capture(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<failover_policy::gtid::Position, PortError> {
        let (user, pw, t, tls) = self.login(site, "CapturePosition").await?;
        crate::catchup::capture(endpoint, &user, &pw, t, tls.as_ref()).await
    }

    async fn wait_applied(
        &self,
        site: &SiteConfig,
        endpoint: &str,
        position: &failover_policy::gtid::Position,
        secs: u64,
    ) -> Result<failover_policy::gtid::Position, PortError> {
        let (user, pw, t, tls) = self.login(site, "WaitForPosition").await?;
        crate::catchup::wait_applied(endpoint, &user, &pw, t, tls.as_ref(), position, secs).await
    }
}

/// Which server a position is read from: the coordinates of a server's *own* binlog and the
/// coordinates it executed of its *source's* are in different files and cannot be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionOf {
    /// The old primary: its own binlog (`SHOW MASTER STATUS` when GTIDs are off).
    OwnBinlog,
    /// The promoted replica: what it executed of its source
    /// (`SHOW SLAVE STATUS` `Relay_Master_Log_File:Exec_Master_Log_Pos` when GTIDs are off;
    /// `None` once promotion has reset replication).
    ExecutedOfSource,
}

/// The server's replication position: `@@global.gtid_binlog_state` on MariaDB (per domain and
/// server, see [`failover_policy::gtid`]), `@@global.gtid_executed` on MySQL with
/// `gtid_mode=ON`, else binlog coordinates as [`read_coordinates`] reads them for `of`.
pub async fn read_position_of(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
    of: PositionOf,
) -> Result<Option<failover_policy::gtid::Position>, PortError> {
    match read_position(endpoint, user, password, timeouts, tls).await? {
        Some(p) => Ok(Some(p)),
        None => read_coordinates(endpoint, user, password, timeouts, tls, of)
            .await
            .map(|c| c.map(failover_policy::gtid::Position::Binlog)),
    }
}

/// Binlog coordinates, whatever the GTID mode: `SHOW MASTER STATUS` for [`PositionOf::OwnBinlog`]
/// (`None`: binary logging is off), `SHOW SLAVE STATUS`'s executed source coordinates for
/// [`PositionOf::ExecutedOfSource`] (`None`: not a replica).
pub async fn read_coordinates(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
    of: PositionOf,
) -> Result<Option<failover_policy::gtid::BinlogPos>, PortError> {
    use failover_policy::gtid::BinlogPos;
    const OP: &str = "ReadBinlogCoordinates";
    let raw: Option<(String, u64)> = with_conn(endpoint, user, password, timeouts, tls, OP, |c| {
        Box::pin(async move {
            // MySQL 8.4 removed the old statements (8.2+: SHOW BINARY LOG STATUS; 8.0.22+:
            // SHOW REPLICA STATUS with `Source` columns); MariaDB and older MySQL have the old
            // ones. The new form is tried first; a server that does not know it gets the old.
            let (sqls, file_cols, pos_cols) = match of {
                PositionOf::OwnBinlog => (
                    ["SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"],
                    ["File", "File"],
                    ["Position", "Position"],
                ),
                PositionOf::ExecutedOfSource => (
                    ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"],
                    ["Relay_Source_Log_File", "Relay_Master_Log_File"],
                    ["Exec_Source_Log_Pos", "Exec_Master_Log_Pos"],
                ),
            };
            let row: Option<mysql_async::Row> = match c.query_first(sqls[0]).await {
                Ok(r) => r,
                Err(mysql_async::Error::Server(_)) => c.query_first(sqls[1]).await?,
                Err(e) => return Err(e),
            };
            Ok(row.and_then(|r| {
                let pick =
                    |cols: [&str; 2]| cols.iter().find_map(|k| r.get_opt::<String, _>(*k)?.ok());
                let file = pick(file_cols);
                let pos = pick(pos_cols).and_then(|p| p.parse::<u64>().ok());
                file.filter(|f| !f.is_empty()).zip(pos)
            }))
        })
    })
    .await?;
    raw.map(|(file, pos)| BinlogPos::parse(&format!("{file}:{pos}")))
        .transpose()
        .map_err(|e| PortError::new(ErrorKind::Other, OP, e.to_string()))
}

/// The transactions in the old primary's binlog range `from .. to`, counted from
/// `SHOW BINLOG EVENTS IN 'file' FROM pos`, file by file across rotations: one `Gtid` event
/// (MariaDB, and MySQL with GTIDs) or `Anonymous_Gtid` event (MySQL 5.7+ with GTIDs off) opens
/// each transaction. Needs `REPLICATION SLAVE` (MySQL 8: `REPLICATION CLIENT` too); a file the
/// server no longer has (purged: RDS keeps binlogs only `binlog retention hours`) is an error.
pub async fn count_binlog_transactions(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
    from: &failover_policy::gtid::BinlogPos,
    to: &failover_policy::gtid::BinlogPos,
) -> Result<u64, PortError> {
    const OP: &str = "CountBinlogTransactions";
    let segments = from
        .segments_to(to)
        .map_err(|e| PortError::new(ErrorKind::Other, OP, e.to_string()))?;
    with_conn(endpoint, user, password, timeouts, tls, OP, |c| {
        Box::pin(async move {
            let mut n = 0u64;
            for s in &segments {
                // The file name comes from the server's own status output, parsed as
                // `name.NNNNNN`; quoted for the statement all the same.
                let file = s.file.replace('\\', "\\\\").replace('\'', "\\'");
                let rows: Vec<(String, u64)> = c
                    .query_map(
                        format!("SHOW BINLOG EVENTS IN '{file}' FROM {}", s.from),
                        |row: mysql_async::Row| {
                            let ty: String = row.get("Event_type").unwrap_or_default();
                            let pos: u64 = row.get("Pos").unwrap_or_default();
                            (ty, pos)
                        },
                    )
                    .await?;
                n += rows
                    .iter()
                    .filter(|(ty, pos)| {
                        s.to.is_none_or(|end| *pos < end)
                            && (ty == "Gtid" || ty == "Anonymous_Gtid")
                    })
                    .count() as u64;
            }
            Ok(n)
        })
    })
    .await
}

/// The server's GTID position: `@@global.gtid_binlog_state` on MariaDB (per domain and
/// server, see [`failover_policy::gtid`]), `@@global.gtid_executed` on MySQL with
/// `gtid_mode=ON`, `None` when GTIDs are off.
pub async fn read_position(
    endpoint: &str,
    user: &str,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&Tls>,
) -> Result<Option<failover_policy::gtid::Position>, PortError> {
    use failover_policy::gtid::{GtidSet, MariaPos, Position};
    const OP: &str = "ReadPosition";
    let raw: (String, Option<String>) =
        with_conn(endpoint, user, password, timeouts, tls, OP, |c| {
            Box::pin(async move {
                let version: Option<String> = c.query_first("SELECT @@version").await?;
                let version = version.unwrap_or_default();
                let pos: Option<String> = if version.contains("MariaDB") {
                    c.query_first("SELECT @@global.gtid_binlog_state").await?
                } else {
                    let mode: Option<String> = c.query_first("SELECT @@global.gtid_mode").await?;
                    if mode.as_deref() == Some("ON") {
                        c.query_first("SELECT @@global.gtid_executed").await?
                    } else {
                        None
                    }
                };
                Ok((version, pos))
            })
        })
        .await?;
    let bad = |e: failover_policy::gtid::PositionError| {
        PortError::new(ErrorKind::Other, OP, e.to_string())
    };
    match raw {
        (v, Some(p)) if v.contains("MariaDB") => Ok(Some(Position::MariadbGtid(
            MariaPos::parse(&p).map_err(bad)?,
        ))),
        (_, Some(p)) => Ok(Some(Position::MysqlGtid(GtidSet::parse(&p).map_err(bad)?))),
        (_, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::ca_certificates;
    use std::io::{Error, ErrorKind};

    const PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const DEFAULT: &str = failover_policy::config::DEFAULT_CA_BUNDLE;

    #[test]
    fn the_default_bundle_absent_from_the_package_is_the_embedded_one() {
        let missing = || Err(Error::from(ErrorKind::NotFound));
        assert_eq!(ca_certificates(DEFAULT, missing(), Some(PEM)).unwrap(), PEM);
        let none = ca_certificates(DEFAULT, missing(), None).unwrap_err();
        assert!(
            none.contains("embeds none") && none.contains(DEFAULT),
            "{none}"
        );
        // A file that is there wins over the embedded copy (a newer bundle dropped in).
        let newer = b"-----BEGIN CERTIFICATE-----\nNEWER\n-----END CERTIFICATE-----\n".to_vec();
        assert_eq!(
            ca_certificates(DEFAULT, Ok(newer.clone()), Some(PEM)).unwrap(),
            newer
        );
    }

    #[test]
    fn a_configured_bundle_is_never_replaced_by_the_embedded_one() {
        let e = ca_certificates(
            "/opt/ca/gov.pem",
            Err(Error::from(ErrorKind::NotFound)),
            Some(PEM),
        )
        .unwrap_err();
        assert!(
            e.contains("/opt/ca/gov.pem") && e.contains("could not be read"),
            "{e}"
        );
        let e =
            ca_certificates("/opt/ca/gov.pem", Ok(b"not a cert".to_vec()), Some(PEM)).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = ca_certificates(
            DEFAULT,
            Err(Error::from(ErrorKind::PermissionDenied)),
            Some(PEM),
        )
        .unwrap_err();
        assert!(
            e.contains("could not be read"),
            "an unreadable file is not silently replaced: {e}"
        );
    }

    use super::*;
    use failover_policy::evidence::Vote;

    fn server(code: u16, message: &str) -> Failure {
        Failure::Mysql(mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: message.into(),
            state: "HY000".into(),
        }))
    }

    fn io(kind: std::io::ErrorKind) -> Failure {
        Failure::Mysql(mysql_async::Error::Io(mysql_async::IoError::Io(
            std::io::Error::new(kind, "os error"),
        )))
    }

    #[test]
    fn a_server_that_answers_with_an_error_is_up_and_one_that_does_not_is_down() {
        for (code, msg) in [
            (1045, "Access denied for user 'canary'"),
            (1040, "Too many connections"),
            (
                1129,
                "Host '10.0.0.9' is blocked because of many connection errors",
            ),
            (1049, "Unknown database 'canary'"),
            (3159, "Connections using insecure transport are prohibited"),
        ] {
            let r = server(code, msg).canary_result("db:3306", "SELECT 1");
            assert!(
                matches!(&r, CanaryResult::Answered { code: Some(c), .. } if *c == code),
                "{code}: {r:?}"
            );
            assert_eq!(r.vote(), Vote::Up, "{code}");
        }
        // Shutting down: it answers, but it is on its way out.
        assert_eq!(
            server(1053, "Server shutdown in progress")
                .canary_result("db:3306", "SELECT 1")
                .vote(),
            Vote::Down
        );
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::HostUnreachable,
            std::io::ErrorKind::UnexpectedEof,
        ] {
            assert_eq!(
                io(kind).canary_result("db:3306", "SELECT 1").vote(),
                Vote::Down,
                "{kind:?}"
            );
        }
        assert_eq!(
            Failure::ConnectTimeout(Duration::from_secs(2))
                .canary_result("db:3306", "SELECT 1")
                .vote(),
            Vote::Down
        );
        assert_eq!(
            Failure::Resolve("`db`: failed to lookup address information".into())
                .canary_result("db:3306", "SELECT 1")
                .vote(),
            Vote::Unknown
        );
    }
}
