using System.Net.Http.Json;
using System.Runtime.InteropServices;
using Berth.Core.Agent;
using Docker.DotNet;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Agent;

/// <summary>
/// The agent's connection to the control plane: registers the host, feeds the server's desired set to
/// the <see cref="TaskEngine"/> and the engine's reports back, and reconnects for ever with a capped backoff.
/// </summary>
internal sealed partial class AgentService(AgentOptions options, IDockerClient docker, TimeProvider time, ILoggerFactory loggers) : BackgroundService
{
    private static readonly int[] EcsReservedPorts = [22, 2375, 2376, 51678, 51679];
    private readonly ILogger _logger = loggers.CreateLogger<AgentService>();
    private bool _engineStarted;

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var identity = AgentIdentity.LoadOrCreate(options.DataDirectory);
        await using var engine = new TaskEngine(docker, identity.AgentId, options.ServerUrl, options.ContainerLabels, options.TaskCleanupWait, time, loggers.CreateLogger<TaskEngine>());
        var backoff = TimeSpan.FromMilliseconds(500);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (!_engineStarted)
                {
                    await engine.StartAsync(ct).ConfigureAwait(false);
                    _engineStarted = true;
                }
                await RunConnectionAsync(identity, engine, () => backoff = TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogConnectionLost(_logger, e.GetBaseException().Message, backoff.TotalSeconds);
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
    }


    private async Task RunConnectionAsync(AgentIdentity identity, TaskEngine engine, Action connected, CancellationToken ct)
    {
        var endpoint = options.AgentEndpoint ?? await DiscoverAsync(ct).ConfigureAwait(false);
        using var channel = GrpcChannel.ForAddress(endpoint);
        var client = new AgentGateway.AgentGatewayClient(channel);
        using var call = client.Connect(cancellationToken: ct);
        using var writeLock = new SemaphoreSlim(1, 1);
        async Task SendAsync(AgentMessage m)
        {
            await writeLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await call.RequestStream.WriteAsync(m, ct).ConfigureAwait(false);
            }
            finally
            {
                writeLock.Release();
            }
        }

        var register = await BuildRegisterAsync(identity, ct).ConfigureAwait(false);
        register.KnownTaskArns.AddRange(engine.KnownTaskArns());
        await SendAsync(new AgentMessage { Register = register }).ConfigureAwait(false);
        if (!await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
        {
            throw new InvalidOperationException("the server closed the stream before answering the registration");
        }
        var first = call.ResponseStream.Current;
        if (first.BodyCase == ServerMessage.BodyOneofCase.Rejected)
        {
            throw new InvalidOperationException($"registration rejected: {first.Rejected.Reason}");
        }
        if (first.BodyCase != ServerMessage.BodyOneofCase.Registered)
        {
            throw new InvalidOperationException($"expected Registered, got {first.BodyCase}");
        }
        if (identity.ContainerInstanceArn != first.Registered.ContainerInstanceArn || first.Registered.AgentSecret.Length > 0)
        {
            identity.ContainerInstanceArn = first.Registered.ContainerInstanceArn;
            if (first.Registered.AgentSecret.Length > 0)
            {
                identity.AgentSecret = first.Registered.AgentSecret;
            }
            identity.Save(options.DataDirectory);
        }
        LogRegistered(_logger, first.Registered.ContainerInstanceArn, endpoint.ToString());
        connected();

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // On every (re)connect the server gets the whole observed state first.
        foreach (var r in engine.Snapshot())
        {
            await SendAsync(new AgentMessage { TaskStatus = r }).ConfigureAwait(false);
        }
        var forward = Task.Run(async () =>
        {
            await foreach (var r in engine.Reports.ReadAllAsync(linked.Token).ConfigureAwait(false))
            {
                await SendAsync(new AgentMessage { TaskStatus = r }).ConfigureAwait(false);
            }
        }, linked.Token);
        var heartbeat = Task.Run(async () =>
        {
            long seq = 0;
            while (!linked.Token.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(10), time, linked.Token).ConfigureAwait(false);
                await SendAsync(new AgentMessage { Heartbeat = new Heartbeat { Sequence = ++seq } }).ConfigureAwait(false);
            }
        }, linked.Token);
        try
        {
            await foreach (var m in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (m.BodyCase == ServerMessage.BodyOneofCase.Desired)
                {
                    engine.ApplyDesired(m.Desired);
                    await SendAsync(new AgentMessage { Ack = new DesiredAck { Generation = m.Desired.Generation } }).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            await linked.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(forward, heartbeat).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        throw new RpcException(new Status(StatusCode.Unavailable, "the server ended the stream"));
    }

    private async Task<Uri> DiscoverAsync(CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var health = await http.GetFromJsonAsync(new Uri(options.ServerUrl, "/_berth/health"), AgentJsonContext.Default.HealthProbe, ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException("empty health answer");
        return new UriBuilder("http", options.ServerUrl.Host, health.AgentPort).Uri;
    }

    private async Task<Register> BuildRegisterAsync(AgentIdentity identity, CancellationToken ct)
    {
        var version = await docker.System.GetVersionAsync(ct).ConfigureAwait(false);
        var asm = typeof(AgentService).Assembly.GetName().Version?.ToString() ?? "0.0.0";
        var reg = new Register
        {
            Cluster = options.Cluster,
            ContainerInstanceArn = identity.ContainerInstanceArn ?? "",
            AgentId = identity.AgentId,
            AgentSecret = identity.AgentSecret ?? "",
            CpuUnits = options.CpuUnits ?? 1024 * Environment.ProcessorCount,
            MemoryMib = options.MemoryMiB ?? HostMemoryMiB(),
            AgentVersion = asm,
            AgentHash = "berth",
            DockerVersion = version.Version ?? "unknown",
            Hostname = Environment.MachineName,
        };
        reg.ReservedPorts.AddRange(EcsReservedPorts);
        reg.Attributes["ecs.os-type"] = "linux";
        reg.Attributes["ecs.cpu-architecture"] = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "arm64" : "x86_64";
        reg.Attributes["ecs.instance-type"] = options.InstanceType;
        reg.Attributes["ecs.availability-zone"] = options.AvailabilityZone;
        reg.Attributes["ecs.os-family"] = "LINUX";
        return reg;
    }

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

    [LoggerMessage(Level = LogLevel.Information, Message = "Registered as {ContainerInstanceArn} with {Endpoint}")]
    private static partial void LogRegistered(ILogger logger, string containerInstanceArn, string endpoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection to the control plane lost ({Reason}); retrying in {Seconds} s")]
    private static partial void LogConnectionLost(ILogger logger, string reason, double seconds);
}
