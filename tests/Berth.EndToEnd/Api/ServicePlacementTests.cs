using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;
using static Berth.EndToEnd.Api.ServiceSteps;

namespace Berth.EndToEnd.Api;

/// <summary>
/// <c>berth server</c> with three <c>berth agent</c> processes on the real Docker engine, one per availability
/// zone, each registering 512 MiB and 1024 CPU units, so where tasks land is decided by placement and memory.
/// </summary>
public sealed class ThreeZoneCluster : IAsyncLifetime
{
    public const string Cluster = "zones";
    public static readonly string[] ZoneNames = ["us-east-1a", "us-east-1b", "us-east-1c"];
    public BerthServer Server { get; private set; } = null!;
    public AwsCli Aws { get; private set; } = null!;
    public EcsHttp Http { get; private set; } = null!;
    /// <summary>Container instance ARN → availability zone.</summary>
    public Dictionary<string, string> Zones { get; private set; } = [];

    private readonly object _gate = new();
    private Task? _start;

    /// <summary>
    /// Starts the server and the agents on the first test's call, not in InitializeAsync: a test can skip when
    /// no Docker engine answers, which a class fixture cannot. A failed start fails every test that asks.
    /// </summary>
    public async Task EnsureStartedAsync()
    {
        await DockerCli.RequireAsync();
        lock (_gate)
        {
            _start ??= StartAsync();
        }
        await _start;
    }

    private async Task StartAsync()
    {
        Server = await BerthServer.StartAsync("server");
        Aws = new AwsCli(Server.Endpoint);
        Http = new EcsHttp(Server.Endpoint);
        await Aws.RunAsync("ecs", "create-cluster", "--cluster-name", Cluster);
        foreach (var zone in ZoneNames)
        {
            Server.StartAgent(Cluster, "agent-" + zone, "--availability-zone", zone, "--memory", "512", "--cpu", "1024");
        }
        var instances = await UntilAsync(() => InstancesAsync(Http, Cluster),
            i => i.Count == 3 && i.Values.All(x => x!["agentConnected"]!.GetValue<bool>()), "three connected agents", 90);
        Zones = instances.ToDictionary(i => i.Key, i => Zone(i.Value), StringComparer.Ordinal);
        Assert.Equal(ZoneNames, Zones.Values.Order());
    }

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    /// <summary>Deletes the service (force) and waits until every instance is empty again, so the next test starts from full budgets.</summary>
    public async Task RemoveAsync(string service)
    {
        var r = await Aws.TryRunAsync("ecs", "delete-service", "--cluster", Cluster, "--service", service, "--force");
        Assert.True(r.ExitCode == 0 || r.Stderr.Contains("ServiceNotFoundException", StringComparison.Ordinal), r.Stderr);
        await UntilAsync(() => InstancesAsync(Http, Cluster),
            i => i.Values.All(x => x["runningTasksCount"]!.GetValue<int>() == 0 && x["pendingTasksCount"]!.GetValue<int>() == 0
                && Remaining(x, "MEMORY") == Registered(x, "MEMORY")), "every instance to be empty", 60);
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}

/// <summary>Placement of service tasks across three agents: spread by zone, binpack on memory, distinctInstance, draining.</summary>
public sealed class ServicePlacementTests(ThreeZoneCluster cluster) : IClassFixture<ThreeZoneCluster>
{
    private const string C = ThreeZoneCluster.Cluster;
    private AwsCli Aws => cluster.Aws;
    private EcsHttp Http => cluster.Http;

    private Task StartAsync() => cluster.EnsureStartedAsync();

    private async Task<List<JsonNode>> StableTasksAsync(string service, int count)
    {
        await UntilStableAsync(Http, C, service);
        var live = (await TasksAsync(Http, C, service)).Where(IsLive).ToList();
        Assert.Equal(count, live.Count);
        Assert.All(live, t => Assert.Equal("RUNNING", t.Str("lastStatus")));
        return live;
    }

