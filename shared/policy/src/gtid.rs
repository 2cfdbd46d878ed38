//! Replication positions and their arithmetic: what the old primary has that the new one never
//! received.
//!
//! Three shapes, as the servers report them:
//! - **MySQL GTID sets** (`@@global.gtid_executed`): `uuid:1-5:7-9,uuid2:1-3`, one or more source
//!   UUIDs, each with a list of closed intervals; MySQL 8.3+ may add a tag (`uuid:tag:1-3`). The
//!   server prints newlines after the commas. Reference: MySQL 8.0 manual, 19.1.3.1 "GTID
//!   Format and Storage".
//! - **MariaDB GTID positions** (`@@gtid_binlog_pos`, `@@gtid_current_pos`: one
//!   `domain-server-seq` per replication domain; `@@gtid_binlog_state`: one per domain and
//!   server). Within a domain, sequence numbers grow by one per transaction (MariaDB KB, "Global
//!   Transaction ID": "the sequence number is increased by one for each new event group"). The
//!   difference is taken per (domain, server): once promoted, the new primary writes in the same
//!   domain under its own server id, so a per-domain comparison would count its new writes as
//!   received. Read `@@gtid_binlog_state` on both sides for that reason.
//! - **Binlog coordinates** (`SHOW MASTER STATUS`, or `Relay_Master_Log_File` /
//!   `Exec_Master_Log_Pos` of the replica) when GTIDs are off: only a byte range can be named.
//!
//! [`lost`] computes the difference: the transactions in the old primary's position that the
//! promoted replica's recorded position does not contain. Pure and exact; rendered as ranges.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a position string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("not a MySQL GTID set: `{input}`: {why}")]
    MysqlGtid { input: String, why: String },
    #[error("not a MariaDB GTID position: `{input}`: {why}")]
    MariaGtid { input: String, why: String },
    #[error("not binlog coordinates: `{input}`: {why}")]
    Binlog { input: String, why: String },
    #[error("the two positions are of different kinds ({old} on the old primary, {new} recorded at promotion): they cannot be compared")]
    Mismatch {
        old: &'static str,
        new: &'static str,
    },
}

/// A MySQL GTID set: per source (`uuid` or `uuid:tag`, lower-case), sorted disjoint closed
/// intervals of transaction numbers, adjacent intervals merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtidSet(pub BTreeMap<String, Vec<(u64, u64)>>);

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_tag(s: &str) -> bool {
    // MySQL 8.3: a tag is 1-32 characters, a letter or underscore followed by letters, digits
    // or underscores.
    (1..=32).contains(&s.len())
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn normalize(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `a` minus `b`, both normalized.
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = vec![];
    for &(mut lo, hi) in a {
        for &(blo, bhi) in b {
            if bhi < lo || blo > hi {
                continue;
            }
            if blo > lo {
                out.push((lo, blo - 1));
            }
            if bhi >= hi {
                lo = u64::MAX;
                break;
            }
            lo = bhi + 1;
        }
        if lo != u64::MAX && lo <= hi {
            out.push((lo, hi));
        }
    }
    out
}

impl GtidSet {
    /// Parses `@@global.gtid_executed` as the server prints it (whitespace and newlines allowed;
    /// the empty string is the empty set).
    pub fn parse(input: &str) -> Result<Self, PositionError> {
        let err = |why: String| PositionError::MysqlGtid {
            input: input.to_string(),
            why,
        };
        let mut map: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let cleaned: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if cleaned.is_empty() {
            return Ok(Self::default());
        }
        for part in cleaned.split(',') {
            let mut fields = part.split(':');
            let uuid = fields.next().unwrap_or_default().to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return Err(err(format!("`{uuid}` is not a source UUID")));
            }
            let mut tag: Option<String> = None;
            let mut any = false;
            for f in fields {
                if f.chars().next().is_some_and(|c| !c.is_ascii_digit()) {
                    if !is_tag(f) {
                        return Err(err(format!("`{f}` is neither an interval nor a tag")));
                    }
                    tag = Some(f.to_ascii_lowercase());
                    continue;
                }
                let (a, b) = match f.split_once('-') {
                    Some((a, b)) => (a, b),
                    None => (f, f),
                };
                let (a, b) = match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Err(err(format!("`{f}` is not an interval"))),
                };
                if a == 0 || b < a {
                    return Err(err(format!(
                        "`{f}`: transaction numbers start at 1 and intervals run upwards"
                    )));
                }
                let key = match &tag {
                    Some(t) => format!("{uuid}:{t}"),
                    None => uuid.clone(),
                };
                map.entry(key).or_default().push((a, b));
                any = true;
            }
            if !any {
                return Err(err(format!("`{part}` names no transactions")));
            }
        }
        Ok(Self(
            map.into_iter().map(|(k, v)| (k, normalize(v))).collect(),
        ))
    }

    /// The transactions in `self` that are not in `other`.
    pub fn minus(&self, other: &GtidSet) -> GtidSet {
        let empty = vec![];
        GtidSet(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), subtract(v, other.0.get(k).unwrap_or(&empty))))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        )
    }

    pub fn count(&self) -> u64 {
        self.0.values().flatten().map(|(a, b)| b - a + 1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One line per source: `uuid:1-5:7-9`.
    pub fn ranges(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(k, v)| {
                let iv: Vec<String> = v
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                format!("{k}:{}", iv.join(":"))
            })
            .collect()
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ranges().join(","))
    }
}

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

