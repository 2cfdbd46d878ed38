"""Baseline alarm evaluator: a typical hand-written boto3 Lambda for the scheduled tick, making the
same AWS calls as `functions/alarm-evaluator` for it, site by site in the configuration's order:

- CloudWatch DescribeAlarms for the site's alarms;
- RDS DescribeDBInstances / DescribeDBClusters / DescribeGlobalClusters for the primary and each
  candidate, as the engine needs (RDS replica and Multi-AZ: instances; Aurora cluster: the
  primary instance, the cluster and the candidate instances; Aurora Global: the clusters and the
  global cluster);
- CloudWatch GetMetricData for each candidate's lag over the last 10 minutes;
- the SQL canary, `SELECT 1` over MySQL as the canary user, within the configured timeouts;
- DynamoDB GetItem of the site's ledger record (consistent read);
- DynamoDB TransactWriteItems: the record with what was observed (the replicas' last good lag),
  conditional on the version read, plus an audit item — as ours records the observation.

Then a verdict per site from that evidence. Calls are made one after another, as such handlers
usually are (ours makes a site's reads concurrently). Environment: FAILOVER_CONFIG and the canary
password variable. Written for the benchmark only.
"""

import datetime as dt
import json
import os

import boto3
import pymysql

CONFIG = json.loads(os.environ["FAILOVER_CONFIG"])
HOME = CONFIG["region"]
dynamodb = boto3.client("dynamodb")
TABLE = os.environ["LEDGER_TABLE"]
_clients = {}

LAG = {  # metric, dimension, unit divisor per engine
    "rds-replica": ("ReplicaLag", "DBInstanceIdentifier", 1.0),
    "multi-az": ("ReplicaLag", "DBInstanceIdentifier", 1.0),
    "aurora-cluster": ("AuroraReplicaLag", "DBInstanceIdentifier", 1000.0),
    "aurora-global": ("AuroraGlobalDBReplicationLag", "DBClusterIdentifier", 1000.0),
}


def client(service, region):
    if (service, region) not in _clients:
        _clients[(service, region)] = boto3.client(service, region_name=region)
    return _clients[(service, region)]


def instance(db):
    try:
        return client("rds", db["region"]).describe_db_instances(DBInstanceIdentifier=db["id"])["DBInstances"][0]
    except client("rds", db["region"]).exceptions.DBInstanceNotFoundFault:
        return None


def cluster(cluster_id, region):
    try:
        return client("rds", region).describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    except client("rds", region).exceptions.DBClusterNotFoundFault:
        return None


def lag(db, engine, now):
    name, dim, per_second = LAG[engine]
    out = client("cloudwatch", db["region"]).get_metric_data(
        MetricDataQueries=[{"Id": "lag", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/RDS", "MetricName": name, "Dimensions": [{"Name": dim, "Value": db["id"]}]},
            "Period": 60, "Stat": "Maximum"}}],
        StartTime=now - dt.timedelta(minutes=10), EndTime=now, ScanBy="TimestampDescending")
    points = [p for r in out["MetricDataResults"] for p in zip(r["Timestamps"], r["Values"])]
    return max(points)[1] / per_second if points else None


def canary(site):
    c = site.get("canary")
    if not c:
        return "unknown"
    host, port = c["endpoint"].rsplit(":", 1)
    try:
        conn = pymysql.connect(host=host, port=int(port), user=c["user"], password=os.environ[c["credentials"]["var"]],
                               database=c["database"], connect_timeout=c["connect_timeout_ms"] / 1000,
                               read_timeout=c["query_timeout_ms"] / 1000)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return "reachable" if cur.fetchone() == (1,) else "unreachable"
        finally:
            conn.close()
    except pymysql.err.MySQLError:
        return "unreachable"


