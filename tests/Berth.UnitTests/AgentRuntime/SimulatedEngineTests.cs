using System.Threading.Channels;
using Berth.Agent;
using Berth.Agent.Simulation;
using Berth.Core.Agent;
using Microsoft.Extensions.Time.Testing;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

public sealed class SimulatedEngineTests : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private readonly List<SimulatedDesiredChange> _changes = [];
    private readonly SimulatedEngine _engine;

    public SimulatedEngineTests()
    {
        _engine = new SimulatedEngine(new SimulationTimings(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(50)),
            _time, () => "arn:aws:ecs:us-east-1:000000000000:container-instance/default/sim", c => { lock (_changes) { _changes.Add(c); } });
    }

    public ValueTask DisposeAsync() => _engine.DisposeAsync();

    private static async Task<TaskStatusReport> NextAsync(ChannelReader<TaskStatusReport> reports)
        => await reports.ReadAsync().AsTask().WaitAsync(Timeout);

    private static long Ms(DateTimeOffset t) => t.ToUnixTimeMilliseconds();

    [Fact]
    public async Task Apply_NewTask_PlaysPullStartAndStopWithTheConfiguredDelays()
    {
        var t0 = _time.GetUtcNow();
        _engine.Apply(Snapshot(1, Desired("t1", lastSequence: 10)));

        var pending = await NextAsync(_engine.Reports);
        Assert.Equal(("PENDING", 11L, Ms(t0), 0L), (pending.LastStatus, pending.Sequence, pending.PullStartedAt, pending.PullStoppedAt));

        _time.Advance(TimeSpan.FromMilliseconds(49));
        Assert.False(_engine.Reports.TryRead(out _));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var pulled = await NextAsync(_engine.Reports);
        Assert.Equal(("PENDING", 12L, Ms(t0) + 50), (pulled.LastStatus, pulled.Sequence, pulled.PullStoppedAt));

        _time.Advance(TimeSpan.FromMilliseconds(99));
        Assert.False(_engine.Reports.TryRead(out _));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var running = await NextAsync(_engine.Reports);
        Assert.Equal(("RUNNING", 13L, Ms(t0) + 150), (running.LastStatus, running.Sequence, running.StartedAt));
        var binding = running.Containers.Single().NetworkBindings.Single();
        Assert.Equal((80, 32768, "tcp"), (binding.ContainerPort, binding.HostPort, binding.Protocol));
        Assert.Equal(1, _engine.Count("RUNNING"));

        _engine.Apply(Delta(2, [Desired("t1", desired: "STOPPED", last: "RUNNING", lastSequence: 13)]));
        Assert.Equal("DEPROVISIONING", (await NextAsync(_engine.Reports)).LastStatus);
        _time.Advance(TimeSpan.FromMilliseconds(50));
        var stopped = await NextAsync(_engine.Reports);
        Assert.Equal(("STOPPED", 15L, Ms(t0) + 200), (stopped.LastStatus, stopped.Sequence, stopped.ExecutionStoppedAt));
        var container = stopped.Containers.Single();
        Assert.True(container.HasExitCode);
        Assert.Equal(0, container.ExitCode);
    }

    [Fact]
    public async Task Apply_DynamicHostPorts_ComeFromAPerInstanceCounter()
    {
        _engine.Apply(Snapshot(1, Desired("a"), Desired("b")));
        for (var i = 0; i < 2; i++)
        {
            await NextAsync(_engine.Reports); // PENDING (pulling)
        }
        // Each step is scheduled when the one before it ends: move the clock one step at a time.
        _time.Advance(TimeSpan.FromMilliseconds(50));
        for (var i = 0; i < 2; i++)
        {
            Assert.True((await NextAsync(_engine.Reports)).PullStoppedAt > 0);
        }
        _time.Advance(TimeSpan.FromMilliseconds(100));

        var ports = new List<int>();
        for (var i = 0; i < 2; i++)
        {
            var r = await NextAsync(_engine.Reports);
            Assert.Equal("RUNNING", r.LastStatus);
            ports.Add(r.Containers.Single().NetworkBindings.Single().HostPort);
        }
        Assert.Equal([32768, 32769], ports.Order());
    }

    [Fact]
    public async Task Apply_TaskPastPending_IsReportedStoppedWithoutRunning()
    {
        _engine.Apply(Snapshot(1, Desired("lost", last: "RUNNING", lastSequence: 4)));

        var r = await NextAsync(_engine.Reports);

        Assert.Equal(("STOPPED", 5L, TaskEngine.LostStopCode), (r.LastStatus, r.Sequence, r.StopCode));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(_engine.Reports.TryRead(out _));
    }

    [Fact]
    public async Task Apply_StopWhilePending_CancelsTheStartAndStopsAtOnce()
    {
        _engine.Apply(Snapshot(1, Desired("t1")));
        Assert.Equal("PENDING", (await NextAsync(_engine.Reports)).LastStatus);

        _engine.Apply(Delta(2, [Desired("t1", desired: "STOPPED", last: "PENDING", lastSequence: 1)]));
        var stopped = await NextAsync(_engine.Reports);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal("STOPPED", stopped.LastStatus);
        Assert.False(stopped.Containers.Single().HasExitCode);
        Assert.False(_engine.Reports.TryRead(out _)); // the scheduled pull and start never report
    }

    [Fact]
    public void Apply_DesiredStoppedNeverStarted_AndRemovedTasksAreForgotten()
    {
        _engine.Apply(Snapshot(1, Desired("s", desired: "STOPPED", last: "STOPPED", lastSequence: 3), Desired("r")));
        var reported = new List<string>();
        while (_engine.Reports.TryRead(out var r))
        {
            reported.Add(r.TaskArn);
        }
        Assert.Equal([Arn("r")], reported); // "r" is pulling; "s" is over and says nothing
        Assert.Equal(["r", "s"], _engine.KnownTaskArns().Select(a => a[(a.LastIndexOf('/') + 1)..]).Order());

        _engine.Apply(Delta(2, [], Arn("r")));
        _engine.Apply(Snapshot(3));

        Assert.Empty(_engine.KnownTaskArns());
    }

    [Fact]
    public void Apply_ReportsEachDesiredChangeOnceWithItsArrivalTimestamp()
    {
        var before = _time.GetTimestamp();
        _engine.Apply(Snapshot(1, Desired("a")));
        _engine.Apply(Snapshot(2, Desired("a"))); // unchanged on a reconnect: not a change
        _time.Advance(TimeSpan.FromMilliseconds(5));
        _engine.Apply(Delta(3, [Desired("a", desired: "STOPPED")]));

        lock (_changes)
        {
            Assert.Equal(["RUNNING", "STOPPED"], _changes.Select(c => c.DesiredStatus));
            Assert.All(_changes, c => Assert.Equal(Arn("a"), c.TaskArn));
            Assert.Equal(before, _changes[0].ReceivedAtTimestamp);
            Assert.True(_changes[1].ReceivedAtTimestamp > _changes[0].ReceivedAtTimestamp);
        }
    }
}
