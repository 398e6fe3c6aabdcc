#!/usr/bin/env python3
"""Service scale-out on real Docker: one ECS service 0 -> N tasks until all RUNNING, beside
`docker-compose up -d --scale app=N` of the same image, command and memory limit, in the same run.

Usage (from the repository root, after `dotnet build -c Release src/Berth.Cli` and
tests/fixtures/build-test-image.sh):
    python3 bench/service_scaleout.py [--count 50] [--rounds 5]

The script starts its own `berth up` on a free loopback port with a fresh data directory and a
container label of its own, and removes every container it made (Berth's and compose's) at the end.

Berth is timed from the UpdateService call (desiredCount 0 -> N) until DescribeServices reports
runningCount N (polled every 20 ms through boto3); compose from the start of
`docker-compose up -d --scale app=N` until the process exits (it returns once every container is
started). Both use the default bridge network (compose is given `network_mode: bridge`, so it creates
no network of its own), `sleep 3600`, a 16 MiB memory limit. Between rounds both scale back to 0 and
their containers are removed, so every round starts from an empty host. The order alternates each
round so that machine noise hits both alike. Prints each round, the medians and their ratio.
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, uuid

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "src/Berth.Cli/bin/Release/net10.0/berth.dll")


def free_port_pair():
    # Two consecutive free ports: the API and the agents' gRPC endpoint.
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    sys.exit("no free port pair found")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def containers(label, status=None):
    cmd = "docker ps -aq --filter label=%s" % label
    if status:
        cmd += " --filter status=%s" % status
    return [c for c in sh(cmd).stdout.split() if c]


def remove_containers(label):
    ids = containers(label)
    if ids:
        sh("docker rm -f " + " ".join(ids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--image", default="berth-test/busybox:latest")
    ap.add_argument("--memory", type=int, default=16, help="MiB per container (hard limit)")
    ap.add_argument("--phases", action="store_true", help="print where Berth's time went in each round (stderr)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds one scale-out may take")
    args = ap.parse_args()

    if not os.path.exists(BERTH):
        sys.exit("build first: dotnet build -c Release src/Berth.Cli")
    if sh("docker image inspect " + args.image).returncode != 0:
        sys.exit("image %s missing: run tests/fixtures/build-test-image.sh" % args.image)
    compose_bin = shutil.which("docker-compose")
    if compose_bin is None:
        sys.exit("docker-compose missing: apt-get install -y docker-compose")

    run_id = uuid.uuid4().hex[:12]
    berth_label = "berth.bench.scaleout=" + run_id
    compose_label = "berth.bench.compose=" + run_id
    project = "berthbench" + run_id
    work = tempfile.mkdtemp(prefix="berth-bench-scaleout.")
    port = free_port_pair()
    endpoint = "http://127.0.0.1:%d" % port
    log = open(os.path.join(work, "berth.log"), "w")
    server = subprocess.Popen(
        ["dotnet", BERTH, "up", "--listen", "127.0.0.1:%d" % port, "--agent-listen", "127.0.0.1:%d" % (port + 1),
         "--data", os.path.join(work, "data"), "--log-level", "Warning", "--container-label", berth_label],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    with open(os.path.join(work, "docker-compose.yml"), "w") as f:
        f.write("""version: "2.4"
services:
  app:
    image: %s
    command: ["sleep", "3600"]
    mem_limit: %dm
    network_mode: bridge
    stop_grace_period: 1s
    labels:
      %s: "%s"
