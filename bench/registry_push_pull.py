#!/usr/bin/env python3
"""Registry push/pull: Berth's /v2/ registry beside the CNCF distribution registry (Debian's docker-registry).

Usage (root, Docker running, skopeo and docker-registry installed; Berth is built Release if missing):
    python3 bench/registry_push_pull.py --targets distribution,berth --reps 3

A local image of 5 layers x 100 MiB of random bytes (incompressible, no dedup) is built once and kept,
found again by its label. Every repetition starts each registry afresh (new data directory, new port),
so that "fresh" really is fresh: the Docker daemon remembers which repositories of a registry already
hold a layer and mounts it from there instead of uploading. Per repetition and registry it times:
  push fresh    `docker push` to an empty registry;
  push present  `docker push` of the same image to a second repository (cross-repo mounts);
  pull fresh    `docker pull` after every tag of the image was removed (`docker rmi -f ID`);
  pull present  `docker pull` of the same tag again;
  10 pulls      10 concurrent `skopeo copy docker://... dir:...` (the daemon would dedupe identical
                concurrent pulls; skopeo transfers every blob each time), wall time until all finish.
The targets alternate (and swap order every repetition) so machine noise hits both alike. Server
memory is the registry process's VmHWM (peak RSS) from /proc/PID/status, plus the largest VmRSS
sampled every 100 ms, the maximum over its runs. Server CPU is the registry process's user + system
time (/proc/PID/stat) spent during each step. Before each step the script calls sync(2), so that no step
is slowed by the writeback of what the steps before it wrote. Prints a markdown table of medians.

Everything it creates (tags, pushed/pulled images, temp dirs, server processes) is removed at the
end, also on error or Ctrl+C, except the source image, which stays as the cache (--remove-image).
"""
import argparse, os, platform, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request, uuid

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABEL = "berth.bench.image"
TARGET_NAMES = {"distribution": "distribution", "berth": "Berth"}
OPS = [("push_fresh", "`docker push`, fresh (empty registry)"),
       ("push_present", "`docker push`, layers present (new repo, same registry)"),
       ("pull_fresh", "`docker pull`, fresh (image removed locally)"),
       ("pull_present", "`docker pull`, already present"),
       ("pull_10", "10 concurrent `skopeo copy` pulls (wall)")]


