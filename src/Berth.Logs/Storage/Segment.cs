using System.Buffers.Binary;
using System.Text;

namespace Berth.Logs.Storage;

/// <summary>One stored event: its position in the stream (ordinal), the writer's sequence and its times.</summary>
internal readonly record struct StoredEvent(long Ordinal, long Sequence, long Timestamp, long IngestionTime, string Message);

/// <summary>
/// What is known about one segment file without reading it: the ordinals it holds, its size and the range of
/// timestamps in it (for retention and for skipping it on time-bounded reads). Immutable; an append publishes a new one.
/// </summary>
internal sealed record SegmentInfo(string DataPath, long FirstOrdinal, long Count, long Bytes, long FirstTimestamp, long MinTimestamp, long MaxTimestamp,
    long LastSequence, long LastTimestamp, long LastIngestion)
{
    public long EndOrdinal => FirstOrdinal + Count;
    public string IndexPath => Path.ChangeExtension(DataPath, ".idx");
}

/// <summary>A sampled index entry: the event at <paramref name="Ordinal"/> starts at <paramref name="Offset"/>; min/max cover the events before it in the segment.</summary>
internal readonly record struct IndexEntry(long Ordinal, long Offset, long MinBefore, long MaxBefore);

/// <summary>
/// The on-disk format of a segment (<c>ORDINAL.seg</c>) and its sampled index (<c>ORDINAL.idx</c>).
/// Record: u32 payload length, u32 CRC-32 of the payload, then payload = i64 sequence, i64 timestamp,
/// i64 ingestion time, UTF-8 message. Index entry (every <see cref="IndexEvery"/> events): i64 ordinal,
/// i64 byte offset, i64 min and i64 max timestamp of the events before it. All little-endian.
/// </summary>
internal static class Segment
{
    public const int IndexEvery = 128;
    public const int HeaderBytes = 8;
    public const int FixedPayloadBytes = 24;
    public const int IndexEntryBytes = 32;

    public static string FileName(long firstOrdinal) => firstOrdinal.ToString("D20", System.Globalization.CultureInfo.InvariantCulture) + ".seg";

    public static int RecordBytes(string message) => HeaderBytes + FixedPayloadBytes + Encoding.UTF8.GetByteCount(message);

    /// <summary>Writes one record into <paramref name="into"/> and returns its length.</summary>
    public static int Encode(Span<byte> into, long sequence, long timestamp, long ingestion, string message)
    {
        var payload = into[HeaderBytes..];
        BinaryPrimitives.WriteInt64LittleEndian(payload, sequence);
        BinaryPrimitives.WriteInt64LittleEndian(payload[8..], timestamp);
        BinaryPrimitives.WriteInt64LittleEndian(payload[16..], ingestion);
        var n = Encoding.UTF8.GetBytes(message, payload[FixedPayloadBytes..]);
        var len = FixedPayloadBytes + n;
        BinaryPrimitives.WriteUInt32LittleEndian(into, (uint)len);
        BinaryPrimitives.WriteUInt32LittleEndian(into[4..], Crc32.Compute(payload[..len]));
        return HeaderBytes + len;
    }

    public static void EncodeIndex(Span<byte> into, IndexEntry e)
    {
        BinaryPrimitives.WriteInt64LittleEndian(into, e.Ordinal);
        BinaryPrimitives.WriteInt64LittleEndian(into[8..], e.Offset);
        BinaryPrimitives.WriteInt64LittleEndian(into[16..], e.MinBefore);
        BinaryPrimitives.WriteInt64LittleEndian(into[24..], e.MaxBefore);
    }

    public static List<IndexEntry> ReadIndex(string indexPath, long maxEntries = long.MaxValue)
    {
        var list = new List<IndexEntry>();
        if (!File.Exists(indexPath))
        {
            return list;
        }
        var bytes = File.ReadAllBytes(indexPath);
        for (var i = 0; i + IndexEntryBytes <= bytes.Length && list.Count < maxEntries; i += IndexEntryBytes)
        {
            var s = bytes.AsSpan(i);
            list.Add(new IndexEntry(BinaryPrimitives.ReadInt64LittleEndian(s), BinaryPrimitives.ReadInt64LittleEndian(s[8..]),
                BinaryPrimitives.ReadInt64LittleEndian(s[16..]), BinaryPrimitives.ReadInt64LittleEndian(s[24..])));
        }
        return list;
    }

