"""events_lag_ms: from a change's commit to its event in a queue, in the
local stack (`make dev`, or `make bench`, which starts one): an audit
record is put (what every management change commits with), and its event
is awaited in an SQS queue behind an EventBridge rule on its owner. The
path is the deployed one locally: DynamoDB Local's stream, the poller
playing the event source mapping (its 1 s batching window dominates),
the events function under `cargo lambda watch`, moto's EventBridge and SQS.

  python bench/events_lag.py [samples]     (the stack's variables set)

Prints `events_lag_ms <median>` and `events_lag_p90_ms <p90>`.
"""
import json
import os
import statistics
import sys
import time
import uuid

import boto3


def main(samples):
    kw = dict(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    ddb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"], **kw)
    events = boto3.client("events", endpoint_url=os.environ["AWS_ENDPOINT_URL_EVENTBRIDGE"], **kw)
    sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL_SQS"], **kw)
    table = os.environ["TOLLGATE_TABLE"]
    owner = f"bench-lag-{uuid.uuid4().hex[:12]}"
    queue = sqs.create_queue(QueueName=owner)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=owner, EventPattern=json.dumps({"source": ["tollgate"], "detail": {"owner": [owner]}}))
    events.put_targets(Rule=owner, Targets=[{"Id": "q", "Arn": arn}])
    lags = []
    for n in range(samples):
        record_id = f"benchlag{n:04}{uuid.uuid4().hex[:8]}"
        micros = time.time_ns() // 1000
        position = f"{micros:017}#{record_id}"
        ddb.put_item(TableName=table, Item={
            "pk": {"S": f"A#{owner}"}, "sk": {"S": position},
            "gsi2pk": {"S": "AT#0000000000000000000000000b"}, "gsi2sk": {"S": position},
            "recordId": {"S": record_id}, "at": {"N": str(micros // 1000)},
            "action": {"S": "token.updated"}, "owner": {"S": owner},
            "tokenId": {"S": "0000000000000000000000000b"},
            "actor": {"M": {"type": {"S": "user"}}}, "changes": {"S": "{}"},
            "ttl": {"N": str(micros // 1_000_000 + 86_400)},
        })
        committed = time.monotonic()
        seen = False
        while not seen and time.monotonic() - committed < 60:
            out = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for m in out.get("Messages", []):
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                if json.loads(m["Body"])["detail"]["id"] == record_id:
                    lags.append((time.monotonic() - committed) * 1000)
                    seen = True
        if not seen:
            sys.exit(f"no event for {record_id} within 60 s")
    lags.sort()
    print(f"events_lag_ms {statistics.median(lags):.0f}")
    print(f"events_lag_p90_ms {lags[int(len(lags) * 0.9) - 1]:.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
