//! Asking a zone's authoritative name servers what they answer (the pinner's check that the pin
//! is what resolvers get; the judgement is `failover_policy::answer`).
//!
//! One query per server and type, over UDP, no recursion asked for and none followed: the
//! answer is the server's own (a Route 53 name server answers a CNAME query, and an A query for
//! a name whose CNAME points outside the zone, with the CNAME alone, authoritatively).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use failover_policy::answer::{server_address, Answer, AnswerRecord, Served};
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::{DNSClass, Name, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::udp::UdpClientStream;

/// Asks one name server one question.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// `server` is `host` or `host:port` (port 53 by default); a host name is resolved first.
    /// Never fails: an unreachable or silent server is an [`Answer`] saying so.
    async fn ask(&self, server: &str, name: &str, record_type: &str) -> Answer;
}

/// [`Resolve`] with hickory-client over UDP.
pub struct HickoryResolve {
    /// How long one query may wait for its answer.
    pub timeout: Duration,
}

impl Default for HickoryResolve {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
        }
    }
}

async fn address(server: &str) -> Result<SocketAddr, String> {
    let (host, port) =
        server_address(server).ok_or_else(|| format!("`{server}` is not a host[:port]"))?;
    let mut found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve the name server's own name: {e}"))?;
    found
        .next()
        .ok_or_else(|| "the name server's own name has no address".to_string())
}

fn record_type(t: &str) -> Result<RecordType, String> {
    t.parse::<RecordType>()
        .map_err(|e| format!("record type {t}: {e}"))
}

fn code(c: ResponseCode) -> String {
    format!("{c:?}")
}

impl HickoryResolve {
    async fn query(&self, server: &str, name: &str, rtype: &str) -> Result<Served, String> {
        let addr = address(server).await?;
        let rtype = record_type(rtype)?;
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let qname = Name::from_ascii(&fqdn).map_err(|e| format!("name {fqdn}: {e}"))?;
        let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
            .with_timeout(Some(self.timeout))
            .build();
        let (mut client, bg) = Client::connect(stream)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let bg = tokio::spawn(bg);
        let asked =
            tokio::time::timeout(self.timeout, client.query(qname, DNSClass::IN, rtype)).await;
        bg.abort();
        let response = match asked {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("{addr}: {e}")),
            Err(_) => {
                return Err(format!(
                    "{addr}: no answer within {} ms",
                    self.timeout.as_millis()
                ))
            }
        };
        Ok(Served {
            response_code: code(response.response_code()),
            authoritative: response.authoritative(),
            records: response
                .answers()
                .iter()
                .map(|r| AnswerRecord {
                    name: r.name().to_ascii(),
                    record_type: r.record_type().to_string(),
                    value: r.data().to_string(),
                    ttl: r.ttl(),
                })
                .collect(),
        })
    }
}

#[async_trait]
impl Resolve for HickoryResolve {
    async fn ask(&self, server: &str, name: &str, record_type: &str) -> Answer {
        Answer {
            server: server.to_owned(),
            query_type: record_type.to_owned(),
            outcome: self.query(server, name, record_type).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_server_is_an_answer_that_says_so() {
        // A UDP socket that never replies.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap().to_string();
        let r = HickoryResolve {
            timeout: Duration::from_millis(200),
        };
        let a = r.ask(&server, "db.example.com", "CNAME").await;
        let why = a.outcome.unwrap_err();
        assert!(why.contains(&server), "{why}");
        let bad = r.ask("not a server", "db.example.com", "A").await;
        assert!(bad.outcome.unwrap_err().contains("not a host[:port]"));
    }
}
