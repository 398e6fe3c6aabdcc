"""boto3 against Berth's services API: create, page, describe, refuse deleting a busy cluster, delete."""
import json, os, time

import boto3
from botocore.exceptions import ClientError

ecs = boto3.client("ecs", endpoint_url=os.environ["BERTH_ENDPOINT"])


def error_of(call, **kwargs):
    try:
        call(**kwargs)
        return None
    except ClientError as e:
        return {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}


ecs.create_cluster(clusterName="boto-svc")
ecs.register_task_definition(family="boto-svc", containerDefinitions=[{"name": "a", "image": "berth-test/busybox:latest", "memory": 16}])
names = ["svc-" + c for c in "ebdacflkjihg"]  # twelve, created out of order
created = {}
for name in names:
    s = ecs.create_service(cluster="boto-svc", serviceName=name, taskDefinition="boto-svc", desiredCount=0,
                           tags=[{"key": "name", "value": name}], propagateTags="SERVICE")["service"]
    created[name] = s
pages = [p["serviceArns"] for p in ecs.get_paginator("list_services").paginate(cluster="boto-svc", PaginationConfig={"PageSize": 5})]
# Without maxResults ECS answers 10 services a page.
first_page = ecs.list_services(cluster="boto-svc")
# A service with nothing to run finishes each deployment at once: 21 of them, to see ListServiceDeployments' default page of 20.
for _ in range(20):
    ecs.update_service(cluster="boto-svc", service="svc-a", forceNewDeployment=True)
listed = ecs.list_service_deployments(cluster="boto-svc", service="svc-a")
all_deployments, token = list(listed["serviceDeployments"]), listed.get("nextToken")
while token:  # boto3 has no paginator for it
    more = ecs.list_service_deployments(cluster="boto-svc", service="svc-a", nextToken=token)
    all_deployments += more["serviceDeployments"]
    token = more.get("nextToken")
described = ecs.describe_services(cluster="boto-svc", services=["svc-a", "svc-zzz"], include=["TAGS"])
plain = ecs.describe_services(cluster="boto-svc", services=["svc-a"])["services"][0]
count_before = ecs.describe_clusters(clusters=["boto-svc"])["clusters"][0]["activeServicesCount"]
busy = error_of(ecs.delete_cluster, cluster="boto-svc")
deleted = [ecs.delete_service(cluster="boto-svc", service=name)["service"]["status"] for name in names]
# The boto3 waiter services_inactive is satisfied by any one service; wait for all of them (bounded).
for _ in range(60):
    statuses = [s["status"] for chunk in (names[:10], names[10:]) for s in ecs.describe_services(cluster="boto-svc", services=chunk)["services"]]
    if statuses == ["INACTIVE"] * len(names):
        break
    time.sleep(0.5)
again = ecs.delete_service(cluster="boto-svc", service="svc-a")["service"]["status"]
after = ecs.list_services(cluster="boto-svc")["serviceArns"]
count_after = ecs.describe_clusters(clusters=["boto-svc"])["clusters"][0]["activeServicesCount"]
update_inactive = error_of(ecs.update_service, cluster="boto-svc", service="svc-a", desiredCount=1)
removed = ecs.delete_cluster(cluster="boto-svc")["cluster"]["status"]

print(json.dumps({
    "createdKeys": sorted(created["svc-a"].keys()),
    "createdTags": created["svc-a"].get("tags"),
    "propagateTags": created["svc-a"]["propagateTags"],
    "pages": pages,
    "firstPage": len(first_page["serviceArns"]),
    "firstPageHasNext": "nextToken" in first_page,
    "deploymentsFirstPage": len(listed["serviceDeployments"]),
    "deploymentsAll": len(all_deployments),
    "deploymentsDistinct": len({d["serviceDeploymentArn"] for d in all_deployments}),
    "describedNames": [s["serviceName"] for s in described["services"]],
    "describedTags": described["services"][0].get("tags"),
    "plainHasTags": "tags" in plain,
    "failures": described["failures"],
    "countBefore": count_before,
    "busy": busy,
    "deleted": deleted,
    "again": again,
    "after": after,
    "countAfter": count_after,
    "updateInactive": update_inactive,
    "removed": removed,
}, default=str))
