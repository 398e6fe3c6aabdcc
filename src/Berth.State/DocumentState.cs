using System.Text.Json.Serialization.Metadata;

namespace Berth.State;

/// <summary>
/// A set of <see cref="DocumentTable{T}"/>s over one key space of the store: readers use the tables
/// directly (lock-free snapshots); writers go through <see cref="BeginAsync"/>, one at a time.
/// Each subsystem (ECS, the registry) derives one and declares its tables in the constructor.
/// </summary>
public abstract class DocumentState(IStateStore store)
{
    private readonly SemaphoreSlim _changed = new(0, int.MaxValue);
    private readonly List<Func<IStateStore, CancellationToken, Task>> _loaders = [];
    private long _generation;

    public IStateStore Store { get; } = store;
    internal SemaphoreSlim WriteLock { get; } = new(1, 1);

    /// <summary>Bumped after every commit; controllers compare it to skip idle passes.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>Declares a table; call from the constructor only.</summary>
    protected DocumentTable<T> Table<T>(string prefix, JsonTypeInfo<T> typeInfo) where T : class
    {
        var table = new DocumentTable<T>(prefix, typeInfo);
        _loaders.Add(table.LoadAsync);
        return table;
    }

    /// <summary>Fills every table from the store (on start, before the first request).</summary>
    public async Task LoadAsync(CancellationToken ct = default)
    {
        foreach (var load in _loaders)
        {
            await load(Store, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Takes the write lock; dispose the transaction to release it.</summary>
    public async Task<StateTransaction> BeginAsync(CancellationToken ct = default)
    {
        await WriteLock.WaitAsync(ct).ConfigureAwait(false);
        return new StateTransaction(this);
    }

    /// <summary>Completes when the state changes after <paramref name="seenGeneration"/>, or at the timeout.</summary>
    public async Task WaitForChangeAsync(long seenGeneration, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (Generation == seenGeneration)
        {
            var left = deadline - Environment.TickCount64;
            if (left <= 0 || !await _changed.WaitAsync(TimeSpan.FromMilliseconds(left), ct).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    internal void NotifyChanged()
    {
        Interlocked.Increment(ref _generation);
        // Wake every waiter currently parked; extra releases are drained by the next waits.
        _changed.Release(Math.Max(1, _changed.CurrentCount == 0 ? 8 : 1));
    }
}
