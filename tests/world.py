"""The emulated AWS account the offline tests and the demo run against.

`seed(endpoint, ...)` builds, on a moto server, what a real account protected by
`infra/sites.example.json` would hold: the RDS topology of the four sites (a cross-region read
replica pair, an Aurora cluster, an Aurora Global Database, a Multi-AZ instance), their CloudWatch
alarms and replica-lag metrics, the DynamoDB ledger table and the EventBridge bus — with an SQS
queue subscribed to the bus so tests can observe every domain event the functions emit.

`World` then lets a test set alarm states, publish lag datapoints, read the ledger and drain the
emitted events, i.e. assert on AWS state rather than on return values.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
HOME_REGION = "us-west-2"
LEDGER_TABLE = "rds-failover-ledger"
EVENT_BUS = "rds-failover"
ALERT_TOPIC = "rds-failover-alerts"
OBSERVER_QUEUE = "observed-domain-events"
# The evaluator's re-check queue (infra/template.yaml RecheckQueue; failover_policy::recheck).
RECHECK_QUEUE = "rds-failover-recheck"
CANARY_PASSWORD_VAR = "RDS_FAILOVER_CANARY_PASSWORD"
ORDERS_GROUP = "orders-primary-params"


def example_config() -> dict:
    return json.loads((ROOT / "infra" / "sites.example.json").read_text())


def alarm_region(name: str) -> str:
    """The region an alarm of the example configuration lives in (default: the DR region)."""
    cfg = example_config()
    for site in cfg["sites"]:
        for a in site["alarms"]:
            if a["name"] == name:
                return a.get("region", cfg["region"])
    return cfg["region"]


def site_config(canary_port: int | None, sustained_secs: int | None = None, others_port: int | None = None) -> dict:
    """The example config with every site's canary pointed at a local MariaDB: `orders` at
    `canary_port` (None: a closed port), the other sites at `others_port` (default: the same).

    The password comes from an environment variable of the function, as a drill would do it.
    """
    cfg = copy.deepcopy(example_config())
    assert cfg["sites"][0]["id"] == "orders"
    for i, site in enumerate(cfg["sites"]):
        port = canary_port if i == 0 or others_port is None else others_port
        site["canary"]["endpoint"] = f"127.0.0.1:{port or 9}"
        site["canary"]["credentials"] = {"kind": "env", "var": CANARY_PASSWORD_VAR}
        site["canary"]["connect_timeout_ms"] = 1000
        site["canary"]["query_timeout_ms"] = 1000
        # The local MariaDB speaks plain TCP (TLS is covered by shared/adapters/tests/mysql_canary.rs).
        site["canary"].pop("tls", None)
    if sustained_secs is not None:
        for s in cfg["sites"]:
            s["thresholds"]["sustained_secs"] = sustained_secs
            # The flap window scales with the window, as the test's clock does.
            s["thresholds"]["flap_window_secs"] = sustained_secs
    return cfg


def function_env(endpoint: str, cfg: dict, replay_clock: str | None = None) -> dict:
    """The environment the Lambda functions run with against the emulator."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": HOME_REGION,
        "AWS_DEFAULT_REGION": HOME_REGION,
        "FAILOVER_CONFIG": json.dumps(cfg),
        "LEDGER_TABLE": LEDGER_TABLE,
        "EVENT_BUS_NAME": EVENT_BUS,
        # moto resolves a queue URL by its last path segment, whatever the host.
        "RECHECK_QUEUE_URL": f"{endpoint}/{ACCOUNT}/{RECHECK_QUEUE}",
        CANARY_PASSWORD_VAR: "canary-pass",
        # The scenarios send mutating operator commands by direct invoke: allowed here only. A
        # deployed stack leaves it unset, and commands go through the AWS_IAM function URLs
        # (failover_policy::signal::url; tests/test_cli.py drives both doors).
        "RDS_FAILOVER_DIRECT_COMMANDS": "allow",
    }
    if replay_clock:
        env["RDS_FAILOVER_REPLAY_CLOCK"] = replay_clock
    return env


