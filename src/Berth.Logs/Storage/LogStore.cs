using System.Collections.Immutable;
using System.Text.Json;
using Berth.Aws.Protocol;
using Berth.Core.Logs;

namespace Berth.Logs.Storage;

/// <summary>CloudWatch Logs' error types and the messages AWS words them with.</summary>
internal static class LogsErrors
{
    public static AwsException GroupNotFound() => new("ResourceNotFoundException", "The specified log group does not exist.");
    public static AwsException StreamNotFound() => new("ResourceNotFoundException", "The specified log stream does not exist.");
    public static AwsException GroupExists() => new("ResourceAlreadyExistsException", "The specified log group already exists");
    public static AwsException StreamExists() => new("ResourceAlreadyExistsException", "The specified log stream already exists");
    public static AwsException Invalid(string message) => AwsException.InvalidParameter(message);
}

/// <summary>A log group: its settings (one small document) and its streams.</summary>
internal sealed class LogGroupState(string name, long creationTime, string directory)
{
    public string Name { get; } = name;
    public long CreationTime { get; } = creationTime;
    public string Directory { get; } = directory;
    public int? RetentionInDays { get; set; }
    public ImmutableSortedDictionary<string, string> Tags { get; set; } = ImmutableSortedDictionary<string, string>.Empty;
    public Dictionary<string, StreamLog> Streams { get; } = new(StringComparer.Ordinal);
    public bool Deleted { get; set; }
}

/// <summary>Settings of the log store.</summary>
public sealed record LogStoreOptions
{
    /// <summary>Directory holding groups/ (DATA/logs).</summary>
    public required string DataDirectory { get; init; }

