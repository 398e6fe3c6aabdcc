"""Runs one scenario of ecr_fidelity.json through boto3 and checks every step's answer (the step format: fidelity.py).

Besides calls, a step `{"blobs": REPO}` uploads a config and a layer through the ECR layer API and saves
CONFIG_DIGEST/CONFIG_SIZE/LAYER_DIGEST/LAYER_SIZE; a dict given as imageManifest is sent as JSON.
Usage: ecr_fidelity.py CASES.json SCENARIO, with BERTH_ENDPOINT in the environment.
"""
import hashlib, json, os, sys

import boto3
from botocore.config import Config

from fidelity import Runner

endpoint = os.environ["BERTH_ENDPOINT"]
ecr = boto3.client("ecr", endpoint_url=endpoint)
# For steps marked "unvalidated": boto3 sends what it is given, so the server's own model checks answer.
runner = Runner(ecr, boto3.client("ecr", endpoint_url=endpoint, config=Config(parameter_validation=False)), "ECR")


def upload(repo, blob):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest])
    return digest


def blobs(r, step):
    if "blobs" not in step:
        return False
    repo = step["blobs"]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "repo": repo}).encode()
    layer = ("layer of " + repo).encode()
    r.saved.update(CONFIG_DIGEST=upload(repo, config), CONFIG_SIZE=len(config), LAYER_DIGEST=upload(repo, layer), LAYER_SIZE=len(layer))
    return True


def manifest_as_json(params):
    if isinstance(params.get("imageManifest"), dict):
        params["imageManifest"] = json.dumps(params["imageManifest"])


runner.run(json.load(open(sys.argv[1]))[sys.argv[2]]["steps"], special=blobs, prepare=manifest_as_json)
