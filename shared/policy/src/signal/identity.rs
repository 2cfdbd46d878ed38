//! Who a payload is about, taken from its ARN, and every other field that names it checked against
//! that ARN.
//!
//! AWS payloads name their subject several times: an alarm action carries `alarmArn`,
//! `accountId`, `region` and `alarmData.alarmName`; an EventBridge RDS event carries the
//! envelope's `account`, `region` and `resources`, and `detail.SourceArn` and
//! `detail.SourceIdentifier`. Routing by one of them while ignoring the others lets a payload that
//! contradicts itself — our account in `accountId`, another account's alarm in `alarmArn` — reach
//! a site. So: the ARN is the identity where there is one; every other field that names the
//! account, region or resource must agree with it; a payload that disagrees with itself is a
//! [`SignalError::Contradiction`] naming both fields, refused before any AWS call.
//!
//! ARN syntax: `arn:partition:service:region:account-id:resource` (AWS IAM User Guide, "IAM
//! identifiers" / AWS General Reference, "Amazon Resource Names (ARNs)"). The resources read here:
//! - CloudWatch alarm `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME` (Service Authorization
//!   Reference, "Actions, resources, and condition keys for Amazon CloudWatch");
//! - RDS `arn:aws:rds:REGION:ACCOUNT:db:ID`, `...:cluster:ID`, and a global cluster
//!   `arn:aws:rds::ACCOUNT:global-cluster:ID`, whose region is empty (Amazon RDS User Guide,
//!   "Amazon Resource Names (ARNs) in Amazon RDS"; Aurora User Guide, "Using Amazon Aurora global
//!   databases").

use super::{RdsSourceType, SignalError};

/// The parts of an ARN this module compares. Borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub service: &'a str,
    /// Empty for global resources (an Aurora global cluster).
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the account: `alarm:NAME`, `db:ID`, ...
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Strict: the `arn` prefix, an AWS partition, a service, a lower-case region (or none), a
    /// 12-digit account (no placeholder such as `ACCOUNT_NUMBER`, no space before it) and a
    /// resource without ASCII control characters. The resource may contain spaces: an alarm name
    /// may ("can't contain ASCII control characters" is CloudWatch's only rule, PutMetricAlarm
    /// `AlarmName`; the CloudWatch User Guide's anomaly detection example is
    /// `alarm:EC2 CPU Utilization Anomaly`).
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut parts = s.splitn(6, ':');
        let (arn, partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let lower = |x: &str| {
            x.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        };
        let ok = arn == "arn"
            && partition.starts_with("aws")
            && lower(partition)
            && !service.is_empty()
            && lower(service)
            && lower(region)
            && account.len() == 12
            && account.bytes().all(|c| c.is_ascii_digit())
            && !resource.is_empty()
            && !resource.chars().any(|c| c.is_ascii_control());
        ok.then_some(Arn {
            service,
            region,
            account,
            resource,
        })
    }

    /// The alarm name of a CloudWatch alarm ARN.
    pub fn alarm_name(&self) -> Option<&'a str> {
        (self.service == "cloudwatch")
            .then(|| self.resource.strip_prefix("alarm:"))
            .flatten()
            .filter(|n| !n.is_empty())
    }

    /// The kind and identifier of an RDS DB instance, cluster or global cluster ARN.
    pub fn rds_resource(&self) -> Option<(RdsSourceType, &'a str)> {
        if self.service != "rds" {
            return None;
        }
        let (kind, id) = self.resource.split_once(':')?;
        let kind = match kind {
            "db" => RdsSourceType::Instance,
            "cluster" => RdsSourceType::Cluster,
            "global-cluster" => RdsSourceType::GlobalCluster,
            _ => return None,
        };
        (!id.is_empty() && !id.contains(':')).then_some((kind, id))
    }
}

/// An RDS `SourceIdentifier` without the `rds:` prefix RDS puts on it in events delivered to
/// EventBridge: `"SourceIdentifier": "rds:my-db-instance"` beside
/// `"SourceArn": "arn:aws:rds:us-east-1:123456789012:db:my-db-instance"` (Amazon RDS User Guide,
/// "Overview of events for Amazon RDS", the DB instance event example; the Aurora User Guide's DB
/// cluster example has `"rds:my-db-cluster"`). DB instance and cluster identifiers cannot contain
/// a colon ("Naming constraints in Amazon RDS": letters, digits and hyphens), so the prefix is
/// never part of the name.
pub fn strip_rds_prefix(id: &str) -> &str {
    id.strip_prefix("rds:").unwrap_or(id)
}

