using System.Globalization;

namespace Berth.ControlPlane.Domain;

/// <summary>What the planner knows about the world besides the service and its tasks.</summary>
public sealed record PlannerInputs
{
    public required DateTimeOffset Now { get; init; }
    /// <summary>Status of a container instance ("ACTIVE", "DRAINING", "INACTIVE") by id in the service's cluster; null when unknown.</summary>
    public required Func<string, string?> InstanceStatus { get; init; }
    /// <summary>DAEMON only: ids of the instances that should run one task (ACTIVE, agent connected, constraints met).</summary>
    public IReadOnlyList<string> DaemonInstances { get; init; } = [];
    /// <summary>A task's state in its target groups ("healthy", "unhealthy", or another state while it is checked); null when the service has no load balancer.</summary>
    public Func<TaskRecord, string?> TargetHealth { get; init; } = _ => null;
    /// <summary>Tasks already on their way out (deregistered from the load balancer, draining): neither kept nor counted healthy.</summary>
    public IReadOnlySet<string> Leaving { get; init; } = new HashSet<string>();
}

/// <summary>One reconcile step for one service: what to stop, what to start, and what the record becomes.</summary>
public sealed record ServicePlan
{
    /// <summary>Task ids to stop, with the stoppedReason.</summary>
    public List<(string TaskId, string Reason)> Stops { get; } = [];
    /// <summary>REPLICA: (deployment, count) to launch through placement.</summary>
    public List<(DeploymentRecord Deployment, int Count)> Starts { get; } = [];
    /// <summary>DAEMON: (deployment, instance id) to start one task on.</summary>
    public List<(DeploymentRecord Deployment, string InstanceId)> DaemonStarts { get; } = [];
    /// <summary>Deployment records as the plan leaves them, by id (bookkeeping merged into the fresh record).</summary>
    public Dictionary<string, DeploymentRecord> Patched { get; } = new(StringComparer.Ordinal);
    /// <summary>Deployments with no task left: they leave the list for the history.</summary>
    public HashSet<string> Finished { get; } = new(StringComparer.Ordinal);
    /// <summary>A deployment the circuit breaker created to roll back to the last completed one.</summary>
    public DeploymentRecord? Rollback { get; set; }
    /// <summary>Event messages, oldest first.</summary>
    public List<string> Events { get; } = [];
    public bool? Steady { get; set; }
    public int? DaemonDesired { get; set; }
    public bool BecomesInactive { get; set; }
    /// <summary>When to look again without any change (backoff end, health grace end).</summary>
    public DateTimeOffset? WakeAt { get; set; }

    /// <summary>Images newly resolved per deployment id (<see cref="VersionConsistency"/>), merged into the fresh record.</summary>
    public Dictionary<string, IReadOnlyList<DeploymentImageRecord>> Images { get; } = new(StringComparer.Ordinal);

    public void WakeNoLaterThan(DateTimeOffset at) => WakeAt = WakeAt is { } w && w <= at ? w : at;
}

/// <summary>
/// The service scheduler's decision, as a pure function of the service record, its tasks and a few facts
/// about instances: which tasks to stop, how many to start for which deployment, and what happens to the
/// deployments (failures counted, circuit breaker, completion, steady state). It follows ECS's rules:
/// minimumHealthyPercent (rounded up) is the floor of healthy tasks while old ones are replaced,
/// maximumPercent (rounded down) the ceiling of tasks that exist at once.
/// </summary>
public static class ServicePlanner
{
    public const string SchedulerStopCode = "ServiceSchedulerInitiated";

    /// <summary>A task's health from its essential containers' health checks (<see cref="TaskHealth.Checked"/>); null when none has a check.</summary>
    public static string? HealthOf(TaskRecord t) => TaskHealth.Checked(t);

    /// <summary>Stopped on its own: an essential container exited or the task never started (not stopped by a user or the scheduler).</summary>
    public static bool IsFailure(TaskRecord t)
        => t.IsStopped && t.StopCode is "EssentialContainerExited" or "TaskFailedToStart";

