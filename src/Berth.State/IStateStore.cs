namespace Berth.State;

/// <summary>One stored document and the store revision at which it was last written.</summary>
public sealed record StoreEntry(string Key, byte[] Value, long Revision);

/// <summary>A change in the store; <see cref="Value"/> is null for a delete.</summary>
public sealed record StoreChange(string Key, byte[]? Value, long Revision);

/// <summary>
/// One write of a transaction. <see cref="ExpectedRevision"/>: null writes unconditionally, 0 requires
/// that the key does not exist, any other value requires that the key was last written at exactly that revision.
/// A null <see cref="Value"/> deletes the key.
/// </summary>
public sealed record StoreWrite(string Key, byte[]? Value, long? ExpectedRevision = null);

/// <summary>Thrown when a compare-and-swap precondition does not hold; nothing of the transaction was applied.</summary>
public sealed class StoreConflictException(string key, long? expected, long actual)
    : Exception($"Key '{key}' is at revision {actual}, expected {(expected is 0 ? "absent" : expected?.ToString(System.Globalization.CultureInfo.InvariantCulture))}.")
{
    public string Key { get; } = key;
}

/// <summary>Thrown by a watch whose start revision is older than the retained change log; relist and watch again.</summary>
public sealed class StoreCompactedException(long requested, long oldest)
    : Exception($"Revision {requested} is compacted; the oldest retained change is {oldest}.");

/// <summary>
/// The state store: versioned JSON documents under string keys, with compare-and-swap transactions
/// and a change feed. Every backend passes the same contract tests.
/// </summary>
public interface IStateStore : IAsyncDisposable
{
    /// <summary>The revision of the newest committed write (0 for an empty store).</summary>
    long Revision { get; }

    ValueTask<StoreEntry?> GetAsync(string key, CancellationToken ct = default);

    /// <summary>Every entry whose key starts with <paramref name="prefix"/>, ordered by key.</summary>
    ValueTask<IReadOnlyList<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default);

    /// <summary>Applies all writes atomically or none; returns the new store revision.</summary>
    ValueTask<long> CommitAsync(IReadOnlyList<StoreWrite> writes, CancellationToken ct = default);

    /// <summary>Changes under <paramref name="prefix"/> with a revision greater than <paramref name="afterRevision"/>, then live ones.</summary>
    IAsyncEnumerable<StoreChange> WatchAsync(string prefix, long afterRevision, CancellationToken ct = default);
}

public static class StateStoreExtensions
{
    public static ValueTask<long> PutAsync(this IStateStore store, string key, byte[] value, long? expectedRevision = null, CancellationToken ct = default)
        => store.CommitAsync([new StoreWrite(key, value, expectedRevision)], ct);

    public static ValueTask<long> DeleteAsync(this IStateStore store, string key, long? expectedRevision = null, CancellationToken ct = default)
        => store.CommitAsync([new StoreWrite(key, null, expectedRevision)], ct);
}
