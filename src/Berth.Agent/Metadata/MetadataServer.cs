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
    private readonly RoleCredentialCache? _roles;
    private WebApplication? _app;

    /// <summary>Where the SDKs accept a container credentials URI without TLS (with 169.254.170.23 and loopback).</summary>
    public static readonly IPAddress CredentialsAddress = IPAddress.Parse("169.254.170.2");

    public MetadataServer(IDockerClient docker, Uri? dockerEndpoint, string agentId, Func<string, TaskMetadataView?> tasks, string availabilityZone, ILoggerFactory loggers,
        RoleCredentialCache? roles = null)
    {
        _roles = roles;
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
    /// The task role credentials endpoint's base URI (<c>http://169.254.170.2:PORT/</c>, the metadata port); null
    /// when this host has no 169.254.170.2 and it could not be added, or there is no credential cache.
    /// </summary>
    public Uri? CredentialsBaseUri { get; private set; }

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
        // Task role credentials are served on 169.254.170.2 on the same port, so one port number kept in
        // metadata.json answers both after a restart.
        var credentials = _roles is not null && await EnsureCredentialsAddressAsync(ct).ConfigureAwait(false);
        try
        {
            _app = await BindAsync(address, credentials, wanted, ct).ConfigureAwait(false);
        }
        catch (IOException) when (port is null && wanted != 0)
        {
            // The port kept from the last run is taken meanwhile: a new one (containers started before lose theirs).
            LogPortTaken(_logger, wanted);
            _app = await BindAsync(address, credentials, 0, ct).ConfigureAwait(false);
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
        if (_credentialsBound)
        {
            CredentialsBaseUri = new Uri($"http://{CredentialsAddress}:{bound}/");
            LogCredentialsListening(_logger, CredentialsBaseUri);
        }
        return BaseUri;
    }

    private bool _credentialsBound;

    /// <summary>
    /// Listens on the bridge gateway and, when <paramref name="credentials"/>, on 169.254.170.2 with the same port
    /// (a free one on both when <paramref name="port"/> is 0). If 169.254.170.2 cannot take the port, the bridge alone.
    /// </summary>
    private async Task<WebApplication> BindAsync(IPAddress address, bool credentials, int port, CancellationToken ct)
    {
        _credentialsBound = false;
        if (credentials)
        {
            for (var attempt = 0; attempt < 5; attempt++)
            {
                var p = port != 0 ? port : FreePort(address);
                try
                {
                    var app = await ListenAsync([address, CredentialsAddress], p, ct).ConfigureAwait(false);
                    _credentialsBound = true;
                    return app;
                }
                catch (IOException) when (port == 0)
                {
                    // Taken on one of the two addresses between the probe and the bind: another port.
                }
                catch (IOException)
                {
                    break;
                }
            }
            LogCredentialsPortTaken(_logger, port);
        }
        return await ListenAsync([address], port, ct).ConfigureAwait(false);
    }

    private static int FreePort(IPAddress address)
    {
        var probe = new TcpListener(address, 0);
        probe.Start();
        try
        {
            return ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        finally
        {
            probe.Stop();
        }
    }

    /// <summary>
    /// True when 169.254.170.2 is an address of this host, adding it to <c>lo</c> (as a /32, which routes nothing
    /// else) when it is not. Containers reach it as they reach the bridge gateway: through their default route to the
    /// host, where a packet for a local address is delivered, whatever interface holds it. Needs root (CAP_NET_ADMIN).
    /// </summary>
    private async Task<bool> EnsureCredentialsAddressAsync(CancellationToken ct)
    {
        if (HasAddress(CredentialsAddress))
        {
            return true;
        }
        if (!OperatingSystem.IsLinux())
        {
            LogNoCredentialsAddress(_logger, "not Linux");
            return false;
        }
        string why;
        try
        {
            using var ip = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip", ["addr", "add", $"{CredentialsAddress}/32", "dev", "lo"])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            })!;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var error = await ip.StandardError.ReadToEndAsync(timeout.Token).ConfigureAwait(false);
            await ip.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            why = ip.ExitCode == 0 ? "" : error.Trim();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            why = e.Message;
        }
        // Another agent on this host may have added it meanwhile ("File exists"): what counts is that it is there.
        if (HasAddress(CredentialsAddress))
        {
            if (why.Length == 0)
            {
                LogCredentialsAddressAdded(_logger, CredentialsAddress);
            }
            return true;
        }
        LogNoCredentialsAddress(_logger, why.Length > 0 ? why : "the address did not appear");
        return false;
    }

    private static bool HasAddress(IPAddress address)
        => System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Any(a => a.Address.Equals(address));

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

    /// <summary>Most connections the metadata server holds at once (Kestrel queues no more: further ones are closed).</summary>
    internal const int MaxConnections = 1024;

    private async Task<WebApplication> ListenAsync(IPAddress[] addresses, int port, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_loggers);
        builder.WebHost.UseUrls();
        builder.WebHost.ConfigureKestrel(k =>
        {
            // Containers reach this server: one of them opening connections without end must not exhaust the agent's
            // descriptors. A host's containers polling metadata and credentials need far fewer.
            k.Limits.MaxConcurrentConnections = MaxConnections;
            k.Limits.MaxConcurrentUpgradedConnections = 0;
            foreach (var address in addresses)
            {
                k.Listen(address, port);
            }
        });
        var app = builder.Build();
        foreach (var v in Versions)
        {
            app.MapGet($"/{v}/{{token}}", ContainerAsync);
            app.MapGet($"/{v}/{{token}}/task", TaskAsync);
            app.MapGet($"/{v}/{{token}}/stats", ContainerStatsAsync);
            app.MapGet($"/{v}/{{token}}/task/stats", TaskStatsAsync);
        }
        app.MapGet("/v2/credentials/{token}", CredentialsAsync);
        app.MapGet("/v2/credentials", (HttpContext http) => CredentialsErrorAsync(http, StatusCodes.Status400BadRequest, "NoIdInRequest", "CredentialsV2Request: No Credential ID in the request"));
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
        if (await FindAsync(token, ct).ConfigureAwait(false) is { } c)
        {
            return c;
        }
        http.Response.StatusCode = StatusCodes.Status404NotFound;
        http.Response.ContentType = "application/json";
        // ECS answers an unknown container with a JSON string naming the problem.
        await http.Response.WriteAsync(JsonValue.Create("V4 container metadata handler: unable to find the container of this metadata URI")!.ToJsonString(), ct).ConfigureAwait(false);
        return null;
    }

    /// <summary>This agent's container whose metadata token is <paramref name="token"/>; null when there is none.</summary>
    private async Task<ContainerInspectResponse?> FindAsync(string token, CancellationToken ct)
    {
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
        return null;
    }

    /// <summary>
    /// GET /v2/credentials/TOKEN with <c>Authorization: AWS_CONTAINER_AUTHORIZATION_TOKEN</c>: the role credentials of
    /// the task of the container TOKEN names, in the ECS credentials endpoint's shape. Only with that container's own
    /// authorization token; never another container's or task's credentials.
    /// </summary>
    private async Task CredentialsAsync(HttpContext http)
    {
        var token = http.Request.RouteValues["token"] as string ?? "";
        var ct = http.RequestAborted;
        var c = token.Length == 0 ? null : await FindAsync(token, ct).ConfigureAwait(false);
        var expected = MetadataDocuments.Get(c?.Config?.Labels, ContainerLabels.CredentialsToken);
        var arn = MetadataDocuments.Get(c?.Config?.Labels, ContainerLabels.TaskArn);
        if (c is null || expected is null || arn is null || _roles is null)
        {
            await CredentialsErrorAsync(http, StatusCodes.Status400BadRequest, "InvalidIdInRequest", "CredentialsV2Request: Credentials not found").ConfigureAwait(false);
            return;
        }
        var presented = http.Request.Headers.Authorization.ToString();
        if (presented.Length == 0)
        {
            await CredentialsErrorAsync(http, StatusCodes.Status400BadRequest, "NoAuthorizationToken", "CredentialsV2Request: the Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN) is missing").ConfigureAwait(false);
            return;
        }
        if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(presented), System.Text.Encoding.UTF8.GetBytes(expected)))
        {
            await CredentialsErrorAsync(http, StatusCodes.Status403Forbidden, "AccessDenied", "CredentialsV2Request: the authorization token is not this container's").ConfigureAwait(false);
            return;
        }
        if (_tasks(arn)?.KnownStatus == "STOPPED")
        {
            await CredentialsErrorAsync(http, StatusCodes.Status400BadRequest, "InvalidIdInRequest", "CredentialsV2Request: Credentials not found (the task has stopped)").ConfigureAwait(false);
            return;
        }
        var role = await _roles.GetAsync(arn, TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
        if (role is null)
        {
            await CredentialsErrorAsync(http, StatusCodes.Status400BadRequest, "InvalidIdInRequest", "CredentialsV2Request: Credentials not found (not issued by the control plane yet)").ConfigureAwait(false);
            return;
        }
        await WriteJsonAsync(http, new JsonObject
        {
            ["RoleArn"] = role.RoleArn,
            ["AccessKeyId"] = role.AccessKeyId,
            ["SecretAccessKey"] = role.SecretAccessKey,
            ["Token"] = role.SessionToken,
            ["Expiration"] = DateTimeOffset.FromUnixTimeMilliseconds(role.ExpirationMs).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
        }).ConfigureAwait(false);
    }

    private static async Task CredentialsErrorAsync(HttpContext http, int status, string code, string message)
    {
        http.Response.StatusCode = status;
        await WriteJsonAsync(http, new JsonObject { ["code"] = code, ["message"] = message }).ConfigureAwait(false);
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Task role credentials endpoint listening on {BaseUri}")]
    private static partial void LogCredentialsListening(ILogger logger, Uri baseUri);

    [LoggerMessage(Level = LogLevel.Information, Message = "Added {Address}/32 to lo for the task role credentials endpoint")]
    private static partial void LogCredentialsAddressAdded(ILogger logger, IPAddress address);

    [LoggerMessage(Level = LogLevel.Warning, Message = "169.254.170.2 is not an address of this host and could not be added ({Reason}; 'ip addr add 169.254.170.2/32 dev lo' needs root): tasks with a taskRoleArn get no AWS_CONTAINER_CREDENTIALS_FULL_URI")]
    private static partial void LogNoCredentialsAddress(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Port {Port} is taken on 169.254.170.2: no task role credentials endpoint (tasks with a taskRoleArn get no AWS_CONTAINER_CREDENTIALS_FULL_URI)")]
    private static partial void LogCredentialsPortTaken(ILogger logger, int port);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Metadata endpoint port {Port} is taken; listening on another (containers started before get no answer)")]
    private static partial void LogPortTaken(ILogger logger, int port);
}
