"""boto3 against Berth's ECR in two regions. Usage: ecr_regions.py configure PREFIX | wait REPO TAG DIGEST SECONDS.

configure: us-east-1 replicates repositories starting with PREFIX to us-west-2 (same registry) and to eu-west-1 of
another account (which Berth does not replicate); prints DescribeRegistry of both regions.
wait: polls us-west-2's DescribeImages for REPO:TAG until it shows DIGEST (at most SECONDS), then prints what both
regions say: the replica's details and DescribeImageReplicationStatus in us-east-1."""
import json, os, sys, time

import boto3
from botocore.exceptions import ClientError

endpoint = os.environ["BERTH_ENDPOINT"]
east = boto3.client("ecr", endpoint_url=endpoint, region_name="us-east-1")
west = boto3.client("ecr", endpoint_url=endpoint, region_name="us-west-2")
account = "000000000000"

if sys.argv[1] == "configure":
    prefix = sys.argv[2]
    east.put_replication_configuration(replicationConfiguration={"rules": [{
        "destinations": [{"region": "us-west-2", "registryId": account}, {"region": "eu-west-1", "registryId": "111111111111"}],
        "repositoryFilters": [{"filter": prefix, "filterType": "PREFIX_MATCH"}],
    }]})
    print(json.dumps({
        "east": east.describe_registry()["replicationConfiguration"],
        "west": west.describe_registry()["replicationConfiguration"],
    }))
else:
    repo, tag, digest, seconds = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    deadline = time.monotonic() + seconds
    seen, polls = None, 0
    while time.monotonic() < deadline:
        polls += 1
        try:
            details = west.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])["imageDetails"]
            if details and details[0]["imageDigest"] == digest:
                seen = details[0]
                break
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("RepositoryNotFoundException", "ImageNotFoundException"):
                raise
        time.sleep(0.2)
    status = east.describe_image_replication_status(repositoryName=repo, imageId={"imageTag": tag})
    repository = west.describe_repositories(repositoryNames=[repo])["repositories"][0] if seen else None
    print(json.dumps({
        "replica": None if seen is None else {"digest": seen["imageDigest"], "tags": seen.get("imageTags", [])},
        "polls": polls,
        "westRepository": None if repository is None else {"arn": repository["repositoryArn"], "uri": repository["repositoryUri"]},
        "statuses": status["replicationStatuses"],
    }))
