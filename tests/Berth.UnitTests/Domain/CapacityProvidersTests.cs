using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Ecs;
using Berth.UnitTests.Agents;

namespace Berth.UnitTests.Domain;

public sealed class CapacityProvidersTests
{
    // The strategy of the issue and of ECS's documentation example: capacity provider A with base 2 and weight 1,
    // B with weight 3 — A runs the first two tasks, then "for every one task that's run using A, three use B".
    private static readonly List<CapacityProviderStrategyItem> Base2OneToThree =
    [
        new() { CapacityProvider = "cp-a", Base = 2, Weight = 1 },
        new() { CapacityProvider = "cp-b", Weight = 3 },
    ];

    [Fact]
    public void Split_Base2Weight1To3_BaseFirstThenOneInFourToTheBaseProvider_ForEveryCountFrom2To20()
    {
        for (var n = 2; n <= 20; n++)
        {
            var split = CapacityProviders.Split(Base2OneToThree, n);
            Assert.Equal(n, split.Count);
            Assert.Equal(["cp-a", "cp-a"], split.Take(2));
            var rest = n - 2;
            // After the base, the weighted tasks are 1:3: exact after every 4, and never more than one task off in between.
            var a = split.Skip(2).Count(p => p == "cp-a");
            var b = split.Skip(2).Count(p => p == "cp-b");
            Assert.Equal(rest / 4, a);
            Assert.Equal(rest - rest / 4, b);
            for (var k = 1; k <= rest; k++)
            {
                var prefixA = split.Skip(2).Take(k).Count(p => p == "cp-a");
                Assert.True(Math.Abs(prefixA - k / 4.0) < 1, $"n={n}: after {k} weighted tasks A has {prefixA}");
            }
        }
        // Totals for a few counts, as ECS's example reads: 6 tasks = 2 (base) + 1 + 3; 10 = 2 + 2 + 6; 20 = 2 + 4 + 14.
        Assert.Equal((3, 3), Count(CapacityProviders.Split(Base2OneToThree, 6)));
        Assert.Equal((4, 6), Count(CapacityProviders.Split(Base2OneToThree, 10)));
        Assert.Equal((6, 14), Count(CapacityProviders.Split(Base2OneToThree, 20)));
        Assert.Equal(["cp-a"], CapacityProviders.Split(Base2OneToThree, 1));
    }

    private static (int A, int B) Count(IReadOnlyList<string> split) => (split.Count(p => p == "cp-a"), split.Count(p => p == "cp-b"));

    [Fact]
    public void Split_ContinuesFromWhatTheProvidersAlreadyRun()
    {
        // A service with 3 tasks on A (its base of 2 plus one weighted) and 1 on B: the next four go B, B, A... as 1:3 demands.
        var next = CapacityProviders.Split(Base2OneToThree, 4, new Dictionary<string, int> { ["cp-a"] = 3, ["cp-b"] = 1 });
        Assert.Equal((0, 4), (next.Count(p => p == "cp-a"), next.Count(p => p == "cp-b")));
        // The base comes first when the base provider lost tasks: one replacement for A's base.
        Assert.Equal(["cp-a"], CapacityProviders.Split(Base2OneToThree, 1, new Dictionary<string, int> { ["cp-a"] = 1, ["cp-b"] = 6 }));
        // A single provider without a weight takes every task (ECS allows weight 0 when it is alone).
        Assert.Equal(["solo", "solo", "solo"], CapacityProviders.Split([new() { CapacityProvider = "solo" }], 3));
        // Equal weights alternate, in strategy order.
        Assert.Equal(["x", "y", "x", "y"], CapacityProviders.Split([new() { CapacityProvider = "x", Weight = 1 }, new() { CapacityProvider = "y", Weight = 1 }], 4));
    }

