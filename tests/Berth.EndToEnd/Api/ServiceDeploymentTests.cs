using Berth.EndToEnd.Harness;
using static Berth.EndToEnd.Api.ServiceSteps;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Rolling updates across three revisions on one <c>berth up</c> and real Docker, watched by a sampler
/// that reads the service's tasks five times a second: the healthy count never drops below
/// minimumHealthyPercent (rounded up) and the tasks never exceed maximumPercent (rounded down).
/// </summary>
/// <remarks>
/// The sampler counts from DescribeTasks, not from DescribeServices: runningCount counts every task whose
/// lastStatus is RUNNING, including those the scheduler is stopping (desired STOPPED) and unhealthy ones,
/// and pendingCount leaves out tasks in DEACTIVATING or STOPPING, so runningCount + pendingCount is neither
/// the healthy count nor the number of tasks that exist.
/// </remarks>
public sealed class ServiceDeploymentTests : LocalServerTest
{
    /// <summary>Defaults (100/200): four new tasks start beside the old ones, old ones stop as new ones turn healthy; 2 → 3 one after the other.</summary>
    [Fact]
    public Task RollingUpdate_Defaults100And200_NeverBelowFourHealthyOrAboveEight()
        => RollAsync("rolla", null, null, overlap: false);

    /// <summary>50/100: two old tasks stop before any new one starts; revision 3 arrives while 2 is still rolling out.</summary>
    [Fact]
    public Task RollingUpdate_50And100_NeverBelowTwoHealthyOrAboveFour_EvenWithADeploymentOnTopOfAnother()
        => RollAsync("rollb", 50, 100, overlap: true);

    private async Task RollAsync(string name, int? minPercent, int? maxPercent, bool overlap)
    {
        const int desired = 4;
        for (var rev = 1; rev <= 3; rev++)
        {
            await EcsScenario.RegisterAsync(Aws, name, Containers(rev: rev.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
        string[] config = minPercent is null ? [] : ["--deployment-configuration", $"minimumHealthyPercent={minPercent},maximumPercent={maxPercent}"];
        var created = await Aws.RunAsync(["ecs", "create-service", "--cluster", Cluster, "--service-name", name, "--task-definition", name + ":1", "--desired-count", "4", .. config]);
        var dc = created["service"]!["deploymentConfiguration"]!;
        var min = dc["minimumHealthyPercent"]!.GetValue<int>();
        var max = dc["maximumPercent"]!.GetValue<int>();
        Assert.Equal(minPercent ?? 100, min);
        Assert.Equal(maxPercent ?? 200, max);
        var floor = (int)Math.Ceiling(desired * min / 100.0);
        var ceiling = (int)Math.Floor(desired * max / 100.0);
        await UntilStableAsync(Http, Cluster, name);

        var sampler = new TaskSampler(Http, Cluster, name, TimeSpan.FromMilliseconds(200));
        IReadOnlyList<TaskSample> samples;
        try
        {
            var second = (await Aws.RunAsync("ecs", "update-service", "--cluster", Cluster, "--service", name, "--task-definition", name + ":2"))["service"]!["deployments"]![0]!.Str("id");
            if (overlap)
            {
                // Revision 3 once revision 2 has a task running: three deployments at once for a while.
                await UntilAsync(() => TasksAsync(Http, Cluster, name),
                    ts => ts.Any(t => t.Str("startedBy") == second && t.Str("lastStatus") == "RUNNING"), $"a running task of {name}:2", 60);
            }
            else
            {
                await UntilServiceAsync(Http, Cluster, name, s => IsStable(s) && s["deployments"]![0]!.Str("id") == second, $"{name}:2 to be stable");
            }
            var third = (await Aws.RunAsync("ecs", "update-service", "--cluster", Cluster, "--service", name, "--task-definition", name + ":3"))["service"]!["deployments"]![0]!.Str("id");
            var done = await UntilServiceAsync(Http, Cluster, name, s => IsStable(s) && s["deployments"]![0]!.Str("id") == third, $"{name}:3 to be stable", 120);
            Assert.Equal($"ECS deployment {third} completed.", done["deployments"]![0]!.Str("rolloutStateReason"));
        }
        finally
        {
            samples = await sampler.StopAsync();
        }

        Assert.True(samples.Count >= 10, $"only {samples.Count} samples");
        var low = samples.Where(s => s.Healthy < floor).ToList();
        Assert.True(low.Count == 0, $"healthy below {floor}: " + string.Join(" | ", low.Select(s => $"{s.At.TotalSeconds:F1}s {s.Healthy} healthy: {s.Detail}")));
        var high = samples.Where(s => s.Live > ceiling).ToList();
        Assert.True(high.Count == 0, $"more than {ceiling} tasks: " + string.Join(" | ", high.Select(s => $"{s.At.TotalSeconds:F1}s {s.Live} live: {s.Detail}")));
        // The sampler watched the change itself: some samples held tasks of two revisions at once.
        Assert.Contains(samples, s => s.LiveByRevision.Count >= 2);

        var service = await ServiceAsync(Http, Cluster, name);
        Assert.EndsWith($"task-definition/{name}:3", service.Str("taskDefinition"), StringComparison.Ordinal);
        var deployment = Assert.Single(service["deployments"]!.AsArray())!;
        Assert.Equal("PRIMARY", deployment.Str("status"));
        Assert.Equal("COMPLETED", deployment.Str("rolloutState"));
        var all = await TasksAsync(Http, Cluster, name);
        var live = all.Where(IsLive).ToList();
        Assert.Equal(desired, live.Count);
        Assert.All(live, t =>
        {
            Assert.EndsWith($"task-definition/{name}:3", t.Str("taskDefinitionArn"), StringComparison.Ordinal);
            Assert.Equal("RUNNING", t.Str("lastStatus"));
            Assert.Equal(deployment.Str("id"), t.Str("startedBy"));
        });
        var events = Events(service).ToList();
        Assert.Equal("(service " + name + ") has reached a steady state.", events[0]);
        Assert.Contains($"(service {name}) (deployment {deployment.Str("id")}) deployment completed.", events);
        // Every old task was stopped by the scheduler; none failed.
        var stopped = all.Where(t => !IsLive(t)).ToList();
        if (!overlap)
        {
            Assert.Equal(8, stopped.Count);
        }
        // With overlap: the four of revision 1 and at least the running one of revision 2.
        Assert.True(stopped.Count >= 5, $"{stopped.Count} stopped");
        Assert.All(stopped, t => Assert.Equal("ServiceSchedulerInitiated", t.Str("stopCode")));
    }
}
