//! The SQL canary and the writability check against real servers: a MariaDB started here from
//! the distribution's binaries (its own datadir, port and socket; real authentication), a closed
//! port, and a listener that accepts connections but never speaks — the blackholed primary whose
//! hang the canary's timeouts exist for.
//!
//! Without `mariadbd` the MariaDB tests are skipped with a notice, unless `CI` is set, where a
//! missing server is a broken environment and fails loudly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_adapters::fakes::FakeCredentials;
use failover_adapters::mysql::{check_writable, MysqlCanary, Timeouts};
use failover_adapters::ports::{Canary, ErrorKind};
use failover_policy::config::{CanaryConfig, CredentialsSource};
use failover_policy::evidence::{CanaryResult, NO_CANARY};
use failover_policy::{Config, SiteConfig};
use mysql_async::prelude::Queryable;

const PASSWORD: &str = "canary-pass";
const PASSWORD_VAR: &str = "CANARY_TEST_PASSWORD";

// ---------------------------------------------------------------- a throwaway MariaDB

/// A MariaDB server owned by one test; killed (by pid) on drop, then its directory removed.
struct MariaDb {
    child: Child,
    dir: Scratch,
    port: u16,
}

/// A directory removed on drop, also when the server never got as far as starting.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl MariaDb {
    /// Starts a fresh server, or `None` (after a notice) when MariaDB is not installed.
    async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[]).await
    }

    /// [`MariaDb::start`] with extra server options (TLS, limits).
    async fn start_with(test: &str, extra: &[String]) -> Option<Self> {
        let (Some(mariadbd), Some(install_db)) =
            (find_binary("mariadbd"), find_binary("mariadb-install-db"))
        else {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but mariadbd / mariadb-install-db were not found: install mariadb-server (tests/setup-env.sh)");
            }
            eprintln!("SKIPPED {test}: mariadbd not found (install mariadb-server, or run tests/setup-env.sh)");
            return None;
        };
        let dir =
            Scratch(std::env::temp_dir().join(format!("canary-{}-{test}", std::process::id())));
        let _ = std::fs::remove_dir_all(&*dir);
        std::fs::create_dir_all(&*dir).unwrap();
        let datadir = dir.join("data");
        // A private tmpdir: bootstraps sharing /tmp for their Aria temporary tables crash (seen
        // as signal 11 in ha_maria::drop_table when two tests install at once).
        let tmpdir = dir.join("tmp");
        std::fs::create_dir_all(&tmpdir).unwrap();
        let installed = Command::new(install_db)
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("install.log")).unwrap())
            .status()
            .unwrap();
        assert!(
            installed.success(),
            "mariadb-install-db failed: {}",
            read(&dir.join("install.log"))
        );

        let port = free_port();
        let child = Command::new(mariadbd)
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-networking=0",
                "--skip-name-resolve",
            ])
            .args(["--innodb-buffer-pool-size=32M", "--skip-log-bin"])
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { child, dir, port };
        server.wait_ready().await;
        let mut root = server.root().await;
        for host in ["%", "127.0.0.1", "localhost"] {
            root.query_drop(format!(
                "CREATE USER 'canary'@'{host}' IDENTIFIED BY '{PASSWORD}'"
            ))
            .await
            .unwrap();
        }
        root.disconnect().await.unwrap();
        Some(server)
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "mariadbd exited with {status}: {}",
                    read(&self.dir.join("error.log"))
                );
            }
            if let Ok(conn) = mysql_async::Conn::new(self.root_opts()).await {
                let _ = conn.disconnect().await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd not ready after 60 s: {}",
                read(&self.dir.join("error.log"))
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// root over the unix socket (root has no TCP account here).
    fn root_opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .socket(Some(self.dir.join("mysqld.sock").display().to_string()))
            .user(Some("root"))
            .into()
    }

    async fn root(&self) -> mysql_async::Conn {
        mysql_async::Conn::new(self.root_opts()).await.unwrap()
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| format!("({}: {e})", p.display()))
}

// ---------------------------------------------------------------- fixtures