    [Fact]
    public void ScaleInByProvider_StopsFromTheProvidersAboveTheirShare()
    {
        // 5 tasks on each; scaling to 6 keeps A = 2 + 1, B = 3 (the split of 6), so two go from each.
        var tasks = Enumerable.Range(0, 10).Select(i => new TaskRecord
        {
            Id = "t" + i, Cluster = "c", Family = "f", Revision = 1, DesiredStatus = "RUNNING", LastStatus = "RUNNING",
            CapacityProviderName = i < 5 ? "cp-a" : "cp-b",
        }).ToList();
        var stop = ServicePlanner.ScaleInByProvider(tasks, Base2OneToThree, desired: 6, count: 4);
        Assert.Equal(4, stop.Count);
        Assert.Equal(2, stop.Count(t => t.CapacityProviderName == "cp-a"));
        Assert.Equal(2, stop.Count(t => t.CapacityProviderName == "cp-b"));
        // Scaling to 2 leaves the base: every B task goes.
        var toBase = ServicePlanner.ScaleInByProvider(tasks, Base2OneToThree, desired: 2, count: 8);
        Assert.Equal(5, toBase.Count(t => t.CapacityProviderName == "cp-b"));
    }

    private static async Task<EcsFixture> ClusterWithProvidersAsync()
    {
        var f = new EcsFixture();
        new CapacityProviderOperations(f.State, f.Arns, TimeProvider.System).Map(f.Api);
        new ClusterOperations(f.State, f.Arns).Map(f.Api);
        new AttributeOperations(f.State, f.Arns).Map(f.Api);
        // Two instances in each provider, and one in none.
        for (var i = 0; i < 5; i++)
        {
            var reg = EcsFixture.Registration(agentId: "agent-" + i, cpu: 4096, memory: 8192);
            if (i < 4)
            {
                reg.Attributes[CapacityProviders.Attribute] = i < 2 ? "cp-a" : "cp-b";
            }
            await f.Gateway.RegisterAsync(reg, CancellationToken.None);
        }
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 64));
        await f.CallAsync("CreateCapacityProvider", """{"name":"cp-a","autoScalingGroupProvider":{"autoScalingGroupArn":"arn:aws:autoscaling:us-east-1:000000000000:autoScalingGroup:0b5a8b2e-3d8c-4d5e-9a6f-2f1e0c9d8b7a:autoScalingGroupName/group-a"}}""");
        await f.CallAsync("CreateCapacityProvider", """{"name":"cp-b","autoScalingGroupProvider":{"autoScalingGroupArn":"group-b","managedScaling":{"status":"ENABLED","targetCapacity":80}},"tags":[{"key":"team","value":"x"}]}""");
        await f.CallAsync("PutClusterCapacityProviders", """{"cluster":"default","capacityProviders":["cp-a","cp-b"],"defaultCapacityProviderStrategy":[]}""");
        return f;
    }

    [Fact]
    public async Task RunTask_WithStrategy_PlacesEachProvidersShareOnItsOwnInstances()
    {
        await using var f = await ClusterWithProvidersAsync();
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web","count":10,"capacityProviderStrategy":[{"capacityProvider":"cp-a","base":2,"weight":1},{"capacityProvider":"cp-b","weight":3}]}""");
        var tasks = run.GetProperty("tasks").EnumerateArray().ToList();
        Assert.Equal(10, tasks.Count);
        Assert.Equal(4, tasks.Count(t => t.GetProperty("capacityProviderName").GetString() == "cp-a"));
        Assert.Equal(6, tasks.Count(t => t.GetProperty("capacityProviderName").GetString() == "cp-b"));
        foreach (var t in tasks)
        {
            Assert.Equal("EC2", t.GetProperty("launchType").GetString());
            var instance = f.State.ContainerInstances.Find("default/" + Berth.Core.Arns.NameOf(t.GetProperty("containerInstanceArn").GetString()!))!;
            Assert.Equal(t.GetProperty("capacityProviderName").GetString(), instance.Attributes.Single(a => a.Name == CapacityProviders.Attribute).Value);
        }
    }

    [Fact]
    public async Task RunTask_DefaultStrategy_AppliesWithoutLaunchTypeOrStrategy()
    {
        await using var f = await ClusterWithProvidersAsync();
        await f.CallAsync("PutClusterCapacityProviders", """{"cluster":"default","capacityProviders":["cp-a","cp-b"],"defaultCapacityProviderStrategy":[{"capacityProvider":"cp-b","weight":1}]}""");
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web","count":3}""");
        Assert.All(run.GetProperty("tasks").EnumerateArray(), t => Assert.Equal("cp-b", t.GetProperty("capacityProviderName").GetString()));
        // A launch type sets the default aside.
        var ec2 = await f.CallAsync("RunTask", """{"taskDefinition":"web","launchType":"EC2"}""");
        Assert.False(ec2.GetProperty("tasks")[0].TryGetProperty("capacityProviderName", out _));
    }

    [Fact]
    public async Task Strategy_UnknownUnassociatedOrMixedProviders_AreRefusedWithEcsErrors()
    {
        await using var f = await ClusterWithProvidersAsync();
        var unknown = await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","capacityProviderStrategy":[{"capacityProvider":"nope","weight":1}]}""");
        Assert.Equal(("ClientException", CapacityProviders.NotFoundMessage), (unknown.ErrorType, unknown.Message));
        await f.CallAsync("CreateCapacityProvider", """{"name":"cp-c","autoScalingGroupProvider":{"autoScalingGroupArn":"group-c"}}""");
        var loose = await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","capacityProviderStrategy":[{"capacityProvider":"cp-c","weight":1}]}""");
        Assert.Equal(("InvalidParameterException", CapacityProviders.NotAssociatedMessage), (loose.ErrorType, loose.Message));
        var mixed = await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","capacityProviderStrategy":[{"capacityProvider":"cp-a","weight":1},{"capacityProvider":"FARGATE","weight":1}]}""");
        Assert.Contains(CapacityProviders.MixMessage, mixed.Message, StringComparison.Ordinal);
        var both = await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","launchType":"EC2","capacityProviderStrategy":[{"capacityProvider":"cp-a","weight":1}]}""");
        Assert.StartsWith("Specifying both a launch type and capacity provider strategy is not supported.", both.Message, StringComparison.Ordinal);
        var twoBases = await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","capacityProviderStrategy":[{"capacityProvider":"cp-a","base":1},{"capacityProvider":"cp-b","base":1,"weight":1}]}""");
        Assert.Contains("base", twoBases.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CapacityProviderLifecycle_AsEcsAnswersIt()
    {
        await using var f = await ClusterWithProvidersAsync();
        var reserved = await f.CallFailsAsync("CreateCapacityProvider", """{"name":"ecs-mine","autoScalingGroupProvider":{"autoScalingGroupArn":"g"}}""");
        Assert.Equal("ClientException", reserved.ErrorType);
        var twice = await f.CallFailsAsync("CreateCapacityProvider", """{"name":"cp-a","autoScalingGroupProvider":{"autoScalingGroupArn":"other"}}""");
        Assert.Equal("ClientException", twice.ErrorType);
        var sameGroup = await f.CallFailsAsync("CreateCapacityProvider", """{"name":"cp-z","autoScalingGroupProvider":{"autoScalingGroupArn":"group-b"}}""");
        Assert.StartsWith("The specified Auto Scaling group ARN is already being used by another capacity provider.", sameGroup.Message, StringComparison.Ordinal);

        // Describe: FARGATE and FARGATE_SPOT first, paging, tags only on request.
        var page = await f.CallAsync("DescribeCapacityProviders", """{"maxResults":3}""");
        Assert.Equal(["FARGATE", "FARGATE_SPOT", "cp-a"], page.GetProperty("capacityProviders").EnumerateArray().Select(p => p.GetProperty("name").GetString()));
        var rest = await f.CallAsync("DescribeCapacityProviders", $$"""{"maxResults":3,"nextToken":"{{page.GetProperty("nextToken").GetString()}}"}""");
        Assert.Equal(["cp-b"], rest.GetProperty("capacityProviders").EnumerateArray().Select(p => p.GetProperty("name").GetString()));
        var b = (await f.CallAsync("DescribeCapacityProviders", """{"capacityProviders":["arn:aws:ecs:us-east-1:000000000000:capacity-provider/cp-b"],"include":["TAGS"]}""")).GetProperty("capacityProviders")[0];
        Assert.Equal("x", b.GetProperty("tags")[0].GetProperty("value").GetString());
        Assert.Equal(80, b.GetProperty("autoScalingGroupProvider").GetProperty("managedScaling").GetProperty("targetCapacity").GetInt32());
        Assert.Equal("EC2_AUTOSCALING", b.GetProperty("type").GetString());

        // In use by a task: it cannot leave the cluster; associated: delete fails as ECS reports it.
        await f.CallAsync("RunTask", """{"taskDefinition":"web","capacityProviderStrategy":[{"capacityProvider":"cp-a","weight":1}]}""");
        var inUse = await f.CallFailsAsync("PutClusterCapacityProviders", """{"cluster":"default","capacityProviders":["cp-b"],"defaultCapacityProviderStrategy":[]}""");
        Assert.Equal(("ResourceInUseException", CapacityProviders.InUseMessage), (inUse.ErrorType, inUse.Message));
        var failed = (await f.CallAsync("DeleteCapacityProvider", """{"capacityProvider":"cp-b"}""")).GetProperty("capacityProvider");
        Assert.Equal(("ACTIVE", "DELETE_FAILED"), (failed.GetProperty("status").GetString(), failed.GetProperty("updateStatus").GetString()));
        Assert.Equal(CapacityProviders.DeleteFailedReason("default"), failed.GetProperty("updateStatusReason").GetString());

        // Out of the cluster, it is deleted: INACTIVE, and no longer usable.
        await f.CallAsync("PutClusterCapacityProviders", """{"cluster":"default","capacityProviders":["cp-a"],"defaultCapacityProviderStrategy":[{"capacityProvider":"cp-a","weight":1}]}""");
        var deleted = (await f.CallAsync("DeleteCapacityProvider", """{"capacityProvider":"cp-b"}""")).GetProperty("capacityProvider");
        Assert.Equal(("INACTIVE", "DELETE_COMPLETE"), (deleted.GetProperty("status").GetString(), deleted.GetProperty("updateStatus").GetString()));
        Assert.Equal("ClientException", (await f.CallFailsAsync("PutClusterCapacityProviders", """{"cluster":"default","capacityProviders":["cp-a","cp-b"],"defaultCapacityProviderStrategy":[]}""")).ErrorType);
        var cluster = (await f.CallAsync("DescribeClusters", """{"clusters":["default"]}""")).GetProperty("clusters")[0];
        Assert.Equal(["cp-a"], cluster.GetProperty("capacityProviders").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal("cp-a", cluster.GetProperty("defaultCapacityProviderStrategy")[0].GetProperty("capacityProvider").GetString());
        // The default strategy must name providers of the cluster; CreateCluster checks its providers exist.
        var notListed = await f.CallFailsAsync("PutClusterCapacityProviders", """{"cluster":"default","capacityProviders":["cp-a"],"defaultCapacityProviderStrategy":[{"capacityProvider":"FARGATE","weight":1}]}""");
        Assert.Equal("InvalidParameterException", notListed.ErrorType);
        Assert.Equal(("ClientException", CapacityProviders.NotFoundMessage), await ErrorOf(f, "CreateCluster", """{"clusterName":"c2","capacityProviders":["nope"]}"""));
    }

    private static async Task<(string, string)> ErrorOf(EcsFixture f, string op, string json)
    {
        var e = await f.CallFailsAsync(op, json);
        return (e.ErrorType, e.Message);
    }

    [Fact]
    public async Task Ledger_KeepsEachProvidersCandidates_AndMovesAnInstanceWhoseAttributeChanges()
    {
        await using var f = await ClusterWithProvidersAsync();
        await using (var tx = await f.State.BeginAsync())
        {
            Assert.Equal(2, f.State.Ledger.Candidates("default", "cp-a").Count);
            Assert.Equal(2, f.State.Ledger.Candidates("default", "cp-b").Count);
            Assert.Equal(5, f.State.Ledger.Candidates("default").Count);
        }
        var arn = f.State.Ledger.Candidates("default", "cp-a")[0].Arn;
        await f.CallAsync("PutAttributes", JsonSerializer.Serialize(new { attributes = new[] { new { name = CapacityProviders.Attribute, value = "cp-b", targetType = "container-instance", targetId = arn } } }));
        await using (var tx = await f.State.BeginAsync())
        {
            Assert.Single(f.State.Ledger.Candidates("default", "cp-a"));
            Assert.Equal(3, f.State.Ledger.Candidates("default", "cp-b").Count);
            Assert.Contains(f.State.Ledger.Candidates("default", "cp-b"), c => c.Arn == arn);
        }
    }
}
