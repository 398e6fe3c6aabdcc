"""boto3's elbv2 client against Berth: a load balancer, a target group, a listener; read back, paged, and an error code."""
import os, sys

import boto3
from botocore.exceptions import ClientError

name = sys.argv[1]
elb = boto3.client("elbv2", endpoint_url=os.environ["BERTH_ENDPOINT"])
lb = elb.create_load_balancer(Name=name, Subnets=["subnet-0a1b2c3d"], Tags=[{"Key": "k", "Value": "v"}])["LoadBalancers"][0]
elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb["LoadBalancerArn"]], WaiterConfig={"Delay": 1, "MaxAttempts": 20})
tg = elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId="vpc-0a1b2c3d", TargetType="ip")["TargetGroups"][0]
described = elb.describe_load_balancers(Names=[name])["LoadBalancers"][0]
assert described["LoadBalancerArn"] == lb["LoadBalancerArn"], described
assert described["CreatedTime"].year >= 2024, described["CreatedTime"]
pages = list(elb.get_paginator("describe_target_groups").paginate(PaginationConfig={"PageSize": 1}))
assert any(t["TargetGroupName"] == name for p in pages for t in p["TargetGroups"]), pages
tags = elb.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
assert tags == [{"Key": "k", "Value": "v"}], tags
try:
    elb.describe_target_groups(Names=["no-such-group"])
    raise SystemExit("expected TargetGroupNotFound")
except ClientError as e:
    assert e.response["Error"]["Code"] == "TargetGroupNotFound", e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
print("ok")
