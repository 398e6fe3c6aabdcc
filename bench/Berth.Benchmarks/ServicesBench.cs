using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Berth.Benchmarks;

/// <summary>
/// The service scheduler at scale (issue 10): `services` services of `perService` tasks each are created
/// concurrently through CreateService, and the time runs until the sum of DescribeServices' runningCount
/// over all of them reaches services × perService — end to end through the API, the store, the service
/// scheduler, placement and the simulated agents' streams. Prints Markdown table rows.
/// </summary>
internal static class ServicesBench
{
    public static async Task<int> RunAsync(Uri endpoint, string cluster, string family, int services, int perService, int clients, int instances, int pid)
    {
        using var http = ControlPlaneBench.Client(endpoint, clients * 2);
        await ControlPlaneBench.WaitForInstancesAsync(http, cluster, instances, TimeSpan.FromMinutes(10));
        var names = Enumerable.Range(0, services).Select(i => "svc-" + i.ToString("D4", CultureInfo.InvariantCulture)).ToArray();
        var target = (long)services * perService;
        var cpuBefore = ControlPlaneBench.CpuSeconds(pid);

        using var sampler = new CancellationTokenSource();
        var peakDuring = 0.0;
        var sampling = Task.Run(async () =>
        {
            while (!sampler.IsCancellationRequested)
            {
                peakDuring = Math.Max(peakDuring, ControlPlaneBench.Memory(pid).Rss);
                await Task.Delay(250);
            }
        });

        var sw = Stopwatch.StartNew();
        var next = -1;
        var createLatencies = new List<double>[clients];
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
        {
            createLatencies[c] = [];
            int i;
            while ((i = Interlocked.Increment(ref next)) < services)
            {
                var t0 = Stopwatch.GetTimestamp();
                await ControlPlaneBench.CallAsync(http, "CreateService",
                    $$"""{"cluster":"{{cluster}}","serviceName":"{{names[i]}}","taskDefinition":"{{family}}","desiredCount":{{perService}}}""");
                createLatencies[c].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
        }));
        var created = sw.Elapsed;

        // Poll the sum of runningCount over every service, 10 services per DescribeServices call (ECS's limit).
        var batches = names.Chunk(10).Select(b => $$"""{"cluster":"{{cluster}}","services":[{{string.Join(',', b.Select(n => "\"" + n + "\""))}}]}""").ToArray();
        long running = 0, pending = 0;
        var polls = 0;
        var progress = new StringBuilder();
        var lastShown = TimeSpan.Zero;
        var limit = TimeSpan.FromMinutes(10);
        while (true)
        {
            long r = 0, p = 0;
            await Parallel.ForEachAsync(batches, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (body, _) =>
            {
                var d = await ControlPlaneBench.CallAsync(http, "DescribeServices", body);
                foreach (var s in d.GetProperty("services").EnumerateArray())
                {
                    Interlocked.Add(ref r, s.GetProperty("runningCount").GetInt32());
                    Interlocked.Add(ref p, s.GetProperty("pendingCount").GetInt32());
                }
            });
            running = r;
            pending = p;
            polls++;
            if (sw.Elapsed - lastShown >= TimeSpan.FromSeconds(5))
            {
                lastShown = sw.Elapsed;
                Console.Error.WriteLine($"{sw.Elapsed.TotalSeconds,6:F1} s: running {running:N0}, pending {pending:N0}, server RSS {ControlPlaneBench.Memory(pid).Rss:F0} MiB");
            }
            if (running >= target || sw.Elapsed > limit)
            {
                break;
            }
            await Task.Delay(250);
        }
        var allRunning = sw.Elapsed;
        var cpuAfter = ControlPlaneBench.CpuSeconds(pid);
        await sampler.CancelAsync();
        await sampling;
        var mem = ControlPlaneBench.Memory(pid);
        var lat = createLatencies.SelectMany(l => l).Order().ToArray();
        Console.WriteLine($"| instances | {instances:N0} |");
        Console.WriteLine($"| services × tasks | {services:N0} × {perService:N0} = {target:N0} ({clients} concurrent CreateService clients) |");
        Console.WriteLine($"| wall time, all CreateService answered | {created.TotalSeconds:F1} s (p50 {ControlPlaneBench.Pct(lat, 0.5):F1} ms, p99 {ControlPlaneBench.Pct(lat, 0.99):F1} ms) |");
        Console.WriteLine($"| wall time, CreateService → sum of runningCount = {target:N0} | {allRunning.TotalSeconds:F1} s{(running < target ? $" (NOT REACHED: {running:N0} running after {limit.TotalMinutes} min)" : "")} |");
        Console.WriteLine($"| placements/s (to RUNNING) | {running / allRunning.TotalSeconds:F0} |");
        Console.WriteLine($"| server CPU time during the run | {cpuAfter - cpuBefore:F1} s ({(cpuAfter - cpuBefore) / allRunning.TotalSeconds:F2} cores, {(cpuAfter - cpuBefore) * 1000 / Math.Max(1, running):F2} ms per task) |");
        Console.WriteLine($"| server RSS now / peak (VmHWM) | {mem.Rss:F0} MiB / {mem.Peak:F0} MiB |");
        Console.WriteLine($"| DescribeServices polls (100 calls each) | {polls} |");
        return running >= target ? 0 : 1;
    }
}
