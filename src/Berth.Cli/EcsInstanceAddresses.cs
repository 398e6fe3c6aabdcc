using Berth.ControlPlane.State;
using Berth.LoadBalancer;

namespace Berth.Cli;

/// <summary>
/// Resolves an <c>instance</c> target (a container instance's ec2InstanceId) for the load balancer.
/// Berth does not record agents' host addresses yet, so a known instance resolves to loopback: right
/// for <c>berth up</c>, where the agent runs on this host; on several hosts register <c>ip</c> targets.
/// </summary>
internal sealed class EcsInstanceAddresses(EcsState ecs) : IInstanceAddressResolver
{
    public string? Resolve(string instanceId)
        => ecs.ContainerInstances.All.Any(i => i.Value.Ec2InstanceId == instanceId) ? "127.0.0.1" : null;
}
