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
            ServiceConnectNamespace = NamespaceArn(req.ServiceConnectDefaults?.Namespace),
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
                    view.Statistics = Statistics(cluster.Name);
                }
                if (include.Contains("ATTACHMENTS"))
                {
                    // Cluster attachments are capacity providers' Auto Scaling resources; Berth has none to attach.
                    view.Attachments = [];
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
            ServiceConnectNamespace = NamespaceArn(req.ServiceConnectDefaults?.Namespace) ?? current.ServiceConnectNamespace,
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

    /// <summary>ECS's STATISTICS keys: task and service counts split by launch type (EXTERNAL counts as neither, as in ECS).</summary>
    private List<Berth.Aws.Ecs.KeyValuePair> Statistics(string cluster)
    {
        int runningEc2 = 0, runningFargate = 0, pendingEc2 = 0, pendingFargate = 0;
        foreach (var id in state.TaskIndex.Get(TaskIndex.ByDesired, cluster, TaskStates.Running))
        {
            if (state.Tasks.Find(id) is not { } t)
            {
                continue;
            }
            var fargate = t.LaunchType == "FARGATE";
            if (t.LastStatus == TaskStates.Running)
            {
                if (fargate)
                {
                    runningFargate++;
                }
                else
                {
                    runningEc2++;
                }
            }
            else if (t.LastStatus is TaskStates.Provisioning or TaskStates.Pending or TaskStates.Activating)
            {
                if (fargate)
                {
                    pendingFargate++;
                }
                else
                {
                    pendingEc2++;
                }
            }
        }
        int activeEc2 = 0, activeFargate = 0, drainingEc2 = 0, drainingFargate = 0;
        foreach (var key in state.ServiceIndex.InCluster(cluster))
        {
            if (state.Services.Find(key) is not { } s)
            {
                continue;
            }
            var fargate = s.LaunchType == "FARGATE";
            if (s.Status == ServiceStates.Active)
            {
                if (fargate)
                {
                    activeFargate++;
                }
                else
                {
                    activeEc2++;
                }
            }
            else if (s.Status == ServiceStates.Draining)
            {
                if (fargate)
                {
                    drainingFargate++;
                }
                else
                {
                    drainingEc2++;
                }
            }
        }
        static Berth.Aws.Ecs.KeyValuePair Kv(string name, int value) => new() { Name = name, Value = value.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        return
        [
            Kv("runningEC2TasksCount", runningEc2), Kv("runningFargateTasksCount", runningFargate),
            Kv("pendingEC2TasksCount", pendingEc2), Kv("pendingFargateTasksCount", pendingFargate),
            Kv("activeEC2ServiceCount", activeEc2), Kv("activeFargateServiceCount", activeFargate),
            Kv("drainingEC2ServiceCount", drainingEc2), Kv("drainingFargateServiceCount", drainingFargate),
        ];
    }

    /// <summary>
    /// serviceConnectDefaults.namespace as ECS answers it: the Cloud Map namespace's ARN. ECS creates a namespace
    /// when given a name; Berth has no Cloud Map, so a name stands for a stable ARN derived from it (ns- and 16
    /// hex digits of its SHA-256) and an ARN is kept as given.
    /// </summary>
    private string? NamespaceArn(string? nameOrArn)
    {
        if (string.IsNullOrEmpty(nameOrArn))
        {
            return null;
        }
        if (nameOrArn.StartsWith("arn:", StringComparison.Ordinal))
        {
            return nameOrArn;
        }
        if (nameOrArn.Length > 1024)
        {
            throw AwsException.InvalidParameter("serviceConnectDefaults.namespace: up to 1024 characters.");
        }
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(nameOrArn)))[..16];
        return $"arn:aws:servicediscovery:{arns.Identity.Region}:{arns.Identity.AccountId}:namespace/ns-{hash}";
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
