using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;
using Berth.Benchmarks;

// API throughput with a large store.
//   seed --data DIR [--tasks 10000]      write simulated STOPPED tasks straight into DIR/state.db (berth not running)
//   load --endpoint URL [--seconds 10] [--concurrency 8] [--pid PID]
//                                        DescribeTasks (100 tasks a call) and ListTasks (100 a page) per second,
//                                        and the server's resident memory when --pid is given
// The SQLite store alone, no server:
//   store [--writers 1,8,64] [--seconds 5] [--readers 0] [--doc-bytes 1024] [--data DIR]
//                                        commits/s with N concurrent writers of ~1 KiB documents (StoreBench.cs)
return args.FirstOrDefault() switch
{
    "seed" => await SeedAsync(Arg("--data", ".berth-bench"), int.Parse(Arg("--tasks", "10000"), System.Globalization.CultureInfo.InvariantCulture)),
    "load" => await LoadAsync(new Uri(Arg("--endpoint", "http://127.0.0.1:4566")), int.Parse(Arg("--seconds", "10"), System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(Arg("--concurrency", "8"), System.Globalization.CultureInfo.InvariantCulture), Arg("--pid", "")),
    "scale" => await ControlPlaneBench.ScaleAsync(new Uri(Arg("--endpoint", "http://127.0.0.1:4566")), Arg("--cluster", "bench"), Arg("--family", "bench-sim"),
        Int("--tasks", 100_000), Int("--clients", 32), Int("--instances", 5000), Int("--pid", 0)),
    "flat" => await ControlPlaneBench.FlatAsync(new Uri(Arg("--endpoint", "http://127.0.0.1:4566")), Arg("--cluster", "bench-api"), Arg("--family", "bench-api"),
        Int("--seconds", 10), Int("--concurrency", 8), Int("--pid", 0)),
    "store" => await Berth.Benchmarks.StoreBench.RunAsync(Arg("--data", Path.GetTempPath()),
        Arg("--writers", "1,8,64").Split(',').Select(w => int.Parse(w, System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        int.Parse(Arg("--seconds", "5"), System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(Arg("--readers", "0"), System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(Arg("--doc-bytes", "1024"), System.Globalization.CultureInfo.InvariantCulture)),
    "services" => await ServicesBench.RunAsync(new Uri(Arg("--endpoint", "http://127.0.0.1:4566")), Arg("--cluster", "bench"), Arg("--family", "bench-svc"),
        Int("--services", 1000), Int("--per-service", 100), Int("--clients", 32), Int("--instances", 5000), Int("--pid", 0)),
    "fanout" => await FanoutBench.RunAsync(new Uri(Arg("--endpoint", "http://127.0.0.1:4566")), new Uri(Arg("--agent-endpoint", "http://127.0.0.1:4567")),
        Arg("--cluster", "fanout"), Arg("--family", "bench-fan"), Int("--instances", 5000), Int("--stops", 500), Int("--pid", 0)),
    "sigv4" => await SigV4Bench.RunAsync(new Uri(Arg("--endpoint-none", "http://127.0.0.1:4770")), new Uri(Arg("--endpoint-sigv4", "http://127.0.0.1:4772")),
        Arg("--key", ""), Arg("--secret", ""), Int("--seconds", 5), Int("--concurrency", 8), Int("--rounds", 5)),
    "sigv4-verify" => SigV4VerifyBench.Run(Int("--iterations", 200_000), Int("--body-bytes", 100)) + SigV4VerifyBench.Run(Int("--iterations", 200_000), Int("--body-bytes", 8000)),
    _ => Usage(),
};

int Int(string name, int fallback) => int.Parse(Arg(name, fallback.ToString(System.Globalization.CultureInfo.InvariantCulture)), System.Globalization.CultureInfo.InvariantCulture);

string Arg(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

static int Usage()
{
    Console.Error.WriteLine("usage: seed --data DIR [--tasks N] | load --endpoint URL [--seconds S] [--concurrency C] [--pid PID]");
    Console.Error.WriteLine("       scale --endpoint URL --pid PID [--cluster bench] [--family bench-sim] [--tasks 100000] [--clients 32] [--instances 5000]");
    Console.Error.WriteLine("       flat --endpoint URL --pid PID [--cluster bench-api] [--family bench-api] [--seconds 10] [--concurrency 8]");
    Console.Error.WriteLine("       services --endpoint URL --pid PID [--cluster bench] [--family bench-svc] [--services 1000] [--per-service 100] [--clients 32] [--instances 5000]");
    Console.Error.WriteLine("       fanout --endpoint URL --agent-endpoint URL --pid PID [--instances 5000] [--stops 500] [--cluster fanout] [--family bench-fan]");
    Console.Error.WriteLine("       store [--writers 1,8,64] [--seconds S] [--readers R] [--doc-bytes B] [--data DIR]");
    Console.Error.WriteLine("       sigv4 --endpoint-none URL --endpoint-sigv4 URL --key AKID --secret SECRET [--seconds 5] [--concurrency 8] [--rounds 5]");
    return 2;
}

static async Task<int> SeedAsync(string data, int count)
{
    const string cluster = "bench-api";
    var arns = new Arns(new BerthIdentity());
    await using var store = SqliteStateStore.Open(Path.Combine(data, "state.db"));
    var state = new EcsState(store);
    await state.LoadAsync();
    var now = DateTimeOffset.UtcNow;
    var tdArn = arns.TaskDefinition("bench-api", 1);
    await using (var tx = await state.BeginAsync())
    {
        tx.Put(state.Clusters, cluster, Clusters.New(cluster));
        tx.Put(state.TaskDefinitions, EcsState.TaskDefinitionId("bench-api", 1), new StoredTaskDefinition
        {
            Definition = new TaskDefinition
            {
                TaskDefinitionArn = tdArn, Family = "bench-api", Revision = 1, Status = "ACTIVE",
                ContainerDefinitions = [new ContainerDefinition { Name = "main", Image = "berth-test/busybox:latest", Memory = 16, Essential = true }],
            },
        });
        await tx.CommitAsync();
    }
    for (var done = 0; done < count;)
    {
        await using var tx = await state.BeginAsync();
        for (var i = 0; i < 500 && done < count; i++, done++)
        {
            var id = Guid.NewGuid().ToString("N");
            tx.Put(state.Tasks, EcsState.ScopedId(cluster, id), new TaskRecord
            {
                Id = id, Cluster = cluster, Family = "bench-api", Revision = 1,
                LastStatus = "STOPPED", DesiredStatus = "STOPPED", LaunchType = "EC2", Group = "family:bench-api",
                StartedBy = "bench", Cpu = "0", Memory = "16", CreatedAt = now, StartedAt = now, StoppedAt = now,
                StopCode = "UserInitiated", StoppedReason = "bench seed", Version = 3,
                Containers = [new ContainerRecord { Name = "main", Uuid = Guid.NewGuid().ToString("D"), Image = "berth-test/busybox:latest", LastStatus = "STOPPED", ExitCode = 0, RuntimeId = id + id }],
                Overrides = new OverridesRecord { Containers = [new ContainerOverrideRecord { Name = "main" }] },
            });
        }
        await tx.CommitAsync();
    }
    Console.WriteLine($"seeded {count} stopped tasks in cluster {cluster} ({Path.GetFullPath(data)})");
    return 0;
}

static async Task<int> LoadAsync(Uri endpoint, int seconds, int concurrency, string pid)
{
    using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency * 2 }) { BaseAddress = endpoint };
    var list = await CallAsync(http, "ListTasks", """{"cluster":"bench-api","desiredStatus":"STOPPED","maxResults":100}""");
    using var listDoc = JsonDocument.Parse(list);
    var taskArns = listDoc.RootElement.GetProperty("taskArns").EnumerateArray().Select(e => e.GetString()!).ToArray();
    if (taskArns.Length == 0)
    {
        Console.Error.WriteLine("no tasks in cluster bench-api: run 'seed' first");
        return 1;
    }
    var describe = JsonSerializer.Serialize(new Dictionary<string, object> { ["cluster"] = "bench-api", ["tasks"] = taskArns });
    foreach (var (name, op, body) in new[]
    {
        ("DescribeTasks (100 tasks)", "DescribeTasks", describe),
        ("ListTasks (page of 100)", "ListTasks", """{"cluster":"bench-api","desiredStatus":"STOPPED","maxResults":100}"""),
    })
    {
        var rate = await MeasureAsync(http, op, body, seconds, concurrency);
        Console.WriteLine($"| {name} | {rate:F0} req/s |");
    }
    if (int.TryParse(pid, out var p))
    {
        var status = await File.ReadAllLinesAsync($"/proc/{p}/status");
        Console.WriteLine($"| server memory | {string.Join(", ", status.Where(l => l.StartsWith("VmRSS", StringComparison.Ordinal) || l.StartsWith("VmHWM", StringComparison.Ordinal)).Select(l => System.Text.RegularExpressions.Regex.Replace(l, @"\s+", " ")))} |");
    }
    return 0;
}

static async Task<double> MeasureAsync(HttpClient http, string op, string body, int seconds, int concurrency)
{
    // Warm up, then count completed calls in the window.
    for (var i = 0; i < 50; i++)
    {
        await CallAsync(http, op, body);
    }
    var sw = Stopwatch.StartNew();
    var end = TimeSpan.FromSeconds(seconds);
    long done = 0;
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        while (sw.Elapsed < end)
        {
            await CallAsync(http, op, body);
            Interlocked.Increment(ref done);
        }
    }));
    return done / sw.Elapsed.TotalSeconds;
}

static async Task<string> CallAsync(HttpClient http, string op, string body)
    => (await ControlPlaneBench.CallAsync(http, op, body)).GetRawText();
