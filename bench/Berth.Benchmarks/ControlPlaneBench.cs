using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Berth.Benchmarks;

/// <summary>
/// Load generators for the control-plane benchmarks of issue 8, run against a real `berth server` with
/// simulated agents in another process (`berth agent --simulate N`). Each prints Markdown table rows.
/// </summary>
internal static class ControlPlaneBench
{
    public static HttpClient Client(Uri endpoint, int connections)
        => new(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        {
            BaseAddress = endpoint,
            Timeout = TimeSpan.FromMinutes(2),
        };

    public static async Task<JsonElement> CallAsync(HttpClient http, string op, string body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/") { Content = new StringContent(body, Encoding.UTF8) };
        req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-amz-json-1.1");
        req.Headers.Add("X-Amz-Target", "AmazonEC2ContainerServiceV20141113." + op);
        using var resp = await http.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        if (!resp.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{op} answered {(int)resp.StatusCode}: {text}");
        }
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    /// <summary>VmRSS and VmHWM (peak) of a process, in MiB.</summary>
    public static (double Rss, double Peak) Memory(int pid)
    {
        double rss = 0, peak = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
            }
        }
        return (rss, peak);
    }

    /// <summary>User + system CPU seconds a process has used (/proc/PID/stat, clock ticks of 1/100 s).</summary>
    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // utime and stime are fields 14 and 15 of the line: 11 and 12 counted from the state field.
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    public static async Task WaitForInstancesAsync(HttpClient http, string cluster, int count, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var d = await CallAsync(http, "DescribeClusters", $$"""{"clusters":["{{cluster}}"]}""");
            var c = d.GetProperty("clusters");
            var n = c.GetArrayLength() > 0 ? c[0].GetProperty("registeredContainerInstancesCount").GetInt32() : 0;
            if (n >= count)
            {
                Console.Error.WriteLine($"{n} container instances registered in {cluster} after {sw.Elapsed.TotalSeconds:F1} s");
                return;
            }
            if (sw.Elapsed > timeout)
            {
                throw new TimeoutException($"only {n} of {count} container instances registered in {cluster} after {timeout.TotalSeconds} s: are the simulated agents running?");
            }
            await Task.Delay(500);
        }
    }

    /// <summary>
    /// Placement throughput: `clients` loops call RunTask (count 10) until `tasks` tasks are placed, then
    /// wait until the cluster reports them all RUNNING.
    /// </summary>
    public static async Task<int> ScaleAsync(Uri endpoint, string cluster, string family, int tasks, int clients, int instances, int pid)
    {
        using var http = Client(endpoint, clients * 2);
        await WaitForInstancesAsync(http, cluster, instances, TimeSpan.FromMinutes(10));
        var placed = 0L;
        var failures = 0L;
        var calls = 0L;
        var latencies = new List<double>[clients];
        var peakDuring = 0.0;
        using var sampler = new CancellationTokenSource();
        var sampling = Task.Run(async () =>
        {
            while (!sampler.IsCancellationRequested)
            {
                peakDuring = Math.Max(peakDuring, Memory(pid).Rss);
                await Task.Delay(250);
            }
        });
        var cpuBefore = CpuSeconds(pid);
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async i =>
        {
            latencies[i] = [];
            while (Interlocked.Read(ref placed) < tasks)
            {
                var t0 = Stopwatch.GetTimestamp();
                var r = await CallAsync(http, "RunTask", $$"""{"cluster":"{{cluster}}","taskDefinition":"{{family}}","count":10}""");
                latencies[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                Interlocked.Add(ref placed, r.GetProperty("tasks").GetArrayLength());
                Interlocked.Add(ref failures, r.GetProperty("failures").GetArrayLength());
                Interlocked.Increment(ref calls);
            }
        }));
        var apiDone = sw.Elapsed;
        var running = 0;
        while (true)
        {
            var d = await CallAsync(http, "DescribeClusters", $$"""{"clusters":["{{cluster}}"]}""");
            running = d.GetProperty("clusters")[0].GetProperty("runningTasksCount").GetInt32();
            if (running >= placed || sw.Elapsed > apiDone + TimeSpan.FromMinutes(10))
            {
                break;
            }
            await Task.Delay(200);
        }
        var allRunning = sw.Elapsed;
        var cpu = CpuSeconds(pid) - cpuBefore;
        await sampler.CancelAsync();
        await sampling;
        var mem = Memory(pid);
        var all = latencies.SelectMany(l => l).Order().ToArray();
        Console.WriteLine($"| instances | {instances:N0} |");
        Console.WriteLine($"| tasks placed (RunTask count 10, {clients} clients) | {placed:N0} in {calls:N0} calls, {failures:N0} placement failures |");
        Console.WriteLine($"| wall time, API (all RunTask calls answered) | {apiDone.TotalSeconds:F1} s |");
        Console.WriteLine($"| wall time, until all RUNNING ({running:N0}) | {allRunning.TotalSeconds:F1} s |");
        Console.WriteLine($"| placements/s (API) | {placed / apiDone.TotalSeconds:F0} |");
        Console.WriteLine($"| placements/s (to RUNNING) | {placed / allRunning.TotalSeconds:F0} |");
        Console.WriteLine($"| RunTask latency p50 / p99 | {Pct(all, 0.5):F1} ms / {Pct(all, 0.99):F1} ms |");
        Console.WriteLine($"| server CPU time until all RUNNING | {cpu:F1} s ({cpu / allRunning.TotalSeconds:F2} cores, {cpu * 1000 / Math.Max(1, placed):F2} ms per task) |");
        Console.WriteLine($"| server RSS now / peak (VmHWM) | {mem.Rss:F0} MiB / {mem.Peak:F0} MiB |");
        return 0;
    }

    /// <summary>
    /// Flat cost: latency and rate of DescribeTasks (1 and 100 tasks), ListTasks (a page of 100 by cluster and
    /// status) and RunTask, against whatever the store holds.
    /// </summary>
    public static async Task<int> FlatAsync(Uri endpoint, string cluster, string family, int seconds, int concurrency, int pid)
    {
        using var http = Client(endpoint, concurrency * 2);
        var list = await CallAsync(http, "ListTasks", $$"""{"cluster":"{{cluster}}","desiredStatus":"STOPPED","maxResults":100}""");
        var arns = list.GetProperty("taskArns").EnumerateArray().Select(e => e.GetString()!).ToArray();
        if (arns.Length < 100)
        {
            Console.Error.WriteLine($"fewer than 100 stopped tasks in cluster {cluster}: run 'seed' first");
            return 1;
        }
        var one = JsonSerializer.Serialize(new Dictionary<string, object> { ["cluster"] = cluster, ["tasks"] = arns[..1] });
        var hundred = JsonSerializer.Serialize(new Dictionary<string, object> { ["cluster"] = cluster, ["tasks"] = arns });
        var cases = new (string Name, string Op, string Body)[]
        {
            ("DescribeTasks (1 task)", "DescribeTasks", one),
            ("DescribeTasks (100 tasks)", "DescribeTasks", hundred),
            ("ListTasks (page of 100, STOPPED)", "ListTasks", $$"""{"cluster":"{{cluster}}","desiredStatus":"STOPPED","maxResults":100}"""),
            ("ListTasks (page of 100, RUNNING)", "ListTasks", $$"""{"cluster":"{{cluster}}","desiredStatus":"RUNNING","maxResults":100}"""),
            ("RunTask (count 1)", "RunTask", $$"""{"cluster":"{{cluster}}","taskDefinition":"{{family}}"}"""),
        };
        foreach (var (name, op, body) in cases)
        {
            var (rate, lat) = await MeasureAsync(http, op, body, seconds, concurrency);
            Console.WriteLine($"| {name} | {rate:F0} req/s | p50 {Pct(lat, 0.5):F2} ms | p99 {Pct(lat, 0.99):F2} ms |");
        }
        // RunTask must have placed every task it was asked for: a placement failure is cheaper than a placement.
        var check = await CallAsync(http, "RunTask", $$"""{"cluster":"{{cluster}}","taskDefinition":"{{family}}"}""");
        if (check.GetProperty("failures").GetArrayLength() > 0)
        {
            Console.Error.WriteLine("warning: RunTask answered placement failures: the RunTask row counts them; give the simulated instances more memory");
        }
        if (pid > 0)
        {
            var m = Memory(pid);
            Console.WriteLine($"| server RSS now / peak | {m.Rss:F0} MiB / {m.Peak:F0} MiB | | |");
        }
        return 0;
    }

    private static Task<(double Rate, double[] Latencies)> MeasureAsync(HttpClient http, string op, string body, int seconds, int concurrency)
        => LoadAsync(() => CallAsync(http, op, body), seconds, concurrency);

    /// <summary>
    /// The load loop every rate benchmark shares: 20 warm-up calls, then <paramref name="concurrency"/> loops calling
    /// <paramref name="call"/> back to back for <paramref name="seconds"/>; the rate and every latency (ms, sorted).
    /// </summary>
    public static async Task<(double Rate, double[] Latencies)> LoadAsync(Func<Task> call, int seconds, int concurrency)
    {
        for (var i = 0; i < 20; i++)
        {
            await call();
        }
        var sw = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(seconds);
        var lat = new List<double>[concurrency];
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async i =>
        {
            lat[i] = [];
            while (sw.Elapsed < end)
            {
                var t0 = Stopwatch.GetTimestamp();
                await call();
                lat[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
        }));
        var all = lat.SelectMany(l => l).Order().ToArray();
        return (all.Length / sw.Elapsed.TotalSeconds, all);
    }

    public static double Pct(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
