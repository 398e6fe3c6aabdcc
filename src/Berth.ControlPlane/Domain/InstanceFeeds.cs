using System.Collections.Concurrent;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// What each container instance's agent stream is waiting for: the ids of its tasks that changed since
/// it last sent, and a signal. A change to a task marks only the feed of the instance that owns it, and
/// the feed is woken once the change is durable (<see cref="WakeDurable"/>), so a stream never wakes for
/// another instance's work and never hears of a change the store could still lose.
/// </summary>
public sealed class InstanceFeeds
{
    private readonly ConcurrentDictionary<string, Feed> _feeds = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<Feed> _toWake = new();

    /// <summary>The feed of one instance ("{cluster}/{id}"), created on first use.</summary>
    public Feed Of(string instanceKey) => _feeds.GetOrAdd(instanceKey, _ => new Feed());

    /// <summary>Records that a task of the instance changed (called under the write lock, in commit order).</summary>
    public void MarkChanged(string instanceKey, string taskKey)
    {
        var feed = Of(instanceKey);
        if (feed.Mark(taskKey))
        {
            _toWake.Enqueue(feed);
        }
    }

    /// <summary>Wakes every feed marked before the latest durable commit.</summary>
    public void WakeDurable()
    {
        while (_toWake.TryDequeue(out var feed))
        {
            feed.Wake();
        }
    }

    public sealed class Feed
    {
        private readonly object _gate = new();
        private HashSet<string> _changed = new(StringComparer.Ordinal);
        private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _generation;

        /// <summary>Bumped for every batch of changes taken; the generation sent to the agent.</summary>
        public long NextGeneration() => Interlocked.Increment(ref _generation);

        public long Generation => Interlocked.Read(ref _generation);

        internal bool Mark(string taskKey)
        {
            lock (_gate)
            {
                var first = _changed.Count == 0;
                _changed.Add(taskKey);
                return first;
            }
        }

        internal void Wake()
        {
            lock (_gate)
            {
                _signal.TrySetResult();
            }
        }

        /// <summary>Takes the changed task ids (clears them) and re-arms the signal.</summary>
        public HashSet<string> Take()
        {
            lock (_gate)
            {
                var taken = _changed;
                _changed = new HashSet<string>(StringComparer.Ordinal);
                if (_signal.Task.IsCompleted)
                {
                    _signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                return taken;
            }
        }

        /// <summary>Completes when a change has been marked and made durable since the last <see cref="Take"/>.</summary>
        public Task WaitAsync(CancellationToken ct)
        {
            lock (_gate)
            {
                return _signal.Task.WaitAsync(ct);
            }
        }
    }
}
