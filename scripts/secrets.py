"""Creates or replaces a Secrets Manager secret (the keyring) on the local
Secrets Manager (moto on 127.0.0.1). The value comes from stdin, so it never
appears on a command line."""
import argparse
import sys

import boto3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--name", required=True)
    args = p.parse_args()
    value = sys.stdin.read()
    sm = boto3.client("secretsmanager", endpoint_url=args.endpoint, region_name="us-east-1",
                      aws_access_key_id="local", aws_secret_access_key="local")
    try:
        sm.create_secret(Name=args.name, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=args.name, SecretString=value)


if __name__ == "__main__":
    main()