/// A MariaDB GTID position or binlog state: the last GTID of each (domain, server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariaPos(pub Vec<MariaGtid>);

/// What the old primary has past the new one in one MariaDB domain: sequence numbers
/// `first..=last`, the last written by server `server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariaRange {
    pub domain: u32,
    pub server: u32,
    pub first: u64,
    pub last: u64,
}

impl MariaPos {
    pub fn parse(input: &str) -> Result<Self, PositionError> {
        let err = |why: String| PositionError::MariaGtid {
            input: input.to_string(),
            why,
        };
        let mut map: BTreeMap<(u32, u32), MariaGtid> = BTreeMap::new();
        let cleaned: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if cleaned.is_empty() {
            return Ok(Self::default());
        }
        for part in cleaned.split(',') {
            let nums: Vec<&str> = part.split('-').collect();
            let [d, s, q] = nums.as_slice() else {
                return Err(err(format!("`{part}` is not domain-server-seq")));
            };
            let (Ok(domain), Ok(server), Ok(seq)) =
                (d.parse::<u32>(), s.parse::<u32>(), q.parse::<u64>())
            else {
                return Err(err(format!("`{part}` is not three numbers")));
            };
            let g = MariaGtid {
                domain,
                server,
                seq,
            };
            if map.insert((domain, server), g).is_some() {
                return Err(err(format!(
                    "{domain}-{server} appears twice (one GTID per domain and server)"
                )));
            }
        }
        Ok(Self(map.into_values().collect()))
    }

    /// Per (domain, server), the sequence numbers past `other`'s (all of them for a pair
    /// `other` lacks).
    pub fn minus(&self, other: &MariaPos) -> Vec<MariaRange> {
        self.0
            .iter()
            .filter_map(|g| {
                let base = other
                    .0
                    .iter()
                    .find(|o| (o.domain, o.server) == (g.domain, g.server))
                    .map_or(0, |o| o.seq);
                (g.seq > base).then_some(MariaRange {
                    domain: g.domain,
                    server: g.server,
                    first: base + 1,
                    last: g.seq,
                })
            })
            .collect()
    }
}

