using Berth.Scheduling;

namespace Berth.UnitTests.Scheduling;

/// <summary>
/// Random clusters and requests from a seeded <see cref="Random"/> (thousands per test, well under a second
/// each), checked against rules written independently of the scheduler: every memberOf expression here comes
/// with a plain C# predicate saying what it means, so the query language is judged too, not just replayed.
/// </summary>
public sealed class PlacementPropertyTests
{
    private const int Iterations = 3000;
    private static readonly string[] Zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
    private static readonly string[] Types = ["t2.small", "t2.large", "m5.large"];
    private static readonly string[] Groups = ["service:web", "family:db", "service:api"];

    /// <summary>memberOf expressions beside what each means.</summary>
    private static readonly (string Expression, Func<InstanceCandidate, bool> Means)[] MemberOfPool =
    [
        ("attribute:ecs.instance-type =~ t2.*", c => c.Attributes["ecs.instance-type"].StartsWith("t2.", StringComparison.Ordinal)),
        ("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]", c => c.Attributes.GetValueOrDefault("ecs.availability-zone") is "us-east-1a" or "us-east-1b"),
        ("attribute:ecs.availability-zone !exists or attribute:ecs.availability-zone == us-east-1c", c => c.Attributes.GetValueOrDefault("ecs.availability-zone") is null or "us-east-1c"),
        ("task:group == service:web", c => c.GroupCounts.GetValueOrDefault("service:web") > 0),
        ("not(task:group == family:db)", c => c.GroupCounts.GetValueOrDefault("family:db") == 0),
        ("runningTasksCount < 3 && attribute:ecs.instance-type != m5.large", c => c.RunningTasksCount < 3 && c.Attributes["ecs.instance-type"] != "m5.large"),
        ("ec2InstanceId !in [i-0, i-1, i-2] || agentVersion >= 1.90.0", c => c.Ec2InstanceId is not ("i-0" or "i-1" or "i-2") || c.AgentVersion == "1.90.1"),
        ("registeredAt > 2026-01-10", c => c.RegisteredAt!.Value.Date > new DateTime(2026, 1, 10, 0, 0, 0, DateTimeKind.Utc)),
    ];

    private static readonly PlacementStrategySpec[][] StrategyPool =
    [
        [],
        [new("random", null)],
        [new("binpack", "cpu")],
        [new("binpack", "memory")],
        [new("spread", "instanceId")],
        [new("spread", "attribute:ecs.availability-zone")],
        [new("spread", "attribute:ecs.availability-zone"), new("binpack", "memory")],
        [new("binpack", "memory"), new("spread", "host")],
        [new("random", null), new("binpack", "memory")],
    ];

    private sealed record Case(PlacementRequest Request, List<Func<InstanceCandidate, bool>> MemberOf, bool Distinct, int Seed);

    private static InstanceCandidate RandomInstance(Random r, int i)
    {
        var groups = new Dictionary<string, int>();
        foreach (var g in Groups)
        {
            if (r.Next(3) == 0)
            {
                groups[g] = r.Next(1, 4);
            }
        }
        var attributes = new Dictionary<string, string> { ["ecs.instance-type"] = Types[r.Next(Types.Length)] };
        if (r.Next(8) != 0)
        {
            attributes["ecs.availability-zone"] = Zones[r.Next(Zones.Length)];
        }
        var ports = new HashSet<int> { 22, 2375, 2376, 51678, 51679 };
        if (r.Next(4) == 0)
        {
            ports.Add(8080 + r.Next(2));
        }
        return new InstanceCandidate
        {
            Arn = "arn:i" + i,
            Status = r.Next(10) == 0 ? "DRAINING" : "ACTIVE",
            AgentConnected = r.Next(10) != 0,
            CpuAvailable = r.Next(0, 4097),
            MemoryAvailable = r.Next(0, 8193),
            UsedPorts = ports,
            Attributes = attributes,
            GroupCounts = groups,
            TaskCount = groups.Values.Sum() + r.Next(3),
            RunningTasksCount = r.Next(5),
            Ec2InstanceId = "i-" + i,
            AgentVersion = r.Next(2) == 0 ? "1.90.1" : "1.2.0",
            RegisteredAt = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddHours(r.Next(24 * 20)),
        };
    }

