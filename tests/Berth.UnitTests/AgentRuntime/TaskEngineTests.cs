using System.Threading.Channels;
using Berth.Agent;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.AgentRuntime;

public sealed class TaskEngineTests : IAsyncLifetime
{
    private const string Cluster = "arn:aws:ecs:us-east-1:000000000000:cluster/default";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly FakeContainerRuntime _runtime = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private TaskEngine _engine = null!;

    public ValueTask InitializeAsync()
    {
        _engine = NewEngine();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await _engine.DisposeAsync();

    private TaskEngine NewEngine() => new(_runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string> { ["test"] = "yes" },
        TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60), _time, NullLogger<TaskEngine>.Instance);

    internal static string Arn(string id) => $"arn:aws:ecs:us-east-1:000000000000:task/default/{id}";

    internal static DesiredTask Desired(string id, string desired = "RUNNING", string last = "PENDING", long lastSequence = 0, params string[] containers)
    {
        var spec = new TaskSpec { ClusterArn = Cluster, TaskDefinitionArn = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3", Family = "web", Revision = 3, NetworkMode = "bridge" };
        foreach (var name in containers.Length == 0 ? ["app"] : containers)
        {
            var c = new Berth.Core.Agent.ContainerSpec { Name = name, Image = "busybox:1.36", Essential = true, StopTimeoutSeconds = 5 };
            c.PortMappings.Add(new PortMapping { ContainerPort = 80, Protocol = "tcp" });
            spec.Containers.Add(c);
        }
        return new DesiredTask { TaskArn = Arn(id), DesiredStatus = desired, LastStatus = last, LastSequence = lastSequence, Spec = spec };
    }

    internal static DesiredState Snapshot(long generation, params DesiredTask[] tasks)
    {
        var s = new DesiredState { Generation = generation, Full = true };
        s.Tasks.AddRange(tasks);
        return s;
    }

    internal static DesiredState Delta(long generation, DesiredTask[] tasks, params string[] removed)
    {
        var s = new DesiredState { Generation = generation, Full = false };
        s.Tasks.AddRange(tasks);
        s.RemovedTaskArns.AddRange(removed);
        return s;
    }

    /// <summary>Reads reports until one of <paramref name="taskArn"/> has <paramref name="status"/>; returns all read.</summary>
    internal static async Task<List<TaskStatusReport>> ReadUntilAsync(ChannelReader<TaskStatusReport> reports, string taskArn, string status)
    {
        var read = new List<TaskStatusReport>();
        using var cts = new CancellationTokenSource(Timeout);
        while (true)
        {
            var r = await reports.ReadAsync(cts.Token);
            read.Add(r);
            if (r.TaskArn == taskArn && r.LastStatus == status)
            {
                return read;
            }
        }
    }

    private static List<TaskStatusReport> Drain(ChannelReader<TaskStatusReport> reports)
    {
        var list = new List<TaskStatusReport>();
        while (reports.TryRead(out var r))
        {
            list.Add(r);
        }
        return list;
    }

    [Fact]
    public async Task Apply_SnapshotWithNewTask_LaunchesItAndReportsPendingThenRunningWithIncreasingSequences()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("t1")));

        var reports = await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");

        Assert.Equal("PENDING", reports[0].LastStatus);
        Assert.Equal([1L, 2L, 3L], reports.Select(r => r.Sequence));
        Assert.True(reports[^1].StartedAt > 0);
        Assert.Equal("RUNNING", reports[^1].Containers.Single().LastStatus);
        Assert.Equal(32768, reports[^1].Containers.Single().NetworkBindings.Single().HostPort);
        var created = Assert.Single(_runtime.Created);
        Assert.Equal(Arn("t1"), created.Labels["com.amazonaws.ecs.task-arn"]);
        Assert.Equal(Cluster, created.Labels["com.amazonaws.ecs.cluster"]);
        Assert.Equal("web", created.Labels["com.amazonaws.ecs.task-definition-family"]);
        Assert.Equal("3", created.Labels["com.amazonaws.ecs.task-definition-version"]);
        Assert.Equal("agent-1", created.Labels["berth.agent-id"]);
        Assert.Equal("yes", created.Labels["test"]);
    }

    [Fact]
    public async Task Launch_NewTask_NeedsNoListByLabel_OnlyPullCreateStartAndInspectsById()
    {
        await _engine.StartAsync(CancellationToken.None);
        await _engine.WhenIdleAsync();
        _runtime.ClearCalls();

        _engine.Apply(Snapshot(1, Desired("t1")));
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");
        await _engine.WhenIdleAsync();

        // This process never had containers of t1, so there is nothing to list; the container it created is read back
        // by id (for its ports and state), here once after the start and once for the start event's pass.
        var calls = _runtime.Calls.Where(c => c != "watch").ToList();
        var id = _runtime.IdOf(Arn("t1"), "app");
        Assert.DoesNotContain(calls, c => c.StartsWith("list:", StringComparison.Ordinal));
        Assert.Equal(["pull:busybox:1.36", "create:app", $"start:{id}", $"inspect:{id}"], calls.Take(4));
        Assert.All(calls.Skip(4), c => Assert.Equal($"inspect:{id}", c));
    }

    [Fact]
    public async Task Running_ContainerRemovedBehindItsBack_IsReportedStoppedNotRelaunched()
    {
        await _engine.StartAsync(CancellationToken.None);
        await _runtime.WaitUntilWatchedAsync(Timeout);
        _engine.Apply(Snapshot(1, Desired("t1")));
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");
        await _engine.WhenIdleAsync();

        _runtime.RemoveBehindBack(Arn("t1"), "app");
        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("t1"), "STOPPED"))[^1];
        await _engine.WhenIdleAsync();

        Assert.Equal(TaskEngine.LostStopCode, stopped.StopCode);
        Assert.Single(_runtime.Created);
        Assert.Empty(_runtime.Containers());
    }

    [Fact]
    public async Task Apply_TaskWithLastSequence_ContinuesFromIt()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("t1", lastSequence: 41)));

        var reports = await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");

        Assert.Equal(42, reports[0].Sequence);
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.Second.Sequence == p.First.Sequence + 1));
    }

    [Fact]
    public async Task Start_AdoptedContainers_AreKnownButNotReportedBeforeTheSnapshot()
    {
        _runtime.Add(Arn("old"), "app");
        await _engine.StartAsync(CancellationToken.None);

        Assert.Equal([Arn("old")], _engine.KnownTaskArns());
        _time.Advance(TimeSpan.FromSeconds(61)); // a resync passes over it too
        await _engine.WhenIdleAsync();
        Assert.Empty(Drain(_engine.Reports));

        // The snapshot lists it as RUNNING with sequence 7: the agent reports what it has, from 8 on.
        _engine.Apply(Snapshot(1, Desired("old", last: "RUNNING", lastSequence: 7)));
        var reports = await ReadUntilAsync(_engine.Reports, Arn("old"), "RUNNING");
        Assert.Equal(8, Assert.Single(reports).Sequence);
        Assert.DoesNotContain(_runtime.Calls, c => c.StartsWith("create:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Apply_SnapshotWithoutAdoptedTask_StopsAndForgetsItSilently()
    {
        _runtime.Add(Arn("orphan"), "app");
        await _engine.StartAsync(CancellationToken.None);

        _engine.Apply(Snapshot(1));
        await _engine.WhenIdleAsync();

        Assert.Empty(_runtime.Containers());
        Assert.Contains(_runtime.Calls, c => c.StartsWith("stop:", StringComparison.Ordinal));
        Assert.Empty(_engine.KnownTaskArns());
        Assert.Empty(Drain(_engine.Reports));
    }

    [Fact]
    public async Task Apply_RunningTaskPastPendingWithoutContainers_IsReportedStoppedAndNeverLaunched()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("batch", last: "RUNNING", lastSequence: 3)));

        var reports = await ReadUntilAsync(_engine.Reports, Arn("batch"), "STOPPED");

        var stopped = Assert.Single(reports);
        Assert.Equal(4, stopped.Sequence);
        Assert.Equal(TaskEngine.LostStopCode, stopped.StopCode);
        Assert.Equal(TaskEngine.LostReason, stopped.StoppedReason);
        Assert.DoesNotContain(_runtime.Calls, c => c.StartsWith("create:", StringComparison.Ordinal) || c.StartsWith("pull:", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("PENDING")]
    [InlineData("PROVISIONING")]
    [InlineData("RUNNING")]
    public async Task Apply_DesiredStoppedTaskWithoutContainers_IsNeverStarted(string lastStatus)
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("t1", desired: "STOPPED", last: lastStatus)));

        var reports = await ReadUntilAsync(_engine.Reports, Arn("t1"), "STOPPED");

        Assert.Single(reports);
        Assert.Empty(_runtime.Created);
    }

    [Fact]
    public async Task Apply_DesiredStoppedTaskTheServerHasStopped_SaysNothing()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("gone", desired: "STOPPED", last: "STOPPED", lastSequence: 9)));
        await _engine.WhenIdleAsync();

        Assert.Empty(Drain(_engine.Reports));
        Assert.Empty(_runtime.Created);
    }

    [Fact]
    public async Task Apply_SnapshotAfterLostHost_StopsTheStillRunningContainersOfATaskTheServerStopped()
    {
        // The agent was away past the grace: the server marked the task STOPPED while its container kept running.
        _runtime.Add(Arn("lost"), "app");
        await _engine.StartAsync(CancellationToken.None);
        Assert.Equal([Arn("lost")], _engine.KnownTaskArns());

        _engine.Apply(Snapshot(1, Desired("lost", desired: "STOPPED", last: "STOPPED", lastSequence: 4)));
        await _engine.WhenIdleAsync();

        Assert.Contains(_runtime.Calls, c => c.StartsWith("stop:", StringComparison.Ordinal));
        Assert.DoesNotContain(_runtime.Containers(), c => c.State == "running");
        Assert.Empty(_runtime.Created);
    }

    [Fact]
    public async Task Apply_DeltaDesiredStopped_StopsTheRunningTask()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("t1")));
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");

        _engine.Apply(Delta(2, [Desired("t1", desired: "STOPPED", last: "RUNNING", lastSequence: 3)]));
        var reports = await ReadUntilAsync(_engine.Reports, Arn("t1"), "STOPPED");

        Assert.Equal(["DEPROVISIONING", "STOPPED"], reports.Select(r => r.LastStatus));
        Assert.Equal([4L, 5L], reports.Select(r => r.Sequence));
        var container = reports[^1].Containers.Single();
        Assert.True(container.HasExitCode);
        Assert.Equal(143, container.ExitCode);
    }

    [Fact]
    public async Task Apply_DeltaRemovingTask_StopsAndForgetsIt()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("t1"), Desired("t2")));
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");
        await _engine.WhenIdleAsync();
        Drain(_engine.Reports);

        _engine.Apply(Delta(2, [], Arn("t1")));
        await _engine.WhenIdleAsync();

        Assert.DoesNotContain(_runtime.Containers(), c => c.TaskArn == Arn("t1"));
        Assert.Contains(_runtime.Containers(), c => c.TaskArn == Arn("t2"));
        Assert.Equal([Arn("t2")], _engine.KnownTaskArns());
        Assert.Empty(Drain(_engine.Reports));
    }

    [Fact]
    public async Task ContainerExit_Event_ReconcilesOnlyThatTaskAndReportsAtOnce()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("a"), Desired("b")));
        await ReadUntilAsync(_engine.Reports, Arn("a"), "RUNNING");
        await _engine.WhenIdleAsync();
        Drain(_engine.Reports);
        // An event emitted before the engine's watcher subscribed would be lost (the 60 s resync would catch it).
        await _runtime.WaitUntilWatchedAsync(Timeout);
        _runtime.ClearCalls();

        _runtime.Exit(Arn("a"), "app", exitCode: 3);
        var reports = await ReadUntilAsync(_engine.Reports, Arn("a"), "STOPPED");
        await _engine.WhenIdleAsync();

        var stopped = reports[^1];
        Assert.Equal("EssentialContainerExited", stopped.StopCode);
        Assert.Equal(3, stopped.Containers.Single().ExitCode);
        Assert.All(reports, r => Assert.Equal(Arn("a"), r.TaskArn));
        // No clock moved: the event alone drove it, and only task a's container was read (by its id: the engine
        // created it, so it needs no list by label).
        Assert.NotEmpty(_runtime.Calls);
        Assert.All(_runtime.Calls, c => Assert.Equal($"inspect:{_runtime.IdOf(Arn("a"), "app")}", c));
    }

    [Fact]
    public async Task Idle_NoRuntimeCallsBetweenResyncs_ThenOneFullResync()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("a"), Desired("b")));
        await ReadUntilAsync(_engine.Reports, Arn("a"), "RUNNING");
        await _engine.WhenIdleAsync();
        _runtime.ClearCalls();

        _time.Advance(TimeSpan.FromSeconds(59));
        await _engine.WhenIdleAsync();
        Assert.Empty(_runtime.Calls);

        _time.Advance(TimeSpan.FromSeconds(1));
        using var cts = new CancellationTokenSource(Timeout);
        while (_engine.Resyncs < 1)
        {
            await Task.Delay(1, cts.Token); // waits for the resync loop's thread, not for time to pass
        }
        await _engine.WhenIdleAsync();
        Assert.Equal("list:*", _runtime.Calls[0]);
        Assert.Contains($"list:{Arn("a")}", _runtime.Calls);
        Assert.Contains($"list:{Arn("b")}", _runtime.Calls);
    }

    [Fact]
    public async Task EventStreamBreak_ReconnectsAndResyncs()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("a")));
        await ReadUntilAsync(_engine.Reports, Arn("a"), "RUNNING");
        await _engine.WhenIdleAsync();
        await _runtime.WaitUntilWatchedAsync(Timeout);
        Assert.Equal(1, _runtime.Watches);

        _runtime.BreakEventStream();
        using var cts = new CancellationTokenSource(Timeout);
        // The engine waits a second before reconnecting; move the clock once it is waiting.
        while (_engine.Resyncs < 1)
        {
            _time.Advance(TimeSpan.FromMilliseconds(500));
            await Task.Delay(1, cts.Token);
        }
        Assert.Equal(2, _runtime.Watches);

        // Events flow again on the new stream.
        _runtime.Exit(Arn("a"), "app", 0);
        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("a"), "STOPPED"))[^1];
        Assert.Equal(0, stopped.Containers.Single().ExitCode);
    }

    [Fact]
    public async Task Apply_SnapshotAfterReconnect_ResendsTheLastReportTheServerMissed()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("a")));
        var sent = await ReadUntilAsync(_engine.Reports, Arn("a"), "RUNNING");
        await _engine.WhenIdleAsync();

        // The server applied only the first report before the connection dropped.
        _engine.Apply(Snapshot(7, Desired("a", last: "PENDING", lastSequence: 1)));
        var resent = await ReadUntilAsync(_engine.Reports, Arn("a"), "RUNNING");

        Assert.Equal(sent[^1].Sequence, resent[^1].Sequence);
        Assert.Equal(sent[^1], resent[^1]);
    }

    [Fact]
    public async Task Launch_PullFailure_StopsWithTaskFailedToStart()
    {
        await _engine.StartAsync(CancellationToken.None);
        var d = Desired("t1");
        d.Spec.Containers[0].Image = "missing/image:1";
        _engine.Apply(Snapshot(1, d));

        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("t1"), "STOPPED"))[^1];

        Assert.Equal("TaskFailedToStart", stopped.StopCode);
        Assert.StartsWith("CannotPullContainerError: pull image missing/image:1: pull access denied", stopped.StoppedReason, StringComparison.Ordinal);
    }
}
