using System.Security.Cryptography;
using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.Scheduling;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>RunTask, StartTask, StopTask, DescribeTasks, ListTasks: translate the wire shapes to <see cref="TaskLifecycle"/> calls.</summary>
internal sealed class TaskOperations(TaskLifecycle tasks)
{
    private EcsState State => tasks.State;

    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.RunTask, Json.RunTaskRequest, Json.RunTaskResponse, RunAsync);
        s.Map(EcsOperations.StartTask, Json.StartTaskRequest, Json.StartTaskResponse, StartAsync);
        s.Map(EcsOperations.StopTask, Json.StopTaskRequest, Json.StopTaskResponse, StopAsync);
        s.Map(EcsOperations.DescribeTasks, Json.DescribeTasksRequest, Json.DescribeTasksResponse, DescribeAsync);
        s.Map(EcsOperations.ListTasks, Json.ListTasksRequest, Json.ListTasksResponse, ListAsync);
    }

    /// <summary>Checks the overrides against the definition and keeps what Berth applies; refuses the members it cannot apply.</summary>
    private static OverridesRecord? CheckOverrides(TaskDefinition def, TaskOverride? overrides)
    {
        if (overrides is null)
        {
            return null;
        }
        string? unsupported = overrides.InferenceAcceleratorOverrides is { Count: > 0 } ? "overrides.inferenceAcceleratorOverrides"
            : overrides.ExecutionRoleArn is not null ? "overrides.executionRoleArn"
            : overrides.EphemeralStorage is not null ? "overrides.ephemeralStorage"
            : null;
        var list = overrides.ContainerOverrides ?? [];
        for (var i = 0; i < list.Count && unsupported is null; i++)
        {
            unsupported = list[i].EnvironmentFiles is { Count: > 0 } ? $"overrides.containerOverrides[{i}].environmentFiles"
                : list[i].ResourceRequirements is { Count: > 0 } ? $"overrides.containerOverrides[{i}].resourceRequirements"
                : null;
        }
        if (unsupported is not null)
        {
            throw AwsException.InvalidParameter($"{unsupported}: Berth does not support this override.");
        }
        for (var i = 0; i < list.Count; i++)
        {
            var o = list[i];
            if (o.Name is null || def.ContainerDefinitions?.Any(c => c.Name == o.Name) != true)
            {
                throw AwsException.InvalidParameter($"overrides.containerOverrides[{i}].name: container '{o.Name}' is not in the task definition.");
            }
        }
        if (overrides.TaskRoleArn is { } role && !TaskDefinitionRules.IsRoleArn(role))
        {
            throw AwsException.InvalidParameter($"overrides.taskRoleArn: '{role}' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME).");
        }
        if (overrides.Cpu is { } cpu && Reservations.ParseUnits(cpu) is null)
        {
            throw AwsException.InvalidParameter("overrides.cpu: must be a number of CPU units.");
        }
        if (overrides.Memory is { } mem && Reservations.ParseUnits(mem) is null)
        {
            throw AwsException.InvalidParameter("overrides.memory: must be a number of MiB.");
        }
        return TaskViews.OverridesFromWire(overrides);
    }

    private static List<TagRecord>? TagsOf(List<Tag>? tags) => tags?.Select(t => new TagRecord(t.Key ?? "", t.Value ?? "")).ToList();

    private static void CheckClientToken(string? token)
    {
        if (token is not null && (token.Length is 0 or > 64 || token.Any(char.IsControl)))
        {
            throw AwsException.InvalidParameter("clientToken: up to 64 printable characters.");
        }
    }

    /// <summary>A hash of the request without its token: the same token must come with the same parameters.</summary>
    private static string Fingerprint<T>(T request, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info)
        => Convert.ToHexString(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(request, info)));

    private async Task<RunTaskResponse> RunAsync(RunTaskRequest req, CancellationToken ct)
    {
        Tags.Validate(req.Tags);
        var count = req.Count ?? 1;
        if (count is < 1 or > 10)
        {
            throw AwsException.InvalidParameter("count: must be between 1 and 10.");
        }
        CheckClientToken(req.ClientToken);
        NetworkRules.Launch(req.LaunchType, req.CapacityProviderStrategy, req.PlatformVersion, def: null);
        var (constraints, strategies) = PlacementRules.Validate(req.PlacementConstraints, req.PlacementStrategy);
        var clusterName = tasks.ResolveCluster(req.Cluster);
        var def = tasks.ResolveDefinition(req.TaskDefinition);
        // FARGATE and FARGATE_SPOT run on this cluster's own instances, as awsvpc tasks; an Auto Scaling group
        // provider's tasks on its instances. Without a launch type or strategy, the cluster's default strategy applies.
        var strategy = CapacityProviderStrategyOf(clusterName, req.LaunchType, req.CapacityProviderStrategy);
        var launch = NetworkRules.Launch(req.LaunchType, strategy, req.PlatformVersion, def);
        var awsvpc = NetworkRules.Validate(def, req.NetworkConfiguration, launch);
        // The task definition's memberOf constraints apply too, and count towards the limit of 10.
        var inherited = PlacementRules.OfDefinition(def);
        if (inherited.Count > 0)
        {
            constraints = PlacementRules.ValidateConstraints(req.PlacementConstraints, inheritedConstraints: inherited.Count).Concat(inherited).ToList();
        }
        var overrides = CheckOverrides(def, req.Overrides);
        var token = req.ClientToken;
        req.ClientToken = null;
        var result = await tasks.LaunchAsync(new LaunchRequest
        {
            Cluster = clusterName,
            Definition = def,
            Count = count,
            Overrides = overrides,
            WireOverrides = req.Overrides,
            StartedBy = req.StartedBy,
            Group = req.Group,
            Tags = TagsOf(req.Tags),
            Constraints = constraints,
            Strategies = strategies,
            ClientToken = token,
            Fingerprint = token is null ? null : Fingerprint(req, Json.RunTaskRequest),
            Awsvpc = awsvpc,
            Launch = launch,
            CapacityProviders = NetworkRules.Spread(launch, strategy, count),
        }, ct).ConfigureAwait(false);
        return new RunTaskResponse
        {
            Tasks = result.Tasks.Select(t => TaskViews.ToWire(tasks.Arns, t, withTags: true)).ToList(),
            Failures = result.Failures.Select(f => new Failure { Arn = f.Arn, Reason = f.Reason, Detail = f.Detail }).ToList(),
        };
    }

    /// <summary>The strategy a launch runs under (<see cref="CapacityProviders.Effective"/>), checked against the cluster's providers; null for a launch type.</summary>
    private List<CapacityProviderStrategyItem>? CapacityProviderStrategyOf(string clusterName, string? launchType, List<CapacityProviderStrategyItem>? given)
    {
        var cluster = State.Clusters.Find(clusterName)!;
        var strategy = CapacityProviders.Effective(cluster, launchType, given, out var isDefault);
        if (strategy is not null)
        {
            CapacityProviders.Check(strategy, State.CapacityProviders.Find, cluster.CapacityProviders ?? [], isDefault);
        }
        return strategy;
    }

    private async Task<StartTaskResponse> StartAsync(StartTaskRequest req, CancellationToken ct)
    {
        Tags.Validate(req.Tags);
        var clusterName = tasks.ResolveCluster(req.Cluster);
        if (req.ContainerInstances is not { Count: > 0 and <= 10 })
        {
            throw AwsException.InvalidParameter("containerInstances: between 1 and 10 container instances must be given.");
        }
        var def = tasks.ResolveDefinition(req.TaskDefinition);
        var awsvpc = NetworkRules.Validate(def, req.NetworkConfiguration, LaunchKind.Ec2);
        var overrides = CheckOverrides(def, req.Overrides);
        var targets = req.ContainerInstances.Select(r => (r, State.KeyIn(clusterName, r))).ToList();
        // StartTask has no clientToken in ECS's model (only RunTask does).
        var result = await tasks.LaunchAsync(new LaunchRequest
        {
            Cluster = clusterName,
            Definition = def,
            Overrides = overrides,
            WireOverrides = req.Overrides,
            StartedBy = req.StartedBy,
            Group = req.Group,
            Tags = TagsOf(req.Tags),
            Targets = targets,
            Awsvpc = awsvpc,
        }, ct).ConfigureAwait(false);
        return new StartTaskResponse
        {
            Tasks = result.Tasks.Select(t => TaskViews.ToWire(tasks.Arns, t, withTags: true)).ToList(),
            Failures = result.Failures.Select(f => new Failure { Arn = f.Arn, Reason = f.Reason, Detail = f.Detail }).ToList(),
        };
    }

    private async Task<StopTaskResponse> StopAsync(StopTaskRequest req, CancellationToken ct)
    {
        var clusterName = tasks.ResolveCluster(req.Cluster);
        if (string.IsNullOrEmpty(req.Task))
        {
            throw AwsException.InvalidParameter("task: must be specified.");
        }
        var task = await tasks.StopAsync(clusterName, req.Task, req.Reason, "UserInitiated", ct).ConfigureAwait(false)
            ?? throw AwsException.InvalidParameter("The referenced task was not found.");
        return new StopTaskResponse { Task = TaskViews.ToWire(tasks.Arns, task, withTags: false) };
    }

    private Task<DescribeTasksResponse> DescribeAsync(DescribeTasksRequest req, CancellationToken ct)
    {
        _ = ct;
        var clusterName = tasks.ResolveCluster(req.Cluster);
        if (req.Tasks is not { Count: > 0 })
        {
            throw AwsException.InvalidParameter("Tasks cannot be empty.");
        }
        if (req.Tasks.Count > 100)
        {
            throw AwsException.InvalidParameter("tasks: at most 100 tasks can be described in one call.");
        }
        var withTags = req.Include?.Contains("TAGS") == true;
        var found = new List<EcsTask>();
        var failures = new List<Failure>();
        foreach (var reference in req.Tasks)
        {
            if (tasks.Find(clusterName, reference) is { } t)
            {
                found.Add(TaskViews.ToWire(tasks.Arns, t, withTags));
            }
            else
            {
                failures.Add(new Failure { Arn = reference, Reason = "MISSING" });
            }
        }
        return Task.FromResult(new DescribeTasksResponse { Tasks = found, Failures = failures });
    }

    private Task<ListTasksResponse> ListAsync(ListTasksRequest req, CancellationToken ct)
    {
        _ = ct;
        var clusterName = tasks.ResolveCluster(req.Cluster);
        if (req.MaxResults is < 1 or > 100)
        {
            throw AwsException.InvalidParameter("maxResults: must be between 1 and 100.");
        }
        if (req.LaunchType is not null and not ("EC2" or "FARGATE" or "EXTERNAL"))
        {
            throw AwsException.InvalidParameter("launchType: must be EC2, FARGATE or EXTERNAL.");
        }
        var desired = req.DesiredStatus ?? "RUNNING";
        string? instanceId = null;
        if (req.ContainerInstance is not null)
        {
            instanceId = State.KeyIn(clusterName, req.ContainerInstance) is { } key ? key[(clusterName.Length + 1)..] : "\0none";
        }
        var family = req.Family is null ? null : Arns.NameOf(req.Family);

        // Start from the smallest index set that answers one of the filters; check the others per task.
        var index = State.TaskIndex;
        var sets = new List<System.Collections.Immutable.ImmutableSortedSet<string>>
        {
            index.Get(TaskIndex.ByDesired, clusterName, desired == "STOPPED" ? "STOPPED" : "RUNNING"),
        };
        if (instanceId is not null)
        {
            sets.Add(index.Get(TaskIndex.ByInstance, clusterName, instanceId));
        }
        if (family is not null)
        {
            sets.Add(index.Get(TaskIndex.ByFamily, clusterName, family));
        }
        if (req.StartedBy is not null)
        {
            sets.Add(index.Get(TaskIndex.ByStartedBy, clusterName, req.StartedBy));
        }
        var group = req.ServiceName is null ? null : "service:" + Arns.NameOf(req.ServiceName);
        // A service that never existed in the cluster is an error in ECS, not an empty list.
        if (req.ServiceName is not null && State.Services.Find(EcsState.ScopedId(clusterName, Arns.NameOf(req.ServiceName))) is null)
        {
            throw new AwsException("ServiceNotFoundException", "Service not found.");
        }
        if (group is not null)
        {
            sets.Add(index.Get(TaskIndex.ByGroup, clusterName, group));
        }
        var smallest = sets.MinBy(s => s.Count)!;
        bool Matches(TaskRecord t) => desired switch
        {
            "STOPPED" => t.DesiredStatus == TaskStates.Stopped,
            "PENDING" => t.DesiredStatus == TaskStates.Running && t.LastStatus is TaskStates.Provisioning or TaskStates.Pending or TaskStates.Activating,
            _ => t.DesiredStatus == TaskStates.Running,
        }
            && (instanceId is null || t.InstanceId == instanceId)
            && (family is null || t.Family == family)
            && (req.StartedBy is null || t.StartedBy == req.StartedBy)
            && (group is null || t.Group == group)
            && (req.LaunchType is null || t.LaunchType == req.LaunchType);
        var (page, next) = Pagination.PageSorted(smallest, id => State.Tasks.Find(id) is { } t && Matches(t), req.MaxResults, req.NextToken);
        return Task.FromResult(new ListTasksResponse
        {
            TaskArns = page.Select(id => tasks.Arns.Task(clusterName, id[(clusterName.Length + 1)..])).ToList(),
            NextToken = next,
        });
    }
}
