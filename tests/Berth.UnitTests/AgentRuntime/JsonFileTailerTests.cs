using System.Globalization;
using System.Text;
using System.Text.Json;
using Berth.Agent.Logs;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>The json-file tailer against files in a temp dir, written as Docker's json-file driver writes them.</summary>
public sealed class JsonFileTailerTests : IDisposable
{
    private const long T0 = 1_795_808_960_000_000_000; // 2026-11-27T19:49:20Z
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-tailer-" + Guid.NewGuid().ToString("N"));
    private readonly string _log;

    public JsonFileTailerTests()
    {
        Directory.CreateDirectory(_dir);
        _log = Path.Combine(_dir, "abc-json.log");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>One entry as the driver writes it: log (with its "\n" when complete), stream, RFC3339Nano time.</summary>
    private static string Entry(string log, long ns, string stream = "stdout")
    {
        var fraction = (ns % 1_000_000_000).ToString("D9", CultureInfo.InvariantCulture).TrimEnd('0'); // Go's RFC3339Nano
        var t = DateTimeOffset.FromUnixTimeMilliseconds(ns / 1_000_000).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss", CultureInfo.InvariantCulture)
            + (fraction.Length > 0 ? "." + fraction : "") + "Z";
        return JsonSerializer.Serialize(new Dictionary<string, string> { ["log"] = log, ["stream"] = stream, ["time"] = t }) + "\n";
    }

    private static string Lines(int from, int to, string? file = null)
        => string.Concat(Enumerable.Range(from, to - from + 1).Select(i => Entry((file ?? "") + i.ToString(CultureInfo.InvariantCulture) + "\n", T0 + i * 1000L)));

    private static ValueTask<bool> Exited(CancellationToken ct) => ValueTask.FromResult(false);

    private static async Task<List<RawLogLine>> ReadAllAsync(JsonFileTailer tailer, long? since, Func<CancellationToken, ValueTask<bool>> stillWriting, List<RawLogLine>? into = null)
    {
        into ??= [];
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(20));
        await foreach (var l in tailer.ReadAsync(since, stillWriting, cts.Token))
        {
            into.Add(l);
        }
        return into;
    }

    private static List<string> Messages(IEnumerable<RawLogLine> lines) => [.. lines.Select(l => l.Message)];

    private static List<string> Numbers(int from, int to) => [.. Enumerable.Range(from, to - from + 1).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    [Fact]
    public async Task ReadAsync_ExitedContainer_EveryLineWithItsStreamAndTimestamp()
    {
        File.WriteAllText(_log, Entry("out 1\n", T0 + 1) + Entry("err \"quoted\" \u00e9\t\n", T0 + 2, "stderr") + Entry("\n", T0 + 3) + Entry("crlf\r\n", T0 + 4));

        var lines = await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), null, Exited);

