//! Whether a domain event's (site, epoch, phase) agrees with the ledger, so the notifier pages
//! only for what the tool itself recorded.
//!
//! Every domain event is built from a site record and committed in that record's outbox before it
//! is emitted (see `SiteState::outbox`), so when an event arrives the ledger already holds its
//! epoch, and — for the current incident — its phase: phases change only by
//! `SiteState::transition` or `SiteState::open_incident`, both of which write the phase into the
//! incident's timeline. An event for an epoch the ledger never reached, or for a phase the
//! current incident never entered, was not sent by this tool.
//!
//! An event for an *earlier* epoch cannot be checked against the site record (the timeline is the
//! current incident's only); it is accepted: a late retry of a real page must not be lost.

use crate::events::DomainEvent;
use crate::incident::SiteState;

/// Why an event does not agree with the ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disagreement {
    #[error("the ledger holds no record of site {site}")]
    UnknownSite { site: String },
    #[error("site {site}: epoch {presented} is past the ledger's epoch {current}")]
    FutureEpoch {
        site: String,
        presented: u64,
        current: u64,
    },
    #[error("site {site} epoch {epoch}: phase {presented} is not one the incident entered (ledger phase {current})")]
    PhaseNotEntered {
        site: String,
        epoch: u64,
        presented: String,
        current: String,
    },
}

/// `Ok` when `event` could have come from `ledger` (the site's current record).
pub fn check(event: &DomainEvent, ledger: &SiteState) -> Result<(), Disagreement> {
    let site = event.site.clone();
    if ledger.version == 0 || ledger.site != event.site {
        return Err(Disagreement::UnknownSite { site });
    }
    if event.epoch > ledger.epoch {
        return Err(Disagreement::FutureEpoch {
            site,
            presented: event.epoch,
            current: ledger.epoch,
        });
    }
    let entered =
        event.phase == ledger.phase || ledger.timeline.iter().any(|e| e.phase == event.phase);
    if event.epoch == ledger.epoch && !entered {
        return Err(Disagreement::PhaseNotEntered {
            site,
            epoch: event.epoch,
            presented: event.phase.to_string(),
            current: ledger.phase.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::incident::Phase;
    use crate::verdict::{Outcome, Verdict};
    use crate::EventType;

    fn at(s: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(1_795_000_000 + s, 0).unwrap()
    }

    fn event(site: &str, epoch: u64, phase: Phase) -> DomainEvent {
        DomainEvent {
            event_type: EventType::DnsPinned,
            site: site.into(),
            epoch,
            phase,
            engine: "rds-replica".into(),
            occurred_at: at(0),
            primary: None,
            candidate: None,
            rpo_override: None,
            verdict: Verdict {
                site: Some(site.into()),
                outcome: Outcome::Watch,
                epoch,
                phase,
                summary: "pinned".into(),
                guards: vec![],
            },
            timeline: vec![],
        }
    }

    /// A record that went through epoch 1 (to completion) and is now in epoch 2, DNS pinned.
    fn ledger() -> SiteState {
        let mut s = SiteState::new("orders");
        s.open_incident(at(0), "alarm").unwrap();
        for p in [
            Phase::Promoting,
            Phase::Promoted,
            Phase::DnsPinned,
            Phase::Completed,
        ] {
            s.transition(1, p, at(1), "step").unwrap();
        }
        s.open_incident(at(10), "alarm").unwrap();
        for p in [Phase::Promoting, Phase::Promoted, Phase::DnsPinned] {
            s.transition(2, p, at(11), "step").unwrap();
        }
        s.version = 9;
        s
    }

    #[test]
    fn events_the_ledger_recorded_agree_including_earlier_phases_and_epochs() {
        let l = ledger();
        for p in [
            Phase::Suspected,
            Phase::Promoting,
            Phase::Promoted,
            Phase::DnsPinned,
        ] {
            assert_eq!(check(&event("orders", 2, p), &l), Ok(()), "{p}");
        }
        // Epoch 1 is closed; its late retries still page.
        assert_eq!(check(&event("orders", 1, Phase::Completed), &l), Ok(()));
    }

    #[test]
    fn an_epoch_past_the_ledger_or_a_phase_never_entered_or_an_unknown_site_disagrees() {
        let l = ledger();
        assert!(matches!(
            check(&event("orders", 3, Phase::DnsPinned), &l),
            Err(Disagreement::FutureEpoch {
                presented: 3,
                current: 2,
                ..
            })
        ));
        assert!(matches!(
            check(&event("orders", 2, Phase::Completed), &l),
            Err(Disagreement::PhaseNotEntered { .. })
        ));
        assert!(matches!(
            check(&event("orders", 2, Phase::AwaitingApproval), &l),
            Err(Disagreement::PhaseNotEntered { .. })
        ));
        assert!(matches!(
            check(
                &event("ghost", 1, Phase::Suspected),
                &SiteState::new("ghost")
            ),
            Err(Disagreement::UnknownSite { .. })
        ));
    }
}