class BenchError(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def run(cmd, timeout, check=True, **kw):
    """Runs cmd, output captured; raises BenchError with the tail of its output on failure."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise BenchError("timed out after %ds: %s" % (timeout, " ".join(cmd)))
    if check and p.returncode != 0:
        raise BenchError("exit %d: %s\n%s" % (p.returncode, " ".join(cmd), p.stdout[-3000:]))
    return p


def timed(cmd, timeout):
    t0 = time.perf_counter()
    p = run(cmd, timeout)
    return time.perf_counter() - t0, p.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def proc_status_kib(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_seconds(pid):
    """User + system CPU seconds the process has used so far (/proc/PID/stat fields 14 and 15)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Server:
    """One registry process on a fresh port and data directory; samples its memory while it runs."""

    def __init__(self, kind, workroot, berth_dll, timeout):
        self.kind, self.berth_dll, self.timeout = kind, berth_dll, timeout
        self.dir = tempfile.mkdtemp(prefix=kind + "-", dir=workroot)
        self.proc = None
        self.hwm_kib = self.rss_max_kib = 0
        self._stop = threading.Event()
        self._sampler = None

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.port = free_port()
        if self.kind == "distribution":
            cfg = os.path.join(self.dir, "config.yml")
            with open(cfg, "w") as f:
                f.write("version: 0.1\n"
                        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                        "storage:\n  cache:\n    blobdescriptor: inmemory\n"
                        "  filesystem:\n    rootdirectory: %s\n"
                        "http:\n  addr: 127.0.0.1:%d\n  secret: %s\n"
                        % (os.path.join(self.dir, "data"), self.port, uuid.uuid4().hex))
            cmd = ["/usr/bin/docker-registry", "serve", cfg]
        else:
            cmd = ["dotnet", self.berth_dll, "server", "--listen", self.host,
                   "--agent-listen", "127.0.0.1:%d" % free_port(),
                   "--data", os.path.join(self.dir, "data"), "--log-level", "Warning"]
        self.logfile = open(os.path.join(self.dir, "server.log"), "w")
        # Own session: a Ctrl+C in the terminal reaches us, not the server; we stop it ourselves.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._wait_ready()

    def _sample(self):
        while not self._stop.is_set():
            rss = proc_status_kib(self.proc.pid, "VmRSS")
            hwm = proc_status_kib(self.proc.pid, "VmHWM")
            if rss:
                self.rss_max_kib = max(self.rss_max_kib, rss)
            if hwm:
                self.hwm_kib = max(self.hwm_kib, hwm)
            self._stop.wait(0.1)

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def _wait_ready(self):
        ready_url = "http://%s/%s" % (self.host, "v2/" if self.kind == "distribution" else "_berth/health")
        deadline = time.monotonic() + min(self.timeout, 120)
        while True:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %d while starting:\n%s" % (self.kind, self.proc.returncode, self.log_tail()))
            try:
                if http_status(ready_url, timeout=2) == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise BenchError("%s did not answer %s in time:\n%s" % (self.kind, ready_url, self.log_tail()))
            time.sleep(0.1)
        status = http_status("http://%s/v2/" % self.host)
        if status == 404:
            raise BenchError("%s answers 404 on http://%s/v2/: no registry is served there (Berth's registry is "
                             "src/Berth.Registry; is this berth.dll built from a tree that has it?)" % (self.kind, self.host))
        if status == 401:
            raise BenchError("%s answers 401 on http://%s/v2/: this benchmark needs anonymous access "
                             "(start Berth without --registry-auth)" % (self.kind, self.host))
        if status != 200:
            raise BenchError("%s answers %d on http://%s/v2/, expected 200" % (self.kind, status, self.host))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            hwm = proc_status_kib(self.proc.pid, "VmHWM")
            if hwm:
                self.hwm_kib = max(self.hwm_kib, hwm)
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self._stop.set()
        if self._sampler:
            self._sampler.join(5)
        self.logfile.close()
        self.proc = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.targets = args.targets
        self.workroot = tempfile.mkdtemp(prefix="berth-bench-registry-")
        self.pullroot = tempfile.mkdtemp(prefix="berth-bench-pulls-", dir=args.pull_dir)
        self.servers, self.children, self.refs = [], [], set()
        self.image_key = "registry-push-pull-%dx%dMiB" % (args.layers, args.layer_mib)
        self.src = "berth-bench/registry-push-pull:%dx%dmib" % (args.layers, args.layer_mib)
        self.image_id = None
        self.run_id = uuid.uuid4().hex[:8]
        self.times = {t: {op: [] for op, _ in OPS} for t in self.targets}
        self.cpu = {t: {op: [] for op, _ in OPS} for t in self.targets}  # server CPU seconds per step
        self.mem = {t: [0, 0] for t in self.targets}  # VmHWM, max sampled VmRSS (KiB)
        self.notes = []

    # ---- image ---------------------------------------------------------------------------------

    def find_image(self):
        out = run(["docker", "images", "-q", "--no-trunc", "--filter", "label=%s=%s" % (LABEL, self.image_key)], 60).stdout.split()
        return out[0] if out else None

    def ensure_image(self):
        t = self.args.timeout
        image_id = self.find_image()
        if image_id:
            log("using cached image %s (%s)" % (image_id[7:19], self.src))
        else:
            ctx = tempfile.mkdtemp(prefix="context-", dir=self.workroot)
            log("building %s: %d layers x %d MiB of random bytes" % (self.src, self.args.layers, self.args.layer_mib))
            lines = ["FROM scratch", "LABEL %s=%s" % (LABEL, self.image_key)]
            for i in range(self.args.layers):
                with open(os.path.join(ctx, "layer%d.bin" % i), "wb") as f:
                    for _ in range(self.args.layer_mib):
                        f.write(os.urandom(1 << 20))
                lines.append("COPY layer%d.bin /layer%d.bin" % (i, i))
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write("\n".join(lines) + "\n")
            run(["docker", "build", "-q", "-t", self.src, ctx], max(t, 1200))
            shutil.rmtree(ctx, ignore_errors=True)
            image_id = self.find_image()
            if not image_id:
                raise BenchError("built %s but no image carries label %s=%s" % (self.src, LABEL, self.image_key))
        run(["docker", "tag", image_id, self.src], 60)
        self.image_id = image_id
        layers = run(["docker", "image", "inspect", "-f", "{{len .RootFS.Layers}} {{.Size}}", image_id], 60).stdout.split()
        self.image_bytes = int(layers[1])
        if int(layers[0]) != self.args.layers:
            raise BenchError("image %s has %s layers, expected %d" % (image_id, layers[0], self.args.layers))

    def image_present(self):
        return run(["docker", "image", "inspect", self.image_id], 60, check=False).returncode == 0

    def restore_src_tag(self):
        """The source tag is the cache; after a fresh pull the image comes back under a registry tag."""
        if self.image_id and self.image_present():
            run(["docker", "tag", self.image_id, self.src], 60)
            return True
        return False

    # ---- one repetition on one registry --------------------------------------------------------

    def measure(self, target, rep):
        a, t = self.args, self.args.timeout
        srv = Server(target, self.workroot, a.berth_dll, t)
        self.servers.append(srv)
        srv.start()
        name = "bench/%s-r%d" % (self.run_id, rep)
        ref_a, ref_b = "%s/%s-a:v1" % (srv.host, name), "%s/%s-b:v1" % (srv.host, name)
        times = self.times[target]
        cpu_mark = [proc_cpu_seconds(srv.proc.pid)]

        def record(op, dt):
            times[op].append(dt)
            now = proc_cpu_seconds(srv.proc.pid)
            self.cpu[target][op].append(now - cpu_mark[0])
            cpu_mark[0] = now

        def mark():
            # Write back what earlier steps left dirty (pulled layers, the other registry's blobs), so
            # that no step pays for the one before it.
            os.sync()
            cpu_mark[0] = proc_cpu_seconds(srv.proc.pid)

        run(["docker", "tag", self.src, ref_a], 60)
        self.refs.add(ref_a)
        mark()
        dt, out = timed(["docker", "push", ref_a], t)
        pushed = out.count(": Pushed")
        if pushed != a.layers:
            self.notes.append("%s rep %d push fresh: %d of %d layers said 'Pushed'" % (target, rep, pushed, a.layers))
        record("push_fresh", dt)

        run(["docker", "tag", self.src, ref_b], 60)
        self.refs.add(ref_b)
        mark()
        dt, out = timed(["docker", "push", ref_b], t)
        if ": Pushed" in out:
            self.notes.append("%s rep %d push present: some layers were uploaded again:\n%s" % (target, rep, out))
        record("push_present", dt)

        # Fresh pull: drop every tag of the image (and with them its layers), then pull one back.
        run(["docker", "rmi", "-f", self.image_id], t)
        if self.image_present():
            raise BenchError("image %s still present after docker rmi -f" % self.image_id)
        mark()
        dt, out = timed(["docker", "pull", ref_a], t)
        record("pull_fresh", dt)
        got = run(["docker", "image", "inspect", "-f", "{{.Id}}", ref_a], 60).stdout.strip()
        if got != self.image_id:
            raise BenchError("pulled %s is %s, pushed %s" % (ref_a, got, self.image_id))
        complete = out.count(": Pull complete")
        if complete != a.layers:
            self.notes.append("%s rep %d pull fresh: %d of %d layers said 'Pull complete'" % (target, rep, complete, a.layers))
        self.restore_src_tag()

        mark()
        dt, out = timed(["docker", "pull", ref_a], t)
        if "Image is up to date" not in out:
            self.notes.append("%s rep %d pull present: unexpected output:\n%s" % (target, rep, out))
        record("pull_present", dt)

        mark()
        record("pull_10", self.concurrent_pulls(srv, ref_a))

        srv.stop()
        self.mem[target][0] = max(self.mem[target][0], srv.hwm_kib)
        self.mem[target][1] = max(self.mem[target][1], srv.rss_max_kib)
        srv.remove()
        self.servers.remove(srv)
        run(["docker", "rmi", ref_a, ref_b], 60, check=False)  # untag only; the source tag keeps the image
        self.refs.difference_update((ref_a, ref_b))

    def concurrent_pulls(self, srv, ref):
        n, t = self.args.concurrency, self.args.timeout
        dirs = [os.path.join(self.pullroot, "p%d" % i) for i in range(n)]
        logs = [tempfile.TemporaryFile(mode="w+") for _ in range(n)]
        t0 = time.perf_counter()
        self.children = [subprocess.Popen(["skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + ref, "dir:" + d],
                                          stdin=subprocess.DEVNULL, stdout=logs[i], stderr=subprocess.STDOUT)
                         for i, d in enumerate(dirs)]
        deadline = time.monotonic() + t
        try:
            for p in self.children:
                p.wait(max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise BenchError("%d concurrent skopeo copies did not finish in %ds" % (n, t))
        dt = time.perf_counter() - t0
        try:
            for i, p in enumerate(self.children):
                if p.returncode != 0:
                    logs[i].seek(0)
                    raise BenchError("skopeo copy %d of %d exited %d:\n%s" % (i + 1, n, p.returncode, logs[i].read()[-3000:]))
                size = sum(os.path.getsize(os.path.join(dirs[i], f)) for f in os.listdir(dirs[i]))
                if size < self.args.layers * self.args.layer_mib << 20:
                    raise BenchError("skopeo copy %d wrote only %d bytes" % (i + 1, size))
        finally:
            self.children = []
            for f in logs:
                f.close()
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
        return dt

    # ---- the run -------------------------------------------------------------------------------

    def preflight(self):
        need = ["docker", "skopeo"] + (["dotnet"] if "berth" in self.targets else [])
        for tool in need:
            if not shutil.which(tool):
                raise BenchError("%s is not installed" % tool)
        if "distribution" in self.targets and not os.access("/usr/bin/docker-registry", os.X_OK):
            raise BenchError("/usr/bin/docker-registry is missing: apt-get install -y docker-registry")
        if "berth" in self.targets and not os.path.exists(self.args.berth_dll):
            if self.args.berth_dll != default_berth_dll():
                raise BenchError("%s does not exist" % self.args.berth_dll)
            log("building Berth (Release)")
            run(["dotnet", "build", "-c", "Release", "Berth.slnx"], 1800, cwd=REPO_ROOT)
        # Every registry must answer /v2/ before anything is built or pushed.
        for target in self.targets:
            srv = Server(target, self.workroot, self.args.berth_dll, self.args.timeout)
            self.servers.append(srv)
            try:
                srv.start()
            finally:
                srv.remove()
                self.servers.remove(srv)
        free = shutil.disk_usage(self.pullroot).free
        need_bytes = self.args.concurrency * self.args.layers * (self.args.layer_mib << 20) * 1.1
        if free < need_bytes:
            raise BenchError("%s has %d MiB free, the concurrent pulls need ~%d MiB (--pull-dir)"
                             % (self.pullroot, free >> 20, need_bytes / 2 ** 20))

    def execute(self):
        self.preflight()
        self.ensure_image()
        for rep in range(self.args.reps):
            order = self.targets if rep % 2 == 0 else self.targets[::-1]
            for target in order:
                log("rep %d/%d: %s" % (rep + 1, self.args.reps, target))
                self.measure(target, rep)
        self.report()

    def cleanup(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for srv in list(self.servers):
            srv.remove()
        try:
            restored = self.restore_src_tag() if self.image_id else True
            if not restored:
                log("note: the source image was lost mid-pull; the next run rebuilds it")
            for ref in sorted(self.refs):
                run(["docker", "rmi", ref], 60, check=False)
            if self.args.remove_image and self.image_id:
                run(["docker", "rmi", "-f", self.image_id], 120, check=False)
        except BenchError as e:
            log("cleanup: %s" % e)
        shutil.rmtree(self.pullroot, ignore_errors=True)
        shutil.rmtree(self.workroot, ignore_errors=True)

    def report(self):
        a = self.args
        cols = [TARGET_NAMES[t] for t in self.targets]
        both = len(self.targets) == 2
        head = "| %s, %d reps | %s |%s" % (time.strftime("%Y-%m-%d"), a.reps,
                                          " | ".join("%s median" % c for c in cols),
                                          " ratio %s / %s |" % (cols[1], cols[0]) if both else "")
        print()
        print(head)
        print("|---|" + "---|" * (len(cols) + (1 if both else 0)))
        def row(title, vals, unit_fmt):
            line = "| %s | %s |" % (title, " | ".join(unit_fmt % v for v in vals))
            if both:
                line += " %.2f× |" % (vals[1] / vals[0]) if vals[0] > 0 else " – |"
            print(line)

        for op, title in OPS:
            row(title, [statistics.median(self.times[t][op]) for t in self.targets], "%.2f s")
        for i, title in enumerate(["server peak memory (VmHWM, max over runs)", "server max sampled VmRSS (100 ms)"]):
            row(title, [self.mem[t][i] / 1024.0 for t in self.targets], "%.0f MiB")
        for op, title in OPS:
            row("server CPU, " + title, [statistics.median(self.cpu[t][op]) for t in self.targets], "%.2f s")
        print()
        print("image: %d layers x %d MiB random (%.0f MiB); each rep starts every registry afresh" %
              (a.layers, a.layer_mib, self.image_bytes / 2 ** 20))
        for t in self.targets:
            print("%s per rep: %s" % (TARGET_NAMES[t], "; ".join(
                "%s %s" % (op, " ".join("%.2f" % v for v in self.times[t][op])) for op, _ in OPS)))
            print("%s server CPU per rep: %s" % (TARGET_NAMES[t], "; ".join(
                "%s %s" % (op, " ".join("%.2f" % v for v in self.cpu[t][op])) for op, _ in OPS)))
        print(machine_info(self.targets, a.berth_dll))
        for n in self.notes:
            print("note: " + n)


def default_berth_dll():
    return os.path.join(REPO_ROOT, "src", "Berth.Cli", "bin", "Release", "net10.0", "berth.dll")


def machine_info(targets, berth_dll):
    def out(cmd):
        try:
            return run(cmd, 30).stdout.strip().splitlines()[0]
        except (BenchError, IndexError, OSError):
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) >> 20
    parts = ["machine: nproc %d (%s), %d GiB, Linux %s" % (os.cpu_count(), cpu, mem, platform.release()),
             "docker %s" % out(["docker", "version", "--format", "client {{.Client.Version}}, engine {{.Server.Version}}"]),
             out(["skopeo", "--version"])]
    if "distribution" in targets:
        parts.append(out(["/usr/bin/docker-registry", "--version"]))
    if "berth" in targets:
        parts.append("berth %s (git %s)" % (berth_dll, out(["git", "-C", os.path.dirname(berth_dll), "rev-parse", "--short", "HEAD"])))
    return "; ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="distribution,berth", help="comma list of distribution, berth")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--layer-mib", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=10, help="concurrent skopeo pulls")
    ap.add_argument("--timeout", type=int, default=600, help="seconds allowed to any one step")
    ap.add_argument("--berth-dll", default=default_berth_dll())
    ap.add_argument("--pull-dir", default=None,
                    help="where the concurrent pulls write (default /dev/shm when it has room, else the temp dir)")
    ap.add_argument("--remove-image", action="store_true", help="also remove the cached source image at the end")
    args = ap.parse_args()
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or any(t not in TARGET_NAMES for t in args.targets) or len(set(args.targets)) != len(args.targets):
        ap.error("--targets takes distribution and/or berth")
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.pull_dir is None:
        want = args.concurrency * args.layers * (args.layer_mib << 20) * 1.2
        args.pull_dir = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > want else None

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (cmd &)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    try:
        bench.execute()
    except BenchError as e:
        log("error: %s" % e)
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    else:
        rc = 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("cleaning up")
        bench.cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
