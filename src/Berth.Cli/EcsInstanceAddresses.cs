using System.Collections.Concurrent;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Regions;
using Berth.ControlPlane.State;
using Berth.LoadBalancer;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.Cli;

/// <summary>
/// Resolves an <c>instance</c> target (a container instance's ec2InstanceId) for the load balancer, among the
/// container instances of the target group's region. Berth does not record agents' host addresses yet, so a
/// known instance resolves to loopback: right for <c>berth up</c>, where the agent runs on this host; on several
/// hosts register <c>ip</c> targets. Known ids are kept in step with each region's instances table (one lookup
/// per call, never a scan).
/// </summary>
/// <remarks>
/// The region directory is looked up on first use, not injected: it builds the regions' schedulers, which reach
/// the load balancer's target registration, which needs this resolver.
/// </remarks>
internal sealed class EcsInstanceAddresses(IServiceProvider services) : IInstanceAddressResolver
{
    private readonly ConcurrentDictionary<EcsState, Lazy<KnownInstances>> _byRegion = new();
    private RegionDirectory? _regions;

    public string? Resolve(string instanceId)
        => Resolve((_regions ??= services.GetRequiredService<RegionDirectory>()).DefaultIdentity.Region, instanceId);

    public string? Resolve(string region, string instanceId)
    {
        var regions = _regions ??= services.GetRequiredService<RegionDirectory>();
        if (!regions.TryGet(region, out var scope))
        {
            return null; // a region ECS has not opened has no container instances
        }
        // Lazy: racing first callers subscribe to the region's table once.
        var known = _byRegion.GetOrAdd(scope.State, s => new Lazy<KnownInstances>(() => new KnownInstances(s))).Value;
        return known.Contains(instanceId) ? "127.0.0.1" : null;
    }

    private sealed class KnownInstances
    {
        private readonly ConcurrentDictionary<string, int> _known = new(StringComparer.Ordinal);

        public KnownInstances(EcsState ecs)
        {
            ecs.ContainerInstances.Changed += (_, old, now) =>
            {
                Count(old, -1);
                Count(now, +1);
            };
            // Whatever was loaded before this resolver existed (the hook sees only later changes).
            foreach (var i in ecs.ContainerInstances.All)
            {
                Count(i.Value, +1);
            }
        }

        private void Count(InstanceRecord? i, int delta)
        {
            if (i?.Ec2InstanceId is { } id)
            {
                _known.AddOrUpdate(id, Math.Max(0, delta), (_, n) => Math.Max(0, n + delta));
            }
        }

        public bool Contains(string instanceId) => _known.TryGetValue(instanceId, out var n) && n > 0;
    }
}
