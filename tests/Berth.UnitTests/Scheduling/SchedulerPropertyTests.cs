using Berth.Scheduling;
using FsCheck;
using FsCheck.Fluent;

namespace Berth.UnitTests.Scheduling;

/// <summary>Randomised requests against <see cref="ReferenceScheduler"/> and the plan's invariants.</summary>
public sealed class SchedulerPropertyTests
{
    private static readonly PlacementStrategySpec[] StrategyPool =
    [
        new("random", null),
        new("binpack", "cpu"),
        new("binpack", "memory"),
        new("BINPACK", "MEMORY"),
        new("spread", "instanceId"),
        new("spread", "host"),
        new("spread", null),
        new("spread", "attribute:zone"),
        new("spread", "zone"),
    ];

    private static readonly PlacementConstraintSpec[][] ConstraintPool =
    [
        [],
        [new("distinctInstance", null)],
        [new("memberOf", "attribute:type == large")],
        [new("memberOf", "attribute:zone != a")],
        [new("distinctInstance", null), new("memberOf", "attribute:zone exists")],
        [new("memberOf", "task:group == g")],
        [new("memberOf", "not(task:group == g) and attribute:zone in [a, b]")],
        [new("memberOf", "attribute:type =~ l.* || runningTasksCount < 2")],
        [new("distinctInstance", null), new("memberOf", "ec2InstanceId != i-3 && agentConnected == true")],
    ];

    private static readonly int[][] PortPool = [[], [], [8080], [8081], [8080, 8081], [8080, 8080]];

