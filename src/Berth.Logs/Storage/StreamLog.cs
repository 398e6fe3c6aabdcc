using System.Collections.Immutable;
using System.Text.Json;

namespace Berth.Logs.Storage;

/// <summary>What a reader sees of a stream: the segments and the committed end. Replaced whole on every append.</summary>
internal sealed record StreamSnapshot(ImmutableArray<SegmentInfo> Segments, long NextOrdinal, long LastSequence, long? FirstTimestamp,
    long? LastTimestamp, long? LastIngestion)
{
    public long StoredBytes => Segments.Sum(s => s.Bytes);
    public long FirstOrdinal => Segments.Length > 0 ? Segments[0].FirstOrdinal : NextOrdinal;
}

/// <summary>An event a writer hands in: timestamp, message and (for agent ingestion) its sequence.</summary>
internal readonly record struct NewEvent(long Sequence, long Timestamp, string Message);

/// <summary>
/// One log stream on disk: a directory of append-only segments. One writer at a time (a semaphore); readers
/// take the current <see cref="StreamSnapshot"/> and read files up to its committed end without locking.
/// Only this metadata lives in memory; events are always read from disk.
/// </summary>
internal sealed class StreamLog
{
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly long _segmentBytes;
    private volatile StreamSnapshot _snapshot;

    private StreamLog(string name, long creationTime, string directory, long segmentBytes, StreamSnapshot snapshot)
    {
        Name = name;
        CreationTime = creationTime;
        Directory = directory;
        _segmentBytes = segmentBytes;
        _snapshot = snapshot;
    }

    public string Name { get; }
    public long CreationTime { get; }
    public string Directory { get; }
    public StreamSnapshot Snapshot => _snapshot;
    public bool Deleted { get; private set; }

    private string MetaPath => Path.Combine(Directory, "stream.json");
    private string TailPath => Path.Combine(Directory, "tail.json");

    public static StreamLog Create(string directory, string name, long creationTime, long segmentBytes)
    {
        System.IO.Directory.CreateDirectory(directory);
        LogFiles.WriteAtomic(Path.Combine(directory, "stream.json"), JsonSerializer.SerializeToUtf8Bytes(new StreamDoc(name, creationTime), LogsStoreJson.Default.StreamDoc));
        return new StreamLog(name, creationTime, directory, segmentBytes, new StreamSnapshot([], 0, 0, null, null, null));
    }

    /// <summary>Opens a stream directory after a restart (null when it holds no stream document: a creation that never finished).</summary>
    public static StreamLog? Open(string directory, long segmentBytes)
    {
        var metaPath = Path.Combine(directory, "stream.json");
        if (!File.Exists(metaPath))
        {
            return null;
        }
        var meta = JsonSerializer.Deserialize(File.ReadAllBytes(metaPath), LogsStoreJson.Default.StreamDoc)!;
        var segments = new List<SegmentInfo>();
        foreach (var path in System.IO.Directory.GetFiles(directory, "*.seg").Order(StringComparer.Ordinal))
        {
            var seg = Segment.Recover(path);
            if (seg.Count == 0 && segments.Count > 0)
            {
                File.Delete(path); // created by a roll whose first write never landed
                File.Delete(seg.IndexPath);
                continue;
            }
            segments.Add(seg);
        }
        var tailPath = Path.Combine(directory, "tail.json");
        var tail = File.Exists(tailPath) ? JsonSerializer.Deserialize(File.ReadAllBytes(tailPath), LogsStoreJson.Default.TailDoc) : null;
        var last = segments.LastOrDefault(s => s.Count > 0);
        var snapshot = last is null
            ? new StreamSnapshot([.. segments], Math.Max(tail?.NextOrdinal ?? 0, segments.Count > 0 ? segments[^1].EndOrdinal : 0), tail?.LastSequence ?? 0, null, tail?.LastTimestamp, tail?.LastIngestion)
            : new StreamSnapshot([.. segments], segments[^1].EndOrdinal, last.LastSequence, segments.First(s => s.Count > 0).FirstTimestamp, last.LastTimestamp, last.LastIngestion);
        return new StreamLog(meta.Name, meta.CreationTime, directory, segmentBytes, snapshot);
    }