@dataclass
class World:
    endpoint: str
    queue_url: str = ""
    recheck_url: str = ""
    _clients: dict = field(default_factory=dict)

    def client(self, service: str, region: str = HOME_REGION):
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = boto3.client(
                service,
                region_name=region,
                endpoint_url=self.endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._clients[key]

    # ------------------------------------------------------------------ seeding

    def seed(self) -> "World":
        self._seed_rds()
        self._seed_alarms()
        self._seed_ledger()
        self._seed_bus()
        return self

    def _seed_rds(self) -> None:
        east, west = self.client("rds", "us-east-1"), self.client("rds", HOME_REGION)
        common = dict(DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password1")
        # orders-primary has its own custom parameter group, as a fenceable primary must (issue 12):
        # the fence sets read_only=1 in it. Its cross-region replicas get their region's default.
        east.create_db_parameter_group(DBParameterGroupName=ORDERS_GROUP, DBParameterGroupFamily="mysql8.0",
                                       Description="orders-primary's own parameters")
        primary = east.create_db_instance(DBInstanceIdentifier="orders-primary", Engine="mysql",
                                          DBParameterGroupName=ORDERS_GROUP, **common)
        arn = primary["DBInstance"]["DBInstanceArn"]
        for r in ("orders-replica-1", "orders-replica-2"):
            west.create_db_instance_read_replica(DBInstanceIdentifier=r, SourceDBInstanceIdentifier=arn, DBInstanceClass="db.t3.micro")
        west.create_db_cluster(DBClusterIdentifier="billing-cluster", Engine="aurora-mysql", MasterUsername="admin", MasterUserPassword="password1")
        for i in ("billing-1", "billing-2"):
            west.create_db_instance(DBInstanceIdentifier=i, Engine="aurora-mysql", DBInstanceClass="db.r6g.large", DBClusterIdentifier="billing-cluster")
        east.create_global_cluster(GlobalClusterIdentifier="payments-global", Engine="aurora-mysql")
        east.create_db_cluster(
            DBClusterIdentifier="payments-east", Engine="aurora-mysql", MasterUsername="admin",
            MasterUserPassword="password1", GlobalClusterIdentifier="payments-global",
        )
        west.create_db_cluster(DBClusterIdentifier="payments-west", Engine="aurora-mysql", GlobalClusterIdentifier="payments-global")
        west.create_db_instance(DBInstanceIdentifier="inventory-db", Engine="mysql", MultiAZ=True, **common)

    def _seed_alarms(self) -> None:
        cfg = example_config()
        for site in cfg["sites"]:
            for a in site["alarms"]:
                cw = self.client("cloudwatch", a.get("region", cfg["region"]))
                cw.put_metric_alarm(
                    AlarmName=a["name"], Namespace="AWS/RDS", MetricName="DatabaseConnections",
                    Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=1,
                    ComparisonOperator="LessThanThreshold", TreatMissingData="breaching",
                )
                self.set_alarm(a["name"], "OK")

    def _seed_ledger(self) -> None:
        ddb = self.client("dynamodb")
        ddb.create_table(
            TableName=LEDGER_TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"},
                                  {"AttributeName": "in_flight", "AttributeType": "S"}],
            # As infra/template.yaml: the sparse index of site records in flight.
            GlobalSecondaryIndexes=[{"IndexName": "InFlight",
                                     "KeySchema": [{"AttributeName": "in_flight", "KeyType": "HASH"},
                                                   {"AttributeName": "pk", "KeyType": "RANGE"}],
                                     "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state", "phase", "epoch"]}}],
            BillingMode="PAY_PER_REQUEST",
        )

    def _seed_bus(self) -> None:
        ev, sqs = self.client("events"), self.client("sqs")
        ev.create_event_bus(Name=EVENT_BUS)
        self.queue_url = sqs.create_queue(QueueName=OBSERVER_QUEUE)["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        ev.put_rule(Name="observe-all", EventBusName=EVENT_BUS, EventPattern=json.dumps({"source": ["rds-failover"]}))
        ev.put_targets(Rule="observe-all", EventBusName=EVENT_BUS, Targets=[{"Id": "observer", "Arn": qarn}])
        self.recheck_url = sqs.create_queue(QueueName=RECHECK_QUEUE)["QueueUrl"]

    def rechecks(self, wait_secs: int = 0) -> list[dict]:
        """Lambda's SQS event source mapping for the re-check queue (BatchSize 1): each message
        that has become visible, as the event Lambda would invoke the evaluator with
        (Lambda Developer Guide, "Using Lambda with Amazon SQS"), deleted as a successful
        invocation would. Long-polls up to `wait_secs` for the first."""
        sqs, out = self.client("sqs"), []
        url = getattr(self, "recheck_url", None) or sqs.get_queue_url(QueueName=RECHECK_QUEUE)["QueueUrl"]
        arn = f"arn:aws:sqs:{HOME_REGION}:{ACCOUNT}:{RECHECK_QUEUE}"
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0 if out else wait_secs,
                                       AttributeNames=["All"]).get("Messages", [])
            if not msgs:
                return out
            m = msgs[0]
            out.append({"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": HOME_REGION,
            }]})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    # ------------------------------------------------------------------ action path

    def seed_writer_record(self, name: str, target: str, ttl: int = 300) -> str:
        """A hosted zone holding the writer CNAME `name` → `target`; returns the zone id."""
        r53 = self.client("route53")
        zone = name.split(".", 1)[1] + "."
        zid = r53.create_hosted_zone(Name=zone, CallerReference=f"{zone}-{time.time_ns()}")["HostedZone"]["Id"].split("/")[-1]
        r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
            "Name": name, "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": target}]}}]})
        return zid

    def writer_record(self, zone_id: str, name: str) -> tuple[str, int] | None:
        sets = self.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        for rs in sets:
            if rs["Name"].rstrip(".") == name.rstrip(".") and rs["Type"] == "CNAME":
                return rs["ResourceRecords"][0]["Value"], rs["TTL"]
        return None

    def seed_topic(self) -> str:
        """The alert topic, with an SQS subscription that lets tests read what people would get."""
        sns, sqs = self.client("sns"), self.client("sqs")
        arn = sns.create_topic(Name=ALERT_TOPIC)["TopicArn"]
        self.alerts_url = sqs.create_queue(QueueName="observed-alerts")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=self.alerts_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
        return arn

    def notifications(self) -> list[dict]:
        """SNS envelopes delivered to the alert subscription since the last call."""
        sqs, out = self.client("sqs"), []
        while True:
            msgs = sqs.receive_message(QueueUrl=self.alerts_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.alerts_url, ReceiptHandle=m["ReceiptHandle"])

    def seed_failover_pair(self, name: str, primary: str, secondary: str) -> str:
        """A new zone holding billing's Route 53 failover pair for `name` — PRIMARY (SetIdentifier
        `billing-primary`, as the billing site's failover-pin mode names it) and SECONDARY — and its id."""
        r53 = self.client("route53")
        zone = name.split(".", 1)[1] + "."
        zid = r53.create_hosted_zone(Name=zone, CallerReference=f"{zone}-{time.time_ns()}")["HostedZone"]["Id"].split("/")[-1]
        changes = [
            {"Action": "CREATE", "ResourceRecordSet": {"Name": name, "Type": "CNAME", "SetIdentifier": ident, "Failover": role,
                                                       "TTL": 60, "ResourceRecords": [{"Value": value}]}}
            for ident, role, value in (("billing-primary", "PRIMARY", primary), ("billing-secondary", "SECONDARY", secondary))
        ]
        r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": changes})
        return zid

    def point_endpoint(self, instance: str, region: str, endpoint: str, admin_socket: str | None = None) -> None:
        """Makes DescribeDBInstances report `endpoint` for `instance` (faithful_moto's tag). With
        `admin_socket` (a local MariaDB's), the emulator also promotes that server when the
        instance's promotion completes: replication stopped, read_only off."""
        rds = self.client("rds", region)
        arn = rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]["DBInstanceArn"]
        tags = [{"Key": "emulator:endpoint", "Value": endpoint}]
        if admin_socket:
            tags.append({"Key": "emulator:mysql-socket", "Value": admin_socket})
        rds.add_tags_to_resource(ResourceName=arn, Tags=tags)

    def report_status(self, instance: str, region: str, status: str | None) -> None:
        """Makes DescribeDBInstances report `status` for `instance` (faithful_moto's
        `emulator:status` tag), e.g. `failed` for a primary whose host is lost; None lifts it."""
        rds = self.client("rds", region)
        arn = rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]["DBInstanceArn"]
        if status is None:
            rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["emulator:status"])
        else:
            rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "emulator:status", "Value": status}])

    def parameter_group(self, instance: str, region: str) -> tuple[str, str]:
        """(name, ParameterApplyStatus) of the parameter group attached to `instance`."""
        [g] = self.instance(instance, region)["DBParameterGroups"]
        return g["DBParameterGroupName"], g["ParameterApplyStatus"]

    def group_value(self, group: str, region: str, name: str = "read_only") -> str | None:
        """`name` as the parameter group holds it (None: not set in the group)."""
        params = self.client("rds", region).describe_db_parameters(DBParameterGroupName=group)["Parameters"]
        return next((p.get("ParameterValue") for p in params if p["ParameterName"] == name), None)

    def snapshots(self, instance: str, region: str) -> dict[str, str]:
        """Snapshot id -> Status of `instance`'s DB snapshots."""
        snaps = self.client("rds", region).describe_db_snapshots(DBInstanceIdentifier=instance)["DBSnapshots"]
        return {s["DBSnapshotIdentifier"]: s["Status"] for s in snaps}

    def instance(self, instance: str, region: str = HOME_REGION) -> dict:
        return self.client("rds", region).describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]

    # ------------------------------------------------------------------ driving

    def set_alarm(self, name: str, state: str) -> None:
        """Sets the alarm's state in the region the example configuration places it in."""
        self.client("cloudwatch", alarm_region(name)).set_alarm_state(AlarmName=name, StateValue=state, StateReason="test harness")

    def put_lag(self, db_id: str, secs: float, at: dt.datetime, region: str = HOME_REGION) -> None:
        """Publishes a lag datapoint the way RDS does for the engine: `ReplicaLag` in seconds for
        RDS read replicas, `AuroraReplicaLag` in milliseconds for Aurora cluster members,
        `AuroraGlobalDBReplicationLag` in milliseconds per secondary cluster of a global database."""
        if db_id.startswith("billing-"):
            name, dim, value = "AuroraReplicaLag", "DBInstanceIdentifier", secs * 1000
        elif db_id.startswith("payments-"):
            name, dim, value = "AuroraGlobalDBReplicationLag", "DBClusterIdentifier", secs * 1000
        else:
            name, dim, value = "ReplicaLag", "DBInstanceIdentifier", secs
        self.client("cloudwatch", region).put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[{
                "MetricName": name,
                "Dimensions": [{"Name": dim, "Value": db_id}],
                "Timestamp": at,
                "Value": value,
            }],
        )

    def put_state(self, site: str, state: dict) -> None:
        """Writes a ledger record directly (GIVEN a site at some phase)."""
        self.client("dynamodb").put_item(
            TableName=LEDGER_TABLE,
            Item={
                "pk": {"S": site}, "sk": {"S": "STATE"},
                "version": {"N": str(state["version"])}, "epoch": {"N": str(state["epoch"])},
                "phase": {"S": state["phase"]}, "state": {"S": json.dumps(state)},
                "updated_at": {"S": state.get("updated_at") or "2026-11-24T03:00:00Z"},
            },
        )

    # ------------------------------------------------------------------ observing

    def ledger_items(self) -> list[dict]:
        return self.client("dynamodb").scan(TableName=LEDGER_TABLE, ConsistentRead=True)["Items"]

    def state(self, site: str) -> dict | None:
        item = self.client("dynamodb").get_item(
            TableName=LEDGER_TABLE, Key={"pk": {"S": site}, "sk": {"S": "STATE"}}, ConsistentRead=True
        ).get("Item")
        return json.loads(item["state"]["S"]) if item else None

    def drain_events(self) -> list[dict]:
        """Every domain event delivered to the observer queue since the last drain."""
        sqs, out = self.client("sqs"), []
        while True:
            msgs = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def rds_snapshot(self) -> dict:
        """Status and replication source of every instance, for 'nothing was mutated' checks."""
        snap = {}
        for region in ("us-east-1", HOME_REGION):
            for i in self.client("rds", region).describe_db_instances()["DBInstances"]:
                snap[i["DBInstanceIdentifier"]] = (i["DBInstanceStatus"], i.get("ReadReplicaSourceDBInstanceIdentifier"))
        return snap


