using System.Text;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using Berth.Scheduling;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>RunTask, StartTask, StopTask, DescribeTasks, ListTasks. They only record desired state; agents do the rest.</summary>
internal sealed class TaskOperations(EcsState state, Arns arns, TimeProvider time, Random? random = null)
{
    private readonly Random _random = random ?? Random.Shared;

    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.RunTask, Json.RunTaskRequest, Json.RunTaskResponse, RunAsync);
        s.Map(EcsOperations.StartTask, Json.StartTaskRequest, Json.StartTaskResponse, StartAsync);
        s.Map(EcsOperations.StopTask, Json.StopTaskRequest, Json.StopTaskResponse, StopAsync);
        s.Map(EcsOperations.DescribeTasks, Json.DescribeTasksRequest, Json.DescribeTasksResponse, DescribeAsync);
        s.Map(EcsOperations.ListTasks, Json.ListTasksRequest, Json.ListTasksResponse, ListAsync);
    }

    private static void CheckLaunchType(string? launchType)
    {
        if (launchType is not (null or "EC2"))
        {
            throw AwsException.InvalidParameter($"launchType: Berth runs the EC2 launch type only; {launchType} is not available.");
        }
    }

    private static void CheckOverrides(TaskDefinition def, TaskOverride? overrides)
    {
        foreach (var o in overrides?.ContainerOverrides ?? [])
        {
            if (o.Name is null || def.ContainerDefinitions?.Any(c => c.Name == o.Name) != true)
            {
                throw AwsException.InvalidParameter($"overrides.containerOverrides: container '{o.Name}' is not in the task definition.");
            }
        }
        if (overrides?.Cpu is { } cpu && Reservations.ParseUnits(cpu) is null)
        {
            throw AwsException.InvalidParameter("overrides.cpu: must be a number of CPU units.");
        }
        if (overrides?.Memory is { } mem && Reservations.ParseUnits(mem) is null)
        {
            throw AwsException.InvalidParameter("overrides.memory: must be a number of MiB.");
        }
    }

    private async Task<RunTaskResponse> RunAsync(RunTaskRequest req, CancellationToken ct)
    {
        Tags.Validate(req.Tags);
        var count = req.Count ?? 1;
        if (count is < 1 or > 10)
        {
            throw AwsException.InvalidParameter("count: must be between 1 and 10.");
        }
        CheckLaunchType(req.LaunchType);
        if (req.CapacityProviderStrategy is { Count: > 0 })
        {
            throw AwsException.InvalidParameter("capacityProviderStrategy: Berth has no capacity providers; use the EC2 launch type.");
        }
        var constraints = (req.PlacementConstraints ?? []).Select(c => new PlacementConstraintSpec(c.Type ?? "", c.Expression)).ToList();
        for (var i = 0; i < constraints.Count; i++)
        {
            var c = constraints[i];
            if (c.Type == "memberOf")
            {
                string? error = "required for memberOf.";
                if (c.Expression is null || !QueryExpression.TryParse(c.Expression, out _, out error))
                {
                    throw AwsException.InvalidParameter($"placementConstraints[{i}].expression: {error}");
                }
            }
        }
        var strategies = (req.PlacementStrategy ?? []).Select(s => new PlacementStrategySpec(s.Type ?? "random", s.Field)).ToList();

        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var def = TaskQueries.ResolveTaskDefinition(state, req.TaskDefinition);
        CheckOverrides(def, req.Overrides);
        var instances = state.ContainerInstances.All.Select(v => v.Value)
            .Where(s => s.Cluster == clusterName && s.Instance.Status != "INACTIVE")
            .Select(s => s.Instance).ToList();
        if (instances.Count == 0)
        {
            throw AwsException.InvalidParameter("No Container Instances were found in your cluster.");
        }
        var reservation = Reservations.For(def, req.Overrides);
        var plan = Scheduler.Place(new PlacementRequest
        {
            Candidates = instances.Select(i => TaskQueries.Candidate(state, i)).ToList(),
            Tasks = Enumerable.Repeat(reservation, count).ToList(),
            Constraints = constraints,
            Strategies = strategies,
        }, _random);
        var tasks = plan.Placements.Select(p => NewTask(clusterName, def, p.InstanceArn, req.Overrides, req.StartedBy, req.Group, req.Tags)).ToList();
        foreach (var t in tasks)
        {
            tx.Put(state.Tasks, EcsState.ScopedId(clusterName, Arns.NameOf(t.TaskArn!)), t);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new RunTaskResponse
        {
            Tasks = tasks,
            Failures = plan.Failures.Select(f => new Failure { Arn = f.InstanceArn, Reason = f.Reason }).ToList(),
        };
    }

    private async Task<StartTaskResponse> StartAsync(StartTaskRequest req, CancellationToken ct)
    {
        Tags.Validate(req.Tags);
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        if (req.ContainerInstances is not { Count: > 0 and <= 10 })
        {
            throw AwsException.InvalidParameter("containerInstances: between 1 and 10 container instances must be given.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var def = TaskQueries.ResolveTaskDefinition(state, req.TaskDefinition);
        CheckOverrides(def, req.Overrides);
        var reservation = Reservations.For(def, req.Overrides);
        var tasks = new List<EcsTask>();
        var failures = new List<Failure>();
        foreach (var reference in req.ContainerInstances)
        {
            var found = state.ContainerInstances.Find(TaskQueries.ScopedIdOf(clusterName, reference));
            if (found is null || found.Cluster != clusterName || found.Instance.Status == "INACTIVE")
            {
                failures.Add(new Failure { Arn = reference, Reason = "MISSING" });
                continue;
            }
            // StartTask skips strategies but still refuses what does not fit.
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = [TaskQueries.Candidate(state, found.Instance) with { Status = "ACTIVE" }],
                Tasks = [reservation],
            }, _random);
            if (plan.Failures.Count > 0)
            {
                failures.Add(new Failure { Arn = found.Instance.ContainerInstanceArn, Reason = plan.Failures[0].Reason });
                continue;
            }
            var task = NewTask(clusterName, def, found.Instance.ContainerInstanceArn!, req.Overrides, req.StartedBy, req.Group, req.Tags);
            tx.Put(state.Tasks, EcsState.ScopedId(clusterName, Arns.NameOf(task.TaskArn!)), task);
            tasks.Add(task);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new StartTaskResponse { Tasks = tasks, Failures = failures };
    }

    private EcsTask NewTask(string clusterName, TaskDefinition def, string instanceArn, TaskOverride? overrides, string? startedBy, string? group, List<Tag>? tags)
    {
        var id = Guid.NewGuid().ToString("N");
        var taskArn = arns.Task(clusterName, id);
        var byName = (overrides?.ContainerOverrides ?? []).Where(o => o.Name is not null)
            .GroupBy(o => o.Name!).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        var reservation = Reservations.For(def, overrides);
        var containerPrefix = $"arn:aws:ecs:{arns.Identity.Region}:{arns.Identity.AccountId}:container/{clusterName}/{id}/";
        return new EcsTask
        {
            TaskArn = taskArn,
            ClusterArn = arns.Cluster(clusterName),
            TaskDefinitionArn = def.TaskDefinitionArn ?? arns.TaskDefinition(def.Family!, def.Revision ?? 1),
            ContainerInstanceArn = instanceArn,
            DesiredStatus = "RUNNING",
            LastStatus = "PROVISIONING",
            LaunchType = "EC2",
            CreatedAt = time.GetUtcNow(),
            StartedBy = startedBy,
            Group = group ?? "family:" + def.Family,
            Overrides = new TaskOverride
            {
                ContainerOverrides = overrides?.ContainerOverrides ?? [],
                Cpu = overrides?.Cpu,
                Memory = overrides?.Memory,
            },
            Tags = tags is { Count: > 0 } ? tags : null,
            Cpu = reservation.Cpu > 0 ? reservation.Cpu.ToString(System.Globalization.CultureInfo.InvariantCulture) : null,
            Memory = reservation.Memory > 0 ? reservation.Memory.ToString(System.Globalization.CultureInfo.InvariantCulture) : null,
            Version = 1,
            Attachments = [],
            Attributes = [],
            Containers = (def.ContainerDefinitions ?? []).Select(c =>
            {
                var o = c.Name is not null ? byName.GetValueOrDefault(c.Name) : null;
                return new Container
                {
                    ContainerArn = containerPrefix + Guid.NewGuid().ToString("D"),
                    TaskArn = taskArn,
                    Name = c.Name,
                    Image = c.Image,
                    LastStatus = "PENDING",
                    NetworkInterfaces = [],
                    Cpu = (o?.Cpu ?? c.Cpu ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    Memory = (o?.Memory ?? c.Memory)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    MemoryReservation = (o?.MemoryReservation ?? c.MemoryReservation)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                };
            }).ToList(),
        };
    }

    private async Task<StopTaskResponse> StopAsync(StopTaskRequest req, CancellationToken ct)
    {
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        if (string.IsNullOrEmpty(req.Task))
        {
            throw AwsException.InvalidParameter("task: must be specified.");
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var key = TaskQueries.ScopedIdOf(clusterName, req.Task);
        if (!key.StartsWith(clusterName + "/", StringComparison.Ordinal) || state.Tasks.Find(key) is not { } current)
        {
            throw AwsException.InvalidParameter("The referenced task was not found.");
        }
        if (current.DesiredStatus == "STOPPED")
        {
            return new StopTaskResponse { Task = current }; // already stopping: the first reason stands
        }
        var task = state.Tasks.Clone(current);
        var now = time.GetUtcNow();
        task.DesiredStatus = "STOPPED";
        task.StoppingAt = now;
        task.StoppedReason = req.Reason ?? "Task stopped by user";
        task.StopCode = "UserInitiated";
        var instance = task.ContainerInstanceArn is null ? null : state.ContainerInstances.Find(TaskQueries.ScopedIdOf(clusterName, task.ContainerInstanceArn));
        if (task.LastStatus == "PROVISIONING" && instance?.Instance.AgentConnected != true)
        {
            // No agent ever saw it, so nobody else will report it stopped.
            task.LastStatus = "STOPPED";
            task.StoppedAt = now;
            task.ExecutionStoppedAt = now;
            foreach (var c in task.Containers ?? [])
            {
                c.LastStatus = "STOPPED";
            }
        }
        task.Version = (task.Version ?? 0) + 1;
        tx.Put(state.Tasks, key, task);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new StopTaskResponse { Task = task };
    }

    private Task<DescribeTasksResponse> DescribeAsync(DescribeTasksRequest req, CancellationToken ct)
    {
        _ = ct;
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        if (req.Tasks is not { Count: > 0 and <= 100 })
        {
            throw AwsException.InvalidParameter("tasks: between 1 and 100 tasks must be given.");
        }
        var withTags = req.Include?.Contains("TAGS") == true;
        var tasks = new List<EcsTask>();
        var failures = new List<Failure>();
        foreach (var reference in req.Tasks)
        {
            var key = TaskQueries.ScopedIdOf(clusterName, reference);
            if (!key.StartsWith(clusterName + "/", StringComparison.Ordinal) || state.Tasks.Find(key) is not { } t)
            {
                failures.Add(new Failure { Arn = reference, Reason = "MISSING" });
                continue;
            }
            if (!withTags && t.Tags is not null)
            {
                t = state.Tasks.Clone(t);
                t.Tags = null;
            }
            tasks.Add(t);
        }
        return Task.FromResult(new DescribeTasksResponse { Tasks = tasks, Failures = failures });
    }

    private Task<ListTasksResponse> ListAsync(ListTasksRequest req, CancellationToken ct)
    {
        _ = ct;
        var clusterName = TaskQueries.ResolveCluster(state, req.Cluster);
        if (req.MaxResults is < 1 or > 100)
        {
            throw AwsException.InvalidParameter("maxResults: must be between 1 and 100.");
        }
        if (req.LaunchType is not null and not ("EC2" or "FARGATE" or "EXTERNAL"))
        {
            throw AwsException.InvalidParameter("launchType: must be EC2, FARGATE or EXTERNAL.");
        }
        var desired = req.DesiredStatus ?? "RUNNING";
        string? instanceArn = null;
        if (req.ContainerInstance is not null)
        {
            var found = state.ContainerInstances.Find(TaskQueries.ScopedIdOf(clusterName, req.ContainerInstance));
            instanceArn = found?.Instance.ContainerInstanceArn ?? req.ContainerInstance;
        }
        var family = req.Family is null ? null : Arns.NameOf(req.Family);
        var prefix = clusterName + "/";
        var matching = state.Tasks.All
            .Where(v => v.Id.StartsWith(prefix, StringComparison.Ordinal))
            .Select(v => v.Value)
            .Where(t => desired switch
            {
                "STOPPED" => t.DesiredStatus == "STOPPED",
                "PENDING" => t.DesiredStatus == "RUNNING" && t.LastStatus is "PROVISIONING" or "PENDING" or "ACTIVATING",
                _ => t.DesiredStatus == "RUNNING",
            })
            .Where(t => instanceArn is null || t.ContainerInstanceArn == instanceArn)
            .Where(t => family is null || FamilyOf(t) == family)
            .Where(t => req.StartedBy is null || t.StartedBy == req.StartedBy)
            .Where(t => req.LaunchType is null || t.LaunchType == req.LaunchType)
            .Select(t => t.TaskArn!);
        var (page, next) = Pagination.Page(matching, req.MaxResults, req.NextToken);
        return Task.FromResult(new ListTasksResponse { TaskArns = page, NextToken = next });
    }

    private static string? FamilyOf(EcsTask t)
    {
        var arn = t.TaskDefinitionArn;
        if (arn is null)
        {
            return null;
        }
        var name = arn[(arn.IndexOf('/') + 1)..];
        var colon = name.LastIndexOf(':');
        return colon > 0 ? name[..colon] : name;
    }
}
