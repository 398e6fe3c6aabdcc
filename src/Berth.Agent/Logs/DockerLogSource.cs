using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Berth.Agent.Logs;

/// <summary>A container's json-file log through Docker's logs API (follow, timestamps, the multiplexed stdout/stderr stream).</summary>
internal sealed class DockerLogSource(IDockerClient docker) : ILogSource
{
    public async IAsyncEnumerable<RawLogLine> ReadAsync(string containerId, long? sinceNs, [EnumeratorCancellation] CancellationToken ct)
    {
        long? lastTs = null;
        var countAtLast = 0;
        await foreach (var l in StreamAsync(containerId, sinceNs, follow: true, ct).ConfigureAwait(false))
        {
            countAtLast = l.TimestampNs == lastTs ? countAtLast + 1 : 1;
            lastTs = l.TimestampNs;
            yield return l;
        }
        if (await StateAsync(containerId, ct).ConfigureAwait(false) == ContainerLogState.Running)
        {
            yield break; // the stream broke: the caller reopens it
        }
        // The container stopped. Engine 20.10 may end a follow before the end of the file when the container exits
        // while the reader lags (seen here under load: the follower of a 500,000-line burst ended 310,000 lines short):
        // read what is left once, without follow, from the last timestamp, skipping the lines with that timestamp
        // already handed out.
        var skip = countAtLast;
        await foreach (var l in StreamAsync(containerId, lastTs is { } t ? t - 1 : sinceNs, follow: false, ct).ConfigureAwait(false))
        {
            if (lastTs is { } last && (l.TimestampNs < last || l.TimestampNs == last && skip-- > 0))
            {
                continue;
            }
            yield return l;
        }
    }

    private async IAsyncEnumerable<RawLogLine> StreamAsync(string containerId, long? sinceNs, bool follow, [EnumeratorCancellation] CancellationToken ct)
    {
        var parameters = new ContainerLogsParameters
        {
            ShowStdout = true,
            ShowStderr = true,
            Follow = follow,
            Timestamps = true,
            Since = sinceNs is { } s ? FormatSince(s) : null!,
        };
        MultiplexedStream stream;
        try
        {
            stream = await docker.Containers.GetContainerLogsAsync(containerId, parameters, ct).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
            yield break;
        }
        using (stream)
        {
            var buffer = new byte[81920];
            // Docker frames each log entry ("TIMESTAMP MESSAGE\n") on its own stream; a read may end mid-entry.
            var pending = new[] { new LineSplitter(), new LineSplitter() };
            while (true)
            {
                var r = await stream.ReadOutputAsync(buffer, 0, buffer.Length, ct).ConfigureAwait(false);
                if (r.EOF)
                {
                    yield break;
                }
                var output = r.Target == MultiplexedStream.TargetStream.StandardError ? LogOutput.Stderr : LogOutput.Stdout;
                var splitter = pending[(int)output];
                foreach (var line in splitter.Push(buffer.AsSpan(0, r.Count)))
                {
                    if (ParseEntry(line) is { } entry)
                    {
                        yield return entry with { Stream = output };
                    }
                }
            }
        }
    }

    public async Task<ContainerLogState> StateAsync(string containerId, CancellationToken ct)
    {
        try
        {
            var c = await docker.Containers.InspectContainerAsync(containerId, ct).ConfigureAwait(false);
            return c.State?.Status is "running" or "restarting" or "paused" or "created" ? ContainerLogState.Running : ContainerLogState.Exited;
        }
        catch (DockerContainerNotFoundException)
        {
            return ContainerLogState.Gone;
        }
    }

    /// <summary>Docker's since: Unix seconds with a nanosecond fraction.</summary>
    internal static string FormatSince(long ns)
        => string.Create(CultureInfo.InvariantCulture, $"{ns / 1_000_000_000}.{ns % 1_000_000_000:D9}");

