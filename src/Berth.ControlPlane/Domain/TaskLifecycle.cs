using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.Core.Agent;
using Berth.Scheduling;

namespace Berth.ControlPlane.Domain;

/// <summary>What RunTask/StartTask ask for, after the wire layer validated and translated it.</summary>
public sealed record LaunchRequest
{
    public required string Cluster { get; init; }
    public required TaskDefinition Definition { get; init; }
    public int Count { get; init; } = 1;
    public OverridesRecord? Overrides { get; init; }
    public TaskOverride? WireOverrides { get; init; }
    public string? StartedBy { get; init; }
    public string? Group { get; init; }
    public IReadOnlyList<TagRecord>? Tags { get; init; }
    public IReadOnlyList<PlacementConstraintSpec> Constraints { get; init; } = [];
    public IReadOnlyList<PlacementStrategySpec> Strategies { get; init; } = [];
    /// <summary>StartTask: the instances to start on (keys "{cluster}/{id}" or null for a reference that matched none); null for RunTask.</summary>
    public IReadOnlyList<(string Reference, string? Key)>? Targets { get; init; }
    public string? ClientToken { get; init; }
    public string? Fingerprint { get; init; }
    /// <summary>awsvpc: the validated networkConfiguration; null for other network modes.</summary>
    public AwsvpcRecord? Awsvpc { get; init; }
    public LaunchKind Launch { get; init; } = LaunchKind.Ec2;
    /// <summary>
    /// The capacity provider of each task of the launch, in order; null: none. FARGATE / FARGATE_SPOT tasks go to
    /// any instance of the cluster; an Auto Scaling group provider's tasks only to that provider's instances.
    /// </summary>
    public IReadOnlyList<string?>? CapacityProviders { get; init; }
    /// <summary>Service tasks: container name → the digest reference it is created from (<see cref="VersionConsistency"/>); null: the definition's images.</summary>
    public IReadOnlyDictionary<string, string>? ImagePins { get; init; }
}

public sealed record LaunchResult(IReadOnlyList<TaskRecord> Tasks, IReadOnlyList<FailureRecord> Failures);

/// <summary>
/// Every rule about a task's life, in one place: placement and creation, stopping, agent reports
/// (ownership, sequence, ECS's state order), and retention. Wire handlers and the agent gateway call
/// this; it reads the state's indexes and never scans a whole table.
/// </summary>
public sealed class TaskLifecycle(EcsState state, Arns arns, TimeProvider time, Random? random = null)
{
    private readonly Random _random = random ?? Random.Shared;

    public EcsState State => state;
    public Arns Arns => arns;

    /// <summary>Name of an existing ACTIVE cluster; ClusterNotFoundException otherwise.</summary>
    public string ResolveCluster(string? nameOrArn)
    {
        var name = string.IsNullOrEmpty(nameOrArn) ? "default" : Arns.NameOf(nameOrArn);
        if (state.Clusters.Find(name) is not { Status: "ACTIVE" })
        {
            throw new AwsException("ClusterNotFoundException", "Cluster not found.");
        }
        return name;
    }

