using System.Collections.Frozen;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Berth.Aws.Elbv2;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.SessionAffinity;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>The routing table the data plane currently serves; swapped whole after every state change.</summary>
public sealed class RoutingState
{
    private volatile RoutingTable _current = RoutingTable.Empty;

    public RoutingTable Current
    {
        get => _current;
        set => _current = value;
    }
}

/// <summary>
/// The data plane's whole request path, as one terminal handler (no ASP.NET routing, no YARP middleware pipeline):
/// finds the listener by the local port, evaluates its rules by priority, answers fixed-response and redirect actions
/// itself, and for forward actions picks the target group (weighted, with the AWSALBTG cookie when group stickiness is
/// on), the target (the AWSALB cookie when the group is sticky, then the group's algorithm among the available targets)
/// and forwards with YARP's <see cref="IHttpForwarder"/>. Forwarding failures become ALB's status codes; every forwarded
/// request is counted. YARP still owns the clusters, their health checks and the HTTP clients.
/// </summary>
internal sealed class RuleMiddleware(
    RoutingState routing,
    IProxyStateLookup lookup,
    Elbv2Regions regions,
    DataPlaneMetrics metrics,
    Random random,
    IHttpForwarder forwarder,
    IEnumerable<ILoadBalancingPolicy> balancers,
    IEnumerable<ISessionAffinityPolicy> affinityPolicies,
    InFlightRequests inFlight,
    AlbHeadersTransformer transformer)
{
    public const string GroupStickinessCookie = "AWSALBTG";

    private readonly FrozenDictionary<string, ILoadBalancingPolicy> _balancers = balancers.ToFrozenDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
    private readonly FrozenDictionary<string, ISessionAffinityPolicy> _affinity = affinityPolicies.ToFrozenDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

    public async Task InvokeAsync(HttpContext context)
    {
        var table = routing.Current;
        if (!table.ByPort.TryGetValue(context.Connection.LocalPort, out var listener))
        {
            await ElbError(context, 503).ConfigureAwait(false);
            return;
        }
        var action = listener.Match(context.Request, context.Connection.RemoteIpAddress).Action;
        switch (action.Type)
        {
            case "fixed-response":
                await FixedResponse(context, action.FixedResponseConfig!).ConfigureAwait(false);
                return;
            case "redirect":
                Redirect(context, action.RedirectConfig!, listener.Port);
                return;
            default:
                break;
        }
        var tgId = PickTargetGroup(context, action.ForwardConfig!);
        if (tgId is null || !lookup.TryGetCluster(tgId, out var cluster))
        {
            await ElbError(context, 503).ConfigureAwait(false);
            return;
        }
        var name = regions.MetricName(tgId) ?? tgId;
        var started = Stopwatch.GetTimestamp();
        var result = await ForwardAsync(context, cluster).ConfigureAwait(false);
        if (result == ForwarderError.None)
        {
            metrics.Record(name, context.Response.StatusCode, fromTarget: true, Stopwatch.GetElapsedTime(started));
            return;
        }
        var status = result switch
        {
            ForwarderError.NoAvailableDestinations => 503,
            ForwarderError.RequestTimedOut => 504,
            _ when IsTimeout(context.Features.Get<IForwarderErrorFeature>()?.Exception) => 504,
            _ => 502,
        };
        if (result is not (ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled))
        {
            metrics.Record(name, status, fromTarget: false, Stopwatch.GetElapsedTime(started));
        }
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
            await ElbError(context, status).ConfigureAwait(false);
        }
    }

    /// <summary>Picks the target among the group's available ones (healthy, or all when none is) and forwards to it.</summary>
    private async ValueTask<ForwarderError> ForwardAsync(HttpContext context, ClusterState cluster)
    {
        var model = cluster.Model;
        var config = model.Config;
        var destinations = cluster.DestinationsState.AvailableDestinations;
        ISessionAffinityPolicy? affinityPolicy = null;
        var affinity = config.SessionAffinity;
        if (affinity is { Enabled: true } && destinations.Count > 0 && _affinity.TryGetValue(affinity.Policy ?? "", out affinityPolicy))
        {
            // A valid AWSALB cookie naming an available target keeps the client there; otherwise (no cookie, or its
            // target gone) the request is balanced as usual and the response carries a new cookie (redistribute).
            var found = affinityPolicy.FindAffinitizedDestinations(context, cluster, affinity, destinations);
            if (found.Status == AffinityStatus.OK && found.Destinations is { Count: > 0 } kept)
            {
                destinations = kept;
            }
        }
        var destination = destinations.Count switch
        {
            0 => null,
            1 => destinations[0],
            _ => (_balancers.GetValueOrDefault(config.LoadBalancingPolicy ?? "") ?? _balancers[SlowStartRoundRobinPolicy.PolicyName])
                .PickDestination(context, cluster, destinations),
        };
        if (destination is null)
        {
            return ForwarderError.NoAvailableDestinations;
        }
        affinityPolicy?.AffinitizeResponse(context, cluster, affinity!, destination);
        var counter = inFlight.Of(destination);
        Interlocked.Increment(ref counter.Value);
        try
        {
            return await forwarder.SendAsync(context, destination.Model.Config.Address, model.HttpClient,
                config.HttpRequest ?? ForwarderRequestConfig.Empty, transformer).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref counter.Value);
        }
    }

    private static bool IsTimeout(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is TimeoutException)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Weighted choice among the groups; a valid AWSALBTG cookie keeps the client on its group.</summary>
    private string? PickTargetGroup(HttpContext context, ForwardActionConfig forward)
    {
        var groups = forward.TargetGroups!;
        var sticky = forward.TargetGroupStickinessConfig is { Enabled: true };
        if (sticky && context.Request.Cookies.TryGetValue(GroupStickinessCookie, out var cookie)
            && groups.FirstOrDefault(g => RoutingTable.LastSegment(g.TargetGroupArn!) == cookie && g.Weight > 0) is { } kept)
        {
            return RoutingTable.LastSegment(kept.TargetGroupArn!);
        }
        if (WeightedPick(groups, random) is not { } chosen)
        {
            return null;
        }
        if (sticky)
        {
            context.Response.Cookies.Append(GroupStickinessCookie, chosen, new CookieOptions
            {
                Path = "/",
                MaxAge = TimeSpan.FromSeconds(forward.TargetGroupStickinessConfig!.DurationSeconds ?? 3600),
            });
        }
        return chosen;
    }

    /// <summary>A target group id chosen by the groups' weights (null when every weight is 0).</summary>
    internal static string? WeightedPick(IReadOnlyList<TargetGroupTuple> groups, Random random)
    {
        if (groups.Count == 1)
        {
            return RoutingTable.LastSegment(groups[0].TargetGroupArn!);
        }
        var total = 0;
        foreach (var g in groups)
        {
            total += g.Weight ?? 1;
        }
        if (total <= 0)
        {
            return null;
        }
        var pick = random.Next(total);
        var choice = groups[^1];
        foreach (var g in groups)
        {
            pick -= g.Weight ?? 1;
            if (pick < 0)
            {
                choice = g;
                break;
            }
        }
        return RoutingTable.LastSegment(choice.TargetGroupArn!);
    }

    private static Task FixedResponse(HttpContext context, FixedResponseActionConfig config)
    {
        context.Response.StatusCode = int.Parse(config.StatusCode!, CultureInfo.InvariantCulture);
        context.Response.ContentType = config.ContentType ?? "text/plain";
        return config.MessageBody is { Length: > 0 } body ? context.Response.WriteAsync(body, context.RequestAborted) : Task.CompletedTask;
    }

    /// <summary>Builds the Location from the redirect's components, #{protocol} #{host} #{port} #{path} #{query} filled from the request.</summary>
    internal static string RedirectLocation(HttpRequest request, RedirectActionConfig config, int listenerPort)
    {
        var path = request.Path.ToUriComponent().TrimStart('/');
        var query = request.QueryString.HasValue ? request.QueryString.Value![1..] : "";
        string Fill(string? s) => (s ?? "")
            .Replace("#{protocol}", "http", StringComparison.Ordinal)
            .Replace("#{host}", request.Host.Host, StringComparison.Ordinal)
            .Replace("#{port}", listenerPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("#{path}", path, StringComparison.Ordinal)
            .Replace("#{query}", query, StringComparison.Ordinal);
        var protocol = Fill(config.Protocol).ToLowerInvariant();
        var port = Fill(config.Port);
        var defaultPort = protocol == "https" ? "443" : "80";
        var sb = new StringBuilder();
        sb.Append(protocol).Append("://").Append(Fill(config.Host));
        if (port != defaultPort)
        {
            sb.Append(':').Append(port);
        }
        var p = Fill(config.Path);
        sb.Append(p.StartsWith('/') ? p : "/" + p);
        var q = Fill(config.Query);
        if (q.Length > 0)
        {
            sb.Append('?').Append(q);
        }
        return sb.ToString();
    }

    private static void Redirect(HttpContext context, RedirectActionConfig config, int port)
    {
        context.Response.StatusCode = config.StatusCode == "HTTP_301" ? 301 : 302;
        context.Response.Headers.Location = RedirectLocation(context.Request, config, port);
    }

    /// <summary>The reason phrase and small HTML page ALB answers its own errors with (both data plane paths use it).</summary>
    internal static (string Reason, string Page) ElbErrorPage(int status)
    {
        var reason = status switch { 502 => "Bad Gateway", 503 => "Service Temporarily Unavailable", 504 => "Gateway Time-out", _ => "Error" };
        return (reason, $"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n");
    }

    internal static Task ElbError(HttpContext context, int status)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html";
        return context.Response.WriteAsync(ElbErrorPage(status).Page, context.RequestAborted);
    }
}

