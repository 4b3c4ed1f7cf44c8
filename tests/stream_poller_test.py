"""The stream poller's own tests (scripts/stream_poller.py): the template's
filters over the records the table's stream carries, DynamoDB Local's
records mended to AWS's shape, and Lambda's retry rules (bisect, partial
batch responses, the dead-letter record) against a stub function."""
import json
import os
import sys
import unittest

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import stream_poller as sp  # noqa: E402

MAPPING = sp.mapping_of(os.path.join(ROOT, "template.yaml"))


def record(name, pk, sk, old=None, new=None, seq="1", service=False):
    d = {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}, "SequenceNumber": seq, "SizeBytes": 1,
         "StreamViewType": "NEW_AND_OLD_IMAGES", "ApproximateCreationDateTime": 1796548500.0}
    if old is not None:
        d["OldImage"] = old
    if new is not None:
        d["NewImage"] = new
    raw = {"eventID": f"e{seq}", "eventName": name, "dynamodb": d}
    if service:
        raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return sp.lambda_record(raw, "arn:stream", "us-east-1")


def uses(n):
    return {"remainingUses": {"N": str(n)}, "tags": {}}


class Filters(unittest.TestCase):
    def passes(self, rec):
        return sp.passes(MAPPING["filters"], rec)

    def test_what_invokes_the_function(self):
        self.assertTrue(self.passes(record("INSERT", "A#alice", "017#r", new={})))
        self.assertTrue(self.passes(record("MODIFY", "T#t", "T", old=uses(1), new=uses(0))))
        self.assertTrue(self.passes(record("REMOVE", "T#t", "T", old=uses(3), service=True)))

    def test_what_never_does(self):
        # Admissions, a token already at 0, an unlimited token.
        self.assertFalse(self.passes(record("MODIFY", "T#t", "T", old=uses(5), new=uses(4))))
        self.assertFalse(self.passes(record("MODIFY", "T#t", "T", old=uses(0), new=uses(0))))
        self.assertFalse(self.passes(record("MODIFY", "T#t", "T", old={}, new={})))
        # Creates and owner deletes (their audit records invoke it), leases,
        # an identity's counters, a lease removed by TTL.
        self.assertFalse(self.passes(record("INSERT", "T#t", "T", new=uses(1))))
        self.assertFalse(self.passes(record("REMOVE", "T#t", "T", old=uses(1))))
        self.assertFalse(self.passes(record("MODIFY", "T#t", "L#1", old=uses(1), new=uses(0))))
        self.assertFalse(self.passes(record("MODIFY", "D#i", "D", old=uses(1), new=uses(0))))
        self.assertFalse(self.passes(record("REMOVE", "T#t", "L#1", old={}, service=True)))
        self.assertFalse(self.passes(record("REMOVE", "A#alice", "017#r", old={}, service=True)))

    def test_dynamodb_locals_records_are_mended(self):
        ttl = record("UNKNOWN_TO_SDK_VERSION", "T#t", "T", old=uses(2))
        self.assertEqual(ttl["eventName"], "REMOVE")
        self.assertEqual(ttl["userIdentity"]["principalId"], "dynamodb.amazonaws.com")
        self.assertTrue(self.passes(ttl))
        modify = record("MODIFY", "T#t", "T", old=uses(1), new={"m": {"M": {"x": {}}}, "l": {"L": [{}]}})
        self.assertEqual(modify["dynamodb"]["NewImage"]["m"], {"M": {"x": {"M": {}}}})
        self.assertEqual(modify["dynamodb"]["NewImage"]["l"], {"L": [{"M": {}}]})


class Stub(sp.Poller):
    """The poller's delivery rules over a function that refuses `bad`."""

    def __init__(self, bad, errors=False):
        self.mapping, self.sqs, self.region = MAPPING, None, "us-east-1"
        self.bad, self.errors, self.calls, self.letters, self.invocations = bad, errors, [], [], 0

    def note(self, entry):
        if "dead-letter" in entry:
            self.letters.append(entry["dead-letter"])

    def invoke(self, records):
        seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
        self.calls.append(seqs)
        if self.bad in seqs:
            return "error" if self.errors else ("failed", self.bad)
        return "ok"


def batch(n):
    return [record("INSERT", "A#a", f"{i}#r", new={}, seq=f"{i:03}") for i in range(1, n + 1)]


class Delivery(unittest.TestCase):
    def test_a_partial_failure_retries_from_the_record_named_then_dead_letters_it(self):
        s = Stub("003")
        s.deliver("shard-1", batch(5))
        # 001 and 002 delivered in the first call; from 003 on, split in
        # two: 003 alone until its retries run out, 004 and 005 once.
        alone = [["003"]] * (1 + MAPPING["retries"])
        self.assertEqual(s.calls, [["001", "002", "003", "004", "005"], *alone, ["004", "005"]])
        self.assertEqual(len(s.letters), 1)
        self.assertEqual((s.letters[0]["startSequenceNumber"], s.letters[0]["batchSize"]), ("003", 1))

    def test_a_function_error_bisects_until_the_bad_record_stands_alone(self):
        s = Stub("006", errors=True)
        s.deliver("shard-1", batch(8))
        self.assertEqual(s.calls[0], [f"{i:03}" for i in range(1, 9)])
        ok_calls = [c for c in s.calls if "006" not in c]
        # Every other record delivered exactly once.
        self.assertEqual(sorted(x for c in ok_calls for x in c), [f"{i:03}" for i in range(1, 9) if i != 6])
        self.assertEqual(sum(1 for c in s.calls if c == ["006"]), 1 + MAPPING["retries"])
        self.assertEqual([l["startSequenceNumber"] for l in s.letters], ["006"])


if __name__ == "__main__":
    unittest.main()