    public static ServicePlan Plan(ServiceRecord svc, IReadOnlyList<TaskRecord> tasks, PlannerInputs inputs)
    {
        var plan = new ServicePlan();
        if (svc.Deployments.Count == 0)
        {
            return plan;
        }
        var now = inputs.Now;
        var name = svc.Name;
        var grace = TimeSpan.FromSeconds(svc.HealthCheckGracePeriodSeconds ?? 0);
        var deployments = svc.Deployments.ToDictionary(d => d.Id, StringComparer.Ordinal);
        DeploymentRecord Current(string id) => plan.Patched.TryGetValue(id, out var p) ? p : deployments[id];
        var stopping = new HashSet<string>(inputs.Leaving, StringComparer.Ordinal);
        void Stop(TaskRecord t, string reason)
        {
            if (stopping.Add(t.Id))
            {
                plan.Stops.Add((t.Id, reason));
            }
        }

        // 1. Count failures: each stopped task of a deployment once (level-triggered; the ids are remembered).
        foreach (var d in svc.Deployments)
        {
            var fresh = new List<string>();
            var ranWell = false;
            foreach (var t in tasks)
            {
                if (t.StartedBy != d.Id)
                {
                    continue;
                }
                if (IsFailure(t) && !d.Counted.Contains(t.Id))
                {
                    fresh.Add(t.Id);
                }
                else if (!t.IsStopped && t.LastStatus == TaskStates.Running && HealthOf(t) is null or "HEALTHY")
                {
                    ranWell = true;
                }
            }
            if (fresh.Count > 0 || (ranWell && d.ConsecutiveFailures > 0))
            {
                plan.Patched[d.Id] = CountFailures(d, fresh, ranWell, now, plan, name);
            }
        }

        // 2. Tasks whose essential containers fail their health checks are replaced (after the grace period).
        foreach (var t in tasks)
        {
            if (!t.IsStopped && t.DesiredStatus == TaskStates.Running && t.LastStatus == TaskStates.Running
                && !stopping.Contains(t.Id) && (HealthOf(t) == "UNHEALTHY" || inputs.TargetHealth(t) == "unhealthy"))
            {
                var since = t.StartedAt ?? t.CreatedAt;
                if (now - since < grace)
                {
                    plan.WakeNoLaterThan(since + grace);
                    continue;
                }
                var lb = HealthOf(t) != "UNHEALTHY";
                Stop(t, lb ? "Task failed ELB health checks" : "Task failed container health checks");
                plan.Events.Add(lb
                    ? $"(service {name}) (task {t.Id}) failed ELB health checks."
                    : $"(service {name}) (task {t.Id}) failed container health checks.");
                if (t.StartedBy is { } by && deployments.ContainsKey(by) && !Current(by).Counted.Contains(t.Id))
                {
                    plan.Patched[by] = CountFailures(Current(by), [t.Id], false, now, plan, name);
                }
            }
        }

        // 3. The circuit breaker: too many failed tasks in the primary deployment fail it (and roll back).
        var primary = Current(svc.Deployments[0].Id);
        var config = primary.Config ?? svc.DeploymentConfiguration;
        if (config.CircuitBreakerEnable && primary.RolloutState == DeploymentStates.InProgress
            && svc.Status == ServiceStates.Active && primary.FailedTasks >= ServiceRules.FailureThreshold(primary.DesiredCount))
        {
            var target = config.CircuitBreakerRollback ? LastCompleted(svc) : null;
            primary = primary with
            {
                RolloutState = DeploymentStates.Failed,
                RolloutStateReason = "ECS deployment circuit breaker: tasks failed to start.",
                DeploymentStatus = target is null ? "ROLLBACK_FAILED" : "ROLLBACK_IN_PROGRESS",
                DeploymentStatusReason = "ECS deployment circuit breaker: tasks failed to start.",
                UpdatedAt = now,
                FinishedAt = target is null ? now : null,
            };
            plan.Patched[primary.Id] = primary;
            plan.Events.Add($"(service {name}) (deployment {primary.Id}) deployment failed: tasks failed to start.");
            if (target is not null)
            {
                var id = ServiceRules.NewDeploymentId();
                plan.Rollback = new DeploymentRecord
                {
                    Id = id,
                    Status = DeploymentStates.Primary,
                    TaskDefinition = target.TaskDefinition,
                    DesiredCount = primary.DesiredCount,
                    CreatedAt = now,
                    UpdatedAt = now,
                    Config = target.Config ?? config,
                    Replaced = primary.Id,
                    RollbackOf = primary.Id,
                    RolloutStateReason = $"ECS deployment circuit breaker: rolling back to deploymentId {target.Id}.",
                    // The revision rolled back to runs the image digests it resolved.
                    Images = target.Images,
                };
                plan.Events.Add($"(service {name}) rolling back to deployment {target.Id}.");
                // Plan the rest against the rollback deployment from the next pass, when the record holds it.
                return plan;
            }
        }

        return svc.SchedulingStrategy == "DAEMON"
            ? PlanDaemon(svc, tasks, inputs, plan, primary, config, Current, Stop, stopping)
            : PlanReplica(svc, tasks, inputs, plan, primary, config, Current, Stop, stopping);
    }

