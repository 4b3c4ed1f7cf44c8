"""Plays Lambda's event source mapping for the events function in the local
stack: reads DynamoDB Local's stream, applies template.yaml's
EventsStreamMapping (its FilterCriteria, BatchSize, ReportBatchItemFailures,
BisectBatchOnFunctionError, MaximumRetryAttempts and on-failure
destination), and invokes the function through the Lambda Invoke API that
`cargo lambda watch` serves, with the batch shape Lambda sends.

- The stream is read once per MaximumBatchingWindowInSeconds, so a batch
  holds what a window gathered, up to BatchSize.
- Only records matching a filter are batched; the others are dropped before
  any invocation, as Lambda drops them (each is logged as `filtered`).
- A function error splits the batch in two and each half is retried on its
  own; a partial batch response retries from the first record it names. A
  single record still failing after MaximumRetryAttempts retries is named
  in the dead-letter queue with Lambda's on-failure record
  (DDBStreamBatchInfo), and the shard moves on.
- Two of DynamoDB Local's stream records are mended to the shape AWS
  writes: its TTL deletions carry an event name unknown to the stream API
  and no userIdentity (AWS: REMOVE by the service dynamodb.amazonaws.com),
  and an empty map in a MODIFY's images is `{}` (AWS: `{"M": {}}`).

Every invocation and every filtered record is one JSON line in --log, which
the tests read to count invocations.
"""
import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

import boto3
from cfn import load_template

MAPPING = "EventsStreamMapping"


def mapping_of(template_path):
    tpl = load_template(template_path)
    props = tpl["Resources"][MAPPING]["Properties"]
    return {
        "filters": [json.loads(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])],
        "batch_size": int(props.get("BatchSize", 100)),
        "window": float(props.get("MaximumBatchingWindowInSeconds", 0)),
        "retries": int(props.get("MaximumRetryAttempts", -1)),
        "bisect": bool(props.get("BisectBatchOnFunctionError", False)),
        "partial": "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        "starting_position": props.get("StartingPosition", "LATEST"),
    }


# EventBridge patterns, the subset Lambda's filters use: nested objects,
# lists of alternatives, exact values, prefix, anything-but, exists, numeric.
def matches(pattern, value):
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        for key, sub in pattern.items():
            if isinstance(sub, list):
                if not any(alternative(a, key in value, value.get(key)) for a in sub):
                    return False
            elif not matches(sub, value.get(key)):
                return False
        return True
    return False


def alternative(rule, present, value):
    if isinstance(rule, dict):
        if "exists" in rule:
            return rule["exists"] == present
        if not present:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            banned = rule["anything-but"]
            banned = banned if isinstance(banned, list) else [banned]
            return value not in banned
        if "numeric" in rule:
            ops = rule["numeric"]
            try:
                x = float(value)
            except (TypeError, ValueError):
                return False
            tests = {"=": x.__eq__, "<": x.__lt__, "<=": x.__le__, ">": x.__gt__, ">=": x.__ge__}
            return all(tests[ops[i]](ops[i + 1]) for i in range(0, len(ops), 2))
        raise ValueError(f"unsupported filter rule {rule}")
    return present and value == rule


def passes(filters, record):
    return not filters or any(matches(f, record) for f in filters)


