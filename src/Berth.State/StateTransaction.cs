namespace Berth.State;

/// <summary>
/// A unit of change to a <see cref="DocumentState"/>: holds the state's write lock from
/// <see cref="DocumentState.BeginAsync"/> until committed or disposed, so read-decide-write sequences
/// (placement, name uniqueness, revision numbers) never race. Nothing is visible until
/// <see cref="CommitAsync"/>, which applies the writes to memory, releases the lock and returns once
/// they are durable (see the group commit remarks on <see cref="DocumentState"/>).
/// </summary>
public sealed class StateTransaction : IAsyncDisposable
{
    private readonly DocumentState _state;
    private readonly List<StoreWrite> _writes = [];
    private readonly List<Action<long>> _apply = [];
    private readonly List<Action> _checks = [];
    private readonly List<Action> _afterDurable = [];
    private bool _released;

    internal StateTransaction(DocumentState state) => _state = state;

    /// <summary>Writes <paramref name="value"/> under <paramref name="id"/>; with <paramref name="expectedRevision"/> only if it is unchanged (0 = must not exist).</summary>
    public StateTransaction Put<T>(DocumentTable<T> table, string id, T value, long? expectedRevision = null) where T : class
    {
        EnsureOpen();
        var key = table.Key(id);
        if (expectedRevision is { } expected)
        {
            // Every writer holds the lock, so the in-memory version is the one to compare with.
            _checks.Add(() =>
            {
                var actual = table.Get(id)?.Revision ?? 0;
                if (actual != expected)
                {
                    throw new StoreConflictException(key, expected, actual);
                }
            });
        }
        _writes.Add(new StoreWrite(key, table.Serialize(value)));
        _apply.Add(token => table.Apply(id, value, token));
        return this;
    }

    public StateTransaction Delete<T>(DocumentTable<T> table, string id) where T : class
    {
        EnsureOpen();
        _writes.Add(new StoreWrite(table.Key(id), null));
        _apply.Add(token => table.Apply(id, null, token));
        return this;
    }

    /// <summary>Runs <paramref name="action"/> once the transaction is durable (wake-ups of watchers that must not see lost writes).</summary>
    public StateTransaction AfterDurable(Action action)
    {
        EnsureOpen();
        _afterDurable.Add(action);
        return this;
    }

    public int PendingWrites => _writes.Count;

    /// <summary>Applies the writes, releases the lock and waits until they are durable. A transaction commits once.</summary>
    public async Task CommitAsync(CancellationToken ct = default)
    {
        EnsureOpen();
        if (_writes.Count == 0)
        {
            Release();
            foreach (var a in _afterDurable)
            {
                a();
            }
            return;
        }
        foreach (var check in _checks)
        {
            check();
        }
        var token = _state.NextVersionToken();
        foreach (var a in _apply)
        {
            a(token);
        }
        var durable = _state.EnqueueAsync(_writes.ToArray(), _afterDurable.ToArray());
        Release();
        // Once in the queue the writes go to the store whatever the caller does; cancellation only stops waiting.
        await durable.WaitAsync(ct).ConfigureAwait(false);
    }

    private void EnsureOpen()
    {
        if (_released)
        {
            throw new InvalidOperationException("The transaction has already committed.");
        }
    }

    private void Release()
    {
        if (!_released)
        {
            _released = true;
            _state.WriteLock.Release();
        }
    }

    public ValueTask DisposeAsync()
    {
        Release();
        return ValueTask.CompletedTask;
    }
}