    /// <summary>A segment is closed and a new one started once it holds this many bytes.</summary>
    public long SegmentBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>How often the retention sweeper runs.</summary>
    public TimeSpan RetentionSweepInterval { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// The CloudWatch Logs store: groups and streams as directories under DATA/logs/groups (named by a hash of the
/// name; the name itself is in group.json / stream.json), each stream a series of append-only segments.
/// Metadata is in memory (groups, streams, per-segment summaries); events are only ever on disk.
/// </summary>
public sealed class LogStore : ILogIngest
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LogGroupState> _groups = new(StringComparer.Ordinal);
    private readonly LogStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly string _groupsDir;

    public LogStore(LogStoreOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
        _groupsDir = Path.Combine(options.DataDirectory, "groups");
        Directory.CreateDirectory(_groupsDir);
        Load();
    }

    internal TimeProvider Time => _time;

    private void Load()
    {
        foreach (var dir in Directory.GetDirectories(_groupsDir))
        {
            var meta = Path.Combine(dir, "group.json");
            if (!File.Exists(meta))
            {
                Directory.Delete(dir, recursive: true); // a creation that never finished
                continue;
            }
            var doc = JsonSerializer.Deserialize(File.ReadAllBytes(meta), LogsStoreJson.Default.GroupDoc)!;
            var g = new LogGroupState(doc.Name, doc.CreationTime, dir)
            {
                RetentionInDays = doc.RetentionInDays,
                Tags = (doc.Tags ?? []).ToImmutableSortedDictionary(StringComparer.Ordinal),
            };
            var streams = Path.Combine(dir, "streams");
            if (Directory.Exists(streams))
            {
                foreach (var sdir in Directory.GetDirectories(streams))
                {
                    var s = StreamLog.Open(sdir, _options.SegmentBytes);
                    if (s is null)
                    {
                        Directory.Delete(sdir, recursive: true);
                        continue;
                    }
                    g.Streams[s.Name] = s;
                }
            }
            _groups[g.Name] = g;
        }
    }

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    internal LogGroupState Group(string name)
    {
        lock (_lock)
        {
            return _groups.TryGetValue(name, out var g) ? g : throw LogsErrors.GroupNotFound();
        }
    }

    internal IReadOnlyList<LogGroupState> Groups()
    {
        lock (_lock)
        {
            return [.. _groups.Values.OrderBy(g => g.Name, StringComparer.Ordinal)];
        }
    }

    internal StreamLog Stream(string group, string stream)
    {
        lock (_lock)
        {
            var g = _groups.TryGetValue(group, out var x) ? x : throw LogsErrors.GroupNotFound();
            return g.Streams.TryGetValue(stream, out var s) ? s : throw LogsErrors.StreamNotFound();
        }
    }

    internal IReadOnlyList<StreamLog> Streams(LogGroupState g)
    {
        lock (_lock)
        {
            return [.. g.Streams.Values.OrderBy(s => s.Name, StringComparer.Ordinal)];
        }
    }

    internal void CreateGroup(string name, IReadOnlyDictionary<string, string>? tags)
    {
        lock (_lock)
        {
            if (_groups.ContainsKey(name))
            {
                throw LogsErrors.GroupExists();
            }
            var dir = Path.Combine(_groupsDir, LogFiles.Hash(name));
            Directory.CreateDirectory(dir);
            var g = new LogGroupState(name, NowMs, dir) { Tags = (tags ?? new Dictionary<string, string>()).ToImmutableSortedDictionary(StringComparer.Ordinal) };
            SaveGroup(g);
            _groups[name] = g;
        }
    }

    private static void SaveGroup(LogGroupState g)
        => LogFiles.WriteAtomic(Path.Combine(g.Directory, "group.json"),
            JsonSerializer.SerializeToUtf8Bytes(new GroupDoc(g.Name, g.CreationTime, g.RetentionInDays, g.Tags.Count > 0 ? g.Tags.ToDictionary() : null), LogsStoreJson.Default.GroupDoc));

    /// <summary>Changes a group's settings and saves them.</summary>
    internal void UpdateGroup(string name, Action<LogGroupState> change)
    {
        lock (_lock)
        {
            var g = _groups.TryGetValue(name, out var x) ? x : throw LogsErrors.GroupNotFound();
            change(g);
            SaveGroup(g);
        }
    }

    internal async ValueTask DeleteGroupAsync(string name, CancellationToken ct)
    {
        LogGroupState g;
        StreamLog[] streams;
        lock (_lock)
        {
            g = _groups.TryGetValue(name, out var x) ? x : throw LogsErrors.GroupNotFound();
            _groups.Remove(name);
            g.Deleted = true;
            streams = [.. g.Streams.Values];
            // The group document goes first, so a crash part-way leaves a directory Load removes.
            File.Delete(Path.Combine(g.Directory, "group.json"));
        }
        foreach (var s in streams)
        {
            await s.DeleteAsync(ct).ConfigureAwait(false);
        }
        Directory.Delete(g.Directory, recursive: true);
    }

    internal StreamLog CreateStream(string group, string name) => CreateStream(group, name, existing: false);

    private StreamLog CreateStream(string group, string name, bool existing)
    {
        lock (_lock)
        {
            var g = _groups.TryGetValue(group, out var x) ? x : throw LogsErrors.GroupNotFound();
            if (g.Streams.TryGetValue(name, out var s))
            {
                return existing ? s : throw LogsErrors.StreamExists();
            }
            s = StreamLog.Create(Path.Combine(g.Directory, "streams", LogFiles.Hash(name)), name, NowMs, _options.SegmentBytes);
            g.Streams[name] = s;
            return s;
        }
    }

    internal async ValueTask DeleteStreamAsync(string group, string name, CancellationToken ct)
    {
        StreamLog s;
        lock (_lock)
        {
            var g = _groups.TryGetValue(group, out var x) ? x : throw LogsErrors.GroupNotFound();
            s = g.Streams.TryGetValue(name, out var y) ? y : throw LogsErrors.StreamNotFound();
            g.Streams.Remove(name);
            File.Delete(s.MetaFile);
        }
        await s.DeleteAsync(ct).ConfigureAwait(false);
    }

    /// <summary>PutLogEvents: appends events (already validated) with sequences assigned by the store.</summary>
    internal async ValueTask<long> PutAsync(string group, string stream, IReadOnlyList<NewEvent> events, CancellationToken ct)
    {
        var s = Stream(group, stream);
        await s.AppendAsync(events, assignSequences: true, NowMs, ct).ConfigureAwait(false);
        return s.Snapshot.NextOrdinal;
    }

    public async ValueTask<LogIngestResult> AppendAsync(string group, string stream, bool createGroup, IReadOnlyList<IngestedLogEvent> events, CancellationToken ct)
    {
        try
        {
            if (createGroup)
            {
                lock (_lock)
                {
                    if (!_groups.ContainsKey(group))
                    {
                        CreateGroup(group, null);
                    }
                }
            }
            var s = CreateStream(group, stream, existing: true);
            var list = new NewEvent[events.Count];
            for (var i = 0; i < list.Length; i++)
            {
                list[i] = new NewEvent(events[i].Sequence, events[i].TimestampMs, events[i].Message);
            }
            var last = await s.AppendAsync(list, assignSequences: false, NowMs, ct).ConfigureAwait(false);
            return new LogIngestResult(last, null);
        }
        catch (AwsException e)
        {
            return new LogIngestResult(0, e.Message);
        }
    }

    /// <summary>Drops the segments of every group with a retention policy whose events are all past it. Returns how many.</summary>
    public async ValueTask<int> ApplyRetentionAsync(CancellationToken ct)
    {
        var now = NowMs;
        var dropped = 0;
        foreach (var g in Groups())
        {
            if (g.RetentionInDays is not { } days)
            {
                continue;
            }
            var cutoff = now - days * 86_400_000L;
            foreach (var s in Streams(g))
            {
                dropped += await s.DropOlderThanAsync(cutoff, ct).ConfigureAwait(false);
            }
        }
        return dropped;
    }
}
