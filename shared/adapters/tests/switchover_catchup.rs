//! A planned switchover's catch-up on REAL MariaDB replication: two servers started here from
//! the distribution's binaries, GTID replication between them, an application user without
//! `SUPER` (so `read_only` binds it, as the parameter group's `read_only=1` binds RDS's master
//! user), and the policy's state machine fed with what the servers report.
//!
//! Scenario 1: writes keep arriving until the fence; every committed row is on the target once it
//! has applied the captured position (RPO 0). Scenario 2: the target's SQL thread is stopped
//! (lagging) → the wait times out → the machine rolls back.
//!
//! The fence here is `SET GLOBAL read_only=1` by root: the emulator's parameter-group path to the
//! same server is the fence issue's (helper 12); what is tested here is the catch-up.
//!
//! Without `mariadbd` the tests are skipped with a notice, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use failover_adapters::catchup::{capture, wait_applied};
use failover_adapters::mysql::Timeouts;
use failover_policy::config::DbRef;
use failover_policy::switchover::{self, Action, Observation, Request, SwPhase};
use failover_policy::Config;
use mysql_async::prelude::Queryable;

const PW: &str = "admin-pass";

struct MariaDb {
    child: Child,
    dir: PathBuf,
    port: u16,
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

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| format!("({}: {e})", p.display()))
}

impl MariaDb {
    async fn start(test: &str, server_id: u32) -> Option<Self> {
        let (Some(mariadbd), Some(install_db)) =
            (find_binary("mariadbd"), find_binary("mariadb-install-db"))
        else {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but mariadbd / mariadb-install-db were not found");
            }
            eprintln!("SKIPPED {test}: mariadbd not found (run tests/setup-env.sh)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "switchover-{}-{test}-{server_id}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (datadir, tmpdir) = (dir.join("data"), dir.join("tmp"));
        std::fs::create_dir_all(&tmpdir).unwrap();
        let ok = Command::new(install_db)
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
        assert!(ok.success(), "install: {}", read(&dir.join("install.log")));
        let port = free_port();
        let child = Command::new(mariadbd)
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .args([
                "--skip-networking=0",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
            ])
            .args([
                "--log-bin=mysql-bin",
                "--binlog-format=ROW",
                "--log-slave-updates",
            ])
            .arg(format!("--server-id={server_id}"))
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut db = Self { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = db.child.try_wait().unwrap() {
                panic!("mariadbd exited {s}: {}", read(&db.dir.join("error.log")));
            }
            if let Ok(c) = mysql_async::Conn::new(db.root_opts()).await {
                let _ = c.disconnect().await;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not ready: {}",
                read(&db.dir.join("error.log"))
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Users are created without binary logging, so a replica never replays them.
        db.root_exec(&[
            "SET SESSION sql_log_bin=0",
            &format!("CREATE USER 'admin'@'%' IDENTIFIED BY '{PW}'"),
            "GRANT ALL ON *.* TO 'admin'@'%'",
            &format!("CREATE USER 'app'@'%' IDENTIFIED BY '{PW}'"),
            "GRANT INSERT, SELECT, CREATE ON *.* TO 'app'@'%'",
            "CREATE USER 'repl'@'%' IDENTIFIED BY 'repl'",
            "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
        ])
        .await;
        Some(db)
    }

    fn root_opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .socket(Some(self.dir.join("mysqld.sock").display().to_string()))
            .user(Some("root"))
            .into()
    }

    async fn root_exec(&self, sql: &[&str]) {
        let mut c = mysql_async::Conn::new(self.root_opts()).await.unwrap();
        for s in sql {
            c.query_drop(*s)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        c.disconnect().await.unwrap();
    }

    async fn ids(&self) -> Vec<u64> {
        let mut c = mysql_async::Conn::new(self.root_opts()).await.unwrap();
        let v = c
            .query("SELECT id FROM shop.orders ORDER BY id")
            .await
            .unwrap();
        c.disconnect().await.unwrap();
        v
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn app_opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("app"))
            .pass(Some(PW))
            .into()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// source → replica, GTID replication from the source's current position, replica read-only.
async fn pair(test: &str) -> Option<(MariaDb, MariaDb)> {
    let src = MariaDb::start(test, 1).await?;
    let rep = MariaDb::start(test, 2).await?;
    src.root_exec(&[
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, note VARCHAR(40))",
    ])
    .await;
    rep.root_exec(&[
        &format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
             MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos",
            src.port
        ),
        "START SLAVE",
        "SET GLOBAL read_only=1",
    ])
    .await;
    // The schema arrived: replication runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = mysql_async::Conn::new(rep.root_opts()).await.unwrap();
        let n: Option<u64> = c
            .query_first("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='shop'")
            .await
            .unwrap();
        c.disconnect().await.unwrap();
        if n == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replication never delivered the schema"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((src, rep))
}

fn t() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        query: Duration::from_secs(5),
    }
}