/// <summary>
/// Requests in flight per target, counted by the data plane itself (YARP's own counter is bumped by its forwarder
/// middleware, which this data plane does not use): a draining target leaves as soon as its count is zero.
/// </summary>
internal sealed class InFlightRequests
{
    private readonly ConditionalWeakTable<DestinationState, StrongBox<int>> _counts = [];

    public StrongBox<int> Of(DestinationState destination) => _counts.GetValue(destination, static _ => new StrongBox<int>());

    public int Count(DestinationState destination) => _counts.TryGetValue(destination, out var box) ? Volatile.Read(ref box.Value) : 0;
}

/// <summary>
/// The request headers ALB adds, on top of YARP's copy of the client's headers (Host kept as the client sent it):
/// X-Forwarded-For appended, X-Forwarded-Proto and X-Forwarded-Port set, X-Amzn-Trace-Id added unless the client
/// sent one with a Root. One transformer object for every request; nothing is allocated beyond the header values.
/// </summary>
internal sealed class AlbHeadersTransformer(TimeProvider time) : HttpTransformer
{
    private const string ForwardedFor = "X-Forwarded-For";
    private const string ForwardedProto = "X-Forwarded-Proto";
    private const string ForwardedPort = "X-Forwarded-Port";
    private const string TraceHeader = "X-Amzn-Trace-Id";