    [Fact]
    public async Task DefaultStrategy_SixTasks_TwoPerAvailabilityZone()
    {
        await StartAsync();
        try
        {
            await EcsScenario.RegisterAsync(Aws, "spread", Containers(memory: 32));
            var created = await Aws.RunAsync("ecs", "create-service", "--cluster", C, "--service-name", "spread", "--task-definition", "spread", "--desired-count", "6");
            Assert.Empty(created["service"]!["placementStrategy"]!.AsArray());
            var live = await StableTasksAsync("spread", 6);
            var perZone = live.GroupBy(t => cluster.Zones[t.Str("containerInstanceArn")]).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(ThreeZoneCluster.ZoneNames.ToDictionary(z => z, _ => 2), perZone);
        }
        finally
        {
            await cluster.RemoveAsync("spread");
        }
    }

    [Fact]
    public async Task BinpackOnMemory_FillsOneInstanceBeforeTheNext()
    {
        await StartAsync();
        try
        {
            // 100 MiB each on 512 MiB instances: five fit on one; spread would give 2/2/2.
            await EcsScenario.RegisterAsync(Aws, "packed", Containers(memory: 100));
            await Aws.RunAsync("ecs", "create-service", "--cluster", C, "--service-name", "packed", "--task-definition", "packed", "--desired-count", "6",
                "--placement-strategy", "type=binpack,field=memory");
            var live = await StableTasksAsync("packed", 6);
            var perInstance = live.GroupBy(t => t.Str("containerInstanceArn")).Select(g => g.Count()).OrderDescending().ToArray();
            Assert.Equal([5, 1], perInstance);
            var instances = await InstancesAsync(Http, C);
            Assert.Equal([12, 412, 512], instances.Values.Select(i => Remaining(i, "MEMORY")).Order().ToArray());
        }
        finally
        {
            await cluster.RemoveAsync("packed");
        }
    }

    [Fact]
    public async Task DistinctInstance_FourWantedOnThreeInstances_PlacesThreeAndSaysWhy()
    {
        await StartAsync();
        try
        {
            await EcsScenario.RegisterAsync(Aws, "distinct", Containers(memory: 32));
            await Aws.RunAsync("ecs", "create-service", "--cluster", C, "--service-name", "distinct", "--task-definition", "distinct", "--desired-count", "4",
                "--placement-constraints", "type=distinctInstance");
            const string unable = "(service distinct) was unable to place a task because no container instance met all of its requirements.";
            var service = await UntilServiceAsync(Http, C, "distinct",
                s => s["runningCount"]!.GetValue<int>() + s["pendingCount"]!.GetValue<int>() >= 3 && Events(s).Any(e => e.StartsWith(unable, StringComparison.Ordinal)),
                "three tasks and an unable-to-place event");
            // Three it stays: the scheduler looks again as tasks change and capacity appears, and must place no fourth.
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (watch.Elapsed < TimeSpan.FromSeconds(5))
            {
                var live = (await TasksAsync(Http, C, "distinct")).Where(IsLive).ToList();
                if (live.Count > 3 || live.Select(t => t.Str("containerInstanceArn")).Distinct().Count() != live.Count)
                {
                    Assert.Fail("live tasks: " + string.Join(" | ", live.Select(t => $"{t.Str("containerInstanceArn")} {t.Str("lastStatus")}"))
                    + "\nevents: " + string.Join(" | ", Events(await ServiceAsync(Http, C, "distinct")).Reverse()));
                }
                await Task.Delay(250);
            }
            service = await UntilServiceAsync(Http, C, "distinct", s => s["runningCount"]!.GetValue<int>() == 3, "three running tasks");
            Assert.Equal(4, service["desiredCount"]!.GetValue<int>());
            Assert.Equal("IN_PROGRESS", service["deployments"]![0]!.Str("rolloutState"));
            var placed = (await TasksAsync(Http, C, "distinct")).Where(IsLive).ToList();
            Assert.Equal(3, placed.Select(t => t.Str("containerInstanceArn")).Distinct().Count());
            Assert.DoesNotContain("(service distinct) has reached a steady state.", Events(service));
        }
        finally
        {
            await cluster.RemoveAsync("distinct");
        }
    }

