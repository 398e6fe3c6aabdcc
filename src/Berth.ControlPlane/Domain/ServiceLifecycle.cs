using System.Globalization;
using System.Security.Cryptography;
using Berth.Aws.Protocol;
using Berth.ControlPlane.State;

namespace Berth.ControlPlane.Domain;

/// <summary>What CreateService asks for, after the wire layer validated and translated it.</summary>
public sealed record CreateServiceCommand
{
    public required string Cluster { get; init; }
    public required ServiceRecord Service { get; init; }
}

/// <summary>What UpdateService changes; null members are left as they are.</summary>
public sealed record UpdateServiceCommand
{
    public required string Cluster { get; init; }
    public required string Service { get; init; }
    public int? DesiredCount { get; init; }
    /// <summary>"family:revision" of the new definition.</summary>
    public string? TaskDefinition { get; init; }
    public DeploymentConfigRecord? DeploymentConfiguration { get; init; }
    public IReadOnlyList<PlacementRecord>? PlacementConstraints { get; init; }
    public IReadOnlyList<PlacementRecord>? PlacementStrategy { get; init; }
    public int? HealthCheckGracePeriodSeconds { get; init; }
    public IReadOnlyList<ServiceLoadBalancerRecord>? LoadBalancers { get; init; }
    public string? PropagateTags { get; init; }
    public bool? EnableEcsManagedTags { get; init; }
    public bool? EnableExecuteCommand { get; init; }
    public string? AvailabilityZoneRebalancing { get; init; }
    public bool ForceNewDeployment { get; init; }
    /// <summary>awsvpc: the network configuration (validated against the definition the service will run); a change starts a new deployment.</summary>
    public AwsvpcRecord? Awsvpc { get; init; }
    public string? PlatformVersion { get; init; }
    /// <summary>A new capacity provider strategy (starts a new deployment when it differs); null: unchanged.</summary>
    public IReadOnlyList<CapacityProviderStrategyRecord>? CapacityProviderStrategy { get; init; }
}

/// <summary>ECS's numbers for services, in one place.</summary>
public static class ServiceRules
{
    /// <summary>DescribeServices returns at most the 100 newest events.</summary>
    public const int MaxEvents = 100;
    /// <summary>Finished deployments kept for ListServiceDeployments.</summary>
    public const int MaxHistory = 50;

    /// <summary>The deployment circuit breaker's threshold: half the desired count, at least 3 and at most 200.</summary>
    public static int FailureThreshold(int desiredCount) => Math.Clamp((int)Math.Ceiling(desiredCount / 2.0), 3, 200);

    /// <summary>Most tasks a deployment may have: desiredCount × maximumPercent, rounded down.</summary>
    public static int MaxTasks(int desired, int maximumPercent) => (int)Math.Floor(desired * maximumPercent / 100.0);

    /// <summary>Fewest healthy tasks during a deployment: desiredCount × minimumHealthyPercent, rounded up.</summary>
    public static int MinHealthy(int desired, int minimumHealthyPercent) => (int)Math.Ceiling(desired * minimumHealthyPercent / 100.0);

    /// <summary>A new deployment id: "ecs-svc/" and 19 digits.</summary>
    public static string NewDeploymentId()
        => string.Create(CultureInfo.InvariantCulture, $"ecs-svc/{RandomNumberGenerator.GetInt32(1, 10)}{RandomNumberGenerator.GetInt32(0, 1_000_000_000):D9}{RandomNumberGenerator.GetInt32(0, 1_000_000_000):D9}");
}

/// <summary>
/// CreateService, UpdateService and DeleteService: they only record desired state (a service record
/// with its deployments); the <see cref="ServiceScheduler"/> acts on it.
/// </summary>
public sealed class ServiceLifecycle(EcsState state, TimeProvider time)
{
    public EcsState State => state;

    public ServiceRecord? Find(string cluster, string nameOrArn)
        => state.Services.Find(Key(cluster, nameOrArn));

    /// <summary>
    /// The document key of a service name or ARN within <paramref name="cluster"/> (…:service/cluster/name, or the
    /// old …:service/name); an ARN of another cluster, account or region gets a key that names nothing.
    /// </summary>
    public string Key(string cluster, string nameOrArn)
    {
        // The same ARN rules as tasks and instances (EcsState.KeyIn), for service ARNs only.
        if (nameOrArn.StartsWith("arn:", StringComparison.Ordinal) && (!Berth.Core.Arns.TryParse(nameOrArn, out var parsed) || parsed.ResourceType != "service"))
        {
            return "\0foreign/";
        }
        return state.KeyIn(cluster, nameOrArn) ?? "\0foreign/";
    }