def utc(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))



# ---------------------------------------------------------------------- deliveries built at runtime
# Scenario tests run on the real clock, so their deliveries are stamped "now"; the shapes are those
# of the recorded files in events/ (EventBridge "CloudWatch Alarm State Change", Scheduled Event).


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def alarm_event(name: str, state: str, previous: str, at: dt.datetime, account: str = ACCOUNT, region: str = HOME_REGION) -> dict:
    ts = at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return {
        "version": "0",
        "id": f"alarm-{name}-{state}-{int(at.timestamp() * 1000)}",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account,
        "time": iso(at),
        "region": region,
        "resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "harness", "timestamp": ts},
            "previousState": {"value": previous, "reason": "harness", "timestamp": ts},
            "configuration": {"metrics": [], "description": "harness"},
        },
    }


def tick_event(at: dt.datetime, account: str = ACCOUNT) -> dict:
    return {
        "version": "0",
        "id": f"tick-{int(at.timestamp() * 1000)}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": iso(at),
        "region": HOME_REGION,
        "resources": [f"arn:aws:events:{HOME_REGION}:{account}:rule/rds-failover-tick"],
        "detail": {},
    }


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


if __name__ == "__main__":
    # `python tests/world.py http://127.0.0.1:5000`: seed a running moto server for local invokes.
    import sys

    w = World(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000").seed()
    print(f"seeded {w.endpoint}: 4 sites' RDS topology, alarms, ledger table {LEDGER_TABLE}, bus {EVENT_BUS}")
