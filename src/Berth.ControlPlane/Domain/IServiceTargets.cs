namespace Berth.ControlPlane.Domain;

/// <summary>One target of a target group: a container instance's ec2InstanceId and the task's host port, or (awsvpc) the task's address and container port.</summary>
public readonly record struct ServiceTarget(string Id, int Port)
{
    public override string ToString() => Id + ":" + Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// What the service scheduler needs from the load balancer: check a target group, register and
/// deregister a service's tasks as targets, and read their health. The load balancer implements it
/// (wired in by the host); without one, services with <c>loadBalancers</c> are refused.
/// </summary>
public interface IServiceTargets
{
    /// <summary>Null when the target group exists and takes instance targets; otherwise why not.</summary>
    string? Check(string targetGroupArn);

    /// <summary>The group's target type (<c>instance</c> or <c>ip</c>); null when unknown.</summary>
    string? TargetType(string targetGroupArn) => null;

    Task RegisterAsync(string targetGroupArn, IReadOnlyList<ServiceTarget> targets, CancellationToken ct);

    /// <summary>Starts draining the targets (the group's deregistration delay); they leave <see cref="Health"/> when it ends.</summary>
    Task DeregisterAsync(string targetGroupArn, IReadOnlyList<ServiceTarget> targets, CancellationToken ct);

    /// <summary>Registered and draining targets with their state (initial, healthy, unhealthy, unused, draining).</summary>
    IReadOnlyDictionary<ServiceTarget, string> Health(string targetGroupArn);
}

/// <summary>No load balancer in this process: services cannot name target groups.</summary>
public sealed class NoServiceTargets : IServiceTargets
{
    public string? Check(string targetGroupArn) => "this Berth server runs no load balancer.";
    public Task RegisterAsync(string targetGroupArn, IReadOnlyList<ServiceTarget> targets, CancellationToken ct) => Task.CompletedTask;
    public Task DeregisterAsync(string targetGroupArn, IReadOnlyList<ServiceTarget> targets, CancellationToken ct) => Task.CompletedTask;
    public IReadOnlyDictionary<ServiceTarget, string> Health(string targetGroupArn) => new Dictionary<ServiceTarget, string>();
}
