using Berth.Aws.Protocol;
using Berth.Core.Logs;
using Berth.Logs.Storage;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Logs;

public sealed class LogStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-logs-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // Small segments so a few hundred events span many segments and index blocks.
    private LogStore Open() => new(new LogStoreOptions { DataDirectory = _dir, SegmentBytes = 4096 }, _time);

    private static List<NewEvent> Events(int from, int count, long ts) =>
        [.. Enumerable.Range(from, count).Select(i => new NewEvent(0, ts + i, $"line {i} " + new string('x', i % 50)))];

    [Fact]
    public async Task Put_ThenReadForwardAndBackward_ReturnsEveryEventInOrder()
    {
        var store = Open();
        store.CreateGroup("g", null);
        store.CreateStream("g", "s");
        await store.PutAsync("g", "s", Events(0, 700, Now), default);
        await store.PutAsync("g", "s", Events(700, 300, Now), default);
        var snap = store.Stream("g", "s").Snapshot;
        Assert.True(snap.Segments.Length > 5, $"expected several segments, got {snap.Segments.Length}");
        Assert.Equal(1000, snap.NextOrdinal);

        var forward = StreamLog.Forward(snap, 0, snap.NextOrdinal).ToList();
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"line {i} " + new string('x', i % 50)), forward.Select(e => e.Message));
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => (long)i), forward.Select(e => e.Ordinal));

        var backward = StreamLog.Backward(snap, 1000).Select(e => e.Ordinal).ToList();
        Assert.Equal(Enumerable.Range(0, 1000).Reverse().Select(i => (long)i), backward);

        // From the middle of an index block, in both directions.
        Assert.Equal(Enumerable.Range(333, 10).Select(i => (long)i), StreamLog.Forward(snap, 333, 343).Select(e => e.Ordinal));
        Assert.Equal(Enumerable.Range(323, 10).Reverse().Select(i => (long)i), StreamLog.Backward(snap, 333).Take(10).Select(e => e.Ordinal));
    }

    [Fact]
    public async Task Reopen_AfterWrites_KeepsGroupsStreamsEventsAndMetadata()
    {
        var store = Open();
        store.CreateGroup("/app/web", new Dictionary<string, string> { ["team"] = "a" });
        store.UpdateGroup("/app/web", g => g.RetentionInDays = 7);
        store.CreateStream("/app/web", "web/app/1");
        await store.PutAsync("/app/web", "web/app/1", Events(0, 500, Now), default);
        var before = store.Stream("/app/web", "web/app/1").Snapshot;

        var again = Open();
        var g = again.Group("/app/web");
        Assert.Equal(7, g.RetentionInDays);
        Assert.Equal("a", g.Tags["team"]);
        var after = again.Stream("/app/web", "web/app/1").Snapshot;
        Assert.Equal(before.NextOrdinal, after.NextOrdinal);
        Assert.Equal(before.StoredBytes, after.StoredBytes);
        Assert.Equal(before.FirstTimestamp, after.FirstTimestamp);
        Assert.Equal(before.LastTimestamp, after.LastTimestamp);
        Assert.Equal(500, StreamLog.Forward(after, 0, after.NextOrdinal).Count());
    }

    [Fact]
    public async Task Reopen_WithTornTail_TruncatesItAndAppendsAfterTheLastWholeRecord()
    {
        var store = Open();
        store.CreateGroup("g", null);
        store.CreateStream("g", "s");
        await store.PutAsync("g", "s", Events(0, 300, Now), default);
        var last = store.Stream("g", "s").Snapshot.Segments[^1];
        // A crash in the middle of a write: a header promising more bytes than were written.
        await using (var f = new FileStream(last.DataPath, FileMode.Append))
        {
            f.Write([200, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
        }

        var again = Open();
        var snap = again.Stream("g", "s").Snapshot;
        Assert.Equal(300, snap.NextOrdinal);
        Assert.Equal(last.Bytes, new FileInfo(last.DataPath).Length);
        await again.PutAsync("g", "s", Events(300, 10, Now), default);
        snap = again.Stream("g", "s").Snapshot;
        Assert.Equal(Enumerable.Range(0, 310).Select(i => $"line {i} " + new string('x', i % 50)), StreamLog.Forward(snap, 0, snap.NextOrdinal).Select(e => e.Message));
    }

    [Fact]
    public async Task Reopen_WithGarbledLastRecord_DropsOnlyThatRecord()
    {
        var store = Open();
        store.CreateGroup("g", null);
        store.CreateStream("g", "s");
        await store.PutAsync("g", "s", Events(0, 5, Now), default);
        var seg = store.Stream("g", "s").Snapshot.Segments[^1];
        var bytes = await File.ReadAllBytesAsync(seg.DataPath);
        bytes[^1] ^= 0xFF; // the last message byte: its CRC no longer matches
        await File.WriteAllBytesAsync(seg.DataPath, bytes);

        var snap = Open().Stream("g", "s").Snapshot;
        Assert.Equal(4, snap.NextOrdinal);
    }

    [Fact]
    public async Task Ingest_ResentSequences_AreStoredOnceEvenAfterRestart()
    {
        ILogIngest store = Open();
        static IngestedLogEvent[] Seq(long from, long to, long ts) => [.. Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => new IngestedLogEvent(1_000 + i, ts, $"e{i}"))];

        var first = await store.AppendAsync("/ecs/app", "p/c/t", createGroup: true, Seq(1, 10, Now), default);
        Assert.Null(first.Error);
        Assert.Equal(1_010, first.AcknowledgedSequence);
        var overlap = await store.AppendAsync("/ecs/app", "p/c/t", createGroup: false, Seq(5, 15, Now), default);
        Assert.Equal(1_015, overlap.AcknowledgedSequence);

        var restarted = Open();
        var again = await ((ILogIngest)restarted).AppendAsync("/ecs/app", "p/c/t", createGroup: false, Seq(1, 15, Now), default);
        Assert.Equal(1_015, again.AcknowledgedSequence);
        var snap = restarted.Stream("/ecs/app", "p/c/t").Snapshot;
        Assert.Equal(Enumerable.Range(1, 15).Select(i => $"e{i}"), StreamLog.Forward(snap, 0, snap.NextOrdinal).Select(e => e.Message));
    }

    [Fact]
    public async Task Ingest_MissingGroupWithoutCreate_ReportsTheErrorAndStoresNothing()
    {
        var store = Open();
        var r = await ((ILogIngest)store).AppendAsync("nope", "s", createGroup: false, [new IngestedLogEvent(1, Now, "x")], default);
        Assert.Equal("The specified log group does not exist.", r.Error);
        Assert.Throws<AwsException>(() => store.Group("nope"));
    }

    [Fact]
    public async Task Retention_DropsSegmentsPastIt_KeepsRecentOnes_AndTheStreamPositionSurvives()
    {
        var store = Open();
        store.CreateGroup("g", null);
        store.CreateStream("g", "s");
        var threeDaysAgo = Now - 3 * 86_400_000L;
        await store.PutAsync("g", "s", Events(0, 300, threeDaysAgo), default);
        await store.PutAsync("g", "s", Events(300, 100, Now), default);
        Assert.Equal(0, await store.ApplyRetentionAsync(default)); // no policy yet

        store.UpdateGroup("g", g => g.RetentionInDays = 1);
        Assert.True(await store.ApplyRetentionAsync(default) > 0);
        var snap = store.Stream("g", "s").Snapshot;
        var left = StreamLog.Forward(snap, 0, snap.NextOrdinal).ToList();
        // Whole segments go: an expired event survives only in the segment it shares with a live one (CloudWatch too deletes lazily).
        var cutoff = Now - 86_400_000L;
        var firstLive = snap.Segments.First(s => s.MaxTimestamp >= cutoff);
        Assert.Equal(firstLive, snap.Segments[0]);
        Assert.All(left, e => Assert.True(e.Timestamp >= cutoff || e.Ordinal < firstLive.EndOrdinal));
        Assert.True(left.Count(e => e.Timestamp < cutoff) < 300 / 4, "most expired events are gone");
        Assert.Contains(left, e => e.Message.StartsWith("line 399 ", StringComparison.Ordinal));

        // Everything expires; ordinals never go back, even across a restart.
        _time.Advance(TimeSpan.FromDays(2));
        await store.ApplyRetentionAsync(default);
        Assert.Empty(store.Stream("g", "s").Snapshot.Segments);
        var reopened = Open();
        Assert.Equal(400, reopened.Stream("g", "s").Snapshot.NextOrdinal);
        await reopened.PutAsync("g", "s", Events(0, 1, Now), default);
        Assert.Equal(400, reopened.Stream("g", "s").Snapshot.Segments[0].FirstOrdinal);
    }

    [Fact]
    public async Task DeleteGroup_RemovesItsFiles_AndReopenDoesNotSeeIt()
    {
        var store = Open();
        store.CreateGroup("g", null);
        store.CreateStream("g", "s");
        await store.PutAsync("g", "s", Events(0, 10, Now), default);
        await store.DeleteGroupAsync("g", default);
        Assert.Empty(Directory.GetDirectories(Path.Combine(_dir, "groups")));
        Assert.Empty(Open().Groups());
        var e = Assert.Throws<AwsException>(() => store.CreateStream("g", "s"));
        Assert.Equal("ResourceNotFoundException", e.ErrorType);
    }
}