    /// <summary>family, family:revision or ARN; a bare family means its latest ACTIVE revision.</summary>
    public StoredTaskDefinition? FindDefinition(string reference, bool activeOnlyForFamily)
    {
        string r;
        if (reference.StartsWith("arn:", StringComparison.Ordinal))
        {
            if (!Arns.TryParse(reference, out var parsed) || parsed.Region != state.Identity.Region || parsed.Account != state.Identity.AccountId)
            {
                return null;
            }
            r = reference[(reference.IndexOf('/') + 1)..];
        }
        else
        {
            r = reference;
        }
        var colon = r.LastIndexOf(':');
        if (colon > 0 && int.TryParse(r[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var rev))
        {
            return state.TaskDefinitions.Find(EcsState.TaskDefinitionId(r[..colon], rev));
        }
        var latest = activeOnlyForFamily ? state.Families.LatestActive(r) : state.Families.Latest(r);
        return latest is { } l ? state.TaskDefinitions.Find(EcsState.TaskDefinitionId(r, l)) : null;
    }

    public TaskDefinition ResolveDefinition(string? reference)
    {
        if (string.IsNullOrEmpty(reference))
        {
            throw AwsException.InvalidParameter("taskDefinition: must be specified.");
        }
        var found = FindDefinition(reference, activeOnlyForFamily: true)?.Definition
            ?? throw new AwsException("ClientException", "Unable to describe task definition.");
        if (found.Status != "ACTIVE")
        {
            throw new AwsException("ClientException", "TaskDefinition is inactive");
        }
        return found;
    }

    public TaskDefinition? DefinitionOf(TaskRecord t) => state.TaskDefinitions.Find(EcsState.TaskDefinitionId(t.Family, t.Revision))?.Definition;

    public TaskRecord? Find(string cluster, string arnOrId)
        => state.KeyIn(cluster, arnOrId) is { } key ? state.Tasks.Find(key) : null;

    /// <summary>RunTask (Targets null: the scheduler picks instances) or StartTask (the given instances).</summary>
    public async Task<LaunchResult> LaunchAsync(LaunchRequest req, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var tokenKey = req.ClientToken is null ? null : EcsState.ScopedId(req.Cluster, req.ClientToken);
        if (tokenKey is not null && state.ClientTokens.Find(tokenKey) is { } seen)
        {
            if (seen.Fingerprint != req.Fingerprint)
            {
                throw AwsException.InvalidParameter($"clientToken: '{req.ClientToken}' was already used with different parameters.");
            }
            var earlier = seen.TaskIds.Select(id => state.Tasks.Find(EcsState.ScopedId(req.Cluster, id))).OfType<TaskRecord>().ToList();
            return new LaunchResult(earlier, seen.Failures);
        }

        var reservation = Reservations.For(req.Definition, req.WireOverrides);
        // What the definition needs from a host's policy (privileged, host paths, ...): judged from each candidate's berth.policy.* attributes.
        var hostNeeds = HostNeeds.Of(req.Definition);
        Func<InstanceCandidate, string?>? hostCheck = hostNeeds is null ? null : hostNeeds.Refuse;
        FailureRecord Failed(string? arn, string reason) => new(arn, reason,
            hostNeeds is null || arn is null ? null : hostNeeds.Detail(reason, state.Ledger.Candidate(state.KeyIn(req.Cluster, arn) ?? "")?.Attributes));
        var placements = new List<(string InstanceArn, string InstanceId, string? Provider)>();
        var failures = new List<FailureRecord>();
        if (req.Targets is null && req.Launch.LaunchType == "EC2" && req.CapacityProviders is { } split && split.Any(p => p is not null))
        {
            // An Auto Scaling group capacity provider strategy: each provider's share of the tasks is placed on that
            // provider's instances only (the ledger keeps them apart, so this costs the provider's instances).
            foreach (var share in split.GroupBy(p => p ?? ""))
            {
                var provider = share.Key;
                var count = share.Count();
                var candidates = state.Ledger.Candidates(req.Cluster, provider);
                if (candidates.Count == 0)
                {
                    failures.AddRange(Enumerable.Repeat(new FailureRecord(null, "No Container Instances were found in your capacity provider"), count));
                    continue;
                }
                var plan = Scheduler.Place(new PlacementRequest
                {
                    Candidates = candidates,
                    Tasks = Enumerable.Repeat(reservation, count).ToList(),
                    Constraints = req.Constraints,
                    Strategies = req.Strategies,
                    Group = GroupOf(req),
                    GroupTasks = state.Ledger.GroupTasks(req.Cluster, GroupOf(req), provider),
                    HostCheck = hostCheck,
                }, _random);
                placements.AddRange(plan.Placements.Select(p => (p.InstanceArn, Arns.NameOf(p.InstanceArn), (string?)provider)));
                failures.AddRange(plan.Failures.Select(f => Failed(f.InstanceArn, f.Reason)));
            }
        }
        else if (req.Targets is null)
        {
            var candidates = state.Ledger.Candidates(req.Cluster);
            if (candidates.Count == 0)
            {
                throw AwsException.InvalidParameter("No Container Instances were found in your cluster.");
            }
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = candidates,
                Tasks = Enumerable.Repeat(reservation, req.Count).ToList(),
                Constraints = req.Constraints,
                Strategies = req.Strategies,
                Group = GroupOf(req),
                GroupTasks = state.Ledger.GroupTasks(req.Cluster, GroupOf(req)),
                HostCheck = hostCheck,
            }, _random);
            placements.AddRange(plan.Placements.Select(p => (p.InstanceArn, Arns.NameOf(p.InstanceArn),
                req.CapacityProviders is { } cps && p.TaskIndex < cps.Count ? cps[p.TaskIndex] : null)));
            failures.AddRange(plan.Failures.Select(f => Failed(f.InstanceArn, f.Reason)));
        }
        else
        {
            // StartTask skips strategies but still refuses what does not fit; tasks of this call count too.
            var extra = new Dictionary<string, (int Cpu, long Memory, List<int> Ports, int Tasks)>(StringComparer.Ordinal);
            foreach (var (reference, key) in req.Targets)
            {
                if (key is null || state.Ledger.Candidate(key) is not { } candidate || candidate.Status == "INACTIVE")
                {
                    failures.Add(new FailureRecord(reference, "MISSING"));
                    continue;
                }
                var used = extra.TryGetValue(key, out var u) ? u : (Cpu: 0, Memory: 0L, Ports: new List<int>(), Tasks: 0);
                var adjusted = candidate with
                {
                    Status = "ACTIVE",
                    CpuAvailable = candidate.CpuAvailable - used.Cpu,
                    MemoryAvailable = candidate.MemoryAvailable - used.Memory,
                    UsedPorts = used.Ports.Count == 0 ? candidate.UsedPorts : new HashSet<int>(candidate.UsedPorts.Concat(used.Ports)),
                };
                var plan = Scheduler.Place(new PlacementRequest { Candidates = [adjusted], Tasks = [reservation], HostCheck = hostCheck }, _random);
                if (plan.Failures.Count > 0)
                {
                    failures.Add(Failed(candidate.Arn, plan.Failures[0].Reason));
                    continue;
                }
                used.Ports.AddRange(reservation.StaticPorts);
                extra[key] = (used.Cpu + reservation.Cpu, used.Memory + reservation.Memory, used.Ports, used.Tasks + 1);
                placements.Add((candidate.Arn, key[(key.IndexOf('/') + 1)..], null));
            }
        }