    /// <summary>
    /// Appends the events whose sequence is above the stream's last one (null sequence: the next one) and makes
    /// them durable (fsync) before publishing them to readers. Returns the stream's last sequence afterwards.
    /// </summary>
    public async ValueTask<long> AppendAsync(IReadOnlyList<NewEvent> events, bool assignSequences, long ingestionTime, CancellationToken ct)
    {
        await _write.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (Deleted)
            {
                throw LogsErrors.StreamNotFound();
            }
            var snap = _snapshot;
            var lastSeq = snap.LastSequence;
            var segments = snap.Segments.ToBuilder();
            var active = segments.Count > 0 ? segments[^1] : null;
            FileStream? data = null, index = null;
            var buffer = new byte[64 * 1024];
            var idx = new byte[Segment.IndexEntryBytes];
            long? firstTs = snap.FirstTimestamp, lastTs = snap.LastTimestamp;
            var appended = 0;
            try
            {
                foreach (var e in events)
                {
                    var seq = assignSequences ? lastSeq + 1 : e.Sequence;
                    if (seq <= lastSeq)
                    {
                        continue; // already stored: the writer is resending after a restart
                    }
                    if (active is null || active.Bytes >= _segmentBytes)
                    {
                        if (data is not null)
                        {
                            Sync(data, index!);
                            data.Dispose();
                            index!.Dispose();
                            segments[^1] = active!;
                        }
                        var first = active?.EndOrdinal ?? snap.NextOrdinal;
                        active = new SegmentInfo(Path.Combine(Directory, Segment.FileName(first)), first, 0, 0, 0, long.MaxValue, long.MinValue, 0, 0, 0);
                        segments.Add(active);
                        data = null;
                    }
                    if (data is null)
                    {
                        data = new FileStream(active.DataPath, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read | FileShare.Delete, 64 * 1024);
                        data.Position = active.Bytes;
                        index = new FileStream(active.IndexPath, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read | FileShare.Delete);
                        index.Position = (active.Count + Segment.IndexEvery - 1) / Segment.IndexEvery * Segment.IndexEntryBytes;
                    }
                    var need = Segment.RecordBytes(e.Message);
                    if (buffer.Length < need)
                    {
                        buffer = new byte[need];
                    }
                    var n = Segment.Encode(buffer, seq, e.Timestamp, ingestionTime, e.Message);
                    if (active.Count % Segment.IndexEvery == 0)
                    {
                        Segment.EncodeIndex(idx, new IndexEntry(active.EndOrdinal, active.Bytes, active.MinTimestamp, active.MaxTimestamp));
                        index!.Write(idx);
                    }
                    data.Write(buffer, 0, n);
                    active = active with
                    {
                        Count = active.Count + 1,
                        Bytes = active.Bytes + n,
                        FirstTimestamp = active.Count == 0 ? e.Timestamp : active.FirstTimestamp,
                        MinTimestamp = Math.Min(active.MinTimestamp, e.Timestamp),
                        MaxTimestamp = Math.Max(active.MaxTimestamp, e.Timestamp),
                        LastSequence = seq,
                        LastTimestamp = e.Timestamp,
                        LastIngestion = ingestionTime,
                    };
                    firstTs ??= e.Timestamp;
                    lastTs = e.Timestamp;
                    lastSeq = seq;
                    appended++;
                }
                if (data is not null)
                {
                    Sync(data, index!);
                    segments[^1] = active!;
                }
            }
            finally
            {
                data?.Dispose();
                index?.Dispose();
            }
            if (appended > 0)
            {
                _snapshot = new StreamSnapshot(segments.ToImmutable(), active!.EndOrdinal, lastSeq, firstTs, lastTs, ingestionTime);
            }
            return lastSeq;
        }
        finally
        {
            _write.Release();
        }
    }

    private static void Sync(FileStream data, FileStream index)
    {
        data.Flush(flushToDisk: true);
        index.Flush(flushToDisk: true);
    }

    /// <summary>Removes the segments whose newest event is older than <paramref name="cutoff"/> (ms). Returns how many.</summary>
    public async ValueTask<int> DropOlderThanAsync(long cutoff, CancellationToken ct)
    {
        await _write.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var snap = _snapshot;
            var keep = snap.Segments.Where(s => s.Count == 0 || s.MaxTimestamp >= cutoff).ToImmutableArray();
            var dropped = snap.Segments.Length - keep.Length;
            if (dropped == 0 || Deleted)
            {
                return 0;
            }
            if (keep.IsEmpty)
            {
                // The segments carried the stream's position; keep it so ordinals and sequences never go back.
                LogFiles.WriteAtomic(TailPath, JsonSerializer.SerializeToUtf8Bytes(
                    new TailDoc(snap.NextOrdinal, snap.LastSequence, snap.LastTimestamp, snap.LastIngestion), LogsStoreJson.Default.TailDoc));
            }
            _snapshot = snap with { Segments = keep, FirstTimestamp = keep.FirstOrDefault(s => s.Count > 0)?.FirstTimestamp };
            foreach (var s in snap.Segments.Except(keep))
            {
                File.Delete(s.DataPath);
                File.Delete(s.IndexPath);
            }
            return dropped;
        }
        finally
        {
            _write.Release();
        }
    }

    /// <summary>Marks the stream deleted (later appends fail) once any append in flight has finished, and removes its files.</summary>
    public async ValueTask DeleteAsync(CancellationToken ct)
    {
        await _write.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            Deleted = true;
            if (System.IO.Directory.Exists(Directory))
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
        }
        finally
        {
            _write.Release();
        }
    }

    /// <summary>Events with ordinals in [from, to) in order, from the given snapshot.</summary>
    public static IEnumerable<StoredEvent> Forward(StreamSnapshot snap, long from, long to)
    {
        foreach (var seg in snap.Segments)
        {
            if (seg.EndOrdinal <= from || seg.FirstOrdinal >= to)
            {
                continue;
            }
            foreach (var e in Segment.Read(seg, from, to))
            {
                yield return e;
            }
        }
    }

    /// <summary>Events with ordinals below <paramref name="before"/>, newest first, read a sampled block at a time.</summary>
    public static IEnumerable<StoredEvent> Backward(StreamSnapshot snap, long before)
    {
        for (var i = snap.Segments.Length - 1; i >= 0; i--)
        {
            var seg = snap.Segments[i];
            var end = Math.Min(before, seg.EndOrdinal);
            while (end > seg.FirstOrdinal)
            {
                var blockStart = seg.FirstOrdinal + (end - 1 - seg.FirstOrdinal) / Segment.IndexEvery * Segment.IndexEvery;
                var block = Segment.Read(seg, blockStart, end).ToList();
                for (var k = block.Count - 1; k >= 0; k--)
                {
                    yield return block[k];
                }
                end = blockStart;
            }
        }
    }

    public string MetaFile => MetaPath;
}

internal sealed record StreamDoc(string Name, long CreationTime);

internal sealed record TailDoc(long NextOrdinal, long LastSequence, long? LastTimestamp, long? LastIngestion);

internal sealed record GroupDoc(string Name, long CreationTime, int? RetentionInDays, Dictionary<string, string>? Tags);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(StreamDoc))]
[System.Text.Json.Serialization.JsonSerializable(typeof(TailDoc))]
[System.Text.Json.Serialization.JsonSerializable(typeof(GroupDoc))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, long>))]
internal sealed partial class LogsStoreJson : System.Text.Json.Serialization.JsonSerializerContext;

internal static class LogFiles
{
    /// <summary>Writes a small document so a crash leaves either the old or the new one: temp file, fsync, rename.</summary>
    public static void WriteAtomic(string path, byte[] content)
    {
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            f.Write(content);
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    public static string Hash(string name)
        => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name)))[..32];
}
