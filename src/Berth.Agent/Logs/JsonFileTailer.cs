using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Berth.Agent.Logs;

/// <summary>
/// Follows a container's log file as Docker's json-file driver writes it: one JSON object a line,
/// <c>{"log":"text\n","stream":"stdout","time":"RFC3339Nano"}</c>, in <c>ID-json.log</c>, rotated (log-opt max-size)
/// to <c>ID-json.log.1</c>, <c>.2</c>, ... (max-file; with max-file 1 the file is truncated in place instead).
/// </summary>
/// <remarks>
/// Reading the file directly spares dockerd decoding it again for the logs API (that cost the container about half
/// its line rate on two cores, docs/BENCHMARKS.md). Files are told apart by their first line — it holds the first
/// entry's nanosecond timestamp and never changes, since the driver only appends and rotation renames — so no inode
/// is needed: at the end of the current file, a live file whose first line differs means the current one was rotated;
/// the rest of it is read, then the file that follows it in the chain. A line Docker split (over 16 KiB, no trailing
/// "\n" in <c>log</c>) is joined with its continuation on the same stream and carries the last part's timestamp, so
/// the lines come out in timestamp order. An incomplete last line (the driver mid-write) waits for its newline.
/// </remarks>
internal sealed partial class JsonFileTailer(string path, ILogger logger)
{
    private const int InitialBuffer = 64 * 1024;
    private const int MaxLineBytes = 8 * 1024 * 1024;

    private readonly string?[] _pending = new string?[2];
    private readonly long[] _pendingTs = new long[2];
    private FileStream? _file;
    private byte[]? _identity;
    private byte[] _buffer = new byte[InitialBuffer];
    private byte[] _probe = new byte[4096]; // first lines of files, compared at each look for rotation
    private char[] _chars = new char[4096];
    private int _start;
    private int _end;
    private bool _skippingLongLine;

    /// <summary>Lines that were not json-file entries (garbled or a torn write), skipped.</summary>
    public long Unreadable { get; private set; }

    /// <summary>Files opened so far (the first one and each one after a rotation).</summary>
    public int FilesOpened { get; private set; }

