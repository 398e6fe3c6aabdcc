using Berth.Agent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// A stopped task's containers are kept for the cleanup wait (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION), then removed
/// with the task's volumes, on a deadline from the TimeProvider: these tests move a fake clock, never sleep.
/// </summary>
public sealed class TaskCleanupTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromHours(3);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly FakeContainerRuntime _runtime = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private TaskEngine _engine = null!;

    public ValueTask InitializeAsync()
    {
        _runtime.Time = _time;
        // A resync interval longer than every wait here: only the cleanup deadline can remove anything.
        _engine = new TaskEngine(_runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string>(),
            Wait, TimeSpan.FromDays(1), _time, NullLogger<TaskEngine>.Instance);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await _engine.DisposeAsync();

    private async Task AdvanceAsync(TimeSpan by)
    {
        _time.Advance(by);
        await _engine.WhenIdleAsync();
    }

    [Fact]
    public async Task StoppedTask_ContainersKeptForTheWait_ThenRemovedWithItsVolumes()
    {
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("t1")));
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");
        await _engine.WhenIdleAsync();
        await _runtime.WaitUntilWatchedAsync(Timeout);

        _runtime.Exit(Arn("t1"), "app", exitCode: 3);
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "STOPPED");
        await _engine.WhenIdleAsync();
        _runtime.ClearCalls();

        await AdvanceAsync(Wait - TimeSpan.FromSeconds(1));
        Assert.Equal([(Arn("t1"), "app", "exited")], _runtime.Containers());
        Assert.Empty(_runtime.Calls); // kept, and nothing polled while it waits

        await AdvanceAsync(TimeSpan.FromSeconds(1));
        Assert.Empty(_runtime.Containers());
        Assert.Contains("volumes:t1", _runtime.Calls);
        Assert.Empty(_engine.KnownTaskArns());
    }

    [Fact]
    public async Task AfterRestart_KeptContainerOfAStoppedTask_IsNotReportedAndGoesAtFinishedAtPlusTheWait()
    {
        // The container exited 2 h ago, before the agent restarted; the server has the task STOPPED.
        _runtime.Add(Arn("old"), "app", state: "exited", exitCode: 3, finishedAt: _time.GetUtcNow() - TimeSpan.FromHours(2));
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("old", desired: "STOPPED", last: "STOPPED", lastSequence: 6)));
        await _engine.WhenIdleAsync();

        Assert.False(_engine.Reports.TryRead(out _)); // a kept, exited container is no new state
        Assert.Empty(_runtime.Created);
        await AdvanceAsync(TimeSpan.FromMinutes(59));
        Assert.Single(_runtime.Containers());

        await AdvanceAsync(TimeSpan.FromMinutes(1)); // 3 h after it exited, not 3 h after the restart
        Assert.Empty(_runtime.Containers());
        Assert.Contains("volumes:old", _runtime.Calls);
        Assert.False(_engine.Reports.TryRead(out _));
    }

    [Fact]
    public async Task StoppedTaskTheServerForgets_IsStillKeptUntilItsDeadline()
    {
        // Task records are describable for an hour; the containers stay 3 h: the server's removal must not cut that short.
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1, Desired("t1")));
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "RUNNING");
        await _engine.WhenIdleAsync();
        await _runtime.WaitUntilWatchedAsync(Timeout);
        _runtime.Exit(Arn("t1"), "app", exitCode: 0);
        await ReadUntilAsync(_engine.Reports, Arn("t1"), "STOPPED");
        await _engine.WhenIdleAsync();

        await AdvanceAsync(TimeSpan.FromHours(1));
        _engine.Apply(Delta(2, [], Arn("t1")));
        await _engine.WhenIdleAsync();
        Assert.Single(_runtime.Containers());

        await AdvanceAsync(TimeSpan.FromHours(2));
        Assert.Empty(_runtime.Containers());
    }

    [Fact]
    public async Task AfterRestart_ExitedContainerOfATaskTheServerNoLongerKnows_IsKeptUntilItsDeadline()
    {
        _runtime.Add(Arn("gone"), "app", state: "exited", exitCode: 0, finishedAt: _time.GetUtcNow() - TimeSpan.FromMinutes(150));
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1)); // the server lists nothing: the task's record is gone
        await _engine.WhenIdleAsync();

        Assert.Single(_runtime.Containers());
        Assert.DoesNotContain(_runtime.Calls, c => c.StartsWith("remove:", StringComparison.Ordinal));
        await AdvanceAsync(TimeSpan.FromMinutes(30));
        Assert.Empty(_runtime.Containers());
        Assert.False(_engine.Reports.TryRead(out _));
    }

    [Fact]
    public async Task RunningTaskTheServerDoesNotKnow_IsStillStoppedAndRemovedAtOnce()
    {
        _runtime.Add(Arn("stray"), "app");
        await _engine.StartAsync(CancellationToken.None);
        _engine.Apply(Snapshot(1));
        await _engine.WhenIdleAsync();

        Assert.Empty(_runtime.Containers());
        Assert.Contains("volumes:stray", _runtime.Calls);
    }
}