    private static Case RandomCase(Random r)
    {
        var candidates = Enumerable.Range(0, r.Next(0, 25)).Select(i => RandomInstance(r, i)).ToList();
        var constraints = new List<PlacementConstraintSpec>();
        var memberOf = new List<Func<InstanceCandidate, bool>>();
        for (var k = r.Next(3); k > 0; k--)
        {
            var (expression, means) = MemberOfPool[r.Next(MemberOfPool.Length)];
            constraints.Add(new("memberOf", expression));
            memberOf.Add(means);
        }
        var distinct = r.Next(3) == 0;
        if (distinct)
        {
            constraints.Insert(r.Next(constraints.Count + 1), new("distinctInstance", null));
        }
        int[][] portChoices = [[], [], [8080], [8081], [8080, 8081]];
        var task = new TaskReservation(r.Next(0, 1025), r.Next(0, 2049), portChoices[r.Next(portChoices.Length)]);
        var request = new PlacementRequest
        {
            Candidates = candidates,
            Tasks = Enumerable.Repeat(task, r.Next(1, 11)).ToList(),
            Constraints = constraints,
            Strategies = StrategyPool[r.Next(StrategyPool.Length)],
            Group = Groups[r.Next(Groups.Length)],
        };
        return new Case(request, memberOf, distinct, r.Next());
    }

    [Fact]
    public void Place_RandomClusters_NeverOversubscribesAndAlwaysHonoursConstraints()
    {
        var r = new Random(20261127);
        var placedSomewhere = 0;
        for (var n = 0; n < Iterations; n++)
        {
            var (request, memberOf, distinct, seed) = RandomCase(r);
            var plan = Scheduler.Place(request, new Random(seed));
            Assert.Equal(Enumerable.Range(0, request.Tasks.Count), plan.Placements.Select(p => p.TaskIndex).Concat(plan.Failures.Select(f => f.TaskIndex)).Order());
            var byArn = request.Candidates.ToDictionary(c => c.Arn);
            foreach (var onOne in plan.Placements.GroupBy(p => p.InstanceArn))
            {
                var c = byArn[onOne.Key];
                var mine = onOne.Select(p => request.Tasks[p.TaskIndex]).ToList();
                var ports = mine.SelectMany(t => t.StaticPorts).ToList();
                Assert.Equal("ACTIVE", c.Status);
                Assert.True(c.AgentConnected);
                Assert.True(mine.Sum(t => t.Cpu) <= c.CpuAvailable, $"case {n}: cpu oversubscribed on {c.Arn}");
                Assert.True(mine.Sum(t => t.Memory) <= c.MemoryAvailable, $"case {n}: memory oversubscribed on {c.Arn}");
                Assert.Equal(ports.Count, ports.Distinct().Count());
                Assert.DoesNotContain(ports, c.UsedPorts.Contains);
                Assert.All(memberOf, means => Assert.True(means(c), $"case {n}: {c.Arn} breaks a memberOf constraint"));
                if (distinct)
                {
                    // One task of the group per instance: this plan's, and none already there.
                    Assert.Single(mine);
                    Assert.Equal(0, c.GroupCounts.GetValueOrDefault(request.Group!));
                }
                placedSomewhere++;
            }
            // The control plane's per-group index (GroupTasks) gives the very same plan as each candidate's GroupCounts.
            var indexed = request with
            {
                GroupTasks = request.Candidates.Select((c, i) => new KeyValuePair<int, int>(i, c.GroupCounts.GetValueOrDefault(request.Group!)))
                    .Where(kv => kv.Value > 0).Reverse().ToList(),
            };
            var again = Scheduler.Place(indexed, new Random(seed));
            Assert.Equal(plan.Placements, again.Placements);
            Assert.Equal(plan.Failures, again.Failures);
        }
        Assert.True(placedSomewhere > Iterations / 2, $"only {placedSomewhere} instances took tasks: the generator is too harsh to test much");
    }

    [Fact]
    public void Place_RandomClusters_EveryFailureNamesAnEcsReasonAndTheLastActiveInstance()
    {
        var r = new Random(7);
        string[] reasons = [Scheduler.ReasonAgent, Scheduler.ReasonCpu, Scheduler.ReasonMemory, Scheduler.ReasonPorts, Scheduler.ReasonMemberOf, Scheduler.ReasonDistinctInstance];
        var seen = new HashSet<string>();
        for (var n = 0; n < Iterations; n++)
        {
            var (request, _, _, seed) = RandomCase(r);
            var plan = Scheduler.Place(request, new Random(seed));
            var lastActive = request.Candidates.LastOrDefault(c => c.Status == "ACTIVE");
            foreach (var f in plan.Failures)
            {
                if (lastActive is null)
                {
                    Assert.Equal(new PlacementFailure(f.TaskIndex, null, Scheduler.ReasonNoInstances), f);
                    continue;
                }
                Assert.Equal(lastActive.Arn, f.InstanceArn);
                Assert.Contains(f.Reason, reasons);
                seen.Add(f.Reason);
            }
        }
        Assert.Equal(reasons.Order(), seen.Order());
    }