        Assert.Equal(
        [
            new RawLogLine(T0 + 1, "out 1", LogOutput.Stdout),
            new RawLogLine(T0 + 2, "err \"quoted\" \u00e9\t", LogOutput.Stderr),
            new RawLogLine(T0 + 3, "", LogOutput.Stdout),
            new RawLogLine(T0 + 4, "crlf\r", LogOutput.Stdout),
        ], lines);
    }

    [Fact]
    public async Task ReadAsync_LineSplitOver16KiB_PartsJoinedPerStreamWithTheLastPartsTimestamp()
    {
        var a = new string('a', 16 * 1024);
        var b = new string('b', 16 * 1024);
        // Docker writes a long line as parts without "\n"; the other stream may come in between.
        File.WriteAllText(_log, Entry(a, T0 + 1) + Entry("between\n", T0 + 2, "stderr") + Entry(b, T0 + 3) + Entry("end\n", T0 + 4) + Entry("next\n", T0 + 5));

        var lines = await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), null, Exited);

        Assert.Equal(["between", a + b + "end", "next"], Messages(lines));
        Assert.Equal([T0 + 2, T0 + 4, T0 + 5], lines.Select(l => l.TimestampNs));
        Assert.Equal(LogOutput.Stdout, lines[1].Stream);
    }

    [Fact]
    public async Task ReadAsync_LastLineWithoutNewlineWhenTheContainerExits_ShippedAsItIs()
    {
        File.WriteAllText(_log, Entry("one\n", T0 + 1) + Entry("no newline", T0 + 2));

        var lines = await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), null, Exited);

        Assert.Equal(["one", "no newline"], Messages(lines));
    }

    [Fact]
    public async Task ReadAsync_RunningContainer_FollowsWhatIsAppendedUntilItStops()
    {
        File.WriteAllText(_log, Lines(1, 3));
        var calls = 0;
        var seen = new List<RawLogLine>();
        ValueTask<bool> StillWriting(CancellationToken ct)
        {
            calls++;
            if (calls == 1)
            {
                Assert.Equal(Numbers(1, 3), Messages(seen)); // everything written so far came out before waiting
                File.AppendAllText(_log, Lines(4, 6));
            }
            return ValueTask.FromResult(calls < 3);
        }

        await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), null, StillWriting, seen);

        Assert.Equal(Numbers(1, 6), Messages(seen));
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task ReadAsync_IncompleteLastEntry_WaitsForItsNewline()
    {
        var second = Entry("two\n", T0 + 2);
        File.WriteAllText(_log, Entry("one\n", T0 + 1) + second[..10]);
        var calls = 0;
        var seen = new List<RawLogLine>();
        ValueTask<bool> StillWriting(CancellationToken ct)
        {
            calls++;
            if (calls == 1)
            {
                Assert.Equal(["one"], Messages(seen)); // the half-written entry is not read as a line
                File.AppendAllText(_log, second[10..]);
            }
            return ValueTask.FromResult(calls < 2);
        }

        var tailer = new JsonFileTailer(_log, NullLogger.Instance);
        await ReadAllAsync(tailer, null, StillWriting, seen);

        Assert.Equal(["one", "two"], Messages(seen));
        Assert.Equal(0, tailer.Unreadable);
    }

    [Fact]
    public async Task ReadAsync_TornLastEntryAfterExit_SkippedAndCounted()
    {
        File.WriteAllText(_log, Entry("one\n", T0 + 1) + "{\"log\":\"tw" + "\n" + Entry("three\n", T0 + 3) + Entry("four\n", T0 + 4)[..15]);

        var tailer = new JsonFileTailer(_log, NullLogger.Instance);
        var lines = await ReadAllAsync(tailer, null, Exited);

        Assert.Equal(["one", "three"], Messages(lines));
        Assert.Equal(2, tailer.Unreadable);
    }

    [Fact]
    public async Task ReadAsync_RotatedWhileFollowing_RestOfTheOldFileThenTheNewOne()
    {
        File.WriteAllText(_log, Lines(1, 3));
        var calls = 0;
        ValueTask<bool> StillWriting(CancellationToken ct)
        {
            calls++;
            if (calls == 1)
            {
                // As the driver rotates (max-size): the last write lands in the old file, then it is renamed.
                File.AppendAllText(_log, Lines(4, 5));
                File.Move(_log, _log + ".1");
                File.WriteAllText(_log, Lines(6, 7));
            }
            return ValueTask.FromResult(calls < 3);
        }

        var tailer = new JsonFileTailer(_log, NullLogger.Instance);
        var lines = await ReadAllAsync(tailer, null, StillWriting);

        Assert.Equal(Numbers(1, 7), Messages(lines));
        Assert.Equal(2, tailer.FilesOpened);
    }

    [Fact]
    public async Task ReadAsync_SeveralRotationsBehind_EachFileOnceOldestFirst()
    {
        // max-file 3: .2 oldest, then .1, then the live file; more rotations while the reader is in .2.
        File.WriteAllText(_log + ".2", Lines(1, 2));
        File.WriteAllText(_log + ".1", Lines(3, 4));
        File.WriteAllText(_log, Lines(5, 6));
        var calls = 0;
        var seen = new List<RawLogLine>();
        ValueTask<bool> StillWriting(CancellationToken ct)
        {
            calls++;
            if (calls == 1)
            {
                Assert.Equal(Numbers(1, 6), Messages(seen));
                File.Move(_log + ".1", _log + ".2", overwrite: true); // drops the (already read) oldest
                File.Move(_log, _log + ".1");
                File.WriteAllText(_log, Lines(7, 8));
            }
            return ValueTask.FromResult(calls < 3);
        }

        var tailer = new JsonFileTailer(_log, NullLogger.Instance);
        await ReadAllAsync(tailer, null, StillWriting, seen);

        Assert.Equal(Numbers(1, 8), Messages(seen));
        Assert.Equal(4, tailer.FilesOpened);
    }

    [Fact]
    public async Task ReadAsync_FileBeingReadRotatedAway_ReadToItsEndThenTheOldestLeft()
    {
        // max-file 2, two rotations at once: the file being read is deleted (still open, so still readable to its end).
        File.WriteAllText(_log, Lines(1, 2));
        var calls = 0;
        ValueTask<bool> StillWriting(CancellationToken ct)
        {
            calls++;
            if (calls == 1)
            {
                File.AppendAllText(_log, Lines(3, 3));
                File.Move(_log, _log + ".1");
                File.WriteAllText(_log, Lines(4, 5));
                File.Move(_log, _log + ".1", overwrite: true);
                File.WriteAllText(_log, Lines(6, 6));
            }
            return ValueTask.FromResult(calls < 3);
        }

        var lines = await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), null, StillWriting);

        Assert.Equal(Numbers(1, 6), Messages(lines));
    }

    [Fact]
    public async Task ReadAsync_TruncatedInPlace_MaxFileOne_StartsOverAtTheTop()
    {
        File.WriteAllText(_log, Lines(1, 3));
        var calls = 0;
        ValueTask<bool> StillWriting(CancellationToken ct)
        {
            calls++;
            if (calls == 1)
            {
                using var f = new FileStream(_log, FileMode.Truncate, FileAccess.Write, FileShare.ReadWrite);
                f.Write(Encoding.UTF8.GetBytes(Lines(4, 5)));
            }
            return ValueTask.FromResult(calls < 3);
        }

        var lines = await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), null, StillWriting);

        Assert.Equal(Numbers(1, 5), Messages(lines));
    }

    [Fact]
    public async Task ReadAsync_Since_LinesAtOrAfterItAcrossRotatedFiles()
    {
        File.WriteAllText(_log + ".1", Lines(1, 4));
        File.WriteAllText(_log, Lines(5, 8));

        var lines = await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), T0 + 3000, Exited);

        Assert.Equal(Numbers(3, 8), Messages(lines));
    }

    [Fact]
    public async Task Resume_FromTheAcknowledgedCursor_ExactlyTheLinesAfterItWithTheSameSequences()
    {
        // Three lines share one timestamp; the agent acknowledged up to the second of them, then restarted.
        File.WriteAllText(_log + ".1", Entry("a\n", T0 + 1) + Entry("b\n", T0 + 2) + Entry("c\n", T0 + 2));
        File.WriteAllText(_log, Entry("d\n", T0 + 2) + Entry("e\n", T0 + 3));
        var first = new SequenceTracker(LogCursor.Start);
        var all = new List<(LogCursor Cursor, string Message)>();
        foreach (var l in await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), first.SinceNs, Exited))
        {
            Assert.True(first.TryNext(l.TimestampNs, out var c));
            all.Add((c, l.Message));
        }
        var acked = all[2].Cursor; // "c"

        var resumed = new SequenceTracker(acked);
        var after = new List<(LogCursor Cursor, string Message)>();
        foreach (var l in await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), resumed.SinceNs, Exited))
        {
            if (resumed.TryNext(l.TimestampNs, out var c))
            {
                after.Add((c, l.Message));
            }
        }

        Assert.Equal(["a", "b", "c", "d", "e"], all.Select(x => x.Message));
        Assert.Equal(all.Skip(3), after);
    }

    [Fact]
    public async Task ReadAsync_ManyLinesLargerThanTheBuffer_NoneLostAtBufferEdges()
    {
        var sb = new StringBuilder();
        for (var i = 1; i <= 20_000; i++)
        {
            sb.Append(Entry(new string((char)('a' + i % 26), i % 97) + i.ToString(CultureInfo.InvariantCulture) + "\n", T0 + i));
        }
        File.WriteAllText(_log, sb.ToString());

        var lines = await ReadAllAsync(new JsonFileTailer(_log, NullLogger.Instance), null, Exited);

        Assert.Equal(20_000, lines.Count);
        Assert.All(lines.Select((l, k) => (l, i: k + 1)), x => Assert.EndsWith(x.i.ToString(CultureInfo.InvariantCulture), x.l.Message));
        Assert.Equal(Enumerable.Range(1, 20_000).Select(i => T0 + i), lines.Select(l => l.TimestampNs));
    }
}
