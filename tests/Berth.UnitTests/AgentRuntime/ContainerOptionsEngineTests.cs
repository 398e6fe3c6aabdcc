using Berth.Agent;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// <see cref="TaskEngine"/> with the container options that change how a task starts, over the fake runtime:
/// volumesFrom sources and the pid/ipc namespace holder created first, startTimeout giving up on a dependency,
/// and a task that cannot be built or started stopping at once with TaskFailedToStart and nothing left running.
/// </summary>
public sealed class ContainerOptionsEngineTests : IAsyncLifetime
{
    private readonly FakeContainerRuntime _runtime = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private TaskEngine _engine = null!;

    public async ValueTask InitializeAsync()
    {
        _engine = new TaskEngine(_runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string>(),
            TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60), _time, NullLogger<TaskEngine>.Instance);
        await _engine.StartAsync(CancellationToken.None);
        await _runtime.WaitUntilWatchedAsync(TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync() => await _engine.DisposeAsync();

    private static DesiredTask Task(string id, string[] containers, Action<TaskSpec, Dictionary<string, Core.Agent.ContainerSpec>> configure)
    {
        var d = Desired(id, containers: containers);
        configure(d.Spec, d.Spec.Containers.ToDictionary(c => c.Name));
        return d;
    }

    private List<string> Created() => [.. _runtime.Calls.Where(c => c.StartsWith("create:", StringComparison.Ordinal)).Select(c => c["create:".Length..])];

    [Fact]
    public async Task VolumesFrom_SourceListedLater_IsCreatedFirst()
    {
        _engine.Apply(Snapshot(1, Task("vf", ["reader", "writer"], (_, c) =>
            c["reader"].VolumesFrom.Add(new VolumeFrom { SourceContainer = "writer", ReadOnly = true }))));

        await ReadUntilAsync(_engine.Reports, Arn("vf"), "RUNNING");

        Assert.Equal(["writer", "reader"], Created());
        Assert.Equal(["ecs-web-3-writer-vf:ro"], _runtime.Created.Single(p => p.Labels[ContainerLabels.ContainerName] == "reader").HostConfig!.VolumesFrom);
    }

    [Fact]
    public async Task PidModeTask_HolderListedLater_IsStartedFirstAndTheOthersJoinIt()
    {
        _engine.Apply(Snapshot(1, Task("ns", ["helper", "main"], (spec, c) =>
        {
            spec.PidMode = "task";
            c["helper"].Essential = false;
        })));

        await ReadUntilAsync(_engine.Reports, Arn("ns"), "RUNNING");

        Assert.Equal(["main", "helper"], Created());
        Assert.Equal("container:ecs-web-3-main-ns", _runtime.Created.Single(p => p.Labels[ContainerLabels.ContainerName] == "helper").HostConfig!.PidMode);
    }

    [Fact]
    public async Task StartFails_OnTheSecondContainer_FirstIsStoppedAndTaskFailedToStart()
    {
        _runtime.FailStartOf.Add("broken");
        _engine.Apply(Snapshot(1, Task("bad", ["ok", "broken"], (_, c) =>
            c["broken"].DependsOn.Add(new ContainerDependency { ContainerName = "ok", Condition = "START" }))));

        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("bad"), "STOPPED"))[^1];
        await _engine.WhenIdleAsync();

        Assert.Equal("TaskFailedToStart", stopped.StopCode);
        Assert.StartsWith("CannotStartContainerError: error gathering device information", stopped.StoppedReason, StringComparison.Ordinal);
        Assert.DoesNotContain(_runtime.Containers(), c => c.State == "running");
        Assert.Contains(_runtime.Calls, c => c.StartsWith("stop:", StringComparison.Ordinal));
        // Terminal: another pass (a resync) does not try again.
        var calls = _runtime.Calls.Count(c => c.StartsWith("create:", StringComparison.Ordinal));
        _time.Advance(TimeSpan.FromSeconds(61));
        await _engine.WhenIdleAsync();
        Assert.Equal(calls, _runtime.Calls.Count(c => c.StartsWith("create:", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task SpecTheAgentCannotBuild_TaskFailedToStartWithoutRetrying()
    {
        // The server refuses this (a tmpfs path twice); an agent given it anyway must not loop on it.
        _engine.Apply(Snapshot(1, Task("odd", ["app"], (_, c) =>
        {
            c["app"].LinuxParameters = new LinuxParameters();
            c["app"].LinuxParameters.Tmpfs.Add(new Tmpfs { ContainerPath = "/t", SizeMib = 1 });
            c["app"].LinuxParameters.Tmpfs.Add(new Tmpfs { ContainerPath = "/t", SizeMib = 2 }); // the same path twice
        })));

        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("odd"), "STOPPED"))[^1];
        await _engine.WhenIdleAsync();

        Assert.Equal("TaskFailedToStart", stopped.StopCode);
        Assert.StartsWith("CannotCreateContainerError: container app:", stopped.StoppedReason, StringComparison.Ordinal);
        Assert.Empty(Created());
    }

    [Fact]
    public async Task StartTimeout_DependencyNeverSucceeds_DependentGivesUpAndTheTaskStops()
    {
        _engine.Apply(Snapshot(1, Task("slow", ["init", "app"], (_, c) =>
        {
            c["init"].Essential = false;
            c["init"].StartTimeoutSeconds = 30;
            c["app"].DependsOn.Add(new ContainerDependency { ContainerName = "init", Condition = "SUCCESS" });
        })));
        await _engine.WhenIdleAsync();
        Assert.Equal(["init"], Created());

        _time.Advance(TimeSpan.FromSeconds(29));
        await _engine.WhenIdleAsync();
        Assert.Equal(["init"], Created()); // still waiting

        _time.Advance(TimeSpan.FromSeconds(2));
        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("slow"), "STOPPED"))[^1];

        Assert.Equal(["init"], Created());
        Assert.Equal("EssentialContainerExited", stopped.StopCode);
        var app = stopped.Containers.Single(c => c.Name == "app");
        Assert.Equal(143, app.ExitCode);
        Assert.Contains("[init] for target [app]", app.Reason, StringComparison.Ordinal);
        Assert.Contains("startTimeout of 30s", app.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task VolumesFromAContainerNotInTheTask_GivenUpInsteadOfWaitingForEver()
    {
        _engine.Apply(Snapshot(1, Task("ghost", ["app"], (_, c) => c["app"].VolumesFrom.Add(new VolumeFrom { SourceContainer = "ghost" }))));

        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("ghost"), "STOPPED"))[^1];

        Assert.Empty(Created());
        Assert.Contains("[ghost], which it takes volumes from or links to, is not in the task", stopped.Containers.Single().Reason, StringComparison.Ordinal);
    }
}
