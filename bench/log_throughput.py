#!/usr/bin/env python3
"""Log shipping (issue 11): a container's line rate under awslogs beside the same container under json-file,
and end-to-end latency from a line's write to GetLogEvents returning it.

Usage (against a running `berth up`, the image built by tests/fixtures/build-test-image.sh):
    python3 bench/log_throughput.py --endpoint http://127.0.0.1:4566 --lines 200000 --rounds 5

1. Line rate. One task writes --lines lines as fast as it can (`seq 1 N`) and exits; its rate is N divided by
   the container's run time (Docker's State.StartedAt -> FinishedAt), i.e. how fast its output is taken from it.
   Rounds alternate between the awslogs task and the same task with the json-file driver, so machine noise hits
   both alike. Under awslogs Berth's agent follows the container's json-file while it runs (read from disk when
   it can, else through the Docker logs API); the script then reads the stream back whole with GetLogEvents (count
   checked) and takes its lastIngestionTime, when the server stored the last line (the shipping rate, end to end).
2. Latency. One task writes a line every 20 ms (--latency-lines lines); the script polls GetLogEvents (forward
   token) every 5 ms and, for each line, takes (time first returned - the event's timestamp, Docker's receive
   time in ms). p50 / p99 / max.
With --berth-pid, each round also records the CPU seconds (user + system, from /proc) that dockerd and the berth
process spent from RunTask until the round was over (json-file: the task stopped; awslogs: its last line stored):
where the cores go. Prints a markdown table. Containers are left to Berth (stopped tasks); the log group is bench-unique.
"""
import argparse, datetime, json, os, statistics, subprocess, sys, time, uuid

