"""The step runner the data-driven fidelity scenarios share (ecr_fidelity.py, ecs_fidelity.py).

A scenario is a list of steps. A step calls one operation (boto3's snake_case name) with params, then checks the
answer: `present` / `absent` (dotted paths in the response; a number indexes a list), `equals` (path -> value),
`matches` (path -> regex), `includes` / `excludes` (path -> a value the list holds or not), `length` (path -> list
length), or `error` (`code`, and `message` exact or `contains`). `${NAME}` in params and expectations is replaced by
a saved value; `save` keeps response values by path (`save_len` their UTF-8 length). `poll` repeats the call (up to
`timeout` seconds) until the checks hold. `unvalidated` skips boto3's own parameter checks, so the server's answer to
what boto3 would refuse is what gets checked. A runner may handle steps of its own kinds first (`special`).
Prints {"failures": [...]} and exits 1 when any check fails.
"""
import datetime, json, re, sys, time

from botocore.exceptions import ClientError

MISSING = object()


class Runner:
    def __init__(self, client, raw, service, saved=None):
        self.client, self.raw, self.service = client, raw, service
        self.saved = dict(saved or {})
        self.failures = []

    def subst(self, value):
        if isinstance(value, str):
            if value.startswith("${") and value.endswith("}") and value[2:-1] in self.saved:
                return self.saved[value[2:-1]]
            for k, v in self.saved.items():
                value = value.replace("${" + k + "}", str(v))
            return value
        if isinstance(value, list):
            return [self.subst(v) for v in value]
        if isinstance(value, dict):
            return {k: self.subst(v) for k, v in value.items()}
        return value

    @staticmethod
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

    @staticmethod
    def plain(v):
        return v.timestamp() if isinstance(v, datetime.datetime) else v

    def check(self, where, response, expect):
        """The differences between a successful answer and what the step expects."""
        get, plain, subst, found = self.get, self.plain, self.subst, []
        for p in expect.get("present", []):
            if get(response, p) is MISSING:
                found.append(f"{where}: '{p}' missing from {json.dumps(response, default=str)[:1500]}")
        for p in expect.get("absent", []):
            if get(response, p) is not MISSING:
                found.append(f"{where}: '{p}' present ({get(response, p)!r}) but {self.service} leaves it out")
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

    def run(self, steps, special=None, prepare=None):
        for n, step in enumerate(steps):
            where = f"step {n} ({step.get('op', 'special')})"
            if special is not None and special(self, step):
                continue
            params = self.subst(step.get("params", {}))
            if prepare is not None:
                prepare(params)
            expect = step.get("expect", {})
            deadline = time.time() + step.get("timeout", 0)
            while True:
                try:
                    response = getattr(self.raw if step.get("unvalidated") else self.client, step["op"])(**params)
                    response.pop("ResponseMetadata", None)
                    error = None
                except ClientError as e:
                    response, error = None, e.response["Error"]
                if "poll" in step and error is None and self.check(where, response, expect) and time.time() < deadline:
                    time.sleep(0.5)
                    continue
                break
            want = expect.get("error")
            if want:
                if error is None:
                    self.failures.append(f"{where}: expected {want['code']}, got success {json.dumps(response, default=str)[:1500]}")
                    continue
                if error["Code"] != want["code"]:
                    self.failures.append(f"{where}: expected {want['code']}, got {error['Code']}: {error.get('Message')}")
                if "message" in want and error.get("Message") != self.subst(want["message"]):
                    self.failures.append(f"{where}: message {error.get('Message')!r} != {self.subst(want['message'])!r}")
                if "contains" in want and self.subst(want["contains"]) not in error.get("Message", ""):
                    self.failures.append(f"{where}: message {error.get('Message')!r} lacks {self.subst(want['contains'])!r}")
                continue
            if error is not None:
                self.failures.append(f"{where}: unexpected {error['Code']}: {error.get('Message')}")
                continue
            self.failures.extend(self.check(where, response, expect))
            for name, p in step.get("save", {}).items():
                self.saved[name] = self.plain(self.get(response, p))
            for name, p in step.get("save_len", {}).items():
                self.saved[name] = len(str(self.get(response, p)).encode())
        print(json.dumps({"failures": self.failures}))
        sys.exit(1 if self.failures else 0)
