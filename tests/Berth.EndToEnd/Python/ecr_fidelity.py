"""Runs one scenario of ecr_fidelity.json through boto3 and checks every step's answer.

A scenario is a list of steps. A step calls one ECR operation (boto3's snake_case name) with params, then
checks the answer: `present` / `absent` (dotted paths in the response), `equals` (path -> value), or
`error` (`code` and `message` exact, or `contains`). `${NAME}` in params is replaced by a saved value;
`save` keeps response values by path (`save_len` their UTF-8 length). `{"blobs": REPO}` uploads a config and a layer through the ECR
layer API and saves CONFIG_DIGEST/CONFIG_SIZE/LAYER_DIGEST/LAYER_SIZE. `poll` repeats the call until
the `present` paths appear (bounded by `timeout` seconds). `unvalidated` skips boto3's own parameter checks. A dict given as imageManifest is sent as JSON.
Prints {"failures": [...]} and exits 1 when any check fails.
"""
import datetime, hashlib, json, os, re, sys, time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

cases = json.load(open(sys.argv[1]))
steps = cases[sys.argv[2]]["steps"]
ecr = boto3.client("ecr", endpoint_url=os.environ["BERTH_ENDPOINT"])
# For steps marked "unvalidated": boto3 sends what it is given, so the server's own model checks answer.
raw = boto3.client("ecr", endpoint_url=os.environ["BERTH_ENDPOINT"], config=Config(parameter_validation=False))
saved = {}
failures = []


def subst(value):
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}") and value[2:-1] in saved:
            return saved[value[2:-1]]
        for k, v in saved.items():
            value = value.replace("${" + k + "}", str(v))
        return value
    if isinstance(value, list):
        return [subst(v) for v in value]
    if isinstance(value, dict):
        return {k: subst(v) for k, v in value.items()}
    return value


MISSING = object()


def get(obj, path):
    for part in path.split("."):
        if isinstance(obj, list):
            i = int(part)
            if i >= len(obj):
                return MISSING
            obj = obj[i]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return MISSING
    return obj


def plain(v):
    if isinstance(v, datetime.datetime):
        return v.timestamp()
    return v


def upload(repo, blob):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest])
    return digest


for n, step in enumerate(steps):
    where = f"step {n} ({step.get('op', 'blobs')})"
    if "blobs" in step:
        repo = step["blobs"]
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "repo": repo}).encode()
        layer = ("layer of " + repo).encode()
        saved.update(CONFIG_DIGEST=upload(repo, config), CONFIG_SIZE=len(config), LAYER_DIGEST=upload(repo, layer), LAYER_SIZE=len(layer))
        continue
    params = subst(step.get("params", {}))
    if isinstance(params.get("imageManifest"), dict):
        params["imageManifest"] = json.dumps(params["imageManifest"])
    expect = step.get("expect", {})
    deadline = time.time() + step.get("timeout", 0)
    while True:
        try:
            response = getattr(raw if step.get("unvalidated") else ecr, step["op"])(**params)
            response.pop("ResponseMetadata", None)
            error = None
        except ClientError as e:
            response, error = None, e.response["Error"]
        if "poll" in step and error is None and any(get(response, p) is MISSING for p in expect.get("present", [])) and time.time() < deadline:
            time.sleep(0.5)
            continue
        break
    want = expect.get("error")
    if want:
        if error is None:
            failures.append(f"{where}: expected {want['code']}, got success {json.dumps(response, default=str)}")
            continue
        if error["Code"] != want["code"]:
            failures.append(f"{where}: expected {want['code']}, got {error['Code']}: {error.get('Message')}")
        if "message" in want and error.get("Message") != subst(want["message"]):
            failures.append(f"{where}: message {error.get('Message')!r} != {subst(want['message'])!r}")
        if "contains" in want and subst(want["contains"]) not in error.get("Message", ""):
            failures.append(f"{where}: message {error.get('Message')!r} lacks {subst(want['contains'])!r}")
        continue
    if error is not None:
        failures.append(f"{where}: unexpected {error['Code']}: {error.get('Message')}")
        continue
    for p in expect.get("present", []):
        if get(response, p) is MISSING:
            failures.append(f"{where}: '{p}' missing from {json.dumps(response, default=str)}")
    for p in expect.get("absent", []):
        if get(response, p) is not MISSING:
            failures.append(f"{where}: '{p}' present ({get(response, p)!r}) but ECR leaves it out")
    for p, v in expect.get("equals", {}).items():
        got = get(response, p)
        if got is MISSING or plain(got) != subst(v):
            failures.append(f"{where}: '{p}' is {plain(got) if got is not MISSING else 'missing'!r}, expected {subst(v)!r}")
    for p, rx in expect.get("matches", {}).items():
        got = get(response, p)
        if got is MISSING or not re.search(rx, str(got)):
            failures.append(f"{where}: '{p}' is {got if got is not MISSING else 'missing'!r}, expected to match {rx}")
    for name, p in step.get("save", {}).items():
        saved[name] = plain(get(response, p))
    for name, p in step.get("save_len", {}).items():
        saved[name] = len(str(get(response, p)).encode())

print(json.dumps({"failures": failures}))
sys.exit(1 if failures else 0)
