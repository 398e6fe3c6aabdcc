namespace Berth.Agent;

/// <summary>
/// One timer for the heartbeats of many connections: members are spread over <c>slots</c> buckets and each tick
/// beats one bucket, so N connections cost one timer and their heartbeats are staggered over the interval.
/// </summary>
internal sealed class HeartbeatWheel : IAsyncDisposable
{
    private readonly HashSet<Member>[] _buckets;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _next;

    public HeartbeatWheel(TimeSpan interval, int slots, TimeProvider time)
    {
        _buckets = new HashSet<Member>[Math.Max(1, slots)];
        for (var i = 0; i < _buckets.Length; i++)
        {
            _buckets[i] = [];
        }
        _loop = Task.Run(() => LoopAsync(interval / _buckets.Length, time, _stop.Token));
    }

    /// <summary>Calls <paramref name="beat"/> once per interval until the returned handle is disposed.</summary>
    public IDisposable Join(Action beat)
    {
        var slot = (int)((uint)Interlocked.Increment(ref _next) % (uint)_buckets.Length);
        var member = new Member(this, slot, beat);
        lock (_buckets[slot])
        {
            _buckets[slot].Add(member);
        }
        return member;
    }

    private async Task LoopAsync(TimeSpan period, TimeProvider time, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(period, time);
        var tick = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                var bucket = _buckets[tick++ % _buckets.Length];
                Member[] members;
                lock (bucket)
                {
                    members = [.. bucket];
                }
                foreach (var m in members)
                {
                    m.Beat();
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private sealed class Member(HeartbeatWheel wheel, int slot, Action beat) : IDisposable
    {
        public void Beat() => beat();

        public void Dispose()
        {
            var bucket = wheel._buckets[slot];
            lock (bucket)
            {
                bucket.Remove(this);
            }
        }
    }
}
