using System.Globalization;
using Berth.Core.Agent;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Agent.Simulation;

/// <summary>Settings of a fleet of simulated container instances.</summary>
public sealed record SimulatedFleetOptions
{
    /// <summary>The control plane's URL, e.g. http://127.0.0.1:4566.</summary>
    public required Uri ServerUrl { get; init; }

    /// <summary>The agents' gRPC endpoint; when null it is discovered from ServerUrl's /_berth/health, as a real agent does.</summary>
    public Uri? AgentEndpoint { get; init; }

    /// <summary>How many container instances to register.</summary>
    public required int Count { get; init; }

    public string Cluster { get; init; } = "default";

    public int CpuUnits { get; init; } = 2048;

    public long MemoryMiB { get; init; } = 4096;

    /// <summary>ecs.instance-type values, spread over the instances.</summary>
    public IReadOnlyList<string> InstanceTypes { get; init; } = ["t3.medium", "m5.large", "c5.xlarge"];

    /// <summary>ecs.availability-zone values, given round robin (instance i gets zone i mod count).</summary>
    public IReadOnlyList<string> AvailabilityZones { get; init; } = ["us-east-1a", "us-east-1b", "us-east-1c"];

    public TimeSpan PullDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    public TimeSpan StartDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan StopDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where identities are kept (DIR/sim-N/agent.json); null: in memory, so every run registers new instances.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>The capacity provider every simulated instance belongs to (attribute ecs.capacity-provider); null: none.</summary>
    public string? CapacityProvider { get; init; }
}

/// <summary>A task's desired status as one simulated instance received it; <c>ReceivedAtTimestamp</c> is <see cref="TimeProvider.GetTimestamp"/> on arrival.</summary>
public readonly record struct SimulatedDesiredChange(string ContainerInstanceArn, string TaskArn, string DesiredStatus, long ReceivedAtTimestamp);

/// <summary>
/// N simulated container instances in one process, each registering over the real gRPC path with its own identity,
/// resources and attributes, and playing task transitions with delays instead of Docker. Like Kubernetes' hollow
/// nodes: for benchmarks and tests of the control plane at fleet scale.
/// </summary>
/// <remarks>
/// Built to carry thousands on two cores: one <see cref="GrpcChannel"/> whose handler opens as many HTTP/2
/// connections as the streams need (Kestrel allows 100 streams per connection), one heartbeat timer for all,
/// no thread or timer per instance, nothing that ticks while the fleet is idle except the staggered heartbeats.
/// </remarks>
public sealed partial class SimulatedFleet : IAsyncDisposable
{
    private readonly SimulatedFleetOptions _options;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _channelLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Member> _members = [];
    private readonly TaskCompletionSource _allRegistered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private HeartbeatWheel? _heartbeats;
    private GrpcChannel? _channel;
    private CancellationTokenSource? _linked;
    private int _registered;
    private int _disposed;

