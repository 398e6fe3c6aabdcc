using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>PutAttributes, DeleteAttributes and ListAttributes on container instances (the only target type ECS has).</summary>
internal sealed class AttributeOperations(EcsState state, Arns arns)
{
    private const int MaxPerCall = 10;

    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.PutAttributes, Json.PutAttributesRequest, Json.PutAttributesResponse, async (r, ct) =>
            new PutAttributesResponse { Attributes = await EditAsync(r.Cluster, r.Attributes!, remove: false, ct).ConfigureAwait(false) });
        s.Map(EcsOperations.DeleteAttributes, Json.DeleteAttributesRequest, Json.DeleteAttributesResponse, async (r, ct) =>
            new DeleteAttributesResponse { Attributes = await EditAsync(r.Cluster, r.Attributes!, remove: true, ct).ConfigureAwait(false) });
        s.Map(EcsOperations.ListAttributes, Json.ListAttributesRequest, Json.ListAttributesResponse, (r, _) => Task.FromResult(List(r)));
    }

    private async Task<List<EcsAttribute>> EditAsync(string? cluster, List<EcsAttribute> attributes, bool remove, CancellationToken ct)
    {
        if (attributes.Count > MaxPerCall)
        {
            throw new AwsException("AttributeLimitExceededException", $"attributes: at most {MaxPerCall} attributes can be changed in one call.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var clusterName = TaskQueries.ResolveCluster(state, cluster);
        var changed = new Dictionary<string, InstanceRecord>(StringComparer.Ordinal);
        for (var i = 0; i < attributes.Count; i++)
        {
            var a = attributes[i];
            if (a.TargetType is not (null or "container-instance"))
            {
                throw AwsException.InvalidParameter($"attributes[{i}].targetType: only container-instance is supported.");
            }
            if (string.IsNullOrEmpty(a.TargetId))
            {
                throw AwsException.InvalidParameter($"attributes[{i}].targetId: the container instance the attribute belongs to is required.");
            }
            if (a.Name is { } n && n.StartsWith(Berth.Core.Agent.HostPolicy.AttributePrefix, StringComparison.Ordinal))
            {
                // The host policy is the agent's to report (berth agent --allow-...): a client cannot widen or narrow it.
                throw AwsException.InvalidParameter($"attributes[{i}].name: '{n}' is reported by the agent from its host policy and cannot be changed with {(remove ? "DeleteAttributes" : "PutAttributes")}.");
            }
            if (a.Name == Berth.Core.Agent.EphemeralSpace.Attribute)
            {
                // Measured by the agent (its Docker data root's size); placement trusts it for ephemeralStorage.
                throw AwsException.InvalidParameter($"attributes[{i}].name: '{a.Name}' is measured and reported by the agent and cannot be changed with {(remove ? "DeleteAttributes" : "PutAttributes")}.");
            }
            var id = TaskQueries.ScopedIdOf(state, clusterName, a.TargetId);
            if (!changed.TryGetValue(id, out var doc))
            {
                doc = state.ContainerInstances.Find(id)
                    ?? throw new AwsException("TargetNotFoundException", $"attributes[{i}].targetId: container instance '{a.TargetId}' was not found in cluster '{clusterName}'.");
            }
            var list = doc.Attributes.Where(x => x.Name != a.Name).ToList();
            if (!remove)
            {
                list.Add(new AttributeRecord { Name = a.Name, Value = a.Value });
            }
            changed[id] = doc with { Attributes = list };
        }
        foreach (var (id, doc) in changed)
        {
            tx.Put(state.ContainerInstances, id, doc);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return attributes.Select(a => new EcsAttribute
        {
            Name = a.Name,
            Value = remove ? null : a.Value,
            TargetType = "container-instance",
            TargetId = InstanceViews.Arn(arns, changed[TaskQueries.ScopedIdOf(state, clusterName, a.TargetId!)]),
        }).ToList();
    }

    private ListAttributesResponse List(ListAttributesRequest req)
    {
        if (req.TargetType != "container-instance")
        {
            throw AwsException.InvalidParameter("targetType: only container-instance is supported.");
        }
        if (req.AttributeValue is not null && req.AttributeName is null)
        {
            throw AwsException.InvalidParameter("attributeValue: can only be used together with attributeName.");
        }
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        var all = state.Ledger.InCluster(clusterName).Select(id => state.ContainerInstances.Find(id)).OfType<InstanceRecord>()
            .SelectMany(d => d.Attributes.Select(a => (Arn: InstanceViews.Arn(arns, d), a)))
            .Where(x => (req.AttributeName is null || x.a.Name == req.AttributeName) && (req.AttributeValue is null || x.a.Value == req.AttributeValue))
            .ToDictionary(x => $"{x.Arn}|{x.a.Name}", StringComparer.Ordinal);
        var (page, next) = Pagination.Page(all.Keys, req.MaxResults, req.NextToken);
        return new ListAttributesResponse
        {
            Attributes = page.Select(k => new EcsAttribute { Name = all[k].a.Name, Value = all[k].a.Value, TargetType = "container-instance", TargetId = all[k].Arn }).ToList(),
            NextToken = next,
        };
    }
}