/// The example `orders` site with its canary pointed at `endpoint`.
fn site(endpoint: &str, timeout_ms: u64) -> SiteConfig {
    let cfg = Config::from_document(include_str!("../../../infra/sites.example.json")).unwrap();
    let mut site = cfg.site("orders").unwrap().clone();
    site.canary = Some(CanaryConfig {
        endpoint: endpoint.into(),
        user: "canary".into(),
        // Readable by every account, so the canary user needs no grants.
        database: "information_schema".into(),
        credentials: CredentialsSource::Env {
            var: PASSWORD_VAR.into(),
        },
        connect_timeout_ms: timeout_ms,
        query_timeout_ms: timeout_ms,
        tls: None,
    });
    site
}

fn canary_with_password(password: &str) -> MysqlCanary {
    let creds = FakeCredentials::default();
    creds
        .secrets
        .lock()
        .unwrap()
        .insert(PASSWORD_VAR.into(), password.into());
    MysqlCanary::new(Arc::new(creds))
}

fn timeouts(ms: u64) -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(ms),
        query: Duration::from_millis(ms),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn canary_is_reachable_with_the_right_password_and_unreachable_with_a_wrong_one() {
    let Some(db) = MariaDb::start("probe").await else {
        return;
    };
    let site = site(&db.endpoint(), 5000);

    let ok = canary_with_password(PASSWORD).probe(&site).await;
    assert!(
        matches!(ok, CanaryResult::Reachable { latency_ms } if latency_ms < 5000),
        "{ok:?}"
    );

    // A server that says "access denied" is alive: an up vote, never a down one.
    let denied = canary_with_password("wrong").probe(&site).await;
    match denied {
        CanaryResult::Answered { code, error } => {
            assert_eq!(code, Some(1045), "{error}");
            assert!(error.contains("Access denied"), "{error}");
        }
        other => panic!("expected Answered (the server is alive), got {other:?}"),
    }
}

