using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.UnitTests.Agents;

namespace Berth.UnitTests.Domain;

/// <summary>PlacementRules (the one validator of placement members) and placement through RunTask end to end.</summary>
public sealed class PlacementRulesTests
{
    private static async Task<EcsFixture> ClusterAsync(int instances)
    {
        var f = new EcsFixture();
        for (var i = 0; i < instances; i++)
        {
            var reg = EcsFixture.Registration(agentId: "agent-" + i, memory: 4096);
            reg.Hostname = "host-" + i;
            reg.Attributes["ecs.availability-zone"] = "zone-" + (i % 2);
            await f.Gateway.RegisterAsync(reg, CancellationToken.None);
        }
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 16));
        return f;
    }

    [Theory]
    [InlineData("""[{"type":"memberOf"}]""", "", "placementConstraints[0].expression", "must be specified")]
    [InlineData("""[{"type":"memberOf","expression":"   "}]""", "", "placementConstraints[0].expression", "must be specified")]
    [InlineData("""[{"type":"distinctInstance"},{"type":"memberOf","expression":"attribute:x =="}]""", "", "placementConstraints[1].expression", "value is missing")]
    [InlineData("""[{"type":"memberOf","expression":"colour == red"}]""", "", "placementConstraints[0].expression", "unknown subject 'colour'")]
    [InlineData("""[{"type":"memberOf","expression":"runningTasksCount in [1]"}]""", "", "placementConstraints[0].expression", "cannot be used")]
    [InlineData("""[{"type":"distinctInstance","expression":"attribute:x == y"}]""", "", "placementConstraints[0].expression", "distinctInstance")]
    [InlineData("""[{"expression":"attribute:x == y"}]""", "", "placementConstraints[0].type", "must be specified")]
    [InlineData("", """[{"type":"binpack"}]""", "placementStrategy[0].field", "binpack")]
    [InlineData("", """[{"type":"binpack","field":"disk"}]""", "placementStrategy[0].field", "'disk'")]
    [InlineData("", """[{"type":"spread"}]""", "placementStrategy[0].field", "spread")]
    [InlineData("", """[{"type":"random"},{"type":"spread","field":"zone"}]""", "placementStrategy[1].field", "'zone'")]
    [InlineData("", """[{"type":"spread","field":"attribute:"}]""", "placementStrategy[0].field", "attribute:NAME")]
    [InlineData("", """[{"field":"cpu"}]""", "placementStrategy[0].type", "must be specified")]
    public async Task RunTask_BadPlacementMember_InvalidParameterNamingTheMember(string constraints, string strategies, string member, string detail)
    {
        await using var f = await ClusterAsync(1);
        var body = """{"taskDefinition":"web" """
            + (constraints.Length > 0 ? $""","placementConstraints":{constraints}""" : "")
            + (strategies.Length > 0 ? $""","placementStrategy":{strategies}""" : "") + "}";
        var e = await f.CallFailsAsync("RunTask", body);
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Contains(member, e.Message, StringComparison.Ordinal);
        Assert.Contains(detail, e.Message, StringComparison.Ordinal);
        Assert.Equal(0, f.State.Tasks.Count);
    }

    [Fact]
    public async Task RunTask_TooManyConstraintsOrStrategies_Refused()
    {
        await using var f = await ClusterAsync(1);
        var eleven = string.Join(",", Enumerable.Repeat("""{"type":"distinctInstance"}""", 11));
        var e = await f.CallFailsAsync("RunTask", $$"""{"taskDefinition":"web","placementConstraints":[{{eleven}}]}""");
        Assert.Equal(("InvalidParameterException", true), (e.ErrorType, e.Message.StartsWith("placementConstraints:", StringComparison.Ordinal)));
        var six = string.Join(",", Enumerable.Repeat("""{"type":"binpack","field":"cpu"}""", 6));
        e = await f.CallFailsAsync("RunTask", $$"""{"taskDefinition":"web","placementStrategy":[{{six}}]}""");
        Assert.Equal(("InvalidParameterException", true), (e.ErrorType, e.Message.StartsWith("placementStrategy:", StringComparison.Ordinal)));

        // The task definition's constraints count towards the ten.
        var def = EcsFixture.Web(memory: 16);
        def.PlacementConstraints = Enumerable.Range(0, 4).Select(_ => new TaskDefinitionPlacementConstraint { Type = "memberOf", Expression = "attribute:ecs.os-type == linux" }).ToList();
        await f.AddTaskDefinitionAsync("constrained", 1, def);
        var seven = string.Join(",", Enumerable.Repeat("""{"type":"distinctInstance"}""", 7));
        e = await f.CallFailsAsync("RunTask", $$"""{"taskDefinition":"constrained","placementConstraints":[{{seven}}]}""");
        Assert.Contains("including the 4 of the task definition", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, f.State.Tasks.Count);
        var six2 = string.Join(",", Enumerable.Repeat("""{"type":"distinctInstance"}""", 6));
        await f.CallAsync("RunTask", $$"""{"taskDefinition":"constrained","placementConstraints":[{{six2}}]}""");
        Assert.Equal(1, f.State.Tasks.Count);
    }

    [Fact]
    public void Validate_ForAService_NamesTheMemberWithThePrefixAndReturnsSpecs()
    {
        var e = Assert.Throws<AwsException>(() => PlacementRules.Validate(
            [new PlacementConstraint { Type = "memberOf", Expression = "attribute:a == b" }],
            [new PlacementStrategy { Type = "spread", Field = "attribute:ecs.availability-zone" }, new PlacementStrategy { Type = "binpack", Field = "gpu" }],
            memberPrefix: "service."));
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.StartsWith("service.placementStrategy[1].field:", e.Message, StringComparison.Ordinal);

        var (constraints, strategies) = PlacementRules.Validate(
            [new PlacementConstraint { Type = "distinctInstance" }, new PlacementConstraint { Type = "memberOf", Expression = "task:group == service:db" }],
            [new PlacementStrategy { Type = "spread", Field = "instanceId" }, new PlacementStrategy { Type = "random", Field = "ignored" }]);
        Assert.Equal([new("distinctInstance", null), new("memberOf", "task:group == service:db")], constraints);
        Assert.Equal([new("spread", "instanceId"), new("random", "ignored")], strategies);
        Assert.Equal((0, 0), (PlacementRules.Validate(null, null).Constraints.Count, PlacementRules.Validate(null, null).Strategies.Count));
    }

    [Fact]
    public async Task RegisterTaskDefinition_BadPlacementConstraint_Refused()
    {
        await using var f = new EcsFixture();
        const string containers = """[{"name":"web","image":"busybox","memory":16}]""";
        var e = await f.CallFailsAsync("RegisterTaskDefinition", $$"""{"family":"x","containerDefinitions":{{containers}},"placementConstraints":[{"type":"memberOf","expression":"attribute:a ="}]}""");
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.StartsWith("placementConstraints[0].expression:", e.Message, StringComparison.Ordinal);
        await f.CallAsync("RegisterTaskDefinition", $$"""{"family":"x","containerDefinitions":{{containers}},"placementConstraints":[{"type":"memberOf","expression":"attribute:a == b"}]}""");
    }

    [Fact]
    public async Task RunTask_DistinctInstance_CountsTasksOfTheGroupFromEarlierCalls()
    {
        await using var f = await ClusterAsync(3);
        const string body = """{"taskDefinition":"web","group":"db","count":2,"placementConstraints":[{"type":"distinctInstance"}]}""";
        var first = await f.CallAsync("RunTask", body);
        Assert.Equal(2, first.GetProperty("tasks").GetArrayLength());
        var second = await f.CallAsync("RunTask", body);
        Assert.Equal(1, second.GetProperty("tasks").GetArrayLength());
        Assert.Equal("DistinctInstance placement constraint unsatisfied", second.GetProperty("failures")[0].GetProperty("reason").GetString());
        var instances = first.GetProperty("tasks").EnumerateArray().Concat(second.GetProperty("tasks").EnumerateArray())
            .Select(t => t.GetProperty("containerInstanceArn").GetString()).ToList();
        Assert.Equal(3, instances.Distinct().Count());

        // Another group is not held back by db's tasks.
        var other = await f.CallAsync("RunTask", """{"taskDefinition":"web","count":3,"placementConstraints":[{"type":"distinctInstance"}]}""");
        Assert.Equal(3, other.GetProperty("tasks").GetArrayLength());
    }

    [Fact]
    public async Task RunTask_MemberOfTaskGroupAndInstanceId_LandWhereTheExpressionSays()
    {
        await using var f = await ClusterAsync(3);
        var db = await f.CallAsync("RunTask", """{"taskDefinition":"web","group":"db","placementConstraints":[{"type":"memberOf","expression":"ec2InstanceId == host-2"}]}""");
        var dbInstance = db.GetProperty("tasks")[0].GetProperty("containerInstanceArn").GetString();
        var described = await f.CallAsync("DescribeContainerInstances", $$"""{"containerInstances":["{{dbInstance}}"]}""");
        Assert.Equal("host-2", described.GetProperty("containerInstances")[0].GetProperty("ec2InstanceId").GetString());

        var beside = await f.CallAsync("RunTask", """{"taskDefinition":"web","count":4,"placementConstraints":[{"type":"memberOf","expression":"task:group == db"}]}""");
        Assert.All(beside.GetProperty("tasks").EnumerateArray(), t => Assert.Equal(dbInstance, t.GetProperty("containerInstanceArn").GetString()));
        var away = await f.CallAsync("RunTask", """{"taskDefinition":"web","group":"cache","count":4,"placementConstraints":[{"type":"memberOf","expression":"not(task:group == db)"}]}""");
        Assert.Equal(4, away.GetProperty("tasks").GetArrayLength());
        Assert.All(away.GetProperty("tasks").EnumerateArray(), t => Assert.NotEqual(dbInstance, t.GetProperty("containerInstanceArn").GetString()));

        var nowhere = await f.CallAsync("RunTask", """{"taskDefinition":"web","placementConstraints":[{"type":"memberOf","expression":"task:group == nobody"}]}""");
        Assert.Equal(0, nowhere.GetProperty("tasks").GetArrayLength());
        Assert.Equal("MemberOf placement constraint unsatisfied", nowhere.GetProperty("failures")[0].GetProperty("reason").GetString());

        var filtered = await f.CallAsync("ListContainerInstances", """{"filter":"task:group == db and attribute:ecs.os-type == linux"}""");
        Assert.Equal([dbInstance], filtered.GetProperty("containerInstanceArns").EnumerateArray().Select(x => x.GetString()).ToArray());
        var bad = await f.CallFailsAsync("ListContainerInstances", """{"filter":"colour == red"}""");
        Assert.StartsWith("filter: ", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunTask_TaskDefinitionConstraints_ApplyBesideTheRequests()
    {
        await using var f = await ClusterAsync(4);
        var def = EcsFixture.Web(memory: 16);
        def.PlacementConstraints = [new TaskDefinitionPlacementConstraint { Type = "memberOf", Expression = "attribute:ecs.availability-zone == zone-1" }];
        await f.AddTaskDefinitionAsync("zoned", 1, def);
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"zoned","count":6,"placementConstraints":[{"type":"memberOf","expression":"ec2InstanceId != host-1"}]}""");
        var hosts = run.GetProperty("tasks").EnumerateArray().Select(t => HostOf(f, t)).Distinct().ToList();
        Assert.Equal(["host-3"], hosts); // zone-1 is host-1 and host-3; the request rules out host-1
    }

    [Fact]
    public async Task RunTask_RuntimePlatformCpuArchitecture_PlacesOnlyOnInstancesOfThatArchitecture()
    {
        await using var f = new EcsFixture();
        foreach (var (id, arch) in new[] { ("x", "x86_64"), ("a", "arm64") })
        {
            var reg = EcsFixture.Registration(agentId: "agent-" + id, memory: 4096);
            reg.Hostname = "host-" + id;
            reg.Attributes["ecs.cpu-architecture"] = arch;
            await f.Gateway.RegisterAsync(reg, CancellationToken.None);
        }
        var def = EcsFixture.Web(memory: 16);
        def.RuntimePlatform = new RuntimePlatform { OperatingSystemFamily = "LINUX", CpuArchitecture = "ARM64" };
        await f.AddTaskDefinitionAsync("arm", 1, def);

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"arm","count":4}""");

        Assert.Equal(["host-a"], run.GetProperty("tasks").EnumerateArray().Select(t => HostOf(f, t)).Distinct().ToList());
    }

    [Fact]
    public async Task RunTask_SpreadByZone_CountsTheGroupNotEveryTask()
    {
        await using var f = await ClusterAsync(4);
        // Zone 0 (host-0, host-2) fills up with another group's tasks first: spread of "api" ignores them.
        await f.CallAsync("RunTask", """{"taskDefinition":"web","group":"noise","count":8,"placementConstraints":[{"type":"memberOf","expression":"attribute:ecs.availability-zone == zone-0"}]}""");
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web","group":"api","count":6,"placementStrategy":[{"type":"spread","field":"attribute:ecs.availability-zone"},{"type":"spread","field":"instanceId"}]}""");
        var perHost = run.GetProperty("tasks").EnumerateArray().GroupBy(t => HostOf(f, t)).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, perHost.Count);
        Assert.True(perHost.Values.Max() - perHost.Values.Min() <= 1, string.Join(",", perHost));
    }

    private static string HostOf(EcsFixture f, JsonElement task)
    {
        var arn = task.GetProperty("containerInstanceArn").GetString()!;
        return f.State.ContainerInstances.All.Single(v => arn.EndsWith("/" + v.Value.Id, StringComparison.Ordinal)).Value.Ec2InstanceId!;
    }
}
