using System.Text.Json;
using Berth.Agent.Simulation;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>Simulated instances over real gRPC against <see cref="FakeGateway"/>: the connection code every agent shares.</summary>
public sealed class SimulatedFleetTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly FakeGateway _gateway = new();
    private readonly string _data = Path.Combine(Path.GetTempPath(), "berth-fleet-" + Guid.NewGuid().ToString("N"));

    public async ValueTask InitializeAsync() => await _gateway.StartAsync();

    public async ValueTask DisposeAsync()
    {
        await _gateway.DisposeAsync();
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }

    private SimulatedFleetOptions Options(int count, string? data = null) => new()
    {
        ServerUrl = new Uri("http://127.0.0.1:1"),
        AgentEndpoint = _gateway.Endpoint,
        Count = count,
        Cluster = "sim",
        PullDelay = TimeSpan.FromMilliseconds(1),
        StartDelay = TimeSpan.FromMilliseconds(1),
        StopDelay = TimeSpan.FromMilliseconds(1),
        DataDirectory = data,
    };

    [Fact]
    public async Task Start_RegistersEachInstanceWithItsOwnIdentityResourcesAndAttributes()
    {
        await using var fleet = new SimulatedFleet(Options(6));
        await fleet.StartAsync();
        await fleet.WaitUntilRegisteredAsync().WaitAsync(Timeout);

        var regs = _gateway.Registers.ToList();
        Assert.Equal(6, regs.Count);
        Assert.Equal(6, regs.Select(r => r.AgentId).Distinct().Count());
        Assert.All(regs, r => Assert.Equal(("sim", 2048, 4096L, ""), (r.Cluster, r.CpuUnits, r.MemoryMib, r.AgentSecret)));
        var byHost = regs.OrderBy(r => int.Parse(r.Hostname["sim-".Length..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1a", "us-east-1b", "us-east-1c"], byHost.Select(r => r.Attributes["ecs.availability-zone"]));
        Assert.Equal(["t3.medium", "t3.medium", "t3.medium", "m5.large", "m5.large", "m5.large"], byHost.Select(r => r.Attributes["ecs.instance-type"]));
        Assert.Equal(6, fleet.ContainerInstanceArns.Distinct().Count(a => a is not null));

        // Every instance acknowledges its first snapshot.
        var acked = new HashSet<string>();
        while (acked.Count < 6)
        {
            var (instance, m) = await _gateway.NextAsync(AgentMessage.BodyOneofCase.Ack);
            Assert.Equal(1, m.Ack.Generation);
            acked.Add(instance);
        }
    }

    [Fact]
    public async Task DesiredDelta_IsObservedAckedAndPlayedToRunningThenStopped()
    {
        await using var fleet = new SimulatedFleet(Options(2));
        var changes = new List<SimulatedDesiredChange>();
        fleet.DesiredChangeReceived += c => { lock (changes) { changes.Add(c); } };
        await fleet.StartAsync();
        await fleet.WaitUntilRegisteredAsync().WaitAsync(Timeout);
        var instance = fleet.ContainerInstanceArns[1]!;

        await _gateway.SendAsync(instance, Delta(2, [Desired("t1")]));
        await _gateway.NextAsync(AgentMessage.BodyOneofCase.Ack, m => m.Ack.Generation == 2); // acked before any report of it
        var running = await _gateway.NextAsync(AgentMessage.BodyOneofCase.TaskStatus, m => m.TaskStatus.LastStatus == "RUNNING");
        Assert.Equal(instance, running.Instance);
        Assert.Equal(3, running.Message.TaskStatus.Sequence); // PENDING 1, PENDING (pulled) 2, RUNNING 3

        await _gateway.SendAsync(instance, Delta(3, [Desired("t1", desired: "STOPPED", last: "RUNNING", lastSequence: 3)]));
        var stopped = await _gateway.NextAsync(AgentMessage.BodyOneofCase.TaskStatus, m => m.TaskStatus.LastStatus == "STOPPED");
        Assert.Equal(5, stopped.Message.TaskStatus.Sequence);
        Assert.Equal(1, fleet.CountTasks("STOPPED"));

        lock (changes)
        {
            Assert.Equal([("RUNNING", instance), ("STOPPED", instance)], changes.Select(c => (c.DesiredStatus, c.ContainerInstanceArn)));
        }
    }

    [Fact]
    public async Task Reconnect_PresentsTheSavedSecretArnAndKnownTasks_AndResendsWhatTheServerMissed()
    {
        await using var fleet = new SimulatedFleet(Options(1, _data));
        await fleet.StartAsync();
        await fleet.WaitUntilRegisteredAsync().WaitAsync(Timeout);
        var instance = fleet.ContainerInstanceArns[0]!;

        var saved = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(_data, "sim-0", "agent.json"))).RootElement;
        Assert.Equal(instance, saved.GetProperty("containerInstanceArn").GetString());
        Assert.Equal("secret-1", saved.GetProperty("agentSecret").GetString());

        await _gateway.SendAsync(instance, Delta(2, [Desired("t1")]));
        var running = await _gateway.NextAsync(AgentMessage.BodyOneofCase.TaskStatus, m => m.TaskStatus.LastStatus == "RUNNING");

        // The server applied only the first report before the connection dropped.
        _gateway.InitialSnapshot = _ => Snapshot(3, Desired("t1", last: "PENDING", lastSequence: 1));
        _gateway.Drop(instance);
        using var cts = new CancellationTokenSource(Timeout);
        while (_gateway.Registers.Count < 2)
        {
            await Task.Delay(10, cts.Token); // the agent's reconnect backoff is real time
        }
        var again = _gateway.Registers.Last();
        Assert.Equal((instance, "secret-1"), (again.ContainerInstanceArn, again.AgentSecret));
        Assert.Equal([Arn("t1")], again.KnownTaskArns);

        var resent = await _gateway.NextAsync(AgentMessage.BodyOneofCase.TaskStatus, m => m.TaskStatus.LastStatus == "RUNNING");
        Assert.Equal(running.Message.TaskStatus, resent.Message.TaskStatus);
    }

    [Fact]
    public async Task Rejected_AfterRegistering_LogsWhichIdentityFileToRemove()
    {
        var logs = new ListLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs));
        await using var fleet = new SimulatedFleet(Options(1, _data), loggers: loggers);
        await fleet.StartAsync();
        await fleet.WaitUntilRegisteredAsync().WaitAsync(Timeout);

        // The server now refuses the identity this agent kept (say, another process took the instance over).
        _gateway.RejectWith = "container instance ci1 belongs to another agent.";
        _gateway.Drop(fleet.ContainerInstanceArns[0]!);

        using var cts = new CancellationTokenSource(Timeout);
        while (!logs.Messages.Any(m => m.Level == LogLevel.Error))
        {
            await Task.Delay(10, cts.Token);
        }
        var error = logs.Messages.First(m => m.Level == LogLevel.Error).Text;
        Assert.Contains("container instance ci1 belongs to another agent", error, StringComparison.Ordinal);
        Assert.Contains($"kept in {Path.Combine(_data, "sim-0", "agent.json")}: to register this host as a new container instance, remove that file", error, StringComparison.Ordinal);
        Assert.DoesNotContain("..", error, StringComparison.Ordinal);
        Assert.True(_gateway.Registers.Count >= 2);
    }

    private sealed class ListLoggerProvider : ILoggerProvider
    {
        private readonly List<(LogLevel Level, string Text)> _messages = [];

        public IReadOnlyList<(LogLevel Level, string Text)> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(ListLoggerProvider owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (owner._messages)
                {
                    owner._messages.Add((logLevel, formatter(state, exception)));
                }
            }
        }
    }
}
