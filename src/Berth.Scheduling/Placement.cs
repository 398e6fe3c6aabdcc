using System.Buffers;
using System.Runtime.CompilerServices;

namespace Berth.Scheduling;

/// <summary>What one container instance has left, as the scheduler sees it (reservations of its live tasks already subtracted).</summary>
public sealed record InstanceCandidate
{
    public required string Arn { get; init; }
    public string Status { get; init; } = "ACTIVE";
    public bool AgentConnected { get; init; } = true;
    public required int CpuAvailable { get; init; }
    public required long MemoryAvailable { get; init; }
    /// <summary>Host ports already taken (registered reserved ports plus static ports of live tasks).</summary>
    public IReadOnlySet<int> UsedPorts { get; init; } = new HashSet<int>();
    public IReadOnlyDictionary<string, string> Attributes { get; init; } = new Dictionary<string, string>();
    /// <summary>Live tasks on the instance (every task not yet STOPPED).</summary>
    public int TaskCount { get; init; }
    /// <summary>Live tasks per task group ("service:web", "family:db", ...): spread, distinctInstance and task:group read it.</summary>
    public IReadOnlyDictionary<string, int> GroupCounts { get; init; } = EmptyGroups;
    /// <summary>Tasks whose lastStatus is RUNNING (the query language's runningTasksCount).</summary>
    public int RunningTasksCount { get; init; }
    /// <summary>The instance id DescribeContainerInstances reports as ec2InstanceId (the query language's ec2InstanceId).</summary>
    public string? Ec2InstanceId { get; init; }
    public string? AgentVersion { get; init; }
    public DateTimeOffset? RegisteredAt { get; init; }

    private static readonly IReadOnlyDictionary<string, int> EmptyGroups = new Dictionary<string, int>();
}

/// <summary>What one task reserves on the instance it lands on.</summary>
public sealed record TaskReservation(int Cpu, long Memory, IReadOnlyList<int> StaticPorts);

public sealed record PlacementConstraintSpec(string Type, string? Expression);

public sealed record PlacementStrategySpec(string Type, string? Field);

public sealed record PlacementRequest
{
    public required IReadOnlyList<InstanceCandidate> Candidates { get; init; }
    public required IReadOnlyList<TaskReservation> Tasks { get; init; }
    public IReadOnlyList<PlacementConstraintSpec> Constraints { get; init; } = [];
    public IReadOnlyList<PlacementStrategySpec> Strategies { get; init; } = [];
    /// <summary>
    /// The task group the tasks join (RunTask's group, "family:NAME" by default; "service:NAME" for a service).
    /// spread counts, and distinctInstance avoids, the tasks of this group already on each instance; null: the
    /// instance's live tasks of every group, and distinctInstance only within this plan.
    /// </summary>
    public string? Group { get; init; }
    /// <summary>
    /// Optional: the live tasks of <see cref="Group"/> as (index in <see cref="Candidates"/>, count), listing only
    /// the instances that run any. When given, placement reads this instead of looking the group up in each
    /// candidate's <see cref="InstanceCandidate.GroupCounts"/> — a dictionary per instance, whose lookups cost
    /// cache misses on every one of 5,000 instances; the control plane keeps this list per group. It must agree
    /// with the candidates' GroupCounts.
    /// </summary>
    public IReadOnlyList<KeyValuePair<int, int>>? GroupTasks { get; init; }
    /// <summary>
    /// Optional: what the tasks need from a host beyond resources (the control plane's host policy check); returns
    /// the reason a candidate cannot take them, or null. Called at most once per candidate per request.
    /// </summary>
    public Func<InstanceCandidate, string?>? HostCheck { get; init; }
}

/// <summary>Task <paramref name="TaskIndex"/> of the request goes to <paramref name="InstanceArn"/>.</summary>
public sealed record Placement(int TaskIndex, string InstanceArn);

/// <summary>Why task <paramref name="TaskIndex"/> was not placed: the reason that eliminated the last candidate (ECS's Failure{arn, reason}).</summary>
public sealed record PlacementFailure(int TaskIndex, string? InstanceArn, string Reason);

public sealed record PlacementPlan(IReadOnlyList<Placement> Placements, IReadOnlyList<PlacementFailure> Failures);


