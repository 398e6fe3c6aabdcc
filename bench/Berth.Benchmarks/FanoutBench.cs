using System.Collections.Concurrent;
using System.Diagnostics;
using Berth.Agent.Simulation;

namespace Berth.Benchmarks;

/// <summary>
/// Fan-out: with N simulated instances connected (hosted in this process, so the same clock times both
/// ends), one task per sampled instance is started, then stopped one at a time; the time from sending
/// StopTask to the owning instance receiving desired STOPPED is recorded.
/// </summary>
internal static class FanoutBench
{
    public static async Task<int> RunAsync(Uri endpoint, Uri agentEndpoint, string cluster, string family, int instances, int stops, int pid)
    {
        await using var fleet = new SimulatedFleet(new SimulatedFleetOptions
        {
            ServerUrl = endpoint,
            AgentEndpoint = agentEndpoint,
            Count = instances,
            Cluster = cluster,
            CpuUnits = 4096,
            MemoryMiB = 8192,
        });
        var waiting = new ConcurrentDictionary<string, TaskCompletionSource<long>>(StringComparer.Ordinal);
        fleet.DesiredChangeReceived += c =>
        {
            if (c.DesiredStatus == "STOPPED" && waiting.TryGetValue(c.TaskArn, out var tcs))
            {
                tcs.TrySetResult(c.ReceivedAtTimestamp);
            }
        };
        var sw = Stopwatch.StartNew();
        await fleet.StartAsync();
        using var http = ControlPlaneBench.Client(endpoint, 16);
        await ControlPlaneBench.WaitForInstancesAsync(http, cluster, instances, TimeSpan.FromMinutes(10));
        Console.Error.WriteLine($"{instances} simulated instances connected in {sw.Elapsed.TotalSeconds:F1} s");

        // One running task on each of `stops` instances (spread puts them on distinct instances).
        var arns = new List<string>();
        while (arns.Count < stops)
        {
            var r = await ControlPlaneBench.CallAsync(http, "RunTask", $$"""{"cluster":"{{cluster}}","taskDefinition":"{{family}}","count":10,"placementStrategy":[{"type":"spread","field":"instanceId"}]}""");
            arns.AddRange(r.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("taskArn").GetString()!));
        }
        arns = arns.Take(stops).ToList();
        await Task.Delay(TimeSpan.FromSeconds(2)); // let them settle into RUNNING: the stream is idle again

        var latencies = new List<double>();
        foreach (var arn in arns)
        {
            var tcs = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting[arn] = tcs;
            var sent = Stopwatch.GetTimestamp();
            await ControlPlaneBench.CallAsync(http, "StopTask", $$"""{"cluster":"{{cluster}}","task":"{{arn}}"}""");
            var received = await tcs.Task.WaitAsync(TimeSpan.FromSeconds(30));
            latencies.Add(Stopwatch.GetElapsedTime(sent, received).TotalMilliseconds);
        }
        var sorted = latencies.Order().ToArray();
        Console.WriteLine($"| instances connected | {instances:N0} |");
        Console.WriteLine($"| StopTask → owning agent receives STOPPED, {sorted.Length} stops | p50 {ControlPlaneBench.Pct(sorted, 0.5):F1} ms, p99 {ControlPlaneBench.Pct(sorted, 0.99):F1} ms, max {sorted[^1]:F1} ms |");
        if (pid > 0)
        {
            var m = ControlPlaneBench.Memory(pid);
            Console.WriteLine($"| server RSS now / peak | {m.Rss:F0} MiB / {m.Peak:F0} MiB |");
        }
        return 0;
    }
}
