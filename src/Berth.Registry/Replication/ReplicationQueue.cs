using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Berth.Registry.Replication;

/// <summary>
/// The replication worker's work queue: a push announces its image here after its commit (never waiting for the
/// copy); a key already queued is not queued twice. The queue is only a hint: the IN_PROGRESS entries in the store
/// are the truth, and the worker looks for them again at start and at every resync, so a lost key heals.
/// </summary>
public sealed class ReplicationQueue
{
    private readonly Channel<ReplicationKey> _channel = Channel.CreateUnbounded<ReplicationKey>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<ReplicationKey, byte> _queued = new();

    public void Enqueue(ReplicationKey key)
    {
        if (_queued.TryAdd(key, 0))
        {
            _channel.Writer.TryWrite(key);
        }
    }

    /// <summary>Waits for a key; false when <paramref name="ct"/> ends the wait first.</summary>
    internal async ValueTask<ReplicationKey?> TakeAsync(CancellationToken ct)
    {
        try
        {
            var key = await _channel.Reader.ReadAsync(ct).ConfigureAwait(false);
            _queued.TryRemove(key, out _);
            return key;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return null;
        }
    }

    internal int Count => _queued.Count;
}
