using System.Text.Json.Serialization;

namespace Berth.ControlPlane.Domain;

// Storage records for services: our own shapes (see TaskRecord.cs for why). Immutable: a change is a
// new record (`with`). ServiceViews builds the wire shapes on the way out.

/// <summary>One service, as stored under ecs/{account}/{region}/services/{cluster}/{name}.</summary>
public sealed record ServiceRecord
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("cluster")] public required string Cluster { get; init; }
    /// <summary>ACTIVE, DRAINING (deleted, tasks stopping) or INACTIVE (deleted, kept describable for a while).</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = ServiceStates.Active;
    [JsonPropertyName("desiredCount")] public int DesiredCount { get; init; }
    /// <summary>REPLICA or DAEMON.</summary>
    [JsonPropertyName("schedulingStrategy")] public string SchedulingStrategy { get; init; } = "REPLICA";
    [JsonPropertyName("launchType")] public string LaunchType { get; init; } = "EC2";
    /// <summary>FARGATE: the resolved platform version.</summary>
    [JsonPropertyName("platformVersion")] public string? PlatformVersion { get; init; }
    /// <summary>awsvpc: the networkConfiguration its tasks are launched with.</summary>
    [JsonPropertyName("awsvpc")] public AwsvpcRecord? Awsvpc { get; init; }
    /// <summary>The primary deployment's task definition ("family:revision").</summary>
    [JsonPropertyName("taskDefinition")] public required string TaskDefinition { get; init; }
    [JsonPropertyName("deploymentConfiguration")] public required DeploymentConfigRecord DeploymentConfiguration { get; init; }
    [JsonPropertyName("placementConstraints")] public IReadOnlyList<PlacementRecord> PlacementConstraints { get; init; } = [];
    [JsonPropertyName("placementStrategy")] public IReadOnlyList<PlacementRecord> PlacementStrategy { get; init; } = [];
    [JsonPropertyName("healthCheckGracePeriodSeconds")] public int? HealthCheckGracePeriodSeconds { get; init; }
    [JsonPropertyName("loadBalancers")] public IReadOnlyList<ServiceLoadBalancerRecord> LoadBalancers { get; init; } = [];
    [JsonPropertyName("tags")] public IReadOnlyList<TagRecord>? Tags { get; init; }
    /// <summary>TASK_DEFINITION, SERVICE or NONE.</summary>
    [JsonPropertyName("propagateTags")] public string PropagateTags { get; init; } = "NONE";
    [JsonPropertyName("enableECSManagedTags")] public bool EnableEcsManagedTags { get; init; }
    [JsonPropertyName("enableExecuteCommand")] public bool EnableExecuteCommand { get; init; }
    [JsonPropertyName("availabilityZoneRebalancing")] public string AvailabilityZoneRebalancing { get; init; } = "DISABLED";
    [JsonPropertyName("role")] public string? RoleArn { get; init; }
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }
    [JsonPropertyName("createdBy")] public string? CreatedBy { get; init; }
    [JsonPropertyName("clientToken")] public string? ClientToken { get; init; }
    [JsonPropertyName("fingerprint")] public string? Fingerprint { get; init; }
    /// <summary>Newest first: the PRIMARY deployment, then the ACTIVE ones still draining.</summary>
    [JsonPropertyName("deployments")] public IReadOnlyList<DeploymentRecord> Deployments { get; init; } = [];
    /// <summary>Finished deployments (newest first, at most <see cref="ServiceRules.MaxHistory"/>) for ListServiceDeployments.</summary>
    [JsonPropertyName("history")] public IReadOnlyList<DeploymentRecord> History { get; init; } = [];
    /// <summary>Newest first, at most <see cref="ServiceRules.MaxEvents"/>, as DescribeServices returns them.</summary>
    [JsonPropertyName("events")] public IReadOnlyList<ServiceEventRecord> Events { get; init; } = [];
    /// <summary>When DeleteService made it INACTIVE (it is purged a retention window later).</summary>
    [JsonPropertyName("deletedAt")] public DateTimeOffset? DeletedAt { get; init; }
    /// <summary>Whether the service was last seen at its desired state (the "has reached a steady state" event is written on the way in).</summary>
    [JsonPropertyName("steady")] public bool Steady { get; init; }
    [JsonPropertyName("version")] public long Version { get; init; } = 1;
    /// <summary>The capacity provider strategy its tasks are split by (the cluster's default copied in at creation); null: a launch type.</summary>
    [JsonPropertyName("capacityProviderStrategy")] public IReadOnlyList<CapacityProviderStrategyRecord>? CapacityProviderStrategy { get; init; }

    [JsonIgnore] public DeploymentRecord? Primary => Deployments.Count > 0 ? Deployments[0] : null;
    [JsonIgnore] public string Group => "service:" + Name;
}

