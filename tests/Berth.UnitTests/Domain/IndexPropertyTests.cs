using Berth.Aws.Ecs;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core.Agent;
using Berth.UnitTests.Agents;

namespace Berth.UnitTests.Domain;

/// <summary>
/// Random sequences of register / run / stop / report / disconnect / reconnect / purge, with the indexes
/// checked after every step against a recomputation from the whole tasks table: the indexes never drift,
/// no instance is ever oversubscribed (CPU, memory, static ports), and no task's status moves backwards.
/// </summary>
public sealed class IndexPropertyTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task RandomOperations_IndexesMatchRecomputation(int seed)
    {
        var random = new Random(seed);
        var clock = new ManualClock(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        await using var f = new EcsFixture(time: clock);
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web(memory: 300));
        await f.AddTaskDefinitionAsync("fixed", 1, EcsFixture.Web(memory: 100, hostPort: 8080));
        var instances = new List<(string Key, string Secret, Register Reg)>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var sequences = new Dictionary<string, long>(StringComparer.Ordinal);

        for (var step = 0; step < 300; step++)
        {
            switch (random.Next(11))
            {
                case 0 when instances.Count(i => f.State.ContainerInstances.Find(i.Key)?.Status == "ACTIVE") < 4:
                {
                    var reg = EcsFixture.Registration(agentId: "agent-" + instances.Count, cpu: 1024, memory: 1000);
                    var r = await f.Gateway.RegisterAsync(reg, CancellationToken.None);
                    instances.Add((r.Key, r.NewSecret!, reg));
                    break;
                }
                case 1 or 2 or 3 when instances.Count > 0:
                {
                    var family = random.Next(3) == 0 ? "fixed" : "web";
                    if (f.State.Ledger.Candidates("default").Count == 0)
                    {
                        // Every instance was deregistered: RunTask answers InvalidParameterException, as ECS does.
                        var e = await f.CallFailsAsync("RunTask", $$"""{"taskDefinition":"{{family}}"}""");
                        Assert.Equal("InvalidParameterException", e.ErrorType);
                        break;
                    }
                    var strategy = random.Next(3) switch
                    {
                        0 => """{"type":"binpack","field":"memory"}""",
                        1 => """{"type":"spread","field":"instanceId"}""",
                        _ => """{"type":"random"}""",
                    };
                    // A few groups (and the default family:NAME), sometimes one task of a group per instance.
                    var group = random.Next(4) == 0 ? "" : $$""","group":"g{{random.Next(3)}}" """;
                    var distinct = random.Next(4) == 0 ? ""","placementConstraints":[{"type":"distinctInstance"}]""" : "";
                    var run = await f.CallAsync("RunTask", $$"""{"taskDefinition":"{{family}}","count":{{random.Next(1, 4)}}{{group}}{{distinct}},"placementStrategy":[{{strategy}}]}""");
                    if (distinct.Length > 0)
                    {
                        // Each new task is the only live task of its group on its instance (earlier ones included).
                        foreach (var placed in run.GetProperty("tasks").EnumerateArray())
                        {
                            var t = f.State.Tasks.Find("default/" + placed.GetProperty("taskArn").GetString()!.Split('/')[^1])!;
                            Assert.Single(f.State.Tasks.All, v => !v.Value.IsStopped && v.Value.InstanceId == t.InstanceId && v.Value.Group == t.Group);
                        }
                    }
                    break;
                }
                case 4:
                {
                    var live = f.State.Tasks.All.Where(v => v.Value.DesiredStatus == "RUNNING").ToList();
                    if (live.Count > 0)
                    {
                        var t = live[random.Next(live.Count)].Value;
                        await f.CallAsync("StopTask", $$"""{"task":"{{t.Id}}"}""");
                    }
                    break;
                }
                case 5 or 6 or 7:
                {
                    var all = f.State.Tasks.All.ToList();
                    if (all.Count == 0 || instances.Count == 0)
                    {
                        break;
                    }
                    var t = all[random.Next(all.Count)].Value;
                    var statuses = new[] { "PENDING", "RUNNING", "DEPROVISIONING", "STOPPED" };
                    var seq = sequences.GetValueOrDefault(t.Id) + random.Next(-1, 3);
                    sequences[t.Id] = Math.Max(seq, sequences.GetValueOrDefault(t.Id));
                    // Sometimes from the owner's stream, sometimes from another agent's.
                    var from = random.Next(4) == 0 ? instances[random.Next(instances.Count)].Key : "default/" + t.InstanceId;
                    var report = new TaskStatusReport { TaskArn = f.Arns.Task("default", t.Id), LastStatus = statuses[random.Next(statuses.Length)], Sequence = seq };
                    await f.Tasks.ApplyReportAsync(from, report, CancellationToken.None);
                    break;
                }
                case 8 when instances.Count > 0:
                {
                    // Reconnect: the same agent registers again with its secret.
                    var (key, secret, reg) = instances[random.Next(instances.Count)];
                    if (f.State.ContainerInstances.Find(key)?.Status is null or "INACTIVE")
                    {
                        break; // deregistered (or purged): its agent would register as a new instance
                    }
                    reg.AgentSecret = secret;
                    var r = await f.Gateway.RegisterAsync(reg, CancellationToken.None);
                    Assert.Equal(key, r.Key);
                    break;
                }
                case 10 when instances.Count > 0 && random.Next(4) == 0:
                {
                    var (key, _, _) = instances[random.Next(instances.Count)];
                    if (f.State.ContainerInstances.Find(key) is { Status: not "INACTIVE" } ci)
                    {
                        await f.CallAsync("DeregisterContainerInstance", $$"""{"containerInstance":"{{f.Arns.ContainerInstance("default", ci.Id)}}","force":true}""");
                    }
                    break;
                }
                case 9:
                    clock.Advance(TimeSpan.FromMinutes(random.Next(1, 40)));
                    await f.Tasks.PurgeAsync(clock.GetUtcNow() - TimeSpan.FromHours(1), 50, CancellationToken.None);
                    await f.Tasks.PurgeInstancesAsync(clock.GetUtcNow() - TimeSpan.FromHours(1), 50, CancellationToken.None);
                    break;
            }
            Check(f.State, seen);
        }
    }

    private static void Check(EcsState state, Dictionary<string, int> seen)
    {
        var tasks = state.Tasks.All.ToDictionary(v => v.Id, v => v.Value, StringComparer.Ordinal);

        // 1. Every index set equals the recomputation.
        var expected = new Dictionary<(string, string, string), SortedSet<string>>();
        void Add(string kind, string cluster, string? value, string id)
        {
            if (value is null)
            {
                return;
            }
            if (!expected.TryGetValue((kind, cluster, value), out var set))
            {
                expected[(kind, cluster, value)] = set = new SortedSet<string>(StringComparer.Ordinal);
            }
            set.Add(id);
        }
        foreach (var (id, t) in tasks)
        {
            Add(TaskIndex.ByDesired, t.Cluster, t.DesiredStatus, id);
            Add(TaskIndex.ByFamily, t.Cluster, t.Family, id);
            Add(TaskIndex.ByInstance, t.Cluster, t.InstanceId, id);
            Add(TaskIndex.ByStartedBy, t.Cluster, t.StartedBy, id);
            Add(TaskIndex.ByGroup, t.Cluster, t.Group, id);
        }
        var actual = state.TaskIndex.Snapshot();
        Assert.Equal(expected.Keys.OrderBy(k => k.ToString()), actual.Keys.OrderBy(k => k.ToString()));
        foreach (var (k, set) in expected)
        {
            Assert.Equal(set, actual[k]);
        }
        var counts = state.TaskIndex.CountsOf("default");
        Assert.Equal(tasks.Values.Count(t => t.LastStatus == "RUNNING"), counts.Running);
        Assert.Equal(tasks.Values.Count(t => !t.IsStopped), counts.Live);

        // 2. Per instance: the ledger equals the sum over live tasks, and nothing is oversubscribed.
        foreach (var v in state.ContainerInstances.All)
        {
            var live = tasks.Values.Where(t => !t.IsStopped && "default/" + t.InstanceId == v.Id).ToList();
            var c = state.Ledger.Candidate(v.Id)!;
            var cpu = v.Value.Cpu - live.Sum(t => InstanceLedger.ReservationOf(t).Cpu);
            var mem = v.Value.Memory - live.Sum(t => InstanceLedger.ReservationOf(t).Memory);
            Assert.Equal(cpu, c.CpuAvailable);
            Assert.Equal(mem, c.MemoryAvailable);
            Assert.True(c.CpuAvailable >= 0 && c.MemoryAvailable >= 0, $"{v.Id} oversubscribed: cpu {c.CpuAvailable}, memory {c.MemoryAvailable}");
            var ports = live.SelectMany(t => t.StaticPorts ?? []).ToList();
            Assert.Equal(ports.Count, ports.Distinct().Count());
            Assert.Equal(live.Count, c.TaskCount);
            // Group counts and RUNNING count: the same as recounting the instance's live tasks.
            var groups = live.Where(t => t.Group is not null).GroupBy(t => t.Group!).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(groups.OrderBy(kv => kv.Key, StringComparer.Ordinal), c.GroupCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal));
            Assert.Equal(live.Count(t => t.LastStatus == "RUNNING"), c.RunningTasksCount);
            Assert.Equal(v.Value.Ec2InstanceId, c.Ec2InstanceId);
            Assert.Equal(v.Value.RegisteredAt, c.RegisteredAt);
        }

        // The cluster's placement list holds exactly the current candidate of every instance that is not INACTIVE.
        var expectedCandidates = state.ContainerInstances.All.Where(v => v.Value.Status != "INACTIVE")
            .Select(v => state.Ledger.Candidate(v.Id)!).OrderBy(c => c.Arn, StringComparer.Ordinal).ToList();
        var listed = state.Ledger.Candidates("default").OrderBy(c => c.Arn, StringComparer.Ordinal).ToList();
        Assert.Equal(expectedCandidates.Count, listed.Count);
        for (var i = 0; i < listed.Count; i++)
        {
            Assert.Same(expectedCandidates[i], listed[i]);
        }

        // The per-group index placement reads: for each group, (position in the candidate list, live tasks there).
        var liveByGroup = tasks.Values.Where(t => !t.IsStopped && t.Group is not null && t.InstanceId is not null).GroupBy(t => t.Group!);
        var positions = state.Ledger.Candidates("default").Select((c, i) => (c.Arn, i)).ToDictionary(x => x.Arn, x => x.i);
        foreach (var g in liveByGroup)
        {
            var expectedGroup = g.GroupBy(t => t.InstanceId!)
                .Select(x => (Candidate: state.Ledger.Candidate("default/" + x.Key), Count: x.Count()))
                .Where(x => x.Candidate is not null && positions.ContainsKey(x.Candidate.Arn))
                .Select(x => new KeyValuePair<int, int>(positions[x.Candidate!.Arn], x.Count)).OrderBy(kv => kv.Key).ToList();
            Assert.Equal(expectedGroup, state.Ledger.GroupTasks("default", g.Key).OrderBy(kv => kv.Key).ToList());
        }
        Assert.Empty(state.Ledger.GroupTasks("default", "no-such-group"));

        // 3. No status ever moves backwards.
        foreach (var (id, t) in tasks)
        {
            var rank = TaskStates.Rank(t.LastStatus);
            Assert.True(rank >= seen.GetValueOrDefault(id, -1), $"{id} went back to {t.LastStatus}");
            seen[id] = rank;
        }
    }
}