    /// <summary>"2026-11-27T19:49:20.123456789Z message" → (ns, message); null when the timestamp is unreadable.</summary>
    internal static RawLogLine? ParseEntry(string entry)
    {
        var space = entry.IndexOf(' ', StringComparison.Ordinal);
        var stamp = space < 0 ? entry : entry[..space];
        if (ParseTimestampNs(stamp) is not { } ns)
        {
            return null;
        }
        return new RawLogLine(ns, space < 0 ? "" : entry[(space + 1)..]);
    }

    /// <summary>RFC 3339 with up to nine fraction digits (Go's RFC3339Nano drops trailing zeros), UTC "Z" or an offset.</summary>
    /// <remarks>Parsed by hand: it runs once per shipped line.</remarks>
    internal static long? ParseTimestampNs(ReadOnlySpan<char> s)
    {
        if (s.Length < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':'
            || Digits(s, 0, 4) is not { } year || Digits(s, 5, 2) is not { } month || Digits(s, 8, 2) is not { } day
            || Digits(s, 11, 2) is not { } hour || Digits(s, 14, 2) is not { } minute || Digits(s, 17, 2) is not { } second
            || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 60)
        {
            return null;
        }
        var i = 19;
        long fraction = 0;
        if (s[i] == '.')
        {
            i++;
            var digits = 0;
            while (i < s.Length && char.IsAsciiDigit(s[i]))
            {
                if (digits < 9)
                {
                    fraction = fraction * 10 + (s[i] - '0');
                    digits++;
                }
                i++;
            }
            for (; digits < 9; digits++)
            {
                fraction *= 10;
            }
        }
        long offsetSeconds = 0;
        if (i >= s.Length)
        {
            return null;
        }
        if (s[i] != 'Z')
        {
            if (s.Length != i + 6 || s[i] is not ('+' or '-') || s[i + 3] != ':' || Digits(s, i + 1, 2) is not { } oh || Digits(s, i + 4, 2) is not { } om)
            {
                return null;
            }
            offsetSeconds = (s[i] == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
        }
        var days = new DateOnly(year, month, day).DayNumber - UnixEpochDay;
        var seconds = days * 86_400L + hour * 3600L + minute * 60L + Math.Min(second, 59) - offsetSeconds;
        return seconds * 1_000_000_000 + fraction;
    }

    private static readonly int UnixEpochDay = new DateOnly(1970, 1, 1).DayNumber;

    /// <summary>The same from UTF-8 bytes (the json-file's <c>time</c> field), without allocating.</summary>
    internal static long? ParseTimestampNs(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > 64)
        {
            return null;
        }
        Span<char> chars = stackalloc char[utf8.Length];
        for (var i = 0; i < utf8.Length; i++)
        {
            chars[i] = (char)utf8[i];
        }
        return ParseTimestampNs(chars);
    }

    private static int? Digits(ReadOnlySpan<char> s, int at, int count)
    {
        var v = 0;
        for (var k = at; k < at + count; k++)
        {
            if (!char.IsAsciiDigit(s[k]))
            {
                return null;
            }
            v = v * 10 + (s[k] - '0');
        }
        return v;
    }

    /// <summary>Bytes in, complete lines (UTF-8, without "\n") out; a partial line waits for the rest.</summary>
    internal sealed class LineSplitter
    {
        private readonly List<byte> _partial = [];

        public List<string> Push(ReadOnlySpan<byte> data)
        {
            var lines = new List<string>();
            while (data.Length > 0)
            {
                var nl = data.IndexOf((byte)'\n');
                if (nl < 0)
                {
                    _partial.AddRange(data);
                    break;
                }
                if (_partial.Count > 0)
                {
                    _partial.AddRange(data[..nl]);
                    lines.Add(Encoding.UTF8.GetString([.. _partial]));
                    _partial.Clear();
                }
                else
                {
                    lines.Add(Encoding.UTF8.GetString(data[..nl]));
                }
                data = data[(nl + 1)..];
            }
            return lines;
        }
    }
}
