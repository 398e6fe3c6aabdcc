using Berth.Agent;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// <see cref="TaskEngine"/> with an awsvpc task over the fake runtime: the pause container comes first and the task's
/// containers join its namespace; its address is reported; it stops last, at once, and goes with the task.
/// </summary>
public sealed class AwsvpcTaskEngineTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly FakeContainerRuntime _runtime = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private TaskEngine _engine = null!;

    public async ValueTask InitializeAsync()
    {
        _engine = new TaskEngine(_runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string> { ["berth.test-run"] = "x" },
            TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60), _time, NullLogger<TaskEngine>.Instance);
        await _engine.StartAsync(CancellationToken.None);
        await _runtime.WaitUntilWatchedAsync(Timeout);
    }

    public async ValueTask DisposeAsync() => await _engine.DisposeAsync();

    private static DesiredTask Awsvpc(string id, string desired = "RUNNING")
    {
        var d = Desired(id, desired: desired, containers: ["web", "sidecar"]);
        d.Spec.NetworkMode = "awsvpc";
        d.Spec.Containers[0].Hostname = "ignored";
        return d;
    }

    [Fact]
    public async Task Launch_PauseFirst_ContainersJoinItsNamespace_AddressReported()
    {
        _engine.Apply(Snapshot(1, Awsvpc("v1")));
        var reports = await ReadUntilAsync(_engine.Reports, Arn("v1"), "RUNNING");
        await _engine.WhenIdleAsync();

        var creates = _runtime.Calls.Where(c => c.StartsWith("create:", StringComparison.Ordinal) || c == "awsvpc").ToList();
        Assert.Equal(["awsvpc", "create:" + AwsvpcNetwork.PauseContainerName, "create:web", "create:sidecar"], creates);
        var pause = _runtime.Created[0];
        Assert.Equal(AwsvpcNetwork.Name, pause.HostConfig!.NetworkMode);
        Assert.Equal(Berth.Agent.Runtime.PauseImage.Reference, pause.Image);
        Assert.Equal(Arn("v1"), pause.Labels[ContainerLabels.TaskArn]);
        Assert.Equal("x", pause.Labels["berth.test-run"]); // found and removed by the same labels as the task's containers
        var pauseId = _runtime.IdOf(Arn("v1"), AwsvpcNetwork.PauseContainerName);
        foreach (var c in _runtime.Created.Skip(1))
        {
            Assert.Equal("container:" + pauseId, c.HostConfig!.NetworkMode);
            Assert.Null(c.Hostname);
            Assert.Null(c.ExposedPorts);
            Assert.Null(c.HostConfig.PortBindings);
        }
        var running = reports[^1];
        Assert.Equal(FakeContainerRuntime.PauseIp, running.PrivateIpv4Address);
        Assert.Equal(FakeContainerRuntime.PauseMac, running.MacAddress);
        // The pause container is Berth's, not the definition's: it is never reported as a container.
        Assert.Equal(["web", "sidecar"], running.Containers.Select(c => c.Name));
    }

    [Fact]
    public async Task Stop_PauseStopsLastWithoutGrace()
    {
        _engine.Apply(Snapshot(1, Awsvpc("v2")));
        await ReadUntilAsync(_engine.Reports, Arn("v2"), "RUNNING");
        await _engine.WhenIdleAsync();
        _runtime.ClearCalls();

        _engine.Apply(Delta(2, [Awsvpc("v2", desired: "STOPPED")]));
        await ReadUntilAsync(_engine.Reports, Arn("v2"), "STOPPED");

        var pauseId = _runtime.IdOf(Arn("v2"), AwsvpcNetwork.PauseContainerName);
        var stops = _runtime.Calls.Where(c => c.StartsWith("stop:", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, stops.Count);
        Assert.Equal("stop:" + pauseId, stops[^1]);
        Assert.Equal(0, _runtime.StopTimeouts[pauseId]); // it ignores SIGTERM: no point waiting
        Assert.Equal(5, _runtime.StopTimeouts[_runtime.IdOf(Arn("v2"), "web")]);
    }

    [Fact]
    public async Task Orphan_PauseRemovedWithTheTaskContainers()
    {
        _engine.Apply(Snapshot(1, Awsvpc("v3")));
        await ReadUntilAsync(_engine.Reports, Arn("v3"), "RUNNING");
        await _engine.WhenIdleAsync();

        _engine.Apply(Snapshot(2)); // the server no longer knows it
        await _engine.WhenIdleAsync();
        Assert.Empty(_runtime.Containers());
    }

    [Fact]
    public async Task AfterAgentRestart_PauseAdoptedByLabel_NoSecondOne()
    {
        var pause = _runtime.Add(Arn("v4"), AwsvpcNetwork.PauseContainerName);
        _runtime.Add(Arn("v4"), "web");
        _runtime.Add(Arn("v4"), "sidecar");
        await using var engine = new TaskEngine(_runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string>(),
            TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60), _time, NullLogger<TaskEngine>.Instance);
        await engine.StartAsync(CancellationToken.None);
        engine.Apply(Snapshot(1, Awsvpc("v4") is var d ? WithLast(d, "RUNNING") : null!));
        var reports = await ReadUntilAsync(engine.Reports, Arn("v4"), "RUNNING");
        await engine.WhenIdleAsync();
        Assert.DoesNotContain(_runtime.Calls, c => c.StartsWith("create:", StringComparison.Ordinal));
        Assert.Equal(FakeContainerRuntime.PauseIp, reports[^1].PrivateIpv4Address);
        Assert.Equal(pause, _runtime.IdOf(Arn("v4"), AwsvpcNetwork.PauseContainerName));
    }

    private static DesiredTask WithLast(DesiredTask d, string last)
    {
        d.LastStatus = last;
        return d;
    }
}
