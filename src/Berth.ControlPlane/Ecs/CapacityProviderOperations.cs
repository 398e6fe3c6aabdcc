using System.Text.RegularExpressions;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>
/// CreateCapacityProvider, DescribeCapacityProviders, UpdateCapacityProvider, DeleteCapacityProvider and
/// PutClusterCapacityProviders. An Auto Scaling group capacity provider is a group of container instances (those
/// whose ecs.capacity-provider attribute names it, see <see cref="CapacityProviders"/>); FARGATE and FARGATE_SPOT
/// are built in and run on any instance of the cluster.
/// </summary>
internal sealed partial class CapacityProviderOperations(EcsState state, Arns arns, TimeProvider time)
{
    /// <summary>DescribeCapacityProviders answers at most 10 per page, as ECS does.</summary>
    private const int PageLimit = 10;

    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.CreateCapacityProvider, Json.CreateCapacityProviderRequest, Json.CreateCapacityProviderResponse, CreateAsync);
        s.Map(EcsOperations.DescribeCapacityProviders, Json.DescribeCapacityProvidersRequest, Json.DescribeCapacityProvidersResponse, (r, _) => Task.FromResult(Describe(r)));
        s.Map(EcsOperations.UpdateCapacityProvider, Json.UpdateCapacityProviderRequest, Json.UpdateCapacityProviderResponse, UpdateAsync);
        s.Map(EcsOperations.DeleteCapacityProvider, Json.DeleteCapacityProviderRequest, Json.DeleteCapacityProviderResponse, DeleteAsync);
        s.Map(EcsOperations.PutClusterCapacityProviders, Json.PutClusterCapacityProvidersRequest, Json.PutClusterCapacityProvidersResponse, PutClusterAsync);
    }

    private async Task<CreateCapacityProviderResponse> CreateAsync(CreateCapacityProviderRequest req, CancellationToken ct)
    {
        var name = req.Name ?? "";
        if (!Names.IsValidClusterName(name))
        {
            throw AwsException.InvalidParameter("name: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed.");
        }
        if (ReservedPrefix().IsMatch(name))
        {
            throw AwsException.Client("The capacity provider name can't be prefixed with \"aws\", \"ecs\", or \"fargate\". Specify a different name and try again.");
        }
        if (req.ManagedInstancesProvider is not null || req.Cluster is not null)
        {
            throw AwsException.InvalidParameter($"{(req.ManagedInstancesProvider is not null ? "managedInstancesProvider" : "cluster")}: Amazon ECS Managed Instances capacity providers are not available in Berth; create an Auto Scaling group capacity provider (autoScalingGroupProvider).");
        }
        var asg = req.AutoScalingGroupProvider ?? throw AwsException.InvalidParameter("autoScalingGroupProvider: must be specified.");
        var groupArn = asg.AutoScalingGroupArn ?? "";
        if (!AutoScalingGroup().IsMatch(groupArn))
        {
            throw AwsException.Client($"autoScalingGroupProvider.autoScalingGroupArn: '{groupArn}' is not an Auto Scaling group ARN (arn:aws:autoscaling:REGION:ACCOUNT:autoScalingGroup:ID:autoScalingGroupName/NAME) or name.");
        }
        Tags.Validate(req.Tags);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.CapacityProviders.Find(name) is { Status: "ACTIVE" })
        {
            throw AwsException.Client("The specified capacity provider already exists. To change the configuration of an existing capacity provider, update the capacity provider.");
        }
        if (state.CapacityProviders.All.Any(p => p.Value.Status == "ACTIVE" && p.Value.AutoScalingGroupArn == groupArn))
        {
            throw AwsException.Client("The specified Auto Scaling group ARN is already being used by another capacity provider. Specify a unique Auto Scaling group ARN and try again.");
        }
        var record = new CapacityProviderRecord
        {
            Name = name,
            AutoScalingGroupArn = groupArn,
            ManagedScaling = Scaling(asg.ManagedScaling, new ManagedScalingRecord()),
            ManagedTerminationProtection = asg.ManagedTerminationProtection ?? "DISABLED",
            ManagedDraining = asg.ManagedDraining ?? "ENABLED",
            Tags = req.Tags is { Count: > 0 } ? InstanceViews.FromWire(req.Tags) : null,
            CreatedAt = time.GetUtcNow(),
        };
        tx.Put(state.CapacityProviders, name, record);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new CreateCapacityProviderResponse { CapacityProvider = View(record, withTags: record.Tags is not null) };
    }

    private DescribeCapacityProvidersResponse Describe(DescribeCapacityProvidersRequest req)
    {
        var withTags = req.Include?.Contains("TAGS") == true;
        // Sort keys: the built-in providers first, as ECS lists them, then the account's by name.
        IEnumerable<string> keys;
        if (req.CapacityProviders is { Count: > 0 } asked)
        {
            var list = new List<string>();
            foreach (var reference in asked)
            {
                var name = Arns.NameOf(reference ?? "");
                if (!CapacityProviders.IsBuiltIn(name) && state.CapacityProviders.Find(name) is null)
                {
                    throw CapacityProviders.NotFound();
                }
                list.Add(SortKey(name));
            }
            keys = list.Distinct(StringComparer.Ordinal);
        }
        else
        {
            keys = new[] { CapacityProviders.Fargate, CapacityProviders.FargateSpot }
                .Concat(state.CapacityProviders.All.Where(p => p.Value.Status == "ACTIVE").Select(p => p.Value.Name))
                .Select(SortKey);
        }
        var (page, next) = Pagination.Page(keys, req.MaxResults, req.NextToken, limit: PageLimit);
        var views = new List<CapacityProvider>(page.Count);
        foreach (var key in page)
        {
            var name = key[2..];
            views.Add(CapacityProviders.IsBuiltIn(name) ? BuiltIn(name, withTags) : View(state.CapacityProviders.Find(name)!, withTags));
        }
        return new DescribeCapacityProvidersResponse { CapacityProviders = views, Failures = [], NextToken = next };
    }

    private static string SortKey(string name) => (CapacityProviders.IsBuiltIn(name) ? "0:" : "1:") + name;

    private async Task<UpdateCapacityProviderResponse> UpdateAsync(UpdateCapacityProviderRequest req, CancellationToken ct)
    {
        var name = Arns.NameOf(req.Name ?? "");
        if (req.ManagedInstancesProvider is not null)
        {
            throw AwsException.InvalidParameter("managedInstancesProvider: Amazon ECS Managed Instances capacity providers are not available in Berth.");
        }
        if (CapacityProviders.IsBuiltIn(name))
        {
            throw AwsException.Client($"The {name} capacity provider is reserved and can't be updated.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.CapacityProviders.Find(name) is not { Status: "ACTIVE" } current)
        {
            throw CapacityProviders.NotFound();
        }
        var update = req.AutoScalingGroupProvider;
        var updated = current with
        {
            ManagedScaling = update?.ManagedScaling is { } ms ? Scaling(ms, current.ManagedScaling) : current.ManagedScaling,
            ManagedTerminationProtection = update?.ManagedTerminationProtection ?? current.ManagedTerminationProtection,
            ManagedDraining = update?.ManagedDraining ?? current.ManagedDraining,
            UpdateStatus = "UPDATE_COMPLETE",
            UpdateStatusReason = null,
        };
        tx.Put(state.CapacityProviders, name, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new UpdateCapacityProviderResponse { CapacityProvider = View(updated, withTags: false) };
    }

    private async Task<DeleteCapacityProviderResponse> DeleteAsync(DeleteCapacityProviderRequest req, CancellationToken ct)
    {
        var name = Arns.NameOf(req.CapacityProvider ?? "");
        if (CapacityProviders.IsBuiltIn(name))
        {
            throw AwsException.Client($"The {name} capacity provider is reserved and can't be deleted. Remove it from a cluster with PutClusterCapacityProviders.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.CapacityProviders.Find(name) is not { Status: "ACTIVE" } current)
        {
            throw CapacityProviders.NotFound();
        }
        // ECS answers 200 and leaves the provider ACTIVE with updateStatus DELETE_FAILED while a cluster still has it
        // (a service's strategy can only name providers of its cluster, so this covers services too).
        var holder = state.Clusters.All.Select(c => c.Value)
            .FirstOrDefault(c => c.Status == "ACTIVE" && c.CapacityProviders?.Contains(name) == true);
        var updated = holder is not null
            ? current with { UpdateStatus = "DELETE_FAILED", UpdateStatusReason = CapacityProviders.DeleteFailedReason(holder.Name) }
            : current with { Status = "INACTIVE", UpdateStatus = "DELETE_COMPLETE", UpdateStatusReason = null };
        tx.Put(state.CapacityProviders, name, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new DeleteCapacityProviderResponse { CapacityProvider = View(updated, withTags: false) };
    }

    private async Task<PutClusterCapacityProvidersResponse> PutClusterAsync(PutClusterCapacityProvidersRequest req, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        var cluster = state.Clusters.Find(clusterName)!;
        var (providers, strategy) = ValidateClusterProviders(state, req.CapacityProviders, req.DefaultCapacityProviderStrategy);
        // A provider that leaves the cluster must not be in use there: by a live task or by a service's strategy.
        var removed = (cluster.CapacityProviders ?? []).Except(providers, StringComparer.Ordinal).ToHashSet(StringComparer.Ordinal);
        if (removed.Count > 0 && InUse(clusterName, removed))
        {
            throw new AwsException("ResourceInUseException", CapacityProviders.InUseMessage);
        }
        var updated = cluster with { CapacityProviders = providers, DefaultCapacityProviderStrategy = strategy };
        tx.Put(state.Clusters, clusterName, updated);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        var wire = ClusterViews.ToWire(arns, updated);
        wire.RegisteredContainerInstancesCount = state.Ledger.InCluster(clusterName).Count(id => state.ContainerInstances.Find(id)?.Status is "ACTIVE" or "DRAINING");
        var (running, pending, _) = state.TaskIndex.CountsOf(clusterName);
        wire.RunningTasksCount = running;
        wire.PendingTasksCount = pending;
        wire.ActiveServicesCount = state.ServiceIndex.ActiveCount(clusterName);
        return new PutClusterCapacityProvidersResponse { Cluster = wire };
    }

    private bool InUse(string cluster, HashSet<string> providers)
    {
        foreach (var id in state.ServiceIndex.InCluster(cluster))
        {
            if (state.Services.Find(id) is { Status: ServiceStates.Active or ServiceStates.Draining } svc
                && svc.CapacityProviderStrategy?.Any(s => s.CapacityProvider is { } p && providers.Contains(p)) == true)
            {
                return true;
            }
        }
        foreach (var id in state.TaskIndex.Get(TaskIndex.ByDesired, cluster, TaskStates.Running))
        {
            if (state.Tasks.Find(id) is { IsStopped: false, CapacityProviderName: { } p } && providers.Contains(p))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// CreateCluster's and PutClusterCapacityProviders' capacityProviders and defaultCapacityProviderStrategy: each
    /// provider FARGATE, FARGATE_SPOT or an ACTIVE provider of the account, at most 20, and a default strategy of
    /// providers in the list. Returns them as stored (names, ARNs resolved).
    /// </summary>
    public static (List<string> Providers, List<CapacityProviderStrategyRecord> Strategy) ValidateClusterProviders(
        EcsState state, IReadOnlyList<string>? providers, IReadOnlyList<CapacityProviderStrategyItem>? strategy)
    {
        var names = new List<string>();
        foreach (var reference in providers ?? [])
        {
            var name = Arns.NameOf(reference ?? "");
            if (!CapacityProviders.IsBuiltIn(name) && state.CapacityProviders.Find(name) is not { Status: "ACTIVE" })
            {
                throw CapacityProviders.NotFound();
            }
            if (!names.Contains(name))
            {
                names.Add(name);
            }
        }
        if (names.Count > CapacityProviders.MaxPerCluster)
        {
            throw AwsException.InvalidParameter("The maximum number of capacity providers per cluster has been exceeded.");
        }
        var items = strategy?.ToList() ?? [];
        if (items.Count > 0)
        {
            // The shape checks RunTask makes (weights, one base, no duplicates), then the providers against the list.
            NetworkRules.Launch(null, items, null, null, member: "defaultCapacityProviderStrategy");
            // Unlike a RunTask strategy (where Berth lets FARGATE and FARGATE_SPOT run unassociated), the default names only the list's providers.
            if (items.Any(s => !names.Contains(Arns.NameOf(s.CapacityProvider!))))
            {
                throw AwsException.InvalidParameter(CapacityProviders.NotAssociatedMessage);
            }
            CapacityProviders.Check(items, n => state.CapacityProviders.Find(n), names, isDefault: true, member: "defaultCapacityProviderStrategy");
        }
        return (names, items.Select(s => new CapacityProviderStrategyRecord(Arns.NameOf(s.CapacityProvider!), s.Weight ?? 0, s.Base ?? 0)).ToList());
    }

    private static ManagedScalingRecord Scaling(ManagedScaling? given, ManagedScalingRecord defaults)
    {
        if (given is null)
        {
            return defaults;
        }
        var min = given.MinimumScalingStepSize ?? defaults.MinimumScalingStepSize;
        var max = given.MaximumScalingStepSize ?? defaults.MaximumScalingStepSize;
        if (min > max)
        {
            throw AwsException.Client("autoScalingGroupProvider.managedScaling: minimumScalingStepSize must be less than or equal to maximumScalingStepSize.");
        }
        return new ManagedScalingRecord
        {
            Status = given.Status ?? defaults.Status,
            TargetCapacity = given.TargetCapacity ?? defaults.TargetCapacity,
            MinimumScalingStepSize = min,
            MaximumScalingStepSize = max,
            InstanceWarmupPeriod = given.InstanceWarmupPeriod ?? defaults.InstanceWarmupPeriod,
        };
    }

    private CapacityProvider View(CapacityProviderRecord r, bool withTags) => new()
    {
        CapacityProviderArn = arns.CapacityProvider(r.Name),
        Name = r.Name,
        Status = r.Status,
        Type = "EC2_AUTOSCALING",
        AutoScalingGroupProvider = new AutoScalingGroupProvider
        {
            AutoScalingGroupArn = r.AutoScalingGroupArn,
            ManagedScaling = new ManagedScaling
            {
                Status = r.ManagedScaling.Status,
                TargetCapacity = r.ManagedScaling.TargetCapacity,
                MinimumScalingStepSize = r.ManagedScaling.MinimumScalingStepSize,
                MaximumScalingStepSize = r.ManagedScaling.MaximumScalingStepSize,
                InstanceWarmupPeriod = r.ManagedScaling.InstanceWarmupPeriod,
            },
            ManagedTerminationProtection = r.ManagedTerminationProtection,
            ManagedDraining = r.ManagedDraining,
        },
        UpdateStatus = r.UpdateStatus,
        UpdateStatusReason = r.UpdateStatusReason,
        Tags = withTags ? InstanceViews.ToWire(r.Tags) ?? [] : null,
    };

    private CapacityProvider BuiltIn(string name, bool withTags) => new()
    {
        CapacityProviderArn = arns.CapacityProvider(name),
        Name = name,
        Status = "ACTIVE",
        Type = name,
        Tags = withTags ? [] : null,
    };

    [GeneratedRegex("^(aws|ecs|fargate)", RegexOptions.IgnoreCase)]
    private static partial Regex ReservedPrefix();

    // An Auto Scaling group ARN (any partition) or a group name (ECS takes either).
    [GeneratedRegex(@"^(arn:aws[a-z-]*:autoscaling:[a-z0-9-]+:\d{12}:autoScalingGroup:[0-9a-fA-F-]+:autoScalingGroupName/[^\s]{1,255}|[^:\s][^\s]{0,254})$")]
    private static partial Regex AutoScalingGroup();
}