import boto3


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def cpu_seconds(pid):
    # utime + stime of the process (all its threads), /proc/PID/stat fields 14 and 15, in clock ticks.
    if not pid:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_docker_time(s):
    # 2026-11-27T20:31:02.123456789Z -> seconds (float); Python keeps microseconds.
    head, _, frac = s.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--cluster", default="default")
    ap.add_argument("--image", default="berth-test/busybox:latest")
    ap.add_argument("--lines", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--latency-lines", type=int, default=500)
    ap.add_argument("--berth-pid", type=int, default=0, help="the berth process, to account its CPU per round")
    args = ap.parse_args()
    dockerd = int(subprocess.check_output(["pidof", "dockerd"]).split()[0]) if args.berth_pid else 0

    kw = dict(endpoint_url=args.endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    ecs, logs = boto3.client("ecs", **kw), boto3.client("logs", **kw)
    run = uuid.uuid4().hex[:8]
    group = "/bench/logs/" + run

    def register(family, log_configuration, command):
        c = {"name": "app", "image": args.image, "memory": 64, "essential": True, "command": command}
        if log_configuration:
            c["logConfiguration"] = log_configuration
        return ecs.register_task_definition(family=family, containerDefinitions=[c])["taskDefinition"]["taskDefinitionArn"]

    awslogs = {"logDriver": "awslogs", "options": {"awslogs-group": group, "awslogs-create-group": "true",
                                                   "awslogs-region": "us-east-1", "awslogs-stream-prefix": "b"}}
    jsonfile = {"logDriver": "json-file", "options": {}}
    burst = ["seq", "1", str(args.lines)]
    td_aws = register("bench-logs-awslogs", awslogs, burst)
    td_json = register("bench-logs-jsonfile", jsonfile, burst)

    def run_task(td):
        out = ecs.run_task(cluster=args.cluster, taskDefinition=td, count=1)
        if out.get("failures"):
            sys.exit("run_task failed: %s" % out["failures"])
        return out["tasks"][0]["taskArn"]

    def wait_stopped(arn, timeout=300):
        t0 = time.time()
        while True:
            t = ecs.describe_tasks(cluster=args.cluster, tasks=[arn])["tasks"][0]
            if t["lastStatus"] == "STOPPED":
                return t
            if time.time() - t0 > timeout:
                sys.exit("task %s did not stop in %d s" % (arn, timeout))
            time.sleep(0.05)

    def container_seconds(task):
        cid = task["containers"][0]["runtimeId"]
        state = json.loads(subprocess.check_output(["docker", "inspect", "-f", "{{json .State}}", cid]))
        return parse_docker_time(state["FinishedAt"]) - parse_docker_time(state["StartedAt"]), parse_docker_time(state["StartedAt"])

    def count_stream(stream, want, timeout=300):
        # Follows the forward token until `want` events were returned; returns the time the last one was seen.
        token, seen, t0 = None, 0, time.time()
        while True:
            req = dict(logGroupName=group, logStreamName=stream, startFromHead=True)
            if token:
                req["nextToken"] = token
            try:
                page = logs.get_log_events(**req)
            except logs.exceptions.ResourceNotFoundException:
                page = {"events": [], "nextForwardToken": token}
            seen += len(page["events"])
            if seen >= want:
                return time.time(), seen
            if time.time() - t0 > timeout:
                sys.exit("only %d of %d lines in %s after %d s" % (seen, want, stream, timeout))
            if page["nextForwardToken"] == token:
                time.sleep(0.05)
            token = page["nextForwardToken"]

    def wait_last_line(stream, last, timeout=300):
        # The newest event (GetLogEvents without a token, limit 1) is `seq`'s last line once everything is stored.
        t0 = time.time()
        while True:
            try:
                ev = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)["events"]
            except logs.exceptions.ResourceNotFoundException:
                ev = []
            if ev and ev[0]["message"] == last:
                return
            if time.time() - t0 > timeout:
                sys.exit("the last line of %s was not stored in %d s" % (stream, timeout))
            time.sleep(0.02)

    rate_aws, rate_json, ship_rate = [], [], []
    cpu = {"awslogs": ([], []), "json-file": ([], [])}  # (dockerd, berth) CPU seconds per round
    for r in range(args.rounds):
        for kind in (("awslogs", "json-file") if r % 2 == 0 else ("json-file", "awslogs")):
            cpu0 = (cpu_seconds(dockerd), cpu_seconds(args.berth_pid))
            arn = run_task(td_aws if kind == "awslogs" else td_json)
            task = wait_stopped(arn)
            secs, started = container_seconds(task)
            (rate_aws if kind == "awslogs" else rate_json).append(args.lines / secs)
            if kind == "awslogs":
                stream = "b/app/" + arn.rsplit("/", 1)[1]
                wait_last_line(stream, str(args.lines))
                cpu_shipped = (cpu_seconds(dockerd), cpu_seconds(args.berth_pid))
                done, seen = count_stream(stream, args.lines)
                if seen != args.lines:
                    sys.exit("stream holds %d lines, expected %d" % (seen, args.lines))
                # Shipped = the stream's lastIngestionTime (when the server stored the last batch), not when this
                # script finished paging through it: paging 500,000 events with boto3 alone takes seconds.
                info = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream)["logStreams"][0]
                ship_rate.append(args.lines / (info["lastIngestionTime"] / 1000.0 - started))
            cpu1 = cpu_shipped if kind == "awslogs" else (cpu_seconds(dockerd), cpu_seconds(args.berth_pid))
            cpu[kind][0].append(cpu1[0] - cpu0[0])
            cpu[kind][1].append(cpu1[1] - cpu0[1])
            print("round %d %-9s %8.0f lines/s  cpu dockerd %.2f s berth %.2f s" % (r + 1, kind, args.lines / secs, cpu[kind][0][-1], cpu[kind][1][-1]), file=sys.stderr)

    # Latency: one line every 20 ms.
    n = args.latency_lines
    td_lat = register("bench-logs-latency", awslogs, ["sh", "-c", "i=0; while [ $i -lt %d ]; do echo $i; usleep 20000; i=$((i+1)); done" % n])
    arn = run_task(td_lat)
    stream = "b/app/" + arn.rsplit("/", 1)[1]
    token, lat, t0 = None, [], time.time()
    while len(lat) < n:
        req = dict(logGroupName=group, logStreamName=stream, startFromHead=True)
        if token:
            req["nextToken"] = token
        try:
            page = logs.get_log_events(**req)
        except logs.exceptions.ResourceNotFoundException:
            page = {"events": [], "nextForwardToken": token}
        now = time.time()
        for e in page["events"]:
            lat.append(now - e["timestamp"] / 1000.0)
        token = page["nextForwardToken"]
        if time.time() - t0 > 120:
            sys.exit("latency run: only %d of %d lines in 120 s" % (len(lat), n))
        time.sleep(0.005)
    wait_stopped(arn)

    med = statistics.median
    print("| | median over %d rounds | min | max |" % args.rounds)
    print("|---|---|---|---|")
    print("| json-file: lines/s the container writes | %.0f | %.0f | %.0f |" % (med(rate_json), min(rate_json), max(rate_json)))
    print("| awslogs: lines/s the container writes | %.0f | %.0f | %.0f |" % (med(rate_aws), min(rate_aws), max(rate_aws)))
    print("| awslogs: lines/s shipped (start -> last line stored, lastIngestionTime) | %.0f | %.0f | %.0f |" % (med(ship_rate), min(ship_rate), max(ship_rate)))
    if args.berth_pid:
        for kind in ("json-file", "awslogs"):
            d, b = cpu[kind]
            print("| %s: CPU s per round, dockerd / berth | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |"
                  % (kind, med(d), med(b), min(d), min(b), max(d), max(b)))
    print()
    print("ratio awslogs / json-file (medians): %.2f" % (med(rate_aws) / med(rate_json)))
    print("latency write -> GetLogEvents over %d lines: p50 %.0f ms, p99 %.0f ms, max %.0f ms"
          % (n, med(lat) * 1000, pct(lat, 99) * 1000, max(lat) * 1000))


if __name__ == "__main__":
    main()
