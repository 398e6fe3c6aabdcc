using System.Collections.Concurrent;
using System.Text;
using Berth.Agent.Runtime;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging;
using Proto = Berth.Core.Agent;

namespace Berth.Agent.Logs;

/// <summary>
/// Ships the output of every container that logs with <c>awslogs</c> to the control plane: one follower per
/// container reads its json-file (from disk, or through the engine's logs API), sequences the lines (<see cref="SequenceTracker"/>), batches
/// them, sends one batch at a time over the agent's stream and waits for its <see cref="LogAck"/>, then records the
/// acknowledged cursor in <c>DATA/agent/logs/CONTAINER_ID.json</c>. After a restart a follower resumes from that
/// cursor; a batch is resent with the same sequences until acknowledged, and the store drops what it already holds,
/// so no line is lost or stored twice.
/// </summary>
internal sealed partial class LogShipper : IAsyncDisposable
{
    /// <summary>A batch waits at most this long for more lines before it is sent.</summary>
    public static readonly TimeSpan DefaultFlushInterval = TimeSpan.FromMilliseconds(200);

    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan MaxRetry = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ReopenDelay = TimeSpan.FromSeconds(1);

    private readonly ILogSource _source;
    private readonly LogCursorStore _cursors;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TimeSpan _flushInterval;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, Follower> _followers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<LogAck>> _pending = new();
    private readonly Lock _transportGate = new();
    private Func<AgentMessage, bool>? _send;
    private TaskCompletionSource _attached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _batchIds;

    /// <param name="stateDirectory">Where acknowledged cursors are kept (null: in memory only, for tests).</param>
    public LogShipper(ILogSource source, string? stateDirectory, TimeProvider time, ILogger logger, TimeSpan? flushInterval = null)
    {
        _source = source;
        _cursors = new LogCursorStore(stateDirectory);
        _time = time;
        _logger = logger;
        _flushInterval = flushInterval ?? DefaultFlushInterval;
    }

    // ---- the agent's stream ----

    /// <summary>A stream to the server is registered: batches go out through <paramref name="send"/>.</summary>
    public void Attach(Func<AgentMessage, bool> send)
    {
        lock (_transportGate)
        {
            _send = send;
            _attached.TrySetResult();
        }
    }

