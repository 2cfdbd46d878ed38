use super::*;
use crate::config::{Config, DbRef, DnsMode};
use crate::incident::Phase;
use crate::topology::Topology;
use chrono::TimeZone;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");
const OLD: &str = "orders-primary.cabcdefghijk.us-east-1.rds.amazonaws.com";
const DR: &str = "orders-replica-1.cabcdefghijk.us-west-2.rds.amazonaws.com";
const NAME: &str = "db.orders.example.com.";

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn site() -> SiteConfig {
    let mut s = Config::from_document(EXAMPLE)
        .unwrap()
        .site("orders")
        .unwrap()
        .clone();
    s.dns.mode = DnsMode::FailoverPin {
        primary_set_identifier: "orders-primary".into(),
    };
    s
}

fn rec(set: &str, role: FailoverRole, host: &str, hc: Option<&str>) -> RecordSet {
    RecordSet {
        name: NAME.into(),
        record_type: "CNAME".into(),
        set_identifier: Some(set.into()),
        failover: Some(role),
        ttl: Some(60),
        values: vec![host.into()],
        health_check_id: hc.map(String::from),
        alias_target: None,
    }
}

/// The pair as the team built it: PRIMARY → the old primary (health-checked), SECONDARY → DR.
fn recorded() -> Vec<RecordSet> {
    vec![
        rec("orders-primary", FailoverRole::Primary, OLD, Some("hc-1")),
        rec("orders-dr", FailoverRole::Secondary, DR, None),
    ]
}

/// Both members naming DR with the site's TTL: what the pinner left.
fn pinned() -> Vec<RecordSet> {
    recorded()
        .into_iter()
        .map(|r| RecordSet {
            values: vec![DR.into()],
            ttl: Some(30),
            ..r
        })
        .collect()
}

/// Epoch 1 failed over to DR and was pinned and completed.
fn completed() -> SiteState {
    let mut s = SiteState::new("orders");
    s.version = 9;
    s.epoch = 1;
    s.phase = Phase::Completed;
    s.dns = Some(DnsRecord {
        epoch: 1,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: NAME.into(),
        record_type: "CNAME".into(),
        set_identifier: Some("orders-primary".into()),
        previous_values: vec![OLD.into()],
        previous_ttl: Some(60),
        new_value: DR.into(),
        change_id: Some("C1".into()),
        insync_at: Some(t(0)),
        previous_records: Some(recorded()),
    });
    s.topology = Some(Topology {
        epoch: 1,
        primary: DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        },
        endpoint: Some(format!("{DR}:3306")),
        candidates: vec![],
        at: t(10),
        configured_primary: None,
    });
    s
}

/// Failed back by hand and `complete`d naming the configured primary: the configuration is the
/// topology again.
fn failed_back() -> SiteState {
    let mut s = completed();
    s.topology = None;
    s
}

#[test]
fn after_failback_one_batch_deletes_the_pinned_pair_and_creates_the_recorded_one() {
    let changes = plan(&site(), &failed_back(), &pinned()).unwrap();
    let deletes: Vec<_> = changes
        .iter()
        .filter(|c| c.action == ChangeAction::Delete)
        .map(|c| c.record.clone())
        .collect();
    let creates: Vec<_> = changes
        .iter()
        .filter(|c| c.action == ChangeAction::Create)
        .map(|c| c.record.clone())
        .collect();
    assert_eq!(deletes, pinned());
    assert_eq!(creates, recorded());
    // DELETEs first: Route 53 applies the batch in order, all or nothing.
    assert_eq!(changes[0].action, ChangeAction::Delete);
    assert_eq!(changes.len(), 4);
}