public sealed record DeploymentConfigRecord
{
    [JsonPropertyName("minimumHealthyPercent")] public int MinimumHealthyPercent { get; init; } = 100;
    [JsonPropertyName("maximumPercent")] public int MaximumPercent { get; init; } = 200;
    [JsonPropertyName("circuitBreakerEnable")] public bool CircuitBreakerEnable { get; init; }
    [JsonPropertyName("circuitBreakerRollback")] public bool CircuitBreakerRollback { get; init; }
}

/// <summary>A placement constraint (type, expression) or strategy (type, field).</summary>
public sealed record PlacementRecord(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("value")] string? Value);

public sealed record ServiceLoadBalancerRecord(
    [property: JsonPropertyName("targetGroupArn")] string? TargetGroupArn,
    [property: JsonPropertyName("loadBalancerName")] string? LoadBalancerName,
    [property: JsonPropertyName("containerName")] string ContainerName,
    [property: JsonPropertyName("containerPort")] int ContainerPort);

/// <summary>One deployment of a service: a task definition and the tasks started for it (startedBy = <see cref="Id"/>).</summary>
public sealed record DeploymentRecord
{
    /// <summary>"ecs-svc/" and 19 digits, as ECS names them; also its tasks' startedBy.</summary>
    [JsonPropertyName("id")] public required string Id { get; init; }
    /// <summary>PRIMARY, ACTIVE (older, being replaced) or INACTIVE (finished, in history).</summary>
    [JsonPropertyName("status")] public required string Status { get; init; }
    [JsonPropertyName("taskDefinition")] public required string TaskDefinition { get; init; }
    [JsonPropertyName("desiredCount")] public int DesiredCount { get; init; }
    [JsonPropertyName("failedTasks")] public int FailedTasks { get; init; }
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }
    [JsonPropertyName("updatedAt")] public DateTimeOffset UpdatedAt { get; init; }
    [JsonPropertyName("finishedAt")] public DateTimeOffset? FinishedAt { get; init; }
    /// <summary>IN_PROGRESS, COMPLETED or FAILED.</summary>
    [JsonPropertyName("rolloutState")] public string RolloutState { get; init; } = "IN_PROGRESS";
    [JsonPropertyName("rolloutStateReason")] public string? RolloutStateReason { get; init; }
    /// <summary>The ServiceDeployment's status (PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED).</summary>
    [JsonPropertyName("deploymentStatus")] public string DeploymentStatus { get; init; } = "IN_PROGRESS";
    [JsonPropertyName("deploymentStatusReason")] public string? DeploymentStatusReason { get; init; }
    /// <summary>The deployment this one replaced (its service revision is the "source" of the ServiceDeployment).</summary>
    [JsonPropertyName("replaced")] public string? Replaced { get; init; }
    /// <summary>Set on a deployment the circuit breaker created to roll back to <see cref="Replaced"/>'s predecessor.</summary>
    [JsonPropertyName("rollbackOf")] public string? RollbackOf { get; init; }
    /// <summary>The deployment configuration it runs under (UpdateService may change it for the next one).</summary>
    [JsonPropertyName("config")] public DeploymentConfigRecord? Config { get; init; }
    /// <summary>Consecutive failed launches, for the restart backoff; reset when a task of it reaches RUNNING.</summary>
    [JsonPropertyName("consecutiveFailures")] public int ConsecutiveFailures { get; init; }
    /// <summary>No new task of this deployment starts before this moment (ECS throttles tasks that keep failing).</summary>
    [JsonPropertyName("backoffUntil")] public DateTimeOffset? BackoffUntil { get; init; }
    /// <summary>Task ids already counted in <see cref="FailedTasks"/> (level-triggered: a stopped task is counted once).</summary>
    [JsonPropertyName("counted")] public IReadOnlyList<string> Counted { get; init; } = [];
    /// <summary>
    /// Software version consistency: the image digest each container's tag resolved to for this deployment (see
    /// <see cref="VersionConsistency"/>); every later task of the deployment runs <c>repository@digest</c>. Null until resolved.
    /// </summary>
    [JsonPropertyName("images"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public IReadOnlyList<DeploymentImageRecord>? Images { get; init; }

    /// <summary>The numeric part of the id: the service deployment's and service revision's ids.</summary>
    [JsonIgnore] public string Digits => Id["ecs-svc/".Length..];
}

/// <summary>A container's image as a deployment resolved it; <see cref="ImageDigest"/> null: it could not be resolved (the tag is used).</summary>
public sealed record DeploymentImageRecord(
    [property: JsonPropertyName("containerName")] string ContainerName,
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("imageDigest")] string? ImageDigest);

public sealed record ServiceEventRecord(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("createdAt")] DateTimeOffset CreatedAt,
    [property: JsonPropertyName("message")] string Message);

public static class ServiceStates
{
    public const string Active = "ACTIVE";
    public const string Draining = "DRAINING";
    public const string Inactive = "INACTIVE";
}

public static class DeploymentStates
{
    public const string Primary = "PRIMARY";
    public const string Active = "ACTIVE";
    public const string Inactive = "INACTIVE";
    public const string InProgress = "IN_PROGRESS";
    public const string Completed = "COMPLETED";
    public const string Failed = "FAILED";
}
