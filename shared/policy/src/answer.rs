//! What resolvers get: the pinner's check of the answer the zone actually serves, before
//! `DnsPinned`.
//!
//! Route 53's `INSYNC` says every Route 53 name server has the change; it does not say what they
//! answer. A failover pair answers with its PRIMARY while the PRIMARY's health check is healthy and
//! with its SECONDARY otherwise ("Active-passive failover", Route 53 Developer Guide), so the answer
//! depends on a health check the control plane does not show. The pinner therefore asks every
//! authoritative name server of the zone directly — a CNAME query and an A query of the writer
//! name — and only a server that answers authoritatively with `name CNAME host` counts. With the
//! control plane read back (both records of the pair hold the host) this covers every answer Route
//! 53 can give: the one served now (the data plane) and the one it would switch to (the records).
//!
//! Pure: the adapter (`failover_adapters::resolve`) sends the queries and hands back [`Answer`]s.

use serde::{Deserialize, Serialize};

use crate::pin::same_name;

/// The query types asked of every name server: the record itself, and what an application's
/// resolver asks for (an A query, which an authoritative server answers with the CNAME).
pub const QUERY_TYPES: [&str; 2] = ["CNAME", "A"];

/// The standard DNS port, for a name server written without one (Route 53's delegation sets).
pub const DNS_PORT: u16 = 53;

/// A name server as `host`, `host:port`, `ip`, `ip:port` or `[ipv6]:port`: its host and port.
pub fn server_address(server: &str) -> Option<(String, u16)> {
    let s = server.trim().trim_end_matches('.');
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some((ip.to_string(), DNS_PORT));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_end_matches('.'),
            p.parse::<u16>().ok().filter(|p| *p > 0)?,
        ),
        None => (s, DNS_PORT),
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    ok.then(|| (host.to_ascii_lowercase(), port))
}

/// One resource record of an answer section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub name: String,
    pub record_type: String,
    pub value: String,
    pub ttl: u32,
}

/// What one name server answered to one query, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The server as it was asked (`ns-1.awsdns-01.org`, `127.0.0.1:5353`).
    pub server: String,
    pub query_type: String,
    /// The response's result: `Ok` with its code (`NoError`, `NXDomain`, ...) and records, or
    /// `Err` with why no answer came (timeout, unreachable, unresolvable server name).
    pub outcome: Result<Served, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub response_code: String,
    /// The AA bit: a server answering for a zone it does not hold is not evidence.
    pub authoritative: bool,
    pub records: Vec<AnswerRecord>,
}

/// The answer every server gave, for the `DnsPinned` message: `CNAME host TTL 30 from 4 of 4 name
/// servers (ns-1…, ns-2…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub summary: String,
    /// The TTL the servers answered with (the lowest seen).
    pub ttl: u32,
}

/// Why the pin is not verified: what was seen, server by server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} does not resolve to {host} at every authoritative name server: {seen}")]
pub struct NotVerified {
    pub name: String,
    pub host: String,
    pub seen: String,
}

fn describe(a: &Answer) -> String {
    match &a.outcome {
        Err(why) => format!("{} ({}): no answer: {why}", a.server, a.query_type),
        Ok(s) if s.records.is_empty() => format!(
            "{} ({}): {} with no records{}",
            a.server,
            a.query_type,
            s.response_code,
            if s.authoritative {
                ""
            } else {
                ", not authoritative"
            }
        ),
        Ok(s) => format!(
            "{} ({}): {}{}",
            a.server,
            a.query_type,
            s.records
                .iter()
                .map(|r| format!("{} {} TTL {}", r.record_type, r.value, r.ttl))
                .collect::<Vec<_>>()
                .join(", "),
            if s.authoritative {
                ""
            } else {
                " (not authoritative)"
            }
        ),
    }
}

/// The CNAME of `name` this answer carries, when it is an authoritative NOERROR answer.
fn cname_of<'a>(a: &'a Answer, name: &str) -> Option<&'a AnswerRecord> {
    let s = a.outcome.as_ref().ok()?;
    if !s.authoritative || s.response_code != "NoError" {
        return None;
    }
    s.records
        .iter()
        .find(|r| same_name(&r.name, name) && r.record_type.eq_ignore_ascii_case("CNAME"))
}