#[test]
fn refused_while_the_dr_server_is_the_writer_the_recorded_primary_is_the_old_one() {
    let e = plan(&site(), &completed(), &pinned()).unwrap_err();
    assert!(matches!(e, Refused::NotTheWriter { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains(OLD) && text.contains(DR), "{text}");
}

#[test]
fn refused_mid_incident() {
    let mut s = failed_back();
    s.phase = Phase::DnsPinned;
    let e = plan(&site(), &s, &pinned()).unwrap_err();
    assert!(matches!(e, Refused::MidIncident { .. }), "{e}");
    s.phase = Phase::Suspected;
    assert!(matches!(
        check(&site(), &s),
        Err(Refused::MidIncident { .. })
    ));
}

#[test]
fn refused_with_nothing_recorded_or_a_name_that_did_not_exist() {
    let mut s = failed_back();
    s.dns.as_mut().unwrap().previous_records = None;
    assert!(matches!(
        check(&site(), &s),
        Err(Refused::NothingRecorded { .. })
    ));
    s.dns = None;
    assert!(matches!(
        check(&site(), &s),
        Err(Refused::NothingRecorded { .. })
    ));
    let mut s = failed_back();
    s.dns.as_mut().unwrap().previous_records = Some(vec![]);
    assert!(matches!(
        check(&site(), &s),
        Err(Refused::NameDidNotExist { .. })
    ));
}

#[test]
fn a_human_edit_since_the_pin_is_refused_before_any_change() {
    let mut edited = pinned();
    edited[1].values = vec!["somewhere-else.example.com".into()];
    let e = plan(&site(), &failed_back(), &edited).unwrap_err();
    assert!(matches!(e, Refused::ChangedConcurrently { .. }), "{e}");
    assert!(e.to_string().contains("somewhere-else"), "{e}");
}

#[test]
fn already_restored_needs_no_change() {
    assert_eq!(plan(&site(), &failed_back(), &recorded()).unwrap(), vec![]);
}

#[test]
fn writer_unknown_without_topology_endpoint_or_canary() {
    let mut site = site();
    site.canary = None;
    assert_eq!(check(&site, &failed_back()), Err(Refused::WriterUnknown));
}

fn unpin_signal() -> crate::Signal {
    crate::parse_signal(&serde_json::json!({
        "command": "unpin", "site": "orders", "operator": "alice", "reason": "failed back"
    }))
    .unwrap()
}

#[test]
fn the_command_records_the_request_and_emits_unpin_requested() {
    let d = crate::decide(&site(), &unpin_signal(), None, &failed_back(), t(100));
    let next = d.next.expect("recorded");
    let u = next.unpin.clone().unwrap();
    assert_eq!((u.epoch, u.by.as_str()), (1, "alice"));
    assert_eq!(d.emit[0].event_type, EventType::UnpinRequested);
    assert!(d.verdict.summary.contains(OLD), "{}", d.verdict.summary);
    // A second command while it is pending changes nothing.
    let again = crate::decide(&site(), &unpin_signal(), None, &next, t(101));
    assert!(again.next.is_none() && again.emit.is_empty());
}

#[test]
fn the_command_is_refused_typed_with_nothing_recorded() {
    let d = crate::decide(&site(), &unpin_signal(), None, &completed(), t(100));
    assert!(d.next.is_none() && d.emit.is_empty());
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NothingToUnpin
        }
    );
}

#[test]
fn unpin_needs_a_reason() {
    let e = crate::parse_signal(&serde_json::json!({"command": "unpin", "site": "orders"}));
    assert!(e.is_err());
}

#[test]
fn restored_is_recorded_with_dns_unpinned() {
    let d = crate::decide(&site(), &unpin_signal(), None, &failed_back(), t(100));
    let st = d.next.unwrap();
    let st = record_change(&st, "C2", t(101)).unwrap();
    assert!(record_change(&st, "C2", t(102)).is_none());
    let done = mark_restored(&site(), &st, t(103), t(104)).unwrap();
    assert_eq!(done.unpin.as_ref().unwrap().restored_at, Some(t(103)));
    let ev = done.outbox.last().unwrap();
    assert_eq!(ev.event_type, EventType::DnsUnpinned);
    assert!(
        ev.verdict.summary.contains("hc-1"),
        "{}",
        ev.verdict.summary
    );
    assert!(pending(&done).is_none());
    // The SECONDARY reading follows the record restored, not the writer the pin wrote.
    let reading = done
        .secondary_reading
        .expect("the restored SECONDARY is the reading");
    assert_eq!(reading.values, vec![DR.to_string()]);
    assert_eq!(reading.at, t(103));
}

/// Epoch 2 switched back to the old primary: its pin found the name as epoch 1 left it.
fn switched_back() -> SiteState {
    let epoch1 = completed();
    let mut s = completed();
    s.epoch = 2;
    s.original_dns = Some(carry(&epoch1, &pinned()));
    let d = s.dns.as_mut().unwrap();
    d.epoch = 2;
    d.previous_records = Some(pinned());
    d.new_value = OLD.into();
    let t = s.topology.as_mut().unwrap();
    t.epoch = 2;
    t.primary = DbRef {
        id: "orders-primary".into(),
        region: "us-east-1".into(),
    };
    t.endpoint = Some(format!("{OLD}:3306"));
    s
}

