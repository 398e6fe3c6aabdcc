using System.Text;
using Berth.Agent.Logs;
using Berth.Agent.Runtime;
using Berth.Core.Agent;
using Berth.Core.Logs;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.AgentRuntime;

public sealed class LogShipperTests : IDisposable
{
    private const string TaskArn = "arn:aws:ecs:us-east-1:000000000000:task/default/0123456789abcdef0123456789abcdef";
    private const string Group = "/ecs/web";
    private const string Stream = "web/app/0123456789abcdef0123456789abcdef";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private const long T0 = 1_800_000_000_000_000_000;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-logship-" + Guid.NewGuid().ToString("N"));
    private readonly FakeLogSource _source = new();
    private readonly InMemoryLogIngest _ingest = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static TaskSpec Spec(Dictionary<string, string>? options = null)
    {
        var c = new Berth.Core.Agent.ContainerSpec { Name = "app", Image = "busybox", Essential = true };
        c.LogConfiguration = new LogConfiguration { LogDriver = "awslogs" };
        foreach (var kv in options ?? new Dictionary<string, string> { ["awslogs-group"] = Group, ["awslogs-stream-prefix"] = "web", ["awslogs-create-group"] = "true" })
        {
            c.LogConfiguration.Options[kv.Key] = kv.Value;
        }
        var spec = new TaskSpec { Family = "web", Revision = 1 };
        spec.Containers.Add(c);
        return spec;
    }

    private static RuntimeContainer Container(string id, string state = "running")
        => new() { Id = id, TaskArn = TaskArn, ContainerName = "app", State = state };

    private LogShipper NewShipper(out FakeLogServer server, TimeSpan? flush = null)
    {
        var shipper = new LogShipper(_source, _dir, _time, NullLogger.Instance, flush ?? TimeSpan.Zero);
        server = new FakeLogServer(_ingest, shipper);
        return shipper;
    }

