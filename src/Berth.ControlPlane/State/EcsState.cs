using System.Text.Json;
using System.Text.Json.Serialization;
using Berth.Aws.Ecs;
using Berth.ControlPlane.Domain;
using Berth.Core;
using Berth.State;

namespace Berth.ControlPlane.State;

/// <summary>
/// The control plane's view of the store for one account and region: one <see cref="DocumentTable{T}"/>
/// per kind of ECS resource plus the secondary indexes derived from them (<see cref="TaskIndex"/>,
/// <see cref="InstanceLedger"/>, <see cref="FamilyIndex"/>). Readers use the tables and indexes directly
/// (lock-free snapshots); writers go through <see cref="DocumentState.BeginAsync"/>, one at a time.
/// </summary>
/// <remarks>
/// Key layout (store format 3; ids are URL-safe; names are validated before they get here):
///   ecs/{account}/{region}/clusters/{clusterName}                  (a <see cref="ClusterRecord"/>)
///   ecs/{account}/{region}/taskdefs/{family}:{revision:D8}
///   ecs/{account}/{region}/tasks/{clusterName}/{taskId}            (a <see cref="TaskRecord"/>)
///   ecs/{account}/{region}/instances/{clusterName}/{instanceId}   (an <see cref="InstanceRecord"/>)
///   ecs/{account}/{region}/services/{clusterName}/{serviceName}   (a <see cref="ServiceRecord"/>)
///   ecs/{account}/{region}/client-tokens/{clusterName}/{token}
///   ecs/{account}/{region}/account-settings/{principalArn or "default"}/{name}
///   ecs/{account}/{region}/capacity-providers/{name}               (a <see cref="CapacityProviderRecord"/>)
///   berth/format                                                   ({"version": 3})
/// Format 1 (before account and region were in the keys, tasks stored as the wire Task shape) and format 2
/// (clusters and container instances still in the wire shapes) are migrated on open by <see cref="StoreMigration"/>.
/// </remarks>
public sealed class EcsState : DocumentState
{
    public EcsState(IStateStore store, BerthIdentity? identity = null) : base(store)
    {
        Identity = identity ?? new BerthIdentity();
        Ledger = new InstanceLedger(new Arns(Identity));
        var root = $"ecs/{Identity.AccountId}/{Identity.Region}/";
        Clusters = Table(root + "clusters/", StateJsonContext.Default.ClusterRecord);
        TaskDefinitions = Table(root + "taskdefs/", StateJsonContext.Default.StoredTaskDefinition);
        Tasks = Table(root + "tasks/", StateJsonContext.Default.TaskRecord);
        ContainerInstances = Table(root + "instances/", StateJsonContext.Default.InstanceRecord);
        ClientTokens = Table(root + "client-tokens/", StateJsonContext.Default.ClientTokenRecord);
        AccountSettings = Table(root + "account-settings/", StateJsonContext.Default.Setting);
        Services = Table(root + "services/", StateJsonContext.Default.ServiceRecord);
        CapacityProviders = Table(root + "capacity-providers/", StateJsonContext.Default.CapacityProviderRecord);
        Services.Changed += ServiceIndex.ApplyService;
        TaskIndex.Applied += ServiceIndex.ApplyTask;

        Tasks.Changed += TaskIndex.Apply;
        TaskIndex.Applied += Ledger.ApplyTask;
        TaskIndex.Applied += (id, old, now) =>
        {
            // Only what the agent acts on wakes its stream: a new task, a new desired status, a move or a purge.
            // Its own reports (lastStatus, containers) are not echoed back to it.
            if (old is not null && now is not null && old.DesiredStatus == now.DesiredStatus && old.InstanceId == now.InstanceId)
            {
                return;
            }
            if (old?.InstanceId is { } moved && now is not null && now.InstanceId != moved)
            {
                Feeds.MarkChanged(old.Cluster + "/" + moved, id);
            }
            if (now?.InstanceId is { } i)
            {
                Feeds.MarkChanged(now.Cluster + "/" + i, id);
            }
            else if (now is null && old?.InstanceId is { } oi)
            {
                Feeds.MarkChanged(old.Cluster + "/" + oi, id);
            }
        };
        ContainerInstances.Changed += Ledger.ApplyInstance;
        TaskDefinitions.Changed += Families.Apply;
    }

    public BerthIdentity Identity { get; }

    /// <summary>
    /// Whether <see cref="DocumentState.LoadAsync"/> first brings an old store to the current format. The region
    /// directory migrates once for all regions and loads each region's state with this off.
    /// </summary>
    public bool MigrateOnLoad { get; init; } = true;

