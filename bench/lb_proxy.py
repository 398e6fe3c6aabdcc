#!/usr/bin/env python3
"""Load balancer data plane throughput and latency, beside Debian's nginx and haproxy.

Usage (from the repository root, after `dotnet build -c Release src/Berth.Cli`;
needs `apt-get install wrk nginx haproxy`):
    python3 bench/lb_proxy.py --rounds 3 --duration 10 --connections 64

One backend (an nginx instance serving a 1 KiB file on loopback) sits behind three reverse proxies,
each keeping connections to it alive: Berth's data plane (a `berth server` with one load balancer,
one listener forwarding to one target group holding the backend), nginx (`proxy_pass` to an upstream
with `keepalive`) and haproxy (`mode http`, `http-reuse always`). wrk loads each proxy in turn, the
order rotating every round, with the same threads, connections and duration. Prints per-run figures,
then the medians over the rounds and their ratios to nginx. Also measures the time from
RegisterTargets until the listener first answers 200 from the new target.

`--berth-env KEY=VALUE` (repeatable) sets the berth process's environment, for runtime settings such as
DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 (docs/BENCHMARKS.md says what it changes).
`--compare-kestrel` adds a second berth process with BERTH_LB_FAST_PATH=0 (every request through Kestrel + YARP)
as "berth-kestrel", loaded in the same rotation. Each proxy's CPU time per request (its processes' user + system
time from /proc, nginx and haproxy counted with their workers) is reported beside the figures.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.request, urllib.error, socket

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "src", "Berth.Cli", "bin", "Release", "net10.0", "berth.dll")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def status_of(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def wait_status(url, status, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if status_of(url) == status:
            return
        time.sleep(0.05)
    sys.exit("timed out waiting for %s to answer %d" % (url, status))


def wait_http(url, timeout=30):
    wait_status(url, 200, timeout)


def start_backend(work, port):
    root = os.path.join(work, "backend")
    os.makedirs(root)
    with open(os.path.join(root, "index.html"), "wb") as f:
        f.write(b"x" * 1024)
    conf = os.path.join(work, "backend.conf")
    with open(conf, "w") as f:
        f.write("""daemon off; worker_processes 1; pid %(w)s/backend.pid; error_log %(w)s/backend.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:%(p)d; root %(r)s; location / { } } }
