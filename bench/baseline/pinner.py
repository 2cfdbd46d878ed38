"""Baseline DNS pinner: a typical hand-written boto3 Lambda for the `ReplicaPromoted` step, making
the same AWS calls, in the same order, as `functions/dns-pinner` for the event the cold-start
bench sends (an epoch the ledger does not hold): one consistent DynamoDB GetItem of the site's
ledger record, then a fenced answer with nothing changed.

Past the fence it does what such handlers do: UPSERT the writer CNAME to the new primary, boto3's
`resource_record_sets_changed` waiter, a conditional ledger update and a `DnsPinned` event.
Environment: FAILOVER_CONFIG, LEDGER_TABLE, EVENT_BUS_NAME (as the Rust function). Written for the
benchmark only.
"""

import json
import os

import boto3

dynamodb = boto3.client("dynamodb")
route53 = boto3.client("route53")
events = boto3.client("events")
CONFIG = json.loads(os.environ["FAILOVER_CONFIG"])
TABLE = os.environ["LEDGER_TABLE"]
BUS = os.environ["EVENT_BUS_NAME"]


def handler(event, context):
    detail = event["detail"]
    site_id, epoch = detail["site"], int(detail["epoch"])
    site = next((s for s in CONFIG["sites"] if s["id"] == site_id), None)
    if site is None:
        return {"outcome": "fenced", "reason": "site not configured"}
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": site_id}, "sk": {"S": "STATE"}},
                             ConsistentRead=True).get("Item")
    if not item or int(item["epoch"]["N"]) != epoch or item["phase"]["S"] != "promoted":
        return {"outcome": "fenced", "reason": f"ledger does not hold epoch {epoch} promoted"}

    state = json.loads(item["state"]["S"])
    target = state["promotion"]["endpoint"].rsplit(":", 1)[0]
    dns = site["dns"]
    change = route53.change_resource_record_sets(HostedZoneId=dns["zone_id"], ChangeBatch={"Changes": [{
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": dns["name"], "Type": "CNAME", "TTL": dns["ttl"],
                              "ResourceRecords": [{"Value": target}]}}]})
    route53.get_waiter("resource_record_sets_changed").wait(Id=change["ChangeInfo"]["Id"])
    dynamodb.update_item(
        TableName=TABLE, Key={"pk": {"S": site_id}, "sk": {"S": "STATE"}},
        UpdateExpression="SET phase = :pinned", ConditionExpression="epoch = :epoch",
        ExpressionAttributeValues={":pinned": {"S": "dns-pinned"}, ":epoch": {"N": str(epoch)}},
    )
    events.put_events(Entries=[{
        "Source": "rds-failover", "DetailType": "DnsPinned", "EventBusName": BUS,
        "Detail": json.dumps({**detail, "event_type": "DnsPinned", "phase": "dns-pinned", "target": target}),
    }])
    return {"outcome": "pinned", "name": dns["name"], "target": target}