    private static Gen<InstanceCandidate> CandidateGen(int i) =>
        from cpu in Gen.Choose(0, 4096)
        from memory in Gen.Choose(0, 8192)
        from connected in Gen.Elements(true, true, true, false)
        from status in Gen.Elements("ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "DRAINING")
        from zone in Gen.Elements("a", "b", "c", null)
        from type in Gen.Elements("small", "large")
        from tasks in Gen.Choose(0, 6)
        from port in Gen.Elements(0, 0, 8080, 8081)
        from g in Gen.Choose(0, 2)
        from h in Gen.Choose(0, 2)
        from running in Gen.Choose(0, 4)
        select new InstanceCandidate
        {
            Arn = "i" + i,
            CpuAvailable = cpu,
            MemoryAvailable = memory,
            AgentConnected = connected,
            Status = status,
            TaskCount = tasks + g + h,
            GroupCounts = new Dictionary<string, int> { ["g"] = g, ["h"] = h }.Where(kv => kv.Value > 0).ToDictionary(),
            RunningTasksCount = running,
            Ec2InstanceId = "i-" + i,
            UsedPorts = port == 0 ? new HashSet<int> { 22 } : new HashSet<int> { 22, port },
            Attributes = zone is null ? new Dictionary<string, string> { ["type"] = type } : new Dictionary<string, string> { ["zone"] = zone, ["type"] = type },
        };

    private static readonly Gen<TaskReservation> TaskGen =
        from cpu in Gen.Choose(0, 1024)
        from memory in Gen.Choose(0, 2048)
        from ports in Gen.Elements(PortPool)
        select new TaskReservation(cpu, memory, ports);

    private static readonly Gen<PlacementRequest> RequestGen =
        from n in Gen.Choose(0, 20)
        from candidates in Gen.CollectToArray(Enumerable.Range(0, n), CandidateGen)
        // RunTask repeats one reservation object; StartTask-like callers may pass different ones.
        from repeated in Gen.Elements(true, false)
        from one in TaskGen
        from count in Gen.Choose(1, 12)
        from several in TaskGen.ListOf(count)
        from constraints in Gen.Elements(ConstraintPool)
        from strategyCount in Gen.Choose(0, 3)
        from strategies in Gen.Elements(StrategyPool).ListOf(strategyCount)
        from grouped in Gen.Elements<string?>(null, "g", "h")
        select new PlacementRequest
        {
            Group = grouped,
            Candidates = candidates.ToList(),
            Tasks = repeated ? Enumerable.Repeat(one, count).ToList() : several.ToList(),
            Constraints = constraints,
            Strategies = strategies.ToList(),
        };

    private static readonly Config Runs = Config.QuickThrowOnFailure.WithMaxTest(500);

    [Fact]
    public void Place_AnyRequest_EveryStepIsOneTheReferenceCouldHaveTaken()
    {
        Prop.ForAll(RequestGen.ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (request, seed) =>
        {
            var plan = Scheduler.Place(request, new Random(seed));
            var reference = new ReferenceScheduler(request);
            var placed = plan.Placements.ToDictionary(p => p.TaskIndex, p => p.InstanceArn);
            var failed = plan.Failures.ToDictionary(f => f.TaskIndex);
            Assert.Equal(request.Tasks.Count, placed.Count + failed.Count);
            for (var i = 0; i < request.Tasks.Count; i++)
            {
                var (choices, failure) = reference.Step(i, request.Tasks[i]);
                if (failure is not null)
                {
                    Assert.Equal(failure, Assert.Contains(i, failed));
                    continue;
                }
                var arn = Assert.Contains(i, placed);
                Assert.Contains(arn, choices!);
                reference.Apply(arn, request.Tasks[i]);
            }
        }).Check(Runs);
    }

    [Fact]
    public void Place_AnyRequest_NeverOversubscribesNorReusesADistinctInstance()
    {
        Prop.ForAll(RequestGen.ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (request, seed) =>
        {
            var plan = Scheduler.Place(request, new Random(seed));
            var byArn = request.Candidates.ToDictionary(c => c.Arn);
            foreach (var group in plan.Placements.GroupBy(p => p.InstanceArn))
            {
                var c = byArn[group.Key];
                var mine = group.Select(p => request.Tasks[p.TaskIndex]).ToList();
                var ports = mine.SelectMany(r => r.StaticPorts).ToList();
                Assert.Equal("ACTIVE", c.Status);
                Assert.True(c.AgentConnected);
                Assert.True(mine.Sum(r => r.Cpu) <= c.CpuAvailable, "cpu oversubscribed");
                Assert.True(mine.Sum(r => r.Memory) <= c.MemoryAvailable, "memory oversubscribed");
                Assert.Equal(ports.Count, ports.Distinct().Count());
                Assert.DoesNotContain(ports, c.UsedPorts.Contains);
                if (request.Constraints.Any(x => x.Type == "distinctInstance"))
                {
                    Assert.Single(mine);
                }
            }
        }).Check(Runs);
    }

    [Fact]
    public void Place_Binpack_TakesAnInstanceWithTheLeastLeftAmongThoseThatFit()
    {
        Prop.ForAll(RequestGen.ToArbitrary(), Gen.Elements("cpu", "memory").ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (request, field, seed) =>
        {
            request = request with { Constraints = [], Strategies = [new("binpack", field)] };
            var plan = Scheduler.Place(request, new Random(seed));
            // Replay by hand: what each instance has left before each task.
            var cpu = request.Candidates.ToDictionary(c => c.Arn, c => (long)c.CpuAvailable);
            var memory = request.Candidates.ToDictionary(c => c.Arn, c => c.MemoryAvailable);
            var ports = request.Candidates.ToDictionary(c => c.Arn, c => new HashSet<int>(c.UsedPorts));
            foreach (var p in plan.Placements.OrderBy(p => p.TaskIndex))
            {
                var task = request.Tasks[p.TaskIndex];
                var fitting = request.Candidates
                    .Where(c => c.Status == "ACTIVE" && c.AgentConnected && cpu[c.Arn] >= task.Cpu && memory[c.Arn] >= task.Memory
                        && !task.StaticPorts.Any(ports[c.Arn].Contains))
                    .ToList();
                var left = field == "cpu" ? cpu : memory;
                Assert.Equal(fitting.Min(c => left[c.Arn]), left[p.InstanceArn]);
                cpu[p.InstanceArn] -= task.Cpu;
                memory[p.InstanceArn] -= task.Memory;
                ports[p.InstanceArn].UnionWith(task.StaticPorts);
            }
        }).Check(Runs);
    }

    [Fact]
    public void Place_SpreadInstanceId_KeepsTaskCountsWithinOne()
    {
        Prop.ForAll(Gen.Choose(1, 30).ToArbitrary(), Gen.Choose(1, 100).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (instances, tasks, seed) =>
        {
            var candidates = Enumerable.Range(0, instances).Select(i => Roomy("i" + i, "z" + (i % 3))).ToList();
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = candidates,
                Tasks = Enumerable.Repeat(new TaskReservation(1, 1, []), tasks).ToList(),
                Strategies = [new("spread", "instanceId")],
            }, new Random(seed));
            var counts = candidates.Select(c => plan.Placements.Count(p => p.InstanceArn == c.Arn)).ToList();
            Assert.True(counts.Max() - counts.Min() <= 1, string.Join(",", counts));
        }).Check(Runs);
    }

    [Fact]
    public void Place_SpreadZoneThenInstance_BalancesZonesThenInstancesWithinEach()
    {
        Prop.ForAll(Gen.Choose(3, 30).ToArbitrary(), Gen.Choose(1, 100).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (instances, tasks, seed) =>
        {
            var candidates = Enumerable.Range(0, instances).Select(i => Roomy("i" + i, "z" + (i % 3))).ToList();
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = candidates,
                Tasks = Enumerable.Repeat(new TaskReservation(1, 1, []), tasks).ToList(),
                Strategies = [new("spread", "attribute:zone"), new("spread", "instanceId")],
            }, new Random(seed));
            var zoneOf = candidates.ToDictionary(c => c.Arn, c => c.Attributes["zone"]);
            var perZone = plan.Placements.GroupBy(p => zoneOf[p.InstanceArn]).Select(g => g.Count()).ToList();
            Assert.Equal(Math.Min(3, tasks), perZone.Count);
            Assert.True(perZone.Max() - perZone.Min() <= 1, string.Join(",", perZone));
            foreach (var zone in candidates.GroupBy(c => zoneOf[c.Arn]))
            {
                var counts = zone.Select(c => plan.Placements.Count(p => p.InstanceArn == c.Arn)).ToList();
                Assert.True(counts.Max() - counts.Min() <= 1, zone.Key + ": " + string.Join(",", counts));
            }
        }).Check(Runs);
    }

    [Theory]
    [InlineData("random")]
    [InlineData("binpack")]
    public void Place_TiesAndRandom_ChooseUniformlyAmongTheFitting(string strategy)
    {
        // Ten instances; 3 and 7 are full, the rest tie (same memory left). 8,000 single-task plans.
        var candidates = Enumerable.Range(0, 10).Select(i => Roomy("i" + i, "z") with { MemoryAvailable = i is 3 or 7 ? 10 : 1000 }).ToList();
        var random = new Random(7);
        var counts = new Dictionary<string, int>();
        for (var run = 0; run < 8000; run++)
        {
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = candidates,
                Tasks = [new TaskReservation(1, 100, [])],
                Strategies = [new(strategy, "memory")],
            }, random);
            var arn = Assert.Single(plan.Placements).InstanceArn;
            counts[arn] = counts.GetValueOrDefault(arn) + 1;
        }
        Assert.Equal(8, counts.Count);
        Assert.DoesNotContain("i3", counts.Keys);
        // Expected 1,000 each; the standard deviation is about 30.
        Assert.All(counts.Values, c => Assert.InRange(c, 880, 1120));
    }

    [Fact]
    public void Place_NothingFits_ReportsTheLastActiveCandidatesReason()
    {
        var candidates = new[]
        {
            Roomy("cpu-short", "z") with { CpuAvailable = 1 },
            Roomy("memberOf-miss", "z") with { Attributes = new Dictionary<string, string> { ["zone"] = "other" } },
            Roomy("draining", "z") with { Status = "DRAINING" },
        };
        var plan = Scheduler.Place(new PlacementRequest
        {
            Candidates = candidates,
            Tasks = [new TaskReservation(10, 10, [])],
            Constraints = [new("memberOf", "attribute:zone == z")],
            Strategies = [new("binpack", "memory")],
        }, new Random(1));
        Assert.Equal(new PlacementFailure(0, "memberOf-miss", Scheduler.ReasonMemberOf), Assert.Single(plan.Failures));
    }

    [Fact]
    public void Place_StaticPortTakenEarlierInThePlan_OnlyThatInstanceIsRefused()
    {
        // The port a task takes is recorded for its instance only; the candidate's own set is never written.
        var a = Roomy("a", "z");
        var b = Roomy("b", "z");
        var plan = Scheduler.Place(new PlacementRequest
        {
            Candidates = [a, b],
            Tasks = Enumerable.Repeat(new TaskReservation(1, 1, [8080]), 3).ToList(),
        }, new Random(3));
        Assert.Equal(["a", "b"], plan.Placements.Select(p => p.InstanceArn).Order().ToArray());
        Assert.Equal(new PlacementFailure(2, "b", Scheduler.ReasonPorts), Assert.Single(plan.Failures));
        Assert.DoesNotContain(8080, a.UsedPorts);
        Assert.DoesNotContain(8080, b.UsedPorts);
    }

    private static InstanceCandidate Roomy(string arn, string zone) => new()
    {
        Arn = arn,
        CpuAvailable = 100_000,
        MemoryAvailable = 100_000,
        UsedPorts = new HashSet<int> { 22 },
        Attributes = new Dictionary<string, string> { ["zone"] = zone },
    };
}