        var shared = new SharedStrings(req, reservation);
        var tasks = placements.Select(p => NewTask(req, shared, p.InstanceId) with
        {
            Awsvpc = req.Awsvpc,
            LaunchType = req.Launch.LaunchType,
            PlatformVersion = req.Launch.PlatformVersion,
            CapacityProviderName = p.Provider,
        }).ToList();
        foreach (var t in tasks)
        {
            tx.Put(state.Tasks, EcsState.ScopedId(t.Cluster, t.Id), t);
        }
        if (tokenKey is not null)
        {
            tx.Put(state.ClientTokens, tokenKey, new ClientTokenRecord
            {
                Fingerprint = req.Fingerprint ?? "",
                TaskIds = tasks.Select(t => t.Id).ToList(),
                Failures = failures,
                CreatedAt = time.GetUtcNow(),
            });
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new LaunchResult(tasks, failures);
    }

    /// <summary>The task group of a launch: the one given, else "family:FAMILY", as ECS names it.</summary>
    private static string GroupOf(LaunchRequest req) => req.Group ?? "family:" + req.Definition.Family;

    /// <summary>
    /// What every task of one launch has in common, built once: 100,000 tasks of a few definitions then share
    /// a handful of strings and lists instead of each holding copies.
    /// </summary>
    private sealed class SharedStrings
    {
        public SharedStrings(LaunchRequest req, TaskReservation reservation)
        {
            var def = req.Definition;
            var byName = (req.Overrides?.Containers ?? []).GroupBy(o => o.Name).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
            var udp = new List<int>();
            var tcp = new List<int>();
            var host = def.NetworkMode == "host";
            // awsvpc and none: the task's ports are on its own address (or nowhere), not the host's.
            foreach (var c in def.NetworkMode is "awsvpc" or "none" ? [] : def.ContainerDefinitions ?? [])
            {
                foreach (var m in c.PortMappings ?? [])
                {
                    var p = m.HostPort is > 0 ? m.HostPort.Value : host && m.ContainerPort is > 0 ? m.ContainerPort.Value : 0;
                    if (p > 0)
                    {
                        (m.Protocol == "udp" ? udp : tcp).Add(p);
                    }
                }
            }
            Tcp = tcp.Count > 0 ? tcp : null;
            Udp = udp.Count > 0 ? udp : null;
            Group = GroupOf(req);
            Cpu = reservation.Cpu > 0 ? reservation.Cpu.ToString(System.Globalization.CultureInfo.InvariantCulture) : null;
            Memory = reservation.Memory > 0 ? reservation.Memory.ToString(System.Globalization.CultureInfo.InvariantCulture) : null;
            Containers = (def.ContainerDefinitions ?? []).Where(c => c.Name is not null).Select(c =>
            {
                var o = byName.GetValueOrDefault(c.Name!);
                return new ContainerRecord
                {
                    Name = c.Name!,
                    Image = c.Image,
                    PinnedImage = req.ImagePins?.GetValueOrDefault(c.Name!),
                    LastStatus = TaskStates.Pending,
                    Essential = c.Essential != false,
                    HasHealthCheck = TaskHealth.HasCheck(c.HealthCheck),
                    Cpu = (o?.Cpu ?? c.Cpu ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    Memory = (o?.Memory ?? c.Memory)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    MemoryReservation = (o?.MemoryReservation ?? c.MemoryReservation)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                };
            }).ToArray();
        }

        public List<int>? Tcp { get; }
        public List<int>? Udp { get; }
        public string Group { get; }
        public string? Cpu { get; }
        public string? Memory { get; }
        /// <summary>Shared by every task of the launch until a report gives one its own (records are never edited in place).</summary>
        public ContainerRecord[] Containers { get; }
    }