    private static DeploymentRecord CountFailures(DeploymentRecord d, List<string> fresh, bool ranWell, DateTimeOffset now, ServicePlan plan, string name)
    {
        var consecutive = fresh.Count > 0 ? d.ConsecutiveFailures + fresh.Count : 0;
        DateTimeOffset? backoff = d.BackoffUntil;
        if (fresh.Count > 0 && consecutive >= 3)
        {
            // ECS throttles a service whose tasks keep failing to start: 5 s, doubling, at most 5 minutes.
            var delay = TimeSpan.FromSeconds(Math.Min(300, 5 * Math.Pow(2, Math.Min(consecutive - 3, 10))));
            backoff = now + delay;
            if (d.ConsecutiveFailures < 3)
            {
                plan.Events.Add($"(service {name}) is unable to consistently start tasks successfully. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.");
            }
        }
        else if (ranWell && fresh.Count == 0)
        {
            backoff = null;
        }
        var counted = d.Counted.Concat(fresh).ToList();
        if (counted.Count > 500)
        {
            counted = counted[^500..];
        }
        return d with
        {
            FailedTasks = d.FailedTasks + fresh.Count,
            Counted = counted,
            ConsecutiveFailures = consecutive,
            BackoffUntil = backoff,
        };
    }

    private static DeploymentRecord? LastCompleted(ServiceRecord svc)
        => svc.Deployments.Skip(1).Concat(svc.History).FirstOrDefault(d => d.RolloutState == DeploymentStates.Completed);

    private static bool Healthy(TaskRecord t, PlannerInputs inputs)
        => !t.IsStopped && t.DesiredStatus == TaskStates.Running && t.LastStatus == TaskStates.Running
           && HealthOf(t) is null or "HEALTHY" && inputs.TargetHealth(t) is null or "healthy" && !inputs.Leaving.Contains(t.Id);

    private static ServicePlan PlanReplica(ServiceRecord svc, IReadOnlyList<TaskRecord> tasks, PlannerInputs inputs, ServicePlan plan,
        DeploymentRecord primary, DeploymentConfigRecord config, Func<string, DeploymentRecord> current, Action<TaskRecord, string> stop, HashSet<string> stopping)
    {
        var now = inputs.Now;
        var name = svc.Name;
        var desired = svc.Status == ServiceStates.Active ? svc.DesiredCount : 0;
        var maxTasks = ServiceRules.MaxTasks(desired, config.MaximumPercent);
        var minHealthy = ServiceRules.MinHealthy(desired, config.MinimumHealthyPercent);
        bool OnDrainingInstance(TaskRecord t) => t.InstanceId is { } i && inputs.InstanceStatus(i) is not (null or "ACTIVE");

        var occupancy = 0;
        var primaryKeep = new List<TaskRecord>();
        var old = new List<TaskRecord>();
        foreach (var t in tasks)
        {
            if (t.IsStopped)
            {
                continue;
            }
            occupancy++;
            if (t.DesiredStatus != TaskStates.Running || stopping.Contains(t.Id))
            {
                continue;
            }
            if (t.StartedBy == primary.Id && !OnDrainingInstance(t))
            {
                primaryKeep.Add(t);
            }
            else
            {
                old.Add(t);
            }
        }

        // Start what the primary deployment lacks, within maximumPercent.
        var need = desired - primaryKeep.Count;
        var primaryCanStart = svc.Status == ServiceStates.Active && primary.RolloutState != DeploymentStates.Failed;
        if (need > 0 && primaryCanStart)
        {
            if (primary.BackoffUntil is { } until && until > now)
            {
                plan.WakeNoLaterThan(until);
            }
            else
            {
                var start = Math.Min(need, Math.Max(0, maxTasks - occupancy));
                if (start > 0)
                {
                    plan.Starts.Add((primary, start));
                }
            }
        }
        else if (need < 0)
        {
            // Scale in: tasks not yet running first, then the newest; under a capacity provider strategy, from the
            // providers above their share of the new count first, so the split stays the strategy's.
            var ordered = primaryKeep.OrderBy(t => t.LastStatus == TaskStates.Running ? 1 : 0).ThenByDescending(t => t.CreatedAt).ToList();
            var victims = svc.CapacityProviderStrategy is { Count: > 0 } strategy
                ? ScaleInByProvider(ordered, CapacityProviders.Items(strategy), desired, -need)
                : ordered.Take(-need).ToList();
            foreach (var t in victims)
            {
                stop(t, "Scaling activity initiated by (deployment " + primary.Id + ")");
            }
        }

        // Stop old tasks (older deployments, draining instances): the ones not healthy at once, healthy ones
        // only while the healthy count stays at or above minimumHealthyPercent.
        var healthyTotal = 0;
        foreach (var t in tasks)
        {
            if (Healthy(t, inputs) && !stopping.Contains(t.Id))
            {
                healthyTotal++;
            }
        }
        var room = healthyTotal - minHealthy;
        foreach (var t in old.OrderBy(t => Healthy(t, inputs) ? 1 : 0).ThenBy(t => t.CreatedAt))
        {
            var healthy = Healthy(t, inputs);
            if (healthy)
            {
                if (room <= 0)
                {
                    break;
                }
                room--;
            }
            var reason = OnDrainingInstance(t) && t.StartedBy == primary.Id
                ? "Container instance is draining"
                : "Scaling activity initiated by (deployment " + (t.StartedBy ?? primary.Id) + ")";
            stop(t, reason);
        }

        FinishDeployments(svc, tasks, plan, primary, current, desired, inputs);
        return plan;
    }