""" % {"w": work, "p": port, "r": root})
    return subprocess.Popen(["nginx", "-c", conf, "-p", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_nginx(work, port, backend, workers):
    conf = os.path.join(work, "proxy-nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off; worker_processes %(n)d; pid %(w)s/proxy.pid; error_log %(w)s/proxy.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:%(b)d; keepalive 128; }
  server { listen 127.0.0.1:%(p)d;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } } }
""" % {"w": work, "p": port, "b": backend, "n": workers})
    return subprocess.Popen(["nginx", "-c", conf, "-p", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_haproxy(work, port, backend, threads):
    conf = os.path.join(work, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write("""global
  nbthread %(n)d
  maxconn 8192
defaults
  mode http
  timeout connect 10s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:%(p)d
  default_backend be
backend be
  server s1 127.0.0.1:%(b)d
""" % {"p": port, "b": backend, "n": threads})
    return subprocess.Popen(["haproxy", "-f", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_berth(work, api_port, extra_env=()):
    data = os.path.join(work, "berth")
    log = open(os.path.join(work, "berth.log"), "w")
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in extra_env)
    p = subprocess.Popen(["dotnet", BERTH, "server", "--listen", "127.0.0.1:%d" % api_port,
                          "--agent-listen", "127.0.0.1:%d" % free_port(), "--data", data, "--log-level", "Warning"],
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_http("http://127.0.0.1:%d/_berth/health" % api_port)
    return p


def cpu_seconds(pid):
    """User + system CPU seconds of a process and its direct children (nginx's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid = int(fields[1])
        if int(entry) == pid or ppid == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000.0 if unit == "us" else v * 1000.0 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": lat(50), "p99": lat(99),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1).strip() if socket_errors else ""}


def run_wrk(url, threads, connections, duration):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration, "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="nginx worker_processes / haproxy nbthread of the proxies")
    ap.add_argument("--register-samples", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10, help="seconds of load on each proxy before the rounds (Berth's JIT reaches its optimised tier)")
    ap.add_argument("--compare-kestrel", action="store_true", help="also load a berth with BERTH_LB_FAST_PATH=0")
    ap.add_argument("--berth-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the berth process, e.g. DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1")
    args = ap.parse_args()

    for tool in ("wrk", "nginx", "haproxy"):
        if not shutil.which(tool):
            sys.exit("%s is missing: apt-get install wrk nginx haproxy" % tool)
    work = tempfile.mkdtemp(prefix="berth-lb-bench-")
    os.chmod(work, 0o755)  # nginx workers run as www-data and read the backend file
    procs = []
    try:
        backend_port, nginx_port, haproxy_port, berth_api, berth_port, reg_port = (free_port() for _ in range(6))
        procs.append(start_backend(work, backend_port))
        procs.append(start_nginx(work, nginx_port, backend_port, args.workers))
        procs.append(start_haproxy(work, haproxy_port, backend_port, args.workers))
        procs.append(start_berth(work, berth_api, args.berth_env))
        pids = {"nginx": procs[1].pid, "haproxy": procs[2].pid, "berth": procs[3].pid}

        def listener(api_port, listen_port):
            client = boto3.client("elbv2", endpoint_url="http://127.0.0.1:%d" % api_port, region_name="us-east-1",
                                  aws_access_key_id="test", aws_secret_access_key="test")
            lb_arn = client.create_load_balancer(Name="bench")["LoadBalancers"][0]["LoadBalancerArn"]
            tg_arn = client.create_target_group(Name="bench", Protocol="HTTP", Port=backend_port, VpcId="vpc-0a1b2c3d",
                                                TargetType="ip", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
                                                HealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
            client.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "127.0.0.1", "Port": backend_port}])
            client.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=listen_port,
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}])
            return client, lb_arn

        elb, lb = listener(berth_api, berth_port)
        urls = {"berth": "http://127.0.0.1:%d/" % berth_port, "nginx": "http://127.0.0.1:%d/" % nginx_port,
                "haproxy": "http://127.0.0.1:%d/" % haproxy_port}
        if args.compare_kestrel:
            kestrel_api, kestrel_port = free_port(), free_port()
            os.makedirs(os.path.join(work, "k"))
            procs.append(start_berth(os.path.join(work, "k"), kestrel_api, args.berth_env + ["BERTH_LB_FAST_PATH=0"]))
            pids["berth-kestrel"] = procs[-1].pid
            listener(kestrel_api, kestrel_port)
            urls["berth-kestrel"] = "http://127.0.0.1:%d/" % kestrel_port
        for name, u in urls.items():
            if status_of(u) != 200:
                time.sleep(2)
            if status_of(u) != 200:
                for log in ("proxy.err", "berth.log", "backend.err"):
                    path = os.path.join(work, log)
                    if os.path.exists(path):
                        print("--- %s\n%s" % (log, open(path).read()[-2000:]))
                sys.exit("%s (%s) does not answer 200: %s" % (name, u, status_of(u)))
        for u in urls.values():  # warm-up: JIT (tiered compilation needs some seconds of load), connection pools
            run_wrk(u, args.threads, args.connections, args.warmup)

        results = {k: [] for k in urls}
        order = list(urls)
        for r in range(args.rounds):
            n = len(order)
            for name in order[r % n:] + order[:r % n]:
                cpu0 = cpu_seconds(pids[name])
                res = run_wrk(urls[name], args.threads, args.connections, args.duration)
                res["cpu_us"] = (cpu_seconds(pids[name]) - cpu0) / (res["rps"] * args.duration) * 1e6
                results[name].append(res)
                print("round %d %-13s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  CPU %5.1f µs/req  non-2xx %d %s" % (
                    r + 1, name, res["rps"], res["p50"], res["p99"], res["cpu_us"], res["non2xx"], res["socket_errors"]), flush=True)

        med = {k: {m: statistics.median(x[m] for x in v) for m in ("rps", "p50", "p99", "cpu_us")} for k, v in results.items()}
        print("\n| proxy | requests/s | p50 | p99 | req/s vs nginx | p99 vs nginx | proxy CPU per request |")
        print("|---|---|---|---|---|---|---|")
        for k in order:
            print("| %s | %.0f | %.2f ms | %.2f ms | %.2f× | %.2f× | %.1f µs |" % (
                k, med[k]["rps"], med[k]["p50"], med[k]["p99"], med[k]["rps"] / med["nginx"]["rps"], med[k]["p99"] / med["nginx"]["p99"], med[k]["cpu_us"]))

        # RegisterTargets -> first 200 from the new target, on a listener whose group starts empty (503).
        tg2 = elb.create_target_group(Name="bench-reg", Protocol="HTTP", Port=backend_port, VpcId="vpc-0a1b2c3d",
                                      TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(TargetGroupArn=tg2, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}])
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=reg_port, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg2}])
        wait_status("http://127.0.0.1:%d/" % reg_port, 503)
        samples = []
        for _ in range(args.register_samples):
            t0 = time.perf_counter()
            elb.register_targets(TargetGroupArn=tg2, Targets=[{"Id": "127.0.0.1", "Port": backend_port}])
            while status_of("http://127.0.0.1:%d/" % reg_port) != 200:
                time.sleep(0.002)
            samples.append((time.perf_counter() - t0) * 1000)
            elb.deregister_targets(TargetGroupArn=tg2, Targets=[{"Id": "127.0.0.1", "Port": backend_port}])
            wait_status("http://127.0.0.1:%d/" % reg_port, 503)
        print("\nRegisterTargets -> first 200: p50 %.0f ms, max %.0f ms over %d samples (includes the boto3 call)" % (
            statistics.median(samples), max(samples), len(samples)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