fn pinned_to(host: &str) -> Vec<RecordSet> {
    pinned()
        .into_iter()
        .map(|r| RecordSet {
            values: vec![host.into()],
            ..r
        })
        .collect()
}

#[test]
fn a_switchover_back_keeps_the_original_shape_for_unpin() {
    let s = switched_back();
    assert_eq!(s.original_dns.as_ref().unwrap().records, recorded());
    let changes = plan(&site(), &s, &pinned_to(OLD)).unwrap();
    let creates: Vec<_> = changes
        .iter()
        .filter(|c| c.action == ChangeAction::Create)
        .map(|c| c.record.clone())
        .collect();
    assert_eq!(creates, recorded());
    let deletes = changes.iter().filter(|c| c.action == ChangeAction::Delete);
    assert!(deletes.clone().all(|c| c.record.values == [OLD]) && deletes.count() == 2);
}

#[test]
fn a_name_edited_since_the_earlier_pin_is_the_new_original() {
    let edited = vec![rec(
        "orders-primary",
        FailoverRole::Primary,
        "elsewhere.example.com",
        None,
    )];
    assert_eq!(carry(&completed(), &edited).records, edited);
    assert_eq!(carry(&completed(), &edited).epoch, 1);
}

fn switch_site() -> SiteConfig {
    let mut s = site();
    s.dns.mode = DnsMode::DataPlaneSwitch {
        primary_set_identifier: "orders-primary".into(),
        secondary_candidate: "orders-replica-1".into(),
        metric: crate::config::SwitchMetric {
            namespace: "RdsFailover/Switch".into(),
            name: "ServeSecondary".into(),
            region: "us-west-2".into(),
            alarm: "rds-failover-orders-serve-secondary".into(),
            dimensions: Default::default(),
        },
    };
    s
}

fn requested() -> UnpinRecord {
    UnpinRecord {
        epoch: 3,
        by: "alice".into(),
        reason: "failed back".into(),
        requested_at: t(0),
        change_id: None,
        restored_at: None,
        failed: None,
        switched_back_at: Some(t(10)),
        continued_at: None,
        primary_change_id: None,
        primary_restored_at: None,
    }
}

#[test]
fn the_records_wait_for_the_alarm_to_read_ok_until_the_deadline_counted_from_the_first_0() {
    use crate::signal::AlarmState;
    let site = switch_site();
    let limit = site.thresholds.pin_deadline_secs as i64;
    let u = requested();
    assert_eq!(
        follow(&site, &u, Some(AlarmState::Ok), t(11)),
        Follow::Followed
    );
    assert_eq!(
        follow(&site, &u, Some(AlarmState::Alarm), t(11)),
        Follow::Wait
    );
    assert_eq!(follow(&site, &u, None, t(10 + limit - 1)), Follow::Wait);
    let Follow::Expired(why) = follow(&site, &u, Some(AlarmState::Alarm), t(10 + limit)) else {
        panic!("past the deadline")
    };
    assert!(
        why.contains("rds-failover-orders-serve-secondary in us-west-2")
            && why.contains("still reads Alarm")
            && why.contains("NOT restored and stay pinned"),
        "{why}"
    );
    // No 0 ever accepted (CloudWatch dark): the deadline counts from the request.
    let dark = UnpinRecord {
        switched_back_at: None,
        ..requested()
    };
    assert_eq!(follow(&site, &dark, None, t(limit - 1)), Follow::Wait);
    assert!(matches!(
        follow(&site, &dark, None, t(limit)),
        Follow::Expired(_)
    ));
    // A late OK still counts: the alarm followed.
    assert_eq!(
        follow(&site, &u, Some(AlarmState::Ok), t(10 + limit)),
        Follow::Followed
    );
}

