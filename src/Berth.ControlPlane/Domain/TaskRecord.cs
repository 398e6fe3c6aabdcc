using System.Text.Json.Serialization;

namespace Berth.ControlPlane.Domain;

// Storage records: what Berth keeps on disk about a task. Our own shapes, not the generated wire
// types, so regenerating the AWS model never changes the stored format (StoreFormat.Version says which
// format a store holds). Immutable: a change is a new record (`with`), never an edit in place.

/// <summary>One task, as stored under ecs/{account}/{region}/tasks/{cluster}/{id}.</summary>
public sealed record TaskRecord
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("cluster")] public required string Cluster { get; init; }
    [JsonPropertyName("family")] public required string Family { get; init; }
    [JsonPropertyName("revision")] public required int Revision { get; init; }
    /// <summary>Container instance id (in the same cluster); null for a task never placed.</summary>
    [JsonPropertyName("instance")] public string? InstanceId { get; init; }
    [JsonPropertyName("desired")] public required string DesiredStatus { get; init; }
    [JsonPropertyName("last")] public required string LastStatus { get; init; }
    [JsonPropertyName("launchType")] public string LaunchType { get; init; } = "EC2";
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }
    [JsonPropertyName("startedBy")] public string? StartedBy { get; init; }
    [JsonPropertyName("group")] public string? Group { get; init; }
    [JsonPropertyName("cpu")] public string? Cpu { get; init; }
    [JsonPropertyName("memory")] public string? Memory { get; init; }
    /// <summary>Reserved static host ports (TCP and UDP), fixed at placement.</summary>
    [JsonPropertyName("ports")] public IReadOnlyList<int>? StaticPorts { get; init; }
    [JsonPropertyName("udpPorts")] public IReadOnlyList<int>? StaticUdpPorts { get; init; }
    [JsonPropertyName("overrides")] public OverridesRecord? Overrides { get; init; }
    [JsonPropertyName("tags")] public IReadOnlyList<TagRecord>? Tags { get; init; }
    [JsonPropertyName("version")] public long Version { get; init; } = 1;
    [JsonPropertyName("containers")] public IReadOnlyList<ContainerRecord> Containers { get; init; } = [];
    [JsonPropertyName("pullStartedAt")] public DateTimeOffset? PullStartedAt { get; init; }
    [JsonPropertyName("pullStoppedAt")] public DateTimeOffset? PullStoppedAt { get; init; }
    [JsonPropertyName("startedAt")] public DateTimeOffset? StartedAt { get; init; }
    [JsonPropertyName("executionStoppedAt")] public DateTimeOffset? ExecutionStoppedAt { get; init; }
    [JsonPropertyName("stoppingAt")] public DateTimeOffset? StoppingAt { get; init; }
    [JsonPropertyName("stoppedAt")] public DateTimeOffset? StoppedAt { get; init; }
    [JsonPropertyName("connectivityAt")] public DateTimeOffset? ConnectivityAt { get; init; }
    [JsonPropertyName("stopCode")] public string? StopCode { get; init; }
    [JsonPropertyName("stoppedReason")] public string? StoppedReason { get; init; }
    /// <summary>The last agent report sequence applied (reports at or below it are stale).</summary>
    [JsonPropertyName("seq")] public long LastSequence { get; init; }
    [JsonPropertyName("clientToken")] public string? ClientToken { get; init; }
    /// <summary>awsvpc: the networkConfiguration it was launched with; null for other network modes.</summary>
    [JsonPropertyName("awsvpc")] public AwsvpcRecord? Awsvpc { get; init; }
    /// <summary>awsvpc: the task's address and MAC as its agent reported them (null until the pause container is up).</summary>
    [JsonPropertyName("ip")] public string? PrivateIp { get; init; }
    [JsonPropertyName("mac")] public string? MacAddress { get; init; }
    /// <summary>FARGATE: the resolved platform version (LATEST is stored as what it resolved to).</summary>
    [JsonPropertyName("platformVersion")] public string? PlatformVersion { get; init; }
    [JsonPropertyName("capacityProvider")] public string? CapacityProviderName { get; init; }

    [JsonIgnore] public bool IsStopped => LastStatus == TaskStates.Stopped;
}

