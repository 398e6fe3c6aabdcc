using Berth.Scheduling;
using FsCheck;
using FsCheck.Fluent;

namespace Berth.UnitTests.Scheduling;

public sealed class SchedulerTests
{
    private static InstanceCandidate Instance(string arn, int cpu = 1024, long memory = 2048, bool connected = true, string status = "ACTIVE", Dictionary<string, string>? attributes = null)
        => new()
        {
            Arn = arn,
            CpuAvailable = cpu,
            MemoryAvailable = memory,
            AgentConnected = connected,
            Status = status,
            UsedPorts = new HashSet<int> { 22, 2375 },
            Attributes = attributes ?? [],
        };

    private static PlacementPlan Place(IReadOnlyList<InstanceCandidate> candidates, int count, TaskReservation task,
        IReadOnlyList<PlacementConstraintSpec>? constraints = null, IReadOnlyList<PlacementStrategySpec>? strategies = null)
        => Scheduler.Place(new PlacementRequest
        {
            Candidates = candidates,
            Tasks = Enumerable.Repeat(task, count).ToList(),
            Constraints = constraints ?? [],
            Strategies = strategies ?? [],
        }, new Random(42));

    [Fact]
    public void Place_MoreTasksThanMemory_FailsTheRestWithResourceMemory()
    {
        var plan = Place([Instance("i1", memory: 1000)], 3, new TaskReservation(10, 400, []));

        Assert.Equal(2, plan.Placements.Count);
        var f = Assert.Single(plan.Failures);
        Assert.Equal(2, f.TaskIndex);
        Assert.Equal("i1", f.InstanceArn);
        Assert.Equal(Scheduler.ReasonMemory, f.Reason);
    }

    [Fact]
    public void Place_NotEnoughCpu_FailsWithResourceCpu()
    {
        var plan = Place([Instance("i1", cpu: 100)], 1, new TaskReservation(200, 10, []));
        Assert.Equal(Scheduler.ReasonCpu, Assert.Single(plan.Failures).Reason);
    }

    [Fact]
    public void Place_SameStaticPortTwice_SecondFailsWithResourcePorts()
    {
        var plan = Place([Instance("i1")], 2, new TaskReservation(10, 10, [8080]));
        Assert.Single(plan.Placements);
        Assert.Equal(Scheduler.ReasonPorts, Assert.Single(plan.Failures).Reason);
    }

    [Fact]
    public void Place_ReservedPort_FailsWithResourcePorts()
    {
        var plan = Place([Instance("i1")], 1, new TaskReservation(10, 10, [22]));
        Assert.Equal(Scheduler.ReasonPorts, Assert.Single(plan.Failures).Reason);
    }

    [Fact]
    public void Place_DisconnectedAgent_FailsWithAgent()
    {
        var plan = Place([Instance("i1", connected: false)], 1, new TaskReservation(10, 10, []));
        Assert.Equal(Scheduler.ReasonAgent, Assert.Single(plan.Failures).Reason);
    }

