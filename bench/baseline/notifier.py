"""Baseline notifier: a typical hand-written boto3 Lambda making the same AWS calls, in the same
order, as `functions/notifier` does for one domain event:

1. DynamoDB PutItem — claim `site / NOTIFIED#<epoch>#<detail-type>` in the ledger table, conditional
   on it not existing (or being a stale claim), so a re-delivery does not page twice;
2. SNS Publish — subject, body and filterable message attributes;
3. DynamoDB UpdateItem — mark the claim sent with the message id.

Environment: TOPIC_ARN, LEDGER_TABLE (as the Rust function). Written for the benchmark only.
"""

import json
import os
import time
import uuid

import boto3

dynamodb = boto3.client("dynamodb")
sns = boto3.client("sns")
TABLE = os.environ["LEDGER_TABLE"]
TOPIC_ARN = os.environ["TOPIC_ARN"]
LEASE_SECS = 45
RETENTION_SECS = 90 * 24 * 3600


def handler(event, context):
    detail = event["detail"]
    kind = event["detail-type"]
    site, epoch = detail["site"], int(detail["epoch"])
    key = {"pk": {"S": site}, "sk": {"S": f"NOTIFIED#{epoch:012}#{kind}"}}
    token = uuid.uuid4().hex
    now = int(time.time())
    # Page only for what the ledger recorded: the site's record must know the epoch.
    state = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": site}, "sk": {"S": "STATE"}},
                              ConsistentRead=True).get("Item")
    if not state or int(state["epoch"]["N"]) < epoch:
        return {"outcome": "ignored", "site": site, "epoch": epoch, "event": kind}
    try:
        dynamodb.put_item(
            TableName=TABLE,
            Item={**key, "status": {"S": "claimed"}, "claim_token": {"S": token},
                  "claimed_at": {"N": str(now)}, "epoch": {"N": str(epoch)},
                  "event_type": {"S": kind}, "expires_at": {"N": str(now + RETENTION_SECS)}},
            ConditionExpression="attribute_not_exists(pk) OR (#st = :claimed AND claimed_at < :stale)",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues={":claimed": {"S": "claimed"}, ":stale": {"N": str(now - LEASE_SECS)}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return {"outcome": "duplicate", "site": site, "epoch": epoch, "event": kind}

    verdict = detail.get("verdict") or {}
    candidate = (detail.get("candidate") or {}).get("id", "-")
    subject = f"[rds-failover] {site}: {kind} (epoch {epoch})"[:100]
    body = "\n".join([
        f"Site: {site}",
        f"Event: {kind}, phase {detail.get('phase')}, epoch {epoch}",
        f"Candidate: {candidate}",
        f"Summary: {verdict.get('summary', '')}",
        "Timeline:",
        *(f"  {t['at']}  {t['phase']}  {t['note']}" for t in detail.get("timeline", [])),
        "Next steps: see the runbook.",
        "",
        json.dumps(detail, indent=2),
    ])
    attrs = {name: {"DataType": "String", "StringValue": str(value)} for name, value in
             (("site", site), ("phase", detail.get("phase")), ("event_type", kind), ("epoch", epoch),
              ("severity", "critical" if kind in ("FailoverFailed", "FailoverDecided") else "info"))}
    message_id = sns.publish(TopicArn=TOPIC_ARN, Subject=subject, Message=body, MessageAttributes=attrs)["MessageId"]

    dynamodb.update_item(
        TableName=TABLE, Key=key,
        UpdateExpression="SET #st = :sent, sent_at = :at, message_id = :mid",
        ConditionExpression="claim_token = :token",
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues={":sent": {"S": "sent"}, ":at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                   ":mid": {"S": message_id}, ":token": {"S": token}},
    )
    return {"outcome": "sent", "site": site, "epoch": epoch, "event": kind, "message_id": message_id}