#[tokio::test]
async fn server_errors_are_a_live_server_up_vote() {
    let Some(db) = MariaDb::start("answered").await else {
        return;
    };
    // Unknown database (1049; MariaDB answers 1044 to a user with no grants on it).
    let mut wrong_db = site(&db.endpoint(), 5000);
    wrong_db.canary.as_mut().unwrap().database = "no_such_db".into();
    let r = canary_with_password(PASSWORD).probe(&wrong_db).await;
    assert!(
        matches!(
            &r,
            CanaryResult::Answered {
                code: Some(1044 | 1049),
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(r.vote(), failover_policy::evidence::Vote::Up);

    // Too many connections, server-wide (1040): ordinary sessions hold every slot of
    // max_connections. (MariaDB keeps one extra slot for SUPER, so they must be non-SUPER; its
    // minimum max_connections is 10.) Host blocked (1129) cannot be produced here: MySQL and
    // MariaDB do not use the host cache for loopback connections, so it stays in the
    // classification table of mysql.rs and its unit tests.
    let mut root = db.root().await;
    root.query_drop(format!(
        "CREATE USER IF NOT EXISTS 'holder'@'%' IDENTIFIED BY '{PASSWORD}'"
    ))
    .await
    .unwrap();
    root.query_drop("SET GLOBAL max_connections = 10")
        .await
        .unwrap();
    let mut holders = vec![];
    for _ in 0..12 {
        match mysql_async::Conn::new(
            mysql_async::OptsBuilder::default()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(db.port)
                .prefer_socket(false)
                .user(Some("holder"))
                .pass(Some(PASSWORD)),
        )
        .await
        {
            Ok(c) => holders.push(c),
            Err(_) => break,
        }
    }
    let full = canary_with_password(PASSWORD)
        .probe(&site(&db.endpoint(), 5000))
        .await;
    for c in holders {
        c.disconnect().await.unwrap();
    }
    root.query_drop("SET GLOBAL max_connections = 151")
        .await
        .unwrap();
    assert!(
        matches!(
            &full,
            CanaryResult::Answered {
                code: Some(1040),
                ..
            }
        ),
        "{full:?}"
    );
    assert_eq!(full.vote(), failover_policy::evidence::Vote::Up);

    // Too many connections for the canary's account (1226): another session of the canary
    // user holds the only slot.
    let mut root = db.root().await;
    for host in ["%", "127.0.0.1", "localhost"] {
        root.query_drop(format!(
            "ALTER USER 'canary'@'{host}' WITH MAX_USER_CONNECTIONS 1"
        ))
        .await
        .unwrap();
    }
    let holder = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(db.port)
            .prefer_socket(false)
            .user(Some("canary"))
            .pass(Some(PASSWORD)),
    )
    .await
    .unwrap();
    let r = canary_with_password(PASSWORD)
        .probe(&site(&db.endpoint(), 5000))
        .await;
    assert!(
        matches!(&r, CanaryResult::Answered { code: Some(1203 | 1226), error } if error.contains("max_user_connections")),
        "{r:?}"
    );
    assert_eq!(r.vote(), failover_policy::evidence::Vote::Up);
    holder.disconnect().await.unwrap();
    root.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_unknown_not_down() {
    let r = canary_with_password(PASSWORD)
        .probe(&site("no-such-primary.invalid:3306", 2000))
        .await;
    match &r {
        CanaryResult::Unknown { reason } => {
            assert!(reason.contains("name resolution failed"), "{reason}")
        }
        other => panic!("a resolver failure says nothing about the server, got {other:?}"),
    }
}

// ---------------------------------------------------------------- TLS

/// A CA and a server certificate for 127.0.0.1/localhost, made with openssl for one test.
struct Pki {
    dir: Scratch,
}

impl Pki {
    fn new(test: &str) -> Option<Self> {
        let Some(openssl) = find_binary("openssl") else {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but openssl was not found");
            }
            eprintln!("SKIPPED {test}: openssl not found");
            return None;
        };
        let dir = Scratch(std::env::temp_dir().join(format!("pki-{}-{test}", std::process::id())));
        let _ = std::fs::remove_dir_all(&*dir);
        std::fs::create_dir_all(&*dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(&*dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=rds-failover test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "san.ext",
        ]);
        Some(Self { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            format!("--ssl-ca={}", self.path("ca.pem")),
            format!("--ssl-cert={}", self.path("server.pem")),
            format!("--ssl-key={}", self.path("server.key")),
            "--require-secure-transport=ON".into(),
        ]
    }
}

fn with_tls(mut site: SiteConfig, ca_bundle: Option<String>) -> SiteConfig {
    site.canary.as_mut().unwrap().tls =
        ca_bundle.map(|ca_bundle| failover_policy::config::CanaryTls { ca_bundle });
    site
}

#[tokio::test]
async fn require_secure_transport_works_over_tls_verified_against_the_ca_bundle() {
    let Some(pki) = Pki::new("tls") else { return };
    let Some(db) = MariaDb::start_with("tls", &pki.server_args()).await else {
        return;
    };
    let tls = failover_adapters::mysql::Tls {
        ca_bundle: pki.path("ca.pem"),
    };

    // Over TLS, verified against our CA: the canary answers and the writability check reads.
    let ok = canary_with_password(PASSWORD)
        .probe(&with_tls(
            site(&db.endpoint(), 5000),
            Some(pki.path("ca.pem")),
        ))
        .await;
    assert!(matches!(ok, CanaryResult::Reachable { .. }), "{ok:?}");
    let w = check_writable(
        &db.endpoint(),
        "canary",
        PASSWORD,
        timeouts(5000),
        Some(&tls),
    )
    .await
    .unwrap();
    assert!(w.is_writable(), "{w:?}");
    println!("scenario 7, require_secure_transport=ON: canary {ok:?}; writability check {w:?}");

    // Without TLS the server refuses us (MariaDB: 1045 access denied; MySQL: 3159 secure
    // transport required), which proves it is alive: up, with the server's reason.
    let plain = canary_with_password(PASSWORD)
        .probe(&site(&db.endpoint(), 5000))
        .await;
    assert!(
        matches!(
            &plain,
            CanaryResult::Answered {
                code: Some(1045 | 3159),
                ..
            }
        ),
        "expected the server's own refusal, got {plain:?}"
    );
}

#[tokio::test]
async fn a_wrong_ca_is_a_named_certificate_problem_not_an_outage() {
    let Some(pki) = Pki::new("wrong-ca") else {
        return;
    };
    let Some(db) = MariaDb::start_with("wrong-ca", &pki.server_args()).await else {
        return;
    };
    let wrong = pki.path("other-ca.pem");

    let r = canary_with_password(PASSWORD)
        .probe(&with_tls(site(&db.endpoint(), 5000), Some(wrong.clone())))
        .await;
    match &r {
        CanaryResult::Answered { code: None, error } => assert!(
            error.contains("certificate")
                && error.contains("UnknownIssuer")
                && error.contains("other-ca.pem"),
            "{error}"
        ),
        other => panic!("expected a certificate problem (server alive), got {other:?}"),
    }
    let err = check_writable(
        &db.endpoint(),
        "canary",
        PASSWORD,
        timeouts(5000),
        Some(&failover_adapters::mysql::Tls { ca_bundle: wrong }),
    )
    .await
    .unwrap_err();
    assert!(
        err.message.contains("certificate") && err.message.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(
        !err.kind.is_retryable(),
        "an untrusted certificate stays untrusted: {err}"
    );
    println!("scenario 7, wrong CA: canary {r:?}; writability check: {err}");

    // A CA bundle that is not there: we could not even try, so no vote.
    let missing = canary_with_password(PASSWORD)
        .probe(&with_tls(
            site(&db.endpoint(), 5000),
            Some(pki.path("no-such-bundle.pem")),
        ))
        .await;
    assert!(
        matches!(&missing, CanaryResult::Unknown { reason } if reason.contains("no-such-bundle.pem")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn check_writable_follows_global_read_only() {
    let Some(db) = MariaDb::start("writable").await else {
        return;
    };
    let mut root = db.root().await;

    let w = check_writable(&db.endpoint(), "canary", PASSWORD, timeouts(5000), None)
        .await
        .unwrap();
    assert!(
        w.is_writable() && !w.read_only && !w.innodb_read_only,
        "{w:?}"
    );

    root.query_drop("SET GLOBAL read_only = 1").await.unwrap();
    let w = check_writable(&db.endpoint(), "canary", PASSWORD, timeouts(5000), None)
        .await
        .unwrap();
    assert!(w.read_only && !w.is_writable(), "{w:?}");

    root.query_drop("SET GLOBAL read_only = 0").await.unwrap();
    let w = check_writable(&db.endpoint(), "canary", PASSWORD, timeouts(5000), None)
        .await
        .unwrap();
    assert!(w.is_writable(), "{w:?}");
    root.disconnect().await.unwrap();

    let err = check_writable(&db.endpoint(), "canary", "wrong", timeouts(5000), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
}

#[tokio::test]
async fn closed_port_is_unreachable_without_waiting_for_the_timeout() {
    let endpoint = format!("127.0.0.1:{}", free_port());

    let result = canary_with_password(PASSWORD)
        .probe(&site(&endpoint, 3000))
        .await;

    // Refused is reported as refused (the OS said so), not as a timeout we waited out.
    assert!(
        matches!(&result, CanaryResult::Unreachable { error }
            if error.contains(&endpoint) && !error.contains("no connection within")),
        "{result:?}"
    );
    let err = check_writable(&endpoint, "canary", PASSWORD, timeouts(3000), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn silent_listener_is_unreachable_after_the_connect_timeout() {
    // Accepts and holds every connection, never sends the server greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();

    let result = canary_with_password(PASSWORD)
        .probe(&site(&endpoint, 300))
        .await;

    let elapsed = started.elapsed();
    assert!(
        matches!(&result, CanaryResult::Unreachable { error } if error.contains("no connection within 300 ms")),
        "{result:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300),
        "gave up early: {elapsed:?}"
    );
    let err = check_writable(&endpoint, "canary", PASSWORD, timeouts(300), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
}

#[tokio::test]
async fn no_canary_or_no_password_is_unknown_never_unreachable() {
    let mut no_canary = site("127.0.0.1:3306", 300);
    no_canary.canary = None;
    let empty = MysqlCanary::new(Arc::new(FakeCredentials::default()));

    assert_eq!(
        empty.probe(&no_canary).await,
        CanaryResult::Unknown {
            reason: NO_CANARY.into()
        }
    );
    match empty.probe(&site("127.0.0.1:3306", 300)).await {
        CanaryResult::Unknown { reason } => assert!(reason.contains(PASSWORD_VAR), "{reason}"),
        other => panic!("an unreadable password says nothing about the primary, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the old primary (issue 12)

/// Scenario 4 on real MariaDB: the replica's SQL thread is stopped, N transactions commit on the
/// primary, the replica is "promoted" and takes writes of its own; the divergence computed from
/// the two servers' positions is exactly those N. Then the fence's SQL side on the old primary:
/// `read_only` as the server says it, and sessions ended with `KILL` (no `mysql.rds_kill` here).
#[tokio::test]
async fn divergence_counts_exactly_the_transactions_the_replica_never_applied() {
    use failover_adapters::fence::OldPrimarySql;
    use failover_adapters::mysql::{read_position, MysqlOldPrimary};
    use failover_policy::gtid::{lost, Position};
    const N: u64 = 7;
    let bin = |id: u32| {
        vec![
            "--log-bin=mysql-bin".to_string(),
            format!("--server-id={id}"),
            "--log-slave-updates".to_string(),
        ]
    };
    let Some(primary) = MariaDb::start_with("div-primary", &bin(1)).await else {
        return;
    };
    let Some(replica) = MariaDb::start_with("div-replica", &bin(2)).await else {
        return;
    };
    let mut p = primary.root().await;
    // Both servers created the canary users themselves: replication starts after that.
    let start: String = p
        .query_first("SELECT @@global.gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    for sql in [
        "CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pass'".to_string(),
        "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'".into(),
        "CREATE USER 'fencer'@'%' IDENTIFIED BY 'canary-pass'".into(),
        "GRANT ALL ON *.* TO 'fencer'@'%'".into(),
        "CREATE DATABASE shop".into(),
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB".into(),
        "INSERT INTO shop.orders VALUES (1, 'replicated')".into(),
    ] {
        p.query_drop(sql).await.unwrap();
    }
    let mut r = replica.root().await;
    r.query_drop(format!("SET GLOBAL gtid_slave_pos = '{start}'"))
        .await
        .unwrap();
    r.query_drop(format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_PASSWORD='repl-pass', MASTER_USE_GTID=slave_pos",
        primary.port
    ))
    .await
    .unwrap();
    r.query_drop("START SLAVE").await.unwrap();
    let want: String = p
        .query_first("SELECT @@global.gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Option<String> = r
            .query_first("SELECT @@global.gtid_slave_pos")
            .await
            .unwrap();
        if got.as_deref() == Some(want.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica never caught up: {got:?} vs {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Replication stops applying; the primary goes on committing, one transaction each.
    r.query_drop("STOP SLAVE SQL_THREAD").await.unwrap();
    for i in 0..N {
        p.query_drop(format!(
            "INSERT INTO shop.orders VALUES ({}, 'lost')",
            100 + i
        ))
        .await
        .unwrap();
    }
    // Promoted: detached, and taking writes under its own server id before anyone reads it.
    r.query_drop("STOP SLAVE").await.unwrap();
    r.query_drop("RESET SLAVE ALL").await.unwrap();
    r.query_drop("INSERT INTO shop.orders VALUES (2, 'new primary')")
        .await
        .unwrap();
    let t = Timeouts {
        connect: Duration::from_secs(5),
        query: Duration::from_secs(5),
    };
    let new = read_position(&replica.endpoint(), "canary", PASSWORD, t, None)
        .await
        .unwrap()
        .unwrap();
    let old = read_position(&primary.endpoint(), "canary", PASSWORD, t, None)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(old, Position::MariadbGtid(_)), "{old:?}");
    let l = lost(&old, &new).unwrap();
    assert_eq!(l.count, Some(N), "{old} vs {new}: {l:?}");
    assert_eq!(l.ranges.len(), 1, "{l:?}");
    println!("divergence on real MariaDB: {old} vs {new}: {:?}", l.ranges);

    // The fence's SQL side against the old primary.
    let mut s = site(&primary.endpoint(), 5000);
    let mut v = serde_json::to_value(&s).unwrap();
    v["fence"] = serde_json::json!({"sql_user": "fencer",
        "sql_credentials": {"kind": "env", "var": PASSWORD_VAR}});
    s = serde_json::from_value(v).unwrap();
    let creds = Arc::new(FakeCredentials::default());
    creds
        .secrets
        .lock()
        .unwrap()
        .insert(PASSWORD_VAR.into(), PASSWORD.into());
    let sql = MysqlOldPrimary::new(creds);
    let ep = primary.endpoint();
    assert!(!sql.read_only(&s, &ep).await.unwrap());
    p.query_drop("SET GLOBAL read_only = 1").await.unwrap();
    assert!(
        sql.read_only(&s, &ep).await.unwrap(),
        "the server's own answer"
    );
    let app = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(primary.port)
            .prefer_socket(false)
            .user(Some("canary"))
            .pass(Some(PASSWORD)),
    )
    .await
    .unwrap();
    // KILL is asynchronous: a killed session may still be listed for a moment, and the fence
    // (like this loop) asks again until none is left.
    let first = sql.end_sessions(&s, &ep).await.unwrap();
    assert!(
        first.ended.len() >= 2,
        "the application's and root's sessions: {first:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = sql.end_sessions(&s, &ep).await.unwrap();
        if again.left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "sessions never went: {again:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(app);
    assert!(
        p.query_drop("SELECT 1").await.is_err(),
        "root's session was ended too"
    );
    r.disconnect().await.unwrap();
}

/// GTIDs off (issue 12): the divergence from binlog coordinates, on real MariaDB replicating by
/// file and position (`MASTER_USE_GTID=no`; MariaDB always writes GTIDs, so the coordinates path
/// is read directly, as it is on MySQL with `gtid_mode=OFF`). The replica's SQL thread stops, N
/// transactions commit on the primary across two binlog rotations; the replica's executed source
/// coordinates against the primary's `SHOW MASTER STATUS` name a range over three files, and
/// `SHOW BINLOG EVENTS` counts exactly N in it.
#[tokio::test]
async fn with_gtids_off_the_binlog_range_across_rotations_counts_exactly_the_lost_transactions() {
    use failover_adapters::fence::OldPrimarySql;
    use failover_adapters::mysql::{read_coordinates, MysqlOldPrimary, PositionOf};
    use failover_policy::gtid::{lost, Position};
    let bin = |id: u32| {
        vec![
            "--log-bin=mysql-bin".to_string(),
            format!("--server-id={id}"),
        ]
    };
    let Some(primary) = MariaDb::start_with("coord-primary", &bin(1)).await else {
        return;
    };
    let Some(replica) = MariaDb::start_with("coord-replica", &bin(2)).await else {
        return;
    };
    let t = Timeouts {
        connect: Duration::from_secs(5),
        query: Duration::from_secs(5),
    };
    let mut p = primary.root().await;
    for sql in [
        "CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pass'",
        "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
        "CREATE USER 'fencer'@'%' IDENTIFIED BY 'canary-pass'",
        "GRANT ALL ON *.* TO 'fencer'@'%'",
    ] {
        p.query_drop(sql).await.unwrap();
    }
    let mut r = replica.root().await;
    for sql in [
        "CREATE USER 'fencer'@'%' IDENTIFIED BY 'canary-pass'",
        "GRANT ALL ON *.* TO 'fencer'@'%'",
    ] {
        r.query_drop(sql).await.unwrap();
    }
    let (pe, re) = (primary.endpoint(), replica.endpoint());
    let start = read_coordinates(&pe, "fencer", PASSWORD, t, None, PositionOf::OwnBinlog)
        .await
        .unwrap()
        .expect("the primary writes a binlog");
    r.query_drop(format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_PASSWORD='repl-pass', MASTER_LOG_FILE='{}', MASTER_LOG_POS={}, \
         MASTER_USE_GTID=no",
        primary.port, start.file, start.pos
    ))
    .await
    .unwrap();
    r.query_drop("START SLAVE").await.unwrap();
    for sql in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB",
        "INSERT INTO shop.orders VALUES (1, 'replicated')",
    ] {
        p.query_drop(sql).await.unwrap();
    }
    let caught_up = read_coordinates(&pe, "fencer", PASSWORD, t, None, PositionOf::OwnBinlog)
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let applied = loop {
        let got = read_coordinates(
            &re,
            "fencer",
            PASSWORD,
            t,
            None,
            PositionOf::ExecutedOfSource,
        )
        .await
        .unwrap();
        if got.as_ref() == Some(&caught_up) {
            break got.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "replica never caught up: {got:?} vs {caught_up}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    r.query_drop("STOP SLAVE SQL_THREAD").await.unwrap();
    // 7 transactions: 3 inserts, a rotation, a multi-statement transaction, a DDL, a rotation,
    // 2 inserts (each rotation writes its own events, none of them a transaction).
    const N: u64 = 7;
    for sql in [
        "INSERT INTO shop.orders VALUES (100, 'lost')",
        "INSERT INTO shop.orders VALUES (101, 'lost')",
        "INSERT INTO shop.orders VALUES (102, 'lost')",
        "FLUSH BINARY LOGS",
        "BEGIN",
        "INSERT INTO shop.orders VALUES (103, 'lost')",
        "UPDATE shop.orders SET note = 'lost too' WHERE id = 1",
        "COMMIT",
        "CREATE TABLE shop.refunds (id INT PRIMARY KEY) ENGINE=InnoDB",
        "FLUSH BINARY LOGS",
        "INSERT INTO shop.orders VALUES (104, 'lost')",
    ] {
        p.query_drop(sql).await.unwrap();
    }
    let mid = read_coordinates(&pe, "fencer", PASSWORD, t, None, PositionOf::OwnBinlog)
        .await
        .unwrap()
        .unwrap();
    p.query_drop("INSERT INTO shop.refunds VALUES (1)")
        .await
        .unwrap();
    // What the replica executed of its source, read before it is promoted (promotion resets
    // replication, and with it these coordinates).
    let new = read_coordinates(
        &re,
        "fencer",
        PASSWORD,
        t,
        None,
        PositionOf::ExecutedOfSource,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(new, applied, "the SQL thread is stopped");
    let old = read_coordinates(&pe, "fencer", PASSWORD, t, None, PositionOf::OwnBinlog)
        .await
        .unwrap()
        .unwrap();
    let segments = new.segments_to(&old).unwrap();
    assert_eq!(segments.len(), 3, "two rotations: {segments:?}");
    let l = lost(
        &Position::Binlog(old.clone()),
        &Position::Binlog(new.clone()),
    )
    .unwrap();
    assert_eq!(l.ranges, vec![format!("{new} .. {old}")]);

    let mut s = site(&pe, 5000);
    let mut v = serde_json::to_value(&s).unwrap();
    v["fence"] = serde_json::json!({"sql_user": "fencer",
        "sql_credentials": {"kind": "env", "var": PASSWORD_VAR}});
    s = serde_json::from_value(v).unwrap();
    let creds = Arc::new(FakeCredentials::default());
    creds
        .secrets
        .lock()
        .unwrap()
        .insert(PASSWORD_VAR.into(), PASSWORD.into());
    let sql = MysqlOldPrimary::new(creds);
    let counted = sql.binlog_transactions(&s, &pe, &new, &old).await.unwrap();
    assert_eq!(counted, N, "{new} .. {old}");
    // A range ending inside a file stops there.
    assert_eq!(
        sql.binlog_transactions(&s, &pe, &new, &mid).await.unwrap(),
        N - 1,
        "{new} .. {mid}"
    );
    // Nothing lost from the primary's own end, and a purged file is an error, not a zero.
    assert_eq!(
        sql.binlog_transactions(&s, &pe, &old, &old).await.unwrap(),
        0
    );
    p.query_drop(format!("PURGE BINARY LOGS TO '{}'", old.file))
        .await
        .unwrap();
    assert!(sql.binlog_transactions(&s, &pe, &new, &old).await.is_err());
    println!(
        "binlog divergence on real MariaDB: {new} .. {old}: {counted} transaction(s) over {} files",
        segments.len()
    );
    r.disconnect().await.unwrap();
    p.disconnect().await.unwrap();
}
