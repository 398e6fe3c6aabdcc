using System.Text.Json.Serialization.Metadata;

namespace Berth.State;

/// <summary>
/// A set of <see cref="DocumentTable{T}"/>s over one key space of the store: readers use the tables
/// directly (lock-free snapshots); writers go through <see cref="BeginAsync"/>, one at a time.
/// Each subsystem (ECS, the registry) derives one and declares its tables in the constructor.
/// </summary>
/// <remarks>
/// Group commit. A transaction decides and applies its writes to the in-memory tables while it holds
/// the write lock, then releases the lock and waits until its writes are durable. Writes that queue
/// up while the store is busy go to the store together, in one store commit (one SQLite transaction,
/// one fsync), in the order they were applied in memory; every caller returns only after the commit
/// that holds its writes. So the lock is held for microseconds of in-memory work, not for an fsync.
/// A reader may see a write a few milliseconds before it is durable; if the store then fails, the
/// waiting callers get the error and the tables are reloaded from the store, so memory never keeps a
/// write the store does not have.
/// </remarks>
public abstract class DocumentState(IStateStore store)
{
    private readonly List<Func<IStateStore, CancellationToken, Task>> _loaders = [];
    private readonly List<Action> _clearers = [];
    private readonly object _queueGate = new();
    private List<PendingCommit> _queue = [];
    private bool _flushing;
    private long _generation;
    private long _versionToken;
    private long _storeCommits;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IStateStore Store { get; } = store;
    internal SemaphoreSlim WriteLock { get; } = new(1, 1);

    /// <summary>Bumped after every commit.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>How many store commits carried the transactions so far (fewer than transactions when they were grouped).</summary>
    public long StoreCommits => Interlocked.Read(ref _storeCommits);

    /// <summary>Declares a table; call from the constructor only.</summary>
    protected DocumentTable<T> Table<T>(string prefix, JsonTypeInfo<T> typeInfo) where T : class
    {
        var table = new DocumentTable<T>(prefix, typeInfo);
        _loaders.Add(table.LoadAsync);
        _clearers.Add(table.Clear);
        return table;
    }

    /// <summary>Fills every table from the store (on start, before the first request).</summary>
    public async Task LoadAsync(CancellationToken ct = default)
    {
        await BeforeLoadAsync(ct).ConfigureAwait(false);
        foreach (var clear in _clearers)
        {
            clear();
        }
        foreach (var load in _loaders)
        {
            await load(Store, ct).ConfigureAwait(false);
        }
        Interlocked.Exchange(ref _versionToken, Math.Max(Store.Revision, Interlocked.Read(ref _versionToken)));
        AfterLoad();
    }

    /// <summary>Runs before the tables load: a subclass migrates old store formats here.</summary>
    protected virtual Task BeforeLoadAsync(CancellationToken ct) => Task.CompletedTask;

    /// <summary>Runs after the tables loaded (and after a reload): a subclass rebuilds derived state here.</summary>
    protected virtual void AfterLoad()
    {
    }

    /// <summary>
    /// Completes when the state changes after <paramref name="seenGeneration"/>, or at the timeout. For whole-state
    /// watchers (the load balancer's configuration); per-instance agent streams use their own feeds instead.
    /// </summary>
    public async Task WaitForChangeAsync(long seenGeneration, TimeSpan timeout, CancellationToken ct)
    {
        var changed = Volatile.Read(ref _changed).Task;
        if (Generation != seenGeneration)
        {
            return;
        }
        try
        {
            await changed.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <summary>Runs after each store commit, before its callers return: a subclass wakes watchers here.</summary>
    protected virtual void OnDurable()
    {
    }

    /// <summary>Takes the write lock; dispose the transaction to release it.</summary>
    public async Task<StateTransaction> BeginAsync(CancellationToken ct = default)
    {
        await WriteLock.WaitAsync(ct).ConfigureAwait(false);
        return new StateTransaction(this);
    }

    /// <summary>A version token for documents written by a transaction; increases with every transaction.</summary>
    internal long NextVersionToken() => Interlocked.Increment(ref _versionToken);

    /// <summary>Called under the write lock once a transaction's writes are in memory: queues them for the store.</summary>
    internal Task EnqueueAsync(IReadOnlyList<StoreWrite> writes, IReadOnlyList<Action> afterDurable)
    {
        var pending = new PendingCommit(writes, afterDurable);
        lock (_queueGate)
        {
            _queue.Add(pending);
            if (!_flushing)
            {
                _flushing = true;
                // The first writer in becomes the flusher; it keeps going while others queue behind it.
                _ = Task.Run(FlushLoopAsync);
            }
        }
        Interlocked.Increment(ref _generation);
        // Wake every waiter of WaitForChangeAsync (a broadcast: each waiter holds the same task).
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        return pending.Done.Task;
    }

    private async Task FlushLoopAsync()
    {
        while (true)
        {
            List<PendingCommit> batch;
            lock (_queueGate)
            {
                if (_queue.Count == 0)
                {
                    _flushing = false;
                    return;
                }
                batch = _queue;
                _queue = [];
            }
            var writes = new List<StoreWrite>(batch.Sum(p => p.Writes.Count));
            foreach (var p in batch)
            {
                writes.AddRange(p.Writes);
            }
            try
            {
                await Store.CommitAsync(writes, CancellationToken.None).ConfigureAwait(false);
                Interlocked.Increment(ref _storeCommits);
            }
            catch (Exception e)
            {
                await RecoverAsync(batch, e).ConfigureAwait(false);
                continue;
            }
            OnDurable();
            foreach (var p in batch)
            {
                foreach (var a in p.AfterDurable)
                {
                    a();
                }
                p.Done.TrySetResult();
            }
        }
    }

    /// <summary>The store refused a batch: fail its callers (and everything queued behind it) and reload memory from the store.</summary>
    private async Task RecoverAsync(List<PendingCommit> failed, Exception error)
    {
        await WriteLock.WaitAsync().ConfigureAwait(false);
        try
        {
            List<PendingCommit> queued;
            lock (_queueGate)
            {
                queued = _queue;
                _queue = [];
            }
            foreach (var p in failed.Concat(queued))
            {
                p.Done.TrySetException(new StoreUnavailableException(error));
            }
            try
            {
                await LoadAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The store is unreadable too; memory keeps what it has and the next commit reports again.
            }
        }
        finally
        {
            WriteLock.Release();
        }
    }

    private sealed class PendingCommit(IReadOnlyList<StoreWrite> writes, IReadOnlyList<Action> afterDurable)
    {
        public IReadOnlyList<StoreWrite> Writes { get; } = writes;
        public IReadOnlyList<Action> AfterDurable { get; } = afterDurable;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>The store failed to commit; nothing of the transaction was kept.</summary>
public sealed class StoreUnavailableException(Exception inner)
    : Exception("The state store could not commit the change: " + inner.Message, inner);
