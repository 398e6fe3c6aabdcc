using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>CreateCluster, DescribeClusters, ListClusters, DeleteCluster, UpdateCluster, UpdateClusterSettings.</summary>
internal sealed class ClusterOperations(EcsState state, Arns arns)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.CreateCluster, Json.CreateClusterRequest, Json.CreateClusterResponse, CreateAsync);
        s.Map(EcsOperations.DescribeClusters, Json.DescribeClustersRequest, Json.DescribeClustersResponse, (r, _) => Task.FromResult(Describe(r)));
        s.Map(EcsOperations.ListClusters, Json.ListClustersRequest, Json.ListClustersResponse, (r, _) => Task.FromResult(List(r)));
        s.Map(EcsOperations.DeleteCluster, Json.DeleteClusterRequest, Json.DeleteClusterResponse, DeleteAsync);
        s.Map(EcsOperations.UpdateCluster, Json.UpdateClusterRequest, Json.UpdateClusterResponse, UpdateAsync);
        s.Map(EcsOperations.UpdateClusterSettings, Json.UpdateClusterSettingsRequest, Json.UpdateClusterSettingsResponse, UpdateSettingsAsync);
    }

    private async Task<CreateClusterResponse> CreateAsync(CreateClusterRequest req, CancellationToken ct)
    {
        var name = req.ClusterName ?? "default";
        if (!Names.IsValidClusterName(name))
        {
            throw AwsException.InvalidParameter("clusterName: up to 255 letters (uppercase and lowercase), numbers, hyphens and underscores are allowed.");
        }
        Tags.Validate(req.Tags);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.Clusters.Find(name) is { Status: "ACTIVE" } existing)
        {
            return new CreateClusterResponse { Cluster = View(existing, full: true) }; // idempotent on name
        }
        var (providers, defaultStrategy) = CapacityProviderOperations.ValidateClusterProviders(state, req.CapacityProviders, req.DefaultCapacityProviderStrategy);
        var fresh = Berth.ControlPlane.Domain.Clusters.New(name);
        var cluster = fresh with
        {
            Tags = req.Tags is { Count: > 0 } ? InstanceViews.FromWire(req.Tags) : null,
            Settings = ClusterViews.FromWire(req.Settings) ?? fresh.Settings,
            Configuration = ClusterViews.FromWire(req.Configuration),
            CapacityProviders = providers,
            DefaultCapacityProviderStrategy = defaultStrategy,
        };
        tx.Put(state.Clusters, name, cluster);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new CreateClusterResponse { Cluster = View(cluster, full: true) };
    }

    private DescribeClustersResponse Describe(DescribeClustersRequest req)
    {
        var include = req.Include ?? [];
        var resp = new DescribeClustersResponse { Clusters = [], Failures = [] };
        foreach (var reference in req.Clusters is { Count: > 0 } c ? c : ["default"])
        {
            var name = Arns.NameOf(reference);
            if (state.Clusters.Find(name) is { } cluster)
            {
                var full = ClusterViews.ToWire(arns, cluster);
                var view = View(cluster, full: false);
                if (include.Contains("TAGS"))
                {
                    view.Tags = full.Tags ?? [];
                }
                if (include.Contains("SETTINGS"))
                {
                    view.Settings = full.Settings;
                }
                if (include.Contains("CONFIGURATIONS"))
                {
                    view.Configuration = full.Configuration;
                }
                if (include.Contains("STATISTICS"))
                {
                    view.Statistics = [];
                }
                resp.Clusters.Add(view);
            }
            else
            {
                resp.Failures.Add(new Failure { Arn = reference.StartsWith("arn:", StringComparison.Ordinal) ? reference : arns.Cluster(name), Reason = "MISSING" });
            }
        }
        return resp;
    }

    private ListClustersResponse List(ListClustersRequest req)
    {
        var active = state.Clusters.All.Where(v => v.Value.Status == "ACTIVE").Select(v => arns.Cluster(v.Value.Name));
        var (page, next) = Pagination.Page(active, req.MaxResults, req.NextToken);
        return new ListClustersResponse { ClusterArns = page, NextToken = next };
    }

    private async Task<DeleteClusterResponse> DeleteAsync(DeleteClusterRequest req, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var name = TaskQueries.ResolveCluster(state, req.Cluster);
        var cluster = state.Clusters.Find(name)!;
        if (state.Ledger.InCluster(name).Any(id => state.ContainerInstances.Find(id)?.Status is "ACTIVE" or "DRAINING"))
        {
            throw new AwsException("ClusterContainsContainerInstancesException", "The cluster cannot be deleted while container instances are active or draining.");
        }
        if (state.ServiceIndex.InCluster(name).Any(id => state.Services.Find(id)?.Status is ServiceStates.Active or ServiceStates.Draining))
        {
            throw new AwsException("ClusterContainsServicesException", "The Cluster cannot be deleted while Services are active.");
        }
        if (state.TaskIndex.CountsOf(name).Live > 0)
        {
            throw new AwsException("ClusterContainsTasksException", "The cluster cannot be deleted while tasks are active.");
        }
        var updated = cluster with { Status = "INACTIVE" };
        tx.Put(state.Clusters, name, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new DeleteClusterResponse { Cluster = View(updated, full: true) };
    }

    private async Task<UpdateClusterResponse> UpdateAsync(UpdateClusterRequest req, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var name = TaskQueries.ResolveCluster(state, req.Cluster);
        var current = state.Clusters.Find(name)!;
        var updated = current with
        {
            Settings = ClusterViews.FromWire(req.Settings) ?? current.Settings,
            Configuration = ClusterViews.FromWire(req.Configuration) ?? current.Configuration,
            ServiceConnectNamespace = req.ServiceConnectDefaults?.Namespace ?? current.ServiceConnectNamespace,
        };
        tx.Put(state.Clusters, name, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new UpdateClusterResponse { Cluster = View(updated, full: true) };
    }

    private async Task<UpdateClusterSettingsResponse> UpdateSettingsAsync(UpdateClusterSettingsRequest req, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var name = TaskQueries.ResolveCluster(state, req.Cluster);
        var current = state.Clusters.Find(name)!;
        var settings = (current.Settings ?? []).ToDictionary(x => x.Name ?? "", StringComparer.Ordinal);
        foreach (var setting in req.Settings ?? [])
        {
            if (setting.Name is null || setting.Value is null)
            {
                throw AwsException.InvalidParameter("settings: each setting needs a name and a value.");
            }
            settings[setting.Name] = new ClusterSettingRecord(setting.Name, setting.Value);
        }
        var updated = current with { Settings = [.. settings.Values] };
        tx.Put(state.Clusters, name, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new UpdateClusterSettingsResponse { Cluster = View(updated, full: true) };
    }

    /// <summary>The stored cluster in the wire shape with live counts; tags and settings only when <paramref name="full"/>.</summary>
    private Cluster View(ClusterRecord stored, bool full)
    {
        var c = ClusterViews.ToWire(arns, stored);
        c.RegisteredContainerInstancesCount = state.Ledger.InCluster(stored.Name).Count(id => state.ContainerInstances.Find(id)?.Status is "ACTIVE" or "DRAINING");
        var (running, pending, _) = state.TaskIndex.CountsOf(stored.Name);
        c.RunningTasksCount = running;
        c.PendingTasksCount = pending;
        c.ActiveServicesCount = state.ServiceIndex.ActiveCount(stored.Name);
        if (!full)
        {
            c.Tags = null;
            c.Settings = null;
            c.Configuration = null;
        }
        return c;
    }
}
