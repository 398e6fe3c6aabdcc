using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Berth.Agent.Metadata;

/// <summary>
/// The task metadata endpoint v4 (and v3, the same documents) this agent serves to the containers it starts.
/// </summary>
/// <remarks>
/// Where it listens: on the gateway address of Docker's default <c>bridge</c> network (docker0, e.g. 172.17.0.1),
/// never on 0.0.0.0. That address is the host's own, so a bridge container reaches it through its default route,
/// a host-network container directly, and a container on any other Docker network (awsvpc tasks' user-defined
/// networks) through its own gateway, as packets to a local address go to the host's INPUT, not through Docker's
/// inter-network FORWARD isolation. ECS uses 169.254.170.2 with an iptables redirect instead; Berth needs no
/// iptables. The port is chosen per agent (several agents may share one host) and kept in
/// <c>DATA/metadata.json</c>, so containers that outlive an agent restart keep a URI that answers.
/// Each container's URI ends with a random token of its own (label <c>berth.metadata-token</c>): the token names
/// the container, and one container cannot guess another task's.
/// </remarks>
internal sealed partial class MetadataServer : IAsyncDisposable
{
    private static readonly string[] Versions = ["v3", "v4"];
    private readonly IDockerClient _docker;
    private readonly string _agentId;
    private readonly Func<string, TaskMetadataView?> _tasks;
    private readonly string _availabilityZone;
    private readonly HttpClient _dockerHttp;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggers;
    private readonly ConcurrentDictionary<string, string> _containerOfToken = new(StringComparer.Ordinal);
    private WebApplication? _app;

    public MetadataServer(IDockerClient docker, Uri? dockerEndpoint, string agentId, Func<string, TaskMetadataView?> tasks, string availabilityZone, ILoggerFactory loggers)
    {
        _docker = docker;
        _agentId = agentId;
        _tasks = tasks;
        _availabilityZone = availabilityZone;
        _loggers = loggers;
        _logger = loggers.CreateLogger<MetadataServer>();
        _dockerHttp = DockerHttp(dockerEndpoint);
    }

    /// <summary>The base URI containers are given (<c>http://ADDR:PORT/</c>); null before the server started.</summary>
    public Uri? BaseUri { get; private set; }

