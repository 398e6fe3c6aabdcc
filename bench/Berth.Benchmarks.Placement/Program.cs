using BenchmarkDotNet.Running;

// Placement function alone: dotnet run -c Release --project bench/Berth.Benchmarks.Placement -- --filter '*' --job short
BenchmarkSwitcher.FromAssembly(typeof(Berth.Benchmarks.Scheduling.PlacementBenchmarks).Assembly).Run(args);
