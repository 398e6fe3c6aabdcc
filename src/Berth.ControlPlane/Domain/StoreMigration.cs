using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Brings a store written by an older Berth to the current format (<see cref="StoreFormat.Current"/>).
/// Format 1 kept ECS documents under ecs/{kind}/... (no account or region) and stored tasks as the wire
/// Task shape. Each step commits in batches that move documents to their new keys and delete the old
/// ones atomically, so a crash part way leaves a store the next start finishes migrating.
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
                    var newKey = root + e.Key["ecs/".Length..];
                    var value = kind == "tasks/" ? await ConvertTaskAsync(store, root, e.Value, ct).ConfigureAwait(false) : e.Value;
                    if (value is not null)
                    {
                        writes.Add(new StoreWrite(newKey, value));
                    }
                    writes.Add(new StoreWrite(e.Key, null));
                }
                await store.CommitAsync(writes, ct).ConfigureAwait(false);
            }
        }
        await store.CommitAsync([new StoreWrite(FormatKey, JsonSerializer.SerializeToUtf8Bytes(new StoreFormat { Version = StoreFormat.Current }, StateJsonContext.Default.StoreFormat))], ct).ConfigureAwait(false);
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
