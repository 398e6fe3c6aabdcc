using Berth.Core.Agent;

namespace Berth.Agent.Logs;

/// <summary>A line read from the engine and sequenced, waiting to be shipped.</summary>
internal readonly record struct PendingLine(LogCursor Cursor, string Message)
{
    /// <summary>What the line counts against a batch's byte bound (computed once).</summary>
    public int Cost { get; } = LogBatchLimits.Cost(Message);
}

/// <summary>
/// Between a container's reader and its shipper, bounded in bytes. Blocking: a full buffer makes the reader wait
/// (the backlog stays in the engine's json-file). Dropping (non-blocking mode): a full buffer drops its oldest lines.
/// </summary>
internal sealed class LineBuffer(long capacityBytes, bool dropOldest)
{
    private readonly Queue<PendingLine> _lines = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource _changed = NewSignal();
    private long _bytes;
    private bool _completed;
    private long _dropped;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _lines.Count;
            }
        }
    }

    public long Bytes
    {
        get
        {
            lock (_gate)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Lines dropped so far (non-blocking mode only).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The reader is done: no more lines will come.</summary>
    public bool Completed
    {
        get
        {
            lock (_gate)
            {
                return _completed;
            }
        }
    }

    /// <summary>Enough for a full batch is waiting.</summary>
    public bool FullBatchReady
    {
        get
        {
            lock (_gate)
            {
                return FullLocked;
            }
        }
    }

    private bool FullLocked => _lines.Count >= LogBatchLimits.MaxLines || _bytes >= LogBatchLimits.MaxBytes;

    public async ValueTask AddAsync(PendingLine line, CancellationToken ct)
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (dropOldest)
                {
                    while (_lines.Count > 0 && _bytes + line.Cost > capacityBytes)
                    {
                        _bytes -= _lines.Dequeue().Cost;
                        Interlocked.Increment(ref _dropped);
                    }
                }
                if (_lines.Count == 0 || _bytes + line.Cost <= capacityBytes)
                {
                    var wasFull = FullLocked;
                    _lines.Enqueue(line);
                    _bytes += line.Cost;
                    // The shipper waits for the first line or for a full batch: wake it only then, not per line.
                    if (_lines.Count == 1 || !wasFull && FullLocked)
                    {
                        SignalLocked();
                    }
                    return;
                }
                wait = _changed.Task;
            }
            await wait.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    public void Complete()
    {
        lock (_gate)
        {
            _completed = true;
            SignalLocked();
        }
    }

    /// <summary>Completes at the next change that matters: the first line, a full batch's worth, a take, the completion.</summary>
    public Task ChangedAsync()
    {
        lock (_gate)
        {
            return _changed.Task;
        }
    }

    /// <summary>Removes up to one batch's worth (PutLogEvents' bounds) from the head.</summary>
    public List<PendingLine> Take()
    {
        var batch = new List<PendingLine>();
        lock (_gate)
        {
            var bytes = 0L;
            while (_lines.Count > 0 && batch.Count < LogBatchLimits.MaxLines && bytes + _lines.Peek().Cost <= LogBatchLimits.MaxBytes)
            {
                var l = _lines.Dequeue();
                bytes += l.Cost;
                _bytes -= l.Cost;
                batch.Add(l);
            }
            if (batch.Count > 0)
            {
                SignalLocked();
            }
        }
        return batch;
    }

    private void SignalLocked()
    {
        var old = _changed;
        _changed = NewSignal();
        old.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
