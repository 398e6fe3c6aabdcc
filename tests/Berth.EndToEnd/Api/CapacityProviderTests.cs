using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;
using static Berth.EndToEnd.Api.ServiceSteps;

namespace Berth.EndToEnd.Api;

/// <summary>
/// <c>berth server</c> with two <c>berth agent --simulate 2</c> processes, one started with
/// <c>--capacity-provider cp-a</c> and one with <c>--capacity-provider cp-b</c> (four container instances, no Docker
/// needed), driven with the aws CLI: providers, cluster association, RunTask and a service under strategies, and
/// ECS's errors.
/// </summary>
public sealed class CapacityProviderTests : IAsyncLifetime
{
    private const string C = "capacity";
    private const string AsgArn = "arn:aws:autoscaling:us-east-1:000000000000:autoScalingGroup:4d3b2a1c-0f9e-4c8d-a7b6-5e4f3a2b1c0d:autoScalingGroupName/group-a";
    private BerthServer _server = null!;
    private AwsCli _aws = null!;
    private EcsHttp _http = null!;
    /// <summary>Container instance ARN → its capacity provider (the ecs.capacity-provider attribute).</summary>
    private Dictionary<string, string> _providerOf = [];

    public async ValueTask InitializeAsync()
    {
        _server = await BerthServer.StartAsync("server");
        _aws = new AwsCli(_server.Endpoint);
        _http = new EcsHttp(_server.Endpoint);
        await _aws.RunAsync("ecs", "create-cluster", "--cluster-name", C);
        _server.StartAgent(C, "sim-a", "--simulate", "2", "--capacity-provider", "cp-a", "--cpu", "4096", "--memory", "4096");
        _server.StartAgent(C, "sim-b", "--simulate", "2", "--capacity-provider", "cp-b", "--cpu", "4096", "--memory", "4096");
        var instances = await UntilAsync(() => InstancesAsync(_http, C),
            i => i.Count == 4 && i.Values.All(x => x!["agentConnected"]!.GetValue<bool>()), "four connected simulated instances", 90);
        _providerOf = instances.ToDictionary(i => i.Key,
            i => i.Value["attributes"]!.AsArray().First(a => a!.Str("name") == "ecs.capacity-provider")!.Str("value"), StringComparer.Ordinal);
        Assert.Equal(["cp-a", "cp-a", "cp-b", "cp-b"], _providerOf.Values.Order(StringComparer.Ordinal));
        await _aws.RunAsync("ecs", "register-task-definition", "--family", "small",
            "--container-definitions", """[{"name":"app","image":"busybox","memory":32,"cpu":32,"essential":true}]""");
    }