    [Fact]
    public async Task DrainingAnInstance_MovesServiceTasks_LeavesRunTaskTasksAndKeepsTheCount()
    {
        await StartAsync();
        string? drained = null;
        string? solo = null;
        try
        {
            await EcsScenario.RegisterAsync(Aws, "drained", Containers(memory: 32));
            await EcsScenario.RegisterAsync(Aws, "solo", Containers(memory: 16));
            await Aws.RunAsync("ecs", "create-service", "--cluster", C, "--service-name", "drained", "--task-definition", "drained", "--desired-count", "3");
            var live = await StableTasksAsync("drained", 3);
            drained = live[0].Str("containerInstanceArn");
            var moved = live.Where(t => t.Str("containerInstanceArn") == drained).Select(t => t.Str("taskArn")).ToList();
            var started = await Aws.RunAsync("ecs", "start-task", "--cluster", C, "--task-definition", "solo", "--container-instances", drained);
            solo = started["tasks"]![0]!.Str("taskArn");
            await EcsScenario.WaitForStatusAsync(Aws, C, solo, "RUNNING");

            var sampler = new TaskSampler(Http, C, "drained", TimeSpan.FromMilliseconds(200));
            IReadOnlyList<TaskSample> samples;
            try
            {
                var r = await Aws.RunAsync("ecs", "update-container-instances-state", "--cluster", C, "--container-instances", drained, "--status", "DRAINING");
                Assert.Equal("DRAINING", r["containerInstances"]![0]!.Str("status"));
                await UntilAsync(() => TasksAsync(Http, C, "drained"),
                    ts => ts.Count(IsLive) == 3 && ts.Where(IsLive).All(t => t.Str("containerInstanceArn") != drained && t.Str("lastStatus") == "RUNNING"),
                    "the service's tasks to leave the draining instance", 60);
            }
            finally
            {
                samples = await sampler.StopAsync();
            }
            // Draining respects minimumHealthyPercent (100): replacements run before the old tasks stop.
            var low = samples.Where(s => s.Healthy < 3).ToList();
            Assert.True(low.Count == 0, "healthy below 3: " + string.Join(" | ", low.Select(s => $"{s.At.TotalSeconds:F1}s {s.Detail}")));
            Assert.True(samples.Max(s => s.Live) <= 6, "more than 200%");

            var service = await UntilStableAsync(Http, C, "drained");
            Assert.Equal(3, service["desiredCount"]!.GetValue<int>());
            Assert.Equal(3, service["runningCount"]!.GetValue<int>());
            var tasks = await TasksAsync(Http, C, "drained");
            foreach (var arn in moved)
            {
                var t = tasks.Single(x => x.Str("taskArn") == arn);
                Assert.Equal("STOPPED", t.Str("lastStatus"));
                Assert.Equal("ServiceSchedulerInitiated", t.Str("stopCode"));
                Assert.Equal("Container instance is draining", t.Str("stoppedReason"));
            }
            var instance = await UntilAsync(async () => (await InstancesAsync(Http, C))[drained],
                i => i["runningTasksCount"]!.GetValue<int>() == 1 && i["pendingTasksCount"]!.GetValue<int>() == 0, "the drained instance to hold only the RunTask task", 30);
            Assert.Equal("DRAINING", instance.Str("status"));
            var soloNow = await EcsScenario.DescribeAsync(Aws, C, solo);
            Assert.Equal("RUNNING", soloNow.Str("lastStatus"));
            Assert.Equal("RUNNING", soloNow.Str("desiredStatus"));
        }
        finally
        {
            if (drained is not null)
            {
                await Aws.RunAsync("ecs", "update-container-instances-state", "--cluster", C, "--container-instances", drained, "--status", "ACTIVE");
            }
            if (solo is not null)
            {
                await Aws.RunAsync("ecs", "stop-task", "--cluster", C, "--task", solo);
            }
            await cluster.RemoveAsync("drained");
        }
    }
}
