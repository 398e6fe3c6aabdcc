namespace Berth.State;

/// <summary>
/// A unit of change to the control plane's state: holds the state's write lock from
/// <see cref="DocumentState.BeginAsync"/> until disposed, so read-decide-write sequences (placement,
/// name uniqueness, revision numbers) never race. Nothing is visible until <see cref="CommitAsync"/>.
/// </summary>
public sealed class StateTransaction : IAsyncDisposable
{
    private readonly DocumentState _state;
    private readonly List<StoreWrite> _writes = [];
    private readonly List<Action<long>> _apply = [];
    private bool _released;

    internal StateTransaction(DocumentState state) => _state = state;

    /// <summary>Writes <paramref name="value"/> under <paramref name="id"/>; with <paramref name="expectedRevision"/> only if it is unchanged (0 = must not exist).</summary>
    public StateTransaction Put<T>(DocumentTable<T> table, string id, T value, long? expectedRevision = null) where T : class
    {
        _writes.Add(new StoreWrite(table.Key(id), table.Serialize(value), expectedRevision));
        _apply.Add(rev => table.Apply(id, value, rev));
        return this;
    }

    public StateTransaction Delete<T>(DocumentTable<T> table, string id) where T : class
    {
        _writes.Add(new StoreWrite(table.Key(id), null));
        _apply.Add(rev => table.Apply(id, null, rev));
        return this;
    }

    public int PendingWrites => _writes.Count;

    public async Task CommitAsync(CancellationToken ct = default)
    {
        if (_writes.Count == 0)
        {
            return;
        }
        var rev = await _state.Store.CommitAsync(_writes, ct).ConfigureAwait(false);
        foreach (var a in _apply)
        {
            a(rev);
        }
        _writes.Clear();
        _apply.Clear();
        _state.NotifyChanged();
    }

    public ValueTask DisposeAsync()
    {
        if (!_released)
        {
            _released = true;
            _state.WriteLock.Release();
        }
        return ValueTask.CompletedTask;
    }
}
