using System.Diagnostics;
using System.Globalization;
using Berth.State;

namespace Berth.Benchmarks;

/// <summary>
/// Commits per second of <see cref="SqliteStateStore"/> with N concurrent writers, each updating its own
/// ~1 KiB documents with compare-and-swap (as the control plane's transactions do), optionally with
/// readers calling GetAsync at the same time. Each writer count gets a fresh store file.
/// </summary>
internal static class StoreBench
{
    private const int KeysPerWriter = 16;

    public static async Task<int> RunAsync(string data, IReadOnlyList<int> writerCounts, int seconds, int readers, int docBytes)
    {
        Console.WriteLine($"| writers | readers | commits/s | commit p50 | commit p99 | reads/s | read p99 | commits per fsync |");
        Console.WriteLine($"|---|---|---|---|---|---|---|---|");
        foreach (var writers in writerCounts)
        {
            var dir = Path.Combine(data, $"store-{writers}-{Guid.NewGuid():N}");
            try
            {
                await using var store = SqliteStateStore.Open(Path.Combine(dir, "state.db"));
                await RunOneAsync(store, writers, seconds, readers, docBytes).ConfigureAwait(false);
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        return 0;
    }

    private static async Task RunOneAsync(SqliteStateStore store, int writers, int seconds, int readers, int docBytes)
    {
        var doc = new byte[docBytes];
        new Random(42).NextBytes(doc);
        // Warm up: create every key once (also JITs the write path).
        var revs = new long[writers, KeysPerWriter];
        for (var w = 0; w < writers; w++)
        {
            for (var k = 0; k < KeysPerWriter; k++)
            {
                revs[w, k] = await store.PutAsync(Key(w, k), doc, 0).ConfigureAwait(false);
            }
        }
        var groupsBefore = Groups(store);
        var window = TimeSpan.FromSeconds(seconds);
        var sw = Stopwatch.StartNew();
        var commitLatencies = new List<double>[writers];
        var readLatencies = new List<double>[readers];
        var writerTasks = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var lat = commitLatencies[w] = new List<double>(4096);
            for (var i = 0; sw.Elapsed < window; i++)
            {
                var k = i % KeysPerWriter;
                var t0 = Stopwatch.GetTimestamp();
                revs[w, k] = await store.PutAsync(Key(w, k), doc, revs[w, k]).ConfigureAwait(false);
                lat.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
        }));
        var readerTasks = Enumerable.Range(0, readers).Select(r => Task.Run(async () =>
        {
            var lat = readLatencies[r] = new List<double>(4096);
            var rnd = new Random(r);
            while (sw.Elapsed < window)
            {
                var t0 = Stopwatch.GetTimestamp();
                _ = await store.GetAsync(Key(rnd.Next(writers), rnd.Next(KeysPerWriter))).ConfigureAwait(false)
                    ?? throw new InvalidOperationException("a written key is missing");
                lat.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                // Paced (about 1,000 reads/s per reader): the figure wanted is how long a read waits while commits
                // run, not how many reads two cores can do instead of committing.
                await Task.Delay(1).ConfigureAwait(false);
            }
        }));
        await Task.WhenAll(writerTasks.Concat(readerTasks)).ConfigureAwait(false);
        var elapsed = sw.Elapsed.TotalSeconds;
        var commits = commitLatencies.SelectMany(l => l).Order().ToArray();
        var reads = readLatencies.SelectMany(l => l).Order().ToArray();
        var readCols = reads.Length == 0 ? "– | –" : $"{reads.Length / elapsed:F0} | {Pct(reads, 0.99):F2} ms";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {writers} | {readers} | {commits.Length / elapsed:F0} | {Pct(commits, 0.5):F2} ms | {Pct(commits, 0.99):F2} ms | {readCols} | {(groupsBefore < 0 ? "–" : (commits.Length / (double)Math.Max(1, Groups(store) - groupsBefore)).ToString("F1", CultureInfo.InvariantCulture))} |"));
    }

    // By reflection, so the same benchmark also runs against a store without the statistic (-1 then).
    private static long Groups(SqliteStateStore store)
        => typeof(SqliteStateStore).GetProperty("CommitGroups")?.GetValue(store) is long n ? n : -1;

    private static string Key(int writer, int k) => $"bench/w{writer:D4}/k{k:D2}";

    private static double Pct(double[] sorted, double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
