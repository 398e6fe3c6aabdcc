using System.Text;
using Berth.State;

namespace Berth.UnitTests.State;

/// <summary>Group commit in <see cref="SqliteStateStore"/>: concurrency, per-caller atomicity, durability, cancellation.</summary>
public sealed class SqliteGroupCommitTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-group-" + Guid.NewGuid().ToString("N"));
    private SqliteStateStore? _store;

    private string DbPath => Path.Combine(_dir, "state.db");

    private SqliteStateStore Store => _store!;

    public ValueTask InitializeAsync()
    {
        _store = SqliteStateStore.Open(DbPath);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static string S(byte[] b) => Encoding.UTF8.GetString(b);

    [Fact]
    public async Task Commit_200TasksX20Commits_AllSucceedWithDistinctRevisionsAndSurviveReopen()
    {
        const int tasks = 200, commits = 20;
        var start = Store.Revision;
        var watched = new List<long>();
        using var cts = new CancellationTokenSource(Timeout);
        var watcher = Task.Run(async () =>
        {
            await foreach (var c in Store.WatchAsync("c/", start, cts.Token))
            {
                watched.Add(c.Revision);
                if (watched.Count == 2 * tasks * commits)
                {
                    return;
                }
            }
        });
        var results = await Task.WhenAll(Enumerable.Range(0, tasks).Select(t => Task.Run(async () =>
        {
            var revs = new long[commits];
            long last = 0;
            for (var i = 0; i < commits; i++)
            {
                // Each task keeps one document up to date with compare-and-swap, plus one new key per commit.
                var rev = await Store.CommitAsync([
                    new StoreWrite($"c/{t:D3}/doc", B($"{t}:{i}"), last),
                    new StoreWrite($"c/{t:D3}/{i:D2}", B($"{t}.{i}"), 0),
                ]);
                revs[i] = last = rev;
            }
            return revs;
        }))).WaitAsync(Timeout);

        var all = results.SelectMany(r => r).ToArray();
        Assert.Equal(tasks * commits, all.Distinct().Count());
        Assert.Equal(start + (tasks * commits), Store.Revision);
        Assert.Equal(Enumerable.Range(1, tasks * commits).Select(i => start + i), all.Order());
        Assert.All(results, r => Assert.Equal(r.Order(), r)); // one caller's commits are in its own order
        Assert.True(Store.CommitGroups < tasks * commits, $"{Store.CommitGroups} groups for {tasks * commits} commits");

        await watcher.WaitAsync(Timeout);
        // Each commit has two writes with one revision: the feed is in revision order.
        Assert.Equal(all.Order().SelectMany(r => new[] { r, r }), watched);

        await Store.DisposeAsync();
        await using var again = SqliteStateStore.Open(DbPath);
        Assert.Equal(start + (tasks * commits), again.Revision);
        var entries = await again.ListAsync("c/");
        Assert.Equal(tasks * (commits + 1), entries.Count);
        for (var t = 0; t < tasks; t++)
        {
            var doc = await again.GetAsync($"c/{t:D3}/doc");
            Assert.Equal($"{t}:{commits - 1}", S(doc!.Value));
            Assert.Equal(results[t][^1], doc.Revision);
            Assert.Equal($"{t}.7", S((await again.GetAsync($"c/{t:D3}/07"))!.Value));
        }
    }

    [Fact]
    public async Task Commit_ConflictInMiddleOfGroup_FailsAloneAndOthersCommit()
    {
        var r0 = await Store.PutAsync("k/existing", B("v0"));
        var groupsBefore = Store.CommitGroups;
        ValueTask<long> a, b, c, d, e;
        using (Store.HoldWriter())
        {
            a = Store.PutAsync("k/a", B("a"));
            // Fails: the key exists. Its other write must not apply either.
            b = Store.CommitAsync([new StoreWrite("k/b", B("b")), new StoreWrite("k/existing", B("x"), ExpectedRevision: 0)]);
            c = Store.PutAsync("k/existing", B("v1"), r0);
            // Fails: c, earlier in the same group, moved k/existing past r0.
            d = Store.CommitAsync([new StoreWrite("k/d", B("d")), new StoreWrite("k/existing", B("y"), r0)]);
            // Succeeds: k/a was created by a, earlier in the group, at the revision a gets (r0 + 1).
            e = Store.PutAsync("k/a", B("a2"), r0 + 1);
            Assert.False(a.IsCompleted || b.IsCompleted || c.IsCompleted);
        }
        Assert.Equal(r0 + 1, await a.AsTask().WaitAsync(Timeout));
        var conflict = await Assert.ThrowsAsync<StoreConflictException>(() => b.AsTask().WaitAsync(Timeout));
        Assert.Equal("k/existing", conflict.Key);
        Assert.Equal(r0 + 2, await c.AsTask().WaitAsync(Timeout));
        await Assert.ThrowsAsync<StoreConflictException>(() => d.AsTask().WaitAsync(Timeout));
        Assert.Equal(r0 + 3, await e.AsTask().WaitAsync(Timeout));

        Assert.Equal(groupsBefore + 1, Store.CommitGroups);
        Assert.Equal(r0 + 3, Store.Revision);
        Assert.Null(await Store.GetAsync("k/b"));
        Assert.Null(await Store.GetAsync("k/d"));
        Assert.Equal("v1", S((await Store.GetAsync("k/existing"))!.Value));
        Assert.Equal(("a2", r0 + 3), ((string, long))(S((await Store.GetAsync("k/a"))!.Value), (await Store.GetAsync("k/a"))!.Revision));

        using var cts = new CancellationTokenSource(Timeout);
        var feed = new List<StoreChange>();
        await foreach (var ch in Store.WatchAsync("k/", r0, cts.Token))
        {
            feed.Add(ch);
            if (feed.Count == 3)
            {
                break;
            }
        }
        Assert.Equal([("k/a", r0 + 1), ("k/existing", r0 + 2), ("k/a", r0 + 3)], feed.Select(f => (f.Key, f.Revision)));
    }

    [Fact]
    public async Task Commit_NConcurrentCallers_UseFewerThanNTransactions()
    {
        const int n = 50;
        await Store.PutAsync("warm", B("up"));
        var groupsBefore = Store.CommitGroups;
        Task<long>[] pending;
        using (Store.HoldWriter())
        {
            pending = Enumerable.Range(0, n).Select(i => Store.PutAsync($"n/{i:D2}", B("x")).AsTask()).ToArray();
        }
        var revs = await Task.WhenAll(pending).WaitAsync(Timeout);
        Assert.Equal(n, revs.Distinct().Count());
        var groups = Store.CommitGroups - groupsBefore;
        Assert.InRange(groups, 1, n - 1);
        Assert.Equal(1, groups); // all were queued before the writer could take any
    }

    [Fact]
    public async Task Dispose_WithCommitsQueued_WritesThemAndReopenSeesEveryAcknowledgedOne()
    {
        Task<long>[] pending;
        using (Store.HoldWriter())
        {
            pending = Enumerable.Range(0, 100).Select(i => Store.PutAsync($"d/{i:D3}", B($"v{i}")).AsTask()).ToArray();
        }
        var dispose = Store.DisposeAsync().AsTask();
        await dispose.WaitAsync(Timeout);
        var revs = await Task.WhenAll(pending).WaitAsync(Timeout);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Store.PutAsync("late", B("x")).AsTask());

        await using var again = SqliteStateStore.Open(DbPath);
        Assert.Equal(revs.Max(), again.Revision);
        for (var i = 0; i < 100; i++)
        {
            var e = await again.GetAsync($"d/{i:D3}");
            Assert.Equal($"v{i}", S(e!.Value));
            Assert.Equal(revs[i], e.Revision);
        }
    }

    [Fact]
    public async Task Commit_CancelledWhileQueued_IsNotWritten()
    {
        using var cts = new CancellationTokenSource();
        ValueTask<long> cancelled, kept;
        using (Store.HoldWriter())
        {
            cancelled = Store.PutAsync("x/cancelled", B("x"), ct: cts.Token);
            kept = Store.PutAsync("x/kept", B("y"));
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.AsTask().WaitAsync(Timeout));
        }
        var rev = await kept.AsTask().WaitAsync(Timeout);
        Assert.Equal(rev, Store.Revision);
        Assert.Null(await Store.GetAsync("x/cancelled"));
        Assert.Equal(rev, (await Store.GetAsync("x/kept"))!.Revision);
    }

    [Fact]
    public async Task Get_WhileCommitsAreQueued_AnswersWithoutWaitingAndSeesEveryReturnedCommit()
    {
        var r1 = await Store.PutAsync("r/1", B("one"));
        ValueTask<long> queued;
        using (Store.HoldWriter())
        {
            queued = Store.PutAsync("r/2", B("two"));
            // The writer is held: a read that queued behind it would never finish inside this block.
            var e = await Store.GetAsync("r/1").AsTask().WaitAsync(Timeout);
            Assert.Equal(r1, e!.Revision);
            Assert.Null(await Store.GetAsync("r/2").AsTask().WaitAsync(Timeout));
            Assert.Single(await Store.ListAsync("r/").AsTask().WaitAsync(Timeout));
        }
        var r2 = await queued.AsTask().WaitAsync(Timeout);
        Assert.Equal(r2, (await Store.GetAsync("r/2"))!.Revision);
        Assert.Equal(["r/1", "r/2"], (await Store.ListAsync("r/")).Select(x => x.Key));
    }

    [Fact]
    public async Task GetAndCommit_Interleaved_ReadsNeverSeeAnOlderRevisionThanReturned()
    {
        // Reader connections are reused; a read must not keep an old WAL snapshot open.
        long rev = 0;
        for (var i = 0; i < 200; i++)
        {
            rev = await Store.PutAsync("s/doc", B($"v{i}"), i == 0 ? 0 : rev);
            var seen = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () => await Store.GetAsync("s/doc"))));
            Assert.All(seen, e => Assert.Equal(rev, e!.Revision));
        }
    }
}

/// <summary>The in-memory variant shares its one connection between reads and the writer thread.</summary>
public sealed class InMemorySqliteStateStoreTests : StateStoreContractTests
{
    protected override Task<IStateStore> CreateAsync() => Task.FromResult<IStateStore>(SqliteStateStore.Open(":memory:"));

    [Fact]
    public async Task Commit_ConcurrentCallers_AllVisible()
    {
        var revs = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(async () => await Store.PutAsync($"m/{i:D3}", [1]))));
        Assert.Equal(100, revs.Distinct().Count());
        Assert.Equal(100, (await Store.ListAsync("m/")).Count);
    }
}
