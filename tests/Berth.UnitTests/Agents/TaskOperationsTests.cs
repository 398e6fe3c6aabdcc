using System.Text.Json;
using Berth.ControlPlane.Domain;

namespace Berth.UnitTests.Agents;

public sealed class TaskOperationsTests
{
    private static async Task<EcsFixture> WithInstanceAsync(long memory = 1024)
    {
        var f = new EcsFixture();
        await f.Gateway.RegisterAsync(EcsFixture.Registration(memory: memory), CancellationToken.None);
        return f;
    }

    [Fact]
    public async Task RunTask_MoreThanFits_PlacesSomeAndFailsRestWithResourceMemory()
    {
        await using var f = await WithInstanceAsync(memory: 1000);
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 400));

        var r = await f.CallAsync("RunTask", """{"taskDefinition":"web","count":3,"startedBy":"me"}""");

        Assert.Equal(2, r.GetProperty("tasks").GetArrayLength());
        var failure = r.GetProperty("failures")[0];
        Assert.Equal("RESOURCE:MEMORY", failure.GetProperty("reason").GetString());
        var t = r.GetProperty("tasks")[0];
        Assert.Equal("PROVISIONING", t.GetProperty("lastStatus").GetString());
        Assert.Equal("RUNNING", t.GetProperty("desiredStatus").GetString());
        Assert.Equal("family:web", t.GetProperty("group").GetString());
        Assert.Equal("400", t.GetProperty("memory").GetString());
        Assert.Equal("web", t.GetProperty("containers")[0].GetProperty("name").GetString());
        Assert.Equal(2, f.State.Tasks.Count);

        var ci = InstanceViews.Arn(f.Arns, f.State.ContainerInstances.All.Single().Value);
        var d = await f.CallAsync("DescribeContainerInstances", $$"""{"containerInstances":["{{ci}}"]}""");
        var inst = d.GetProperty("containerInstances")[0];
        Assert.Equal(200, inst.GetProperty("remainingResources").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "MEMORY").GetProperty("integerValue").GetInt32());
        Assert.Equal(2, inst.GetProperty("pendingTasksCount").GetInt32());
    }

    [Fact]
    public async Task RunTask_BadInput_ClientErrors()
    {
        await using var f = await WithInstanceAsync();
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        await f.AddTaskDefinitionAsync("old", 1, EcsFixture.Web(), status: "INACTIVE");

        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","count":11}""")).ErrorType);
        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","launchType":"FARGATE"}""")).ErrorType);
        Assert.Equal("ClientException", (await f.CallFailsAsync("RunTask", """{"taskDefinition":"nope"}""")).ErrorType);
        Assert.Equal("ClientException", (await f.CallFailsAsync("RunTask", """{"taskDefinition":"old:1"}""")).ErrorType);
        Assert.Equal("ClusterNotFoundException", (await f.CallFailsAsync("RunTask", """{"cluster":"x","taskDefinition":"web"}""")).ErrorType);
        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","overrides":{"containerOverrides":[{"name":"ghost"}]}}""")).ErrorType);
        Assert.Equal(0, f.State.Tasks.Count);
    }

    [Fact]
    public async Task StopTask_ThenDescribeAndList_ReflectsDesiredStopped()
    {
        await using var f = await WithInstanceAsync();
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web:1","count":2,"tags":[{"key":"k","value":"v"}]}""");
        var arns = run.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("taskArn").GetString()!).ToList();

        var stop = await f.CallAsync("StopTask", $$"""{"task":"{{arns[0]}}","reason":"bye"}""");
        Assert.Equal("STOPPED", stop.GetProperty("task").GetProperty("desiredStatus").GetString());
        Assert.Equal("bye", stop.GetProperty("task").GetProperty("stoppedReason").GetString());
        Assert.Equal("UserInitiated", stop.GetProperty("task").GetProperty("stopCode").GetString());

        var running = await f.CallAsync("ListTasks", "{}");
        Assert.Equal([arns[1]], running.GetProperty("taskArns").EnumerateArray().Select(x => x.GetString()).ToArray());
        var stopped = await f.CallAsync("ListTasks", """{"desiredStatus":"STOPPED"}""");
        Assert.Equal([arns[0]], stopped.GetProperty("taskArns").EnumerateArray().Select(x => x.GetString()).ToArray());

        var id = arns[1][(arns[1].LastIndexOf('/') + 1)..];
        var described = await f.CallAsync("DescribeTasks", $$"""{"tasks":["{{id}}","missing"],"include":["TAGS"]}""");
        Assert.Equal("v", described.GetProperty("tasks")[0].GetProperty("tags")[0].GetProperty("value").GetString());
        Assert.Equal("MISSING", described.GetProperty("failures")[0].GetProperty("reason").GetString());
        var noTags = await f.CallAsync("DescribeTasks", $$"""{"tasks":["{{id}}"]}""");
        Assert.False(noTags.GetProperty("tasks")[0].TryGetProperty("tags", out _));

        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("StopTask", """{"task":"0123"}""")).ErrorType);
    }

    [Fact]
    public async Task ListTasks_Paginates()
    {
        await using var f = await WithInstanceAsync(memory: 100_000);
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 10));
        for (var i = 0; i < 3; i++)
        {
            await f.CallAsync("RunTask", """{"taskDefinition":"web","count":5}""");
        }
        var seen = new List<string>();
        string? token = null;
        do
        {
            var body = token is null ? """{"maxResults":4}""" : $$"""{"maxResults":4,"nextToken":"{{token}}"}""";
            var page = await f.CallAsync("ListTasks", body);
            seen.AddRange(page.GetProperty("taskArns").EnumerateArray().Select(x => x.GetString()!));
            token = page.TryGetProperty("nextToken", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
        }
        while (token is not null);
        Assert.Equal(15, seen.Distinct().Count());
        Assert.Equal(seen.Order(StringComparer.Ordinal), seen);
    }

    [Fact]
    public async Task ListContainerInstances_FilterAndDraining()
    {
        await using var f = await WithInstanceAsync();
        await f.Gateway.RegisterAsync(EcsFixture.Registration(agentId: "agent-2"), CancellationToken.None);
        var all = await f.CallAsync("ListContainerInstances", """{"filter":"attribute:ecs.os-type == linux"}""");
        Assert.Equal(2, all.GetProperty("containerInstanceArns").GetArrayLength());
        var none = await f.CallAsync("ListContainerInstances", """{"filter":"attribute:ecs.os-type != linux"}""");
        Assert.Equal(0, none.GetProperty("containerInstanceArns").GetArrayLength());

        var first = all.GetProperty("containerInstanceArns")[0].GetString();
        await f.CallAsync("UpdateContainerInstancesState", $$"""{"containerInstances":["{{first}}"],"status":"DRAINING"}""");
        var draining = await f.CallAsync("ListContainerInstances", """{"status":"DRAINING"}""");
        Assert.Equal(first, draining.GetProperty("containerInstanceArns")[0].GetString());

        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 10));
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web","count":4}""");
        Assert.All(run.GetProperty("tasks").EnumerateArray(), t => Assert.NotEqual(first, t.GetProperty("containerInstanceArn").GetString()));
    }

    [Fact]
    public async Task StartTask_NamedInstance_PlacesThereAndReportsMissing()
    {
        await using var f = await WithInstanceAsync();
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(hostPort: 8080));
        var ci = InstanceViews.Arn(f.Arns, f.State.ContainerInstances.All.Single().Value);

        var r = await f.CallAsync("StartTask", $$"""{"taskDefinition":"web","containerInstances":["{{ci}}","nope"]}""");
        Assert.Equal(ci, r.GetProperty("tasks")[0].GetProperty("containerInstanceArn").GetString());
        Assert.Equal("MISSING", r.GetProperty("failures")[0].GetProperty("reason").GetString());

        // The static host port is now taken on that instance.
        var again = await f.CallAsync("StartTask", $$"""{"taskDefinition":"web","containerInstances":["{{ci}}"]}""");
        Assert.Equal("RESOURCE:PORTS", again.GetProperty("failures")[0].GetProperty("reason").GetString());
        var d = await f.CallAsync("DescribeContainerInstances", $$"""{"containerInstances":["{{ci}}"]}""");
        var ports = d.GetProperty("containerInstances")[0].GetProperty("remainingResources").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "PORTS");
        Assert.Contains("8080", ports.GetProperty("stringSetValue").EnumerateArray().Select(x => x.GetString()));
    }

    [Fact]
    public async Task DeregisterContainerInstance_WithRunningTasks_NeedsForce()
    {
        await using var f = await WithInstanceAsync();
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        var ci = InstanceViews.Arn(f.Arns, f.State.ContainerInstances.All.Single().Value);

        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("DeregisterContainerInstance", $$"""{"containerInstance":"{{ci}}"}""")).ErrorType);
        var r = await f.CallAsync("DeregisterContainerInstance", $$"""{"containerInstance":"{{ci}}","force":true}""");
        Assert.Equal("INACTIVE", r.GetProperty("containerInstance").GetProperty("status").GetString());
        Assert.Equal(0, (await f.CallAsync("ListContainerInstances", "{}")).GetProperty("containerInstanceArns").GetArrayLength());
    }
}