    public DocumentTable<ClusterRecord> Clusters { get; }
    public DocumentTable<StoredTaskDefinition> TaskDefinitions { get; }
    public DocumentTable<TaskRecord> Tasks { get; }
    public DocumentTable<InstanceRecord> ContainerInstances { get; }
    public DocumentTable<ClientTokenRecord> ClientTokens { get; }
    public DocumentTable<Setting> AccountSettings { get; }
    public DocumentTable<ServiceRecord> Services { get; }
    /// <summary>Auto Scaling group capacity providers by name (FARGATE and FARGATE_SPOT are built in, never stored).</summary>
    public DocumentTable<CapacityProviderRecord> CapacityProviders { get; }

    public TaskIndex TaskIndex { get; } = new();
    public InstanceLedger Ledger { get; }
    public FamilyIndex Families { get; } = new();
    public InstanceFeeds Feeds { get; } = new();
    public ServiceIndex ServiceIndex { get; } = new();

    protected override Task BeforeLoadAsync(CancellationToken ct)
    {
        TaskIndex.Clear();
        Ledger.Clear();
        Families.Clear();
        ServiceIndex.Clear();
        return MigrateOnLoad ? StoreMigration.RunAsync(Store, Identity, ct) : Task.CompletedTask;
    }

    protected override void OnDurable() => Feeds.WakeDurable();

    /// <summary>Key of a task or container instance document: "{cluster}/{id}".</summary>
    public static string ScopedId(string clusterName, string id) => clusterName + "/" + id;

    /// <summary>Key of a task definition document: "{family}:{revision:D8}" (sorts by revision).</summary>
    public static string TaskDefinitionId(string family, int revision) => $"{family}:{revision:D8}";

    /// <summary>
    /// "{cluster}/{id}" key of a task or instance ARN (or a bare id within <paramref name="cluster"/>);
    /// null for an ARN of another account or region, which this state never holds.
    /// </summary>
    public string? KeyOf(string cluster, string arnOrId)
    {
        if (Arns.TryParse(arnOrId, out var parsed))
        {
            if (parsed.Region != Identity.Region || parsed.Account != Identity.AccountId)
            {
                return null;
            }
            var slash = parsed.Path.IndexOf('/');
            return slash > 0 ? ScopedId(parsed.Path[..slash], parsed.Path[(slash + 1)..]) : ScopedId(cluster, parsed.Path);
        }
        return ScopedId(cluster, arnOrId);
    }

    /// <summary>The "{cluster}/{id}" key of a reference that names something in <paramref name="cluster"/>; null otherwise.</summary>
    public string? KeyIn(string cluster, string arnOrId)
        => KeyOf(cluster, arnOrId) is { } key && key.Length > cluster.Length && key[cluster.Length] == '/' && key.StartsWith(cluster, StringComparison.Ordinal) ? key : null;
}

/// <summary>A task definition revision with the tags ECS keeps beside it.</summary>
public sealed class StoredTaskDefinition
{
    [JsonPropertyName("taskDefinition")]
    public required TaskDefinition Definition { get; set; }

    [JsonPropertyName("tags")]
    public List<Tag>? Tags { get; set; }
}

/// <summary>A container instance as formats 1 and 2 stored it (the wire shape plus what the control plane kept beside it); read only to migrate.</summary>
public sealed class StoredContainerInstance
{
    [JsonPropertyName("instance")]
    public required ContainerInstance Instance { get; set; }

    /// <summary>The cluster name the instance belongs to.</summary>
    [JsonPropertyName("cluster")]
    public required string Cluster { get; set; }

    /// <summary>Stable id of the berth agent that registered it; null for instances registered through the API.</summary>
    [JsonPropertyName("agentId")]
    public string? AgentId { get; set; }

    /// <summary>SHA-256 (hex) of the secret issued to that agent at its first registration; it must present the secret to register again.</summary>
    [JsonPropertyName("agentSecretHash")]
    public string? AgentSecretHash { get; set; }

    /// <summary>When DeregisterContainerInstance made it INACTIVE; it is removed one retention window later.</summary>
    [JsonPropertyName("deregisteredAt")]
    public DateTimeOffset? DeregisteredAt { get; set; }
}

/// <summary>The store's format version, kept under berth/format.</summary>
public sealed class StoreFormat
{
    public const int Current = 3;

    [JsonPropertyName("version")]
    public int Version { get; set; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Cluster))]
[JsonSerializable(typeof(StoredTaskDefinition))]
[JsonSerializable(typeof(EcsTask))]
[JsonSerializable(typeof(TaskRecord))]
[JsonSerializable(typeof(ClientTokenRecord))]
[JsonSerializable(typeof(StoredContainerInstance))]
[JsonSerializable(typeof(InstanceRecord))]
[JsonSerializable(typeof(ClusterRecord))]
[JsonSerializable(typeof(Setting))]
[JsonSerializable(typeof(ServiceRecord))]
[JsonSerializable(typeof(StoreFormat))]
[JsonSerializable(typeof(CapacityProviderRecord))]
internal sealed partial class StateJsonContext : JsonSerializerContext;
