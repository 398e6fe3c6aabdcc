using System.Globalization;
using Berth.Aws.Elbv2;
using Berth.LoadBalancer.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>
/// Runs the data plane: a second Kestrel server inside the process whose endpoints are the listener
/// ports, with YARP behind them. A reconcile loop follows the ELBv2 state: it rebuilds the routing
/// table and the YARP config, opens and closes listener ports (Kestrel rebinds only the endpoints that
/// changed, so other listeners keep their connections), marks new load balancers active, and ends
/// draining for targets whose delay passed or that have nothing in flight. It serves every region's listeners
/// (<see cref="Elbv2Regions"/>): ports are this host's, one listener each across regions.
/// </summary>
internal sealed partial class DataPlaneHost(
    Elbv2Regions regions,
    TargetHealthBook book,
    DataPlaneMetrics metrics,
    IInstanceAddressResolver instances,
    LoadBalancerOptions options,
    TimeProvider time,
    ILoggerFactory loggerFactory) : BackgroundService
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<DataPlaneHost>();
    private readonly RoutingState _routing = new();
    private readonly Elbv2ProxyConfigProvider _config = new();
    private readonly ListenerEndpoints _endpoints = new();
    private readonly Dictionary<(string Group, string Key), DestinationState> _draining = [];
    private readonly InFlightRequests _inFlight = new();
    private IHost? _app;
    private Fast.FastPath? _fast;
    private IReadOnlySet<int> _ports = new HashSet<int>();

    /// <summary>The listener ports currently bound.</summary>
    public IReadOnlySet<int> Ports => _ports;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (Fast.FastPath.Supported)
        {
            _fast = new Fast.FastPath(_routing, regions, metrics, _inFlight, options, time, _logger);
        }
        _app = BuildApp();
        var applied = regions.Generation;
        RestoreVerdicts();
        if (_fast is not null)
        {
            _fast.Lookup = _app.Services.GetRequiredService<IProxyStateLookup>();
            var policies = _app.Services.GetServices<Yarp.ReverseProxy.LoadBalancing.ILoadBalancingPolicy>().ToList();
            _fast.RoundRobin = policies.OfType<SlowStartRoundRobinPolicy>().Single();
            _fast.LeastOutstanding = policies.OfType<LeastOutstandingRequestsPolicy>().Single();
        }
        Reconcile(first: true);
        await _app.StartAsync(stoppingToken).ConfigureAwait(false);
        while (!stoppingToken.IsCancellationRequested)
        {
            var seen = regions.Generation;
            try
            {
                // Rebuild the routes and clusters only when the state changed; draining is swept every pass.
                if (seen != applied)
                {
                    Reconcile(first: false);
                    applied = seen;
                }
                await MarkActiveAsync(stoppingToken).ConfigureAwait(false);
                Sweep();
                await PersistVerdictsAsync(force: false, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogReconcileFailed(_logger, e);
            }
            try
            {
                await regions.WaitForChangeAsync(seen, options.SweepInterval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await PersistVerdictsAsync(force: true, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogVerdictsNotSaved(_logger, e);
        }
        _fast?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
            if (_app is IAsyncDisposable disposable)
            {
                await disposable.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                _app.Dispose();
            }
        }
    }

    private IHost BuildApp()
    {
        // A bare generic host rather than WebApplication: WebApplication adds routing and authorization middleware of
        // its own around the pipeline, and every listener request would pay for them. The pipeline here is one handler.
        var kestrelConfig = new ConfigurationBuilder().Add(_endpoints).Build();
        return new HostBuilder()
            .ConfigureServices(services =>
            {
                services.AddSingleton<ILoggerFactory>(new DataPlaneLoggerFactory(loggerFactory));
                services.AddSingleton(regions);
                services.AddSingleton(book);
                services.AddSingleton(metrics);
                services.AddSingleton(_routing);
                services.AddSingleton(_inFlight);
                services.AddSingleton(time);
                services.AddSingleton(Random.Shared);
                services.AddSingleton<AlbHeadersTransformer>();
                services.AddSingleton<RuleMiddleware>();
                // The AWSALB cookie is protected with a per-process key: after a restart clients are simply rebalanced.
                services.AddSingleton<Microsoft.AspNetCore.DataProtection.IDataProtectionProvider>(new Microsoft.AspNetCore.DataProtection.EphemeralDataProtectionProvider(loggerFactory));
                services.AddSingleton<IProxyConfigProvider>(_config);
                // YARP keeps the clusters (destinations, active health checks, HTTP clients) and the forwarder; no request
                // goes through its routes or middleware: RuleMiddleware chooses the cluster and target and calls the forwarder.
                services.AddReverseProxy();
                services.AddSingleton<IActiveHealthCheckPolicy, AlbHealthCheckPolicy>();
                services.AddSingleton<IAvailableDestinationsPolicy, FailOpenDestinationsPolicy>();
                services.AddSingleton<Yarp.ReverseProxy.LoadBalancing.ILoadBalancingPolicy, LeastOutstandingRequestsPolicy>();
                services.AddSingleton<Yarp.ReverseProxy.LoadBalancing.ILoadBalancingPolicy, SlowStartRoundRobinPolicy>();
                services.AddSingleton<IForwarderHttpClientFactory>(sp => new BerthForwarderHttpClientFactory(options.ConnectTimeout));
            })
            .ConfigureWebHost(web => web
                .UseKestrel(k =>
                {
                    if (_fast is not null)
                    {
                        // Listener ports are the fast path's; Kestrel serves what it hands over, on a private Unix socket.
                        k.ListenUnixSocket(_fast.KestrelSocketPath, l => l.Use(Fast.HandOverPreamble.Middleware));
                    }
                    else
                    {
                        k.Configure(kestrelConfig, reloadOnChange: true);
                        // Kestrel binds localhost:5000 when it has no endpoint at all; one ephemeral loopback port prevents that.
                        k.Listen(System.Net.IPAddress.Loopback, 0);
                    }
                    k.AddServerHeader = false;
                })
                // Run the request on the thread that completed the socket read instead of queueing it to the thread pool
                // again (and the response write likewise): the data plane's code never blocks, and each hop saved is a
                // thread-pool dispatch (often a thread wake-up) per request on a host with few cores.
                .UseSockets(o => o.UnsafePreferInlineScheduling = true)
                .Configure(app =>
                {
                    // YARP loads its configuration (creating the clusters, starting their health checks) when its routes
                    // are mapped; they are mapped into a route table no request goes through.
                    new DetachedEndpointRouteBuilder(app.ApplicationServices).MapReverseProxy();
                    var rules = app.ApplicationServices.GetRequiredService<RuleMiddleware>();
                    app.Run(rules.InvokeAsync);
                }))
            .Build();
    }

    private void Reconcile(bool first)
    {
        var states = regions.All.Select(r => r.State).ToList();
        var table = RoutingTable.Build(states);
        // Targets the book does not hold yet (new, or stored before a restart without a saved verdict) start in 'initial'.
        foreach (var tg in states.SelectMany(s => s.TargetGroups.All))
        {
            foreach (var t in tg.Value.Targets)
            {
                book.Registered(tg.Id, TargetHealthBook.Key(t.Id!, t.Port!.Value));
            }
        }
        var (routes, clusters) = Elbv2ProxyConfig.Build(states, instances);
        if (!first && _app is not null)
        {
            // Remember the live state of destinations about to disappear: draining ends when nothing is in flight.
            var lookup = _app.Services.GetRequiredService<IProxyStateLookup>();
            var nextById = clusters.ToDictionary(c => c.ClusterId, StringComparer.Ordinal);
            foreach (var cluster in lookup.GetClusters())
            {
                var next = nextById.GetValueOrDefault(cluster.ClusterId);
                foreach (var (key, dest) in cluster.Destinations)
                {
                    if (next?.Destinations?.ContainsKey(key) != true)
                    {
                        _draining[(cluster.ClusterId, key)] = dest;
                    }
                }
            }
        }
        _routing.Current = table;
        _config.Update(routes, clusters);
        var ports = table.ByPort.Keys.ToHashSet();
        if (!ports.SetEquals(_ports))
        {
            if (_fast is not null)
            {
                _fast.SetPorts(ports, options.BindAddress);
            }
            else
            {
                _endpoints.Set(ports, options.BindAddress);
            }
            _ports = ports;
            LogListeners(_logger, string.Join(", ", ports.Order()));
        }
    }

    private long _savedVerdicts;
    private DateTimeOffset _savedAt;

    /// <summary>
    /// Targets' verdicts from before a restart (options.HealthFile): a target still registered in the same group starts from
    /// its last verdict rather than from <c>initial</c>, so a server restart neither sends traffic to targets that were failing
    /// (ALB fails open while none is healthy) nor holds it back from healthy ones until their first check.
    /// </summary>
    private void RestoreVerdicts()
    {
        if (options.HealthFile is not { } file || !File.Exists(file))
        {
            return;
        }
        Dictionary<string, Dictionary<string, TargetVerdict>>? saved;
        try
        {
            saved = System.Text.Json.JsonSerializer.Deserialize(File.ReadAllBytes(file), VerdictJsonContext.Default.DictionaryStringDictionaryStringTargetVerdict);
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException or UnauthorizedAccessException)
        {
            LogVerdictsNotSaved(_logger, e);
            return;
        }
        foreach (var (tgId, targets) in saved ?? [])
        {
            if (regions.FindTargetGroup(tgId) is not { } tg)
            {
                continue;
            }
            var registered = tg.Targets.Select(t => TargetHealthBook.Key(t.Id!, t.Port!.Value)).ToHashSet(StringComparer.Ordinal);
            foreach (var (key, verdict) in targets)
            {
                if (registered.Contains(key))
                {
                    book.Restore(tgId, key, verdict);
                }
            }
        }
        _savedVerdicts = book.Verdicts;
    }

    /// <summary>Writes the verdicts when one changed, at most once a second (and at shutdown): a small file replaced atomically.</summary>
    private async Task PersistVerdictsAsync(bool force, CancellationToken ct)
    {
        var verdicts = book.Verdicts;
        var now = time.GetUtcNow();
        if (options.HealthFile is not { } file || verdicts == _savedVerdicts || (!force && now - _savedAt < TimeSpan.FromSeconds(1)))
        {
            return;
        }
        var tmp = file + ".tmp";
        await File.WriteAllBytesAsync(tmp, System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(book.ExportVerdicts(), VerdictJsonContext.Default.DictionaryStringDictionaryStringTargetVerdict), ct).ConfigureAwait(false);
        File.Move(tmp, file, overwrite: true);
        _savedVerdicts = verdicts;
        _savedAt = now;
    }

    private async Task MarkActiveAsync(CancellationToken ct)
    {
        foreach (var region in regions.All)
        {
            await MarkActiveAsync(region.State, ct).ConfigureAwait(false);
        }
    }

    private static async Task MarkActiveAsync(Elbv2State state, CancellationToken ct)
    {
        var pending = state.LoadBalancers.All.Where(l => l.Value.LoadBalancer.State?.Code == LoadBalancerStateEnumValues.Provisioning).ToList();
        if (pending.Count == 0)
        {
            return;
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        foreach (var p in pending)
        {
            if (state.LoadBalancers.Get(p.Id) is not { } current)
            {
                continue;
            }
            var copy = state.LoadBalancers.Clone(current.Value);
            copy.LoadBalancer.State = new LoadBalancerState { Code = LoadBalancerStateEnumValues.Active };
            tx.Put(state.LoadBalancers, p.Id, copy, current.Revision);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    private void Sweep()
    {
        var now = time.GetUtcNow();
        foreach (var group in book.Groups.ToList())
        {
            foreach (var (key, until) in book.Draining(group))
            {
                var live = _draining.GetValueOrDefault((group, key));
                if (now >= until || live is null || _inFlight.Count(live) == 0)
                {
                    book.Forget(group, key);
                    _draining.Remove((group, key));
                }
            }
        }
        // A captured destination may be seen before its deregistration reaches the book; keep it until the book forgets the target.
        foreach (var stale in _draining.Keys.Where(k => !book.Contains(k.Group, k.Key)).ToList())
        {
            _draining.Remove(stale);
        }
    }

    /// <summary>How many requests the fast path forwarded and how many connections it handed to Kestrel (Prometheus text).</summary>
    public string FastPathMetrics()
    {
        if (_fast is null)
        {
            return "";
        }
        long forwarded = 0, handedOver = 0;
        foreach (var loop in _fast.Loops)
        {
            forwarded += Volatile.Read(ref loop.Forwarded);
            handedOver += Volatile.Read(ref loop.HandedOver);
        }
        return "# HELP berth_alb_fast_path_requests Requests forwarded by the data plane's fast path (the others went through Kestrel).\n"
            + "# TYPE berth_alb_fast_path_requests counter\n"
            + $"berth_alb_fast_path_requests {forwarded}\n"
            + "# HELP berth_alb_handed_over_connections Listener connections the fast path handed to Kestrel + YARP.\n"
            + "# TYPE berth_alb_handed_over_connections counter\n"
            + $"berth_alb_handed_over_connections {handedOver}\n";
    }

    /// <summary>The (healthy, unhealthy) target counts per target group name, for the metrics page.</summary>
    public IReadOnlyDictionary<string, (int Healthy, int Unhealthy)> HostCounts()
    {
        var result = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        foreach (var tg in regions.All.SelectMany(r => r.State.TargetGroups.All))
        {
            var healthy = 0;
            var unhealthy = 0;
            foreach (var t in tg.Value.Targets)
            {
                var view = book.Find(tg.Id, TargetHealthBook.Key(t.Id!, t.Port!.Value), inUse: true);
                if (view?.State == TargetHealthStates.Healthy)
                {
                    healthy++;
                }
                else if (view?.State == TargetHealthStates.Unhealthy)
                {
                    unhealthy++;
                }
            }
            result[regions.MetricName(tg.Id) ?? tg.Value.TargetGroup.TargetGroupName!] = (healthy, unhealthy);
        }
        return result;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Load balancer listeners on ports: {Ports}")]
    private static partial void LogListeners(ILogger logger, string ports);

    [LoggerMessage(Level = LogLevel.Error, Message = "Load balancer data plane reconcile failed")]
    private static partial void LogReconcileFailed(ILogger logger, Exception e);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Target health verdicts could not be read or saved; targets start over in 'initial'")]
    private static partial void LogVerdictsNotSaved(ILogger logger, Exception e);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, Dictionary<string, TargetVerdict>>))]
internal sealed partial class VerdictJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>An endpoint route builder outside any request pipeline: its routes are built but never matched.</summary>
internal sealed class DetachedEndpointRouteBuilder(IServiceProvider services) : Microsoft.AspNetCore.Routing.IEndpointRouteBuilder
{
    public IServiceProvider ServiceProvider => services;

    public ICollection<Microsoft.AspNetCore.Routing.EndpointDataSource> DataSources { get; } = [];

    public Microsoft.AspNetCore.Builder.IApplicationBuilder CreateApplicationBuilder() => new ApplicationBuilder(services);
}

/// <summary>Kestrel endpoints as configuration, so that a reload binds new listener ports and unbinds removed ones.</summary>
internal sealed class ListenerEndpoints : ConfigurationProvider, IConfigurationSource
{
    public IConfigurationProvider Build(IConfigurationBuilder builder) => this;

    public void Set(IEnumerable<int> ports, System.Net.IPAddress bind)
    {
        var host = bind.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{bind}]" : bind.ToString();
        Data = ports.ToDictionary(
            p => $"Endpoints:L{p}:Url",
            p => (string?)$"http://{host}:{p}",
            StringComparer.OrdinalIgnoreCase);
        OnReload();
    }
}

/// <summary>YARP's client factory with ALB's connect timeout (10 s, then 504).</summary>
internal sealed class BerthForwarderHttpClientFactory(TimeSpan connectTimeout) : ForwarderHttpClientFactory
{
    protected override void ConfigureHandler(ForwarderHttpClientContext context, System.Net.Http.SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        handler.ConnectTimeout = connectTimeout;
        // ALB passes trace headers through untouched and adds none of its own (X-Amzn-Trace-Id is a transform).
        handler.ActivityHeadersPropagator = null;
    }
}

/// <summary>X-Amzn-Trace-Id as ALB writes it: Root=1-{epoch seconds, hex}-{96 random bits, hex}.</summary>
internal static class TraceId
{
    public const int Length = 40; // "Root=1-" + 8 hex + "-" + 24 hex

    /// <summary>Writes a new id as ASCII into <paramref name="dest"/> (at least <see cref="Length"/> bytes).</summary>
    public static void Write(Span<byte> dest, DateTimeOffset now)
    {
        "Root=1-"u8.CopyTo(dest);
        ((uint)now.ToUnixTimeSeconds()).TryFormat(dest[7..15], out _, "x8", CultureInfo.InvariantCulture);
        dest[15] = (byte)'-';
        Span<byte> random = stackalloc byte[12];
        Random.Shared.NextBytes(random);
        Convert.TryToHexStringLower(random, dest[16..Length], out _);
    }

    /// <summary>The 96 bits only tell requests apart (as ALB's do); they need not be unpredictable, so no crypto RNG.</summary>
    public static string New(DateTimeOffset now)
    {
        Span<byte> ascii = stackalloc byte[Length];
        Write(ascii, now);
        return System.Text.Encoding.ASCII.GetString(ascii);
    }
}

/// <summary>
/// The process's logger factory minus ASP.NET Core's hosting diagnostics: while that logger is enabled (it is, at any
/// level) the host starts an Activity and a log scope per request, and the HTTP client then propagates it — work the
/// data plane never reports.
/// </summary>
internal sealed class DataPlaneLoggerFactory(ILoggerFactory inner) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName)
        => categoryName.StartsWith("Microsoft.AspNetCore.Hosting", StringComparison.Ordinal)
            ? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance
            : inner.CreateLogger(categoryName);

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    // The process owns the inner factory.
    public void Dispose()
    {
    }
}
