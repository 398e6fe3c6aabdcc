using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Hosting;
using Berth.Core.Agent;
using Berth.UnitTests.Agents;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Domain;

/// <summary>The lost-host grace: a deadline per disconnected instance on a fake clock, no sleeps.</summary>
public sealed class LostHostSweeperTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private sealed class World : IAsyncDisposable
    {
        public World()
        {
            F = new EcsFixture(time: Time);
            Instances = new InstanceLifecycle(F.State, F.Arns, Time, NullLogger<InstanceLifecycle>.Instance);
            Sweeper = new LostHostSweeper(F.Tasks, new ControlPlaneOptions { DataDirectory = "/nonexistent", AgentGrace = Grace }, Time, NullLogger<LostHostSweeper>.Instance);
        }

        public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        public EcsFixture F { get; }
        public InstanceLifecycle Instances { get; }
        public LostHostSweeper Sweeper { get; }

        public async Task<string> RegisterAsync(string agentId = "agent-1")
            => (await F.Gateway.RegisterAsync(EcsFixture.Registration(agentId: agentId, memory: 1024), CancellationToken.None)).Key;

        /// <summary>StartTask of <paramref name="count"/> tasks on the instance, reported RUNNING by its agent; returns their keys.</summary>
        public async Task<List<string>> RunOnAsync(string instanceKey, int count)
        {
            var keys = new List<string>();
            for (var i = 0; i < count; i++)
            {
                var id = instanceKey[(instanceKey.IndexOf('/') + 1)..];
                var run = await F.CallAsync("StartTask", $$"""{"taskDefinition":"web","containerInstances":["{{id}}"]}""");
                var arn = run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
                Assert.Null(await F.Tasks.ApplyReportAsync(instanceKey, new TaskStatusReport { TaskArn = arn, LastStatus = "RUNNING", Sequence = 1 }, CancellationToken.None));
                keys.Add("default/" + arn[(arn.LastIndexOf('/') + 1)..]);
            }
            return keys;
        }

        public TaskRecord Task(string key) => F.State.Tasks.Find(key)!;

        public async ValueTask DisposeAsync()
        {
            Sweeper.Dispose();
            await F.DisposeAsync();
        }
    }

    private static async Task<World> NewWorldAsync()
    {
        var w = new World();
        await w.F.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 128));
        return w;
    }

    [Fact]
    public async Task ExpireDue_GraceRunsOut_LiveTasksStoppedWithReasonAndResourcesFreed()
    {
        await using var w = await NewWorldAsync();
        var key = await w.RegisterAsync();
        var tasks = await w.RunOnAsync(key, 2);
        Assert.Equal(1024 - 256, w.F.State.Ledger.Candidate(key)!.MemoryAvailable);

        await w.Instances.SetConnectedAsync(key, false, CancellationToken.None);
        var disconnectedAt = w.Time.GetUtcNow();
        Assert.Equal(disconnectedAt + Grace, w.Sweeper.DueAt(key));

        w.Time.Advance(Grace - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await w.Sweeper.ExpireDueAsync(CancellationToken.None));
        Assert.All(tasks, t => Assert.Equal("RUNNING", w.Task(t).LastStatus));

        w.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, await w.Sweeper.ExpireDueAsync(CancellationToken.None));

        var id = key[(key.IndexOf('/') + 1)..];
        foreach (var t in tasks.Select(w.Task))
        {
            Assert.Equal("STOPPED", t.LastStatus);
            Assert.Equal("STOPPED", t.DesiredStatus);
            Assert.Equal(w.Time.GetUtcNow(), t.StoppedAt);
            Assert.Equal(TaskLifecycle.LostHostStopCode, t.StopCode);
            Assert.Equal($"Task stopped because the agent of container instance {id} has been disconnected for 60 seconds", t.StoppedReason);
            Assert.All(t.Containers, c => Assert.Equal("STOPPED", c.LastStatus));
        }
        Assert.Equal(1024, w.F.State.Ledger.Candidate(key)!.MemoryAvailable);
        Assert.Equal(0, w.Sweeper.Pending);
        // Once is enough: nothing is due any more.
        w.Time.Advance(Grace);
        Assert.Equal(0, await w.Sweeper.ExpireDueAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ExpireDue_AgentReconnectsWithinGrace_NothingStops()
    {
        await using var w = await NewWorldAsync();
        var key = await w.RegisterAsync();
        var tasks = await w.RunOnAsync(key, 1);

        await w.Instances.SetConnectedAsync(key, false, CancellationToken.None);
        w.Time.Advance(TimeSpan.FromSeconds(30));
        await w.Instances.SetConnectedAsync(key, true, CancellationToken.None); // the agent is back
        Assert.True(w.F.State.ContainerInstances.Find(key)!.AgentConnected);
        Assert.Null(w.Sweeper.DueAt(key));

        w.Time.Advance(Grace * 2);
        Assert.Equal(0, await w.Sweeper.ExpireDueAsync(CancellationToken.None));
        Assert.Equal("RUNNING", w.Task(tasks[0]).LastStatus);
        Assert.Equal("RUNNING", w.Task(tasks[0]).DesiredStatus);
    }

    [Fact]
    public async Task ExpireDue_DisconnectedAgain_GraceStartsFromTheLatestDisconnect()
    {
        await using var w = await NewWorldAsync();
        var key = await w.RegisterAsync();
        var tasks = await w.RunOnAsync(key, 1);

        await w.Instances.SetConnectedAsync(key, false, CancellationToken.None);
        w.Time.Advance(TimeSpan.FromSeconds(30));
        await w.Instances.SetConnectedAsync(key, true, CancellationToken.None);
        w.Time.Advance(TimeSpan.FromSeconds(10));
        await w.Instances.SetConnectedAsync(key, false, CancellationToken.None);

        w.Time.Advance(TimeSpan.FromSeconds(59)); // 99 s after the first disconnect, 59 s after the second
        Assert.Equal(0, await w.Sweeper.ExpireDueAsync(CancellationToken.None));
        Assert.Equal("RUNNING", w.Task(tasks[0]).LastStatus);

        w.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, await w.Sweeper.ExpireDueAsync(CancellationToken.None));
        Assert.Equal("STOPPED", w.Task(tasks[0]).LastStatus);
    }

    [Fact]
    public async Task ExpireDue_OnlyTheLostInstancesTasks_AndAUserStopKeepsItsReason()
    {
        await using var w = await NewWorldAsync();
        var lost = await w.RegisterAsync("agent-1");
        var healthy = await w.RegisterAsync("agent-2");
        var lostTasks = await w.RunOnAsync(lost, 2);
        var healthyTasks = await w.RunOnAsync(healthy, 1);
        var stopped = await w.F.Tasks.StopAsync("default", lostTasks[1]["default/".Length..], "deploying v2", "UserInitiated", CancellationToken.None);
        Assert.Equal("RUNNING", stopped!.LastStatus); // the agent was still there to stop it

        await w.Instances.SetConnectedAsync(lost, false, CancellationToken.None);
        w.Time.Advance(Grace);
        Assert.Equal(2, await w.Sweeper.ExpireDueAsync(CancellationToken.None));

        Assert.Equal("STOPPED", w.Task(lostTasks[0]).LastStatus);
        Assert.Equal(TaskLifecycle.LostHostStopCode, w.Task(lostTasks[0]).StopCode);
        Assert.Equal("STOPPED", w.Task(lostTasks[1]).LastStatus);
        Assert.Equal("deploying v2", w.Task(lostTasks[1]).StoppedReason);
        Assert.Equal("UserInitiated", w.Task(lostTasks[1]).StopCode);
        Assert.Equal("RUNNING", w.Task(healthyTasks[0]).LastStatus);
        Assert.Equal("RUNNING", w.Task(healthyTasks[0]).DesiredStatus);
    }

    [Fact]
    public async Task New_InstanceAlreadyDisconnectedWhenLoaded_GraceStartsAtStart()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        await using var f = new EcsFixture(time: time);
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 128));
        var key = (await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None)).Key;
        await new InstanceLifecycle(f.State, f.Arns, time, NullLogger<InstanceLifecycle>.Instance).SetConnectedAsync(key, false, CancellationToken.None);
        // An instance registered through the API has no agent of ours and is never treated as lost.
        await f.CallAsync("RegisterContainerInstance", """{"totalResources":[{"name":"CPU","type":"INTEGER","integerValue":1024},{"name":"MEMORY","type":"INTEGER","integerValue":1024}]}""");
        time.Advance(TimeSpan.FromMinutes(5));

        using var sweeper = new LostHostSweeper(f.Tasks, new ControlPlaneOptions { DataDirectory = "/nonexistent", AgentGrace = Grace }, time, NullLogger<LostHostSweeper>.Instance);

        Assert.Equal(1, sweeper.Pending);
        Assert.Equal(time.GetUtcNow() + Grace, sweeper.DueAt(key));
    }

    [Fact]
    public async Task ExpireDue_InstanceDeregistered_NothingIsScheduled()
    {
        await using var w = await NewWorldAsync();
        var key = await w.RegisterAsync();
        await w.RunOnAsync(key, 1);
        var id = key[(key.IndexOf('/') + 1)..];

        await w.F.CallAsync("DeregisterContainerInstance", $$"""{"containerInstance":"{{id}}","force":true}""");

        Assert.Equal(0, w.Sweeper.Pending);
    }

    [Fact]
    public async Task Loop_GraceRunsOutOnTheClock_StopsTheTasksWithoutBeingCalled()
    {
        await using var w = await NewWorldAsync();
        var key = await w.RegisterAsync();
        var tasks = await w.RunOnAsync(key, 1);
        var expired = new TaskCompletionSource<(string Key, int Count)>(TaskCreationOptions.RunContinuationsAsynchronously);
        w.Sweeper.Expired += (k, n) => expired.TrySetResult((k, n));
        await w.Sweeper.StartAsync(CancellationToken.None);
        try
        {
            await w.Instances.SetConnectedAsync(key, false, CancellationToken.None);
            // The loop sleeps on the fake clock (or, if it has not armed its timer yet, finds the deadline passed).
            w.Time.Advance(Grace);

            var (k, n) = await expired.Task.WaitAsync(Timeout);
            Assert.Equal(key, k);
            Assert.Equal(1, n);
            Assert.Equal("STOPPED", w.Task(tasks[0]).LastStatus);
        }
        finally
        {
            await w.Sweeper.StopAsync(CancellationToken.None);
        }
    }
}
