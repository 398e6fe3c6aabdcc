using System.Runtime.CompilerServices;
using Berth.Agent.Logs;
using Berth.Core.Agent;
using Berth.Core.Logs;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>The store's contract in memory: per stream, events above the highest sequence are appended, the rest dropped.</summary>
internal sealed class InMemoryLogIngest : ILogIngest
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(string, string), List<IngestedLogEvent>> _streams = [];
    private readonly HashSet<string> _groups = new(StringComparer.Ordinal);

    public int Calls { get; private set; }
    public int MaxBatchLines { get; private set; }

    public void CreateGroup(string group)
    {
        lock (_gate)
        {
            _groups.Add(group);
        }
    }

    public IReadOnlyList<IngestedLogEvent> Events(string group, string stream)
    {
        lock (_gate)
        {
            return _streams.TryGetValue((group, stream), out var l) ? [.. l] : [];
        }
    }

    public ValueTask<LogIngestResult> AppendAsync(string group, string stream, bool createGroup, IReadOnlyList<IngestedLogEvent> events, CancellationToken ct)
    {
        lock (_gate)
        {
            Calls++;
            MaxBatchLines = Math.Max(MaxBatchLines, events.Count);
            if (!_groups.Contains(group))
            {
                if (!createGroup)
                {
                    return ValueTask.FromResult(new LogIngestResult(0, "The specified log group does not exist."));
                }
                _groups.Add(group);
            }
            if (!_streams.TryGetValue((group, stream), out var list))
            {
                _streams[(group, stream)] = list = [];
            }
            var high = list.Count > 0 ? list[^1].Sequence : long.MinValue;
            foreach (var e in events)
            {
                if (e.Sequence > high)
                {
                    list.Add(e);
                    high = e.Sequence;
                }
            }
            return ValueTask.FromResult(new LogIngestResult(list.Count > 0 ? list[^1].Sequence : 0, null));
        }
    }
}

/// <summary>
/// The server end of the agent's stream for log batches: appends each batch to <see cref="InMemoryLogIngest"/> and
/// acknowledges it, unless told to lose the acknowledgement (a server that stored the batch and died before answering).
/// </summary>
internal sealed class FakeLogServer(InMemoryLogIngest ingest, LogShipper shipper)
{
    public int Batches;

    /// <summary>When it returns true for a batch number (1-based), the batch is stored but never acknowledged.</summary>
    public Func<int, bool> LoseAckOf { get; set; } = _ => false;

    public bool Send(AgentMessage m)
    {
        var b = m.LogBatch;
        var n = Interlocked.Increment(ref Batches);
        var check = LogBatchLimits.Check(b);
        _ = Task.Run(async () =>
        {
            var ack = new LogAck { BatchId = b.BatchId, Group = b.Group, Stream = b.Stream };
            if (check is not null)
            {
                ack.Error = check;
            }
            else
            {
                var r = await ingest.AppendAsync(b.Group, b.Stream, b.CreateGroup, b.Lines.Select(l => new IngestedLogEvent(l.Sequence, l.TimestampMs, l.Message)).ToList(), CancellationToken.None);
                ack.AcknowledgedSequence = r.AcknowledgedSequence;
                ack.Error = r.Error ?? "";
            }
            if (!LoseAckOf(n))
            {
                shipper.OnAck(ack);
            }
        });
        return true;
    }
}

/// <summary>Containers' outputs in memory, with Docker's since (inclusive) and follow semantics.</summary>
internal sealed class FakeLogSource : ILogSource
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Output> _outputs = new(StringComparer.Ordinal);

    /// <summary>Each ReadAsync call, with its since.</summary>
    public List<long?> Opens { get; } = [];

    /// <summary>When set, a read breaks after yielding this many lines (the engine's stream broke).</summary>
    public int? BreakAfter { get; set; }

    public void Write(string id, long timestampNs, string message)
    {
        lock (_gate)
        {
            Get(id).Lines.Add(new RawLogLine(timestampNs, message));
            Get(id).Signal();
        }
    }

    public void Exit(string id)
    {
        lock (_gate)
        {
            Get(id).Exited = true;
            Get(id).Signal();
        }
    }

    private Output Get(string id) => _outputs.TryGetValue(id, out var o) ? o : _outputs[id] = new Output();

    public async IAsyncEnumerable<RawLogLine> ReadAsync(string containerId, long? sinceNs, [EnumeratorCancellation] CancellationToken ct)
    {
        lock (_gate)
        {
            Opens.Add(sinceNs);
        }
        var pos = 0;
        var yielded = 0;
        while (true)
        {
            RawLogLine[] fresh;
            bool exited;
            Task changed;
            lock (_gate)
            {
                var o = Get(containerId);
                fresh = o.Lines.Skip(pos).ToArray();
                pos = o.Lines.Count;
                exited = o.Exited;
                changed = o.Changed.Task;
            }
            foreach (var l in fresh)
            {
                if (sinceNs is { } s && l.TimestampNs < s)
                {
                    continue;
                }
                if (BreakAfter is { } b && yielded >= b)
                {
                    throw new IOException("stream broke");
                }
                yielded++;
                yield return l;
            }
            if (exited)
            {
                yield break;
            }
            await changed.WaitAsync(ct);
        }
    }

    public Task<ContainerLogState> StateAsync(string containerId, CancellationToken ct)
    {
        lock (_gate)
        {
            return Task.FromResult(!_outputs.TryGetValue(containerId, out var o) ? ContainerLogState.Gone : o.Exited ? ContainerLogState.Exited : ContainerLogState.Running);
        }
    }

    private sealed class Output
    {
        public List<RawLogLine> Lines { get; } = [];
        public bool Exited { get; set; }
        public TaskCompletionSource Changed { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Signal()
        {
            var old = Changed;
            Changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
            old.TrySetResult();
        }
    }
}
