using System.Text;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using Berth.Scheduling;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>RegisterContainerInstance, DeregisterContainerInstance, DescribeContainerInstances, ListContainerInstances, UpdateContainerInstancesState.</summary>
internal sealed class ContainerInstanceOperations(EcsState state, Arns arns, TimeProvider time, Agents.AgentPki? pki = null)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.RegisterContainerInstance, Json.RegisterContainerInstanceRequest, Json.RegisterContainerInstanceResponse, RegisterAsync);
        s.Map(EcsOperations.DeregisterContainerInstance, Json.DeregisterContainerInstanceRequest, Json.DeregisterContainerInstanceResponse, DeregisterAsync);
        s.Map(EcsOperations.DescribeContainerInstances, Json.DescribeContainerInstancesRequest, Json.DescribeContainerInstancesResponse, DescribeAsync);
        s.Map(EcsOperations.ListContainerInstances, Json.ListContainerInstancesRequest, Json.ListContainerInstancesResponse, ListAsync);
        s.Map(EcsOperations.UpdateContainerInstancesState, Json.UpdateContainerInstancesStateRequest, Json.UpdateContainerInstancesStateResponse, UpdateStateAsync);
    }

    /// <summary>The instance as clients see it: remaining resources and task counts computed from live tasks.</summary>
    private ContainerInstance View(InstanceRecord i, bool withTags)
    {
        var view = InstanceViews.ToWire(arns, i, withTags);
        view.RemainingResources = TaskQueries.Remaining(state, i.Key, i);
        var live = TaskQueries.LiveTasksOn(state, i.Key).ToList();
        view.RunningTasksCount = live.Count(t => t.LastStatus == "RUNNING");
        view.PendingTasksCount = live.Count(t => t.LastStatus is "PROVISIONING" or "PENDING" or "ACTIVATING");
        return view;
    }

    private InstanceRecord? FindIn(string clusterName, string reference)
        => state.KeyIn(clusterName, reference) is { } key ? state.ContainerInstances.Find(key) : null;

    private async Task<RegisterContainerInstanceResponse> RegisterAsync(RegisterContainerInstanceRequest req, CancellationToken ct)
    {
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        var resources = req.TotalResources ?? [];
        int Int(string name) => resources.FirstOrDefault(r => r.Name == name)?.IntegerValue ?? 0;
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var previous = req.ContainerInstanceArn is null ? null : FindIn(clusterName, req.ContainerInstanceArn);
        var id = previous?.Id ?? Guid.NewGuid().ToString("N");
        var ports = InstanceLedger.ReservedPortStrings(resources.FirstOrDefault(r => r.Name == "PORTS")?.StringSetValue ?? []).ToList();
        var versionInfo = req.VersionInfo;
        var instance = new InstanceRecord
        {
            Id = id,
            Cluster = clusterName,
            Ec2InstanceId = previous?.Ec2InstanceId ?? "i-" + id[..17],
            Status = "ACTIVE",
            // Registered through the API: no berth agent holds a stream for it.
            AgentConnected = false,
            RegisteredAt = previous?.RegisteredAt ?? time.GetUtcNow(),
            Version = (previous?.Version ?? 0) + 1,
            VersionInfo = new VersionInfoRecord { AgentVersion = versionInfo?.AgentVersion, AgentHash = versionInfo?.AgentHash, DockerVersion = versionInfo?.DockerVersion },
            Cpu = Int("CPU"),
            Memory = Int("MEMORY"),
            Ports = ports,
            UdpPorts = resources.FirstOrDefault(r => r.Name == "PORTS_UDP")?.StringSetValue ?? [],
            Attributes = InstanceViews.FromWire(req.Attributes),
            Tags = req.Tags is { Count: > 0 } ? InstanceViews.FromWire(req.Tags) : previous?.Tags,
            AgentId = previous?.AgentId,
            AgentSecretHash = previous?.AgentSecretHash,
        };
        tx.Put(state.ContainerInstances, instance.Key, instance);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new RegisterContainerInstanceResponse { ContainerInstance = View(instance, withTags: true) };
    }

    private async Task<DeregisterContainerInstanceResponse> DeregisterAsync(DeregisterContainerInstanceRequest req, CancellationToken ct)
    {
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (req.ContainerInstance is null || FindIn(clusterName, req.ContainerInstance) is not { } found || found.Status == "INACTIVE")
        {
            throw AwsException.InvalidParameter("containerInstance: the referenced container instance was not found.");
        }
        if (req.Force != true && TaskQueries.LiveTasksOn(state, found.Key).Any(t => t.DesiredStatus == "RUNNING"))
        {
            throw AwsException.InvalidParameter("Found running tasks on the instance.");
        }
        var copy = found with { Status = "INACTIVE", AgentConnected = false, DeregisteredAt = time.GetUtcNow(), Version = found.Version + 1 };
        tx.Put(state.ContainerInstances, copy.Key, copy);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        if (found.AgentId is { } agentId)
        {
            // A deregistered instance's agent is revoked: its certificate no longer registers anything, and its live
            // stream is closed by the agent gateway (ECS's agent likewise stops once its instance is deregistered).
            pki?.Revoke(agentId);
        }
        return new DeregisterContainerInstanceResponse { ContainerInstance = View(copy, withTags: false) };
    }

    private Task<DescribeContainerInstancesResponse> DescribeAsync(DescribeContainerInstancesRequest req, CancellationToken ct)
    {
        _ = ct;
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        if (req.ContainerInstances is not { Count: > 0 })
        {
            throw AwsException.Client("Container Instances cannot be empty.");
        }
        if (req.ContainerInstances.Count > 100)
        {
            throw AwsException.InvalidParameter("containerInstances: at most 100 container instances can be described in one call.");
        }
        var withTags = req.Include?.Contains("TAGS") == true;
        var withHealth = req.Include?.Contains("CONTAINER_INSTANCE_HEALTH") == true;
        var result = new DescribeContainerInstancesResponse { ContainerInstances = [], Failures = [] };
        foreach (var reference in req.ContainerInstances)
        {
            if (FindIn(clusterName, reference) is { } found)
            {
                var view = View(found, withTags);
                if (withHealth)
                {
                    // Berth runs no instance health checks of ECS's kind (CONTAINER_RUNTIME); what it knows is whether
                    // the instance's agent holds its stream, so that alone decides the overall status.
                    view.HealthStatus = new ContainerInstanceHealthStatus { OverallStatus = found.AgentConnected ? "OK" : "INSUFFICIENT_DATA" };
                }
                result.ContainerInstances.Add(view);
            }
            else
            {
                result.Failures.Add(new Failure { Arn = reference, Reason = "MISSING" });
            }
        }
        return Task.FromResult(result);
    }

    private Task<ListContainerInstancesResponse> ListAsync(ListContainerInstancesRequest req, CancellationToken ct)
    {
        _ = ct;
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        if (req.MaxResults is < 1 or > 100)
        {
            throw AwsException.InvalidParameter("maxResults: must be between 1 and 100.");
        }
        QueryExpression? filter = null;
        if (!string.IsNullOrWhiteSpace(req.Filter) && !QueryExpression.TryParse(req.Filter, out filter, out var error))
        {
            throw AwsException.InvalidParameter("filter: " + error);
        }
        bool Matches(string id) => state.ContainerInstances.Find(id) is { } i
            && (req.Status is null ? i.Status != "INACTIVE" : i.Status == req.Status)
            && (filter is null || (state.Ledger.Candidate(id) is { } c && filter.Matches(c)));
        // The cluster's instances in id order: a page starts at the token by binary search.
        var (page, next) = Pagination.PageSorted(state.Ledger.InCluster(clusterName), Matches, req.MaxResults, req.NextToken);
        return Task.FromResult(new ListContainerInstancesResponse
        {
            ContainerInstanceArns = page.Select(id => InstanceViews.Arn(arns, state.ContainerInstances.Find(id)!)).ToList(),
            NextToken = next,
        });
    }

    private async Task<UpdateContainerInstancesStateResponse> UpdateStateAsync(UpdateContainerInstancesStateRequest req, CancellationToken ct)
    {
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        if (req.Status is not ("ACTIVE" or "DRAINING"))
        {
            throw AwsException.InvalidParameter("status: must be ACTIVE or DRAINING.");
        }
        if (req.ContainerInstances is not { Count: > 0 and <= 10 })
        {
            throw AwsException.InvalidParameter("containerInstances: between 1 and 10 container instances must be given.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var result = new UpdateContainerInstancesStateResponse { ContainerInstances = [], Failures = [] };
        var updated = new List<InstanceRecord>();
        foreach (var reference in req.ContainerInstances)
        {
            if (FindIn(clusterName, reference) is not { } found || found.Status == "INACTIVE")
            {
                result.Failures.Add(new Failure { Arn = reference, Reason = "MISSING" });
                continue;
            }
            var copy = found;
            if (copy.Status != req.Status)
            {
                copy = found with { Status = req.Status, Version = found.Version + 1 };
                tx.Put(state.ContainerInstances, copy.Key, copy);
            }
            updated.Add(copy);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        result.ContainerInstances.AddRange(updated.Select(i => View(i, withTags: false)));
        return result;
    }
}