public sealed record ContainerRecord
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("image")] public string? Image { get; init; }
    /// <summary>
    /// The UUID part of the container ARN when it was not derived from the task (stores migrated from format 1);
    /// null for containers Berth created since, whose UUID is <see cref="TaskViews.ContainerUuid"/> — nothing to keep per task.
    /// </summary>
    [JsonPropertyName("uuid")] public string? Uuid { get; init; }
    [JsonPropertyName("last")] public string LastStatus { get; init; } = "PENDING";
    [JsonPropertyName("runtimeId")] public string? RuntimeId { get; init; }
    [JsonPropertyName("exitCode")] public int? ExitCode { get; init; }
    [JsonPropertyName("reason")] public string? Reason { get; init; }
    [JsonPropertyName("imageDigest")] public string? ImageDigest { get; init; }
    /// <summary>A service task's <c>repository@digest</c> its deployment resolved the tag to (<see cref="VersionConsistency"/>); the agent runs it instead of <see cref="Image"/>.</summary>
    [JsonPropertyName("pinnedImage"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? PinnedImage { get; init; }
    [JsonPropertyName("health")] public string? HealthStatus { get; init; }
    /// <summary>From the definition at launch. Stored only when false, so a record without it (stored before this field existed) is essential.</summary>
    [JsonIgnore] public bool Essential { get => StoredEssential != false; init => StoredEssential = value ? null : false; }
    // The source generator gives an init-only property missing from the JSON its type's default, not the initializer's
    // value, so "missing means true" needs a nullable behind it.
    [JsonPropertyName("essential")] public bool? StoredEssential { get; init; }
    /// <summary>The definition gives the container a health check (so its health counts towards the task's, see <see cref="TaskHealth"/>).</summary>
    [JsonPropertyName("hasHealthCheck"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool HasHealthCheck { get; init; }
    [JsonPropertyName("cpu")] public string? Cpu { get; init; }
    [JsonPropertyName("memory")] public string? Memory { get; init; }
    [JsonPropertyName("memoryReservation")] public string? MemoryReservation { get; init; }
    [JsonPropertyName("bindings")] public IReadOnlyList<BindingRecord>? Bindings { get; init; }
}

public sealed record BindingRecord(
    [property: JsonPropertyName("ip")] string BindIp,
    [property: JsonPropertyName("containerPort")] int ContainerPort,
    [property: JsonPropertyName("hostPort")] int HostPort,
    [property: JsonPropertyName("protocol")] string Protocol);

public sealed record OverridesRecord
{
    [JsonPropertyName("cpu")] public string? Cpu { get; init; }
    [JsonPropertyName("memory")] public string? Memory { get; init; }
    [JsonPropertyName("containers")] public IReadOnlyList<ContainerOverrideRecord> Containers { get; init; } = [];
    [JsonPropertyName("taskRoleArn")] public string? TaskRoleArn { get; init; }
}

public sealed record ContainerOverrideRecord
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("command")] public IReadOnlyList<string>? Command { get; init; }
    [JsonPropertyName("environment")] public IReadOnlyList<KeyValueRecord>? Environment { get; init; }
    [JsonPropertyName("cpu")] public int? Cpu { get; init; }
    [JsonPropertyName("memory")] public int? Memory { get; init; }
    [JsonPropertyName("memoryReservation")] public int? MemoryReservation { get; init; }
}

public sealed record KeyValueRecord(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("value")] string Value);

public sealed record TagRecord(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("value")] string Value);

/// <summary>A RunTask/StartTask clientToken and what it produced, kept as long as its tasks are.</summary>
public sealed record ClientTokenRecord
{
    [JsonPropertyName("fingerprint")] public required string Fingerprint { get; init; }
    [JsonPropertyName("tasks")] public required IReadOnlyList<string> TaskIds { get; init; }
    [JsonPropertyName("failures")] public IReadOnlyList<FailureRecord> Failures { get; init; } = [];
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }
}

public sealed record FailureRecord(
    [property: JsonPropertyName("arn")] string? Arn,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("detail")] string? Detail = null);

/// <summary>ECS's task states, in the order a task moves through them.</summary>
public static class TaskStates
{
    public const string Provisioning = "PROVISIONING";
    public const string Pending = "PENDING";
    public const string Activating = "ACTIVATING";
    public const string Running = "RUNNING";
    public const string Deactivating = "DEACTIVATING";
    public const string Stopping = "STOPPING";
    public const string Deprovisioning = "DEPROVISIONING";
    public const string Stopped = "STOPPED";

    private static readonly string[] Order = [Provisioning, Pending, Activating, Running, Deactivating, Stopping, Deprovisioning, Stopped];

    /// <summary>Position in ECS's lifecycle; -1 for a name that is not a task state.</summary>
    public static int Rank(string? status) => status is null ? -1 : Array.IndexOf(Order, status);

    /// <summary>The interned constant for a known state (so 100,000 tasks share eight strings).</summary>
    public static string Intern(string status) => Rank(status) is var r and >= 0 ? Order[r] : status;
}