    /// <summary>
    /// Listens on the Docker bridge's gateway address, on <paramref name="port"/> when given, else on the port kept in
    /// <paramref name="dataDirectory"/>, else on a free one. Null (and a warning) when Docker has no bridge network.
    /// </summary>
    public async Task<Uri?> StartAsync(string dataDirectory, int? port, CancellationToken ct)
    {
        var address = await BridgeGatewayAsync(ct).ConfigureAwait(false);
        if (address is null)
        {
            LogNoBridge(_logger);
            return null;
        }
        var stateFile = Path.Combine(dataDirectory, "metadata.json");
        var wanted = port ?? ReadPort(stateFile) ?? 0;
        try
        {
            _app = await ListenAsync(address, wanted, ct).ConfigureAwait(false);
        }
        catch (IOException) when (port is null && wanted != 0)
        {
            // The port kept from the last run is taken meanwhile: a new one (containers started before lose theirs).
            LogPortTaken(_logger, wanted);
            _app = await ListenAsync(address, 0, ct).ConfigureAwait(false);
        }
        var bound = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).First().Port;
        if (bound != wanted)
        {
            Directory.CreateDirectory(dataDirectory);
            var tmp = stateFile + ".tmp";
            await File.WriteAllTextAsync(tmp, new JsonObject { ["port"] = bound }.ToJsonString(), ct).ConfigureAwait(false);
            File.Move(tmp, stateFile, overwrite: true);
        }
        BaseUri = new Uri($"http://{address}:{bound}/");
        LogListening(_logger, BaseUri);
        return BaseUri;
    }

    private async Task<IPAddress?> BridgeGatewayAsync(CancellationToken ct)
    {
        try
        {
            var bridge = await _docker.Networks.InspectNetworkAsync("bridge", ct).ConfigureAwait(false);
            var gateway = bridge.IPAM?.Config?.Select(c => c.Gateway).FirstOrDefault(g => IPAddress.TryParse(g, out var a) && a.AddressFamily == AddressFamily.InterNetwork);
            return gateway is null ? null : IPAddress.Parse(gateway);
        }
        catch (DockerApiException)
        {
            return null;
        }
    }

    private static int? ReadPort(string file)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(file))?["port"]?.GetValue<int>() is { } p and > 0 and < 65536 ? p : null;
        }
        catch (Exception e) when (e is IOException or JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    private async Task<WebApplication> ListenAsync(IPAddress address, int port, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_loggers);
        builder.WebHost.UseUrls();
        builder.WebHost.ConfigureKestrel(k => k.Listen(address, port));
        var app = builder.Build();
        foreach (var v in Versions)
        {
            app.MapGet($"/{v}/{{token}}", ContainerAsync);
            app.MapGet($"/{v}/{{token}}/task", TaskAsync);
            app.MapGet($"/{v}/{{token}}/stats", ContainerStatsAsync);
            app.MapGet($"/{v}/{{token}}/task/stats", TaskStatsAsync);
        }
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return app;
    }

    private async Task ContainerAsync(HttpContext http)
    {
        if (await ResolveAsync(http) is not { } c)
        {
            return;
        }
        var arn = MetadataDocuments.Get(c.Config?.Labels, ContainerLabels.TaskArn) ?? "";
        var owner = MetadataDocuments.NetworkOwnerId(c) is { } ownerId ? await InspectAsync(ownerId, http.RequestAborted).ConfigureAwait(false) : null;
        await WriteJsonAsync(http, MetadataDocuments.Container(c, _tasks(arn), owner)).ConfigureAwait(false);
    }

    private async Task TaskAsync(HttpContext http)
    {
        if (await ResolveAsync(http) is not { } c)
        {
            return;
        }
        var arn = MetadataDocuments.Get(c.Config?.Labels, ContainerLabels.TaskArn) ?? "";
        var containers = await TaskContainersAsync(arn, http.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(http, MetadataDocuments.Task(arn, _tasks(arn), containers, _availabilityZone)).ConfigureAwait(false);
    }

    private async Task ContainerStatsAsync(HttpContext http)
    {
        if (await ResolveAsync(http) is not { } c)
        {
            return;
        }
        var stats = await StatsAsync(c, http.RequestAborted).ConfigureAwait(false);
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(stats ?? "null", http.RequestAborted).ConfigureAwait(false);
    }

    private async Task TaskStatsAsync(HttpContext http)
    {
        if (await ResolveAsync(http) is not { } c)
        {
            return;
        }
        var arn = MetadataDocuments.Get(c.Config?.Labels, ContainerLabels.TaskArn) ?? "";
        var containers = await TaskContainersAsync(arn, http.RequestAborted).ConfigureAwait(false);
        var stats = await Task.WhenAll(containers.Select(x => StatsAsync(x, http.RequestAborted))).ConfigureAwait(false);
        // DockerId -> that container's Docker stats (null for one that is not running), as ECS answers.
        var o = new JsonObject();
        for (var i = 0; i < containers.Count; i++)
        {
            o[containers[i].ID] = stats[i] is { } s ? JsonNode.Parse(s) : null;
        }
        await WriteJsonAsync(http, o).ConfigureAwait(false);
    }

    /// <summary>The container whose token the path carries; answers 404 itself when there is none.</summary>
    private async Task<ContainerInspectResponse?> ResolveAsync(HttpContext http)
    {
        var token = http.Request.RouteValues["token"] as string ?? "";
        var ct = http.RequestAborted;
        if (_containerOfToken.TryGetValue(token, out var known) && await InspectAsync(known, ct).ConfigureAwait(false) is { } cached
            && MetadataDocuments.Get(cached.Config?.Labels, ContainerLabels.MetadataToken) == token)
        {
            return cached;
        }
        _containerOfToken.TryRemove(token, out _);
        var listed = token.Length == 0 ? [] : await _docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{ContainerLabels.AgentId}={_agentId}"] = true, [$"{ContainerLabels.MetadataToken}={token}"] = true },
            },
        }, ct).ConfigureAwait(false);
        if (listed.Count == 1 && await InspectAsync(listed[0].ID, ct).ConfigureAwait(false) is { } c)
        {
            _containerOfToken[token] = c.ID;
            return c;
        }
        http.Response.StatusCode = StatusCodes.Status404NotFound;
        http.Response.ContentType = "application/json";
        // ECS answers an unknown container with a JSON string naming the problem.
        await http.Response.WriteAsync(JsonValue.Create("V4 container metadata handler: unable to find the container of this metadata URI")!.ToJsonString(), ct).ConfigureAwait(false);
        return null;
    }

    private async Task<ContainerInspectResponse?> InspectAsync(string id, CancellationToken ct)
    {
        try
        {
            return await _docker.Containers.InspectContainerAsync(id, ct).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
            return null;
        }
    }

    private async Task<IReadOnlyList<ContainerInspectResponse>> TaskContainersAsync(string taskArn, CancellationToken ct)
    {
        var listed = await _docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{ContainerLabels.AgentId}={_agentId}"] = true, [$"{ContainerLabels.TaskArn}={taskArn}"] = true },
            },
        }, ct).ConfigureAwait(false);
        var inspected = await Task.WhenAll(listed.Select(c => InspectAsync(c.ID, ct))).ConfigureAwait(false);
        return [.. inspected.OfType<ContainerInspectResponse>()];
    }

    /// <summary>
    /// Docker's own stats document for one container, passed through unchanged (one sample, <c>stream=false</c>, so
    /// <c>precpu_stats</c> is filled as ECS's are); null when the container is not running.
    /// </summary>
    private async Task<string?> StatsAsync(ContainerInspectResponse c, CancellationToken ct)
    {
        if (c.State?.Running != true)
        {
            return null;
        }
        using var r = await _dockerHttp.GetAsync($"containers/{c.ID}/stats?stream=false", ct).ConfigureAwait(false);
        return r.IsSuccessStatusCode ? await r.Content.ReadAsStringAsync(ct).ConfigureAwait(false) : null;
    }

    private static async Task WriteJsonAsync(HttpContext http, JsonNode body)
    {
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(body.ToJsonString(), http.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>An HTTP client for Docker's API itself (the stats document is relayed as Docker writes it).</summary>
    private static HttpClient DockerHttp(Uri? endpoint)
    {
        var host = endpoint ?? new Uri(Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock");
        var version = $"v{AgentHosting.DockerApiVersion.Major}.{AgentHosting.DockerApiVersion.Minor}/";
        if (host.Scheme == "unix")
        {
            var socket = host.AbsolutePath;
            var handler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, token) =>
                {
                    var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), token).ConfigureAwait(false);
                        return new NetworkStream(s, ownsSocket: true);
                    }
                    catch
                    {
                        s.Dispose();
                        throw;
                    }
                },
            };
            return new HttpClient(handler) { BaseAddress = new Uri("http://docker/" + version), Timeout = TimeSpan.FromSeconds(30) };
        }
        return new HttpClient { BaseAddress = new Uri($"http://{host.Host}:{host.Port}/{version}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
        _dockerHttp.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Task metadata endpoint listening on {BaseUri}")]
    private static partial void LogListening(ILogger logger, Uri baseUri);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Docker has no bridge network with an IPv4 gateway: no task metadata endpoint (ECS_CONTAINER_METADATA_URI_V4 is not set)")]
    private static partial void LogNoBridge(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Metadata endpoint port {Port} is taken; listening on another (containers started before get no answer)")]
    private static partial void LogPortTaken(ILogger logger, int port);
}