impl fmt::Display for MariaPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|g| format!("{}-{}-{}", g.domain, g.server, g.seq))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Binlog coordinates in the old primary's binlog (`mysql-bin.000042`, byte offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl BinlogPos {
    /// `file:pos`.
    pub fn parse(input: &str) -> Result<Self, PositionError> {
        let err = |why: &str| PositionError::Binlog {
            input: input.to_string(),
            why: why.into(),
        };
        let (file, pos) = input
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| err("expected file:pos"))?;
        let pos = pos
            .parse()
            .map_err(|_| err("the position is not a number"))?;
        if file.is_empty() || Self::seq(file).is_none() {
            return Err(err("the file name does not end in .NNNNNN"));
        }
        Ok(Self {
            file: file.into(),
            pos,
        })
    }

    fn seq(file: &str) -> Option<u64> {
        file.rsplit_once('.')?.1.parse().ok()
    }

    /// Whether `self` is past `other` in binlog order (file sequence, then offset).
    fn after(&self, other: &BinlogPos) -> bool {
        (Self::seq(&self.file), self.pos) > (Self::seq(&other.file), other.pos)
    }

    /// The binlog's base name (`mysql-bin` of `mysql-bin.000042`).
    fn base(&self) -> &str {
        self.file.rsplit_once('.').map_or("", |(b, _)| b)
    }

    /// The per-file pieces of the range `self .. end` in one server's binlog, rotation included:
    /// the first file from `self.pos`, the files between whole, the last up to `end.pos`. Files
    /// are numbered consecutively by the server, so the names between are known; their suffix
    /// keeps the width of `self.file`'s. Empty when `end` is not past `self`. Refused when the two
    /// are not in one binlog (different base names), or the span is more than
    /// [`MAX_BINLOG_FILES`] files (read it with mysqlbinlog instead).
    pub fn segments_to(&self, end: &BinlogPos) -> Result<Vec<BinlogSegment>, PositionError> {
        let err = |why: String| PositionError::Binlog {
            input: format!("{self} .. {end}"),
            why,
        };
        if self.base() != end.base() {
            return Err(err(format!(
                "`{}` and `{}` are not files of one binlog",
                self.file, end.file
            )));
        }
        if !end.after(self) {
            return Ok(vec![]);
        }
        let (Some(a), Some(b)) = (Self::seq(&self.file), Self::seq(&end.file)) else {
            return Err(err("the file name does not end in .NNNNNN".into()));
        };
        if b - a >= MAX_BINLOG_FILES {
            return Err(err(format!(
                "{} files: more than {MAX_BINLOG_FILES} to read",
                b - a + 1
            )));
        }
        let width = self.file.len() - self.base().len() - 1;
        Ok((a..=b)
            .map(|n| BinlogSegment {
                file: if n == a {
                    self.file.clone()
                } else if n == b {
                    end.file.clone()
                } else {
                    format!("{}.{n:0width$}", self.base())
                },
                from: if n == a { self.pos } else { 4 },
                to: (n == b).then_some(end.pos),
            })
            .collect())
    }
}

/// At most this many binlog files are read to count a lost range.
pub const MAX_BINLOG_FILES: u64 = 64;

/// One file's part of a binlog range: events starting at `from` (4, the first event, for a file
/// after the first) and before `to` (`None`: to the end of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogSegment {
    pub file: String,
    pub from: u64,
    pub to: Option<u64>,
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// A server's replication position, in whichever shape its engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum Position {
    MysqlGtid(GtidSet),
    MariadbGtid(MariaPos),
    /// For the promoted replica: the last source coordinates it *executed*
    /// (`Relay_Master_Log_File:Exec_Master_Log_Pos`); for the old primary: `SHOW MASTER STATUS`.
    Binlog(BinlogPos),
}

impl Position {
    pub fn kind(&self) -> &'static str {
        match self {
            Position::MysqlGtid(_) => "mysql-gtid",
            Position::MariadbGtid(_) => "mariadb-gtid",
            Position::Binlog(_) => "binlog",
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::MysqlGtid(s) => write!(f, "gtid_executed {s}"),
            Position::MariadbGtid(p) => write!(f, "gtid_binlog_state {p}"),
            Position::Binlog(b) => write!(f, "binlog {b}"),
        }
    }
}