    public async ValueTask DisposeAsync()
    {
        _http?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private async Task CreateProvidersAsync()
    {
        var a = await _aws.RunAsync("ecs", "create-capacity-provider", "--name", "cp-a",
            "--auto-scaling-group-provider", $"autoScalingGroupArn={AsgArn},managedScaling={{status=ENABLED,targetCapacity=90}},managedTerminationProtection=DISABLED",
            "--tags", "key=team,value=infra");
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:capacity-provider/cp-a", a["capacityProvider"]!.Str("capacityProviderArn"));
        Assert.Equal(90, a["capacityProvider"]!["autoScalingGroupProvider"]!["managedScaling"]!["targetCapacity"]!.GetValue<int>());
        await _aws.RunAsync("ecs", "create-capacity-provider", "--name", "cp-b", "--auto-scaling-group-provider", "autoScalingGroupArn=group-b");
        var put = await _aws.RunAsync("ecs", "put-cluster-capacity-providers", "--cluster", C, "--capacity-providers", "cp-a", "cp-b", "FARGATE",
            "--default-capacity-provider-strategy", "capacityProvider=cp-b,weight=1");
        Assert.Equal(["cp-a", "cp-b", "FARGATE"], put["cluster"]!["capacityProviders"]!.AsArray().Select(p => p!.GetValue<string>()));
    }

    [Fact]
    public async Task RunTask_Base2Weight1To3_PlacesTasksInEcsProportionsOnEachProvidersInstances()
    {
        await CreateProvidersAsync();
        var run = await _aws.RunAsync("ecs", "run-task", "--cluster", C, "--task-definition", "small", "--count", "10",
            "--capacity-provider-strategy", "capacityProvider=cp-a,base=2,weight=1", "capacityProvider=cp-b,weight=3");
        Assert.Empty(run["failures"]!.AsArray());
        var arns = run["tasks"]!.AsArray().Select(t => t!.Str("taskArn")).ToArray();
        var described = await _aws.RunAsync(["ecs", "describe-tasks", "--cluster", C, "--tasks", .. arns]);
        var tasks = described["tasks"]!.AsArray().Select(t => t!).ToList();
        // Base 2 on cp-a, then the other 8 split 1:3: cp-a 2 + 2, cp-b 6.
        Assert.Equal(4, tasks.Count(t => t.Str("capacityProviderName") == "cp-a"));
        Assert.Equal(6, tasks.Count(t => t.Str("capacityProviderName") == "cp-b"));
        Assert.All(tasks, t => Assert.Equal(t.Str("capacityProviderName"), _providerOf[t.Str("containerInstanceArn")]));
        Assert.All(tasks, t => Assert.Equal("EC2", t.Str("launchType")));
        await UntilAsync(async () => (await _aws.RunAsync(["ecs", "describe-tasks", "--cluster", C, "--tasks", .. arns]))["tasks"]!.AsArray(),
            t => t.All(x => x!.Str("lastStatus") == "RUNNING"), "the ten tasks to run on the simulated instances");

        // The cluster's default strategy (cp-b) applies with neither a launch type nor a strategy.
        var byDefault = await _aws.RunAsync("ecs", "run-task", "--cluster", C, "--task-definition", "small", "--count", "2");
        Assert.All(byDefault["tasks"]!.AsArray(), t => Assert.Equal("cp-b", t!.Str("capacityProviderName")));

        // In use: cp-a cannot leave the cluster, and deleting it fails as ECS reports it.
        var leave = await _aws.TryRunAsync("ecs", "put-cluster-capacity-providers", "--cluster", C, "--capacity-providers", "cp-b",
            "--default-capacity-provider-strategy", "capacityProvider=cp-b,weight=1");
        Assert.NotEqual(0, leave.ExitCode);
        Assert.Contains("ResourceInUseException", leave.Stderr, StringComparison.Ordinal);
        Assert.Contains("The specified capacity provider is in use and cannot be removed.", leave.Stderr, StringComparison.Ordinal);
        var delete = await _aws.RunAsync("ecs", "delete-capacity-provider", "--capacity-provider", "cp-a");
        Assert.Equal("DELETE_FAILED", delete["capacityProvider"]!.Str("updateStatus"));
        Assert.Equal($"The capacity provider cannot be deleted because it is associated with cluster: {C}. Remove the capacity provider from the cluster and try again.",
            delete["capacityProvider"]!.Str("updateStatusReason"));

        // Once its tasks are stopped it can leave, and then be deleted.
        foreach (var arn in arns)
        {
            await _aws.RunAsync("ecs", "stop-task", "--cluster", C, "--task", arn);
        }
        await _aws.RunAsync("ecs", "put-cluster-capacity-providers", "--cluster", C, "--capacity-providers", "cp-b",
            "--default-capacity-provider-strategy", "capacityProvider=cp-b,weight=1");
        var deleted = await _aws.RunAsync("ecs", "delete-capacity-provider", "--capacity-provider", "cp-a");
        Assert.Equal("INACTIVE", deleted["capacityProvider"]!.Str("status"));
        var described2 = await _aws.RunAsync("ecs", "describe-capacity-providers", "--include", "TAGS");
        Assert.Equal(["FARGATE", "FARGATE_SPOT", "cp-b"], described2["capacityProviders"]!.AsArray().Select(p => p!.Str("name")));
    }

    [Fact]
    public async Task Service_WithStrategy_KeepsTheSplitAsItScales()
    {
        await CreateProvidersAsync();
        var created = await _aws.RunAsync("ecs", "create-service", "--cluster", C, "--service-name", "split", "--task-definition", "small",
            "--desired-count", "5", "--capacity-provider-strategy", "capacityProvider=cp-a,base=1,weight=1", "capacityProvider=cp-b,weight=1");
        Assert.Null(created["service"]!["launchType"]);
        Assert.Equal(2, created["service"]!["capacityProviderStrategy"]!.AsArray().Count);

        // 5 = base 1 on cp-a, then 4 alternating (cp-a first): cp-a 3, cp-b 2.
        await UntilSplitAsync("split", 3, 2);
        await _aws.RunAsync("ecs", "update-service", "--cluster", C, "--service", "split", "--desired-count", "3");
        // 3 = base 1, then cp-a, cp-b: the scale-in takes one from each.
        await UntilSplitAsync("split", 2, 1);
        await _aws.RunAsync("ecs", "update-service", "--cluster", C, "--service", "split", "--desired-count", "8");
        // 8 = base 1, then 7 alternating: cp-a 1 + 4, cp-b 3.
        await UntilSplitAsync("split", 5, 3);

        // cp-b is referenced by the service's strategy: it cannot leave the cluster.
        var leave = await _aws.TryRunAsync("ecs", "put-cluster-capacity-providers", "--cluster", C, "--capacity-providers", "cp-a",
            "--default-capacity-provider-strategy", "[]");
        Assert.Contains("ResourceInUseException", leave.Stderr, StringComparison.Ordinal);
        await _aws.RunAsync("ecs", "delete-service", "--cluster", C, "--service", "split", "--force");
    }

    private async Task UntilSplitAsync(string service, int a, int b)
        => await UntilAsync(() => TasksAsync(_http, C, service),
            tasks =>
            {
                var live = tasks.Where(t => t.Str("desiredStatus") == "RUNNING" && t.Str("lastStatus") == "RUNNING").ToList();
                return live.Count == a + b
                    && live.Count(t => t.Str("capacityProviderName") == "cp-a") == a
                    && live.Count(t => t.Str("capacityProviderName") == "cp-b") == b
                    && live.All(t => _providerOf[t.Str("containerInstanceArn")] == t.Str("capacityProviderName"))
                    && tasks.All(t => t.Str("desiredStatus") == "RUNNING" ? t.Str("lastStatus") == "RUNNING" : true);
            }, $"{a} tasks on cp-a and {b} on cp-b", 60);

    [Fact]
    public async Task Errors_AsEcsGivesThem()
    {
        // Unknown provider in a strategy, in a cluster's list; a reserved name; an unassociated provider.
        var unknown = await _aws.TryRunAsync("ecs", "run-task", "--cluster", C, "--task-definition", "small",
            "--capacity-provider-strategy", "capacityProvider=nope,weight=1");
        Assert.Contains("An error occurred (ClientException) when calling the RunTask operation: The specified capacity provider does not exist. Specify a valid name or ARN and try again.",
            unknown.Stderr, StringComparison.Ordinal);
        var cluster = await _aws.TryRunAsync("ecs", "create-cluster", "--cluster-name", "other", "--capacity-providers", "nope");
        Assert.Contains("(ClientException) when calling the CreateCluster operation: The specified capacity provider does not exist.", cluster.Stderr, StringComparison.Ordinal);
        var reserved = await _aws.TryRunAsync("ecs", "create-capacity-provider", "--name", "fargate-mine", "--auto-scaling-group-provider", "autoScalingGroupArn=g");
        Assert.Contains("(ClientException)", reserved.Stderr, StringComparison.Ordinal);
        await _aws.RunAsync("ecs", "create-capacity-provider", "--name", "loose", "--auto-scaling-group-provider", "autoScalingGroupArn=group-loose");
        var loose = await _aws.TryRunAsync("ecs", "run-task", "--cluster", C, "--task-definition", "small",
            "--capacity-provider-strategy", "capacityProvider=loose,weight=1");
        Assert.Contains("(InvalidParameterException) when calling the RunTask operation: The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster.",
            loose.Stderr, StringComparison.Ordinal);
        var both = await _aws.TryRunAsync("ecs", "run-task", "--cluster", C, "--task-definition", "small", "--launch-type", "EC2",
            "--capacity-provider-strategy", "capacityProvider=loose,weight=1");
        Assert.Contains("Specifying both a launch type and capacity provider strategy is not supported.", both.Stderr, StringComparison.Ordinal);
        // Tags on the capacity provider's ARN.
        var arn = "arn:aws:ecs:us-east-1:000000000000:capacity-provider/loose";
        await _aws.RunAsync("ecs", "tag-resource", "--resource-arn", arn, "--tags", "key=stage,value=test");
        var tags = await _aws.RunAsync("ecs", "list-tags-for-resource", "--resource-arn", arn);
        Assert.Equal("test", tags["tags"]!.AsArray().Single()!.Str("value"));
        var update = await _aws.RunAsync("ecs", "update-capacity-provider", "--name", "loose", "--auto-scaling-group-provider", "managedDraining=DISABLED");
        Assert.Equal(("DISABLED", "UPDATE_COMPLETE"), (update["capacityProvider"]!["autoScalingGroupProvider"]!.Str("managedDraining"), update["capacityProvider"]!.Str("updateStatus")));
    }
}