#[test]
fn only_the_newest_continuation_carries_the_wait_on() {
    let site = switch_site();
    let mut st = failed_back();
    st.unpin = Some(requested());
    let next = hand_on(&site, &st, None, t(130)).unwrap();
    let u = next.unpin.as_ref().unwrap();
    let cont = next.outbox.last().unwrap().clone();
    assert_eq!(cont.event_type, EventType::UnpinContinued);
    assert!(
        cont.verdict.summary.contains("stay pinned"),
        "{}",
        cont.verdict.summary
    );
    assert!(may_continue(u, &cont));
    let mut stale = cont.clone();
    stale.occurred_at = t(10);
    assert!(!may_continue(u, &stale), "an older continuation");
    let mut again = cont;
    again.event_type = EventType::UnpinRequested;
    assert!(
        !may_continue(u, &again),
        "the request delivered again once a chain runs"
    );
    assert!(
        record_switched_back(&next, t(200)).is_none(),
        "the first 0 is recorded once"
    );
}

// ---- two phases (data-plane-switch): `phases`

#[test]
fn phase_1_restores_the_primary_and_keeps_the_secondary_at_the_writer() {
    let (site, st) = (switch_site(), failed_back());
    let changes = phases::plan_primary(&site, &st, &pinned()).unwrap();
    let of = |a: ChangeAction| -> Vec<RecordSet> {
        changes
            .iter()
            .filter(|c| c.action == a)
            .map(|c| c.record.clone())
            .collect()
    };
    assert_eq!(
        of(ChangeAction::Delete),
        pinned(),
        "compare-and-set on the pinned pair"
    );
    let created = of(ChangeAction::Create);
    assert_eq!(created.len(), 2);
    assert!(
        created.contains(&recorded()[0]),
        "the recorded PRIMARY: {created:?}"
    );
    let secondary = created
        .iter()
        .find(|r| r.failover == Some(FailoverRole::Secondary))
        .unwrap();
    assert_eq!(
        secondary.values,
        vec![OLD.to_string()],
        "at the writer, not DR"
    );
    // Phase 1 went through: nothing more to do in phase 1; phase 2 restores the SECONDARY.
    let half = created;
    assert!(phases::plan_primary(&site, &st, &half).unwrap().is_empty());
    let second = phases::plan_secondary(&site, &st, &half).unwrap();
    let creates: Vec<_> = second
        .iter()
        .filter(|c| c.action == ChangeAction::Create)
        .map(|c| c.record.clone())
        .collect();
    assert_eq!(creates, recorded());
    assert_eq!(second.len(), 4);
    assert!(phases::plan_secondary(&site, &st, &recorded())
        .unwrap()
        .is_empty());
}

#[test]
fn phase_2_never_runs_on_the_pinned_pair_and_a_human_edit_is_refused_in_either_phase() {
    let (site, st) = (switch_site(), failed_back());
    assert!(matches!(
        phases::plan_secondary(&site, &st, &pinned()),
        Err(Refused::ChangedConcurrently { .. })
    ));
    let mut edited = pinned();
    edited[1].values = vec!["hand-picked.example.com".into()];
    for plan in [phases::plan_primary, phases::plan_secondary] {
        let e = plan(&site, &st, &edited).unwrap_err();
        assert!(e.to_string().contains("hand-picked"), "{e}");
    }
}

#[test]
fn the_check_is_healthy_on_a_majority_of_success_reports_and_the_wait_counts_from_phase_1() {
    use phases::CheckStatus;
    let ok = |success, checkers| CheckStatus { checkers, success }.healthy();
    assert!(ok(9, 16) && !ok(8, 16) && !ok(0, 0) && !ok(0, 16));
    let site = switch_site();
    let limit = site.thresholds.pin_deadline_secs as i64;
    let u = UnpinRecord {
        primary_restored_at: Some(t(100)),
        ..requested()
    };
    let unhealthy = Some(CheckStatus {
        checkers: 16,
        success: 3,
    });
    let healthy = Some(CheckStatus {
        checkers: 16,
        success: 16,
    });
    assert_eq!(
        phases::healthy(&site, &u, "hc-1", healthy, t(101)),
        Follow::Followed
    );
    assert_eq!(
        phases::healthy(&site, &u, "hc-1", unhealthy, t(100 + limit - 1)),
        Follow::Wait
    );
    let Follow::Expired(why) = phases::healthy(&site, &u, "hc-1", unhealthy, t(100 + limit)) else {
        panic!("past the deadline")
    };
    assert!(
        why.contains("hc-1")
            && why.contains("3 of 16 checkers")
            && why.contains("SECONDARY was NOT restored and stays at the writer"),
        "{why}"
    );
}
