//! `data-plane-switch`: what the SECONDARY record names, checked before the switch is put.
//!
//! The switch moves traffic to whatever the SECONDARY record's value is. The configuration says
//! whose endpoint that should be (`dns.mode.secondary_candidate`), but a human may have pointed
//! the record elsewhere since: the switch would then send the writes to a third host. So before
//! the `PutMetricData` the pinner reads the record pair (ListResourceRecordSets) and refuses to
//! put the switch unless the SECONDARY names the promoted writer ([`judge`]); refused, it pages
//! CRITICAL once per epoch ([`note`]) and the records path (as in `failover-pin`) still runs,
//! pinning both records when Route 53's API answers.
//!
//! ListResourceRecordSets is Route 53's control plane (us-east-1), which may be dark exactly when
//! the switch is needed. Then the last reading the ledger holds ([`SecondaryReading`]) decides,
//! and the message says it was not read now and how old the reading is. What is NOT built: a
//! peace-time reading on the evaluator's tick. The readings come only from the pinner's own
//! pre-switch checks (of earlier epochs); with none on record and the API dark, the switch is put
//! on the configuration's word and the message says the SECONDARY was NOT checked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{DomainEvent, EventType};
use crate::incident::{Phase, SiteState, TimelineEntry};
use crate::pin::{self, FailoverRole, RecordSet};

/// The SECONDARY record's value as the pinner last read it from Route 53.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryReading {
    /// The values (or the alias target) it named; empty: there was no SECONDARY record.
    pub values: Vec<String>,
    pub at: DateTime<Utc>,
    /// The epoch whose pre-switch check read it.
    pub epoch: u64,
}

/// How the page refusing the switch begins.
pub const SWITCH_REFUSED: &str = "CRITICAL: data-plane switch NOT put: ";

/// The SECONDARY's values in `sets` (its alias target when it is an alias).
pub fn secondary_values(sets: &[RecordSet]) -> Vec<String> {
    sets.iter()
        .filter(|r| r.failover == Some(FailoverRole::Secondary))
        .flat_map(|r| match &r.alias_target {
            Some(t) => vec![t.clone()],
            None => r.values.clone(),
        })
        .collect()
}

fn names(values: &[String], host: &str) -> bool {
    values.len() == 1 && pin::same_name(&values[0], host)
}

fn describe(values: &[String]) -> String {
    if values.is_empty() {
        "no SECONDARY record".into()
    } else {
        values.join(", ")
    }
}

/// Whether the switch may be put for `host`: `read` is the record pair as ListResourceRecordSets
/// answered now (`Err`: why it could not be read), `last` the ledger's last reading. `Ok`: the
/// note saying what the decision rests on; `Err`: why the switch is refused.
pub fn judge(
    host: &str,
    read: Result<&[RecordSet], &str>,
    last: Option<&SecondaryReading>,
    max_age_secs: u64,
    now: DateTime<Utc>,
) -> Result<String, String> {
    // A reading older than the bound is not trusted: NOT checked, its age said.
    let aged = last.filter(|r| (now - r.at).num_seconds() > max_age_secs as i64);
    if let (Err(why), Some(r)) = (read, aged) {
        return Ok(format!(
            "the SECONDARY was NOT checked: Route 53's API did not answer ({why}) and the last reading on record, {} old ({}, epoch {}, naming {}), is older than thresholds.secondary_reading_max_age_secs ({}), so it is not trusted; the switch is put on dns.mode.secondary_candidate's word",
            pin::human_duration((now - r.at).num_seconds().max(0)),
            r.at.to_rfc3339(),
            r.epoch,
            describe(&r.values),
            pin::human_duration(max_age_secs as i64)
        ));
    }
    match (read, last) {
        (Ok(sets), _) => {
            let v = secondary_values(sets);
            if names(&v, host) {
                let cached = sets
                    .iter()
                    .find(|r| r.failover == Some(FailoverRole::Primary))
                    .and_then(|r| r.ttl)
                    .map(|t| format!("; the PRIMARY's TTL is {t} s: resolvers may keep the old answer that long"))
                    .unwrap_or_default();
                Ok(format!("the SECONDARY record, read just before the switch, names {host}{cached}"))
            } else {
                Err(format!(
                    "the SECONDARY record names {}, not the promoted writer {host}: the switch would move the writes there (a human changed it, or dns.mode.secondary_candidate is wrong); the records are pinned as in failover-pin instead. Check who changed the SECONDARY and why",
                    describe(&v)
                ))
            }
        }
        (Err(why), Some(r)) => {
            let age = pin::human_duration((now - r.at).num_seconds().max(0));
            if names(&r.values, host) {
                Ok(format!(
                    "the SECONDARY was NOT read now (Route 53's API: {why}); the last reading on record, {age} old ({}, epoch {}), named {host}",
                    r.at.to_rfc3339(),
                    r.epoch
                ))
            } else {
                Err(format!(
                    "Route 53's API did not answer ({why}) and the last reading of the SECONDARY on record, {age} old ({}, epoch {}), named {}, not the promoted writer {host}: the switch could move the writes there; the records are pinned as in failover-pin when the API answers",
                    r.at.to_rfc3339(),
                    r.epoch,
                    describe(&r.values)
                ))
            }
        }
        (Err(why), None) => Ok(format!(
            "the SECONDARY was NOT checked: Route 53's API did not answer ({why}) and the ledger holds no earlier reading; the switch is put on dns.mode.secondary_candidate's word"
        )),
    }
}