""" % (args.image, args.memory, compose_label.split("=")[0], run_id))
    compose = [compose_bin, "-p", project, "-f", os.path.join(work, "docker-compose.yml")]

    ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    berth_times, compose_times = [], []
    service = "scaleout"
    cluster = "default"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]:
                    break
            except Exception:
                pass
            if server.poll() is not None or time.time() > deadline:
                sys.exit("berth up did not start with an agent; see %s" % os.path.join(work, "berth.log"))
            time.sleep(0.2)
        td = ecs.register_task_definition(
            family="bench-scaleout",
            containerDefinitions=[{"name": "app", "image": args.image, "memory": args.memory, "essential": True,
                                   "command": ["sleep", "3600"], "stopTimeout": 1}],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=td, desiredCount=0)

        def running():
            return ecs.describe_services(cluster=cluster, services=[service])["services"][0]["runningCount"]

        def phases(wall0):
            # Where the time went, from the tasks' own timestamps: the last task placed (createdAt), the last
            # one the agent began (pullStartedAt), the last one RUNNING (startedAt), in s after UpdateService.
            arns = []
            for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, serviceName=service, desiredStatus="RUNNING"):
                arns += page["taskArns"]
            tasks = []
            for i in range(0, len(arns), 100):
                tasks += ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100])["tasks"]
            last = lambda k: max(t[k].timestamp() for t in tasks if k in t) - wall0
            first = lambda k: min(t[k].timestamp() for t in tasks if k in t) - wall0
            return "placed %.2f-%.2f s, agent began %.2f-%.2f s, RUNNING %.2f-%.2f s" % (
                first("createdAt"), last("createdAt"), first("pullStartedAt"), last("pullStartedAt"), first("startedAt"), last("startedAt"))

        def berth_round():
            t0 = time.perf_counter()
            wall0 = time.time()
            ecs.update_service(cluster=cluster, service=service, desiredCount=args.count)
            while running() < args.count:
                if time.perf_counter() - t0 > args.timeout:
                    sys.exit("berth: %d of %d running after %.0f s" % (running(), args.count, args.timeout))
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            n = len(containers(berth_label, "running"))
            if n != args.count:
                sys.exit("berth reported %d running but docker shows %d of its containers running" % (args.count, n))
            if args.phases:
                print("berth: " + phases(wall0), file=sys.stderr, flush=True)
            # Back to an empty host: scale in, wait for every task to stop, remove the exited containers.
            ecs.update_service(cluster=cluster, service=service, desiredCount=0)
            t1 = time.perf_counter()
            while True:
                s = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
                if s["runningCount"] == 0 and s["pendingCount"] == 0 and not containers(berth_label, "running"):
                    break
                if time.perf_counter() - t1 > args.timeout:
                    sys.exit("berth: tasks still running %.0f s after scaling in" % args.timeout)
                time.sleep(0.2)
            ids = containers(berth_label, "exited")
            if ids:
                sh("docker rm " + " ".join(ids))
            return elapsed

        def compose_round():
            t0 = time.perf_counter()
            r = subprocess.run(compose + ["up", "-d", "--scale", "app=%d" % args.count],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            elapsed = time.perf_counter() - t0
            if r.returncode != 0:
                sys.exit("docker-compose up failed: " + r.stderr[-2000:])
            n = len(containers(compose_label, "running"))
            if n != args.count:
                sys.exit("compose returned but docker shows %d of its containers running" % n)
            subprocess.run(compose + ["down", "-t", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            remove_containers(compose_label)
            return elapsed

        # One untimed warm-up of each (JIT, page cache, docker's first-use costs).
        berth_round()
        compose_round()
        print("| round | berth UpdateService -> %d RUNNING | docker-compose up -d --scale app=%d |" % (args.count, args.count))
        print("|---|---|---|")
        for i in range(args.rounds):
            if i % 2 == 0:
                b = berth_round(); c = compose_round()
            else:
                c = compose_round(); b = berth_round()
            berth_times.append(b); compose_times.append(c)
            print("| %d | %.2f s | %.2f s |" % (i + 1, b, c), flush=True)
        bm, cm = statistics.median(berth_times), statistics.median(compose_times)
        print("| **median** | **%.2f s** | **%.2f s** |" % (bm, cm))
        print("| **ratio of medians (berth / compose)** | **%.2f×** | |" % (bm / cm))
    finally:
        try:
            ecs.update_service(cluster=cluster, service=service, desiredCount=0)
            ecs.delete_service(cluster=cluster, service=service, force=True)
        except Exception:
            pass
        subprocess.run(compose + ["down", "-t", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except Exception:
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except Exception:
                pass
        remove_containers(berth_label)
        remove_containers(compose_label)
        log.close()
        if os.environ.get("KEEP_BENCH_DIR"):
            print("kept " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
