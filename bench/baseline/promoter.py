"""Baseline replica promoter: a typical hand-written boto3 Lambda for the `FailoverDecided` step,
making the same AWS calls, in the same order, as `functions/replica-promoter` for the event the
cold-start bench sends (an epoch the ledger does not hold): one consistent DynamoDB GetItem of the
site's ledger record, then a fenced answer with nothing changed.

Past the fence it does what such handlers do: PromoteReadReplica, boto3's `db_instance_available`
waiter, a writability check over MySQL (the same SQL as ours), a conditional ledger update and a
`ReplicaPromoted` event. Environment: FAILOVER_CONFIG, LEDGER_TABLE, EVENT_BUS_NAME and the canary
password variable (as the Rust function). Written for the benchmark only.
"""

import json
import os

import boto3
import pymysql

dynamodb = boto3.client("dynamodb")
rds = boto3.client("rds")
events = boto3.client("events")
CONFIG = json.loads(os.environ["FAILOVER_CONFIG"])
TABLE = os.environ["LEDGER_TABLE"]
BUS = os.environ["EVENT_BUS_NAME"]


def handler(event, context):
    detail = event["detail"]
    site_id, epoch, candidate = detail["site"], int(detail["epoch"]), detail["candidate"]["id"]
    site = next((s for s in CONFIG["sites"] if s["id"] == site_id), None)
    if site is None or candidate not in [c["id"] for c in site["candidates"]]:
        return {"outcome": "fenced", "reason": "site or candidate not configured"}
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": site_id}, "sk": {"S": "STATE"}},
                             ConsistentRead=True).get("Item")
    if not item or int(item["epoch"]["N"]) != epoch or item["phase"]["S"] != "promoting":
        return {"outcome": "fenced", "reason": f"ledger does not hold epoch {epoch} promoting"}

    rds.promote_read_replica(DBInstanceIdentifier=candidate)
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=candidate)
    endpoint = rds.describe_db_instances(DBInstanceIdentifier=candidate)["DBInstances"][0]["Endpoint"]
    canary = site["canary"]
    conn = pymysql.connect(host=endpoint["Address"], port=endpoint["Port"], user=canary["user"],
                           password=os.environ[canary["credentials"]["var"]],
                           connect_timeout=canary["connect_timeout_ms"] / 1000)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.read_only, @@global.innodb_read_only")
            read_only, innodb_read_only = cur.fetchone()
    finally:
        conn.close()
    if read_only or innodb_read_only:
        raise RuntimeError(f"{candidate} is still read-only after promotion")
    dynamodb.update_item(
        TableName=TABLE, Key={"pk": {"S": site_id}, "sk": {"S": "STATE"}},
        UpdateExpression="SET phase = :promoted", ConditionExpression="epoch = :epoch",
        ExpressionAttributeValues={":promoted": {"S": "promoted"}, ":epoch": {"N": str(epoch)}},
    )
    events.put_events(Entries=[{
        "Source": "rds-failover", "DetailType": "ReplicaPromoted", "EventBusName": BUS,
        "Detail": json.dumps({**detail, "event_type": "ReplicaPromoted", "phase": "promoted",
                              "endpoint": f"{endpoint['Address']}:{endpoint['Port']}"}),
    }])
    return {"outcome": "promoted", "candidate": candidate, "endpoint": endpoint}
