"""Runs one scenario of ecs_fidelity.json through boto3 and checks every step's answer.

A scenario is a list of steps. A step calls one ECS operation (boto3's snake_case name) with params, then checks
the answer: `present` / `absent` (dotted paths in the response; a number indexes a list), `equals` (path -> value),
`matches` (path -> regex), `includes` / `excludes` (path -> a value the list holds or not), `length` (path -> list length), or `error` (`code`, and `message` exact or `contains`).
`${NAME}` in params and expectations is replaced by a saved value; `save` keeps response values by path. `poll`
repeats the call (up to `timeout` seconds) until the `present`/`equals` checks hold. `unvalidated` skips boto3's own
parameter checks, so the server's answer to what boto3 would refuse is what gets checked.
Prints {"failures": [...]} and exits 1 when any check fails.
"""
import datetime, json, os, re, sys, time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

cases = json.load(open(sys.argv[1]))
steps = cases[sys.argv[2]]["steps"]
endpoint = os.environ["BERTH_ENDPOINT"]
ecs = boto3.client("ecs", endpoint_url=endpoint)
raw = boto3.client("ecs", endpoint_url=endpoint, config=Config(parameter_validation=False))
# The endpoint's own port and the agent port the server reports, for DiscoverPollEndpoint's answer.
saved = {"AGENT_PORT": os.environ.get("BERTH_AGENT_PORT", "")}
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
            if not part.isdigit() or int(part) >= len(obj):
                return MISSING
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return MISSING
    return obj


def plain(v):
    if isinstance(v, datetime.datetime):
        return v.timestamp()
    return v


def check(where, response, expect):
    """The differences between a successful answer and what the step expects."""
    found = []
    for p in expect.get("present", []):
        if get(response, p) is MISSING:
            found.append(f"{where}: '{p}' missing from {json.dumps(response, default=str)[:1500]}")
    for p in expect.get("absent", []):
        if get(response, p) is not MISSING:
            found.append(f"{where}: '{p}' present ({get(response, p)!r}) but ECS leaves it out")
    for p, v in expect.get("equals", {}).items():
        got = get(response, p)
        if got is MISSING or plain(got) != subst(v):
            found.append(f"{where}: '{p}' is {plain(got) if got is not MISSING else 'missing'!r}, expected {subst(v)!r}")
    for p, rx in expect.get("matches", {}).items():
        got = get(response, p)
        if got is MISSING or not re.search(subst(rx), str(got)):
            found.append(f"{where}: '{p}' is {got if got is not MISSING else 'missing'!r}, expected to match {subst(rx)}")
    for p, v in expect.get("includes", {}).items():
        got = get(response, p)
        if not isinstance(got, list) or subst(v) not in got:
            found.append(f"{where}: '{p}' ({got if got is not MISSING else 'missing'!r}) lacks {subst(v)!r}")
    for p, v in expect.get("excludes", {}).items():
        got = get(response, p)
        if isinstance(got, list) and subst(v) in got:
            found.append(f"{where}: '{p}' holds {subst(v)!r}")
    for p, n in expect.get("length", {}).items():
        got = get(response, p)
        if not isinstance(got, list) or len(got) != n:
            found.append(f"{where}: '{p}' has {len(got) if isinstance(got, list) else 'no list'} entries, expected {n}")
    return found


for n, step in enumerate(steps):
    where = f"step {n} ({step['op']})"
    params = subst(step.get("params", {}))
    expect = step.get("expect", {})
    deadline = time.time() + step.get("timeout", 0)
    while True:
        try:
            response = getattr(raw if step.get("unvalidated") else ecs, step["op"])(**params)
            response.pop("ResponseMetadata", None)
            error = None
        except ClientError as e:
            response, error = None, e.response["Error"]
        if "poll" in step and error is None and check(where, response, expect) and time.time() < deadline:
            time.sleep(0.5)
            continue
        break
    want = expect.get("error")
    if want:
        if error is None:
            failures.append(f"{where}: expected {want['code']}, got success {json.dumps(response, default=str)[:1500]}")
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
    failures.extend(check(where, response, expect))
    for name, p in step.get("save", {}).items():
        saved[name] = plain(get(response, p))

print(json.dumps({"failures": failures}))
sys.exit(1 if failures else 0)
