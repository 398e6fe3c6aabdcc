using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>ECS's tag rules, shared by every operation that accepts tags.</summary>
internal static class Tags
{
    public static void Validate(IReadOnlyCollection<Tag>? tags)
    {
        if (tags is null)
        {
            return;
        }
        if (tags.Count > 50)
        {
            throw AwsException.InvalidParameter("tags: a resource can have at most 50 tags.");
        }
        var i = 0;
        foreach (var t in tags)
        {
            if (string.IsNullOrEmpty(t.Key))
            {
                throw AwsException.InvalidParameter($"tags[{i}].key: every tag needs a key.");
            }
            if (t.Key.StartsWith("aws:", StringComparison.OrdinalIgnoreCase))
            {
                throw AwsException.InvalidParameter($"tags[{i}].key: the key '{t.Key}' uses the reserved prefix aws:.");
            }
            i++;
        }
    }

    /// <summary>Tags merged by key: later ones win.</summary>
    public static List<Tag> Merge(IEnumerable<Tag>? existing, IEnumerable<Tag> added)
    {
        var merged = new Dictionary<string, Tag>(StringComparer.Ordinal);
        foreach (var t in (existing ?? []).Concat(added))
        {
            merged[t.Key ?? ""] = t;
        }
        return [.. merged.Values];
    }
}

/// <summary>TagResource, UntagResource, ListTagsForResource on clusters, task definitions, tasks, container instances and services.</summary>
internal sealed class TagOperations(EcsState state)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.TagResource, Json.TagResourceRequest, Json.TagResourceResponse, async (r, ct) =>
        {
            Tags.Validate(r.Tags);
            await EditAsync(r.ResourceArn!, existing => Tags.Merge(existing, r.Tags!), ct).ConfigureAwait(false);
            return new TagResourceResponse();
        });
        s.Map(EcsOperations.UntagResource, Json.UntagResourceRequest, Json.UntagResourceResponse, async (r, ct) =>
        {
            var remove = new HashSet<string>(r.TagKeys!, StringComparer.Ordinal);
            await EditAsync(r.ResourceArn!, existing => (existing ?? []).Where(t => !remove.Contains(t.Key ?? "")).ToList(), ct).ConfigureAwait(false);
            return new UntagResourceResponse();
        });
        s.Map(EcsOperations.ListTagsForResource, Json.ListTagsForResourceRequest, Json.ListTagsForResourceResponse, async (r, ct) =>
        {
            List<Tag>? tags = null;
            await EditAsync(r.ResourceArn!, existing => { tags = existing ?? []; return null; }, ct).ConfigureAwait(false);
            return new ListTagsForResourceResponse { Tags = tags };
        });
    }

    /// <summary>Finds the resource and, when <paramref name="edit"/> returns a list, stores it as its tags.</summary>
    private async Task EditAsync(string arn, Func<List<Tag>?, List<Tag>?> edit, CancellationToken ct)
    {
        if (!Arns.TryParse(arn, out var p) || p.Service != "ecs")
        {
            throw AwsException.InvalidParameter($"resourceArn: '{arn}' is not an ECS resource ARN.");
        }
        if (p.Region != state.Identity.Region || p.Account != state.Identity.AccountId)
        {
            throw AwsException.InvalidParameter($"resourceArn: the specified resource '{arn}' is not found.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var found = p.ResourceType switch
        {
            "cluster" => Retag(tx, state.Clusters, p.Path, c => InstanceViews.ToWire(c.Tags), (c, t) => c with { Tags = InstanceViews.FromWire(t) }, edit),
            "task-definition" => TaskDefinitionId(p.Path) is { } id && Retag(tx, state.TaskDefinitions, id, d => d.Tags, (d, t) =>
            {
                var copy = state.TaskDefinitions.Clone(d);
                copy.Tags = t;
                return copy;
            }, edit),
            "task" => RetagTask(tx, p.Path, edit),
            // service/{cluster}/{name}: the path is the service's key. (Old-format service/{name} ARNs match nothing.)
            "service" => Retag(tx, state.Services, p.Path, sv => sv.Tags?.Select(t => new Tag { Key = t.Key, Value = t.Value }).ToList(),
                (sv, t) => sv with { Tags = t.Select(x => new Berth.ControlPlane.Domain.TagRecord(x.Key ?? "", x.Value ?? "")).ToList() }, edit),
            "container-instance" => Retag(tx, state.ContainerInstances, p.Path, i => InstanceViews.ToWire(i.Tags), (i, t) => i with { Tags = InstanceViews.FromWire(t) }, edit),
            "capacity-provider" => state.CapacityProviders.Find(p.Path) is { Status: "ACTIVE" }
                && Retag(tx, state.CapacityProviders, p.Path, c => InstanceViews.ToWire(c.Tags), (c, t) => c with { Tags = InstanceViews.FromWire(t) }, edit),
            _ => false,
        };
        if (!found)
        {
            throw AwsException.InvalidParameter($"resourceArn: the specified resource '{arn}' is not found.");
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Applies <paramref name="edit"/> to one document's tags; false when there is no such document.</summary>
    private static bool Retag<T>(StateTransaction tx, DocumentTable<T> table, string id, Func<T, List<Tag>?> get, Func<T, List<Tag>, T> withTags, Func<List<Tag>?, List<Tag>?> edit)
        where T : class
    {
        if (table.Find(id) is not { } doc)
        {
            return false;
        }
        if (edit(get(doc)) is { } tags)
        {
            tx.Put(table, id, withTags(doc, tags));
        }
        return true;
    }

    private bool RetagTask(StateTransaction tx, string id, Func<List<Tag>?, List<Tag>?> edit)
    {
        if (state.Tasks.Find(id) is not { } task)
        {
            return false;
        }
        var current = task.Tags?.Select(t => new Tag { Key = t.Key, Value = t.Value }).ToList();
        if (edit(current) is { } tags)
        {
            tx.Put(state.Tasks, id, task with { Tags = tags.Select(t => new Berth.ControlPlane.Domain.TagRecord(t.Key ?? "", t.Value ?? "")).ToList() });
        }
        return true;
    }

    private static string? TaskDefinitionId(string path)
    {
        var colon = path.LastIndexOf(':');
        return colon > 0 && int.TryParse(path[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var rev)
            ? EcsState.TaskDefinitionId(path[..colon], rev)
            : null;
    }
}