    /// <summary>Records a new service; <c>Created</c> is false when a retry with the same client token got the existing one back.</summary>
    public async Task<(ServiceRecord Service, bool Created)> CreateAsync(CreateServiceCommand cmd, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var key = EcsState.ScopedId(cmd.Cluster, cmd.Service.Name);
        if (state.Services.Find(key) is { } existing && existing.Status != ServiceStates.Inactive)
        {
            if (cmd.Service.ClientToken is not null && existing.ClientToken == cmd.Service.ClientToken && existing.Fingerprint == cmd.Service.Fingerprint)
            {
                return (existing, false);
            }
            if (existing.Status == ServiceStates.Draining)
            {
                throw AwsException.InvalidParameter("Unable to Start a service that is still Draining.");
            }
            throw AwsException.InvalidParameter("Creation of service was not idempotent.");
        }
        var now = time.GetUtcNow();
        var deployment = new DeploymentRecord
        {
            Id = ServiceRules.NewDeploymentId(),
            Status = DeploymentStates.Primary,
            TaskDefinition = cmd.Service.TaskDefinition,
            DesiredCount = cmd.Service.DesiredCount,
            CreatedAt = now,
            UpdatedAt = now,
            Config = cmd.Service.DeploymentConfiguration,
        };
        var service = cmd.Service with
        {
            CreatedAt = now,
            Deployments = [deployment with { RolloutStateReason = $"ECS deployment {deployment.Id} in progress." }],
        };
        tx.Put(state.Services, key, service);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return (service, true);
    }

    private static bool SameNetwork(AwsvpcRecord a, AwsvpcRecord? b)
        => b is not null && a.AssignPublicIp == b.AssignPublicIp && a.Subnets.SequenceEqual(b.Subnets)
        && (a.SecurityGroups ?? []).SequenceEqual(b.SecurityGroups ?? []);

