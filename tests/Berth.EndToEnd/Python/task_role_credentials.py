"""A task's role credentials, used by boto3 from the host as an application in the task would use them.

Environment: CREDS (the JSON a container read from its AWS_CONTAINER_CREDENTIALS_FULL_URI), OTHER_CREDS (another
task's), FULL_URI and AUTH_TOKEN (the container's own, from docker inspect). Prints one JSON object with what each
attempt gave: "ok" or the error code.
"""
import json
import os

import boto3
import botocore.session

ENDPOINT = os.environ["BERTH_ENDPOINT"]
CREDS = json.loads(os.environ["CREDS"])
OTHER = json.loads(os.environ["OTHER_CREDS"])


def list_clusters(key, secret, token):
    client = boto3.client("ecs", endpoint_url=ENDPOINT, region_name="us-east-1",
                          aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)
    try:
        client.list_clusters()
        return "ok"
    except client.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def flip(token):
    # One character of the signed part changed: the server's MAC no longer matches.
    i = len(token) // 2
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


result = {
    "exact": list_clusters(CREDS["AccessKeyId"], CREDS["SecretAccessKey"], CREDS["Token"]),
    "tampered_token": list_clusters(CREDS["AccessKeyId"], CREDS["SecretAccessKey"], flip(CREDS["Token"])),
    "no_token": list_clusters(CREDS["AccessKeyId"], CREDS["SecretAccessKey"], None),
    "other_tasks_token": list_clusters(CREDS["AccessKeyId"], CREDS["SecretAccessKey"], OTHER["Token"]),
    "other_tasks_secret": list_clusters(CREDS["AccessKeyId"], OTHER["SecretAccessKey"], CREDS["Token"]),
}

# botocore's own container credential provider, as an SDK inside the task finds them.
for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(name, None)
os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = os.environ["FULL_URI"]
os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = os.environ["AUTH_TOKEN"]
session = boto3.Session(botocore_session=botocore.session.Session())
creds = session.get_credentials()
result["provider_method"] = creds.method
result["provider_key"] = creds.access_key
try:
    session.client("ecs", endpoint_url=ENDPOINT, region_name="us-east-1").list_clusters()
    result["provider_call"] = "ok"
except Exception as e:  # noqa: BLE001 - the test asserts on the text
    result["provider_call"] = str(e)

os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "not-the-token"
try:
    boto3.Session(botocore_session=botocore.session.Session()).get_credentials()
    result["provider_wrong_token"] = "accepted"
except Exception as e:  # noqa: BLE001
    result["provider_wrong_token"] = type(e).__name__

print(json.dumps(result))
