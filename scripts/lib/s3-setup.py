"""Prepares the S3 test servers started by s3-test-server.sh.

Prints "<access key id> <secret>" of the IAM user created on the
authenticating server.
"""
import json
import os

import boto3

common = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")

plain = boto3.client("s3", endpoint_url=os.environ["LIFEBOAT_TEST_S3_ENDPOINT"], **common)
plain.create_bucket(Bucket=os.environ["LIFEBOAT_TEST_S3_BUCKET"])
# A bucket with S3 Object Lock: every new object is locked for a day.
locked = os.environ["LIFEBOAT_TEST_S3_LOCK_BUCKET"]
plain.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
plain.put_object_lock_configuration(
    Bucket=locked,
    ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
    },
)

auth_url = os.environ["LIFEBOAT_TEST_S3_AUTH_ENDPOINT"]
iam = boto3.client("iam", endpoint_url=auth_url, **common)
iam.create_user(UserName="lifeboat")
iam.put_user_policy(
    UserName="lifeboat",
    PolicyName="all",
    PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    ),
)
key = iam.create_access_key(UserName="lifeboat")["AccessKey"]
authed = boto3.client(
    "s3",
    endpoint_url=auth_url,
    region_name="us-east-1",
    aws_access_key_id=key["AccessKeyId"],
    aws_secret_access_key=key["SecretAccessKey"],
)
authed.create_bucket(Bucket=os.environ["LIFEBOAT_TEST_S3_AUTH_BUCKET"])
print(key["AccessKeyId"], key["SecretAccessKey"])