/// Inserts rows one by one as the application user until the server refuses (read_only) or
/// `stop` is set; returns the ids whose INSERT returned OK (committed, autocommit).
fn writer(opts: mysql_async::Opts, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut ok = vec![];
        for id in 1.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match c
                .exec_drop("INSERT INTO shop.orders VALUES (?, 'x')", (id,))
                .await
            {
                Ok(()) => ok.push(id),
                // 1290: --read-only: the fence.
                Err(mysql_async::Error::Server(e)) if e.code == 1290 => break,
                Err(e) => panic!("insert {id}: {e}"),
            }
        }
        let _ = c.disconnect().await;
        ok
    })
}

fn record(max_wait: u64) -> switchover::SwitchoverRecord {
    let cfg = Config::from_document(include_str!("../../../infra/sites.example.json")).unwrap();
    let site = cfg.site("orders").unwrap();
    let req = Request {
        target: DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        },
        by: "test".into(),
        reason: "catch-up on real replication".into(),
        max_wait_secs: Some(max_wait),
        drill: false,
    };
    switchover::start(site, 1, &req, Utc::now())
}

/// Scenario 1: writes arrive until the fence; every committed row is on the target (RPO 0).
#[tokio::test]
async fn every_row_committed_before_the_fence_is_on_the_target_once_caught_up() {
    let Some((src, rep)) = pair("rpo0").await else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(src.app_opts(), stop.clone());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut r = record(30);
    r = switchover::advance(&r, Observation::FenceAsked, Utc::now())
        .unwrap()
        .record;
    // The fence: read_only binds the application user (no SUPER), as the parameter group's
    // read_only=1 binds RDS's master user.
    src.root_exec(&["SET GLOBAL read_only=1"]).await;
    let committed = tokio::time::timeout(Duration::from_secs(10), w)
        .await
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(
        committed.len() > 20,
        "the writer committed {} rows",
        committed.len()
    );
    r = switchover::advance(&r, Observation::Fenced, Utc::now())
        .unwrap()
        .record;
    let captured = capture(&src.endpoint(), "admin", PW, t(), None)
        .await
        .unwrap();
    // root (SUPER) still writes, as RDS's rdsadmin heartbeat does: the live position moves on,
    // the captured one does not.
    src.root_exec(&["INSERT INTO shop.orders VALUES (999999, 'heartbeat')"])
        .await;
    r = switchover::advance(&r, Observation::Captured(captured.clone()), Utc::now())
        .unwrap()
        .record;
    let Action::WaitForTarget { position, secs } = switchover::next_action(&r, Utc::now()) else {
        panic!("{:?}", r.phase)
    };
    assert_eq!(position, captured);
    let applied = wait_applied(&rep.endpoint(), "admin", PW, t(), None, &position, secs)
        .await
        .unwrap();
    r = switchover::advance(&r, Observation::Applied(applied.clone()), Utc::now())
        .unwrap()
        .record;
    assert_eq!(
        r.phase,
        SwPhase::Promoting,
        "captured {captured}, applied {applied}"
    );
    // Every committed row is on the target: nothing lost.
    let on_target = rep.ids().await;
    let missing: Vec<_> = committed
        .iter()
        .filter(|i| !on_target.contains(i))
        .collect();
    assert!(missing.is_empty(), "missing on the target: {missing:?}");
    r = switchover::advance(&r, Observation::PromotionRequested, Utc::now())
        .unwrap()
        .record;
    r = switchover::advance(&r, Observation::WritesVerified, Utc::now())
        .unwrap()
        .record;
    let m = r.measured.unwrap();
    assert_eq!(m.rpo_transactions, Some(0));
    eprintln!(
        "switchover catch-up on real MariaDB: {} rows committed until the fence, all on the target; fence asked → catch-up judged {} ms (no promotion in this test: not a switchover RTO)",
        committed.len(),
        m.rto_ms
    );
}

