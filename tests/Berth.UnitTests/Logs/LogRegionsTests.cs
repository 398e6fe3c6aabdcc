using Berth.Core;
using Berth.Core.Logs;
using Berth.Logs.Hosting;
using Berth.Logs.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Logs;

public sealed class LogRegionsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-logregions-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private LogRegions Open(string region = "us-east-1")
        => new(new LogStoreOptions { DataDirectory = _dir }, new BerthIdentity(Region: region), _time, NullLogger<LogRegions>.Instance);

    private static IngestedLogEvent[] Line(long sequence, long ts, string message) => [new IngestedLogEvent(sequence, ts, message)];

    [Fact]
    public async Task AppendInRegion_SameGroupInTwoRegions_EachHoldsItsOwnEvents()
    {
        var regions = Open();
        Assert.Null((await regions.AppendInRegionAsync("us-east-1", "g", "s", true, Line(1, Now, "east"), default)).Error);
        Assert.Null((await regions.AppendInRegionAsync("us-west-2", "g", "s", true, Line(1, Now, "west"), default)).Error);
        Assert.Equal(1, regions.Default.Store.Stream("g", "s").Snapshot.NextOrdinal);
        Assert.Equal(1, regions.Get("us-west-2").Store.Stream("g", "s").Snapshot.NextOrdinal);
        Assert.Throws<Berth.Aws.Protocol.AwsException>(() => regions.Get("eu-west-1").Store.Group("g"));
        Assert.True(Directory.Exists(Path.Combine(_dir, "us-west-2", "groups")));

        // Reopened: both regions come back from disk.
        var again = Open();
        Assert.Equal(["eu-west-1", "us-east-1", "us-west-2"], again.All.Select(r => r.Name).Order(StringComparer.Ordinal).ToList());
        Assert.Equal(1, again.Get("us-west-2").Store.Stream("g", "s").Snapshot.NextOrdinal);
    }

    [Fact]
    public async Task AppendInRegion_NotARegionName_AnswersAnErrorAndStoresNothing()
    {
        var regions = Open();
        var result = await regions.AppendInRegionAsync("Mars_1", "g", "s", true, Line(1, Now, "x"), default);
        Assert.Contains("not a region name", result.Error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "Mars_1")));
    }

    [Fact]
    public async Task Open_StoreFromBeforeRegions_BecomesTheDefaultRegionsOnce()
    {
        // The layout before regions: DATA/logs/groups/...
        var legacy = new LogStore(new LogStoreOptions { DataDirectory = _dir }, _time);
        await legacy.AppendAsync("old", "s", true, Line(1, Now, "from before"), default);
        Assert.True(Directory.Exists(Path.Combine(_dir, "groups")));

        var regions = Open("eu-central-1");
        Assert.False(Directory.Exists(Path.Combine(_dir, "groups")));
        Assert.Equal(1, regions.Default.Store.Stream("old", "s").Snapshot.NextOrdinal);
        Assert.Equal("eu-central-1", regions.Default.Name);
        // Idempotent: a second start finds nothing left to move and keeps the data.
        Assert.Equal(1, Open("eu-central-1").Default.Store.Stream("old", "s").Snapshot.NextOrdinal);
    }
}
