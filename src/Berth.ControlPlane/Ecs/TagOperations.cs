using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
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

/// <summary>TagResource, UntagResource, ListTagsForResource on clusters, task definitions, tasks and container instances.</summary>
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
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        switch (p.ResourceType)
        {
            case "cluster" when state.Clusters.Find(p.Path) is { } c:
                if (edit(c.Tags) is { } ct1)
                {
                    var copy = state.Clusters.Clone(c);
                    copy.Tags = ct1;
                    tx.Put(state.Clusters, p.Path, copy);
                }
                break;
            case "task-definition" when TaskDefinitionId(p.Path) is { } id && state.TaskDefinitions.Find(id) is { } td:
                if (edit(td.Tags) is { } ct2)
                {
                    var copy = state.TaskDefinitions.Clone(td);
                    copy.Tags = ct2;
                    tx.Put(state.TaskDefinitions, id, copy);
                }
                break;
            case "task" when state.Tasks.Find(p.Path) is { } t:
                if (edit(t.Tags) is { } ct3)
                {
                    var copy = state.Tasks.Clone(t);
                    copy.Tags = ct3;
                    tx.Put(state.Tasks, p.Path, copy);
                }
                break;
            case "container-instance" when state.ContainerInstances.Find(p.Path) is { } ci:
                if (edit(ci.Instance.Tags) is { } ct4)
                {
                    var copy = state.ContainerInstances.Clone(ci);
                    copy.Instance.Tags = ct4;
                    tx.Put(state.ContainerInstances, p.Path, copy);
                }
                break;
            default:
                throw AwsException.InvalidParameter($"resourceArn: the specified resource '{arn}' is not found.");
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    private static string? TaskDefinitionId(string path)
    {
        var colon = path.LastIndexOf(':');
        return colon > 0 && int.TryParse(path[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var rev)
            ? EcsState.TaskDefinitionId(path[..colon], rev)
            : null;
    }
}