    public SimulatedFleet(SimulatedFleetOptions options, TimeProvider? time = null, ILoggerFactory? loggers = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Count);
        ArgumentOutOfRangeException.ThrowIfZero(options.InstanceTypes.Count, nameof(options.InstanceTypes));
        ArgumentOutOfRangeException.ThrowIfZero(options.AvailabilityZones.Count, nameof(options.AvailabilityZones));
        _options = options;
        _time = time ?? TimeProvider.System;
        _loggers = loggers ?? NullLoggerFactory.Instance;
        _logger = _loggers.CreateLogger<SimulatedFleet>();
    }

    /// <summary>Raised on an instance's connection when it receives a task it did not have, or a new desired status for one (from its own desired-state stream).</summary>
    public event Action<SimulatedDesiredChange>? DesiredChangeReceived;

    public int Count => _options.Count;

    /// <summary>Instances that have registered at least once.</summary>
    public int RegisteredCount => Volatile.Read(ref _registered);

    /// <summary>Instances' ARNs in instance order (null until an instance first registers).</summary>
    public IReadOnlyList<string?> ContainerInstanceArns
    {
        get
        {
            lock (_members)
            {
                return [.. _members.Select(m => m.Connection.ContainerInstanceArn)];
            }
        }
    }

    /// <summary>Tasks in <paramref name="status"/> (PENDING, RUNNING, DEPROVISIONING, STOPPED) across the fleet.</summary>
    public int CountTasks(string status)
    {
        lock (_members)
        {
            return _members.Sum(m => m.Engine.Count(status));
        }
    }

    /// <summary>Starts every instance's connection and returns; see <see cref="WaitUntilRegisteredAsync"/>.</summary>
    public Task StartAsync(CancellationToken ct = default)
    {
        if (_heartbeats is not null)
        {
            throw new InvalidOperationException("the fleet is already started");
        }
        // One bucket per second of the interval: each second a tenth of the fleet beats (with 10 s).
        _heartbeats = new HeartbeatWheel(_options.HeartbeatInterval, Math.Max(1, (int)_options.HeartbeatInterval.TotalSeconds), _time);
        var timings = new SimulationTimings(_options.PullDelay, _options.StartDelay, _options.StopDelay);
        var connectionLogger = _loggers.CreateLogger<AgentConnection>();
        var random = new Random();
        _linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _stop.Token);
        var linked = _linked;
        for (var i = 0; i < _options.Count; i++)
        {
            var index = i;
            var identity = _options.DataDirectory is { } dir
                ? AgentIdentity.LoadOrCreate(Path.Combine(dir, string.Create(CultureInfo.InvariantCulture, $"sim-{index}")))
                : AgentIdentity.InMemory();
            AgentConnection? connection = null;
            var engine = new SimulatedEngine(timings, _time, () => connection?.ContainerInstanceArn, c => DesiredChangeReceived?.Invoke(c));
            connection = new AgentConnection(identity, engine, _ => Task.FromResult(DescribeHost(index)), SharedChannelAsync, _heartbeats, _time,
                random, connectionLogger, quiet: true);
            var firstTime = 1;
            connection.Registered += _ =>
            {
                if (Interlocked.Exchange(ref firstTime, 0) == 1 && Interlocked.Increment(ref _registered) == _options.Count)
                {
                    LogAllRegistered(_logger, _options.Count);
                    _allRegistered.TrySetResult();
                }
            };
            var member = new Member(connection, engine);
            lock (_members)
            {
                _members.Add(member);
            }
            member.Run = Task.Run(() => connection.RunAsync(linked.Token), CancellationToken.None);
        }
        return Task.CompletedTask;
    }

    /// <summary>Completes once every instance has registered.</summary>
    public Task WaitUntilRegisteredAsync(CancellationToken ct = default) => _allRegistered.Task.WaitAsync(ct);

    private Register DescribeHost(int index)
    {
        var zones = _options.AvailabilityZones;
        var types = _options.InstanceTypes;
        var reg = new Register
        {
            Cluster = _options.Cluster,
            CpuUnits = _options.CpuUnits,
            MemoryMib = _options.MemoryMiB,
            AgentVersion = AgentService.AgentVersion,
            AgentHash = "berth",
            DockerVersion = "simulated",
            Hostname = string.Create(CultureInfo.InvariantCulture, $"sim-{index}"),
        };
        reg.ReservedPorts.AddRange(AgentService.EcsReservedPorts);
        reg.Attributes["ecs.os-type"] = "linux";
        reg.Attributes["ecs.os-family"] = "LINUX";
        reg.Attributes["ecs.cpu-architecture"] = AgentService.CpuArchitecture;
        reg.Attributes["ecs.availability-zone"] = zones[index % zones.Count];
        // Types vary across zones too: instance i's type steps once per round of zones.
        reg.Attributes["ecs.instance-type"] = types[index / zones.Count % types.Count];
        if (!string.IsNullOrEmpty(_options.CapacityProvider))
        {
            reg.Attributes[AgentService.CapacityProviderAttribute] = _options.CapacityProvider;
        }
        return reg;
    }

    private async Task<(GrpcChannel, bool)> SharedChannelAsync(CancellationToken ct)
    {
        if (Volatile.Read(ref _channel) is { } ready)
        {
            return (ready, false);
        }
        await _channelLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_channel is null)
            {
                var endpoint = _options.AgentEndpoint ?? await AgentService.DiscoverAsync(_options.ServerUrl, ct).ConfigureAwait(false);
                Volatile.Write(ref _channel, GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
                {
                    HttpHandler = new SocketsHttpHandler
                    {
                        // Kestrel allows 100 concurrent streams per HTTP/2 connection; thousands of instances need more connections.
                        EnableMultipleHttp2Connections = true,
                        PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                        KeepAlivePingDelay = TimeSpan.FromSeconds(60),
                        KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
                    },
                }));
            }
            return (_channel!, false);
        }
        finally
        {
            _channelLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        List<Member> members;
        lock (_members)
        {
            members = [.. _members];
        }
        foreach (var m in members)
        {
            if (m.Run is not null)
            {
                await m.Run.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            await m.Engine.DisposeAsync().ConfigureAwait(false);
        }
        if (_heartbeats is not null)
        {
            await _heartbeats.DisposeAsync().ConfigureAwait(false);
        }
        _channel?.Dispose();
        _channelLock.Dispose();
        _linked?.Dispose();
        _stop.Dispose();
    }

    private sealed class Member(AgentConnection connection, SimulatedEngine engine)
    {
        public AgentConnection Connection { get; } = connection;
        public SimulatedEngine Engine { get; } = engine;
        public Task? Run { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "All {Count} simulated container instances registered")]
    private static partial void LogAllRegistered(ILogger logger, int count);
}
