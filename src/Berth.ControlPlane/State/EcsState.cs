using System.Text.Json.Serialization;
using Berth.Aws.Ecs;
using Berth.State;

namespace Berth.ControlPlane.State;

/// <summary>
/// The control plane's view of the store: one <see cref="DocumentTable{T}"/> per kind of ECS
/// resource. Readers use the tables directly (lock-free snapshots); writers go through
/// <see cref="DocumentState.BeginAsync"/>, one at a time.
/// </summary>
/// <remarks>
/// Key layout (ids are URL-safe; names are validated before they get here):
///   ecs/clusters/{clusterName}
///   ecs/taskdefs/{family}:{revision:D8}
///   ecs/tasks/{clusterName}/{taskId}
///   ecs/instances/{clusterName}/{instanceId}
///   ecs/account-settings/{principalArn or "default"}/{name}
/// </remarks>
public sealed class EcsState : DocumentState
{
    public EcsState(IStateStore store) : base(store)
    {
        Clusters = Table("ecs/clusters/", StateJsonContext.Default.Cluster);
        TaskDefinitions = Table("ecs/taskdefs/", StateJsonContext.Default.StoredTaskDefinition);
        Tasks = Table("ecs/tasks/", StateJsonContext.Default.EcsTask);
        ContainerInstances = Table("ecs/instances/", StateJsonContext.Default.StoredContainerInstance);
        AccountSettings = Table("ecs/account-settings/", StateJsonContext.Default.Setting);
    }

    public DocumentTable<Cluster> Clusters { get; }
    public DocumentTable<StoredTaskDefinition> TaskDefinitions { get; }
    public DocumentTable<EcsTask> Tasks { get; }
    public DocumentTable<StoredContainerInstance> ContainerInstances { get; }
    public DocumentTable<Setting> AccountSettings { get; }

    /// <summary>Key of a task or container instance document: "{cluster}/{id}".</summary>
    public static string ScopedId(string clusterName, string id) => clusterName + "/" + id;

    /// <summary>Key of a task definition document: "{family}:{revision:D8}" (sorts by revision).</summary>
    public static string TaskDefinitionId(string family, int revision) => $"{family}:{revision:D8}";
}

/// <summary>A task definition revision with the tags ECS keeps beside it.</summary>
public sealed class StoredTaskDefinition
{
    [JsonPropertyName("taskDefinition")]
    public required TaskDefinition Definition { get; set; }

    [JsonPropertyName("tags")]
    public List<Tag>? Tags { get; set; }
}

/// <summary>A container instance plus what the control plane alone needs to know about it.</summary>
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
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Cluster))]
[JsonSerializable(typeof(StoredTaskDefinition))]
[JsonSerializable(typeof(EcsTask))]
[JsonSerializable(typeof(StoredContainerInstance))]
[JsonSerializable(typeof(Setting))]
internal sealed partial class StateJsonContext : JsonSerializerContext;
