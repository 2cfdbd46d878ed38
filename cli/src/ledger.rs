//! The operator's reads of the ledger table (`status`, `history`, `what-if`): read only, and in
//! this crate alone, so no Lambda function links (or is granted) a Scan.
//!
//! The table's layout is the functions' (`failover_adapters::aws::DynamoLedger`): per site a
//! `STATE` item and one `AUDIT#<version>` item per write, each with the record as JSON in `state`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use failover_policy::SiteState;

use crate::{aws_error, CliError};

pub struct LedgerReader {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

impl LedgerReader {
    /// One site's record; a site never written is the empty record, as the functions read it.
    pub async fn load(&self, site: &str) -> Result<SiteState, CliError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(site))
            .key("sk", s("STATE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error(format!("ledger {}: GetItem", self.table), e))?;
        match out.item() {
            Some(item) => decode(&self.table, item),
            None => Ok(SiteState::new(site)),
        }
    }

    /// Every site's `STATE` item (a Scan filtered on the sort key), by site id.
    pub async fn all_sites(&self) -> Result<Vec<SiteState>, CliError> {
        let mut out = vec![];
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :state")
                .expression_attribute_values(":state", s("STATE"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error(format!("ledger {}: Scan", self.table), e))?;
            for item in page.items() {
                out.push(decode(&self.table, item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.site.cmp(&b.site));
        Ok(out)
    }

    /// The site's audit trail, newest first, at most `limit` records.
    pub async fn history(&self, site: &str, limit: usize) -> Result<Vec<SiteState>, CliError> {
        let mut out = vec![];
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        while out.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :site AND begins_with(sk, :audit)")
                .expression_attribute_values(":site", s(site))
                .expression_attribute_values(":audit", s("AUDIT#"))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error(format!("ledger {}: Query", self.table), e))?;
            for item in page.items() {
                out.push(decode(&self.table, item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

fn decode(table: &str, item: &HashMap<String, AttributeValue>) -> Result<SiteState, CliError> {
    let key = item.get("pk").and_then(|v| v.as_s().ok()).cloned();
    let bad = |why: String| CliError::Aws {
        what: format!("ledger {table}"),
        error: format!("item of `{}`: {why}", key.clone().unwrap_or_default()),
    };
    let json = item
        .get("state")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| bad("no string attribute `state`".into()))?;
    let mut st: SiteState =
        serde_json::from_str(json).map_err(|e| bad(format!("not a site record: {e}")))?;
    // The attribute is the compare-and-set token the functions trust (DynamoLedger::load).
    if let Some(v) = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
    {
        st.version = v;
    }
    Ok(st)
}
