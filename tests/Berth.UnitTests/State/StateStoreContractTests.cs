using System.Text;
using Berth.State;

namespace Berth.UnitTests.State;

/// <summary>The behaviour every <see cref="IStateStore"/> backend must have; each backend derives one class.</summary>
public abstract class StateStoreContractTests : IAsyncLifetime
{
    private IStateStore? _store;

    protected IStateStore Store => _store!;

    protected abstract Task<IStateStore> CreateAsync();

    public async ValueTask InitializeAsync() => _store = await CreateAsync();

    public async ValueTask DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
        GC.SuppressFinalize(this);
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task Commit_NewKey_IsReadableWithItsRevision()
    {
        var rev = await Store.PutAsync("a/1", B("one"));
        var e = await Store.GetAsync("a/1");
        Assert.NotNull(e);
        Assert.Equal("one", Encoding.UTF8.GetString(e.Value));
        Assert.Equal(rev, e.Revision);
        Assert.Equal(rev, Store.Revision);
    }

    [Fact]
    public async Task Commit_ExpectAbsentOnExistingKey_ThrowsAndWritesNothing()
    {
        await Store.PutAsync("k", B("v1"));
        var before = Store.Revision;
        await Assert.ThrowsAsync<StoreConflictException>(() =>
            Store.CommitAsync([new StoreWrite("other", B("x")), new StoreWrite("k", B("v2"), ExpectedRevision: 0)]).AsTask());
        Assert.Equal(before, Store.Revision);
        Assert.Null(await Store.GetAsync("other"));
        Assert.Equal("v1", Encoding.UTF8.GetString((await Store.GetAsync("k"))!.Value));
    }

    [Fact]
    public async Task Commit_StaleRevision_Conflicts()
    {
        var r1 = await Store.PutAsync("k", B("v1"));
        await Store.PutAsync("k", B("v2"), r1);
        await Assert.ThrowsAsync<StoreConflictException>(() => Store.PutAsync("k", B("v3"), r1).AsTask());
    }

    [Fact]
    public async Task List_Prefix_ReturnsOnlyMatchingKeysInOrder()
    {
        await Store.PutAsync("t/b", B("2"));
        await Store.PutAsync("t/a", B("1"));
        await Store.PutAsync("u/a", B("3"));
        var list = await Store.ListAsync("t/");
        Assert.Equal(["t/a", "t/b"], list.Select(e => e.Key));
    }

    [Fact]
    public async Task Delete_RemovesKeyAndIsSeenByWatch()
    {
        var start = Store.Revision;
        await Store.PutAsync("w/x", B("1"));
        await Store.DeleteAsync("w/x");
        Assert.Null(await Store.GetAsync("w/x"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var seen = new List<StoreChange>();
        await foreach (var c in Store.WatchAsync("w/", start, cts.Token))
        {
            seen.Add(c);
            if (seen.Count == 2)
            {
                break;
            }
        }
        Assert.NotNull(seen[0].Value);
        Assert.Null(seen[1].Value);
        Assert.True(seen[1].Revision > seen[0].Revision);
    }

    [Fact]
    public async Task Watch_LiveChanges_ArriveAfterSubscription()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var from = Store.Revision;
        var reader = Task.Run(async () =>
        {
            await foreach (var c in Store.WatchAsync("live/", from, cts.Token))
            {
                return c.Key;
            }
            return null;
        });
        await Store.PutAsync("other/1", B("x"));
        await Store.PutAsync("live/1", B("y"));
        Assert.Equal("live/1", await reader);
    }
}

public sealed class SqliteStateStoreTests : StateStoreContractTests
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-store-" + Guid.NewGuid().ToString("N"));

    protected override Task<IStateStore> CreateAsync() => Task.FromResult<IStateStore>(SqliteStateStore.Open(Path.Combine(_dir, "state.db")));

    [Fact]
    public async Task Reopen_AfterCommit_KeepsDataAndRevision()
    {
        var rev = await Store.PutAsync("p/1", Encoding.UTF8.GetBytes("durable"));
        await Store.DisposeAsync();
        await using var again = SqliteStateStore.Open(Path.Combine(_dir, "state.db"));
        Assert.Equal(rev, again.Revision);
        Assert.Equal("durable", Encoding.UTF8.GetString((await again.GetAsync("p/1"))!.Value));
    }
}
