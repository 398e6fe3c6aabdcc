using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Logs;

/// <summary>
/// The CloudWatch Logs API driven by the real AWS CLI: ten thousand and more events put in batches and read back
/// whole with get-log-events (following its tokens until the same forward token comes back), filter-log-events
/// with each pattern kind, retention applied by the sweeper, tags, and a kill -9 in between.
/// </summary>
public sealed class LogsCliTests : IAsyncLifetime
{
    private BerthServer? _server;
    private AwsCli? _aws;
    private readonly string _tmp = Path.Combine(Path.GetTempPath(), "berth-logs-e2e-" + Guid.NewGuid().ToString("N"));

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(_tmp);
        _server = await BerthServer.StartAsync("server", "--logs-retention-sweep-interval", "1");
        _aws = new AwsCli(_server.Endpoint);
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        Directory.Delete(_tmp, recursive: true);
    }

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Writes events as the CLI's --log-events file:// input.</summary>
    private string EventsFile(IEnumerable<(long Ts, string Message)> events)
    {
        var path = Path.Combine(_tmp, Guid.NewGuid().ToString("N") + ".json");
        var arr = new JsonArray([.. events.Select(e => (JsonNode)new JsonObject { ["timestamp"] = e.Ts, ["message"] = e.Message })]);
        File.WriteAllText(path, arr.ToJsonString());
        return "file://" + path;
    }

    private Task<JsonNode> PutAsync(string group, string stream, IEnumerable<(long Ts, string Message)> events)
        => _aws!.RunAsync("logs", "put-log-events", "--log-group-name", group, "--log-stream-name", stream, "--log-events", EventsFile(events));

    private static string Line(int i) => "event " + i.ToString("D5", CultureInfo.InvariantCulture);

    [Fact]
    public async Task GetLogEvents_TenThousandPlusEventsInBatches_ReadBackWholeInOrderInBothDirections()
    {
        const int Total = 10_500;
        await _aws!.RunAsync("logs", "create-log-group", "--log-group-name", "/e2e/bulk");
        await _aws.RunAsync("logs", "create-log-stream", "--log-group-name", "/e2e/bulk", "--log-stream-name", "app/web/1");
        var t0 = Now - 3_600_000;
        for (var b = 0; b < Total; b += 1_500)
        {
            var r = await PutAsync("/e2e/bulk", "app/web/1", Enumerable.Range(b, Math.Min(1_500, Total - b)).Select(i => (t0 + i, Line(i))));
            Assert.Null(r["rejectedLogEventsInfo"]);
        }

        // Forward from the head, following nextForwardToken until it comes back unchanged.
        var seen = new List<string>();
        string? token = null;
        for (var calls = 0; ; calls++)
        {
            Assert.True(calls < 10, "get-log-events did not reach the end of the stream");
            var page = await _aws.RunAsync(["logs", "get-log-events", "--log-group-name", "/e2e/bulk", "--log-stream-name", "app/web/1", "--start-from-head",
                .. token is null ? Array.Empty<string>() : ["--next-token", token]]);
            seen.AddRange(page["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));
            var next = page["nextForwardToken"]!.GetValue<string>();
            Assert.StartsWith("f/", next, StringComparison.Ordinal);
            if (next == token)
            {
                Assert.Empty(page["events"]!.AsArray());
                break;
            }
            token = next;
        }
        Assert.Equal(Enumerable.Range(0, Total).Select(Line), seen);

        // The default reads the newest 10,000; the backward token pages to the older rest.
        var tail = await _aws.RunAsync("logs", "get-log-events", "--log-group-name", "/e2e/bulk", "--log-stream-name", "app/web/1");
        var newest = tail["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()).ToList();
        Assert.Equal(Enumerable.Range(Total - 10_000, 10_000).Select(Line), newest);
        var older = await _aws.RunAsync("logs", "get-log-events", "--log-group-name", "/e2e/bulk", "--log-stream-name", "app/web/1",
            "--next-token", tail["nextBackwardToken"]!.GetValue<string>());
        Assert.Equal(Enumerable.Range(0, Total - 10_000).Select(Line), older["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));

        // A time window and a limit.
        var window = await _aws.RunAsync("logs", "get-log-events", "--log-group-name", "/e2e/bulk", "--log-stream-name", "app/web/1", "--start-from-head",
            "--start-time", (t0 + 100).ToString(CultureInfo.InvariantCulture), "--end-time", (t0 + 200).ToString(CultureInfo.InvariantCulture), "--limit", "30");
        Assert.Equal(Enumerable.Range(100, 30).Select(Line), window["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));

        // filter-log-events with no pattern: the CLI follows nextToken itself; every event, once.
        var all = await _aws.RunAsync("logs", "filter-log-events", "--log-group-name", "/e2e/bulk");
        Assert.Equal(Total, all["events"]!.AsArray().Count);

        var streams = await _aws.RunAsync("logs", "describe-log-streams", "--log-group-name", "/e2e/bulk");
        var s = streams["logStreams"]![0]!;
        Assert.Equal(t0, s["firstEventTimestamp"]!.GetValue<long>());
        Assert.Equal(t0 + Total - 1, s["lastEventTimestamp"]!.GetValue<long>());
        Assert.True(s["storedBytes"]!.GetValue<long>() > Total * 10);

        // kill -9 and restart: everything is still there, and appends continue after it.
        await _server!.KillAsync();
        await _server.RestartAsync("--logs-retention-sweep-interval", "1");
        await PutAsync("/e2e/bulk", "app/web/1", [(t0 + Total, Line(Total))]);
        var after = await _aws.RunAsync("logs", "filter-log-events", "--log-group-name", "/e2e/bulk");
        Assert.Equal(Enumerable.Range(0, Total + 1).Select(Line), after["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));
    }

    [Fact]
    public async Task FilterLogEvents_EachPatternKind_ReturnsTheMatchingEventsInterleavedByTime()
    {
        await _aws!.RunAsync("logs", "create-log-group", "--log-group-name", "/e2e/filter");
        await _aws.RunAsync("logs", "create-log-stream", "--log-group-name", "/e2e/filter", "--log-stream-name", "a");
        await _aws.RunAsync("logs", "create-log-stream", "--log-group-name", "/e2e/filter", "--log-stream-name", "b");
        var t = Now - 60_000;
        await PutAsync("/e2e/filter", "a", [
            (t, "[ERROR] disk full on /var"),
            (t + 2, "[WARN] low memory"),
            (t + 4, """{"level":"error","status":503,"path":"/api/users/7"}"""),
            (t + 6, """{"level":"info","status":200,"path":"/health"}"""),
        ]);
        await PutAsync("/e2e/filter", "b", [
            (t + 1, "[INFO] started"),
            (t + 3, "[ERROR] connection refused"),
            (t + 5, """{"level":"error","status":404,"path":"/api/orders"}"""),
            (t + 7, """{"level":"warn","owner":null}"""),
        ]);

        async Task<List<string>> Match(string pattern, params string[] extra)
        {
            var r = await _aws.RunAsync(["logs", "filter-log-events", "--log-group-name", "/e2e/filter", "--filter-pattern", pattern, .. extra]);
            return [.. r["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>())];
        }

        Assert.Equal(["[ERROR] disk full on /var", "[ERROR] connection refused"], await Match("ERROR"));
        Assert.Equal(["[ERROR] disk full on /var"], await Match("ERROR disk"));
        Assert.Equal(["[ERROR] connection refused"], await Match("\"connection refused\""));
        Assert.Equal(["[INFO] started", "[WARN] low memory"], await Match("?WARN ?INFO"));
        Assert.Equal(["[ERROR] connection refused"], await Match("ERROR -disk"));
        Assert.Equal(2, (await Match("{ $.level = \"error\" }")).Count);
        Assert.Equal(["""{"level":"error","status":503,"path":"/api/users/7"}"""], await Match("{ $.status >= 500 }"));
        Assert.Equal(["""{"level":"error","status":404,"path":"/api/orders"}"""], await Match("{ $.level = \"error\" && $.status < 500 }"));
        Assert.Equal(3, (await Match("{ $.status = 200 || $.level = \"err*\" }")).Count);
        Assert.Equal(["""{"level":"error","status":503,"path":"/api/users/7"}"""], await Match("{ $.path = \"*/users/*\" }"));
        Assert.Equal(["""{"level":"warn","owner":null}"""], await Match("{ $.owner IS NULL }"));
        Assert.Equal(["""{"level":"warn","owner":null}"""], await Match("{ $.status NOT EXISTS }"));
        Assert.Equal(["[ERROR] connection refused"], await Match("ERROR", "--log-stream-names", "b"));
        Assert.Equal(["[ERROR] disk full on /var"], await Match("ERROR", "--end-time", (t + 2).ToString(CultureInfo.InvariantCulture)));

        // Interleaved by timestamp across the two streams, and paged by the CLI with a small page size.
        var all = await _aws.RunAsync("logs", "filter-log-events", "--log-group-name", "/e2e/filter", "--page-size", "3");
        Assert.Equal(Enumerable.Range(0, 8).Select(i => t + i), all["events"]!.AsArray().Select(e => e!["timestamp"]!.GetValue<long>()));
        Assert.Equal(["a", "b", "a", "b"], all["events"]!.AsArray().Take(4).Select(e => e!["logStreamName"]!.GetValue<string>()));

        // Streams ordered by last event time, newest first.
        var byTime = await _aws.RunAsync("logs", "describe-log-streams", "--log-group-name", "/e2e/filter", "--order-by", "LastEventTime", "--descending");
        Assert.Equal(["b", "a"], byTime["logStreams"]!.AsArray().Select(s => s!["logStreamName"]!.GetValue<string>()));
    }

    [Fact]
    public async Task PutRetentionPolicy_ExpiredEvents_AreDeletedByTheSweeper()
    {
        await _aws!.RunAsync("logs", "create-log-group", "--log-group-name", "/e2e/retention");
        await _aws.RunAsync("logs", "create-log-stream", "--log-group-name", "/e2e/retention", "--log-stream-name", "s");
        var threeDaysAgo = Now - 3 * 86_400_000L;
        await PutAsync("/e2e/retention", "s", Enumerable.Range(0, 50).Select(i => (threeDaysAgo + i, Line(i))));
        Assert.Equal(50, (await _aws.RunAsync("logs", "get-log-events", "--log-group-name", "/e2e/retention", "--log-stream-name", "s"))["events"]!.AsArray().Count);

        await _aws.RunAsync("logs", "put-retention-policy", "--log-group-name", "/e2e/retention", "--retention-in-days", "1");
        var groups = await _aws.RunAsync("logs", "describe-log-groups", "--log-group-name-prefix", "/e2e/retention");
        Assert.Equal(1, groups["logGroups"]![0]!["retentionInDays"]!.GetValue<int>());
        await Wait.ForAsync(async () =>
        {
            var r = await _aws.RunAsync("logs", "get-log-events", "--log-group-name", "/e2e/retention", "--log-stream-name", "s");
            return r["events"]!.AsArray().Count == 0 ? r : null;
        }, TimeSpan.FromSeconds(30), "the retention sweeper to delete the expired events");

        // Events now older than the retention are refused as expired, the rest stored.
        var put = await PutAsync("/e2e/retention", "s", [(Now - 86_400_000L - 60_000, "expired"), (Now - 120_000, "fresh")]);
        Assert.Equal(0, put["rejectedLogEventsInfo"]!["expiredLogEventEndIndex"]!.GetValue<int>());
        var left = await _aws.RunAsync("logs", "get-log-events", "--log-group-name", "/e2e/retention", "--log-stream-name", "s");
        Assert.Equal(["fresh"], left["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));

        await _aws.RunAsync("logs", "delete-retention-policy", "--log-group-name", "/e2e/retention");
        groups = await _aws.RunAsync("logs", "describe-log-groups", "--log-group-name-prefix", "/e2e/retention");
        Assert.Null(groups["logGroups"]![0]!["retentionInDays"]);
    }

    [Fact]
    public async Task Tags_ByNameAndByArn_AreKeptAndRemoved()
    {
        await _aws!.RunAsync("logs", "create-log-group", "--log-group-name", "/e2e/tags", "--tags", "team=a,env=dev");
        var arn = (await _aws.RunAsync("logs", "describe-log-groups", "--log-group-name-prefix", "/e2e/tags"))["logGroups"]![0]!["logGroupArn"]!.GetValue<string>();
        Assert.Equal("arn:aws:logs:us-east-1:000000000000:log-group:/e2e/tags", arn);
        await _aws.RunAsync("logs", "tag-log-group", "--log-group-name", "/e2e/tags", "--tags", "owner=me");
        await _aws.RunAsync("logs", "tag-resource", "--resource-arn", arn, "--tags", "env=prod");
        await _aws.RunAsync("logs", "untag-log-group", "--log-group-name", "/e2e/tags", "--tags", "team");
        var byName = await _aws.RunAsync("logs", "list-tags-log-group", "--log-group-name", "/e2e/tags");
        Assert.Equal("""{"env":"prod","owner":"me"}""", byName["tags"]!.ToJsonString());
        await _aws.RunAsync("logs", "untag-resource", "--resource-arn", arn, "--tag-keys", "owner");
        var byArn = await _aws.RunAsync("logs", "list-tags-for-resource", "--resource-arn", arn);
        Assert.Equal("""{"env":"prod"}""", byArn["tags"]!.ToJsonString());
    }

    [Fact]
    public async Task DescribeLogGroups_PrefixPatternAndPages_AndDeletes()
    {
        for (var i = 0; i < 7; i++)
        {
            await _aws!.RunAsync("logs", "create-log-group", "--log-group-name", $"/e2e/page/g{i}");
        }
        var page = await _aws!.RunAsync("logs", "describe-log-groups", "--log-group-name-prefix", "/e2e/page/", "--limit", "3", "--no-paginate");
        Assert.Equal(3, page["logGroups"]!.AsArray().Count);
        Assert.NotNull(page["nextToken"]);
        var all = await _aws.RunAsync("logs", "describe-log-groups", "--log-group-name-prefix", "/e2e/page/", "--page-size", "2");
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"/e2e/page/g{i}"), all["logGroups"]!.AsArray().Select(g => g!["logGroupName"]!.GetValue<string>()));
        var pattern = await _aws.RunAsync("logs", "describe-log-groups", "--log-group-name-pattern", "PAGE/G3");
        Assert.Equal(["/e2e/page/g3"], pattern["logGroups"]!.AsArray().Select(g => g!["logGroupName"]!.GetValue<string>()));

        await _aws.RunAsync("logs", "delete-log-group", "--log-group-name", "/e2e/page/g3");
        var gone = await _aws.TryRunAsync("logs", "create-log-stream", "--log-group-name", "/e2e/page/g3", "--log-stream-name", "s");
        Assert.Contains("ResourceNotFoundException", gone.Stderr, StringComparison.Ordinal);
        Assert.Equal(6, (await _aws.RunAsync("logs", "describe-log-groups", "--log-group-name-prefix", "/e2e/page/"))["logGroups"]!.AsArray().Count);
    }
}
