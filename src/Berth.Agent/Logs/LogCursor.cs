using System.Text.Json;
using System.Text.Json.Serialization;

namespace Berth.Agent.Logs;

/// <summary>
/// A position in a container's output: the last line's sequence, its engine timestamp (ns), and how many lines
/// with that same timestamp had been seen up to and including it. The count makes a resume exact: the follower
/// asks the engine for lines since that timestamp and skips the first <see cref="CountAtTimestamp"/> of them.
/// </summary>
internal readonly record struct LogCursor(long Sequence, long TimestampNs, int CountAtTimestamp)
{
    public static readonly LogCursor Start = default;
}

/// <summary>
/// Turns the engine's lines into sequenced ones: sequence = the line's timestamp in ns, bumped to the previous
/// sequence + 1 on ties (or when the clock went back), so sequences strictly increase and, read again from the same
/// cursor, the same lines get the same sequences. Lines at or before the cursor are skipped.
/// </summary>
internal sealed class SequenceTracker(LogCursor from)
{
    private long _sequence = from.Sequence;
    private long _timestamp = from.TimestampNs;
    private int _count = from.CountAtTimestamp;
    private long? _resumeTs = from == LogCursor.Start ? null : from.TimestampNs;
    private int _skip = from.CountAtTimestamp;

    /// <summary>The last line handed out (or the starting cursor).</summary>
    public LogCursor Position => new(_sequence, _timestamp, _count);

    /// <summary>What to ask the engine for on (re)opening: one ns before the position, as Docker's since may be exclusive.</summary>
    public long? SinceNs => Position == LogCursor.Start ? null : _timestamp - 1;

    /// <summary>Reopening the engine's stream: the lines up to <see cref="Position"/> come again and are skipped.</summary>
    public void Reopen()
    {
        if (Position != LogCursor.Start)
        {
            _resumeTs = _timestamp;
            _skip = _count;
        }
    }

    /// <summary>False when the line was seen before; otherwise its cursor (sequence, timestamp, count).</summary>
    public bool TryNext(long timestampNs, out LogCursor cursor)
    {
        if (_resumeTs is { } r)
        {
            if (timestampNs < r || timestampNs == r && _skip > 0)
            {
                if (timestampNs == r)
                {
                    _skip--;
                }
                cursor = default;
                return false;
            }
            _resumeTs = null;
        }
        _count = timestampNs == _timestamp ? _count + 1 : 1;
        _timestamp = timestampNs;
        _sequence = Math.Max(timestampNs, _sequence + 1);
        cursor = Position;
        return true;
    }
}

/// <summary>One small file per followed container under the agent's data directory: its acknowledged cursor.</summary>
internal sealed class LogCursorStore(string? directory)
{
    public LogCursor Load(string containerId)
    {
        if (directory is null)
        {
            return LogCursor.Start;
        }
        try
        {
            var file = Path.Combine(directory, containerId + ".json");
            if (!File.Exists(file))
            {
                return LogCursor.Start;
            }
            var saved = JsonSerializer.Deserialize(File.ReadAllText(file), LogCursorJsonContext.Default.SavedCursor);
            return saved is null ? LogCursor.Start : new LogCursor(saved.Sequence, saved.TimestampNs, saved.CountAtTimestamp);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            // Unreadable: start over; the store drops what it already holds (same sequences), so nothing doubles.
            return LogCursor.Start;
        }
    }

    /// <summary>Written to a temporary file and renamed over the old one: a kill at any point leaves the old or the new cursor.</summary>
    public void Save(string containerId, LogCursor cursor)
    {
        if (directory is null)
        {
            return;
        }
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, containerId + ".json");
        var temp = file + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(new SavedCursor(cursor.Sequence, cursor.TimestampNs, cursor.CountAtTimestamp), LogCursorJsonContext.Default.SavedCursor));
        File.Move(temp, file, overwrite: true);
    }

    public void Delete(string containerId)
    {
        if (directory is not null)
        {
            File.Delete(Path.Combine(directory, containerId + ".json"));
        }
    }
}

internal sealed record SavedCursor(long Sequence, long TimestampNs, int CountAtTimestamp);

[JsonSerializable(typeof(SavedCursor))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class LogCursorJsonContext : JsonSerializerContext;