/// [`judge`] on the record pair as the ledger recorded it before the pinner's own change of this
/// epoch (`dns.previous_records`): once the pinner may have written the SECONDARY itself, a
/// live read would judge the tool's own write (the writer, of course) and lift a refusal that
/// was right. `None` recorded (only a change id): nothing to judge by, refused.
pub fn judge_recorded(host: &str, recorded: Option<&[RecordSet]>) -> Result<String, String> {
    let Some(sets) = recorded else {
        return Err(format!(
            "the pinner already changed the records of this epoch and the pair as it was before is not on record, so what the SECONDARY named before the change cannot be told (a live read would show the pinner's own write of {host}); the records are pinned as in failover-pin"
        ));
    };
    let now = DateTime::<Utc>::UNIX_EPOCH;
    judge(host, Ok(sets), None, u64::MAX, now).map(|ok| {
        ok.replace(
            "read just before the switch",
            "as recorded before the pinner's own change of this epoch (not read again: the pinner may have written it)",
        )
    })
}

/// Records what was read (`reading`) and, when the switch is refused (`refused`), pages CRITICAL
/// once for the epoch (`DnsPinDelayed`). `None`: nothing to record.
pub fn note(
    state: &SiteState,
    event: &DomainEvent,
    reading: Option<Vec<String>>,
    refused: Option<&str>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    if state.epoch != event.epoch || state.site != event.site || state.phase != Phase::Promoted {
        return None;
    }
    let mut next = state.clone();
    let mut changed = false;
    if let Some(values) = reading {
        next.secondary_reading = Some(SecondaryReading {
            values,
            at: now,
            epoch: state.epoch,
        });
        changed = true;
    }
    if let Some(why) = refused.filter(|_| state.switch_refused != Some(state.epoch)) {
        next.switch_refused = Some(state.epoch);
        let note = format!("{SWITCH_REFUSED}{why}");
        next.timeline.push(TimelineEntry {
            phase: Phase::Promoted,
            at: now,
            note: note.clone(),
        });
        next.outbox.push(pin::follow_up(
            event,
            &next,
            EventType::DnsPinDelayed,
            note,
            now,
        ));
        changed = true;
    }
    if !changed {
        return None;
    }
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn pair(secondary: &str) -> Vec<RecordSet> {
        let m = |role, v: &str| RecordSet {
            name: "db.example.com.".into(),
            record_type: "CNAME".into(),
            set_identifier: Some(format!("{role:?}")),
            failover: Some(role),
            ttl: Some(60),
            values: vec![v.into()],
            health_check_id: None,
            alias_target: None,
        };
        vec![
            m(FailoverRole::Primary, "old.example.com"),
            m(FailoverRole::Secondary, secondary),
        ]
    }

    #[test]
    fn a_secondary_naming_another_host_refuses_the_switch_whatever_the_ledger_says() {
        let last = SecondaryReading {
            values: vec!["new.example.com".into()],
            at: t(0),
            epoch: 1,
        };
        let e = judge(
            "new.example.com",
            Ok(&pair("third.example.com")),
            Some(&last),
            WEEK,
            t(9),
        )
        .unwrap_err();
        assert!(
            e.contains("names third.example.com, not the promoted writer new.example.com"),
            "{e}"
        );
        let ok = judge(
            "new.example.com.",
            Ok(&pair("NEW.example.com")),
            None,
            WEEK,
            t(9),
        )
        .unwrap();
        assert!(ok.contains("the PRIMARY's TTL is 60 s"), "{ok}");
    }

    #[test]
    fn with_the_api_dark_the_last_reading_decides_and_the_note_says_so() {
        let last = |v: &str| SecondaryReading {
            values: vec![v.into()],
            at: t(0),
            epoch: 1,
        };
        let ok = judge(
            "new.example.com",
            Err("503"),
            Some(&last("new.example.com")),
            WEEK,
            t(7200),
        )
        .unwrap();
        assert!(
            ok.contains("NOT read now") && ok.contains("2h 00m old"),
            "{ok}"
        );
        assert!(ok.contains("epoch 1"), "{ok}");
        let e = judge(
            "new.example.com",
            Err("503"),
            Some(&last("third.example.com")),
            WEEK,
            t(60),
        )
        .unwrap_err();
        assert!(e.contains("named third.example.com"), "{e}");
        let none = judge("new.example.com", Err("503"), None, WEEK, t(60)).unwrap();
        assert!(none.contains("NOT checked"), "{none}");
    }

    const WEEK: u64 = 7 * 86_400;

    /// Finding 4 (issue 14 review 2): the last reading is trusted only up to the bound; older,
    /// it is NOT checked — neither a pass nor a refusal — and the note says how old it is.
    #[test]
    fn a_reading_older_than_the_bound_counts_as_not_checked_and_says_its_age() {
        let last = |v: &str| SecondaryReading {
            values: vec![v.into()],
            at: t(0),
            epoch: 1,
        };
        let eight_days = t(8 * 86_400);
        let ok = judge(
            "new.example.com",
            Err("503"),
            Some(&last("new.example.com")),
            WEEK,
            eight_days,
        )
        .unwrap();
        assert!(
            ok.contains("NOT checked")
                && ok.contains("older than thresholds.secondary_reading_max_age_secs")
                && ok.contains("epoch 1"),
            "{ok}"
        );
        let ok = judge(
            "new.example.com",
            Err("503"),
            Some(&last("third.example.com")),
            WEEK,
            eight_days,
        )
        .unwrap();
        assert!(
            ok.contains("NOT checked") && ok.contains("naming third.example.com"),
            "{ok}"
        );
        // Within the bound it still decides.
        assert!(judge(
            "new.example.com",
            Err("503"),
            Some(&last("third.example.com")),
            WEEK,
            t(86_400)
        )
        .is_err());
    }
}