    /// <summary>
    /// Opens a segment after a restart: keeps the index entries that point inside the file, scans from the last
    /// one to the end checking every record, truncates a torn or garbled tail, and writes back a repaired index.
    /// </summary>
    public static SegmentInfo Recover(string dataPath)
    {
        var first = long.Parse(Path.GetFileNameWithoutExtension(dataPath), System.Globalization.CultureInfo.InvariantCulture);
        var indexPath = Path.ChangeExtension(dataPath, ".idx");
        using var data = new FileStream(dataPath, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        var length = data.Length;
        var entries = ReadIndex(indexPath);
        var valid = 0;
        while (valid < entries.Count && entries[valid].Ordinal == first + (long)valid * IndexEvery && entries[valid].Offset < length
               && (valid == 0 ? entries[valid].Offset == 0 : entries[valid].Offset > entries[valid - 1].Offset))
        {
            valid++;
        }
        var changed = valid != entries.Count;
        entries.RemoveRange(valid, entries.Count - valid);
        var start = entries.Count > 0 ? entries[^1] : new IndexEntry(first, 0, long.MaxValue, long.MinValue);
        var ordinal = start.Ordinal;
        long offset = start.Offset, min = start.MinBefore, max = start.MaxBefore;
        long lastSeq = 0, lastTs = 0, lastIng = 0, firstTs = 0;
        data.Position = offset;
        var header = new byte[HeaderBytes];
        var payload = new byte[256];
        while (true)
        {
            if (Fill(data, header) < HeaderBytes)
            {
                break;
            }
            var len = (int)BinaryPrimitives.ReadUInt32LittleEndian(header);
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
            if (len < FixedPayloadBytes || len > 8 * 1024 * 1024 || offset + HeaderBytes + len > length)
            {
                break;
            }
            if (payload.Length < len)
            {
                payload = new byte[Math.Max(len, payload.Length * 2)];
            }
            if (Fill(data, payload.AsSpan(0, len)) < len || Crc32.Compute(payload.AsSpan(0, len)) != crc)
            {
                break;
            }
            if ((ordinal - first) % IndexEvery == 0 && ordinal - first == (long)entries.Count * IndexEvery)
            {
                entries.Add(new IndexEntry(ordinal, offset, min, max));
                changed = true;
            }
            lastSeq = BinaryPrimitives.ReadInt64LittleEndian(payload);
            lastTs = BinaryPrimitives.ReadInt64LittleEndian(payload.AsSpan(8));
            lastIng = BinaryPrimitives.ReadInt64LittleEndian(payload.AsSpan(16));
            if (ordinal == first)
            {
                firstTs = lastTs;
            }
            min = Math.Min(min, lastTs);
            max = Math.Max(max, lastTs);
            offset += HeaderBytes + len;
            ordinal++;
        }
        if (entries.Count > 0 && entries[^1].Ordinal >= ordinal)
        {
            entries.RemoveAt(entries.Count - 1); // it pointed at the torn record
            changed = true;
        }
        if (offset < length)
        {
            data.SetLength(offset); // a torn or garbled tail: the write it belonged to was never acknowledged
            data.Flush(flushToDisk: true);
        }
        if (ordinal > first && firstTs == 0 && start.Ordinal != first)
        {
            firstTs = ReadFirstTimestamp(data);
        }
        if (changed)
        {
            var buf = new byte[entries.Count * IndexEntryBytes];
            for (var i = 0; i < entries.Count; i++)
            {
                EncodeIndex(buf.AsSpan(i * IndexEntryBytes), entries[i]);
            }
            File.WriteAllBytes(indexPath, buf);
        }
        return new SegmentInfo(dataPath, first, ordinal - first, offset, firstTs, min, max, lastSeq, lastTs, lastIng);
    }

    private static long ReadFirstTimestamp(FileStream data)
    {
        var b = new byte[HeaderBytes + 16];
        data.Position = 0;
        return Fill(data, b) == b.Length ? BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(HeaderBytes + 8)) : 0;
    }

    private static int Fill(Stream s, Span<byte> into)
    {
        var total = 0;
        while (total < into.Length)
        {
            var n = s.Read(into[total..]);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }

    /// <summary>Events of <paramref name="seg"/> with ordinals in [<paramref name="from"/>, <paramref name="to"/>), in order, streamed from disk.</summary>
    public static IEnumerable<StoredEvent> Read(SegmentInfo seg, long from, long to)
    {
        from = Math.Max(from, seg.FirstOrdinal);
        to = Math.Min(to, seg.EndOrdinal);
        if (from >= to)
        {
            yield break;
        }
        var entries = ReadIndex(seg.IndexPath, (seg.Count + IndexEvery - 1) / IndexEvery);
        var at = entries.Count > 0 ? entries[(int)Math.Min(entries.Count - 1, (from - seg.FirstOrdinal) / IndexEvery)] : new IndexEntry(seg.FirstOrdinal, 0, 0, 0);
        FileStream file;
        try
        {
            file = new FileStream(seg.DataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024);
        }
        catch (FileNotFoundException)
        {
            yield break; // removed by retention meanwhile
        }
        using (file)
        {
            file.Position = at.Offset;
            var header = new byte[HeaderBytes];
            var payload = new byte[4096];
            for (var ordinal = at.Ordinal; ordinal < to; ordinal++)
            {
                if (Fill(file, header) < HeaderBytes)
                {
                    yield break;
                }
                var len = (int)BinaryPrimitives.ReadUInt32LittleEndian(header);
                if (ordinal < from)
                {
                    file.Seek(len, SeekOrigin.Current);
                    continue;
                }
                if (payload.Length < len)
                {
                    payload = new byte[Math.Max(len, payload.Length * 2)];
                }
                if (Fill(file, payload.AsSpan(0, len)) < len)
                {
                    yield break;
                }
                var p = payload.AsSpan(0, len);
                yield return new StoredEvent(ordinal, BinaryPrimitives.ReadInt64LittleEndian(p), BinaryPrimitives.ReadInt64LittleEndian(p[8..]),
                    BinaryPrimitives.ReadInt64LittleEndian(p[16..]), Encoding.UTF8.GetString(p[FixedPayloadBytes..]));
            }
        }
    }
}
