using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;
using static Berth.EndToEnd.Api.ServiceSteps;

namespace Berth.EndToEnd.Api;

/// <summary>A DAEMON service following container instances as agents join and an instance drains.</summary>
public sealed class ServiceDaemonTests
{
    private const string C = "daemons";

    [Fact]
    public async Task Daemon_OneTaskPerInstance_FollowsJoiningAndDrainingInstances()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        using var http = new EcsHttp(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", C);
        server.StartAgent(C, "daemon-a", "--availability-zone", "us-east-1a", "--memory", "512", "--cpu", "1024");
        server.StartAgent(C, "daemon-b", "--availability-zone", "us-east-1b", "--memory", "512", "--cpu", "1024");
        var two = await UntilAsync(() => InstancesAsync(http, C), i => i.Count == 2 && i.Values.All(x => x["agentConnected"]!.GetValue<bool>()), "two agents", 90);

        await EcsScenario.RegisterAsync(aws, "everywhere", Containers());
        var created = await aws.RunAsync("ecs", "create-service", "--cluster", C, "--service-name", "everywhere", "--task-definition", "everywhere",
            "--scheduling-strategy", "DAEMON");
        Assert.Equal("DAEMON", created["service"]!.Str("schedulingStrategy"));
        await OnePerInstanceAsync(http, [.. two.Keys]);

        // A third agent joins: it gets one task, the others keep theirs.
        var before = (await TasksAsync(http, C, "everywhere")).Where(IsLive).Select(t => t.Str("taskArn")).Order().ToArray();
        server.StartAgent(C, "daemon-c", "--availability-zone", "us-east-1c", "--memory", "512", "--cpu", "1024");
        var three = await UntilAsync(() => InstancesAsync(http, C), i => i.Count == 3 && i.Values.All(x => x["agentConnected"]!.GetValue<bool>()), "the third agent", 90);
        var after = await OnePerInstanceAsync(http, [.. three.Keys]);
        Assert.Subset(after.Select(t => t.Str("taskArn")).ToHashSet(), before.ToHashSet());

        // One instance drains: its task stops and desiredCount follows; the other two keep theirs.
        var drained = two.Keys.First();
        var onDrained = after.Single(t => t.Str("containerInstanceArn") == drained).Str("taskArn");
        await aws.RunAsync("ecs", "update-container-instances-state", "--cluster", C, "--container-instances", drained, "--status", "DRAINING");
        var left = await OnePerInstanceAsync(http, [.. three.Keys.Where(k => k != drained)]);
        Assert.Equal(after.Select(t => t.Str("taskArn")).Where(a => a != onDrained).Order(), left.Select(t => t.Str("taskArn")).Order());
        var stopped = (await TasksAsync(http, C, "everywhere")).Single(t => t.Str("taskArn") == onDrained);
        Assert.Equal("STOPPED", stopped.Str("lastStatus"));
        Assert.Equal("ServiceSchedulerInitiated", stopped.Str("stopCode"));
        Assert.Equal("Container instance is draining", stopped.Str("stoppedReason"));

        var service = await ServiceAsync(http, C, "everywhere");
        Assert.Equal(2, service["desiredCount"]!.GetValue<int>());
        Assert.Equal(2, service["runningCount"]!.GetValue<int>());
        var events = Events(service).ToList();
        Assert.Equal(3, Sum(events, Started()));
        Assert.Equal(1, Sum(events, Stopped()));
        Assert.Equal("(service everywhere) has reached a steady state.", events[0]);
        Assert.Equal(2, (await DockerCli.ContainersAsync(server.Label, all: false)).Length);
    }

    /// <summary>Waits until the service is stable with exactly one live, RUNNING task on each of <paramref name="instances"/> and none elsewhere.</summary>
    private static async Task<List<JsonNode>> OnePerInstanceAsync(EcsHttp http, string[] instances)
    {
        await UntilServiceAsync(http, C, "everywhere", s => IsStable(s) && s["desiredCount"]!.GetValue<int>() == instances.Length,
            $"desiredCount {instances.Length} and stable");
        var live = await UntilAsync(async () => (await TasksAsync(http, C, "everywhere")).Where(IsLive).ToList(),
            l => l.Count == instances.Length && l.All(t => t.Str("lastStatus") == "RUNNING"), $"{instances.Length} running tasks", 30);
        Assert.Equal(instances.Order(), live.Select(t => t.Str("containerInstanceArn")).Order());
        return live;
    }
}
