//! `validate CONFIG`: the functions' cold-start validation, then what only AWS can say.

use std::collections::BTreeMap;
use std::path::Path;

use failover_adapters::settings::Fanout;
use failover_policy::config::{DbRef, Engine};
use failover_policy::Config;
use serde::Serialize;

use crate::CliError;

/// An AWS error in one line: its code and message when the service sent them.
fn short<E, R>(e: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or_default()
        ),
        None => aws_sdk_rds::error::DisplayErrorContext(e).to_string(),
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Findings {
    pub version: String,
    pub sites: usize,
    /// Problems that would make a decision wrong or impossible: the configuration is refused.
    pub errors: Vec<String>,
    /// What works but not fully (e.g. a primary that cannot be fenced on its own).
    pub warnings: Vec<String>,
    /// What was checked against AWS and found as configured.
    pub checked: Vec<String>,
}

/// The cold start's own checks: the document parses and validates ([`Config::from_document`]),
/// the evaluator's default fan-out can judge every site in time, and the fence warnings.
pub fn offline(path: &Path) -> Result<(Config, Findings), CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let cfg = Config::from_document(&text)
        .map_err(|e| CliError::Refused(format!("{}: {e}", path.display())))?;
    Fanout::default()
        .check_sites(cfg.sites.len())
        .map_err(|e| CliError::Refused(format!("{}: {e}", path.display())))?;
    let f = Findings {
        version: cfg.version(),
        sites: cfg.sites.len(),
        warnings: failover_policy::fence::warnings(&cfg),
        ..Default::default()
    };
    Ok((cfg, f))
}

/// What AWS says about every database, parameter group, hosted zone and record the
/// configuration names. Read-only calls (DescribeDBInstances/Clusters, GetHostedZone,
/// ListResourceRecordSets).
pub async fn against_aws(sdk: &aws_config::SdkConfig, cfg: &Config, f: &mut Findings) {
    let mut groups_in: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for region in cfg.sites.iter().flat_map(|s| {
        std::iter::once(&s.primary)
            .chain(&s.candidates)
            .map(|d| d.region.clone())
    }) {
        if groups_in.contains_key(&region) {
            continue;
        }
        let rds = rds_in(sdk, &region);
        let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut pages = rds.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(p) => {
                    for i in p.db_instances() {
                        for g in i.db_parameter_groups() {
                            by_group
                                .entry(g.db_parameter_group_name().unwrap_or_default().into())
                                .or_default()
                                .push(i.db_instance_identifier().unwrap_or_default().into());
                        }
                    }
                }
                Err(e) => {
                    f.errors.push(format!(
                        "region {region}: DescribeDBInstances: {}",
                        short(e)
                    ));
                    break;
                }
            }
        }
        groups_in.insert(region, by_group);
    }
    for site in &cfg.sites {
        for db in std::iter::once(&site.primary).chain(&site.candidates) {
            check_db(sdk, site, db, &groups_in, f).await;
        }
        check_dns(sdk, site, f).await;
    }
}

fn rds_in(sdk: &aws_config::SdkConfig, region: &str) -> aws_sdk_rds::Client {
    let conf = aws_sdk_rds::config::Builder::from(sdk)
        .region(aws_config::Region::new(region.to_string()))
        .build();
    aws_sdk_rds::Client::from_conf(conf)
}

async fn check_db(
    sdk: &aws_config::SdkConfig,
    site: &failover_policy::SiteConfig,
    db: &DbRef,
    groups_in: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    f: &mut Findings,
) {
    let rds = rds_in(sdk, &db.region);
    let who = format!("site {}: {} ({})", site.id, db.id, db.region);
    let instance = rds
        .describe_db_instances()
        .db_instance_identifier(&db.id)
        .send()
        .await;
    let inst = match instance {
        Ok(o) => o.db_instances().first().cloned(),
        Err(_) => None,
    };
    let Some(inst) = inst else {
        let cluster = rds
            .describe_db_clusters()
            .db_cluster_identifier(&db.id)
            .send()
            .await;
        match cluster {
            Ok(o) if !o.db_clusters().is_empty() => {
                f.checked.push(format!("{who}: cluster exists"))
            }
            _ => f
                .errors
                .push(format!("{who}: no such DB instance or cluster")),
        }
        return;
    };
    f.checked.push(format!(
        "{who}: exists ({})",
        inst.db_instance_status().unwrap_or("?")
    ));
    let is_primary = db == &site.primary;
    if !(is_primary && matches!(site.engine, Engine::RdsReplica)) {
        return;
    }
    // The fence sets read_only=1 in the primary's own parameter group: a default group cannot
    // be modified, and a shared one would make every other instance read-only too.
    let group = inst
        .db_parameter_groups()
        .first()
        .and_then(|g| g.db_parameter_group_name())
        .unwrap_or_default()
        .to_string();
    let sharing: Vec<&String> = groups_in
        .get(&db.region)
        .and_then(|m| m.get(&group))
        .map(|v| v.iter().filter(|i| **i != db.id).collect())
        .unwrap_or_default();
    if group.starts_with("default.") {
        f.warnings.push(format!(
            "{who}: parameter group `{group}` is a default group: the fence cannot set read_only in it"
        ));
    } else if !sharing.is_empty() {
        let others: Vec<&str> = sharing.iter().map(|s| s.as_str()).collect();
        f.warnings.push(format!(
            "{who}: parameter group `{group}` is shared with {}: fencing would make them read-only too",
            others.join(", ")
        ));
    } else {
        f.checked.push(format!(
            "{who}: parameter group `{group}` is its own (fenceable)"
        ));
    }
    if let Some(want) = site
        .fence
        .as_ref()
        .and_then(|x| x.parameter_group.as_deref())
    {
        if want != group {
            f.errors.push(format!(
                "{who}: fence.parameter_group is `{want}` but the instance uses `{group}`"
            ));
        }
    }
}

async fn check_dns(
    sdk: &aws_config::SdkConfig,
    site: &failover_policy::SiteConfig,
    f: &mut Findings,
) {
    let r53 = aws_sdk_route53::Client::new(sdk);
    let who = format!("site {}: zone {}", site.id, site.dns.zone_id);
    if let Err(e) = r53.get_hosted_zone().id(&site.dns.zone_id).send().await {
        f.errors.push(format!("{who}: {}", short(e)));
        return;
    }
    let name = site.dns.name.trim_end_matches('.').to_string() + ".";
    let listed = r53
        .list_resource_record_sets()
        .hosted_zone_id(&site.dns.zone_id)
        .start_record_name(&name)
        .max_items(4)
        .send()
        .await;
    match listed {
        Ok(o)
            if o.resource_record_sets()
                .iter()
                .any(|r| r.name().eq_ignore_ascii_case(&name)) =>
        {
            f.checked.push(format!("{who}: record {name} exists"))
        }
        Ok(_) => f.errors.push(format!("{who}: no record {name}")),
        Err(e) => f
            .errors
            .push(format!("{who}: ListResourceRecordSets: {}", short(e))),
    }
}

pub fn render(f: &Findings) -> String {
    let verdict = if f.errors.is_empty() {
        "valid"
    } else {
        "NOT valid"
    };
    let mut out = format!(
        "configuration {}: {} site(s), {verdict}\n",
        f.version, f.sites
    );
    for c in &f.checked {
        out += &format!("  ok    {c}\n");
    }
    for w in &f.warnings {
        out += &format!("  WARN  {w}\n");
    }
    for e in &f.errors {
        out += &format!("  ERROR {e}\n");
    }
    out
}
