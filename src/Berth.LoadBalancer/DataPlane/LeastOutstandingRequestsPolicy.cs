using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>
/// ALB's least_outstanding_requests: the target with the fewest requests in flight, counted from the
/// moment it is picked until the response completes (so requests picked together spread out), the
/// earliest in the list on a tie.
/// </summary>
internal sealed class LeastOutstandingRequestsPolicy : ILoadBalancingPolicy
{
    public const string PolicyName = "BerthLeastOutstandingRequests";

    private readonly ConditionalWeakTable<DestinationState, StrongBox<int>> _outstanding = [];

    public string Name => PolicyName;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        var best = Pick(availableDestinations, out var held);
        if (held is not null)
        {
            context.Response.RegisterForDispose(new Release(held));
        }
        return best;
    }

    /// <summary>
    /// The pick itself (the fast path calls it directly): the chosen target's count is raised, and the caller lowers
    /// <paramref name="held"/> again when the response completes.
    /// </summary>
    public DestinationState? Pick(IReadOnlyList<DestinationState> availableDestinations, out StrongBox<int>? held)
    {
        held = null;
        if (availableDestinations.Count == 0)
        {
            return null;
        }
        DestinationState? best = null;
        StrongBox<int>? bestCount = null;
        foreach (var d in availableDestinations)
        {
            var count = _outstanding.GetValue(d, _ => new StrongBox<int>());
            if (bestCount is null || Volatile.Read(ref count.Value) < Volatile.Read(ref bestCount.Value))
            {
                best = d;
                bestCount = count;
            }
        }
        Interlocked.Increment(ref bestCount!.Value);
        held = bestCount;
        return best;
    }

    private sealed class Release(StrongBox<int> count) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                Interlocked.Decrement(ref count.Value);
            }
        }
    }
}