def lambda_record(raw, stream_arn, region):
    """A GetRecords record in the shape Lambda delivers."""
    d = dict(raw["dynamodb"])
    for image in ("NewImage", "OldImage"):
        if image in d:
            d[image] = {k: mended(v) for k, v in d[image].items()}
    rec = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": raw.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": d,
        "eventSourceARN": stream_arn,
    }
    if raw.get("userIdentity"):
        rec["userIdentity"] = raw["userIdentity"]
    if rec["eventName"] not in ("INSERT", "MODIFY", "REMOVE") and "NewImage" not in d:
        # DynamoDB Local's TTL deletion: AWS writes REMOVE by the service.
        rec["eventName"] = "REMOVE"
        rec["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return rec


def mended(value):
    """An attribute value with DynamoDB Local's empty maps (`{}`) as AWS
    writes them."""
    if value == {}:
        return {"M": {}}
    if "M" in value:
        return {"M": {k: mended(v) for k, v in value["M"].items()}}
    if "L" in value:
        return {"L": [mended(v) for v in value["L"]]}
    return value


def summary(rec):
    keys = rec["dynamodb"].get("Keys", {})
    return {
        "eventName": rec["eventName"],
        "pk": keys.get("pk", {}).get("S"),
        "sk": keys.get("sk", {}).get("S"),
        "seq": rec["dynamodb"].get("SequenceNumber"),
    }


class Poller:
    def __init__(self, args):
        kw = dict(region_name=args.region, aws_access_key_id="local", aws_secret_access_key="local")
        self.ddb = boto3.client("dynamodb", endpoint_url=args.endpoint, **kw)
        self.streams = boto3.client("dynamodbstreams", endpoint_url=args.endpoint, **kw)
        # Records as the API sent them: boto3's parsing drops empty maps
        # (`{"M": {}}`), which Lambda delivers as they are.
        self.raw = {}
        self.streams.meta.events.register("after-call.dynamodbstreams.GetRecords", self.keep_raw)
        self.sqs = boto3.client("sqs", endpoint_url=args.sqs_endpoint, **kw) if args.dead_letter_queue else None
        self.dead_letter_queue = args.dead_letter_queue
        self.region = args.region
        self.table = args.table
        self.invoke_url = f"{args.invoke_url.rstrip('/')}/2015-03-31/functions/{args.function}/invocations"
        self.mapping = mapping_of(args.template)
        self.interval = args.interval
        self.log = open(args.log, "a", buffering=1)
        self.invocations = 0

    def keep_raw(self, http_response, **_):
        self.raw = json.loads(http_response.content or b"{}")

    def note(self, entry):
        self.log.write(json.dumps(entry) + "\n")

    def invoke(self, records):
        """'ok', ('failed', sequence) or 'error'."""
        self.invocations += 1
        body = json.dumps({"Records": records}).encode()
        req = urllib.request.Request(self.invoke_url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        outcome = "error"
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                payload = resp.read()
                if resp.headers.get("X-Amz-Function-Error"):
                    outcome = "error"
                else:
                    answer = json.loads(payload or b"null")
                    if isinstance(answer, dict) and "errorType" in answer:
                        outcome = "error"
                    else:
                        failures = ((answer or {}).get("batchItemFailures") or []) if self.mapping["partial"] else []
                        seqs = [f.get("itemIdentifier") for f in failures]
                        outcome = ("failed", min(seqs)) if seqs else "ok"
        except (urllib.error.URLError, OSError, ValueError):
            outcome = "error"
        self.note({"invocation": self.invocations, "records": [summary(r) for r in records],
                   "outcome": outcome if isinstance(outcome, str) else f"failed:{outcome[1]}"})
        return outcome

    def deliver(self, shard, records, attempt=0):
        """Delivers records (in order) as Lambda's mapping would."""
        while records:
            outcome = self.invoke(records)
            if outcome == "ok":
                return
            if isinstance(outcome, tuple):
                seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
                at = seqs.index(outcome[1]) if outcome[1] in seqs else 0
                records = records[at:]
            if self.mapping["bisect"] and len(records) > 1:
                half = len(records) // 2
                self.deliver(shard, records[:half], attempt)
                self.deliver(shard, records[half:], attempt)
                return
            retries = self.mapping["retries"]
            if retries >= 0 and attempt >= retries:
                self.dead_letter(shard, records, attempt + 1)
                return
            attempt += 1
            time.sleep(min(0.05 * 2 ** attempt, 1.0))

    def dead_letter(self, shard, records, invokes):
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{self.region}:000000000000:function:events",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invokes,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": first.get("ApproximateCreationDateTime"),
                "approximateArrivalOfLastRecord": last.get("ApproximateCreationDateTime"),
                "batchSize": len(records),
                "streamArn": records[0]["eventSourceARN"],
            },
        }
        self.note({"dead-letter": message["DDBStreamBatchInfo"]})
        if self.sqs:
            self.sqs.send_message(QueueUrl=self.dead_letter_queue, MessageBody=json.dumps(message))

    def run(self):
        stream_arn = None
        while stream_arn is None:
            stream_arn = self.ddb.describe_table(TableName=self.table)["Table"].get("LatestStreamArn")
            if stream_arn is None:
                time.sleep(0.5)
        iterators, done, last_listing, first = {}, set(), 0.0, True
        while True:
            if time.monotonic() - last_listing > 2:
                last_listing = time.monotonic()
                for shard in self.shards(stream_arn):
                    sid = shard["ShardId"]
                    if sid in iterators or sid in done:
                        continue
                    # The mapping's starting position for the shards there at
                    # start; a shard that opens later is read from its start.
                    position = self.mapping["starting_position"] if first else "TRIM_HORIZON"
                    iterators[sid] = self.streams.get_shard_iterator(
                        StreamArn=stream_arn, ShardId=sid, ShardIteratorType=position)["ShardIterator"]
                first = False
            busy = False
            for sid, it in list(iterators.items()):
                out = self.streams.get_records(ShardIterator=it, Limit=1000)
                batch = []
                for raw in self.raw.get("Records", []):
                    rec = lambda_record(raw, stream_arn, self.region)
                    if passes(self.mapping["filters"], rec):
                        batch.append(rec)
                    else:
                        self.note({"filtered": summary(rec)})
                size = self.mapping["batch_size"]
                for i in range(0, len(batch), size):
                    self.deliver(sid, batch[i:i + size])
                busy = busy or bool(out.get("Records"))
                nxt = out.get("NextShardIterator")
                if nxt:
                    iterators[sid] = nxt
                else:
                    del iterators[sid]
                    done.add(sid)
            # As Lambda gathers a batch for MaximumBatchingWindowInSeconds,
            # the stream is read at most once a window (the idle interval
            # without one): fewer, fuller batches, and DynamoDB Local spared.
            if self.mapping["window"] or not busy:
                time.sleep(max(self.mapping["window"], self.interval))

    def shards(self, stream_arn):
        shards, start = [], None
        while True:
            kw = {"StreamArn": stream_arn}
            if start:
                kw["ExclusiveStartShardId"] = start
            desc = self.streams.describe_stream(**kw)["StreamDescription"]
            shards += desc.get("Shards", [])
            start = desc.get("LastEvaluatedShardId")
            if not start:
                return shards


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", required=True, help="DynamoDB Local")
    ap.add_argument("--table", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--invoke-url", required=True, help="the Lambda Invoke API (cargo lambda watch)")
    ap.add_argument("--function", default="events")
    ap.add_argument("--sqs-endpoint", help="the SQS API the dead-letter queue is on")
    ap.add_argument("--dead-letter-queue", help="its URL")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between polls of an idle stream")
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    Poller(args).run()


if __name__ == "__main__":
    sys.exit(main())
