using System.Text.Json.Serialization;
using Berth.Aws.Ecs;
using Berth.State;

namespace Berth.ControlPlane.State;

/// <summary>
/// The control plane's view of the store: one <see cref="DocumentTable{T}"/> per kind of ECS
/// resource. Readers use the tables directly (lock-free snapshots); writers go through
/// <see cref="BeginAsync"/>, one at a time.
/// </summary>
/// <remarks>
/// Key layout (ids are URL-safe; names are validated before they get here):
///   ecs/clusters/{clusterName}
///   ecs/taskdefs/{family}:{revision:D8}
///   ecs/tasks/{clusterName}/{taskId}
///   ecs/instances/{clusterName}/{instanceId}
///   ecs/account-settings/{principalArn or "default"}/{name}
/// </remarks>
public sealed class EcsState
{
    private readonly SemaphoreSlim _changed = new(0, int.MaxValue);
    private long _generation;

    public EcsState(IStateStore store)
    {
        Store = store;
        Clusters = new("ecs/clusters/", StateJsonContext.Default.Cluster);
        TaskDefinitions = new("ecs/taskdefs/", StateJsonContext.Default.StoredTaskDefinition);
        Tasks = new("ecs/tasks/", StateJsonContext.Default.EcsTask);
        ContainerInstances = new("ecs/instances/", StateJsonContext.Default.StoredContainerInstance);
        AccountSettings = new("ecs/account-settings/", StateJsonContext.Default.Setting);
    }

    public IStateStore Store { get; }
    internal SemaphoreSlim WriteLock { get; } = new(1, 1);

    public DocumentTable<Cluster> Clusters { get; }
    public DocumentTable<StoredTaskDefinition> TaskDefinitions { get; }
    public DocumentTable<EcsTask> Tasks { get; }
    public DocumentTable<StoredContainerInstance> ContainerInstances { get; }
    public DocumentTable<Setting> AccountSettings { get; }

    /// <summary>Bumped after every commit; controllers compare it to skip idle passes.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    public async Task LoadAsync(CancellationToken ct = default)
    {
        await Clusters.LoadAsync(Store, ct).ConfigureAwait(false);
        await TaskDefinitions.LoadAsync(Store, ct).ConfigureAwait(false);
        await Tasks.LoadAsync(Store, ct).ConfigureAwait(false);
        await ContainerInstances.LoadAsync(Store, ct).ConfigureAwait(false);
        await AccountSettings.LoadAsync(Store, ct).ConfigureAwait(false);
    }

    /// <summary>Takes the write lock; dispose the transaction to release it.</summary>
    public async Task<StateTransaction> BeginAsync(CancellationToken ct = default)
    {
        await WriteLock.WaitAsync(ct).ConfigureAwait(false);
        return new StateTransaction(this);
    }

    /// <summary>Completes when the state changes after <paramref name="seenGeneration"/>, or at the timeout.</summary>
    public async Task WaitForChangeAsync(long seenGeneration, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (Generation == seenGeneration)
        {
            var left = deadline - Environment.TickCount64;
            if (left <= 0 || !await _changed.WaitAsync(TimeSpan.FromMilliseconds(left), ct).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    internal void NotifyChanged()
    {
        Interlocked.Increment(ref _generation);
        // Wake every waiter currently parked; extra releases are drained by the next waits.
        _changed.Release(Math.Max(1, _changed.CurrentCount == 0 ? 8 : 1));
    }

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
