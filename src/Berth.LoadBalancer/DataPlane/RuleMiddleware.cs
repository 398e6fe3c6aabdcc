using System.Diagnostics;
using System.Globalization;
using System.Text;
using Berth.Aws.Elbv2;
using Berth.LoadBalancer.State;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;

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
/// First step of the proxy pipeline: finds the listener by the local port, evaluates its rules by priority,
/// answers fixed-response and redirect actions itself, and for forward actions picks the target group
/// (weighted, with the AWSALBTG cookie when group stickiness is on) and hands the request to its cluster.
/// Afterwards it turns forwarding failures into ALB's status codes and counts the request.
/// </summary>
internal sealed class RuleMiddleware(RoutingState routing, IProxyStateLookup lookup, Elbv2Regions regions, DataPlaneMetrics metrics, Random random)
{
    public const string GroupStickinessCookie = "AWSALBTG";

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        if (!routing.Current.ByPort.TryGetValue(context.Connection.LocalPort, out var listener))
        {
            await ElbError(context, 503).ConfigureAwait(false);
            return;
        }
        var rule = listener.Match(context.Request, context.Connection.RemoteIpAddress);
        var action = rule.Action;
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
        context.ReassignProxyRequest(cluster);
        var name = regions.MetricName(tgId) ?? tgId;
        var started = Stopwatch.GetTimestamp();
        await next().ConfigureAwait(false);
        var error = context.Features.Get<IForwarderErrorFeature>();
        if (error is null || error.Error == ForwarderError.None)
        {
            metrics.Record(name, context.Response.StatusCode, fromTarget: true, Stopwatch.GetElapsedTime(started));
            return;
        }
        var status = error.Error switch
        {
            ForwarderError.NoAvailableDestinations => 503,
            ForwarderError.RequestTimedOut => 504,
            _ when IsTimeout(error.Exception) => 504,
            _ => 502,
        };
        if (error.Error is not (ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled))
        {
            metrics.Record(name, status, fromTarget: false, Stopwatch.GetElapsedTime(started));
        }
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
            await ElbError(context, status).ConfigureAwait(false);
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
        string chosen;
        if (groups.Count == 1)
        {
            chosen = RoutingTable.LastSegment(groups[0].TargetGroupArn!);
        }
        else
        {
            var total = groups.Sum(g => g.Weight ?? 1);
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
            chosen = RoutingTable.LastSegment(choice.TargetGroupArn!);
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

    /// <summary>The small HTML page ALB answers its own errors with.</summary>
    internal static Task ElbError(HttpContext context, int status)
    {
        var reason = status switch { 502 => "Bad Gateway", 503 => "Service Temporarily Unavailable", 504 => "Gateway Time-out", _ => "Error" };
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html";
        return context.Response.WriteAsync($"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n", context.RequestAborted);
    }
}
