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
internal sealed partial class AgentService(AgentOptions options, IDockerClient docker, TimeProvider time, ILoggerFactory loggers, IHostApplicationLifetime lifetime) : BackgroundService
{
    internal static readonly int[] EcsReservedPorts = [22, 2375, 2376, 51678, 51679];

    /// <summary>A half-open link to the server is noticed within KeepAlivePingDelay + KeepAlivePingTimeout (30 s).</summary>
    internal static readonly TimeSpan KeepAlivePingDelay = TimeSpan.FromSeconds(20);
    internal static readonly TimeSpan KeepAlivePingTimeout = TimeSpan.FromSeconds(10);
    private readonly ILogger _logger = loggers.CreateLogger<AgentService>();
    private AgentCredentials? _credentials;

    /// <summary>The process exit code when the agent stops because it cannot secure its channel.</summary>
    public const int TlsFailureExitCode = 4;

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var identity = AgentIdentity.LoadOrCreate(options.DataDirectory);
        var pulled = new PulledImages(Path.Combine(options.DataDirectory, "pulled-images.json"));
        var runtime = new DockerRuntime(docker, identity.AgentId, loggers.CreateLogger<DockerRuntime>(), time, pulled);
        // awslogs shipping; acknowledged cursors beside the identity (DATA/agent/logs/CONTAINER_ID.json).
        // Read from the json-file directly when it is on this host and readable, else through the logs API.
        var logSource = new Logs.JsonFileLogSource(docker, new Logs.DockerLogSource(docker), Logs.JsonFileLogSource.IsLocalEngine(options.DockerEndpoint),
            time, loggers.CreateLogger<Logs.JsonFileLogSource>());
        await using var logs = new Logs.LogShipper(logSource, Path.Combine(identity.Directory ?? options.DataDirectory, "logs"),
            time, loggers.CreateLogger<Logs.LogShipper>());
        var dockerSocket = HostPolicyCheck.SocketPathOf(options.DockerEndpoint
            ?? (Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } dockerHost && Uri.TryCreate(dockerHost, UriKind.Absolute, out var u) ? u : null));
        var hostPolicy = new HostPolicyCheck(options.HostPolicy, dockerSocket is null ? [] : [dockerSocket]);
        LogHostPolicy(_logger, options.HostPolicy.ToString());
        await using var engine = new TaskEngine(runtime, identity.AgentId, options.ServerUrl, options.ContainerLabels, options.TaskCleanupWait,
            options.ResyncInterval, time, loggers.CreateLogger<TaskEngine>(), logs, hostPolicy);
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
        if (options.Tls is { } tls && !await EnsureJoinedAsync(identity, tls, ct).ConfigureAwait(false))
        {
            return;
        }
        var roles = new Metadata.RoleCredentialCache(time);
        await using var metadata = options.MetadataEndpoint
            ? new Metadata.MetadataServer(docker, options.DockerEndpoint, identity.AgentId, engine.MetadataOf, options.AvailabilityZone, loggers, roles)
            : null;
        if (metadata is not null)
        {
            try
            {
                engine.MetadataBaseUri = await metadata.StartAsync(options.DataDirectory, options.MetadataPort, ct).ConfigureAwait(false);
                engine.CredentialsBaseUri = metadata.CredentialsBaseUri;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogMetadataUnavailable(_logger, e.GetBaseException().Message);
            }
        }
        using var cleanupStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var imageCleanup = options.ImageCleanup
            ? Task.Run(() => new ImageCleaner(docker, pulled, options, time, loggers.CreateLogger<ImageCleaner>()).RunAsync(cleanupStop.Token), CancellationToken.None)
            : Task.CompletedTask;
        var connection = new AgentConnection(identity, engine, c => DescribeHostAsync(runtime, c), OpenChannelAsync, heartbeats, time, Random.Shared,
            loggers.CreateLogger<AgentConnection>(), logs: logs, roles: roles);
        try
        {
            await connection.RunAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            await cleanupStop.CancelAsync().ConfigureAwait(false);
            await imageCleanup.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private async Task<(GrpcChannel, bool)> OpenChannelAsync(CancellationToken ct)
    {
        var endpoint = options.AgentEndpoint ?? await DiscoverAsync(options.ServerUrl, ct, tls: options.Tls is not null).ConfigureAwait(false);
        static void KeepAlive(SocketsHttpHandler h)
        {
            // The server sends nothing on an idle stream, so only HTTP/2 pings tell this agent that the
            // connection went half-open (server host gone, network cut): without them it would wait for TCP
            // retransmissions to give up (many minutes) before reconnecting.
            h.KeepAlivePingDelay = KeepAlivePingDelay;
            h.KeepAlivePingTimeout = KeepAlivePingTimeout;
            h.KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always;
            h.PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan;
        }
        SocketsHttpHandler handler;
        if (_credentials is { } creds)
        {
            // Mutual TLS: this agent's certificate, and only the CA it pinned at join time is trusted.
            var pin = creds.Pin;
            handler = AgentTls.Handler(pin, creds.Client, KeepAlive);
            var inner = handler.SslOptions.RemoteCertificateValidationCallback!;
            handler.SslOptions.RemoteCertificateValidationCallback = (sender, cert, chain, errors) =>
            {
                var ok = inner(sender, cert, chain, errors);
                if (!ok)
                {
                    LogServerNotTrusted(_logger, endpoint, pin.Failure ?? "");
                }
                return ok;
            };
        }
        else
        {
            handler = new SocketsHttpHandler();
            KeepAlive(handler);
        }
        return (GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true }), true);
    }

    /// <summary>
    /// Loads the agent's certificate, or joins with the token when it has none (retrying while the server is not
    /// reachable). When the server is not trusted or refuses the join, logs why and stops the process with
    /// <see cref="TlsFailureExitCode"/>: retrying would not change the answer.
    /// </summary>
    private async Task<bool> EnsureJoinedAsync(AgentIdentity identity, AgentTlsOptions tls, CancellationToken ct)
    {
        _credentials = AgentTls.Load(options.DataDirectory);
        if (_credentials is not null)
        {
            return true;
        }
        if (!JoinToken.TryParse(tls.JoinToken, out var token, out var error))
        {
            return Fail(string.IsNullOrEmpty(tls.JoinToken)
                ? $"this agent has not joined the server yet and no join token was given: start it once with --join TOKEN (run 'berth join-token' on the server to print it)"
                : $"--join: {error}");
        }
        var backoff = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            try
            {
                var endpoint = options.AgentEndpoint ?? await DiscoverAsync(options.ServerUrl, ct, tls: true).ConfigureAwait(false);
                _credentials = await AgentTls.JoinAsync(endpoint, options.DataDirectory, identity.AgentId, token, ct).ConfigureAwait(false);
                LogJoined(_logger, endpoint, _credentials.Client.SerialNumber, Path.Combine(options.DataDirectory, AgentTls.DirectoryName));
                return true;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return false;
            }
            catch (AgentTlsException e)
            {
                return Fail(e.Message);
            }
            catch (Exception e)
            {
                LogJoinRetry(_logger, e.GetBaseException().Message, backoff.TotalSeconds);
            }
            try
            {
                await Task.Delay(backoff, time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
            backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 5000));
        }

        bool Fail(string why)
        {
            LogCannotJoin(_logger, why);
            Environment.ExitCode = TlsFailureExitCode;
            lifetime.StopApplication();
            return false;
        }
    }

    /// <summary>The agents' gRPC endpoint that <paramref name="serverUrl"/>'s /_berth/health names.</summary>
    /// <remarks>
    /// The API port answers plain HTTP whatever the scheme of <paramref name="serverUrl"/>; the scheme only says
    /// whether the agent port is dialled with TLS (<paramref name="tls"/>). Nothing secret crosses here, and a forged
    /// port number leads to a server that cannot show a certificate of the pinned CA.
    /// </remarks>
    internal static async Task<Uri> DiscoverAsync(Uri serverUrl, CancellationToken ct, bool tls = false)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var probe = new UriBuilder(serverUrl) { Scheme = "http", Path = "/_berth/health", Query = "" }.Uri;
        var health = await http.GetFromJsonAsync(probe, AgentJsonContext.Default.HealthProbe, ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException("empty health answer");
        return new UriBuilder(tls ? "https" : "http", serverUrl.Host, health.AgentPort).Uri;
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
            Region = options.Region ?? "",
        };
        reg.ReservedPorts.AddRange(EcsReservedPorts);
        reg.Attributes["ecs.os-type"] = "linux";
        reg.Attributes["ecs.cpu-architecture"] = CpuArchitecture;
        reg.Attributes["ecs.instance-type"] = options.InstanceType;
        reg.Attributes["ecs.availability-zone"] = options.AvailabilityZone;
        reg.Attributes["ecs.os-family"] = "LINUX";
        if (!string.IsNullOrEmpty(options.CapacityProvider))
        {
            reg.Attributes[CapacityProviderAttribute] = options.CapacityProvider;
        }
        // ephemeralStorage: placement only picks instances whose Docker data root is at least as large as a task asks.
        if (await runtime.DataRootAsync(ct).ConfigureAwait(false) is { } root && EphemeralSpace.Measure(root) is { } space)
        {
            reg.Attributes[EphemeralSpace.Attribute] = EphemeralSpace.Format(space.TotalGib);
        }
        foreach (var (name, value) in options.HostPolicy.Attributes())
        {
            reg.Attributes[name] = value;
        }
        return reg;
    }

    /// <summary>The attribute that puts an instance in a capacity provider (the control plane's CapacityProviders.Attribute).</summary>
    internal const string CapacityProviderAttribute = "ecs.capacity-provider";

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

    [LoggerMessage(Level = LogLevel.Information, Message = "Joined the server at {Endpoint}: client certificate serial {Serial} kept in {Directory}; the join token is not needed any more")]
    private static partial void LogJoined(ILogger logger, Uri endpoint, string serial, string directory);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not reach the server to join ({Reason}); retrying in {Seconds} s")]
    private static partial void LogJoinRetry(ILogger logger, string reason, double seconds);

    [LoggerMessage(Level = LogLevel.Critical, Message = "This agent cannot join: {Reason}. Stopping.")]
    private static partial void LogCannotJoin(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "The server at {Endpoint} is not trusted: {Reason}")]
    private static partial void LogServerNotTrusted(ILogger logger, Uri endpoint, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The task metadata endpoint could not start ({Reason}); containers get no ECS_CONTAINER_METADATA_URI_V4")]
    private static partial void LogMetadataUnavailable(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Host policy: {Policy}")]
    private static partial void LogHostPolicy(ILogger logger, string policy);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Docker is not reachable ({Reason}); retrying in {Seconds} s")]
    private static partial void LogDockerUnavailable(ILogger logger, string reason, double seconds);
}