pub fn contradiction(
    shape: &'static str,
    first: &str,
    second: &str,
    detail: impl Into<String>,
) -> SignalError {
    SignalError::Contradiction {
        shape,
        first: first.into(),
        second: second.into(),
        detail: detail.into(),
    }
}

/// `field`, when the payload has it, must say what the ARN says.
pub fn agree(
    shape: &'static str,
    field: &str,
    value: Option<&str>,
    arn_field: &str,
    from_arn: &str,
    what: &str,
) -> Result<(), SignalError> {
    match value {
        Some(v) if v != from_arn => Err(contradiction(
            shape,
            field,
            arn_field,
            format!("{field} names {what} `{v}`, {arn_field} names `{from_arn}`"),
        )),
        _ => Ok(()),
    }
}

/// What the console link an RDS notification carries names:
/// `https://console.aws.amazon.com/rds/home?region=us-east-1#dbinstance:id=orders-primary`.
/// `None` for a part the link does not spell that way (the link is for people; only the parts it
/// does spell are compared).
pub fn console_link_parts(link: &str) -> (Option<&str>, Option<&str>) {
    let (query, fragment) = link.split_once('#').unwrap_or((link, ""));
    let region = query
        .split_once('?')
        .map(|(_, q)| q)
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("region="));
    let id = fragment
        .split_once(':')
        .map(|(_, rest)| rest)
        .into_iter()
        .flat_map(|rest| rest.split(';'))
        .find_map(|kv| kv.strip_prefix("id="));
    (region, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_parse_strictly() {
        let a = Arn::parse("arn:aws:cloudwatch:us-east-1:123456789012:alarm:a:b").unwrap();
        assert_eq!(
            (a.region, a.account, a.alarm_name()),
            ("us-east-1", "123456789012", Some("a:b"))
        );
        let g = Arn::parse("arn:aws:rds::123456789012:global-cluster:payments-global").unwrap();
        assert_eq!(
            g.rds_resource(),
            Some((RdsSourceType::GlobalCluster, "payments-global"))
        );
        assert_eq!(
            Arn::parse(
                "arn:aws:cloudwatch:us-east-1:123456789012:alarm:EC2 CPU Utilization Anomaly"
            )
            .and_then(|a| a.alarm_name()),
            Some("EC2 CPU Utilization Anomaly")
        );
        for bad in [
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a\nb",
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a\u{0}",
            "arn:aws:cloudwatch:us-east-1: 444455556666:alarm:x",
            "arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:EXAMPLE",
            "arn:aws:sns:EXAMPLE",
            "arn:aws:cloudwatch:US-EAST-1:123456789012:alarm:x",
            "arn:aws:cloudwatch:us-east-1:１２３４５６７８９０１２:alarm:x",
            "urn:aws:cloudwatch:us-east-1:123456789012:alarm:x",
            "arn:aws:cloudwatch:us-east-1:123456789012:",
        ] {
            assert_eq!(Arn::parse(bad), None, "{bad}");
        }
        let snap =
            Arn::parse("arn:aws:rds:us-east-1:123456789012:snapshot:rds:my-db-snapshot").unwrap();
        assert_eq!(snap.rds_resource(), None, "a snapshot is not a database");
    }

    #[test]
    fn the_documented_prefix_is_stripped_and_nothing_else() {
        assert_eq!(strip_rds_prefix("rds:my-db-instance"), "my-db-instance");
        assert_eq!(strip_rds_prefix("my-db-instance"), "my-db-instance");
        assert_eq!(strip_rds_prefix("RDS:my-db-instance"), "RDS:my-db-instance");
    }

    #[test]
    fn console_links_name_region_and_id() {
        assert_eq!(
            console_link_parts(
                "https://console.aws.amazon.com/rds/home?region=eu-west-1#dbinstance:id=dbinstanceid"
            ),
            (Some("eu-west-1"), Some("dbinstanceid"))
        );
        assert_eq!(
            console_link_parts("https://console.aws.amazon.com/rds/home?region=us-east-2#snapshot:engine=aurora;id=db-instance-aurora"),
            (Some("us-east-2"), Some("db-instance-aurora"))
        );
        assert_eq!(console_link_parts("not a link"), (None, None));
    }
}
