using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.State;

namespace Berth.UnitTests.Domain;

public sealed class GroupCommitTests
{
    [Fact]
    public async Task ConcurrentTransactions_ShareStoreCommits_AndAllAreDurable()
    {
        var path = Path.Combine(Path.GetTempPath(), "berth-group-" + Guid.NewGuid().ToString("N"), "state.db");
        try
        {
            const int writers = 64;
            const int each = 10;
            await using (var store = SqliteStateStore.Open(path))
            {
                var state = new EcsState(store);
                await state.LoadAsync();
                await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
                {
                    for (var i = 0; i < each; i++)
                    {
                        await using var tx = await state.BeginAsync();
                        var id = $"c/{w:D3}-{i:D3}";
                        tx.Put(state.Tasks, id, new TaskRecord { Id = $"{w:D3}-{i:D3}", Cluster = "c", Family = "f", Revision = 1, DesiredStatus = "RUNNING", LastStatus = "PENDING" });
                        await tx.CommitAsync();
                        // Acknowledged means durable: the store already has it.
                        Assert.NotNull(await store.GetAsync(state.Tasks.Key(id)));
                    }
                })));
                Assert.True(state.StoreCommits < writers * each, $"{state.StoreCommits} store commits for {writers * each} transactions: nothing was grouped");
            }
            await using (var store = SqliteStateStore.Open(path))
            {
                var state = new EcsState(store);
                await state.LoadAsync();
                Assert.Equal(writers * each, state.Tasks.Count);
                Assert.Equal(writers * each, state.TaskIndex.Get(TaskIndex.ByFamily, "c", "f").Count);
            }
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public async Task Conflict_IsCheckedInMemory_AndNothingOfTheTransactionApplies()
    {
        await using var store = SqliteStateStore.Open(":memory:");
        var state = new EcsState(store);
        await state.LoadAsync();
        await using (var tx = await state.BeginAsync())
        {
            tx.Put(state.AccountSettings, "a", new Berth.Aws.Ecs.Setting { Name = "a", Value = "1" });
            await tx.CommitAsync();
        }
        await using (var tx = await state.BeginAsync())
        {
            tx.Put(state.AccountSettings, "b", new Berth.Aws.Ecs.Setting { Name = "b", Value = "2" });
            tx.Put(state.AccountSettings, "a", new Berth.Aws.Ecs.Setting { Name = "a", Value = "3" }, expectedRevision: 0);
            await Assert.ThrowsAsync<StoreConflictException>(() => tx.CommitAsync());
        }
        Assert.Null(state.AccountSettings.Find("b"));
        Assert.Equal("1", state.AccountSettings.Find("a")!.Value);
    }
}
