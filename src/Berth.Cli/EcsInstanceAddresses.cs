using System.Collections.Concurrent;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.LoadBalancer;

namespace Berth.Cli;

/// <summary>
/// Resolves an <c>instance</c> target (a container instance's ec2InstanceId) for the load balancer.
/// Berth does not record agents' host addresses yet, so a known instance resolves to loopback: right
/// for <c>berth up</c>, where the agent runs on this host; on several hosts register <c>ip</c> targets.
/// Known ids are kept in step with the instances table (one lookup per call, never a scan).
/// </summary>
internal sealed class EcsInstanceAddresses : IInstanceAddressResolver
{
    private readonly ConcurrentDictionary<string, int> _known = new(StringComparer.Ordinal);

    public EcsInstanceAddresses(EcsState ecs)
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

    public string? Resolve(string instanceId)
        => _known.TryGetValue(instanceId, out var n) && n > 0 ? "127.0.0.1" : null;
}
