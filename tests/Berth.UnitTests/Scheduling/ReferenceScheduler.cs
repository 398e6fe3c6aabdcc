using Berth.Scheduling;

namespace Berth.UnitTests.Scheduling;

/// <summary>
/// The oracle for <see cref="Scheduler"/>: the algorithm as it was before the linear-scan rewrite
/// (filter every candidate, order all survivors by the strategies with LINQ), recomputed from
/// scratch for each task. Instead of shuffling and taking the first, it returns every candidate the
/// old shuffle-then-stable-sort could have taken, so a randomised plan can be checked step by step.
/// </summary>
/// <remarks>
/// Deliberate differences from the old code, each an ECS rule: spread(attribute:X) counts the tasks on
/// every instance that passes the request's filters (ACTIVE, agent connected, memberOf), not only on those
/// with room for this task, so a zone with a full instance does not look emptier than it is; spread and
/// distinctInstance count the tasks of the request's group (all live tasks when it has none); a failure
/// names resources before constraints; and strategies after a random one never apply.
/// </remarks>
internal sealed class ReferenceScheduler
{
    private readonly List<Slot> _slots;
    private readonly List<QueryExpression> _memberOf;
    private readonly bool _distinct;
    private readonly IReadOnlyList<PlacementStrategySpec> _strategies;
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);
    private readonly string? _group;

    public ReferenceScheduler(PlacementRequest request)
    {
        _slots = request.Candidates.Where(c => c.Status == "ACTIVE")
            .Select(c => new Slot(c, c.CpuAvailable, c.MemoryAvailable, new HashSet<int>(c.UsedPorts),
                request.Group is null ? c.TaskCount : c.GroupCounts.GetValueOrDefault(request.Group))).ToList();
        _group = request.Group;
        _distinct = request.Constraints.Any(c => string.Equals(c.Type, "distinctInstance", StringComparison.OrdinalIgnoreCase));
        _memberOf = request.Constraints
            .Where(c => string.Equals(c.Type, "memberOf", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrWhiteSpace(c.Expression))
            .Select(c => QueryExpression.Parse(c.Expression!)).ToList();
        _strategies = request.Strategies;
    }

    /// <summary>Either the ARNs the old algorithm could have chosen for <paramref name="task"/>, or its failure.</summary>
    public (IReadOnlySet<string>? Choices, PlacementFailure? Failure) Step(int taskIndex, TaskReservation task)
    {
        string? lastArn = null;
        var lastReason = Scheduler.ReasonNoInstances;
        var fits = new List<Slot>();
        foreach (var slot in _slots)
        {
            var reason = Reject(slot, task);
            if (reason is null)
            {
                fits.Add(slot);
            }
            else
            {
                lastArn = slot.Candidate.Arn;
                lastReason = reason;
            }
        }
        if (fits.Count == 0)
        {
            return (null, new PlacementFailure(taskIndex, lastArn, lastReason));
        }
        var keys = KeysOf(fits);
        var best = keys.Aggregate((a, b) => Compare(a.Keys, b.Keys) <= 0 ? a : b).Keys;
        return (keys.Where(k => Compare(k.Keys, best) == 0).Select(k => k.Slot.Candidate.Arn).ToHashSet(StringComparer.Ordinal), null);
    }

    public void Apply(string arn, TaskReservation task)
    {
        var slot = _slots.First(s => s.Candidate.Arn == arn);
        slot.Cpu -= task.Cpu;
        slot.Memory -= task.Memory;
        slot.Ports.UnionWith(task.StaticPorts);
        slot.Tasks++;
        _used.Add(arn);
    }

    private string? Reject(Slot slot, TaskReservation task)
    {
        if (!slot.Candidate.AgentConnected)
        {
            return Scheduler.ReasonAgent;
        }
        if (task.Cpu > slot.Cpu)
        {
            return Scheduler.ReasonCpu;
        }
        if (task.Memory > slot.Memory)
        {
            return Scheduler.ReasonMemory;
        }
        if (task.StaticPorts.Any(slot.Ports.Contains) || task.StaticPorts.Distinct().Count() != task.StaticPorts.Count)
        {
            return Scheduler.ReasonPorts;
        }
        if (_memberOf.Any(q => !q.Matches(slot.Candidate)))
        {
            return Scheduler.ReasonMemberOf;
        }
        if (_distinct && (_used.Contains(slot.Candidate.Arn) || (_group is not null && slot.Candidate.GroupCounts.GetValueOrDefault(_group) > 0)))
        {
            return Scheduler.ReasonDistinctInstance;
        }
        return null;
    }

    private List<(Slot Slot, double[] Keys)> KeysOf(List<Slot> fits)
    {
        var eligible = _slots.Where(s => s.Candidate.AgentConnected && _memberOf.All(q => q.Matches(s.Candidate))).ToList();
        var keyFunctions = new List<Func<Slot, double>>();
        foreach (var s in _strategies)
        {
            Func<Slot, double>? key = s.Type.ToLowerInvariant() switch
            {
                "binpack" when string.Equals(s.Field, "cpu", StringComparison.OrdinalIgnoreCase) => x => x.Cpu,
                "binpack" => x => x.Memory,
                "spread" => SpreadKey(eligible, s.Field),
                _ => null,
            };
            if (string.Equals(s.Type, "random", StringComparison.OrdinalIgnoreCase))
            {
                break;
            }
            if (key is not null)
            {
                keyFunctions.Add(key);
            }
        }
        return fits.Select(f => (f, keyFunctions.Select(k => k(f)).ToArray())).ToList();
    }

    private static Func<Slot, double> SpreadKey(List<Slot> slots, string? field)
    {
        if (field is null || string.Equals(field, "instanceId", StringComparison.OrdinalIgnoreCase) || field == "host")
        {
            return x => x.Tasks;
        }
        var name = field.StartsWith("attribute:", StringComparison.OrdinalIgnoreCase) ? field["attribute:".Length..] : field;
        var perValue = slots
            .GroupBy(x => x.Candidate.Attributes.GetValueOrDefault(name) ?? "")
            .ToDictionary(g => g.Key, g => g.Sum(x => x.Tasks), StringComparer.Ordinal);
        return x => perValue[x.Candidate.Attributes.GetValueOrDefault(name) ?? ""];
    }

    private static int Compare(double[] a, double[] b)
    {
        for (var i = 0; i < a.Length; i++)
        {
            var c = a[i].CompareTo(b[i]);
            if (c != 0)
            {
                return c;
            }
        }
        return 0;
    }

    private sealed class Slot(InstanceCandidate candidate, int cpu, long memory, HashSet<int> ports, int tasks)
    {
        public InstanceCandidate Candidate { get; } = candidate;
        public int Cpu { get; set; } = cpu;
        public long Memory { get; set; } = memory;
        public HashSet<int> Ports { get; } = ports;
        public int Tasks { get; set; } = tasks;
    }
}
