"""Baseline failover pipeline (part 2 of the bench): the whole action path as one typical
hand-written boto3 Lambda, in the style of the blog posts this project started from, invoked with
the same operator command as our evaluator:

describe the candidate replica → PromoteReadReplica → boto3's `db_instance_available` waiter →
describe for the endpoint → writability check over MySQL (the same SQL as ours:
`SELECT @@global.read_only, @@global.innodb_read_only`) → ChangeResourceRecordSets (UPSERT the
writer CNAME) → boto3's `resource_record_sets_changed` waiter → SNS Publish.

boto3's waiters are used with their standard settings (both poll every 30 s). Environment:
FAILOVER_CONFIG, TOPIC_ARN and the canary password variable. Written for the benchmark only.
"""

import json
import os

import boto3
import pymysql

rds = boto3.client("rds")
route53 = boto3.client("route53")
sns = boto3.client("sns")
CONFIG = json.loads(os.environ["FAILOVER_CONFIG"])
TOPIC_ARN = os.environ["TOPIC_ARN"]


def handler(event, context):
    site = next(s for s in CONFIG["sites"] if s["id"] == event["site"])
    candidate = site["candidates"][0]["id"]
    replica = rds.describe_db_instances(DBInstanceIdentifier=candidate)["DBInstances"][0]
    if replica["DBInstanceStatus"] != "available" or not replica.get("ReadReplicaSourceDBInstanceIdentifier"):
        raise RuntimeError(f"{candidate} is not an available read replica")

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

    dns = site["dns"]
    change = route53.change_resource_record_sets(HostedZoneId=dns["zone_id"], ChangeBatch={"Changes": [{
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": dns["name"], "Type": "CNAME", "TTL": dns["ttl"],
                              "ResourceRecords": [{"Value": endpoint["Address"]}]}}]})
    route53.get_waiter("resource_record_sets_changed").wait(Id=change["ChangeInfo"]["Id"])

    sns.publish(TopicArn=TOPIC_ARN, Subject=f"[rds-failover] {site['id']}: failed over to {candidate}"[:100],
                Message=json.dumps({"site": site["id"], "candidate": candidate, "endpoint": endpoint,
                                    "dns": dns["name"], "reason": event.get("reason")}, indent=2))
    return {"outcome": "pinned", "candidate": candidate, "target": endpoint["Address"]}
