"""boto3 against Berth in two regions side by side: same cluster name, own revisions, ARNs of the client's region,
another region's ARN refused as ECS does."""
import json, os

import boto3
from botocore.exceptions import ClientError

endpoint = os.environ["BERTH_ENDPOINT"]
east = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1")
west = boto3.client("ecs", endpoint_url=endpoint, region_name="us-west-2")

out = {}
for name, ecs in (("east", east), ("west", west)):
    cluster = ecs.create_cluster(clusterName="boto-twin")["cluster"]
    td = ecs.register_task_definition(family="boto-twin", containerDefinitions=[{"name": "a", "image": "berth-test/busybox:latest", "memory": 16}])
    out[name] = {
        "clusterArn": cluster["clusterArn"],
        "revision": td["taskDefinition"]["revision"],
        "taskDefinitionArn": td["taskDefinition"]["taskDefinitionArn"],
        "clusters": ecs.list_clusters()["clusterArns"],
    }
# A second revision in us-west-2 only.
out["west"]["revision2"] = west.register_task_definition(family="boto-twin", containerDefinitions=[{"name": "a", "image": "berth-test/busybox:latest", "memory": 32}])["taskDefinition"]["revision"]
out["east"]["latest"] = east.describe_task_definition(taskDefinition="boto-twin")["taskDefinition"]["revision"]
try:
    west.describe_clusters(clusters=[out["east"]["clusterArn"]])
    out["crossRegion"] = None
except ClientError as e:
    out["crossRegion"] = [e.response["Error"]["Code"], e.response["Error"]["Message"]]
print(json.dumps(out))