    public async Task<ServiceRecord> UpdateAsync(UpdateServiceCommand cmd, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var key = Key(cmd.Cluster, cmd.Service);
        if (state.Services.Find(key) is not { Status: ServiceStates.Active } current)
        {
            throw state.Services.Find(key) is { Status: ServiceStates.Draining or ServiceStates.Inactive }
                ? new AwsException("ServiceNotActiveException", "Service was not ACTIVE.")
                : new AwsException("ServiceNotFoundException", "Service not found.");
        }
        if (cmd.DesiredCount is not null && current.SchedulingStrategy == "DAEMON")
        {
            throw AwsException.InvalidParameter("desiredCount: a service with the DAEMON scheduling strategy places one task on each instance; its desired count cannot be set.");
        }
        var now = time.GetUtcNow();
        var updated = current with
        {
            DesiredCount = cmd.DesiredCount ?? current.DesiredCount,
            DeploymentConfiguration = cmd.DeploymentConfiguration ?? current.DeploymentConfiguration,
            PlacementConstraints = cmd.PlacementConstraints ?? current.PlacementConstraints,
            PlacementStrategy = cmd.PlacementStrategy ?? current.PlacementStrategy,
            HealthCheckGracePeriodSeconds = cmd.HealthCheckGracePeriodSeconds ?? current.HealthCheckGracePeriodSeconds,
            LoadBalancers = cmd.LoadBalancers ?? current.LoadBalancers,
            PropagateTags = cmd.PropagateTags ?? current.PropagateTags,
            EnableEcsManagedTags = cmd.EnableEcsManagedTags ?? current.EnableEcsManagedTags,
            EnableExecuteCommand = cmd.EnableExecuteCommand ?? current.EnableExecuteCommand,
            AvailabilityZoneRebalancing = cmd.AvailabilityZoneRebalancing ?? current.AvailabilityZoneRebalancing,
            TaskDefinition = cmd.TaskDefinition ?? current.TaskDefinition,
            Awsvpc = cmd.Awsvpc ?? (cmd.TaskDefinition is null ? current.Awsvpc : null),
            PlatformVersion = cmd.PlatformVersion ?? current.PlatformVersion,
            Version = current.Version + 1,
            CapacityProviderStrategy = cmd.CapacityProviderStrategy ?? current.CapacityProviderStrategy,
        };
        // A new deployment when what the tasks run changes (definition, load balancers) or when forced;
        // a new count or configuration alone applies to the deployment in place, as in ECS.
        var redeploy = cmd.ForceNewDeployment
            || (cmd.Awsvpc is not null && !SameNetwork(cmd.Awsvpc, current.Awsvpc))
            || (cmd.TaskDefinition is not null && cmd.TaskDefinition != current.TaskDefinition)
            || (cmd.LoadBalancers is not null && !cmd.LoadBalancers.SequenceEqual(current.LoadBalancers))
            || (cmd.CapacityProviderStrategy is not null && !cmd.CapacityProviderStrategy.SequenceEqual(current.CapacityProviderStrategy ?? []));
        var deployments = current.Deployments.ToList();
        if (redeploy)
        {
            var fresh = new DeploymentRecord
            {
                Id = ServiceRules.NewDeploymentId(),
                Status = DeploymentStates.Primary,
                TaskDefinition = updated.TaskDefinition,
                DesiredCount = updated.DesiredCount,
                CreatedAt = now,
                UpdatedAt = now,
                Config = updated.DeploymentConfiguration,
                Replaced = deployments.Count > 0 ? deployments[0].Id : null,
            };
            fresh = fresh with { RolloutStateReason = $"ECS deployment {fresh.Id} in progress." };
            for (var i = 0; i < deployments.Count; i++)
            {
                var d = deployments[i];
                deployments[i] = d with
                {
                    Status = DeploymentStates.Active,
                    UpdatedAt = now,
                    DeploymentStatus = d.DeploymentStatus == "IN_PROGRESS" ? "STOPPED" : d.DeploymentStatus,
                    DeploymentStatusReason = d.DeploymentStatus == "IN_PROGRESS" ? "Service deployment was superseded by a newer deployment." : d.DeploymentStatusReason,
                    FinishedAt = d.FinishedAt ?? (d.DeploymentStatus == "IN_PROGRESS" ? now : null),
                };
            }
            deployments.Insert(0, fresh);
        }
        else if (deployments.Count > 0)
        {
            deployments[0] = deployments[0] with
            {
                DesiredCount = updated.DesiredCount,
                Config = updated.DeploymentConfiguration,
                UpdatedAt = now,
            };
        }
        updated = updated with { Deployments = deployments };
        tx.Put(state.Services, key, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return updated;
    }

    /// <summary>DeleteService: DRAINING with desired count 0 (the scheduler stops its tasks, then makes it INACTIVE).</summary>
    public async Task<ServiceRecord> DeleteAsync(string cluster, string reference, bool force, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var key = Key(cluster, reference);
        var current = state.Services.Find(key) ?? throw new AwsException("ServiceNotFoundException", "Service not found.");
        // Deleting a service that is already being deleted (DRAINING) or deleted (INACTIVE) answers it as it
        // is, as ECS does: DeleteService's errors do not include ServiceNotActiveException.
        if (current.Status is ServiceStates.Draining or ServiceStates.Inactive)
        {
            return current;
        }
        if (!force && current.DesiredCount > 0 && current.SchedulingStrategy == "REPLICA")
        {
            // ECS's words, then which member to change.
            throw AwsException.InvalidParameter("The service cannot be stopped while it is scaled above 0.");
        }
        var now = time.GetUtcNow();
        // The primary deployment shows the count it is now driven to, as after an UpdateService to 0.
        var deployments = current.Deployments.ToList();
        if (deployments.Count > 0)
        {
            deployments[0] = deployments[0] with { DesiredCount = 0, UpdatedAt = now };
        }
        var updated = current with { Status = ServiceStates.Draining, DesiredCount = 0, Deployments = deployments, Version = current.Version + 1 };
        tx.Put(state.Services, key, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return updated;
    }

    /// <summary>Removes services that became INACTIVE before <paramref name="cutoff"/> (ECS keeps them describable for a while).</summary>
    public async Task<int> PurgeAsync(DateTimeOffset cutoff, int max, CancellationToken ct)
    {
        var ids = state.ServiceIndex.InactiveBefore(cutoff, max);
        if (ids.Count == 0)
        {
            return 0;
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var purged = 0;
        foreach (var id in ids)
        {
            if (state.Services.Find(id) is { Status: ServiceStates.Inactive })
            {
                tx.Delete(state.Services, id);
                purged++;
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return purged;
    }
}
