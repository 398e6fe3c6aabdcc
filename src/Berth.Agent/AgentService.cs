using System.Net.Http.Json;
using System.Runtime.InteropServices;
using Berth.Agent.Runtime;
using Berth.Core.Agent;
using Docker.DotNet;
using Grpc.Net.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Agent;

/// <summary>
/// The Docker agent as a hosted service: a <see cref="TaskEngine"/> over Docker behind one <see cref="AgentConnection"/>.
/// </summary>
internal sealed partial class AgentService(AgentOptions options, IDockerClient docker, TimeProvider time, ILoggerFactory loggers) : BackgroundService
{
    internal static readonly int[] EcsReservedPorts = [22, 2375, 2376, 51678, 51679];

    /// <summary>A half-open link to the server is noticed within KeepAlivePingDelay + KeepAlivePingTimeout (30 s).</summary>
    internal static readonly TimeSpan KeepAlivePingDelay = TimeSpan.FromSeconds(20);
    internal static readonly TimeSpan KeepAlivePingTimeout = TimeSpan.FromSeconds(10);
    private readonly ILogger _logger = loggers.CreateLogger<AgentService>();

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var identity = AgentIdentity.LoadOrCreate(options.DataDirectory);
        var runtime = new DockerRuntime(docker, identity.AgentId, loggers.CreateLogger<DockerRuntime>(), time);
        // awslogs shipping; acknowledged cursors beside the identity (DATA/agent/logs/CONTAINER_ID.json).
        await using var logs = new Logs.LogShipper(new Logs.DockerLogSource(docker), Path.Combine(identity.Directory ?? options.DataDirectory, "logs"),
            time, loggers.CreateLogger<Logs.LogShipper>());
        await using var engine = new TaskEngine(runtime, identity.AgentId, options.ServerUrl, options.ContainerLabels, options.TaskCleanupWait,
            options.ResyncInterval, time, loggers.CreateLogger<TaskEngine>(), logs);
        await using var heartbeats = new HeartbeatWheel(options.HeartbeatInterval, 1, time);
        var backoff = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            try
            {
                await engine.StartAsync(ct).ConfigureAwait(false);
                break;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogDockerUnavailable(_logger, e.GetBaseException().Message, backoff.TotalSeconds);
            }
            try
            {
                await Task.Delay(backoff, time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 5000));
        }
        var connection = new AgentConnection(identity, engine, c => DescribeHostAsync(runtime, c), OpenChannelAsync, heartbeats, time, Random.Shared,
            loggers.CreateLogger<AgentConnection>(), logs: logs);
        await connection.RunAsync(ct).ConfigureAwait(false);
    }

    private async Task<(GrpcChannel, bool)> OpenChannelAsync(CancellationToken ct)
    {
        var endpoint = options.AgentEndpoint ?? await DiscoverAsync(options.ServerUrl, ct).ConfigureAwait(false);
        return (GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                // The server sends nothing on an idle stream, so only HTTP/2 pings tell this agent that the
                // connection went half-open (server host gone, network cut): without them it would wait for TCP
                // retransmissions to give up (many minutes) before reconnecting.
                KeepAlivePingDelay = KeepAlivePingDelay,
                KeepAlivePingTimeout = KeepAlivePingTimeout,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            },
            DisposeHttpClient = true,
        }), true);
    }

    /// <summary>The agents' gRPC endpoint that <paramref name="serverUrl"/>'s /_berth/health names.</summary>
    internal static async Task<Uri> DiscoverAsync(Uri serverUrl, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var health = await http.GetFromJsonAsync(new Uri(serverUrl, "/_berth/health"), AgentJsonContext.Default.HealthProbe, ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException("empty health answer");
        return new UriBuilder("http", serverUrl.Host, health.AgentPort).Uri;
    }

    private async Task<Register> DescribeHostAsync(IContainerRuntime runtime, CancellationToken ct)
    {
        var reg = new Register
        {
            Cluster = options.Cluster,
            CpuUnits = options.CpuUnits ?? 1024 * Environment.ProcessorCount,
            MemoryMib = options.MemoryMiB ?? HostMemoryMiB(),
            AgentVersion = AgentVersion,
            AgentHash = "berth",
            DockerVersion = await runtime.VersionAsync(ct).ConfigureAwait(false),
            Hostname = Environment.MachineName,
        };
        reg.ReservedPorts.AddRange(EcsReservedPorts);
        reg.Attributes["ecs.os-type"] = "linux";
        reg.Attributes["ecs.cpu-architecture"] = CpuArchitecture;
        reg.Attributes["ecs.instance-type"] = options.InstanceType;
        reg.Attributes["ecs.availability-zone"] = options.AvailabilityZone;
        reg.Attributes["ecs.os-family"] = "LINUX";
        return reg;
    }

    internal static string AgentVersion => typeof(AgentService).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    internal static string CpuArchitecture => RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "arm64" : "x86_64";

    private static long HostMemoryMiB()
    {
        // MemTotal in /proc/meminfo is in kB.
        foreach (var line in File.ReadLines("/proc/meminfo"))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var kb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
                return kb / 1024;
            }
        }
        return 1024;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Docker is not reachable ({Reason}); retrying in {Seconds} s")]
    private static partial void LogDockerUnavailable(ILogger logger, string reason, double seconds);
}
