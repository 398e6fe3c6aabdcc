using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core.Agent;
using Berth.UnitTests.Agents;

namespace Berth.UnitTests.Domain;

public sealed class TaskLifecycleTests
{
    private static async Task<(EcsFixture F, string InstanceKey, string TaskArn, string TaskKey)> OneTaskAsync(ManualClock? clock = null)
    {
        var f = new EcsFixture(time: clock);
        var key = (await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None)).Key;
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        var arn = run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        return (f, key, arn, "default/" + arn[(arn.LastIndexOf('/') + 1)..]);
    }

    [Fact]
    public async Task ApplyReport_FromAnotherInstancesStream_IsIgnored()
    {
        var (f, _, arn, taskKey) = await OneTaskAsync();
        await using var _ = f;
        var other = EcsFixture.Registration(agentId: "agent-2");
        var otherKey = (await f.Gateway.RegisterAsync(other, CancellationToken.None)).Key;

        var why = await f.Tasks.ApplyReportAsync(otherKey, new TaskStatusReport { TaskArn = arn, LastStatus = "STOPPED", Sequence = 1, StopCode = "EssentialContainerExited" }, CancellationToken.None);

        Assert.Equal("task belongs to another instance", why);
        Assert.Equal("PROVISIONING", f.State.Tasks.Find(taskKey)!.LastStatus);
        Assert.Equal("RUNNING", f.State.Tasks.Find(taskKey)!.DesiredStatus);
    }

    [Fact]
    public async Task ApplyReport_StaleSequenceOrBackwardsStatus_NeverRegresses()
    {
        var (f, key, arn, taskKey) = await OneTaskAsync();
        await using var _ = f;

        Assert.Null(await f.Tasks.ApplyReportAsync(key, new TaskStatusReport { TaskArn = arn, LastStatus = "RUNNING", Sequence = 5 }, CancellationToken.None));
        Assert.Equal("stale sequence", await f.Tasks.ApplyReportAsync(key, new TaskStatusReport { TaskArn = arn, LastStatus = "PENDING", Sequence = 4 }, CancellationToken.None));
        // A newer sequence that claims an earlier state (e.g. after a reconnect) moves nothing backwards.
        Assert.Null(await f.Tasks.ApplyReportAsync(key, new TaskStatusReport { TaskArn = arn, LastStatus = "PENDING", Sequence = 6 }, CancellationToken.None));

        var t = f.State.Tasks.Find(taskKey)!;
        Assert.Equal("RUNNING", t.LastStatus);
        Assert.Equal(6, t.LastSequence);
    }

    [Fact]
    public async Task RunTask_SameClientTokenSameParameters_ReturnsTheOriginalTask()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());

        var first = await f.CallAsync("RunTask", """{"taskDefinition":"web","clientToken":"tok-1"}""");
        var again = await f.CallAsync("RunTask", """{"taskDefinition":"web","clientToken":"tok-1"}""");

        Assert.Equal(first.GetProperty("tasks")[0].GetProperty("taskArn").GetString(), again.GetProperty("tasks")[0].GetProperty("taskArn").GetString());
        Assert.Equal(1, f.State.Tasks.Count);
        var e = await f.CallFailsAsync("RunTask", """{"taskDefinition":"web","clientToken":"tok-1","startedBy":"someone-else"}""");
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Contains("clientToken", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, f.State.Tasks.Count);
    }

    [Fact]
    public async Task Purge_StoppedTaskStaysForTheWindowThenGoes()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        var (f, _, arn, taskKey) = await OneTaskAsync(clock);
        await using var _ = f;
        // Not connected through a stream in this test, so StopTask of a PROVISIONING task stops it at once.
        await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        await using (var tx = await f.State.BeginAsync())
        {
            var s = f.State.ContainerInstances.All.Single();
            tx.Put(f.State.ContainerInstances, s.Id, s.Value with { AgentConnected = false });
            await tx.CommitAsync();
        }
        await f.CallAsync("StopTask", $$"""{"task":"{{arn}}"}""");
        Assert.True(f.State.Tasks.Find(taskKey)!.IsStopped);

        clock.Advance(TimeSpan.FromMinutes(59));
        Assert.Equal(0, await f.Tasks.PurgeAsync(clock.GetUtcNow() - TimeSpan.FromHours(1), 100, CancellationToken.None));
        Assert.NotNull(f.State.Tasks.Find(taskKey));

        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(1, await f.Tasks.PurgeAsync(clock.GetUtcNow() - TimeSpan.FromHours(1), 100, CancellationToken.None));
        Assert.Null(f.State.Tasks.Find(taskKey));
        Assert.Empty(f.State.TaskIndex.Get(TaskIndex.ByDesired, "default", "STOPPED"));
    }

    [Fact]
    public async Task PurgeInstances_DeregisteredInstanceGoesAfterTheWindowOnceNoTaskNamesIt()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        await using var f = new EcsFixture(time: clock);
        var (stored, key, _, _) = await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        await f.CallAsync("DeregisterContainerInstance", $$"""{"containerInstance":"{{InstanceViews.Arn(f.Arns, stored!)}}"}""");

        clock.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal(0, await f.Tasks.PurgeInstancesAsync(clock.GetUtcNow() - TimeSpan.FromHours(1), 10, CancellationToken.None));
        var d = await f.CallAsync("DescribeContainerInstances", $$"""{"containerInstances":["{{InstanceViews.Arn(f.Arns, stored!)}}"]}""");
        Assert.Equal("INACTIVE", d.GetProperty("containerInstances")[0].GetProperty("status").GetString());

        clock.Advance(TimeSpan.FromMinutes(31));
        Assert.Equal(1, await f.Tasks.PurgeInstancesAsync(clock.GetUtcNow() - TimeSpan.FromHours(1), 10, CancellationToken.None));
        Assert.Null(f.State.ContainerInstances.Find(key));
    }
}

public sealed class TaskViewsTests
{
    [Fact]
    public void ContainerUuid_IsStablePerTaskAndContainer_AndDistinctOtherwise()
    {
        var a = TaskViews.ContainerUuid("0123456789abcdef0123456789abcdef", "web");
        Assert.Equal(a, TaskViews.ContainerUuid("0123456789abcdef0123456789abcdef", "web"));
        Assert.NotEqual(a, TaskViews.ContainerUuid("0123456789abcdef0123456789abcdef", "side"));
        Assert.NotEqual(a, TaskViews.ContainerUuid("0123456789abcdef0123456789abcdee", "web"));
        Assert.True(Guid.TryParseExact(a, "D", out _));
        Assert.Equal('5', a[14]); // name-based version nibble
    }
}
