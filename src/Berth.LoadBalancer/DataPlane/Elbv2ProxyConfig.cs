using System.Globalization;
using Berth.LoadBalancer.State;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.SessionAffinity;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>
/// Turns target groups into YARP clusters (one destination per registered target) and gives the proxy one
/// catch-all route; <see cref="RuleMiddleware"/> picks the cluster per request from the listener's rules.
/// </summary>
public static class Elbv2ProxyConfig
{
    /// <summary>The route every listener request enters by; its cluster has no destinations.</summary>
    public const string RouteId = "berth-listeners";
    public const string NoCluster = "berth-none";
    public const string StickinessCookie = "AWSALB";

    public static (IReadOnlyList<RouteConfig> Routes, IReadOnlyList<ClusterConfig> Clusters) Build(Elbv2State state, IInstanceAddressResolver instances)
        => Build([state], instances);

    /// <summary>The clusters of every region's target groups (ids are unique across regions); an instance target resolves among its group's region's instances.</summary>
    public static (IReadOnlyList<RouteConfig> Routes, IReadOnlyList<ClusterConfig> Clusters) Build(IEnumerable<Elbv2State> states, IInstanceAddressResolver instances)
    {
        var routes = new List<RouteConfig>
        {
            new() { RouteId = RouteId, ClusterId = NoCluster, Match = new RouteMatch { Path = "/{**catch-all}" } },
        };
        var clusters = new List<ClusterConfig> { new() { ClusterId = NoCluster } };
        foreach (var state in states)
        {
            AddClusters(state, instances, clusters);
        }
        return (routes, clusters);
    }

    private static void AddClusters(Elbv2State state, IInstanceAddressResolver instances, List<ClusterConfig> clusters)
    {
        foreach (var v in state.TargetGroups.All)
        {
            var tg = v.Value.TargetGroup;
            var attrs = v.Value.Attributes;
            var idle = IdleTimeout(state, tg.TargetGroupArn!);
            var destinations = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal);
            foreach (var t in v.Value.Targets)
            {
                var host = tg.TargetType == "ip" ? t.Id! : instances.Resolve(state.Region, t.Id!);
                if (host is null)
                {
                    continue;
                }
                var hcPort = tg.HealthCheckPort == "traffic-port" ? t.Port!.Value : int.Parse(tg.HealthCheckPort!, CultureInfo.InvariantCulture);
                destinations[TargetHealthBook.Key(t.Id!, t.Port!.Value)] = new DestinationConfig
                {
                    Address = $"http://{host}:{t.Port}",
                    Health = $"http://{host}:{hcPort}",
                };
            }
            var sticky = attrs.GetValueOrDefault("stickiness.enabled") == "true";
            clusters.Add(new ClusterConfig
            {
                ClusterId = v.Id,
                Destinations = destinations,
                LoadBalancingPolicy = attrs.GetValueOrDefault("load_balancing.algorithm.type") == "least_outstanding_requests"
                    ? LeastOutstandingRequestsPolicy.PolicyName : SlowStartRoundRobinPolicy.PolicyName,
                SessionAffinity = sticky ? new SessionAffinityConfig
                {
                    Enabled = true,
                    Policy = SessionAffinityConstants.Policies.Cookie,
                    FailurePolicy = SessionAffinityConstants.FailurePolicies.Redistribute,
                    AffinityKeyName = StickinessCookie,
                    Cookie = new SessionAffinityCookieConfig
                    {
                        Path = "/",
                        HttpOnly = false,
                        IsEssential = true,
                        Expiration = TimeSpan.FromSeconds(int.Parse(attrs.GetValueOrDefault("stickiness.lb_cookie.duration_seconds", "86400"), CultureInfo.InvariantCulture)),
                    },
                } : null,
                HealthCheck = new HealthCheckConfig
                {
                    Active = new ActiveHealthCheckConfig
                    {
                        Enabled = true,
                        Interval = TimeSpan.FromSeconds(tg.HealthCheckIntervalSeconds ?? 30),
                        Timeout = TimeSpan.FromSeconds(tg.HealthCheckTimeoutSeconds ?? 5),
                        Path = tg.HealthCheckPath ?? "/",
                        Policy = AlbHealthCheckPolicy.PolicyName,
                    },
                    AvailableDestinationsPolicy = FailOpenDestinationsPolicy.PolicyName,
                },
                HttpRequest = new ForwarderRequestConfig
                {
                    ActivityTimeout = idle,
                    Version = System.Net.HttpVersion.Version11,
                    VersionPolicy = System.Net.Http.HttpVersionPolicy.RequestVersionOrLower,
                },
                Metadata = new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    [AlbHealthCheckPolicy.HealthyThreshold] = (tg.HealthyThresholdCount ?? 5).ToString(CultureInfo.InvariantCulture),
                    [AlbHealthCheckPolicy.UnhealthyThreshold] = (tg.UnhealthyThresholdCount ?? 2).ToString(CultureInfo.InvariantCulture),
                    [AlbHealthCheckPolicy.Matcher] = tg.Matcher?.HttpCode ?? "200",
                    [SlowStartRoundRobinPolicy.DurationKey] = attrs.GetValueOrDefault("slow_start.duration_seconds", "0"),
                },
            });
        }
    }

    /// <summary>The longest idle timeout of the load balancers forwarding to the group (60 s, ALB's default, when none does).</summary>
    private static TimeSpan IdleTimeout(Elbv2State state, string tgArn)
    {
        var seconds = 0;
        foreach (var lbArn in state.Index.LoadBalancersUsing(tgArn))
        {
            if (state.LoadBalancers.Find(RoutingTable.LastSegment(lbArn)) is { } lb)
            {
                seconds = Math.Max(seconds, int.Parse(lb.Attributes.GetValueOrDefault("idle_timeout.timeout_seconds", "60"), CultureInfo.InvariantCulture));
            }
        }
        return TimeSpan.FromSeconds(seconds == 0 ? 60 : seconds);
    }
}

/// <summary>The YARP configuration provider: holds the current snapshot and signals when a new one replaces it.</summary>
public sealed class Elbv2ProxyConfigProvider : IProxyConfigProvider
{
    private volatile Snapshot _current = new([], [], new CancellationTokenSource());

    public IProxyConfig GetConfig() => _current;

    public void Update(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters)
    {
        var old = _current;
        _current = new Snapshot(routes, clusters, new CancellationTokenSource());
        old.Signal();
    }

    private sealed class Snapshot : IProxyConfig
    {
        private readonly CancellationTokenSource _cts;

        public Snapshot(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters, CancellationTokenSource cts)
        {
            Routes = routes;
            Clusters = clusters;
            _cts = cts;
            ChangeToken = new CancellationChangeToken(cts.Token);
        }

        public IReadOnlyList<RouteConfig> Routes { get; }
        public IReadOnlyList<ClusterConfig> Clusters { get; }
        public IChangeToken ChangeToken { get; }

        public void Signal() => _cts.Cancel();
    }
}
