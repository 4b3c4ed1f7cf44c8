"""Creates the Tollgate table in DynamoDB Local from template.yaml's
TokensTable resource, so the template stays the one definition of the table."""
import argparse
import sys
import time

import boto3
from cfn import load_template


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--template", required=True)
    args = ap.parse_args()
    tpl = load_template(args.template)
    props = tpl["Resources"]["TokensTable"]["Properties"]
    ddb = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    spec = {
        "TableName": args.table,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    stream = props.get("StreamSpecification")
    if stream:
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    if props.get("GlobalSecondaryIndexes"):
        spec["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if args.table in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=args.table)
    ddb.create_table(**spec)
    for _ in range(100):
        if ddb.describe_table(TableName=args.table)["Table"]["TableStatus"] == "ACTIVE":
            break
        time.sleep(0.1)
    # DynamoDB Local's first transaction loads its transaction machinery,
    # seconds on a busy machine: paid here, not inside a request's 4 s.
    warm = {"pk": {"S": "W#warm-up"}, "sk": {"S": "W"}}
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": args.table, "Item": warm}}])
    ddb.transact_write_items(TransactItems=[{"Delete": {"TableName": args.table, "Key": warm}}])
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(TableName=args.table, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": True})
    print(f"table {args.table} ready at {args.endpoint}")


if __name__ == "__main__":
    sys.exit(main())
