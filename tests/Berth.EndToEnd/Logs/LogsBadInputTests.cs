using System.Text.Json;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Logs;

/// <summary>One berth server for the whole bad-input table: each case must leave it exactly as it was.</summary>
public sealed class LogsBadInputFixture : IAsyncLifetime
{
    public BerthServer Server { get; private set; } = null!;
    public EcsHttp Http { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Server = await BerthServer.StartAsync("server");
        Http = new EcsHttp(Server.Endpoint);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>
/// Malformed CloudWatch Logs requests, sent raw: each answers 400 with the error type CloudWatch uses and a
/// message naming what is wrong, and stores nothing (groups, streams and the stream's events are unchanged).
/// </summary>
public sealed class LogsBadInputTests(LogsBadInputFixture fixture) : IClassFixture<LogsBadInputFixture>
{
    private const string Prefix = "Logs_20140328.";
    private const string Group = "/bad/input";
    private const string Stream = "s";
    private static readonly long Now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private async Task<(int Status, JsonNode? Body, string Text)> CallAsync(string operation, string body)
        => await fixture.Http.SendAsync(Prefix + operation, body);

    private async Task<JsonNode> OkAsync(string operation, object body)
    {
        var (status, json, text) = await CallAsync(operation, JsonSerializer.Serialize(body));
        Assert.True(status == 200, $"{operation}: {status} {text}");
        return json ?? new JsonObject();
    }

    /// <summary>Creates the group and stream with three events the first time; later calls find them.</summary>
    private async Task EnsureSeededAsync()
    {
        var (status, _, _) = await CallAsync("CreateLogGroup", JsonSerializer.Serialize(new { logGroupName = Group }));
        if (status != 200)
        {
            return; // already there
        }
        await OkAsync("CreateLogStream", new { logGroupName = Group, logStreamName = Stream });
        await OkAsync("PutLogEvents", new
        {
            logGroupName = Group,
            logStreamName = Stream,
            logEvents = new[] { new { timestamp = Now, message = "one" }, new { timestamp = Now + 1, message = "two" }, new { timestamp = Now + 2, message = "three" } },
        });
    }

    /// <summary>Everything a case could have changed: group names and settings, stream names, the stream's events.</summary>
    private async Task<string> StateAsync()
    {
        var groups = await OkAsync("DescribeLogGroups", new { });
        foreach (var g in groups["logGroups"]!.AsArray())
        {
            g!.AsObject().Remove("creationTime");
        }
        var streams = await OkAsync("DescribeLogStreams", new { logGroupName = Group });
        var events = await OkAsync("GetLogEvents", new { logGroupName = Group, logStreamName = Stream, startFromHead = true });
        var tags = await OkAsync("ListTagsLogGroup", new { logGroupName = Group });
        return groups.ToJsonString() + streams.ToJsonString() + events["events"]!.ToJsonString() + tags.ToJsonString();
    }

    private static string Batch(params (long Ts, string Message)[] events)
        => JsonSerializer.Serialize(new { logGroupName = Group, logStreamName = Stream, logEvents = events.Select(e => new { timestamp = e.Ts, message = e.Message }) });

    private static string ManyEvents(int n) => Batch([.. Enumerable.Range(0, n).Select(i => (Now + i, "m"))]);

    // (operation, body, __type, text the message must contain)
    public static TheoryData<string, string, string, string> Cases => new()
    {
        // Missing resources.
        { "PutLogEvents", """{"logGroupName":"/nope","logStreamName":"s","logEvents":[{"timestamp":1,"message":"x"}]}""", "ResourceNotFoundException", "log group does not exist" },
        { "PutLogEvents", Batch((Now, "x")).Replace("\"s\"", "\"missing\"", StringComparison.Ordinal), "ResourceNotFoundException", "log stream does not exist" },
        { "GetLogEvents", """{"logGroupName":"/bad/input","logStreamName":"missing"}""", "ResourceNotFoundException", "log stream does not exist" },
        { "GetLogEvents", """{"logGroupName":"/nope","logStreamName":"s"}""", "ResourceNotFoundException", "log group does not exist" },
        { "CreateLogStream", """{"logGroupName":"/nope","logStreamName":"s"}""", "ResourceNotFoundException", "log group does not exist" },
        { "DeleteLogGroup", """{"logGroupName":"/nope"}""", "ResourceNotFoundException", "log group does not exist" },
        { "DeleteLogStream", """{"logGroupName":"/bad/input","logStreamName":"missing"}""", "ResourceNotFoundException", "log stream does not exist" },
        { "PutRetentionPolicy", """{"logGroupName":"/nope","retentionInDays":7}""", "ResourceNotFoundException", "log group does not exist" },
        { "FilterLogEvents", """{"logGroupName":"/bad/input","logStreamNames":["missing"]}""", "ResourceNotFoundException", "log stream does not exist" },
        // Batches CloudWatch refuses whole.
        { "PutLogEvents", Batch((Now + 5, "late"), (Now + 1, "early")), "InvalidParameterException", "chronological order" },
        { "PutLogEvents", Batch((Now, new string('a', 600_000)), (Now + 1, new string('b', 600_000))), "InvalidParameterException", "Upload too large" },
        { "PutLogEvents", ManyEvents(10_001), "InvalidParameterException", "logEvents" },
        { "PutLogEvents", Batch((Now - 25 * 3_600_000L, "old"), (Now, "new")), "InvalidParameterException", "24 hours" },
        { "PutLogEvents", """{"logGroupName":"/bad/input","logStreamName":"s","logEvents":[]}""", "InvalidParameterException", "logEvents" },
        { "PutLogEvents", """{"logGroupName":"/bad/input","logStreamName":"s","logEvents":[{"timestamp":1}]}""", "InvalidParameterException", "message" },
        { "PutLogEvents", """{"logGroupName":"/bad/input","logStreamName":"s","logEvents":[{"timestamp":"yesterday","message":"x"}]}""", "SerializationException", "timestamp" },
        { "PutLogEvents", """{"logGroupName":"/bad/input","logStreamName":"s","logEvents":[{"timestamp":1,"message":"x"}],"bogus":1}""", "SerializationException", "bogus" },
        // Tokens.
        { "GetLogEvents", """{"logGroupName":"/bad/input","logStreamName":"s","nextToken":"garbage"}""", "InvalidParameterException", "nextToken" },
        { "GetLogEvents", """{"logGroupName":"/bad/input","logStreamName":"s","nextToken":"f/99999999"}""", "InvalidParameterException", "nextToken" },
        { "FilterLogEvents", """{"logGroupName":"/bad/input","nextToken":"!!not-a-token"}""", "InvalidParameterException", "nextToken" },
        { "DescribeLogStreams", """{"logGroupName":"/bad/input","nextToken":"Zm9v"}""", "InvalidParameterException", "nextToken" },
        { "DescribeLogGroups", """{"nextToken":"%%%"}""", "InvalidParameterException", "nextToken" },
        // Filter patterns.
        { "FilterLogEvents", """{"logGroupName":"/bad/input","filterPattern":"\"unterminated"}""", "InvalidParameterException", "Invalid filter pattern" },
        { "FilterLogEvents", """{"logGroupName":"/bad/input","filterPattern":"{ $.level = \"error\""}""", "InvalidParameterException", "Invalid filter pattern" },
        { "FilterLogEvents", """{"logGroupName":"/bad/input","filterPattern":"{ $.status >= \"high\" }"}""", "InvalidParameterException", "Invalid filter pattern" },
        { "FilterLogEvents", """{"logGroupName":"/bad/input","filterPattern":"ERROR ? WARN"}""", "InvalidParameterException", "Invalid filter pattern" },
        { "FilterLogEvents", """{"logGroupName":"/bad/input","filterPattern":"%[unclosed%"}""", "InvalidParameterException", "Invalid filter pattern" },
        { "FilterLogEvents", """{"logGroupName":"/bad/input","logStreamNames":["s"],"logStreamNamePrefix":"s"}""", "InvalidParameterException", "mutually exclusive" },
        // Retention, names, limits, tags.
        { "PutRetentionPolicy", """{"logGroupName":"/bad/input","retentionInDays":2}""", "InvalidParameterException", "retentionInDays" },
        { "PutRetentionPolicy", """{"logGroupName":"/bad/input","retentionInDays":0}""", "InvalidParameterException", "retentionInDays" },
        { "CreateLogGroup", """{"logGroupName":"bad name!"}""", "InvalidParameterException", "logGroupName" },
        { "CreateLogGroup", JsonSerializer.Serialize(new { logGroupName = new string('a', 513) }), "InvalidParameterException", "logGroupName" },
        { "CreateLogGroup", """{"logGroupName":""}""", "InvalidParameterException", "logGroupName" },
        { "CreateLogGroup", """{"logGroupName":"/bad/input"}""", "ResourceAlreadyExistsException", "already exists" },
        { "CreateLogGroup", """{"logGroupName":"/bad/other","tags":{"aws:owner":"me"}}""", "InvalidParameterException", "aws:" },
        { "CreateLogStream", """{"logGroupName":"/bad/input","logStreamName":"has:colon"}""", "InvalidParameterException", "logStreamName" },
        { "CreateLogStream", """{"logGroupName":"/bad/input","logStreamName":"s"}""", "ResourceAlreadyExistsException", "already exists" },
        { "DescribeLogStreams", """{"logGroupName":"/bad/input","orderBy":"LastEventTime","logStreamNamePrefix":"s"}""", "InvalidParameterException", "LastEventTime" },
        { "DescribeLogStreams", """{"logGroupName":"/bad/input","orderBy":"Size"}""", "InvalidParameterException", "orderBy" },
        { "DescribeLogGroups", """{"logGroupNamePrefix":"/bad","logGroupNamePattern":"bad"}""", "InvalidParameterException", "mutually exclusive" },
        { "GetLogEvents", """{"logGroupName":"/bad/input","logStreamName":"s","limit":0}""", "InvalidParameterException", "limit" },
        { "GetLogEvents", """{"logStreamName":"s"}""", "InvalidParameterException", "LogGroup" },
        { "TagLogGroup", """{"logGroupName":"/bad/input","tags":{"aws:x":"y"}}""", "InvalidParameterException", "aws:" },
        { "TagResource", """{"resourceArn":"arn:aws:ecs:us-east-1:000000000000:cluster/x","tags":{"a":"b"}}""", "InvalidParameterException", "ARN" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Request_Malformed_AnswersTypedErrorAndStoresNothing(string operation, string body, string type, string mentions)
    {
        await EnsureSeededAsync();
        var before = await StateAsync();
        var (status, json, text) = await CallAsync(operation, body);
        Assert.True(status == 400, $"{operation}: expected 400, got {status}: {text}");
        Assert.Equal(type, json?["__type"]?.GetValue<string>());
        Assert.Contains(mentions, json?["message"]?.GetValue<string>() ?? "", StringComparison.Ordinal);
        Assert.Equal(before, await StateAsync());
    }

    [Fact]
    public async Task PutLogEvents_TooOldTooNewAndExpired_AreReportedByIndexAndOnlyTheRestStored()
    {
        await OkAsync("CreateLogGroup", new { logGroupName = "/bad/rejected" });
        await OkAsync("PutRetentionPolicy", new { logGroupName = "/bad/rejected", retentionInDays = 7 });
        await OkAsync("CreateLogStream", new { logGroupName = "/bad/rejected", logStreamName = "s" });
        const long Day = 86_400_000L;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        // Too old (> 14 days) and the 24-hour span rule cannot meet in one batch; two batches.
        var r1 = await OkAsync("PutLogEvents", new
        {
            logGroupName = "/bad/rejected",
            logStreamName = "s",
            logEvents = new[] { new { timestamp = now - 15 * Day, message = "too old" }, new { timestamp = now - 15 * Day + 1, message = "too old 2" } },
        });
        Assert.Equal(1, r1["rejectedLogEventsInfo"]!["tooOldLogEventEndIndex"]!.GetValue<int>());
        var r2 = await OkAsync("PutLogEvents", new
        {
            logGroupName = "/bad/rejected",
            logStreamName = "s",
            logEvents = new[]
            {
                new { timestamp = now - 7 * Day - 3 * 3_600_000L, message = "expired" },
                new { timestamp = now - 7 * Day - 3 * 3_600_000L + 10, message = "expired 2" },
                new { timestamp = now - 7 * Day + 3_600_000L, message = "kept" },
            },
        });
        Assert.Equal(1, r2["rejectedLogEventsInfo"]!["expiredLogEventEndIndex"]!.GetValue<int>());
        var r3 = await OkAsync("PutLogEvents", new
        {
            logGroupName = "/bad/rejected",
            logStreamName = "s",
            logEvents = new[] { new { timestamp = now, message = "now" }, new { timestamp = now + 3 * 3_600_000L, message = "too new" } },
        });
        Assert.Equal(1, r3["rejectedLogEventsInfo"]!["tooNewLogEventStartIndex"]!.GetValue<int>());
        var stored = await OkAsync("GetLogEvents", new { logGroupName = "/bad/rejected", logStreamName = "s", startFromHead = true });
        Assert.Equal(["kept", "now"], stored["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));
    }

    [Fact]
    public async Task UnimplementedOperation_AnswersUnsupportedFeature()
    {
        var (status, json, _) = await CallAsync("PutMetricFilter", """{"logGroupName":"/bad/input","filterName":"f","filterPattern":"ERROR","metricTransformations":[{"metricName":"m","metricNamespace":"n","metricValue":"1"}]}""");
        Assert.Equal(400, status);
        Assert.Equal("UnsupportedFeatureException", json?["__type"]?.GetValue<string>());
    }
}
