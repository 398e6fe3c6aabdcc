namespace Berth.Core.Logs;

/// <summary>
/// Where the agent gateway hands the log lines agents ship (a container's <c>awslogs</c> output) to the
/// CloudWatch Logs store. One writer per stream (a stream is one container of one task), so ingestion is
/// idempotent by sequence: the store remembers the highest <see cref="IngestedLogEvent.Sequence"/> it has
/// appended to each stream and drops any event at or below it. An agent that restarts (or reconnects to a
/// restarted server) resends from what it last saw acknowledged, and nothing is stored twice.
/// </summary>
public interface ILogIngest
{
    /// <summary>
    /// Appends <paramref name="events"/> (ordered by sequence) to <paramref name="group"/>/<paramref name="stream"/>,
    /// creating the stream when missing, and the group too when <paramref name="createGroup"/> (awslogs-create-group).
    /// The events are durable when the returned task completes successfully.
    /// </summary>
    ValueTask<LogIngestResult> AppendAsync(string group, string stream, bool createGroup, IReadOnlyList<IngestedLogEvent> events, CancellationToken ct);

    /// <summary>
    /// As <see cref="AppendAsync"/>, into <paramref name="region"/>'s log groups (the container's awslogs-region, else
    /// its task's region). A store without regions keeps one namespace.
    /// </summary>
    ValueTask<LogIngestResult> AppendInRegionAsync(string region, string group, string stream, bool createGroup, IReadOnlyList<IngestedLogEvent> events, CancellationToken ct)
        => AppendAsync(group, stream, createGroup, events, ct);
}

/// <param name="Sequence">Strictly increasing per stream, chosen by the writer (the agent uses the line's engine timestamp in nanoseconds, bumped by one on ties).</param>
/// <param name="TimestampMs">The event's time, Unix milliseconds, as CloudWatch Logs stores it.</param>
public readonly record struct IngestedLogEvent(long Sequence, long TimestampMs, string Message);

/// <param name="AcknowledgedSequence">The highest sequence the stream now holds (the writer may forget everything up to it).</param>
/// <param name="Error">Null on success; otherwise why nothing was stored (e.g. "The specified log group does not exist."), fit for a log line.</param>
public readonly record struct LogIngestResult(long AcknowledgedSequence, string? Error);