    /// <summary>The stream ended: batches in flight are sent again on the next one.</summary>
    public void Detach()
    {
        lock (_transportGate)
        {
            _send = null;
            if (_attached.Task.IsCompleted)
            {
                _attached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var p))
            {
                p.TrySetException(new LogTransportException("the connection to the server was lost"));
            }
        }
    }

    public void OnAck(LogAck ack)
    {
        if (_pending.TryRemove(ack.BatchId, out var p))
        {
            p.TrySetResult(ack);
        }
    }

    /// <summary>Sends <paramref name="batch"/> (waiting for a stream when there is none) and waits for its acknowledgement.</summary>
    internal async Task<LogAck> SendAsync(LogBatch batch, CancellationToken ct)
    {
        while (true)
        {
            Func<AgentMessage, bool>? send;
            Task attached;
            lock (_transportGate)
            {
                send = _send;
                attached = _attached.Task;
            }
            if (send is null)
            {
                await attached.WaitAsync(ct).ConfigureAwait(false);
                continue;
            }
            batch.BatchId = Interlocked.Increment(ref _batchIds);
            var tcs = new TaskCompletionSource<LogAck>(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending[batch.BatchId] = tcs;
            if (!send(new AgentMessage { LogBatch = batch }))
            {
                _pending.TryRemove(batch.BatchId, out _);
                throw new LogTransportException("the connection to the server is closing");
            }
            try
            {
                return await tcs.Task.WaitAsync(AckTimeout, _time, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new LogTransportException($"no acknowledgement within {AckTimeout.TotalSeconds} s");
            }
            finally
            {
                _pending.TryRemove(batch.BatchId, out _);
            }
        }
    }

    // ---- containers ----

    /// <summary>
    /// Called with what the engine observed of a task: every container that logs with awslogs and has started
    /// (running or exited) gets a follower, unless it has one or had one that finished.
    /// </summary>
    public void Observe(string taskArn, TaskSpec? spec, IEnumerable<RuntimeContainer> containers)
    {
        if (spec is null || _stop.IsCancellationRequested)
        {
            return;
        }
        foreach (var c in containers)
        {
            if (c.State == "created" || _followers.ContainsKey(c.Id))
            {
                continue;
            }
            var def = spec.Containers.FirstOrDefault(d => d.Name == c.ContainerName);
            if (def is null || AwsLogsTarget.For(def, taskArn, c.Id) is not { } target)
            {
                continue;
            }
            var follower = new Follower(this, c.Id, target);
            if (_followers.TryAdd(c.Id, follower))
            {
                follower.Start(_stop.Token);
            }
        }
    }

    /// <summary>True when nothing of the container's output is waiting to be shipped (or it is not followed).</summary>
    public bool IsDrained(string containerId) => !_followers.TryGetValue(containerId, out var f) || f.Completion.IsCompleted;

    /// <summary>The container was removed: forget its follower and cursor.</summary>
    public void Removed(string containerId)
    {
        if (_followers.TryRemove(containerId, out var f))
        {
            f.Cancel();
        }
        try
        {
            _cursors.Delete(containerId);
        }
        catch (IOException e)
        {
            LogCursorDeleteFailed(_logger, containerId, e.Message);
        }
    }

    /// <summary>Completes when the container's follower has shipped everything and stopped (tests).</summary>
    internal Task WhenDrainedAsync(string containerId) => _followers.TryGetValue(containerId, out var f) ? f.Completion : Task.CompletedTask;

    /// <summary>Lines a non-blocking follower dropped so far (tests).</summary>
    internal long Dropped(string containerId) => _followers.TryGetValue(containerId, out var f) ? f.Buffer.Dropped : 0;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var f in _followers.Values)
        {
            await f.Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _stop.Dispose();
    }

    /// <summary>Cuts a message to CloudWatch's bound for one event.</summary>
    internal static string Bound(string message)
    {
        if (message.Length <= LogBatchLimits.MaxLineBytes / 4 || Encoding.UTF8.GetByteCount(message) <= LogBatchLimits.MaxLineBytes)
        {
            return message;
        }
        var cut = Math.Min(message.Length, LogBatchLimits.MaxLineBytes);
        while (Encoding.UTF8.GetByteCount(message.AsSpan(0, cut)) > LogBatchLimits.MaxLineBytes)
        {
            cut = cut * 9 / 10;
        }
        if (cut > 0 && char.IsHighSurrogate(message[cut - 1]))
        {
            cut--;
        }
        return message[..cut];
    }

    /// <summary>One container: a reader (engine → buffer) and a shipper (buffer → server), until the container stopped and all is acknowledged.</summary>
    private sealed class Follower(LogShipper owner, string containerId, AwsLogsTarget target)
    {
        private readonly CancellationTokenSource _cts = new();
        private LogCursor _acked;

        public LineBuffer Buffer { get; } = new(target.Blocking ? AwsLogsTarget.BlockingBufferBytes : target.MaxBufferBytes, dropOldest: !target.Blocking);

        public Task Completion { get; private set; } = Task.CompletedTask;

        public void Start(CancellationToken stop)
        {
            var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, _cts.Token);
            Completion = Task.Run(async () =>
            {
                try
                {
                    await RunAsync(linked.Token).ConfigureAwait(false);
                }
                finally
                {
                    linked.Dispose();
                }
            }, CancellationToken.None);
        }

        public void Cancel()
        {
            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        private async Task RunAsync(CancellationToken ct)
        {
            _acked = owner._cursors.Load(containerId);
            LogFollowing(owner._logger, containerId, target.Group, target.Stream, _acked.Sequence);
            var reading = ReadAsync(ct);
            var shipping = ShipAsync(ct);
            try
            {
                await Task.WhenAll(reading, shipping).ConfigureAwait(false);
                LogDone(owner._logger, containerId, target.Group, target.Stream);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                LogFollowerFailed(owner._logger, e, containerId);
            }
        }

        private async Task ReadAsync(CancellationToken ct)
        {
            var tracker = new SequenceTracker(_acked);
            long dropsReported = 0;
            try
            {
                while (true)
                {
                    tracker.Reopen();
                    try
                    {
                        await foreach (var raw in owner._source.ReadAsync(containerId, tracker.SinceNs, ct).ConfigureAwait(false))
                        {
                            if (tracker.TryNext(raw.TimestampNs, out var cursor))
                            {
                                await Buffer.AddAsync(new PendingLine(cursor, Bound(raw.Message)), ct).ConfigureAwait(false);
                            }
                            if (Buffer.Dropped - dropsReported >= 1000)
                            {
                                dropsReported = Buffer.Dropped;
                                LogDropped(owner._logger, containerId, dropsReported, target.MaxBufferBytes);
                            }
                        }
                    }
                    catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                    {
                        LogReadFailed(owner._logger, containerId, e.GetBaseException().Message);
                    }
                    // The engine ended the stream: the container stopped (everything was read), or the stream broke.
                    if (await owner._source.StateAsync(containerId, ct).ConfigureAwait(false) != ContainerLogState.Running)
                    {
                        return;
                    }
                    await Task.Delay(ReopenDelay, owner._time, ct).ConfigureAwait(false);
                }
            }
            finally
            {
                Buffer.Complete();
            }
        }

        private async Task ShipAsync(CancellationToken ct)
        {
            while (true)
            {
                while (Buffer.Count == 0 && !Buffer.Completed)
                {
                    await Buffer.ChangedAsync().WaitAsync(ct).ConfigureAwait(false);
                }
                if (Buffer.Count == 0)
                {
                    return; // completed and empty
                }
                // Flush after the interval, or at once when a full batch is waiting or the reader is done.
                var since = owner._time.GetTimestamp();
                while (!Buffer.Completed && !Buffer.FullBatchReady)
                {
                    var left = owner._flushInterval - owner._time.GetElapsedTime(since);
                    if (left <= TimeSpan.Zero)
                    {
                        break;
                    }
                    try
                    {
                        await Buffer.ChangedAsync().WaitAsync(left, owner._time, ct).ConfigureAwait(false);
                    }
                    catch (TimeoutException)
                    {
                        break;
                    }
                }
                var lines = Buffer.Take();
                if (lines.Count > 0)
                {
                    await DeliverAsync(lines, ct).ConfigureAwait(false);
                }
            }
        }

        /// <summary>Sends one batch until the server has it; then records its last line as acknowledged.</summary>
        private async Task DeliverAsync(List<PendingLine> lines, CancellationToken ct)
        {
            var batch = new LogBatch { Group = target.Group, Stream = target.Stream, CreateGroup = target.CreateGroup, Region = target.Region };
            foreach (var l in lines)
            {
                batch.Lines.Add(new LogLine { Sequence = l.Cursor.Sequence, TimestampMs = l.Cursor.TimestampNs / 1_000_000, Message = l.Message });
            }
            var last = lines[^1].Cursor;
            var retry = FirstRetry;
            var failures = 0;
            while (true)
            {
                string failure;
                try
                {
                    var ack = await owner.SendAsync(batch, ct).ConfigureAwait(false);
                    if (ack.Error.Length == 0 && ack.AcknowledgedSequence >= last.Sequence)
                    {
                        _acked = last;
                        owner._cursors.Save(containerId, last);
                        if (failures > 0)
                        {
                            LogRecovered(owner._logger, target.Group, target.Stream, failures);
                        }
                        return;
                    }
                    failure = ack.Error.Length > 0 ? ack.Error : $"the server acknowledged sequence {ack.AcknowledgedSequence}, below the batch's last {last.Sequence}";
                }
                catch (LogTransportException e)
                {
                    failure = e.Message;
                }
                failures++;
                if (failures == 1 || failures % 30 == 0)
                {
                    LogShipFailed(owner._logger, target.Group, target.Stream, failure, failures);
                }
                await Task.Delay(retry, owner._time, ct).ConfigureAwait(false);
                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, MaxRetry.Ticks));
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Following {ContainerId} into {Group}/{Stream} from sequence {Sequence}")]
    private static partial void LogFollowing(ILogger logger, string containerId, string group, string stream, long sequence);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Container {ContainerId} stopped and its output is shipped to {Group}/{Stream}")]
    private static partial void LogDone(ILogger logger, string containerId, string group, string stream);

    [LoggerMessage(Level = LogLevel.Error, Message = "Log follower of {ContainerId} failed")]
    private static partial void LogFollowerFailed(ILogger logger, Exception e, string containerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the output of {ContainerId} failed ({Reason}); reading again from the last line read")]
    private static partial void LogReadFailed(ILogger logger, string containerId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Container {ContainerId} (mode non-blocking): {Dropped} lines dropped so far, its buffer of {MaxBufferBytes} bytes being full")]
    private static partial void LogDropped(ILogger logger, string containerId, long dropped, long maxBufferBytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shipping to {Group}/{Stream} failed ({Reason}); retrying (attempt {Attempt})")]
    private static partial void LogShipFailed(ILogger logger, string group, string stream, string reason, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shipping to {Group}/{Stream} works again after {Failures} failed attempts")]
    private static partial void LogRecovered(ILogger logger, string group, string stream, int failures);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not delete the log cursor of {ContainerId}: {Reason}")]
    private static partial void LogCursorDeleteFailed(ILogger logger, string containerId, string reason);
}

/// <summary>A batch could not be delivered or acknowledged on the current stream; it is sent again.</summary>
internal sealed class LogTransportException(string message) : Exception(message);
