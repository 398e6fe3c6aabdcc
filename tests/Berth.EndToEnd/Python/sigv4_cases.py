"""Requests signed by botocore's own SigV4 signer, then bent one way each, sent to Berth.

Keys come from the environment (ADMIN_KEY/ADMIN_SECRET, SESSION_KEY/SESSION_SECRET/SESSION_TOKEN).
Prints one JSON list: for each case its HTTP status, error type and message, and the status of a correctly
signed ListClusters sent right after it (the server must still answer).
"""
import datetime
import json
import os
import urllib.error
import urllib.request

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ENDPOINT = os.environ["BERTH_ENDPOINT"]
ADMIN = Credentials(os.environ["ADMIN_KEY"], os.environ["ADMIN_SECRET"])
SESSION = Credentials(os.environ["SESSION_KEY"], os.environ["SESSION_SECRET"], os.environ["SESSION_TOKEN"])
ECS = "AmazonEC2ContainerServiceV20141113."
REAL_NOW = botocore.auth.get_current_datetime


def build(target="ListClusters", body="{}", creds=ADMIN, service="ecs", region="us-east-1", headers=None, skew=None):
    h = {"X-Amz-Target": ECS + target, "Content-Type": "application/x-amz-json-1.1"}
    h.update(headers or {})
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=body.encode(), headers=h)
    if skew is not None:
        botocore.auth.get_current_datetime = lambda: REAL_NOW() + skew
    try:
        SigV4Auth(creds, service, region).add_auth(req)
    finally:
        botocore.auth.get_current_datetime = REAL_NOW
    return req


def send(req, body=None, drop=()):
    headers = {k: v for k, v in req.headers.items() if k not in drop}
    r = urllib.request.Request(req.url, data=body.encode() if body is not None else req.body, headers=headers, method=req.method)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def query_request(secret_ok=True, action="DescribeLoadBalancers"):
    creds = ADMIN if secret_ok else Credentials(ADMIN.access_key, "wrong" + ADMIN.secret_key[5:])
    body = "Action=%s&Version=2015-12-01" % action
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=body.encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(creds, "elasticloadbalancing", "us-east-1").add_auth(req)
    return req


CASES = {
    "ok": lambda: send(build()),
    "other_region_accepted": lambda: send(build(region="eu-west-3")),
    "wrong_secret": lambda: send(build(creds=Credentials(ADMIN.access_key, "x" * 40))),
    "unknown_key": lambda: send(build(creds=Credentials("AKIAUNKNOWNUNKNOWN00", ADMIN.secret_key))),
    "expired": lambda: send(build(skew=datetime.timedelta(minutes=-20))),
    "not_yet_current": lambda: send(build(skew=datetime.timedelta(minutes=20))),
    "within_skew": lambda: send(build(skew=datetime.timedelta(minutes=-10))),
    "tampered_body": lambda: send(build(body="{}"), body='{"maxResults": 1}'),
    "wrong_service": lambda: send(build(service="ecr")),
    "missing_auth": lambda: send(build(), drop=("Authorization",)),
    "unsigned_payload": lambda: send(build(headers={"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}), body='{"maxResults": 2}'),
    "token_on_plain_key": lambda: send(build(creds=Credentials(ADMIN.access_key, ADMIN.secret_key, "some-token"))),
    "session_ok": lambda: send(build(creds=SESSION)),
    "session_without_token": lambda: send(build(creds=Credentials(SESSION.access_key, SESSION.secret_key))),
    "session_wrong_token": lambda: send(build(creds=Credentials(SESSION.access_key, SESSION.secret_key, "wrong"))),
    "query_ok": lambda: send(query_request()),
    "query_wrong_secret": lambda: send(query_request(secret_ok=False)),
}

out = []
for name, run in CASES.items():
    status, body, headers = run()
    try:
        parsed = json.loads(body)
        etype, message = parsed.get("__type"), parsed.get("message")
    except ValueError:
        etype, message = None, body
    after, _, _ = send(build())
    out.append({"case": name, "status": status, "type": etype, "message": message,
                "errorTypeHeader": headers.get("x-amzn-ErrorType"), "after": after})
print(json.dumps(out))
