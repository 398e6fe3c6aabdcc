using System.Threading.Channels;
using Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>
/// The reporting rules both engines share: per-task sequences that only grow and continue from the server's
/// <see cref="DesiredTask.LastSequence"/>; no report for a task the server has not listed yet (an adopted
/// container's report waits for the snapshot); unchanged reports are not sent twice.
/// </summary>
/// <remarks>Thread-safe: one lock, held only for dictionary work, never across I/O.</remarks>
internal sealed class ReportBook
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Channel<TaskStatusReport> _out = Channel.CreateUnbounded<TaskStatusReport>(new UnboundedChannelOptions { SingleReader = true });

    public ChannelReader<TaskStatusReport> Reader => _out.Reader;

    /// <summary>
    /// The server listed the task (in a snapshot or a delta) with the last sequence it applied. Releases a report
    /// held until now. After a snapshot (a fresh connection) the last report is sent again when the server
    /// has not applied it: it may have been lost with the previous connection.
    /// </summary>
    public void Learn(string taskArn, long lastSequence, bool snapshot)
    {
        lock (_entries)
        {
            var e = GetOrAdd(taskArn);
            e.Sequence = Math.Max(e.Sequence, lastSequence);
            var wasKnown = e.Known;
            e.Known = true;
            if (e.Last is null)
            {
                return;
            }
            if (!wasKnown || e.Last.Sequence == 0)
            {
                Send(e, e.Last);
            }
            else if (snapshot && e.Last.Sequence > lastSequence)
            {
                _out.Writer.TryWrite(e.Last);
            }
        }
    }

    /// <summary>Records <paramref name="report"/> as the task's latest and sends it when the server knows the task; false when it equals the last one.</summary>
    public bool Publish(TaskStatusReport report)
    {
        lock (_entries)
        {
            var e = GetOrAdd(report.TaskArn);
            if (e.Last is not null)
            {
                report.Sequence = e.Last.Sequence;
                if (e.Last.Equals(report))
                {
                    return false;
                }
            }
            report.Sequence = 0;
            e.Last = report;
            if (e.Known)
            {
                Send(e, report);
            }
            return true;
        }
    }

    /// <summary>The latest report of a task (sent or held), if any.</summary>
    public TaskStatusReport? Last(string taskArn)
    {
        lock (_entries)
        {
            return _entries.TryGetValue(taskArn, out var e) ? e.Last : null;
        }
    }

    public void Forget(string taskArn)
    {
        lock (_entries)
        {
            _entries.Remove(taskArn);
        }
    }

    private void Send(Entry e, TaskStatusReport r)
    {
        r.Sequence = ++e.Sequence;
        _out.Writer.TryWrite(r);
    }

    private Entry GetOrAdd(string taskArn)
    {
        if (!_entries.TryGetValue(taskArn, out var e))
        {
            e = new Entry();
            _entries[taskArn] = e;
        }
        return e;
    }

    private sealed class Entry
    {
        public long Sequence;
        public bool Known;
        public TaskStatusReport? Last;
    }
}