/// Scenario 2: the target lags (its SQL thread stopped) past max_wait → rolled back.
#[tokio::test]
async fn a_lagging_target_times_out_and_the_switchover_rolls_back() {
    let Some((src, rep)) = pair("lag").await else {
        return;
    };
    rep.root_exec(&["STOP SLAVE SQL_THREAD"]).await;
    src.root_exec(&[
        "INSERT INTO shop.orders VALUES (1, 'a')",
        "INSERT INTO shop.orders VALUES (2, 'b')",
    ])
    .await;
    let mut r = record(2);
    r = switchover::advance(&r, Observation::FenceAsked, Utc::now())
        .unwrap()
        .record;
    src.root_exec(&["SET GLOBAL read_only=1"]).await;
    r = switchover::advance(&r, Observation::Fenced, Utc::now())
        .unwrap()
        .record;
    let captured = capture(&src.endpoint(), "admin", PW, t(), None)
        .await
        .unwrap();
    r = switchover::advance(&r, Observation::Captured(captured), Utc::now())
        .unwrap()
        .record;
    let Action::WaitForTarget { position, secs } = switchover::next_action(&r, Utc::now()) else {
        panic!("{:?}", r.phase)
    };
    let began = Instant::now();
    let applied = wait_applied(&rep.endpoint(), "admin", PW, t(), None, &position, secs)
        .await
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "the wait is bounded by max_wait"
    );
    assert!(!switchover::caught_up(&position, &applied));
    let a = switchover::advance(&r, Observation::Applied(applied), Utc::now()).unwrap();
    // Not caught up; the deadline passes on the next look.
    let a = if a.record.phase == SwPhase::CatchingUp {
        tokio::time::sleep(Duration::from_millis(
            switchover::remaining(&a.record, Utc::now())
                .num_milliseconds()
                .max(0) as u64
                + 10,
        ))
        .await;
        switchover::advance(&a.record, Observation::Tick, Utc::now()).unwrap()
    } else {
        a
    };
    assert_eq!(a.record.phase, SwPhase::RollingBack);
    assert!(a.message.unwrap().contains("DNS was not touched"));
    assert_eq!(
        switchover::next_action(&a.record, Utc::now()),
        Action::UndoFence
    );
    // The rollback's effect on the old primary: writable again for the application.
    src.root_exec(&["SET GLOBAL read_only=0"]).await;
    let mut c = mysql_async::Conn::new(src.app_opts()).await.unwrap();
    c.query_drop("INSERT INTO shop.orders VALUES (3, 'after rollback')")
        .await
        .unwrap();
    c.disconnect().await.unwrap();
}

/// Review finding d: which MariaDB variables are compared, on real servers. The captured
/// position is the primary's `gtid_binlog_pos`; the target's applied one must be
/// `gtid_slave_pos` — what its replication SQL thread applied, the position `MASTER_GTID_WAIT`
/// itself waits on (MariaDB KB, "MASTER_GTID_WAIT", "gtid_slave_pos") — not
/// `gtid_current_pos`, which for a domain takes the target's OWN binlog GTID when it carries the
/// target's server_id and a higher sequence (MariaDB KB, "gtid_current_pos"). A local write on
/// the replica by a user `read_only` does not bind (RDS's `rdsadmin` heartbeat, a SUPER session)
/// gets such a GTID: `gtid_current_pos` then shows it in place of the primary's GTID in that
/// domain (while the replica has not applied the primary's newer ones). The comparison is per
/// (domain, server_id), so the local GTID cannot make the target read "caught up".
#[tokio::test]
async fn mariadb_applied_position_is_gtid_slave_pos_not_gtid_current_pos() {
    let Some((src, rep)) = pair("vars").await else {
        return;
    };
    rep.root_exec(&["STOP SLAVE SQL_THREAD"]).await;
    src.root_exec(&[
        "INSERT INTO shop.orders VALUES (1, 'a')",
        "INSERT INTO shop.orders VALUES (2, 'b')",
        "INSERT INTO shop.orders VALUES (3, 'c')",
    ])
    .await;
    // Local writes on the replica by root (read_only does not bind it), as a heartbeat's would be.
    rep.root_exec(&[
        "CREATE DATABASE admin_local",
        "CREATE TABLE admin_local.heartbeat (id INT PRIMARY KEY, at BIGINT)",
        "INSERT INTO admin_local.heartbeat VALUES (1, 1)",
        "UPDATE admin_local.heartbeat SET at = 2",
        "UPDATE admin_local.heartbeat SET at = 3",
        "UPDATE admin_local.heartbeat SET at = 4",
        "UPDATE admin_local.heartbeat SET at = 5",
    ])
    .await;
    let captured = capture(&src.endpoint(), "admin", PW, t(), None)
        .await
        .unwrap();
    let current_pos = || async {
        let mut c = mysql_async::Conn::new(rep.root_opts()).await.unwrap();
        let v: String = c
            .query_first("SELECT @@global.gtid_current_pos")
            .await
            .unwrap()
            .unwrap();
        c.disconnect().await.unwrap();
        failover_policy::gtid::Position::MariadbGtid(
            failover_policy::gtid::MariaPos::parse(&v).unwrap(),
        )
    };
    let applied = wait_applied(&rep.endpoint(), "admin", PW, t(), None, &captured, 1)
        .await
        .unwrap();
    assert!(
        !switchover::caught_up(&captured, &applied),
        "gtid_slave_pos {applied} must not be caught up with {captured}: the rows are not applied"
    );
    assert!(!switchover::caught_up(&captured, &current_pos().await));
    assert_eq!(rep.ids().await, Vec::<u64>::new());
    // Once the SQL thread applies them, gtid_slave_pos is caught up.
    rep.root_exec(&["START SLAVE SQL_THREAD"]).await;
    let applied = wait_applied(&rep.endpoint(), "admin", PW, t(), None, &captured, 10)
        .await
        .unwrap();
    assert!(
        switchover::caught_up(&captured, &applied),
        "{applied} vs {captured}"
    );
    assert_eq!(rep.ids().await, vec![1, 2, 3]);
    let current = current_pos().await;
    println!("captured {captured}; target gtid_slave_pos {applied}; gtid_current_pos {current}");
}