/// The distinct CNAME values of `name` the servers answered authoritatively (lower case, no
/// trailing dot), in the order first seen.
pub fn cnames(name: &str, answers: &[Answer]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for r in answers.iter().filter_map(|a| cname_of(a, name)) {
        let v = r.value.trim_end_matches('.').to_ascii_lowercase();
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Whether every answer says `name CNAME host`, authoritatively. `answers` holds every query
/// ([`QUERY_TYPES`]) of every name server of the zone; none at all is not a verification.
pub fn judge(name: &str, host: &str, answers: &[Answer]) -> Result<Verified, NotVerified> {
    let not = |seen: String| NotVerified {
        name: name.trim_end_matches('.').to_owned(),
        host: host.to_owned(),
        seen,
    };
    if answers.is_empty() {
        return Err(not(
            "no name server to ask (the zone's delegation set is empty and the site names none)"
                .into(),
        ));
    }
    let wrong: Vec<String> = answers
        .iter()
        .filter(|a| !cname_of(a, name).is_some_and(|r| same_name(&r.value, host)))
        .map(describe)
        .collect();
    if !wrong.is_empty() {
        return Err(not(wrong.join("; ")));
    }
    let ttl = answers
        .iter()
        .filter_map(|a| cname_of(a, name).map(|r| r.ttl))
        .min()
        .unwrap_or_default();
    let mut servers: Vec<&str> = answers.iter().map(|a| a.server.as_str()).collect();
    servers.dedup();
    Ok(Verified {
        summary: format!(
            "verified: {} CNAME {host} TTL {ttl} from {} ({}), to {} queries",
            name.trim_end_matches('.'),
            match servers.len() {
                1 => "the one authoritative name server".to_owned(),
                n => format!("all {n} authoritative name servers"),
            },
            servers.join(", "),
            QUERY_TYPES.join(" and ")
        ),
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(server: &str, qt: &str, value: &str, ttl: u32) -> Answer {
        Answer {
            server: server.into(),
            query_type: qt.into(),
            outcome: Ok(Served {
                response_code: "NoError".into(),
                authoritative: true,
                records: vec![AnswerRecord {
                    name: "db.example.com.".into(),
                    record_type: "CNAME".into(),
                    value: value.into(),
                    ttl,
                }],
            }),
        }
    }

    #[test]
    fn name_servers_are_host_and_port_with_53_by_default() {
        assert_eq!(
            server_address("ns-1.awsdns-01.org."),
            Some(("ns-1.awsdns-01.org".into(), 53))
        );
        assert_eq!(
            server_address("127.0.0.1:5353"),
            Some(("127.0.0.1".into(), 5353))
        );
        assert_eq!(server_address("::1"), Some(("::1".into(), 53)));
        assert_eq!(server_address("[::1]:5300"), Some(("::1".into(), 5300)));
        for bad in ["", "ns 1", "ns1:0", "ns1:99999", "ns1:x", "a..b"] {
            assert_eq!(server_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_server_and_query_must_answer_the_host_authoritatively() {
        let ok = [
            served("ns1", "CNAME", "new.rds.amazonaws.com.", 30),
            served("ns1", "A", "new.rds.amazonaws.com.", 30),
            served("ns2", "CNAME", "NEW.rds.amazonaws.com", 30),
            served("ns2", "A", "new.rds.amazonaws.com.", 30),
        ];
        let v = judge("db.example.com", "new.rds.amazonaws.com", &ok).unwrap();
        assert_eq!(v.ttl, 30);
        assert!(
            v.summary.contains("CNAME new.rds.amazonaws.com TTL 30"),
            "{}",
            v.summary
        );
        assert!(
            v.summary
                .contains("all 2 authoritative name servers (ns1, ns2)"),
            "{}",
            v.summary
        );
        let one = judge("db.example.com", "new.rds.amazonaws.com", &ok[..2]).unwrap();
        assert!(
            one.summary
                .contains("from the one authoritative name server (ns1)"),
            "{}",
            one.summary
        );

        // One server still serving the old primary: not verified, and the message says who said what.
        let mut stale = ok.to_vec();
        stale[3] = served("ns2", "A", "old.rds.amazonaws.com.", 60);
        let e = judge("db.example.com", "new.rds.amazonaws.com", &stale).unwrap_err();
        assert!(
            e.seen
                .contains("ns2 (A): CNAME old.rds.amazonaws.com. TTL 60"),
            "{e}"
        );
        assert!(!e.seen.contains("ns1"), "{e}");

        // Not authoritative, an error code, no answer at all: none of them is proof.
        let mut lame = ok.to_vec();
        if let Ok(s) = &mut lame[0].outcome {
            s.authoritative = false;
        }
        lame[1].outcome = Ok(Served {
            response_code: "ServFail".into(),
            authoritative: true,
            records: vec![],
        });
        lame[2].outcome = Err("timed out after 2 s".into());
        let e = judge("db.example.com", "new.rds.amazonaws.com", &lame).unwrap_err();
        assert!(
            e.seen
                .contains("ns1 (CNAME): CNAME new.rds.amazonaws.com. TTL 30 (not authoritative)"),
            "{e}"
        );
        assert!(e.seen.contains("ns1 (A): ServFail with no records"), "{e}");
        assert!(
            e.seen
                .contains("ns2 (CNAME): no answer: timed out after 2 s"),
            "{e}"
        );

        assert!(judge("db.example.com", "new.rds.amazonaws.com", &[]).is_err());
    }
}
