using Berth.Scheduling;

namespace Berth.Benchmarks.Scheduling;

/// <summary>
/// The baseline: Scheduler.Place as it was before the linear-scan rewrite (commit 887f641), copied
/// verbatim apart from its name. Pure placement: filters the candidates for each task in turn, orders the survivors by the
/// strategies, and subtracts what the chosen instance gives away before placing the next task,
/// so a plan never oversubscribes an instance. No I/O and no clock; randomness is injected.
/// </summary>
internal static class LegacyScheduler
{
    public const string ReasonAgent = "AGENT";
    public const string ReasonCpu = "RESOURCE:CPU";
    public const string ReasonMemory = "RESOURCE:MEMORY";
    public const string ReasonPorts = "RESOURCE:PORTS";
    public const string ReasonAttribute = "ATTRIBUTE";
    public const string ReasonDistinctInstance = "DistinctInstance";
    public const string ReasonNoInstances = "No Container Instances were found in your cluster.";

    public static PlacementPlan Place(PlacementRequest request, Random random)
    {
        // Working copies of what each instance has left; updated as tasks land.
        var left = request.Candidates
            .Where(c => c.Status == "ACTIVE")
            .Select(c => new Slot(c, c.CpuAvailable, c.MemoryAvailable, new HashSet<int>(c.UsedPorts), c.TaskCount))
            .ToList();
        var distinct = request.Constraints.Any(c => string.Equals(c.Type, "distinctInstance", StringComparison.OrdinalIgnoreCase));
        var memberOf = request.Constraints
            .Where(c => string.Equals(c.Type, "memberOf", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrWhiteSpace(c.Expression))
            .Select(c => QueryExpression.Parse(c.Expression!))
            .ToList();
        var usedThisRound = new HashSet<string>(StringComparer.Ordinal);
        var placements = new List<Placement>();
        var failures = new List<PlacementFailure>();

        for (var i = 0; i < request.Tasks.Count; i++)
        {
            var task = request.Tasks[i];
            string? lastArn = null;
            var lastReason = ReasonNoInstances;
            var fits = new List<Slot>();
            foreach (var slot in left)
            {
                var reason = Reject(slot, task, memberOf, distinct, usedThisRound);
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
                failures.Add(new PlacementFailure(i, lastArn, lastReason));
                continue;
            }
            var chosen = Choose(fits, request.Strategies, random);
            chosen.Cpu -= task.Cpu;
            chosen.Memory -= task.Memory;
            foreach (var p in task.StaticPorts)
            {
                chosen.Ports.Add(p);
            }
            chosen.Tasks++;
            usedThisRound.Add(chosen.Candidate.Arn);
            placements.Add(new Placement(i, chosen.Candidate.Arn));
        }
        return new PlacementPlan(placements, failures);
    }

    private static string? Reject(Slot slot, TaskReservation task, List<QueryExpression> memberOf, bool distinct, HashSet<string> used)
    {
        if (!slot.Candidate.AgentConnected)
        {
            return ReasonAgent;
        }
        if (memberOf.Any(q => !q.Matches(slot.Candidate)))
        {
            return ReasonAttribute;
        }
        if (distinct && used.Contains(slot.Candidate.Arn))
        {
            return ReasonDistinctInstance;
        }
        if (task.Cpu > slot.Cpu)
        {
            return ReasonCpu;
        }
        if (task.Memory > slot.Memory)
        {
            return ReasonMemory;
        }
        // Two containers of one task asking for the same host port can never fit either.
        if (task.StaticPorts.Any(slot.Ports.Contains) || task.StaticPorts.Distinct().Count() != task.StaticPorts.Count)
        {
            return ReasonPorts;
        }
        return null;
    }

    private static Slot Choose(List<Slot> fits, IReadOnlyList<PlacementStrategySpec> strategies, Random random)
    {
        // Shuffle first: it is the random strategy, and the tie-break for every other one.
        var order = fits.ToArray();
        random.Shuffle(order);
        IOrderedEnumerable<Slot>? sorted = null;
        foreach (var s in strategies)
        {
            Func<Slot, double>? key = s.Type.ToLowerInvariant() switch
            {
                "binpack" when string.Equals(s.Field, "cpu", StringComparison.OrdinalIgnoreCase) => x => x.Cpu,
                "binpack" => x => x.Memory,
                "spread" => SpreadKey(order, s.Field),
                _ => null, // random: the shuffle already did it
            };
            if (key is null)
            {
                continue;
            }
            sorted = sorted is null ? order.OrderBy(key) : sorted.ThenBy(key);
        }
        return sorted is null ? order[0] : sorted.First();
    }

    private static Func<Slot, double> SpreadKey(Slot[] slots, string? field)
    {
        if (field is null || string.Equals(field, "instanceId", StringComparison.OrdinalIgnoreCase) || field == "host")
        {
            return x => x.Tasks;
        }
        // spread(attribute:X): fewest tasks among instances sharing the same attribute value.
        var name = field.StartsWith("attribute:", StringComparison.OrdinalIgnoreCase) ? field["attribute:".Length..] : field;
        var perValue = slots
            .GroupBy(x => x.Candidate.Attributes.GetValueOrDefault(name) ?? "")
            .ToDictionary(g => g.Key, g => g.Sum(x => x.Tasks), StringComparer.Ordinal);
        return x => perValue[x.Candidate.Attributes.GetValueOrDefault(name) ?? ""];
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