/// <summary>
/// Pure placement: filters the candidates for each task in turn, orders the survivors by the
/// strategies, and subtracts what the chosen instance gives away before placing the next task,
/// so a plan never oversubscribes an instance. No I/O and no clock; randomness is injected.
/// </summary>
/// <remarks>
/// Cost: one pass over the candidates per request (status, agent, memberOf, spread attribute
/// values), then one pass per task over the instances that passed it, with no allocation per
/// candidate. The candidates are only read, never copied: what changes while the plan is built
/// (cpu, memory, task counts) lives in pooled arrays, and the static ports a task takes go to a
/// per-plan set for that one instance only. Callers may therefore reuse candidate objects
/// across requests.
/// </remarks>
public static class Scheduler
{
    public const string ReasonAgent = "AGENT";
    public const string ReasonCpu = "RESOURCE:CPU";
    public const string ReasonMemory = "RESOURCE:MEMORY";
    public const string ReasonPorts = "RESOURCE:PORTS";
    /// <summary>ECS's reason when an instance lacks an attribute the task definition requires (requiresAttributes).</summary>
    public const string ReasonAttribute = "ATTRIBUTE";
    public const string ReasonMemberOf = "MemberOf placement constraint unsatisfied";
    public const string ReasonDistinctInstance = "DistinctInstance placement constraint unsatisfied";
    public const string ReasonNoInstances = "No Container Instances were found in your cluster.";

