using System.Globalization;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>
/// Round robin with ALB's slow start: a target that turned healthy less than the slow start duration ago
/// gets a share that grows linearly from nothing to a full one. With no target in slow start it is plain
/// round robin. Only targets that turn healthy while the group has slow start on slow-start (the book
/// records when); a lone healthy target still gets everything, its share being relative to nobody's.
/// </summary>
internal sealed class SlowStartRoundRobinPolicy(TargetHealthBook book, TimeProvider time, Random random) : ILoadBalancingPolicy
{
    public const string PolicyName = "BerthSlowStartRoundRobin";
    public const string DurationKey = "berth.slow-start";

    private int _next = -1;

    public string Name => PolicyName;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
        => Pick(cluster, availableDestinations);

    /// <summary>The pick itself, which reads nothing of the request (the fast path calls it directly).</summary>
    public DestinationState? Pick(ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        if (availableDestinations.Count == 0)
        {
            return null;
        }
        var config = cluster.Model.Config;
        var duration = config.Metadata?.GetValueOrDefault(DurationKey);
        var weights = duration is null or "0" ? null
            : Weights(config.ClusterId, availableDestinations, TimeSpan.FromSeconds(int.Parse(duration, CultureInfo.InvariantCulture)));
        if (weights is null)
        {
            var i = (int)((uint)Interlocked.Increment(ref _next) % (uint)availableDestinations.Count);
            return availableDestinations[i];
        }
        var pick = random.NextDouble() * weights.Sum();
        for (var i = 0; i < weights.Length; i++)
        {
            pick -= weights[i];
            if (pick < 0)
            {
                return availableDestinations[i];
            }
        }
        return availableDestinations[^1];
    }

    /// <summary>Each destination's share (0 to 1), or null when none is in slow start.</summary>
    internal double[]? Weights(string tgId, IReadOnlyList<DestinationState> destinations, TimeSpan duration)
    {
        if (duration <= TimeSpan.Zero || destinations.Count < 2)
        {
            return null;
        }
        var now = time.GetUtcNow();
        var weights = new double[destinations.Count];
        var slow = false;
        for (var i = 0; i < destinations.Count; i++)
        {
            var since = book.HealthySince(tgId, destinations[i].DestinationId);
            var elapsed = since is { } s ? now - s : duration;
            weights[i] = elapsed >= duration ? 1.0 : Math.Max(0.01, elapsed / duration);
            slow |= weights[i] < 1.0;
        }
        // Shares are relative: targets that started together share equally.
        return slow ? weights : null;
    }
}
