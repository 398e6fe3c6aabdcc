namespace Berth.LoadBalancer;

/// <summary>One target: an instance id (i-...) or an IPv4 address, and the port traffic goes to.</summary>
public sealed record TargetEndpoint(string Id, int Port);

/// <summary>A target's health as DescribeTargetHealth reports it.</summary>
public sealed record TargetHealthReport(TargetEndpoint Target, string State, string? Reason, string? Description);

/// <summary>
/// Target registration for code inside Berth (a services controller registering each task's host:port):
/// the same rules and effects as the RegisterTargets / DeregisterTargets / DescribeTargetHealth calls.
/// Errors are thrown as <see cref="Berth.Aws.Protocol.AwsException"/> with the ELBv2 codes.
/// </summary>
public interface ITargetRegistration
{
    Task RegisterTargetsAsync(string targetGroupArn, IReadOnlyList<TargetEndpoint> targets, CancellationToken ct = default);

    /// <summary>Starts draining: no new requests; in-flight ones finish within the deregistration delay.</summary>
    Task DeregisterTargetsAsync(string targetGroupArn, IReadOnlyList<TargetEndpoint> targets, CancellationToken ct = default);

    /// <summary>Registered and draining targets of the group with their current health.</summary>
    IReadOnlyList<TargetHealthReport> DescribeTargetHealth(string targetGroupArn);

    /// <summary>Whether a listener or rule of some load balancer forwards to the group (TargetGroupNotFound when there is no such group).</summary>
    bool IsAttached(string targetGroupArn);

    /// <summary>The group's target type, <c>instance</c> or <c>ip</c> (TargetGroupNotFound when there is no such group).</summary>
    string TargetType(string targetGroupArn);
}

/// <summary>Finds the address of an <c>instance</c> target (a container instance's ec2InstanceId).</summary>
public interface IInstanceAddressResolver
{
    /// <summary>The host address traffic for the instance goes to, or null when no such instance is known.</summary>
    string? Resolve(string instanceId);

    /// <summary>
    /// The host address of the instance among <paramref name="region"/>'s container instances (a target group's
    /// instances are those of its own region), or null.
    /// </summary>
    string? Resolve(string region, string instanceId) => Resolve(instanceId);
}

/// <summary>Knows no instances: without ECS wiring only <c>ip</c> targets can be registered.</summary>
public sealed class NoInstances : IInstanceAddressResolver
{
    public string? Resolve(string instanceId) => null;
}