    public static PlacementPlan Place(PlacementRequest request, Random random)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(random);
        using var plan = new PlanState(request);
        var placements = new List<Placement>(request.Tasks.Count);
        var failures = new List<PlacementFailure>();
        TaskReservation? previous = null;
        var need = default(TaskNeed);
        for (var i = 0; i < request.Tasks.Count; i++)
        {
            var task = request.Tasks[i];
            // RunTask repeats one reservation object `count` times: work out what it needs once.
            if (!ReferenceEquals(task, previous))
            {
                need = new TaskNeed(task);
                previous = task;
            }
            var chosen = plan.HasKeys ? plan.BestFit(in need, random) : plan.FirstFitInRandomOrder(in need, random);
            if (chosen < 0)
            {
                failures.Add(plan.Failure(i, in need));
                continue;
            }
            plan.Take(chosen, in need);
            placements.Add(new Placement(i, plan.ArnOf(chosen)));
        }
        return new PlacementPlan(placements, failures);
    }

    /// <summary>A task's reservation, with its static ports checked against each other once.</summary>
    private readonly struct TaskNeed(TaskReservation task)
    {
        public readonly int Cpu = task.Cpu;
        public readonly long Memory = task.Memory;
        public readonly IReadOnlyList<int>? Ports = task.StaticPorts.Count > 0 ? task.StaticPorts : null;
        // Two containers of one task asking for the same host port can never fit anywhere.
        public readonly bool PortsCollide = HasDuplicate(task.StaticPorts);

        private static bool HasDuplicate(IReadOnlyList<int> ports)
        {
            for (var a = 1; a < ports.Count; a++)
            {
                for (var b = 0; b < a; b++)
                {
                    if (ports[a] == ports[b])
                    {
                        return true;
                    }
                }
            }
            return false;
        }
    }

    private enum KeyKind
    {
        Cpu,
        Memory,
        Tasks,
        AttributeTasks,
    }

    /// <summary>One strategy as a sort key (smaller first). AttributeTasks reads the task count of the candidate's attribute value.</summary>
    private readonly record struct StrategyKey(KeyKind Kind, int[]? ValueOf, long[]? TasksPerValue);

    /// <summary>
    /// The working state of one plan. Candidates that can never take a task of this request
    /// (not ACTIVE, agent gone, memberOf false) are dropped once; the rest are "eligible" and
    /// numbered 0..count-1 in candidate order, with their changing figures in pooled arrays.
    /// </summary>
    private sealed class PlanState : IDisposable
    {
        private readonly IReadOnlyList<InstanceCandidate> _candidates;
        private readonly int _count;
        private readonly int[] _index;
        private readonly int[] _cpu;
        private readonly long[] _memory;
        private readonly int[] _tasks;
        private readonly bool[]? _used;
        private readonly StrategyKey[] _keys;
        // The last ACTIVE candidate decides the failure reason, as in ECS.
        private readonly int _lastActive = -1;
        private readonly string? _lastActiveStaticReason;
        private readonly int _lastActiveEligible = -1;
        private HashSet<int>?[]? _addedPorts;
        private List<(int Candidate, int GroupTasks)>? _counted;
        private int[]? _order;
        private int[]? _tied;

        public PlanState(PlacementRequest request)
        {
            _candidates = request.Candidates;
            var memberOf = new List<QueryExpression>();
            var distinct = false;
            foreach (var c in request.Constraints)
            {
                if (string.Equals(c.Type, "distinctInstance", StringComparison.OrdinalIgnoreCase))
                {
                    distinct = true;
                }
                else if (string.Equals(c.Type, "memberOf", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrWhiteSpace(c.Expression))
                {
                    memberOf.Add(QueryExpression.Parse(c.Expression));
                }
            }

            var group = request.Group;
            var hostCheck = request.HostCheck;
            // Only spread and distinctInstance read the group's tasks: binpack and random skip the lookup per candidate.
            var spreads = Spreads(request.Strategies, out var spreadsByAttribute);
            var countGroup = group is not null && (distinct || spreads);
            var n = _candidates.Count;
            int[]? sparse = null;
            if (countGroup && request.GroupTasks is { } given)
            {
                sparse = ArrayPool<int>.Shared.Rent(n);
                Array.Clear(sparse, 0, n);
                foreach (var (at, tasks) in given)
                {
                    sparse[at] = tasks;
                }
            }
            _index = ArrayPool<int>.Shared.Rent(n);
            _cpu = ArrayPool<int>.Shared.Rent(n);
            _memory = ArrayPool<long>.Shared.Rent(n);
            _tasks = ArrayPool<int>.Shared.Rent(n);
            for (var c = 0; c < n; c++)
            {
                var candidate = _candidates[c];
                if (candidate.Status != "ACTIVE")
                {
                    continue;
                }
                _lastActive = c;
                // The tasks of the request's group already there: what spread balances and distinctInstance avoids.
                var groupTasks = !countGroup ? candidate.TaskCount
                    : sparse is not null ? sparse[c]
                    : candidate.GroupCounts.Count == 0 ? 0 : candidate.GroupCounts.GetValueOrDefault(group!);
                _lastActiveStaticReason = !candidate.AgentConnected ? ReasonAgent
                    : hostCheck?.Invoke(candidate) is { } refused ? refused
                    : !MatchesAll(memberOf, candidate) ? ReasonMemberOf
                    : distinct && countGroup && groupTasks > 0 ? ReasonDistinctInstance
                    : null;
                if (_lastActiveStaticReason is not null)
                {
                    if (_lastActiveStaticReason == ReasonDistinctInstance && spreadsByAttribute)
                    {
                        // Never chosen, but its tasks still count for spread(attribute:X).
                        (_counted ??= []).Add((c, groupTasks));
                    }
                    continue;
                }
                _lastActiveEligible = _count;
                _index[_count] = c;
                _cpu[_count] = candidate.CpuAvailable;
                _memory[_count] = candidate.MemoryAvailable;
                _tasks[_count] = groupTasks;
                _count++;
            }
            if (sparse is not null)
            {
                ArrayPool<int>.Shared.Return(sparse);
            }
            // distinctInstance marks candidate entries, so ARNs are taken to be unique in a request.
            if (distinct)
            {
                _used = ArrayPool<bool>.Shared.Rent(_count);
                Array.Clear(_used, 0, _count);
            }
            _keys = KeysFor(request.Strategies);
        }

        public bool HasKeys => _keys.Length > 0;

        /// <summary>Whether a spread strategy applies (and whether one spreads by an attribute); nothing after random applies.</summary>
        private static bool Spreads(IReadOnlyList<PlacementStrategySpec> strategies, out bool byAttribute)
        {
            var spreads = false;
            byAttribute = false;
            foreach (var s in strategies)
            {
                if (string.Equals(s.Type, "spread", StringComparison.OrdinalIgnoreCase))
                {
                    spreads = true;
                    byAttribute |= !(s.Field is null || string.Equals(s.Field, "instanceId", StringComparison.OrdinalIgnoreCase) || s.Field == "host");
                }
                else if (string.Equals(s.Type, "random", StringComparison.OrdinalIgnoreCase))
                {
                    break;
                }
            }
            return spreads;
        }

        public string ArnOf(int e) => _candidates[_index[e]].Arn;

        /// <summary>
        /// The fitting instance with the smallest keys; ties go to a uniformly random one. The tied
        /// instances are noted in a pooled array and one random number picks among them at the end:
        /// spread over a group's tasks ties often (most instances run none of them), and a seeded
        /// Random costs far more per call than an array write.
        /// </summary>
        public int BestFit(in TaskNeed need, Random random)
        {
            var keyCount = _keys.Length;
            Span<long> best = keyCount <= 8 ? stackalloc long[keyCount] : new long[keyCount];
            var chosen = -1;
            var tied = _tied ??= ArrayPool<int>.Shared.Rent(Math.Max(1, _count));
            var ties = 0;
            ReadOnlySpan<int> cpu = _cpu.AsSpan(0, _count);
            ReadOnlySpan<long> memory = _memory.AsSpan(0, _count);
            var used = _used;
            var (needCpu, needMemory, ports) = (need.Cpu, need.Memory, need.Ports);
            for (var e = 0; e < cpu.Length; e++)
            {
                // Reject's checks, inlined (this loop is the hot path); only their order differs,
                // which matters for the reason reported, not for whether an instance fits.
                if (needCpu > cpu[e] || needMemory > memory[e] || (used is not null && used[e])
                    || (ports is not null && (need.PortsCollide || PortTaken(e, ports))))
                {
                    continue;
                }
                var order = chosen < 0 ? -1 : 0;
                for (var k = 0; k < keyCount; k++)
                {
                    var key = Key(k, e);
                    if (order == 0)
                    {
                        order = key.CompareTo(best[k]);
                        if (order > 0)
                        {
                            break;
                        }
                    }
                    best[k] = key; // only reached while equal so far or once smaller
                }
                if (order < 0)
                {
                    chosen = e;
                    tied[0] = e;
                    ties = 1;
                }
                else if (order == 0)
                {
                    tied[ties++] = e;
                }
            }
            return ties > 1 ? tied[random.Next(ties)] : chosen;
        }

        /// <summary>
        /// A uniformly random fitting instance: Fisher-Yates shuffles lazily, one step per
        /// instance looked at, and stops at the first that fits. The order array stays a
        /// permutation, so the next task shuffles on from it.
        /// </summary>
        public int FirstFitInRandomOrder(in TaskNeed need, Random random)
        {
            if (_order is null)
            {
                _order = ArrayPool<int>.Shared.Rent(_count);
                for (var e = 0; e < _count; e++)
                {
                    _order[e] = e;
                }
            }
            for (var j = 0; j < _count; j++)
            {
                var r = random.Next(j, _count);
                var e = _order[r];
                _order[r] = _order[j];
                _order[j] = e;
                if (Reject(e, in need) is null)
                {
                    return e;
                }
            }
            return -1;
        }

        public PlacementFailure Failure(int taskIndex, in TaskNeed need)
        {
            if (_lastActive < 0)
            {
                return new PlacementFailure(taskIndex, null, ReasonNoInstances);
            }
            var last = _candidates[_lastActive];
            // As ECS reports it: a disconnected agent first, then resources, then the constraints.
            var reason = _lastActiveStaticReason switch
            {
                null => Reject(_lastActiveEligible, in need) ?? throw new InvalidOperationException("No instance fitted, yet the last one does."),
                ReasonAgent => ReasonAgent,
                var constraint => ResourceReason(last.CpuAvailable, last.MemoryAvailable, last.UsedPorts, null, in need) ?? constraint,
            };
            return new PlacementFailure(taskIndex, last.Arn, reason);
        }

        public void Take(int e, in TaskNeed need)
        {
            _cpu[e] -= need.Cpu;
            _memory[e] -= need.Memory;
            _tasks[e]++;
            _used?[e] = true;
            if (need.Ports is { } ports)
            {
                // Copy-on-write: only instances that take a static port in this plan get a set.
                _addedPorts ??= ArrayPool<HashSet<int>?>.Shared.Rent(_count);
                var added = _addedPorts[e] ??= [];
                for (var p = 0; p < ports.Count; p++)
                {
                    added.Add(ports[p]);
                }
            }
            foreach (var key in _keys)
            {
                if (key.Kind == KeyKind.AttributeTasks)
                {
                    key.TasksPerValue![key.ValueOf![e]]++;
                }
            }
        }

        // The order of the checks decides the reason reported: resources first, then constraints, as ECS evaluates them.
        private string? Reject(int e, in TaskNeed need)
            => ResourceReason(_cpu[e], _memory[e], _candidates[_index[e]].UsedPorts, _addedPorts?[e], in need)
                ?? (_used is not null && _used[e] ? ReasonDistinctInstance : null);

        private static string? ResourceReason(int cpu, long memory, IReadOnlySet<int> usedPorts, HashSet<int>? addedPorts, in TaskNeed need)
        {
            if (need.Cpu > cpu)
            {
                return ReasonCpu;
            }
            if (need.Memory > memory)
            {
                return ReasonMemory;
            }
            if (need.Ports is { } ports && (need.PortsCollide || PortTaken(usedPorts, addedPorts, ports)))
            {
                return ReasonPorts;
            }
            return null;
        }

        private bool PortTaken(int e, IReadOnlyList<int> ports) => PortTaken(_candidates[_index[e]].UsedPorts, _addedPorts?[e], ports);

        private static bool PortTaken(IReadOnlySet<int> used, HashSet<int>? added, IReadOnlyList<int> ports)
        {
            for (var p = 0; p < ports.Count; p++)
            {
                if (used.Contains(ports[p]) || (added is not null && added.Contains(ports[p])))
                {
                    return true;
                }
            }
            return false;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private long Key(int k, int e)
        {
            ref readonly var key = ref _keys[k];
            return key.Kind switch
            {
                KeyKind.Cpu => _cpu[e],
                KeyKind.Memory => _memory[e],
                KeyKind.Tasks => _tasks[e],
                _ => key.TasksPerValue![key.ValueOf![e]],
            };
        }

        private StrategyKey[] KeysFor(IReadOnlyList<PlacementStrategySpec> strategies)
        {
            List<StrategyKey>? keys = null;
            foreach (var s in strategies)
            {
                StrategyKey key;
                if (string.Equals(s.Type, "binpack", StringComparison.OrdinalIgnoreCase))
                {
                    key = new(string.Equals(s.Field, "cpu", StringComparison.OrdinalIgnoreCase) ? KeyKind.Cpu : KeyKind.Memory, null, null);
                }
                else if (string.Equals(s.Type, "spread", StringComparison.OrdinalIgnoreCase))
                {
                    key = s.Field is null || string.Equals(s.Field, "instanceId", StringComparison.OrdinalIgnoreCase) || s.Field == "host"
                        ? new(KeyKind.Tasks, null, null)
                        : AttributeKey(s.Field.StartsWith("attribute:", StringComparison.OrdinalIgnoreCase) ? s.Field["attribute:".Length..] : s.Field);
                }
                else if (string.Equals(s.Type, "random", StringComparison.OrdinalIgnoreCase))
                {
                    // A random choice leaves no ties for later strategies to break: they never apply.
                    break;
                }
                else
                {
                    continue; // unknown types are refused before they get here (PlacementRules)
                }
                (keys ??= []).Add(key);
            }
            return keys?.ToArray() ?? [];
        }

        /// <summary>
        /// spread(attribute:X): each eligible instance's key is the number of tasks of the request's group on the
        /// eligible instances sharing its value of X (a missing attribute counts as ""),
        /// counted once here and kept up to date by <see cref="Take"/>.
        /// </summary>
        private StrategyKey AttributeKey(string name)
        {
            var valueOf = ArrayPool<int>.Shared.Rent(_count);
            var tasksPerValue = ArrayPool<long>.Shared.Rent(_count);
            var ids = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var e = 0; e < _count; e++)
            {
                var value = _candidates[_index[e]].Attributes.GetValueOrDefault(name) ?? "";
                if (!ids.TryGetValue(value, out var id))
                {
                    id = ids.Count;
                    ids.Add(value, id);
                    tasksPerValue[id] = 0;
                }
                valueOf[e] = id;
                tasksPerValue[id] += _tasks[e];
            }
            foreach (var (c, groupTasks) in _counted ?? [])
            {
                // Only values that some eligible instance has can ever be compared.
                if (ids.TryGetValue(_candidates[c].Attributes.GetValueOrDefault(name) ?? "", out var id))
                {
                    tasksPerValue[id] += groupTasks;
                }
            }
            return new(KeyKind.AttributeTasks, valueOf, tasksPerValue);
        }

        private static bool MatchesAll(List<QueryExpression> memberOf, InstanceCandidate candidate)
        {
            foreach (var q in memberOf)
            {
                if (!q.Matches(candidate))
                {
                    return false;
                }
            }
            return true;
        }

        public void Dispose()
        {
            ArrayPool<int>.Shared.Return(_index);
            ArrayPool<int>.Shared.Return(_cpu);
            ArrayPool<long>.Shared.Return(_memory);
            ArrayPool<int>.Shared.Return(_tasks);
            if (_used is not null)
            {
                ArrayPool<bool>.Shared.Return(_used);
            }
            if (_order is not null)
            {
                ArrayPool<int>.Shared.Return(_order);
            }
            if (_tied is not null)
            {
                ArrayPool<int>.Shared.Return(_tied);
            }
            if (_addedPorts is not null)
            {
                ArrayPool<HashSet<int>?>.Shared.Return(_addedPorts, clearArray: true);
            }
            foreach (var key in _keys)
            {
                if (key.Kind == KeyKind.AttributeTasks)
                {
                    ArrayPool<int>.Shared.Return(key.ValueOf!);
                    ArrayPool<long>.Shared.Return(key.TasksPerValue!);
                }
            }
        }
    }
}