/// What the old primary holds that the new primary never received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Transactions lost, when the positions can count them (GTIDs); `None` for a binlog range,
    /// which names bytes, not transactions.
    pub count: Option<u64>,
    /// The lost transactions as ranges (`uuid:1-5`, `domain 0: 0-1-101..0-1-105`,
    /// `mysql-bin.000042:154 .. mysql-bin.000043:1200`).
    pub ranges: Vec<String>,
}

impl Lost {
    pub fn is_none(&self) -> bool {
        self.ranges.is_empty()
    }

    /// A binlog range with its transactions counted on the old primary (`SHOW BINLOG EVENTS`);
    /// a count the positions already give is kept.
    pub fn counted(mut self, transactions: Option<u64>) -> Self {
        if self.count.is_none() && !self.is_none() {
            self.count = transactions;
        }
        self
    }
}

/// The transactions in `old` (the old primary, read when it came back) missing from `new` (the
/// promoted replica's position recorded at promotion).
pub fn lost(old: &Position, new: &Position) -> Result<Lost, PositionError> {
    match (old, new) {
        (Position::MysqlGtid(o), Position::MysqlGtid(n)) => {
            let d = o.minus(n);
            Ok(Lost {
                count: Some(d.count()),
                ranges: d.ranges(),
            })
        }
        (Position::MariadbGtid(o), Position::MariadbGtid(n)) => {
            let d = o.minus(n);
            Ok(Lost {
                count: Some(d.iter().map(|r| r.last - r.first + 1).sum()),
                ranges: d
                    .iter()
                    .map(|r| {
                        if r.first == r.last {
                            format!("domain {}: {}-{}-{}", r.domain, r.domain, r.server, r.first)
                        } else {
                            format!(
                                "domain {}: {d}-{s}-{}..{d}-{s}-{}",
                                r.domain,
                                r.first,
                                r.last,
                                d = r.domain,
                                s = r.server
                            )
                        }
                    })
                    .collect(),
            })
        }
        (Position::Binlog(o), Position::Binlog(n)) => Ok(Lost {
            count: None,
            ranges: if n.segments_to(o)?.is_empty() {
                vec![]
            } else {
                vec![format!("{n} .. {o}")]
            },
        }),
        (o, n) => Err(PositionError::Mismatch {
            old: o.kind(),
            new: n.kind(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "8e26c1a2-0b4f-11ee-8c90-0242ac120002";

    fn my(s: &str) -> Position {
        Position::MysqlGtid(GtidSet::parse(s).unwrap())
    }
    fn ma(s: &str) -> Position {
        Position::MariadbGtid(MariaPos::parse(s).unwrap())
    }

    #[test]
    fn mysql_sets_parse_as_the_server_prints_them_and_merge_adjacent_intervals() {
        let s = GtidSet::parse(&format!("{A}:1-5:6-9:12,\n{}:3:1-2", B.to_uppercase())).unwrap();
        assert_eq!(s.ranges(), vec![format!("{A}:1-9:12"), format!("{B}:1-3")]);
        assert_eq!(s.count(), 13);
        assert_eq!(GtidSet::parse("").unwrap().count(), 0);
        assert_eq!(GtidSet::parse(" \n").unwrap(), GtidSet::default());
    }

    #[test]
    fn mysql_sets_with_tags_keep_each_tag_apart() {
        let s = GtidSet::parse(&format!("{A}:1-3:batch:1-2")).unwrap();
        assert_eq!(
            s.ranges(),
            vec![format!("{A}:1-3"), format!("{A}:batch:1-2")]
        );
        let lost = s.minus(&GtidSet::parse(&format!("{A}:1-3")).unwrap());
        assert_eq!(lost.ranges(), vec![format!("{A}:batch:1-2")]);
    }

    #[test]
    fn malformed_mysql_sets_are_typed_errors() {
        for bad in [
            "nope:1-3",
            A,
            &format!("{A}:0-3"),
            &format!("{A}:5-3"),
            &format!("{A}:1-x"),
            &format!("{A}:1--3"),
            &format!("{A}:9bad:1"),
        ] {
            assert!(
                matches!(GtidSet::parse(bad), Err(PositionError::MysqlGtid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn mysql_difference_counts_every_missing_transaction_across_uuids_and_gaps() {
        // The old primary ran A up to 100 with a gap at 50-59 (purged/skipped), and B 1-20.
        // The replica had applied A 1-40 and 45-49, and B 1-20.
        let old = my(&format!("{A}:1-49:60-100,{B}:1-20"));
        let new = my(&format!("{A}:1-40:45-49,{B}:1-20"));
        let l = lost(&old, &new).unwrap();
        assert_eq!(l.ranges, vec![format!("{A}:41-44:60-100")]);
        assert_eq!(l.count, Some(4 + 41));
    }

    #[test]
    fn mysql_difference_of_a_source_the_replica_never_saw_is_all_of_it() {
        let l = lost(&my(&format!("{A}:1-10,{B}:7")), &my(&format!("{A}:1-10"))).unwrap();
        assert_eq!(l.ranges, vec![format!("{B}:7")]);
        assert_eq!(l.count, Some(1));
    }

    #[test]
    fn mysql_difference_ignores_what_only_the_new_primary_has() {
        // After promotion the new primary writes under its own UUID; none of that was lost.
        let l = lost(
            &my(&format!("{A}:1-10")),
            &my(&format!("{A}:1-10,{B}:1-500")),
        )
        .unwrap();
        assert!(l.is_none());
        assert_eq!(l.count, Some(0));
    }

    #[test]
    fn interval_subtraction_matches_a_brute_force_set_difference() {
        use std::collections::BTreeSet;
        let sets: [&[(u64, u64)]; 6] = [
            &[(1, 10)],
            &[(3, 4), (8, 12)],
            &[(1, 1), (5, 5), (10, 20)],
            &[],
            &[(2, 9)],
            &[(11, 11), (13, 30)],
        ];
        let expand =
            |v: &[(u64, u64)]| -> BTreeSet<u64> { v.iter().flat_map(|&(a, b)| a..=b).collect() };
        for a in sets {
            for b in sets {
                let got = expand(&subtract(a, b));
                let want: BTreeSet<u64> = expand(a).difference(&expand(b)).copied().collect();
                assert_eq!(got, want, "{a:?} - {b:?}");
            }
        }
    }

    #[test]
    fn mariadb_difference_counts_sequence_numbers_per_domain() {
        let old = ma("0-1-105,1-1-7");
        let new = ma("0-1-100,1-1-7");
        let l = lost(&old, &new).unwrap();
        assert_eq!(l.count, Some(5));
        assert_eq!(l.ranges, vec!["domain 0: 0-1-101..0-1-105".to_string()]);
        let l = lost(&ma("0-1-101,2-9-3"), &ma("0-1-100")).unwrap();
        assert_eq!(l.count, Some(4));
        assert_eq!(
            l.ranges,
            vec![
                "domain 0: 0-1-101".to_string(),
                "domain 2: 2-9-1..2-9-3".to_string()
            ]
        );
        assert!(lost(&ma("0-1-100"), &ma("0-1-100")).unwrap().is_none());
        assert!(lost(&ma(""), &ma("0-1-100")).unwrap().is_none());
    }

    #[test]
    fn mariadb_writes_the_new_primary_took_under_its_own_server_id_do_not_hide_the_loss() {
        // The replica (server 2) had applied 0-1-100, was promoted, and wrote 0-2-101..103 itself
        // before its position was read; the old primary (server 1) had committed up to 0-1-105.
        let l = lost(&ma("0-1-105"), &ma("0-1-100,0-2-103")).unwrap();
        assert_eq!(l.count, Some(5));
        assert_eq!(l.ranges, vec!["domain 0: 0-1-101..0-1-105".to_string()]);
    }

    #[test]
    fn malformed_mariadb_positions_are_typed_errors() {
        for bad in ["0-1", "0-1-x", "a-b-c", "0-1-5,0-1-6", "0-1-5-6"] {
            assert!(
                matches!(MariaPos::parse(bad), Err(PositionError::MariaGtid { .. })),
                "{bad}"
            );
        }
        assert_eq!(MariaPos::parse(" 0-1-5 ").unwrap().to_string(), "0-1-5");
    }

    #[test]
    fn binlog_positions_name_a_byte_range_in_file_order() {
        let b = |s: &str| Position::Binlog(BinlogPos::parse(s).unwrap());
        let l = lost(&b("mysql-bin.000043:1200"), &b("mysql-bin.000042:154")).unwrap();
        assert_eq!(l.count, None);
        assert_eq!(
            l.ranges,
            vec!["mysql-bin.000042:154 .. mysql-bin.000043:1200"]
        );
        // Numeric file order, not string order.
        assert!(lost(&b("mysql-bin.999999:4"), &b("mysql-bin.1000000:4"))
            .unwrap()
            .is_none());
        assert!(lost(&b("mysql-bin.000042:154"), &b("mysql-bin.000042:154"))
            .unwrap()
            .is_none());
        for bad in [
            "mysql-bin.000042",
            "mysql-bin:4",
            ":4",
            "mysql-bin.000042:x",
        ] {
            assert!(BinlogPos::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_binlog_range_is_split_per_file_across_rotations() {
        let p = |s: &str| BinlogPos::parse(s).unwrap();
        let seg = |file: &str, from, to| BinlogSegment {
            file: file.into(),
            from,
            to,
        };
        assert_eq!(
            p("mysql-bin.000042:154")
                .segments_to(&p("mysql-bin.000042:900"))
                .unwrap(),
            vec![seg("mysql-bin.000042", 154, Some(900))]
        );
        // Two rotations: the file between is read whole, from its first event.
        assert_eq!(
            p("mysql-bin-changelog.000998:1200")
                .segments_to(&p("mysql-bin-changelog.001000:310"))
                .unwrap(),
            vec![
                seg("mysql-bin-changelog.000998", 1200, None),
                seg("mysql-bin-changelog.000999", 4, None),
                seg("mysql-bin-changelog.001000", 4, Some(310)),
            ]
        );
        // The suffix grows past its width as the server's does.
        assert_eq!(
            p("b.999999:7").segments_to(&p("b.1000000:9")).unwrap(),
            vec![seg("b.999999", 7, None), seg("b.1000000", 4, Some(9))]
        );
        // Not past: nothing to read.
        assert!(p("b.000002:4")
            .segments_to(&p("b.000001:900"))
            .unwrap()
            .is_empty());
        assert!(p("b.000002:4")
            .segments_to(&p("b.000002:4"))
            .unwrap()
            .is_empty());
        // Not one binlog, or too many files: refused, not guessed.
        assert!(p("a.000001:4").segments_to(&p("b.000002:4")).is_err());
        assert!(p("b.000001:4")
            .segments_to(&p(&format!("b.{:06}:4", 1 + MAX_BINLOG_FILES)))
            .is_err());
        let b = |s: &str| Position::Binlog(p(s));
        assert!(lost(&b("a.000002:4"), &b("b.000001:4")).is_err());
        let l = lost(&b("b.000002:80"), &b("b.000001:4")).unwrap();
        assert_eq!(l.clone().counted(Some(3)).count, Some(3));
        let none = lost(&b("b.000001:4"), &b("b.000001:4")).unwrap();
        assert_eq!(none.counted(Some(3)).count, None);
    }

    #[test]
    fn positions_of_different_kinds_are_refused_not_guessed() {
        assert!(matches!(
            lost(&ma("0-1-5"), &my(&format!("{A}:1-5"))),
            Err(PositionError::Mismatch {
                old: "mariadb-gtid",
                new: "mysql-gtid"
            })
        ));
    }

    #[test]
    fn positions_survive_the_ledger() {
        for p in [
            my(&format!("{A}:1-5:7,{B}:1")),
            ma("0-1-5,3-2-9"),
            Position::Binlog(BinlogPos::parse("mysql-bin.000001:4").unwrap()),
        ] {
            let j = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Position>(&j).unwrap(), p, "{j}");
        }
    }
}
