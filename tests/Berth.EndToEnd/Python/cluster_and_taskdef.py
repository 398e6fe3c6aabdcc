"""boto3 against Berth: create a cluster, register a task definition, read both back, page through them."""
import json, os, sys

import boto3
from botocore.exceptions import ClientError

ecs = boto3.client("ecs", endpoint_url=os.environ["BERTH_ENDPOINT"])
ecs.create_cluster(clusterName="boto", tags=[{"key": "team", "value": "core"}])
c = ecs.describe_clusters(clusters=["boto", "nope"], include=["TAGS"])
td = ecs.register_task_definition(family="boto", containerDefinitions=[{"name": "a", "image": "berth-test/busybox:latest", "memory": 16}])
td2 = ecs.register_task_definition(family="boto", containerDefinitions=[{"name": "a", "image": "berth-test/busybox:latest", "memory": 32}])
latest = ecs.describe_task_definition(taskDefinition="boto")["taskDefinition"]
pages = [p["taskDefinitionArns"] for p in ecs.get_paginator("list_task_definitions").paginate(familyPrefix="boto", PaginationConfig={"PageSize": 1})]
try:
    ecs.delete_cluster(cluster="no-such-cluster")
    error = None
except ClientError as e:
    error = e.response["Error"]["Code"]
print(json.dumps({
    "cluster": c["clusters"][0]["clusterName"],
    "tags": c["clusters"][0].get("tags"),
    "failures": [f["reason"] for f in c["failures"]],
    "revisions": [td["taskDefinition"]["revision"], td2["taskDefinition"]["revision"]],
    "latestMemory": latest["containerDefinitions"][0]["memory"],
    "pages": pages,
    "error": error,
}))