    /// <summary>
    /// The lines from <paramref name="sinceNs"/> (inclusive; null: all) in file order, following the file. At the end
    /// of the written data <paramref name="stillWriting"/> is awaited (it should wait a little); when it returns false
    /// the rest is read and the enumeration ends. Starts with the oldest rotated file still on disk.
    /// </summary>
    public async IAsyncEnumerable<RawLogLine> ReadAsync(long? sinceNs, Func<CancellationToken, ValueTask<bool>> stillWriting,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var chain = Chain();
        if (chain.Count == 0)
        {
            yield break;
        }
        var lines = new List<RawLogLine>();
        try
        {
            Open(chain[0]);
            var finishing = false;
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                lines.Clear();
                var more = ReadSome(lines, sinceNs);
                foreach (var l in lines)
                {
                    yield return l;
                }
                if (more)
                {
                    continue;
                }
                if (Rotated())
                {
                    // The driver renames (or truncates) only between entries: what it wrote before is all there.
                    do
                    {
                        lines.Clear();
                        more = ReadSome(lines, sinceNs);
                        foreach (var l in lines)
                        {
                            yield return l;
                        }
                    }
                    while (more);
                    if (_end > _start)
                    {
                        Unreadable++; // a torn last entry in the file left behind
                    }
                    OpenNext();
                    continue;
                }
                if (finishing)
                {
                    break;
                }
                finishing = !await stillWriting(ct).ConfigureAwait(false);
            }
            if (_end > _start)
            {
                Unreadable++; // a torn last entry: the driver never finished writing it
            }
            // The container is done: a line it left without a newline is complete as it is (as Docker shows it).
            foreach (var l in FlushPartials(sinceNs))
            {
                yield return l;
            }
        }
        finally
        {
            _file?.Dispose();
        }
    }

    /// <summary>The files on disk, oldest first: ID-json.log.N ... ID-json.log.1, ID-json.log.</summary>
    private List<string> Chain()
    {
        var chain = new List<string>();
        for (var i = 1; File.Exists(path + "." + i.ToString(System.Globalization.CultureInfo.InvariantCulture)); i++)
        {
            chain.Add(path + "." + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        chain.Reverse();
        if (File.Exists(path))
        {
            chain.Add(path);
        }
        return chain;
    }

    private void Open(string file)
    {
        _file?.Dispose();
        _file = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        _identity = null;
        _start = _end = 0;
        if (_buffer.Length > InitialBuffer)
        {
            _buffer = new byte[InitialBuffer]; // grown for a long line once: not kept for the life of the container
        }
        _skippingLongLine = false;
        FilesOpened++;
    }

    /// <summary>At the end of the current file: has the driver moved on to another file (rotation or truncation)?</summary>
    private bool Rotated()
    {
        var (liveFirst, liveLength) = FirstLine(path, ref _probe);
        if (liveLength < 0)
        {
            return false; // no live file: mid-rotation (it comes back) or the container was removed
        }
        if (_identity is null)
        {
            // Nothing complete read from the current file: it is another file only if it is empty and the live one is not.
            return _file!.Length == 0 && liveLength > 0;
        }
        return liveFirst is not { } first || !first.Span.SequenceEqual(_identity) || liveLength < _file!.Position;
    }

    /// <summary>Opens the file that follows the current one in the chain (the oldest there when it is gone).</summary>
    private void OpenNext()
    {
        var chain = Chain();
        if (chain.Count == 0)
        {
            return;
        }
        if (_identity is null)
        {
            Open(chain[^1]);
            return;
        }
        for (var i = chain.Count - 1; i >= 0; i--)
        {
            var (first, _) = FirstLine(chain[i], ref _probe);
            if (first is { } f && f.Span.SequenceEqual(_identity))
            {
                if (i < chain.Count - 1)
                {
                    Open(chain[i + 1]);
                }
                return;
            }
        }
        // Rotated past max-file (or truncated) before it was read to the end: whatever went with it is lost.
        LogRotatedAway(logger, path);
        DropPartials();
        Open(chain[0]);
    }

    /// <summary>A file's first complete line (null when it has none yet) and its length (-1 when it does not exist).</summary>
    private static (ReadOnlyMemory<byte>? First, long Length) FirstLine(string file, ref byte[] buf)
    {
        FileStream f;
        try
        {
            f = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return (null, -1);
        }
        using (f)
        {
            var length = f.Length;
            var have = 0;
            while (true)
            {
                if (have == buf.Length)
                {
                    if (buf.Length >= MaxLineBytes)
                    {
                        return (null, length);
                    }
                    Array.Resize(ref buf, buf.Length * 2);
                }
                var n = f.Read(buf, have, buf.Length - have);
                if (n == 0)
                {
                    return (null, length);
                }
                var nl = buf.AsSpan(have, n).IndexOf((byte)'\n');
                if (nl >= 0)
                {
                    return (buf.AsMemory(0, have + nl), length);
                }
                have += n;
            }
        }
    }

    /// <summary>Reads one buffer's worth and parses its complete lines; false at the end of the written data.</summary>
    private bool ReadSome(List<RawLogLine> into, long? sinceNs)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            if (_buffer.Length >= MaxLineBytes)
            {
                // Not a json-file entry (they are far shorter): skip to the next newline.
                _skippingLongLine = true;
                _end = 0;
                Unreadable++;
            }
            else
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }
        }
        var n = _file!.Read(_buffer, _end, _buffer.Length - _end);
        if (n == 0)
        {
            return false;
        }
        _end += n;
        while (_start < _end)
        {
            var nl = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl < 0)
            {
                break;
            }
            var line = _buffer.AsSpan(_start, nl);
            _start += nl + 1;
            if (_skippingLongLine)
            {
                _skippingLongLine = false;
                continue;
            }
            _identity ??= line.ToArray();
            Parse(line, into, sinceNs);
        }
        if (_skippingLongLine)
        {
            _start = _end;
        }
        return true;
    }

    private void Parse(ReadOnlySpan<byte> line, List<RawLogLine> into, long? sinceNs)
    {
        string? text = null;
        var output = LogOutput.Stdout;
        long? ts = null;
        var complete = false;
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                Unreadable++;
                return;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("log"u8))
                {
                    reader.Read();
                    (text, complete) = LogText(ref reader);
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    reader.Read();
                    output = reader.ValueTextEquals("stderr"u8) ? LogOutput.Stderr : LogOutput.Stdout;
                }
                else if (reader.ValueTextEquals("time"u8))
                {
                    reader.Read();
                    ts = reader.ValueIsEscaped ? DockerLogSource.ParseTimestampNs(reader.GetString()) : DockerLogSource.ParseTimestampNs(reader.ValueSpan);
                }
                else
                {
                    reader.Read();
                    reader.Skip(); // attrs (log-opt labels / env)
                }
            }
        }
        catch (JsonException)
        {
            Unreadable++;
            return;
        }
        catch (InvalidOperationException)
        {
            Unreadable++;
            return;
        }
        if (text is null || ts is not { } t)
        {
            Unreadable++;
            return;
        }
        var s = (int)output;
        if (_pending[s] is { } head)
        {
            text = head + text;
            _pending[s] = null;
        }
        if (!complete)
        {
            _pending[s] = text;
            _pendingTs[s] = t;
            return;
        }
        if (sinceNs is not { } since || t >= since)
        {
            into.Add(new RawLogLine(t, text, output));
        }
    }

    /// <summary>The <c>log</c> string without its trailing newline, and whether it had one (false: a part of a longer line).</summary>
    private (string Text, bool Complete) LogText(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException("log is not a string");
        }
        if (!reader.ValueIsEscaped)
        {
            return (System.Text.Encoding.UTF8.GetString(reader.ValueSpan), false); // no "\n" escape: a partial line
        }
        var max = reader.ValueSpan.Length;
        if (_chars.Length < max)
        {
            _chars = new char[Math.Max(max, _chars.Length * 2)];
        }
        var n = reader.CopyString(_chars);
        var complete = n > 0 && _chars[n - 1] == '\n';
        return (new string(_chars, 0, complete ? n - 1 : n), complete);
    }

    private IEnumerable<RawLogLine> FlushPartials(long? sinceNs)
    {
        var rest = new List<RawLogLine>();
        for (var s = 0; s < 2; s++)
        {
            if (_pending[s] is { } text && (sinceNs is not { } since || _pendingTs[s] >= since))
            {
                rest.Add(new RawLogLine(_pendingTs[s], text, (LogOutput)s));
            }
        }
        DropPartials();
        return rest.OrderBy(l => l.TimestampNs);
    }

    private void DropPartials()
    {
        _pending[0] = null;
        _pending[1] = null;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lost track of {Path}'s rotation (the file being read was rotated away); continuing with the oldest file left, lines in files removed unread are lost")]
    private static partial void LogRotatedAway(ILogger logger, string path);
}