    [Fact]
    public void Place_DrainingInstance_IsNeverChosen()
    {
        var plan = Place([Instance("draining", status: "DRAINING"), Instance("ok")], 3, new TaskReservation(10, 10, []));
        Assert.All(plan.Placements, p => Assert.Equal("ok", p.InstanceArn));
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void Place_DistinctInstance_UsesEachInstanceOnce()
    {
        var plan = Place([Instance("a"), Instance("b")], 3, new TaskReservation(10, 10, []), [new("distinctInstance", null)]);
        Assert.Equal(["a", "b"], plan.Placements.Select(p => p.InstanceArn).Order().ToArray());
        Assert.Equal(Scheduler.ReasonDistinctInstance, Assert.Single(plan.Failures).Reason);
    }

    [Fact]
    public void Place_DistinctInstance_AvoidsInstancesAlreadyRunningTheGroup()
    {
        var busy = Instance("busy") with { GroupCounts = new Dictionary<string, int> { ["service:web"] = 1 }, TaskCount = 1 };
        var other = Instance("other") with { GroupCounts = new Dictionary<string, int> { ["service:db"] = 3 }, TaskCount = 3 };
        var plan = Scheduler.Place(new PlacementRequest
        {
            Candidates = [busy, other],
            Tasks = Enumerable.Repeat(new TaskReservation(10, 10, []), 2).ToList(),
            Constraints = [new("distinctInstance", null)],
            Group = "service:web",
        }, new Random(1));
        Assert.Equal("other", Assert.Single(plan.Placements).InstanceArn);
        Assert.Equal(new PlacementFailure(1, "other", Scheduler.ReasonDistinctInstance), Assert.Single(plan.Failures));
    }

    [Fact]
    public void Place_SpreadInstanceId_CountsOnlyTheTasksOfTheRequestsGroup()
    {
        // "a" runs many tasks of another group and none of ours; "b" runs one of ours: spread picks "a".
        var a = Instance("a") with { GroupCounts = new Dictionary<string, int> { ["family:other"] = 9 }, TaskCount = 9 };
        var b = Instance("b") with { GroupCounts = new Dictionary<string, int> { ["family:web"] = 1 }, TaskCount = 1 };
        var plan = Scheduler.Place(new PlacementRequest
        {
            Candidates = [a, b],
            Tasks = [new TaskReservation(10, 10, [])],
            Strategies = [new("spread", "instanceId")],
            Group = "family:web",
        }, new Random(1));
        Assert.Equal("a", Assert.Single(plan.Placements).InstanceArn);
    }

    [Fact]
    public void Place_ShortOfMemoryAndOutsideMemberOf_ReportsTheResourceFirst()
    {
        // ECS checks resources before constraints, so the resource is what it reports.
        var plan = Place([Instance("i1", memory: 5, attributes: new() { ["zone"] = "b" })], 1, new TaskReservation(1, 10, []), [new("memberOf", "attribute:zone == a")]);
        Assert.Equal(new PlacementFailure(0, "i1", Scheduler.ReasonMemory), Assert.Single(plan.Failures));
        var roomy = Place([Instance("i1", attributes: new() { ["zone"] = "b" })], 1, new TaskReservation(1, 10, []), [new("memberOf", "attribute:zone == a")]);
        Assert.Equal(new PlacementFailure(0, "i1", "MemberOf placement constraint unsatisfied"), Assert.Single(roomy.Failures));
    }

    [Fact]
    public void Place_MemberOf_OnlyMatchingInstances()
    {
        var candidates = new[]
        {
            Instance("small", attributes: new() { ["ecs.instance-type"] = "t2.small" }),
            Instance("large", attributes: new() { ["ecs.instance-type"] = "m5.large" }),
        };
        var plan = Place(candidates, 4, new TaskReservation(10, 10, []), [new("memberOf", "attribute:ecs.instance-type == m5.large")]);
        Assert.All(plan.Placements, p => Assert.Equal("large", p.InstanceArn));

        var notPlan = Place(candidates, 4, new TaskReservation(10, 10, []), [new("memberOf", "attribute:ecs.instance-type != m5.large")]);
        Assert.All(notPlan.Placements, p => Assert.Equal("small", p.InstanceArn));
    }

    [Fact]
    public void Place_Binpack_FillsTheFullestInstanceFirst()
    {
        var plan = Place([Instance("roomy", memory: 4000), Instance("tight", memory: 1000)], 2, new TaskReservation(10, 400, []), strategies: [new("binpack", "memory")]);
        Assert.All(plan.Placements, p => Assert.Equal("tight", p.InstanceArn));
    }

    [Fact]
    public void Place_Spread_AlternatesInstances()
    {
        var plan = Place([Instance("a"), Instance("b")], 4, new TaskReservation(10, 10, []), strategies: [new("spread", "instanceId")]);
        Assert.Equal(2, plan.Placements.Count(p => p.InstanceArn == "a"));
        Assert.Equal(2, plan.Placements.Count(p => p.InstanceArn == "b"));
    }

    [Fact]
    public void Place_NoCandidates_FailsWithNoInstances()
    {
        var plan = Place([], 1, new TaskReservation(10, 10, []));
        var f = Assert.Single(plan.Failures);
        Assert.Null(f.InstanceArn);
    }

    [Fact]
    public void Place_AnyInstancesAndTasks_NeverOversubscribes()
    {
        var instanceGen =
            from cpu in Gen.Choose(0, 4096)
            from memory in Gen.Choose(0, 8192)
            from connected in Gen.Elements(true, true, false)
            select (Cpu: cpu, Memory: memory, Connected: connected);
        var taskGen =
            from cpu in Gen.Choose(0, 2048)
            from memory in Gen.Choose(0, 4096)
            from port in Gen.Choose(0, 3)
            select (Cpu: cpu, Memory: memory, Port: port);
        var gen =
            from instances in instanceGen.ListOf()
            from tasks in taskGen.NonEmptyListOf()
            from strategy in Gen.Elements("random", "spread", "binpack")
            from seed in Gen.Choose(0, 1000)
            select new PropertyInput(instances.ToList(), tasks.ToList(), strategy, seed);

        Prop.ForAll(gen.ToArbitrary(), input =>
        {
            var (instances, tasks, strategy, seed) = input;
            var candidates = instances.Select((x, i) => Instance("i" + i, x.Cpu, x.Memory, x.Connected)).ToList();
            // Ports 8080..8082 or none: collisions are likely with few choices.
            var reservations = tasks.Select(t => new TaskReservation(t.Cpu, t.Memory, t.Port == 0 ? [] : [8079 + t.Port])).ToList();
            var plan = Scheduler.Place(new PlacementRequest
            {
                Candidates = candidates,
                Tasks = reservations,
                Strategies = [new PlacementStrategySpec(strategy, strategy == "binpack" ? "memory" : "instanceId")],
            }, new Random(seed));

            var everyTaskAccountedOnce = plan.Placements.Select(p => p.TaskIndex).Concat(plan.Failures.Select(f => f.TaskIndex)).Order()
                .SequenceEqual(Enumerable.Range(0, reservations.Count));
            var fits = candidates.All(c =>
            {
                var mine = plan.Placements.Where(p => p.InstanceArn == c.Arn).Select(p => reservations[p.TaskIndex]).ToList();
                var ports = mine.SelectMany(r => r.StaticPorts).ToList();
                return mine.Sum(r => r.Cpu) <= c.CpuAvailable
                    && mine.Sum(r => r.Memory) <= c.MemoryAvailable
                    && ports.Distinct().Count() == ports.Count
                    && !ports.Any(c.UsedPorts.Contains)
                    && (mine.Count == 0 || c.AgentConnected);
            });
            return everyTaskAccountedOnce && fits;
        }).QuickCheckThrowOnFailure();
    }

    private sealed record PropertyInput(
        List<(int Cpu, int Memory, bool Connected)> Instances,
        List<(int Cpu, int Memory, int Port)> Tasks,
        string Strategy,
        int Seed);
}
