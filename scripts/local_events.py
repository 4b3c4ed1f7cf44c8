"""Lifecycle events in the local stack, on moto's EventBridge and SQS.

  setup ENDPOINT   the stack's queues: a rule on the default bus sending every
                   Tollgate event to the queue `tollgate-events`, and the
                   events function's dead-letter queue; prints
                   `EVENTS_QUEUE_URL=...` and `DEAD_LETTER_QUEUE_URL=...`
  show ENDPOINT    prints the events waiting in `tollgate-events` (and removes
                   them), one JSON line each: `make dev` prints this command
"""
import json
import sys

import boto3

QUEUE = "tollgate-events"
DEAD_LETTERS = "tollgate-events-dead-letter"
RULE = "tollgate-events-to-queue"


def clients(endpoint):
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="local", aws_secret_access_key="local")
    return boto3.client("events", **kw), boto3.client("sqs", **kw)


def setup(endpoint):
    events, sqs = clients(endpoint)
    queue = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=RULE, EventPattern=json.dumps({"source": ["tollgate"]}))
    events.put_targets(Rule=RULE, Targets=[{"Id": "queue", "Arn": arn}])
    dead = sqs.create_queue(QueueName=DEAD_LETTERS)["QueueUrl"]
    print(f"EVENTS_QUEUE_URL={queue}")
    print(f"DEAD_LETTER_QUEUE_URL={dead}")


def show(endpoint):
    _, sqs = clients(endpoint)
    queue = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    shown = 0
    while True:
        out = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = out.get("Messages", [])
        if not messages:
            break
        for m in messages:
            event = json.loads(m["Body"])
            print(json.dumps({"detail-type": event["detail-type"], "time": event["time"], "detail": event["detail"]}))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
            shown += 1
    print(f"({shown} events)", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("setup", "show"):
        sys.exit(__doc__)
    {"setup": setup, "show": show}[sys.argv[1]](sys.argv[2])