    /// <summary>Advances the fake clock in steps until <paramref name="done"/> holds (retry and reopen delays run on it).</summary>
    private async Task PumpUntilAsync(Func<bool> done)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!done())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in time");
            _time.Advance(TimeSpan.FromMilliseconds(250));
            await Task.Delay(2, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public void SequenceTracker_TiesAndClockSteps_StrictlyIncreasingFromTimestamps()
    {
        var t = new SequenceTracker(LogCursor.Start);
        Assert.Null(t.SinceNs);
        var seqs = new[] { T0, T0, T0, T0 + 1, T0 + 10, T0 + 5 }.Select(ts => { Assert.True(t.TryNext(ts, out var c)); return c; }).ToList();
        Assert.Equal([T0, T0 + 1, T0 + 2, T0 + 3, T0 + 10, T0 + 11], seqs.Select(c => c.Sequence));
        Assert.Equal([1, 2, 3, 1, 1, 1], seqs.Select(c => c.CountAtTimestamp));
    }

    [Fact]
    public void SequenceTracker_ResumeFromCursor_SkipsExactlyTheLinesSeenAndRepeatsTheirSequences()
    {
        var stamps = new[] { T0, T0 + 7, T0 + 7, T0 + 7, T0 + 8, T0 + 9 };
        var first = new SequenceTracker(LogCursor.Start);
        var all = stamps.Select(ts => { first.TryNext(ts, out var c); return c; }).ToList();
        // Acknowledged up to the second line stamped T0+7.
        var resumed = new SequenceTracker(all[2]);
        Assert.Equal(T0 + 6, resumed.SinceNs);
        var again = new List<LogCursor>();
        foreach (var ts in stamps.Where(ts => ts >= T0 + 6))
        {
            if (resumed.TryNext(ts, out var c))
            {
                again.Add(c);
            }
        }
        Assert.Equal(all.Skip(3), again);
    }

    [Fact]
    public void SequenceTracker_Reopen_SkipsWhatWasAlreadyHandedOut()
    {
        var t = new SequenceTracker(LogCursor.Start);
        t.TryNext(T0, out _);
        t.TryNext(T0, out var second);
        t.Reopen();
        Assert.Equal(T0 - 1, t.SinceNs);
        Assert.False(t.TryNext(T0, out _));
        Assert.False(t.TryNext(T0, out _));
        Assert.True(t.TryNext(T0, out var third));
        Assert.Equal(second.Sequence + 1, third.Sequence);
    }

    [Theory]
    [InlineData("2026-11-27T19:49:20.123456789Z", 1795808960123456789L)]
    [InlineData("2026-11-27T19:49:20.1Z", 1795808960100000000L)]
    [InlineData("2026-11-27T19:49:20Z", 1795808960000000000L)]
    [InlineData("2026-11-27T20:49:20.5+01:00", 1795808960500000000L)]
    public void ParseTimestampNs_Rfc3339Nano_UnixNanoseconds(string text, long expected)
        => Assert.Equal(expected, DockerLogSource.ParseTimestampNs(text));

    [Fact]
    public void ParseEntry_AndSplitter_LinesAcrossReads()
    {
        var splitter = new DockerLogSource.LineSplitter();
        var a = splitter.Push(Encoding.UTF8.GetBytes("2026-11-27T19:49:20.1Z hello wor"));
        Assert.Empty(a);
        var b = splitter.Push(Encoding.UTF8.GetBytes("ld\n2026-11-27T19:49:20.2Z \n2026-11-27T19:49:20.3Z x"));
        Assert.Equal(2, b.Count);
        Assert.Equal(new RawLogLine(1795808960100000000L, "hello world"), DockerLogSource.ParseEntry(b[0]));
        Assert.Equal(new RawLogLine(1795808960200000000L, ""), DockerLogSource.ParseEntry(b[1]));
        Assert.Null(DockerLogSource.ParseEntry("garbage line"));
        Assert.Equal("1795808960.000000042", DockerLogSource.FormatSince(1795808960000000042L));
    }

    [Fact]
    public void AwsLogsTarget_StreamNames_AsEcsNamesThem()
    {
        var withPrefix = AwsLogsTarget.For(Spec().Containers[0], TaskArn, "c0ffee")!;
        Assert.Equal(Stream, withPrefix.Stream);
        Assert.True(withPrefix.CreateGroup);
        Assert.True(withPrefix.Blocking);
        var bare = AwsLogsTarget.For(Spec(new() { ["awslogs-group"] = Group, ["mode"] = "non-blocking", ["max-buffer-size"] = "4k" }).Containers[0], TaskArn, "c0ffee")!;
        Assert.Equal("c0ffee", bare.Stream);
        Assert.False(bare.CreateGroup);
        Assert.False(bare.Blocking);
        Assert.Equal(4096, bare.MaxBufferBytes);
        Assert.Null(AwsLogsTarget.For(new Berth.Core.Agent.ContainerSpec { Name = "x", LogConfiguration = new LogConfiguration { LogDriver = "json-file" } }, TaskArn, "c"));
        Assert.Equal(1L << 20, AwsLogsTarget.ParseSize("1m"));
        Assert.Equal(2621440, AwsLogsTarget.ParseSize("2.5MB"));
        Assert.Null(AwsLogsTarget.ParseSize("lots"));
    }

    [Fact]
    public async Task Ship_ExitedContainer_EveryLineOnceInOrderInBoundedBatches()
    {
        const int n = 25_000;
        for (var i = 0; i < n; i++)
        {
            _source.Write("c1", T0 + i / 3 * 1000, $"line {i}"); // three lines share each timestamp
        }
        _source.Exit("c1");
        await using var shipper = NewShipper(out var server);
        shipper.Attach(server.Send);
        shipper.Observe(TaskArn, Spec(), [Container("c1", "exited")]);
        await shipper.WhenDrainedAsync("c1").WaitAsync(Timeout, TestContext.Current.CancellationToken);

        var events = _ingest.Events(Group, Stream);
        Assert.Equal(n, events.Count);
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"line {i}"), events.Select(e => e.Message));
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.Sequence < p.Second.Sequence));
        Assert.Equal(T0 / 1_000_000, events[0].TimestampMs);
        Assert.True(_ingest.MaxBatchLines <= LogBatchLimits.MaxLines);
        Assert.True(shipper.IsDrained("c1"));
        Assert.True(File.Exists(Path.Combine(_dir, "c1.json")));
    }

    [Fact]
    public async Task Ship_RunningContainer_FollowsNewOutputUntilExit()
    {
        await using var shipper = NewShipper(out var server);
        shipper.Attach(server.Send);
        _source.Write("c1", T0, "first");
        shipper.Observe(TaskArn, Spec(), [Container("c1")]);
        await PumpUntilAsync(() => _ingest.Events(Group, Stream).Count == 1);
        Assert.False(shipper.IsDrained("c1"));
        _source.Write("c1", T0 + 5, "second");
        _source.Exit("c1");
        await shipper.WhenDrainedAsync("c1").WaitAsync(Timeout, TestContext.Current.CancellationToken);
        Assert.Equal(["first", "second"], _ingest.Events(Group, Stream).Select(e => e.Message));
    }

    [Fact]
    public async Task Ship_CreatedButNotStarted_NotFollowedYet()
    {
        await using var shipper = NewShipper(out var server);
        shipper.Observe(TaskArn, Spec(), [Container("c1", "created")]);
        Assert.Empty(_source.Opens);
        Assert.True(shipper.IsDrained("c1"));
    }

    [Fact]
    public async Task Restart_AckLostAfterStore_ResumesFromCursorWithoutLossOrDuplicate()
    {
        const int n = 30_000;
        for (var i = 0; i < n; i++)
        {
            _source.Write("c1", T0 + i, $"line {i}");
        }
        _source.Exit("c1");
        // First agent: the server stores the second batch but its ack is lost; then the agent is killed.
        var first = NewShipper(out var server1);
        server1.LoseAckOf = b => b >= 2;
        first.Attach(server1.Send);
        first.Observe(TaskArn, Spec(), [Container("c1", "exited")]);
        await PumpUntilAsync(() => Volatile.Read(ref server1.Batches) >= 2 && _ingest.Calls >= 2);
        var storedBefore = _ingest.Events(Group, Stream).Count;
        Assert.True(storedBefore > LogBatchLimits.MaxLines, "two batches stored");
        first.Detach();
        await first.DisposeAsync();

        // Second agent, same data directory: resumes from the first batch's acknowledged cursor.
        await using var second = NewShipper(out var server2);
        second.Attach(server2.Send);
        second.Observe(TaskArn, Spec(), [Container("c1", "exited")]);
        await second.WhenDrainedAsync("c1").WaitAsync(Timeout, TestContext.Current.CancellationToken);

        var events = _ingest.Events(Group, Stream);
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"line {i}"), events.Select(e => e.Message));
        Assert.Equal(T0 + LogBatchLimits.MaxLines - 2, _source.Opens[^1]); // since = the acknowledged line's timestamp - 1 ns
    }

    [Fact]
    public async Task Disconnect_BatchInFlight_SentAgainOnTheNextStream()
    {
        for (var i = 0; i < 100; i++)
        {
            _source.Write("c1", T0 + i, $"line {i}");
        }
        _source.Exit("c1");
        await using var shipper = NewShipper(out var server);
        server.LoseAckOf = _ => true;
        shipper.Attach(server.Send);
        shipper.Observe(TaskArn, Spec(), [Container("c1", "exited")]);
        await PumpUntilAsync(() => _ingest.Calls >= 1);
        shipper.Detach(); // the stream broke before the ack came
        server.LoseAckOf = _ => false;
        shipper.Attach(server.Send);
        await PumpUntilAsync(() => shipper.IsDrained("c1"));
        Assert.Equal(100, _ingest.Events(Group, Stream).Count);
        Assert.True(_ingest.Calls >= 2);
    }

    [Fact]
    public async Task EngineStreamBreaks_ReopenedFromLastLineRead_NothingLostOrDoubled()
    {
        for (var i = 0; i < 50; i++)
        {
            _source.Write("c1", T0 + i / 2, $"line {i}"); // pairs share a timestamp
        }
        _source.BreakAfter = 7;
        await using var shipper = NewShipper(out var server);
        shipper.Attach(server.Send);
        shipper.Observe(TaskArn, Spec(), [Container("c1")]);
        await PumpUntilAsync(() => _ingest.Events(Group, Stream).Count == 50);
        _source.BreakAfter = null;
        _source.Exit("c1");
        await PumpUntilAsync(() => shipper.IsDrained("c1"));
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"line {i}"), _ingest.Events(Group, Stream).Select(e => e.Message));
        Assert.True(_source.Opens.Count > 5);
    }

    [Fact]
    public async Task GroupMissing_WithoutCreateGroup_RetriedUntilTheGroupExists()
    {
        _source.Write("c1", T0, "hello");
        _source.Exit("c1");
        await using var shipper = NewShipper(out var server);
        shipper.Attach(server.Send);
        shipper.Observe(TaskArn, Spec(new() { ["awslogs-group"] = Group, ["awslogs-stream-prefix"] = "web" }), [Container("c1", "exited")]);
        await PumpUntilAsync(() => _ingest.Calls >= 2);
        Assert.Empty(_ingest.Events(Group, Stream));
        Assert.False(shipper.IsDrained("c1"));
        _ingest.CreateGroup(Group);
        await PumpUntilAsync(() => shipper.IsDrained("c1"));
        Assert.Equal(["hello"], _ingest.Events(Group, Stream).Select(e => e.Message));
    }

    [Fact]
    public async Task NonBlocking_ServerUnreachable_BufferBoundedAndOldestDropped()
    {
        const int n = 2000;
        for (var i = 0; i < n; i++)
        {
            _source.Write("c1", T0 + i, $"line {i:D5}"); // 10 bytes + 26 overhead each
        }
        _source.Exit("c1");
        await using var shipper = NewShipper(out var server);
        shipper.Observe(TaskArn, Spec(new() { ["awslogs-group"] = Group, ["awslogs-stream-prefix"] = "web", ["awslogs-create-group"] = "true", ["mode"] = "non-blocking", ["max-buffer-size"] = "3600" }),
            [Container("c1", "exited")]);
        await PumpUntilAsync(() => shipper.Dropped("c1") > 0 && _source.Opens.Count == 1);
        await PumpUntilAsync(() => shipper.Dropped("c1") + 100 >= n); // the reader went through everything; 100 lines fit
        shipper.Attach(server.Send);
        await shipper.WhenDrainedAsync("c1").WaitAsync(Timeout, TestContext.Current.CancellationToken);
        var events = _ingest.Events(Group, Stream);
        Assert.Equal(n, events.Count + shipper.Dropped("c1"));
        Assert.True(events.Count <= 100);
        Assert.Equal($"line {n - 1:D5}", events[^1].Message); // the newest kept, the oldest dropped
    }

    [Fact]
    public async Task Blocking_ServerUnreachable_NothingDroppedReaderWaits()
    {
        const int n = 120_000; // more than the blocking read-ahead holds (2 MiB at ~37 bytes a line)
        for (var i = 0; i < n; i++)
        {
            _source.Write("c1", T0 + i, $"line {i:D6}");
        }
        _source.Exit("c1");
        await using var shipper = NewShipper(out var server);
        shipper.Observe(TaskArn, Spec(), [Container("c1", "exited")]);
        await PumpUntilAsync(() => _source.Opens.Count == 1);
        Assert.Equal(0, shipper.Dropped("c1"));
        shipper.Attach(server.Send);
        await shipper.WhenDrainedAsync("c1").WaitAsync(Timeout, TestContext.Current.CancellationToken);
        Assert.Equal(n, _ingest.Events(Group, Stream).Count);
        Assert.Equal(0, shipper.Dropped("c1"));
    }

    [Fact]
    public void Bound_LineOverCloudWatchLimit_CutToIt()
    {
        var huge = new string('é', 200_000); // 400,000 UTF-8 bytes
        var cut = LogShipper.Bound(huge);
        Assert.True(Encoding.UTF8.GetByteCount(cut) <= LogBatchLimits.MaxLineBytes);
        Assert.True(cut.Length > 100_000);
        Assert.Same("short", LogShipper.Bound("short"));
    }
}
