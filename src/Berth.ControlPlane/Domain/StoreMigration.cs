using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Brings a store written by an older Berth to the current format (<see cref="StoreFormat.Current"/>).
/// Format 1 kept ECS documents under ecs/{kind}/... (no account or region) and stored tasks, clusters and
/// container instances in the wire shapes; format 2 had account and region in the keys and tasks as
/// <see cref="TaskRecord"/>, but clusters and container instances still in the wire shapes; format 3 stores
/// them as <see cref="ClusterRecord"/> and <see cref="InstanceRecord"/>. Each step commits in batches that
/// are atomic (a document moves to its new key and leaves the old one in the same batch; a document
/// converted in place is recognised by its shape), so a crash part way leaves a store the next start
/// finishes migrating.
/// </summary>
internal static class StoreMigration
{
    private const string FormatKey = "berth/format";
    private const int Batch = 500;
    private static readonly string[] V1Kinds = ["clusters/", "taskdefs/", "instances/", "account-settings/", "tasks/"];

    public static async Task RunAsync(IStateStore store, BerthIdentity identity, CancellationToken ct)
    {
        var format = await store.GetAsync(FormatKey, ct).ConfigureAwait(false);
        var version = format is null ? 1 : JsonSerializer.Deserialize(format.Value, StateJsonContext.Default.StoreFormat)?.Version ?? 1;
        if (version >= StoreFormat.Current)
        {
            return;
        }
        if (version < 2)
        {
            await FromFormat1Async(store, identity, ct).ConfigureAwait(false);
        }
        else
        {
            await FromFormat2Async(store, ct).ConfigureAwait(false);
        }
        await store.CommitAsync([new StoreWrite(FormatKey, JsonSerializer.SerializeToUtf8Bytes(new StoreFormat { Version = StoreFormat.Current }, StateJsonContext.Default.StoreFormat))], ct).ConfigureAwait(false);
    }

    private static async Task FromFormat1Async(IStateStore store, BerthIdentity identity, CancellationToken ct)
    {
        var root = $"ecs/{identity.AccountId}/{identity.Region}/";
        // Task definitions first: converting a task needs its definition (static ports) from the new keys.
        foreach (var kind in V1Kinds)
        {
            var old = await store.ListAsync("ecs/" + kind, ct).ConfigureAwait(false);
            for (var i = 0; i < old.Count; i += Batch)
            {
                var writes = new List<StoreWrite>();
                foreach (var e in old.Skip(i).Take(Batch))
                {
                    var id = e.Key["ecs/".Length..];
                    var value = kind switch
                    {
                        "tasks/" => await ConvertTaskAsync(store, root, e.Value, ct).ConfigureAwait(false),
                        "clusters/" => ConvertCluster(e.Value, id[kind.Length..]),
                        "instances/" => ConvertInstance(e.Value),
                        _ => e.Value,
                    };
                    if (value is not null)
                    {
                        writes.Add(new StoreWrite(root + id, value));
                    }
                    writes.Add(new StoreWrite(e.Key, null));
                }
                await store.CommitAsync(writes, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Clusters and container instances converted in place, for every account and region in the store (a
    /// data directory may have been served under more than one).
    /// </summary>
    private static async Task FromFormat2Async(IStateStore store, CancellationToken ct)
    {
        // Keys are ecs/{account}/{region}/{kind}/...: one listing finds every account-and-region pair.
        var roots = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in await store.ListAsync("ecs/", ct).ConfigureAwait(false))
        {
            var parts = e.Key.Split('/', 5);
            if (parts.Length == 5 && parts[3] is "clusters" or "instances")
            {
                roots.Add($"ecs/{parts[1]}/{parts[2]}/");
            }
        }
        foreach (var root in roots)
        {
            foreach (var kind in (string[])["clusters/", "instances/"])
            {
                var docs = await store.ListAsync(root + kind, ct).ConfigureAwait(false);
                for (var i = 0; i < docs.Count; i += Batch)
                {
                    var writes = new List<StoreWrite>();
                    foreach (var e in docs.Skip(i).Take(Batch))
                    {
                        var value = kind == "clusters/" ? ConvertCluster(e.Value, e.Key[(root.Length + kind.Length)..]) : ConvertInstance(e.Value);
                        if (value != e.Value)
                        {
                            writes.Add(new StoreWrite(e.Key, value));
                        }
                    }
                    if (writes.Count > 0)
                    {
                        await store.CommitAsync(writes, ct).ConfigureAwait(false);
                    }
                }
            }
        }
    }

    /// <summary>A wire-shaped cluster as a <see cref="ClusterRecord"/>; the value itself when it is one already.</summary>
    private static byte[]? ConvertCluster(byte[] value, string name)
    {
        using (var doc = JsonDocument.Parse(value))
        {
            if (!doc.RootElement.TryGetProperty("clusterArn", out _) && !doc.RootElement.TryGetProperty("clusterName", out _))
            {
                return value;
            }
        }
        var wire = JsonSerializer.Deserialize(value, StateJsonContext.Default.Cluster);
        return wire is null ? null : JsonSerializer.SerializeToUtf8Bytes(ClusterViews.FromWire(wire, name), StateJsonContext.Default.ClusterRecord);
    }

    /// <summary>A stored wire-shaped container instance as an <see cref="InstanceRecord"/>; the value itself when it is one already.</summary>
    private static byte[]? ConvertInstance(byte[] value)
    {
        using (var doc = JsonDocument.Parse(value))
        {
            if (!doc.RootElement.TryGetProperty("instance", out _))
            {
                return value;
            }
        }
        var old = JsonSerializer.Deserialize(value, StateJsonContext.Default.StoredContainerInstance);
        return old is null ? null : JsonSerializer.SerializeToUtf8Bytes(InstanceViews.FromWire(old), StateJsonContext.Default.InstanceRecord);
    }
    private static async Task<byte[]?> ConvertTaskAsync(IStateStore store, string root, byte[] value, CancellationToken ct)
    {
        var wire = JsonSerializer.Deserialize(value, StateJsonContext.Default.EcsTask);
        if (wire is null)
        {
            return null;
        }
        TaskDefinition? def = null;
        if (wire.TaskDefinitionArn is { } arn)
        {
            var name = arn[(arn.IndexOf('/') + 1)..];
            var colon = name.LastIndexOf(':');
            if (colon > 0 && int.TryParse(name[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var rev)
                && await store.GetAsync(root + "taskdefs/" + EcsState.TaskDefinitionId(name[..colon], rev), ct).ConfigureAwait(false) is { } d)
            {
                def = JsonSerializer.Deserialize(d.Value, StateJsonContext.Default.StoredTaskDefinition)?.Definition;
            }
        }
        var record = TaskViews.FromWire(wire, def);
        return record is null ? null : JsonSerializer.SerializeToUtf8Bytes(record, StateJsonContext.Default.TaskRecord);
    }
}
