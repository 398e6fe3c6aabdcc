#!/usr/bin/env python3
"""Task start latency: RunTask -> lastStatus RUNNING, beside `docker run -d` of the same image.

Usage (against a running `berth up`, the image built by tests/fixtures/build-test-image.sh):
    python3 bench/task_start.py --endpoint http://127.0.0.1:4566 --count 50

Berth is timed from the RunTask call until DescribeTasks first reports RUNNING (polled every 5 ms),
docker from the start of `docker run -d` until it returns. Runs alternate between the two so that
machine noise hits both alike. Prints p50/p95 of each and the ratio of the medians.
"""
import argparse, statistics, subprocess, sys, time, uuid

import boto3


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--image", default="berth-test/busybox:latest")
    ap.add_argument("--cluster", default="bench-start")
    args = ap.parse_args()

    ecs = boto3.client("ecs", endpoint_url=args.endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    ecs.create_cluster(clusterName=args.cluster)
    # The local agent registers in "default"; run in the cluster that has an instance.
    cluster = args.cluster if ecs.list_container_instances(cluster=args.cluster)["containerInstanceArns"] else "default"
    td = ecs.register_task_definition(
        family="bench-start",
        containerDefinitions=[{"name": "main", "image": args.image, "memory": 16, "essential": True,
                               "command": ["sleep", "3600"], "stopTimeout": 1}],
    )["taskDefinition"]["taskDefinitionArn"]

    label = "berth.bench=" + uuid.uuid4().hex
    berth, docker, arns = [], [], []
    try:
        for i in range(args.count):
            t0 = time.perf_counter()
            out = ecs.run_task(cluster=cluster, taskDefinition=td, count=1)
            if out.get("failures"):
                sys.exit("run_task failed: %s" % out["failures"])
            arn = out["tasks"][0]["taskArn"]
            arns.append(arn)
            while True:
                t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
                if t["lastStatus"] == "RUNNING":
                    break
                if t["lastStatus"] == "STOPPED":
                    sys.exit("task stopped: %s" % t.get("stoppedReason"))
                if time.perf_counter() - t0 > 60:
                    sys.exit("task did not reach RUNNING in 60 s")
                time.sleep(0.005)
            berth.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            subprocess.run(["docker", "run", "-d", "--label", label, "-m", "16m", args.image, "sleep", "3600"],
                           check=True, stdout=subprocess.DEVNULL)
            docker.append(time.perf_counter() - t0)
            # Keep the host steady: stop both before the next round.
            ecs.stop_task(cluster=cluster, task=arn, reason="bench")
            subprocess.run("docker rm -f $(docker ps -aq --filter label=%s) >/dev/null" % label, shell=True)
    finally:
        subprocess.run("docker rm -f $(docker ps -aq --filter label=%s) >/dev/null 2>&1" % label, shell=True)
        for arn in arns:
            try:
                ecs.stop_task(cluster=cluster, task=arn, reason="bench done")
            except Exception:
                pass

    ms = lambda v: "%.0f ms" % (v * 1000)
    print("| | p50 | p95 |")
    print("|---|---|---|")
    print("| berth RunTask -> RUNNING | %s | %s |" % (ms(statistics.median(berth)), ms(pct(berth, 95))))
    print("| docker run -d | %s | %s |" % (ms(statistics.median(docker)), ms(pct(docker, 95))))
    print("ratio of medians (berth / docker): %.2fx over %d tasks" % (statistics.median(berth) / statistics.median(docker), args.count))


if __name__ == "__main__":
    main()