    [Fact]
    public void Place_Binpack_EachTaskGoesToAFittingInstanceWithTheLeastLeft()
    {
        var r = new Random(11);
        for (var n = 0; n < Iterations; n++)
        {
            var (request, memberOf, distinct, seed) = RandomCase(r);
            var field = r.Next(2) == 0 ? "cpu" : "memory";
            request = request with { Strategies = [new("binpack", field), new("spread", "instanceId")] };
            var plan = Scheduler.Place(request, new Random(seed));
            var cpu = request.Candidates.ToDictionary(c => c.Arn, c => (long)c.CpuAvailable);
            var memory = request.Candidates.ToDictionary(c => c.Arn, c => c.MemoryAvailable);
            var ports = request.Candidates.ToDictionary(c => c.Arn, c => new HashSet<int>(c.UsedPorts));
            var used = new HashSet<string>();
            foreach (var p in plan.Placements.OrderBy(p => p.TaskIndex))
            {
                var task = request.Tasks[p.TaskIndex];
                var fitting = request.Candidates.Where(c => c.Status == "ACTIVE" && c.AgentConnected && memberOf.All(m => m(c))
                    && (!distinct || (!used.Contains(c.Arn) && c.GroupCounts.GetValueOrDefault(request.Group!) == 0))
                    && cpu[c.Arn] >= task.Cpu && memory[c.Arn] >= task.Memory && !task.StaticPorts.Any(ports[c.Arn].Contains)).ToList();
                var left = field == "cpu" ? cpu : memory;
                Assert.Equal(fitting.Min(c => left[c.Arn]), left[p.InstanceArn]);
                cpu[p.InstanceArn] -= task.Cpu;
                memory[p.InstanceArn] -= task.Memory;
                ports[p.InstanceArn].UnionWith(task.StaticPorts);
                used.Add(p.InstanceArn);
            }
        }
    }

    [Theory]
    [InlineData("instanceId")]
    [InlineData("attribute:ecs.availability-zone")]
    public void Place_SpreadWithRoom_KeepsTheGroupLevelWithinOne(string field)
    {
        // Instances with room for everything, each already running 0..5 tasks of the group and some of others.
        // Water-filling: whatever received a task ends at most one above the emptiest value, and once the
        // plan is long enough to level the field, max - min <= 1 across every value.
        var r = new Random(field.Length);
        for (var n = 0; n < Iterations; n++)
        {
            var count = r.Next(1, 20);
            var candidates = Enumerable.Range(0, count).Select(i => new InstanceCandidate
            {
                Arn = "i" + i,
                CpuAvailable = 1_000_000,
                MemoryAvailable = 1_000_000,
                Attributes = new Dictionary<string, string> { ["ecs.availability-zone"] = Zones[i % Zones.Length] },
                GroupCounts = new Dictionary<string, int> { ["service:web"] = r.Next(0, 6), ["service:other"] = r.Next(0, 20) },
            }).ToList();
            var tasks = r.Next(1, 60);
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = candidates,
                Tasks = Enumerable.Repeat(new TaskReservation(1, 1, []), tasks).ToList(),
                Strategies = [new("spread", field)],
                Group = "service:web",
            }, new Random(r.Next()));
            Assert.Empty(plan.Failures);
            Func<InstanceCandidate, string> valueOf = field == "instanceId" ? c => c.Arn : c => c.Attributes["ecs.availability-zone"];
            var before = candidates.GroupBy(valueOf).ToDictionary(g => g.Key, g => g.Sum(c => c.GroupCounts["service:web"]));
            var added = plan.Placements.GroupBy(p => valueOf(candidates.First(c => c.Arn == p.InstanceArn))).ToDictionary(g => g.Key, g => g.Count());
            var after = before.ToDictionary(kv => kv.Key, kv => kv.Value + added.GetValueOrDefault(kv.Key));
            var min = after.Values.Min();
            Assert.All(added.Keys, v => Assert.True(after[v] <= min + 1, $"case {n}: {v} ends at {after[v]}, the emptiest at {min}"));
            if (tasks >= before.Values.Sum(b => before.Values.Max() - b))
            {
                Assert.True(after.Values.Max() - min <= 1, $"case {n}: {string.Join(",", after.Values)}");
            }
        }
    }

    [Fact]
    public void Place_RandomFirst_LaterStrategiesNeverApply()
    {
        // [random, binpack(memory)]: the tight instance would always win a binpack; after random it wins about half.
        var candidates = new[]
        {
            new InstanceCandidate { Arn = "tight", CpuAvailable = 100, MemoryAvailable = 100 },
            new InstanceCandidate { Arn = "roomy", CpuAvailable = 100, MemoryAvailable = 10_000 },
        };
        var random = new Random(5);
        var tight = 0;
        for (var n = 0; n < 2000; n++)
        {
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = candidates,
                Tasks = [new TaskReservation(1, 1, [])],
                Strategies = [new("random", null), new("binpack", "memory")],
            }, random);
            tight += plan.Placements[0].InstanceArn == "tight" ? 1 : 0;
        }
        Assert.InRange(tight, 850, 1150);
    }
}