    /// <summary>
    /// <paramref name="count"/> of <paramref name="ordered"/> (in the order they would go) to stop so that the rest match
    /// the strategy's split of <paramref name="desired"/> tasks as closely as the providers' tasks allow.
    /// </summary>
    public static List<TaskRecord> ScaleInByProvider(IReadOnlyList<TaskRecord> ordered, IReadOnlyList<Berth.Aws.Ecs.CapacityProviderStrategyItem> strategy, int desired, int count)
    {
        var excess = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in ordered)
        {
            excess[t.CapacityProviderName ?? ""] = excess.GetValueOrDefault(t.CapacityProviderName ?? "") + 1;
        }
        foreach (var p in CapacityProviders.Split(strategy, desired))
        {
            excess[p] = excess.GetValueOrDefault(p) - 1;
        }
        var picked = new List<TaskRecord>(count);
        var taken = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in ordered)
        {
            var p = t.CapacityProviderName ?? "";
            if (picked.Count < count && excess[p] > 0)
            {
                picked.Add(t);
                taken.Add(t.Id);
                excess[p]--;
            }
        }
        foreach (var t in ordered)
        {
            if (picked.Count < count && taken.Add(t.Id))
            {
                picked.Add(t);
            }
        }
        return picked;
    }

    private static ServicePlan PlanDaemon(ServiceRecord svc, IReadOnlyList<TaskRecord> tasks, PlannerInputs inputs, ServicePlan plan,
        DeploymentRecord primary, DeploymentConfigRecord config, Func<string, DeploymentRecord> current, Action<TaskRecord, string> stop, HashSet<string> stopping)
    {
        var eligible = svc.Status == ServiceStates.Active ? inputs.DaemonInstances : [];
        var desired = eligible.Count;
        if (desired != svc.DesiredCount)
        {
            plan.DaemonDesired = desired;
        }
        var wanted = new HashSet<string>(eligible, StringComparer.Ordinal);
        var minHealthy = ServiceRules.MinHealthy(desired, config.MinimumHealthyPercent);
        var byInstance = new Dictionary<string, List<TaskRecord>>(StringComparer.Ordinal);
        foreach (var t in tasks)
        {
            if (t.IsStopped || t.InstanceId is null)
            {
                continue;
            }
            if (!byInstance.TryGetValue(t.InstanceId, out var list))
            {
                byInstance[t.InstanceId] = list = [];
            }
            list.Add(t);
        }
        var healthyTotal = tasks.Count(t => Healthy(t, inputs) && !stopping.Contains(t.Id));
        var room = healthyTotal - minHealthy;
        foreach (var (instance, list) in byInstance)
        {
            var keep = list.Where(t => t.DesiredStatus == TaskStates.Running && !stopping.Contains(t.Id)).ToList();
            if (!wanted.Contains(instance))
            {
                foreach (var t in keep)
                {
                    stop(t, "Container instance is draining");
                }
                continue;
            }
            var primaryTasks = keep.Where(t => t.StartedBy == primary.Id).OrderByDescending(t => t.LastStatus == TaskStates.Running).ToList();
            foreach (var extra in primaryTasks.Skip(1))
            {
                stop(extra, "Scaling activity initiated by (deployment " + primary.Id + ")");
            }
            foreach (var t in keep.Where(t => t.StartedBy != primary.Id))
            {
                if (Healthy(t, inputs))
                {
                    if (room <= 0)
                    {
                        continue;
                    }
                    room--;
                }
                stop(t, "Scaling activity initiated by (deployment " + (t.StartedBy ?? primary.Id) + ")");
            }
        }
        var canStart = primary.RolloutState != DeploymentStates.Failed && !(primary.BackoffUntil is { } until && until > inputs.Now);
        if (primary.BackoffUntil is { } u && u > inputs.Now)
        {
            plan.WakeNoLaterThan(u);
        }
        foreach (var instance in eligible)
        {
            // One task per instance: start only where nothing of the service is left (old tasks stop first).
            if (canStart && (!byInstance.TryGetValue(instance, out var list) || list.All(t => t.IsStopped)))
            {
                plan.DaemonStarts.Add((primary, instance));
            }
        }
        FinishDeployments(svc, tasks, plan, primary, current, desired, inputs);
        return plan;
    }

    /// <summary>Retires deployments with no task left, completes the primary one, and notes a steady state.</summary>
    private static void FinishDeployments(ServiceRecord svc, IReadOnlyList<TaskRecord> tasks, ServicePlan plan, DeploymentRecord primary,
        Func<string, DeploymentRecord> current, int desired, PlannerInputs inputs)
    {
        var now = inputs.Now;
        var name = svc.Name;
        var liveBy = new Dictionary<string, int>(StringComparer.Ordinal);
        var primaryHealthy = 0;
        var primaryLive = 0;
        var othersLive = 0;
        var stopped = plan.Stops.Select(s => s.TaskId).ToHashSet(StringComparer.Ordinal);
        foreach (var t in tasks)
        {
            if (t.IsStopped)
            {
                continue;
            }
            if (t.StartedBy is { } by)
            {
                liveBy[by] = liveBy.GetValueOrDefault(by) + 1;
            }
            if (t.StartedBy == primary.Id)
            {
                primaryLive++;
                if (Healthy(t, inputs) && !stopped.Contains(t.Id))
                {
                    primaryHealthy++;
                }
            }
            else
            {
                othersLive++;
            }
        }
        foreach (var d in svc.Deployments.Skip(1))
        {
            if (liveBy.GetValueOrDefault(d.Id) == 0)
            {
                plan.Finished.Add(d.Id);
            }
            // An older deployment's desired count follows its tasks down as they are replaced, as ECS shows it.
            var remaining = tasks.Count(t => t.StartedBy == d.Id && !t.IsStopped && t.DesiredStatus == TaskStates.Running && !stopped.Contains(t.Id));
            if (remaining < current(d.Id).DesiredCount)
            {
                plan.Patched[d.Id] = current(d.Id) with { DesiredCount = remaining };
            }
        }
        var settled = inputs.Leaving.Count == 0 && othersLive == 0 && primaryLive == desired && primaryHealthy == desired
            && plan.Stops.Count == 0 && plan.Starts.Count == 0 && plan.DaemonStarts.Count == 0
            && svc.Deployments.Skip(1).All(d => plan.Finished.Contains(d.Id));
        if (settled && svc.Status == ServiceStates.Draining)
        {
            plan.BecomesInactive = true;
            return;
        }
        if (settled && primary.RolloutState == DeploymentStates.InProgress)
        {
            plan.Patched[primary.Id] = current(primary.Id) with
            {
                RolloutState = DeploymentStates.Completed,
                RolloutStateReason = $"ECS deployment {primary.Id} completed.",
                DeploymentStatus = "SUCCESSFUL",
                DeploymentStatusReason = null,
                UpdatedAt = now,
                FinishedAt = now,
            };
            plan.Events.Add($"(service {name}) (deployment {primary.Id}) deployment completed.");
        }
        if (settled != svc.Steady)
        {
            plan.Steady = settled;
            if (settled)
            {
                plan.Events.Add($"(service {name}) has reached a steady state.");
            }
        }
    }

    /// <summary>"(task a) (task b)" for an event message.</summary>
    public static string TaskList(IEnumerable<string> ids) => string.Join(' ', ids.Select(id => "(task " + id + ")"));

    public static string Count(int n) => n.ToString(CultureInfo.InvariantCulture);
}