def evaluate(site, now):
    engine = site["engine"]["kind"]
    # Each alarm is read in its own region (an alarm in the primary's region votes too).
    by_region = {}
    for a in site["alarms"]:
        by_region.setdefault(a.get("region") or HOME, []).append(a["name"])
    in_alarm = []
    for region, names in by_region.items():
        alarms = client("cloudwatch", region).describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        in_alarm += [a["AlarmName"] for a in alarms["MetricAlarms"] + alarms["CompositeAlarms"] if a["StateValue"] == "ALARM"]
    candidates = []
    if engine == "aurora-global":
        primary = cluster(site["primary"]["id"], site["primary"]["region"])
        for c in site["candidates"]:
            info = cluster(c["id"], c["region"])
            client("rds", c["region"]).describe_global_clusters(GlobalClusterIdentifier=site["engine"]["global_cluster_id"])
            candidates.append((c["id"], info and info["Status"], lag(c, engine, now)))
    else:
        primary = instance(site["primary"])
        if engine == "aurora-cluster":
            cluster(site["engine"]["cluster_id"], site["primary"]["region"])
        for c in site["candidates"]:
            info = instance(c)
            candidates.append((c["id"], info and info["DBInstanceStatus"], lag(c, engine, now)))
    probe = canary(site)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": site["id"]}, "sk": {"S": "STATE"}},
                             ConsistentRead=True).get("Item")
    phase = item["phase"]["S"] if item else "idle"
    record(site["id"], item, candidates, now)
    status = primary and primary.get("DBInstanceStatus", primary.get("Status"))
    down = len(in_alarm) >= site["thresholds"]["quorum"] or status != "available" or probe == "unreachable"
    return {"site": site["id"], "verdict": "suspect" if down else "healthy", "phase": phase,
            "alarms_in_alarm": in_alarm, "primary": status, "canary": probe,
            "candidates": [{"id": i, "status": s, "lag_secs": lg} for i, s, lg in candidates]}


def record(site_id, item, candidates, now):
    """Writes the observation: the record's next version (compare-and-set) and an audit item."""
    state = json.loads(item["state"]["S"]) if item else {"site": site_id, "version": 0, "epoch": 0, "phase": "idle"}
    prev = state["version"]
    state["version"] = prev + 1
    at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    lags = state.setdefault("last_good_lag", {})
    for cid, _, lg in candidates:
        if lg is not None and lg >= 0:
            lags[cid] = {"secs": lg, "at": at}

    def attrs(sk):
        return {"pk": {"S": site_id}, "sk": {"S": sk}, "version": {"N": str(state["version"])},
                "epoch": {"N": str(state["epoch"])}, "phase": {"S": state["phase"]},
                "state": {"S": json.dumps(state)}, "updated_at": {"S": at}}

    put_state = {"TableName": TABLE, "Item": attrs("STATE")}
    if prev == 0:
        put_state["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        put_state |= {"ConditionExpression": "version = :prev", "ExpressionAttributeValues": {":prev": {"N": str(prev)}}}
    audit = attrs(f"AUDIT#{state['version']:012}") | {"expires_at": {"N": str(int(now.timestamp()) + 90 * 86400)}}
    dynamodb.transact_write_items(TransactItems=[
        {"Put": put_state},
        {"Put": {"TableName": TABLE, "Item": audit, "ConditionExpression": "attribute_not_exists(pk)"}},
    ])


def handler(event, context):
    now = dt.datetime.now(dt.timezone.utc)
    sites = [evaluate(site, now) for site in CONFIG["sites"]]
    # Epochs in flight for sites the configuration no longer names (the ledger's sparse index).
    configured = {s["id"] for s in CONFIG["sites"]}
    orphans = [i["pk"]["S"] for i in dynamodb.query(
        TableName=TABLE, IndexName="InFlight", KeyConditionExpression="in_flight = :yes",
        ExpressionAttributeValues={":yes": {"S": "IN_FLIGHT"}})["Items"] if i["pk"]["S"] not in configured]
    return {"sites": sites, "orphaned": orphans}