    private TaskRecord NewTask(LaunchRequest req, SharedStrings shared, string instanceId)
    {
        var def = req.Definition;
        return new TaskRecord
        {
            Id = Guid.NewGuid().ToString("N"),
            Cluster = req.Cluster,
            Family = def.Family!,
            Revision = def.Revision ?? 1,
            // One string per instance, not per task (100,000 tasks on 5,000 instances).
            InstanceId = string.Intern(instanceId),
            DesiredStatus = TaskStates.Running,
            LastStatus = TaskStates.Provisioning,
            CreatedAt = time.GetUtcNow(),
            StartedBy = req.StartedBy,
            Group = shared.Group,
            Overrides = req.Overrides,
            Tags = req.Tags is { Count: > 0 } ? req.Tags : null,
            Cpu = shared.Cpu,
            Memory = shared.Memory,
            StaticPorts = shared.Tcp,
            StaticUdpPorts = shared.Udp,
            ClientToken = req.ClientToken,
            Containers = shared.Containers,
        };
    }

    /// <summary>Stops several tasks of a cluster in one transaction (the service scheduler); returns the ids it stopped.</summary>
    public async Task<IReadOnlyList<string>> StopManyAsync(string cluster, IReadOnlyList<(string TaskId, string Reason)> stops, string stopCode, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var stopped = new List<string>();
        foreach (var (id, reason) in stops)
        {
            var key = EcsState.ScopedId(cluster, id);
            if (state.Tasks.Find(key) is { DesiredStatus: TaskStates.Running } current)
            {
                tx.Put(state.Tasks, key, Stopping(cluster, current, reason, stopCode));
                stopped.Add(id);
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return stopped;
    }

    /// <summary>The record of a task asked to stop; one that no agent ever saw is STOPPED at once.</summary>
    private TaskRecord Stopping(string cluster, TaskRecord current, string? reason, string stopCode)
    {
        var now = time.GetUtcNow();
        var task = current with
        {
            DesiredStatus = TaskStates.Stopped,
            StoppingAt = now,
            StoppedReason = reason ?? "Task stopped by user",
            StopCode = stopCode,
            Version = current.Version + 1,
        };
        var instance = task.InstanceId is null ? null : state.ContainerInstances.Find(EcsState.ScopedId(cluster, task.InstanceId));
        if (task.LastStatus == TaskStates.Provisioning && instance?.AgentConnected != true)
        {
            // No agent ever saw it, so nobody else will report it stopped.
            task = task with
            {
                LastStatus = TaskStates.Stopped,
                StoppedAt = now,
                ExecutionStoppedAt = now,
                Containers = task.Containers.Select(c => c with { LastStatus = TaskStates.Stopped }).ToList(),
            };
        }
        return task;
    }

    /// <summary>StopTask: desired STOPPED; the first reason stands. Null when the task is not in the cluster.</summary>
    public async Task<TaskRecord?> StopAsync(string cluster, string reference, string? reason, string stopCode, CancellationToken ct)
    {
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.KeyIn(cluster, reference) is not { } key || state.Tasks.Find(key) is not { } current)
        {
            return null;
        }
        if (current.DesiredStatus == TaskStates.Stopped)
        {
            return current;
        }
        var task = Stopping(cluster, current, reason, stopCode);
        tx.Put(state.Tasks, key, task);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return task;
    }

    /// <summary>
    /// Applies an agent's report for one task. Accepted only from the stream of the instance that owns the
    /// task (<paramref name="instanceKey"/>), only with a sequence newer than the last applied one, and
    /// lastStatus never moves backwards in ECS's order. Returns why a report was ignored, or null.
    /// </summary>
    public async Task<string?> ApplyReportAsync(string instanceKey, TaskStatusReport report, CancellationToken ct)
    {
        var cluster = instanceKey[..instanceKey.IndexOf('/', StringComparison.Ordinal)];
        var instanceId = instanceKey[(cluster.Length + 1)..];
        if (state.KeyOf(cluster, report.TaskArn) is not { } key)
        {
            return "unknown task";
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.Tasks.Find(key) is not { } current)
        {
            return "unknown task";
        }
        if (current.Cluster != cluster || current.InstanceId != instanceId)
        {
            return "task belongs to another instance";
        }
        if (report.Sequence > 0 && report.Sequence <= current.LastSequence)
        {
            return "stale sequence";
        }
        if (current.IsStopped)
        {
            return "task already stopped";
        }
        var next = Merge(current, report, time.GetUtcNow());
        tx.Put(state.Tasks, key, next);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return null;
    }

    /// <summary>The pure state transition of a report: what a task becomes. Never moves lastStatus backwards.</summary>
    public static TaskRecord Merge(TaskRecord current, TaskStatusReport report, DateTimeOffset now)
    {
        var last = current.LastStatus;
        if (TaskStates.Rank(report.LastStatus) is var r and >= 1 && r > TaskStates.Rank(last))
        {
            last = TaskStates.Intern(report.LastStatus);
        }
        var containers = current.Containers.ToList();
        foreach (var c in report.Containers)
        {
            var i = containers.FindIndex(x => x.Name == c.Name);
            var target = i >= 0 ? containers[i] : new ContainerRecord { Name = c.Name };
            // Like the task's, a container's lastStatus never moves backwards: two reporters (the agent and a
            // SubmitContainerStateChange caller) merge in ECS's state order, whichever arrives last.
            var containerLast = string.IsNullOrEmpty(c.LastStatus) || TaskStates.Rank(c.LastStatus) < TaskStates.Rank(target.LastStatus)
                ? target.LastStatus : TaskStates.Intern(c.LastStatus);
            target = target with
            {
                RuntimeId = string.IsNullOrEmpty(c.RuntimeId) || c.RuntimeId == target.RuntimeId ? target.RuntimeId : c.RuntimeId,
                LastStatus = containerLast,
                ExitCode = c.HasExitCode ? c.ExitCode : target.ExitCode,
                Reason = string.IsNullOrEmpty(c.Reason) ? target.Reason : c.Reason,
                ImageDigest = string.IsNullOrEmpty(c.ImageDigest) ? target.ImageDigest : c.ImageDigest,
                HealthStatus = string.IsNullOrEmpty(c.HealthStatus) ? target.HealthStatus : c.HealthStatus,
                Bindings = c.NetworkBindings.Count == 0 && target.Bindings is { Count: > 0 } ? target.Bindings
                    : c.NetworkBindings.Select(b => new BindingRecord(b.BindIp is "0.0.0.0" ? "0.0.0.0" : b.BindIp, b.ContainerPort, b.HostPort, b.Protocol is "udp" ? "udp" : "tcp")).ToList(),
            };
            if (i >= 0)
            {
                containers[i] = target;
            }
            else
            {
                containers.Add(target);
            }
        }
        var task = current with
        {
            LastStatus = last,
            Containers = containers,
            PrivateIp = string.IsNullOrEmpty(report.PrivateIpv4Address) ? current.PrivateIp : report.PrivateIpv4Address,
            MacAddress = string.IsNullOrEmpty(report.MacAddress) ? current.MacAddress : report.MacAddress,
            LastSequence = Math.Max(current.LastSequence, report.Sequence),
            PullStartedAt = Ms(report.PullStartedAt) ?? current.PullStartedAt,
            PullStoppedAt = Ms(report.PullStoppedAt) ?? current.PullStoppedAt,
            StartedAt = Ms(report.StartedAt) ?? current.StartedAt,
            ExecutionStoppedAt = Ms(report.ExecutionStoppedAt) ?? current.ExecutionStoppedAt,
            Version = current.Version + 1,
        };
        if (task.LastStatus == TaskStates.Running && task.ConnectivityAt is null)
        {
            task = task with { ConnectivityAt = now };
        }
        if (!string.IsNullOrEmpty(report.StopCode) && task.DesiredStatus == TaskStates.Running)
        {
            task = task with
            {
                DesiredStatus = TaskStates.Stopped,
                StopCode = report.StopCode,
                StoppedReason = string.IsNullOrEmpty(report.StoppedReason) ? null : report.StoppedReason,
                StoppingAt = now,
            };
        }
        else if (!string.IsNullOrEmpty(report.StoppedReason) && task.StoppedReason is null)
        {
            task = task with { StoppedReason = report.StoppedReason };
        }
        if (task.IsStopped)
        {
            task = task with
            {
                StoppedAt = task.StoppedAt ?? now,
                StoppingAt = task.StoppingAt ?? now,
                DesiredStatus = TaskStates.Stopped,
            };
        }
        return task;
    }

    private static DateTimeOffset? Ms(long unixMs) => unixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(unixMs) : null;

    /// <summary>Removes container instances deregistered before <paramref name="cutoff"/> that no task still names.</summary>
    public async Task<int> PurgeInstancesAsync(DateTimeOffset cutoff, int max, CancellationToken ct)
    {
        var keys = state.Ledger.DeregisteredBefore(cutoff, max);
        if (keys.Count == 0)
        {
            return 0;
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var purged = 0;
        foreach (var key in keys)
        {
            var cluster = key[..key.IndexOf('/', StringComparison.Ordinal)];
            // Tasks keep their containerInstanceArn until they are purged themselves; the instance outlives them.
            if (state.ContainerInstances.Find(key) is { Status: "INACTIVE" } && state.TaskIndex.Get(TaskIndex.ByInstance, cluster, key[(cluster.Length + 1)..]).Count == 0)
            {
                tx.Delete(state.ContainerInstances, key);
                purged++;
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return purged;
    }

    /// <summary>
    /// Removes STOPPED tasks that stopped before <paramref name="cutoff"/> (and client tokens older than it),
    /// at most <paramref name="max"/> at a time; returns how many tasks went.
    /// </summary>
    public async Task<int> PurgeAsync(DateTimeOffset cutoff, int max, CancellationToken ct)
    {
        var ids = state.TaskIndex.StoppedBefore(cutoff, max);
        if (ids.Count == 0)
        {
            return 0;
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var purged = 0;
        foreach (var id in ids)
        {
            if (state.Tasks.Find(id) is { IsStopped: true } t)
            {
                tx.Delete(state.Tasks, id);
                purged++;
                if (t.ClientToken is { } token && state.ClientTokens.Find(EcsState.ScopedId(t.Cluster, token)) is { } rec && rec.CreatedAt <= cutoff)
                {
                    tx.Delete(state.ClientTokens, EcsState.ScopedId(t.Cluster, token));
                }
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return purged;
    }

    /// <summary>
    /// A lost host: the instance's agent has been disconnected for the whole grace period, so nobody will report
    /// its tasks stopped. Every live task on it becomes STOPPED now (desired and last status, stoppedAt), which
    /// frees its reservation and lets a service scheduler replace it; a task already told to stop keeps its first
    /// reason. Nothing happens when the agent is back (connected) or the instance is gone or INACTIVE: the check
    /// and the writes are one transaction, so a reconnect racing this either wins or sees its tasks stopped.
    /// Reads the by-instance index only. Returns how many tasks were stopped.
    /// </summary>
    public async Task<int> StopLostAsync(string instanceKey, string reason, CancellationToken ct)
    {
        var cluster = instanceKey[..instanceKey.IndexOf('/', StringComparison.Ordinal)];
        var instanceId = instanceKey[(cluster.Length + 1)..];
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.ContainerInstances.Find(instanceKey) is not { AgentConnected: false } instance || instance.Status == "INACTIVE")
        {
            return 0;
        }
        var now = time.GetUtcNow();
        var stopped = 0;
        foreach (var id in state.TaskIndex.Get(TaskIndex.ByInstance, cluster, instanceId))
        {
            if (state.Tasks.Find(id) is not { IsStopped: false } current)
            {
                continue;
            }
            var first = current.DesiredStatus == TaskStates.Stopped;
            tx.Put(state.Tasks, id, current with
            {
                DesiredStatus = TaskStates.Stopped,
                LastStatus = TaskStates.Stopped,
                // ECS has no stop code for a lost agent; TerminationNotice is the one it gives when the
                // capacity under a task goes away, which is what a host silent past the grace amounts to.
                StopCode = first ? current.StopCode : LostHostStopCode,
                StoppedReason = first && current.StoppedReason is not null ? current.StoppedReason : reason,
                StoppingAt = current.StoppingAt ?? now,
                ExecutionStoppedAt = current.ExecutionStoppedAt ?? now,
                StoppedAt = now,
                Containers = current.Containers.Select(c => c.LastStatus == TaskStates.Stopped ? c : c with { LastStatus = TaskStates.Stopped }).ToList(),
                Version = current.Version + 1,
            });
            stopped++;
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return stopped;
    }

    /// <summary>The stop code of tasks stopped because their host was lost (see <see cref="StopLostAsync"/>).</summary>
    public const string LostHostStopCode = "TerminationNotice";
}