    private static readonly UriCreationOptions RawUri = new() { DangerousDisablePathAndQueryCanonicalization = true };

    // Listener ports are few; their text is made once.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, string> _portText = new();

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        var request = httpContext.Request;
        var incoming = request.Headers;
        var headers = proxyRequest.Headers;
        // The target as the client sent it (ALB does not re-encode): YARP rebuilds it from the decoded path, which turns
        // an escaped slash (%2F, which Kestrel leaves escaped) into %252F.
        if (httpContext.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } raw && raw[0] == '/')
        {
            proxyRequest.RequestUri = new Uri(destinationPrefix.TrimEnd('/') + raw, RawUri);
        }
        if (request.Host.HasValue)
        {
            headers.Host = request.Host.Value;
        }
        var remote = httpContext.Connection.RemoteIpAddress?.ToString();
        var forwardedFor = incoming[ForwardedFor];
        if (forwardedFor.Count > 0)
        {
            headers.Remove(ForwardedFor);
            if (remote is not null)
            {
                forwardedFor = Microsoft.Extensions.Primitives.StringValues.Concat(forwardedFor, remote);
            }
            headers.TryAddWithoutValidation(ForwardedFor, (IEnumerable<string?>)forwardedFor);
        }
        else if (remote is not null)
        {
            headers.TryAddWithoutValidation(ForwardedFor, remote);
        }
        if (incoming.ContainsKey(ForwardedProto))
        {
            headers.Remove(ForwardedProto);
        }
        headers.TryAddWithoutValidation(ForwardedProto, "http");
        if (incoming.ContainsKey(ForwardedPort))
        {
            headers.Remove(ForwardedPort);
        }
        headers.TryAddWithoutValidation(ForwardedPort, _portText.GetOrAdd(httpContext.Connection.LocalPort, static p => p.ToString(CultureInfo.InvariantCulture)));
        var trace = incoming[TraceHeader];
        if (trace.Count == 0 || !trace.ToString().Contains("Root=", StringComparison.Ordinal))
        {
            if (trace.Count > 0)
            {
                headers.Remove(TraceHeader);
            }
            headers.TryAddWithoutValidation(TraceHeader, TraceId.New(time.GetUtcNow()));
        }
    }
}
