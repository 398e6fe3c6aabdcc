"""boto3: RunTask retried with the same clientToken starts one task; the same token with other parameters is refused."""
import json, os, sys

import boto3
from botocore.exceptions import ClientError

ecs = boto3.client("ecs", endpoint_url=os.environ["BERTH_ENDPOINT"])
family = sys.argv[1]
first = ecs.run_task(taskDefinition=family, clientToken="retry-me-1")
# What an SDK does after a timeout: the very same call again.
second = ecs.run_task(taskDefinition=family, clientToken="retry-me-1")
try:
    ecs.run_task(taskDefinition=family, clientToken="retry-me-1", startedBy="other")
    error = None
except ClientError as e:
    error = {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}
listed = ecs.list_tasks(family=family)["taskArns"]
print(json.dumps({
    "first": [t["taskArn"] for t in first["tasks"]],
    "second": [t["taskArn"] for t in second["tasks"]],
    "error": error,
    "listed": listed,
}))
