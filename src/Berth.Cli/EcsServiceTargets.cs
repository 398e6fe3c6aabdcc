using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.LoadBalancer;

namespace Berth.Cli;

/// <summary>The load balancer's target registration, as the ECS service scheduler uses it.</summary>
internal sealed class EcsServiceTargets(ITargetRegistration registration) : IServiceTargets
{
    public string? Check(string targetGroupArn)
    {
        try
        {
            // As ECS: a group no listener forwards to cannot take a service (its targets would never be checked).
            return registration.IsAttached(targetGroupArn)
                ? null
                : $"The target group with targetGroupArn {targetGroupArn} does not have an associated load balancer.";
        }
        catch (AwsException e)
        {
            return e.Message;
        }
    }

    public string? TargetType(string targetGroupArn)
    {
        try
        {
            return registration.TargetType(targetGroupArn);
        }
        catch (AwsException)
        {
            return null;
        }
    }

    public Task RegisterAsync(string targetGroupArn, IReadOnlyList<ServiceTarget> targets, CancellationToken ct)
        => registration.RegisterTargetsAsync(targetGroupArn, targets.Select(t => new TargetEndpoint(t.Id, t.Port)).ToList(), ct);

    public Task DeregisterAsync(string targetGroupArn, IReadOnlyList<ServiceTarget> targets, CancellationToken ct)
        => registration.DeregisterTargetsAsync(targetGroupArn, targets.Select(t => new TargetEndpoint(t.Id, t.Port)).ToList(), ct);

    public IReadOnlyDictionary<ServiceTarget, string> Health(string targetGroupArn)
    {
        try
        {
            return registration.DescribeTargetHealth(targetGroupArn).ToDictionary(h => new ServiceTarget(h.Target.Id, h.Target.Port), h => h.State);
        }
        catch (AwsException)
        {
            return new Dictionary<ServiceTarget, string>();
        }
    }
}
