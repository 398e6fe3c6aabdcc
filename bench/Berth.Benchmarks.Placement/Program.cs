using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Running;
using Berth.Benchmarks.Scheduling;

// Placement function alone, 5,000 instances, count 10 per call, old algorithm beside the new.
//   (BenchmarkDotNet arguments, e.g. --filter '*' --job short)   wall-clock per placement, allocations
//   cpu [--seconds 3]                                             placements per CPU-second of this process,
//                                                                 which a machine shared with other work
//                                                                 disturbs far less than wall-clock time
if (args.FirstOrDefault() == "cpu")
{
    var i = Array.IndexOf(args, "--seconds");
    var seconds = i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : 3;
    Console.WriteLine($"| case ({PlacementBenchmarks.Instances:N0} instances, count {PlacementBenchmarks.Count}) | old placements/CPU-s | new placements/CPU-s | new / old |");
    Console.WriteLine("|---|---:|---:|---:|");
    foreach (var c in PlacementBenchmarks.Cases)
    {
        var bench = new PlacementBenchmarks { Case = c };
        bench.Setup();
        var old = PerCpuSecond(() => bench.Old(), seconds);
        var current = PerCpuSecond(() => bench.New(), seconds);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {c} | {old:N0} | {current:N0} | {current / old:N1}× |"));
    }
    return 0;
}
BenchmarkSwitcher.FromAssembly(typeof(PlacementBenchmarks).Assembly).Run(args);
return 0;

static double PerCpuSecond(Action call, double seconds)
{
    // Warm up (tiered JIT), then count calls until the wall-clock budget is spent.
    var warm = Stopwatch.StartNew();
    while (warm.Elapsed.TotalSeconds < Math.Min(1, seconds / 3))
    {
        call();
    }
    GC.Collect();
    using var process = Process.GetCurrentProcess();
    var cpu0 = process.TotalProcessorTime;
    var wall = Stopwatch.StartNew();
    long calls = 0;
    while (wall.Elapsed.TotalSeconds < seconds)
    {
        call();
        calls++;
    }
    process.Refresh();
    return calls * PlacementBenchmarks.Count / (process.TotalProcessorTime - cpu0).TotalSeconds;
}
