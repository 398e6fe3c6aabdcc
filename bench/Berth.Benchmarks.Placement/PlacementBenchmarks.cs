using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using Berth.Scheduling;

namespace Berth.Benchmarks.Scheduling;

/// <summary>
/// One RunTask's placement (count 10) over 5,000 container instances, the old algorithm beside the
/// current one. OperationsPerInvoke = 10, so the reported time is per placed task and Op/s is
/// placements per second. The fleet runs tasks of 100 services; the request places tasks of one of them
/// (group "service:web"), which spread balances and distinctInstance avoids.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(PlacementsPerSecond))]
public class PlacementBenchmarks
{
    public const int Instances = 5_000;
    public const int Count = 10;

    private static readonly string[] Zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
    private static readonly string[] Types = ["m5.large", "m5.xlarge", "c5.2xlarge"];
    private static readonly int[] ReservedPorts = [22, 2375, 2376, 51678, 51679];

    private PlacementRequest _request = null!;
    private Random _random = null!;

    public static readonly string[] Cases =
    [
        "binpack(memory)", "binpack(cpu)", "spread(instanceId)", "spread(az)", "spread(az)+spread(instanceId)", "random",
        "binpack(memory)+memberOf+port", "spread(az)+distinctInstance+memberOf(task:group)",
    ];

    public const string Group = "service:web";

    // BenchmarkDotNet reads parameter sources from properties or methods only, not fields.
    public static IEnumerable<string> CaseNames => Cases;

    [ParamsSource(nameof(CaseNames))]
    public string Case { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var seed = new Random(20261127);
        var candidates = new List<InstanceCandidate>(Instances);
        for (var i = 0; i < Instances; i++)
        {
            // A busy fleet: 0..12 tasks of 256 CPU units / 512 MiB already on each 4-vCPU host.
            var tasks = seed.Next(0, 13);
            var memory = i % 4 == 0 ? 8192 : 16384;
            var ports = new HashSet<int>(ReservedPorts);
            if (seed.Next(10) == 0)
            {
                ports.Add(8080);
            }
            // The tasks belong to 100 services; about one instance in three runs one of "service:web".
            var groups = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var t = 0; t < tasks; t++)
            {
                var g = seed.Next(3) == 0 ? Group : "service:s" + seed.Next(100);
                groups[g] = groups.GetValueOrDefault(g) + 1;
            }
            candidates.Add(new InstanceCandidate
            {
                Arn = $"arn:aws:ecs:us-east-1:000000000000:container-instance/bench/{i:x8}",
                CpuAvailable = 4096 - (256 * tasks),
                MemoryAvailable = memory - (512 * tasks),
                UsedPorts = ports,
                TaskCount = tasks,
                GroupCounts = groups,
                RunningTasksCount = tasks,
                Ec2InstanceId = $"i-{i:x8}",
                Attributes = new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    ["ecs.availability-zone"] = Zones[i % Zones.Length],
                    ["ecs.instance-type"] = Types[seed.Next(Types.Length)],
                    ["ecs.os-type"] = "linux",
                },
            });
        }
        var task = new TaskReservation(256, 512, Case.EndsWith("port", StringComparison.Ordinal) ? [8080] : []);
        _request = new PlacementRequest
        {
            Candidates = candidates,
            Tasks = Enumerable.Repeat(task, Count).ToList(),
            Constraints = Case switch
            {
                "binpack(memory)+memberOf+port" => [new("memberOf", "attribute:ecs.instance-type != c5.2xlarge")],
                "spread(az)+distinctInstance+memberOf(task:group)" =>
                    [new("distinctInstance", null), new("memberOf", "not(task:group == service:s7) and attribute:ecs.instance-type =~ m5.*")],
                _ => [],
            },
            Strategies = Case switch
            {
                "random" => [new("random", null)],
                "binpack(cpu)" => [new("binpack", "cpu")],
                "spread(instanceId)" => [new("spread", "instanceId")],
                "spread(az)" or "spread(az)+distinctInstance+memberOf(task:group)" => [new("spread", "attribute:ecs.availability-zone")],
                "spread(az)+spread(instanceId)" => [new("spread", "attribute:ecs.availability-zone"), new("spread", "instanceId")],
                _ => [new("binpack", "memory")],
            },
            Group = Group,
            // As the control plane passes it: the group's instances only, from its per-group index.
            GroupTasks = candidates.Select((c, i) => new KeyValuePair<int, int>(i, c.GroupCounts.GetValueOrDefault(Group))).Where(kv => kv.Value > 0).ToList(),
        };
        _random = new Random(1);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Count)]
    public PlacementPlan Old() => LegacyScheduler.Place(_request, _random);

    [Benchmark(OperationsPerInvoke = Count)]
    public PlacementPlan New() => Scheduler.Place(_request, _random);

    /// <summary>Adds operations (placements) per second beside the time per placement.</summary>
    private sealed class PlacementsPerSecond : ManualConfig
    {
        public PlacementsPerSecond() => AddColumn(StatisticColumn.OperationsPerSecond);
    }
}
