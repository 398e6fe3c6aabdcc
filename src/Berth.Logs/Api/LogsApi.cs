using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Berth.Aws.Logs;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Logs.Filtering;
using Berth.Logs.Storage;

namespace Berth.Logs.Api;

/// <summary>The CloudWatch Logs JSON service (Logs_20140328) over the <see cref="LogStore"/>.</summary>
internal sealed class LogsApi(LogStore store, BerthIdentity identity)
{
    public const int MaxBatchBytes = 1_048_576;
    public const int EventOverheadBytes = 26;
    private const long Day = 86_400_000L;
    private static readonly ImmutableHashSet<int> RetentionDays = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
    private static LogsJsonContext Json => LogsJsonContext.Default;
    private static readonly Task<EmptyResult> Empty = Task.FromResult(new EmptyResult());

    public static AwsJsonService Build(LogStore store, BerthIdentity identity)
    {
        var api = new LogsApi(store, identity);
        var service = new AwsJsonService(ServiceModel.Load("Logs"));
        api.Map(service);
        return service;
    }

    private long Now => store.Time.GetUtcNow().ToUnixTimeMilliseconds();

    private string GroupArn(string name) => $"arn:aws:logs:{identity.Region}:{identity.AccountId}:log-group:{name}";

    /// <summary>The group a request names, by logGroupName or logGroupIdentifier (a name or an ARN), not both.</summary>
    private string GroupName(string? name, string? identifier)
    {
        if (name is not null && identifier is not null)
        {
            throw LogsErrors.Invalid("LogGroup name and LogGroup identifier are mutually exclusive parameters.");
        }
        if (identifier is not null)
        {
            return identifier.StartsWith("arn:", StringComparison.Ordinal) ? GroupOfArn(identifier) : identifier;
        }
        return name ?? throw LogsErrors.Invalid("Should provide either a LogGroup name or a LogGroup identifier.");
    }

    private string GroupOfArn(string arn)
    {
        var prefix = $"arn:aws:logs:{identity.Region}:{identity.AccountId}:log-group:";
        if (!arn.StartsWith(prefix, StringComparison.Ordinal) || arn.Length == prefix.Length)
        {
            throw LogsErrors.Invalid($"Invalid ARN '{arn}': expected {prefix}NAME");
        }
        var name = arn[prefix.Length..];
        return name.EndsWith(":*", StringComparison.Ordinal) ? name[..^2] : name;
    }

    private void Map(AwsJsonService s)
    {
        s.Map(LogsOperations.CreateLogGroup, Json.CreateLogGroupRequest, EmptyJson.Default.EmptyResult, (r, _) =>
        {
            if (r.KmsKeyId is not null)
            {
                throw LogsErrors.Invalid("kmsKeyId: Berth does not encrypt log groups with KMS keys.");
            }
            ValidateTags(r.Tags);
            store.CreateGroup(r.LogGroupName!, r.Tags);
            return Empty;
        });
        s.Map(LogsOperations.DeleteLogGroup, Json.DeleteLogGroupRequest, EmptyJson.Default.EmptyResult, async (r, ct) =>
        {
            await store.DeleteGroupAsync(r.LogGroupName!, ct).ConfigureAwait(false);
            return new EmptyResult();
        });
        s.Map(LogsOperations.DescribeLogGroups, Json.DescribeLogGroupsRequest, Json.DescribeLogGroupsResponse, (r, _) => Task.FromResult(DescribeGroups(r)));
        s.Map(LogsOperations.CreateLogStream, Json.CreateLogStreamRequest, EmptyJson.Default.EmptyResult, (r, _) =>
        {
            store.CreateStream(r.LogGroupName!, r.LogStreamName!);
            return Empty;
        });
        s.Map(LogsOperations.DeleteLogStream, Json.DeleteLogStreamRequest, EmptyJson.Default.EmptyResult, async (r, ct) =>
        {
            await store.DeleteStreamAsync(r.LogGroupName!, r.LogStreamName!, ct).ConfigureAwait(false);
            return new EmptyResult();
        });
        s.Map(LogsOperations.DescribeLogStreams, Json.DescribeLogStreamsRequest, Json.DescribeLogStreamsResponse, (r, _) => Task.FromResult(DescribeStreams(r)));
        s.Map(LogsOperations.PutLogEvents, Json.PutLogEventsRequest, Json.PutLogEventsResponse, PutAsync);
        s.Map(LogsOperations.GetLogEvents, Json.GetLogEventsRequest, Json.GetLogEventsResponse, (r, _) => Task.FromResult(GetEvents(r)));
        s.Map(LogsOperations.FilterLogEvents, Json.FilterLogEventsRequest, Json.FilterLogEventsResponse, (r, _) => Task.FromResult(Filter(r)));
        s.Map(LogsOperations.PutRetentionPolicy, Json.PutRetentionPolicyRequest, EmptyJson.Default.EmptyResult, (r, _) =>
        {
            var days = r.RetentionInDays!.Value;
            if (!RetentionDays.Contains(days))
            {
                throw LogsErrors.Invalid($"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{string.Join(", ", RetentionDays.Order())}]");
            }
            store.UpdateGroup(r.LogGroupName!, g => g.RetentionInDays = days);
            return Empty;
        });
        s.Map(LogsOperations.DeleteRetentionPolicy, Json.DeleteRetentionPolicyRequest, EmptyJson.Default.EmptyResult, (r, _) =>
        {
            store.UpdateGroup(r.LogGroupName!, g => g.RetentionInDays = null);
            return Empty;
        });
        s.Map(LogsOperations.TagLogGroup, Json.TagLogGroupRequest, EmptyJson.Default.EmptyResult, (r, _) => Tag(r.LogGroupName!, r.Tags!));
        s.Map(LogsOperations.UntagLogGroup, Json.UntagLogGroupRequest, EmptyJson.Default.EmptyResult, (r, _) => Untag(r.LogGroupName!, r.Tags!));
        s.Map(LogsOperations.ListTagsLogGroup, Json.ListTagsLogGroupRequest, Json.ListTagsLogGroupResponse,
            (r, _) => Task.FromResult(new ListTagsLogGroupResponse { Tags = store.Group(r.LogGroupName!).Tags.ToDictionary() }));
        s.Map(LogsOperations.TagResource, Json.TagResourceRequest, EmptyJson.Default.EmptyResult, (r, _) => Tag(GroupOfArn(r.ResourceArn!), r.Tags!));
        s.Map(LogsOperations.UntagResource, Json.UntagResourceRequest, EmptyJson.Default.EmptyResult, (r, _) => Untag(GroupOfArn(r.ResourceArn!), r.TagKeys!));
        s.Map(LogsOperations.ListTagsForResource, Json.ListTagsForResourceRequest, Json.ListTagsForResourceResponse,
            (r, _) => Task.FromResult(new ListTagsForResourceResponse { Tags = store.Group(GroupOfArn(r.ResourceArn!)).Tags.ToDictionary() }));
    }

    private static void ValidateTags(Dictionary<string, string>? tags)
    {
        foreach (var k in tags?.Keys ?? Enumerable.Empty<string>())
        {
            if (k.StartsWith("aws:", StringComparison.OrdinalIgnoreCase))
            {
                throw LogsErrors.Invalid($"Tag keys beginning with 'aws:' are reserved: '{k}'");
            }
        }
    }

    private Task<EmptyResult> Tag(string group, Dictionary<string, string> tags)
    {
        ValidateTags(tags);
        store.UpdateGroup(group, g =>
        {
            var merged = g.Tags.SetItems(tags);
            if (merged.Count > 50)
            {
                throw new AwsException("TooManyTagsException", $"A log group can have at most 50 tags; this request would leave it with {merged.Count}.");
            }
            g.Tags = merged;
        });
        return Empty;
    }

    private Task<EmptyResult> Untag(string group, List<string> keys)
    {
        store.UpdateGroup(group, g => g.Tags = g.Tags.RemoveRange(keys));
        return Empty;
    }

    private LogGroup ToWire(LogGroupState g) => new()
    {
        LogGroupName = g.Name,
        CreationTime = g.CreationTime,
        RetentionInDays = g.RetentionInDays,
        MetricFilterCount = 0,
        Arn = GroupArn(g.Name) + ":*",
        LogGroupArn = GroupArn(g.Name),
        StoredBytes = store.Streams(g).Sum(s => s.Snapshot.StoredBytes),
        LogGroupClass = "STANDARD",
        DeletionProtectionEnabled = false,
    };

    private DescribeLogGroupsResponse DescribeGroups(DescribeLogGroupsRequest r)
    {
        if (r.LogGroupNamePrefix is not null && r.LogGroupNamePattern is not null)
        {
            throw LogsErrors.Invalid("LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.");
        }
        var limit = r.Limit ?? 50;
        var after = r.NextToken is null ? null : DecodeToken(r.NextToken, "g/");
        var matches = store.Groups().Where(g =>
            (r.LogGroupNamePrefix is null || g.Name.StartsWith(r.LogGroupNamePrefix, StringComparison.Ordinal))
            && (r.LogGroupNamePattern is null || g.Name.Contains(r.LogGroupNamePattern, StringComparison.OrdinalIgnoreCase))
            && (r.LogGroupIdentifiers is null || r.LogGroupIdentifiers.Any(id => (id.StartsWith("arn:", StringComparison.Ordinal) ? GroupOfArn(id) : id) == g.Name))
            && (after is null || string.CompareOrdinal(g.Name, after) > 0)).Take(limit + 1).ToList();
        var page = matches.Take(limit).ToList();
        return new DescribeLogGroupsResponse
        {
            LogGroups = [.. page.Select(ToWire)],
            NextToken = matches.Count > limit ? EncodeToken("g/" + page[^1].Name) : null,
        };
    }

    private DescribeLogStreamsResponse DescribeStreams(DescribeLogStreamsRequest r)
    {
        var group = store.Group(GroupName(r.LogGroupName, r.LogGroupIdentifier));
        var byTime = r.OrderBy == OrderByValues.LastEventTime;
        if (byTime && r.LogStreamNamePrefix is not null)
        {
            throw LogsErrors.Invalid("Cannot order by LastEventTime with a logStreamNamePrefix.");
        }
        var limit = r.Limit ?? 50;
        var start = 0;
        if (r.NextToken is not null)
        {
            var t = DecodeToken(r.NextToken, "s/");
            if (t is null || !int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out start))
            {
                throw InvalidToken();
            }
        }
        IEnumerable<StreamLog> streams = store.Streams(group).Where(s => r.LogStreamNamePrefix is null || s.Name.StartsWith(r.LogStreamNamePrefix, StringComparison.Ordinal));
        if (byTime)
        {
            streams = streams.OrderBy(s => s.Snapshot.LastTimestamp ?? 0).ThenBy(s => s.Name, StringComparer.Ordinal);
        }
        var all = streams.ToList();
        if (r.Descending == true)
        {
            all.Reverse();
        }
        var page = all.Skip(start).Take(limit).ToList();
        return new DescribeLogStreamsResponse
        {
            LogStreams = [.. page.Select(s =>
            {
                var snap = s.Snapshot;
                return new LogStream
                {
                    LogStreamName = s.Name,
                    CreationTime = s.CreationTime,
                    FirstEventTimestamp = snap.FirstTimestamp,
                    LastEventTimestamp = snap.LastTimestamp,
                    LastIngestionTime = snap.LastIngestion,
                    UploadSequenceToken = snap.NextOrdinal.ToString(CultureInfo.InvariantCulture),
                    Arn = $"{GroupArn(group.Name)}:log-stream:{s.Name}",
                    StoredBytes = snap.StoredBytes,
                };
            })],
            NextToken = start + limit < all.Count ? EncodeToken("s/" + (start + limit).ToString(CultureInfo.InvariantCulture)) : null,
        };
    }

    private async Task<PutLogEventsResponse> PutAsync(PutLogEventsRequest r, CancellationToken ct)
    {
        var events = r.LogEvents!;
        // Existence first, as CloudWatch answers: a missing group or stream outranks a bad batch.
        store.Stream(r.LogGroupName!, r.LogStreamName!);
        long bytes = 0;
        for (var i = 0; i < events.Count; i++)
        {
            bytes += Encoding.UTF8.GetByteCount(events[i].Message!) + EventOverheadBytes;
            if (i > 0 && events[i].Timestamp < events[i - 1].Timestamp)
            {
                throw LogsErrors.Invalid("Log events in a single PutLogEvents request must be in chronological order.");
            }
        }
        if (bytes > MaxBatchBytes)
        {
            throw LogsErrors.Invalid($"Upload too large: {bytes} bytes exceeds limit of {MaxBatchBytes}");
        }
        if (events[^1].Timestamp!.Value - events[0].Timestamp!.Value > Day)
        {
            throw LogsErrors.Invalid("The batch of log events in a single PutLogEvents request cannot span more than 24 hours.");
        }
        var now = Now;
        var retention = store.Group(r.LogGroupName!).RetentionInDays;
        int? tooOld = null, expired = null, tooNew = null;
        var accepted = new List<NewEvent>(events.Count);
        for (var i = 0; i < events.Count; i++)
        {
            var ts = events[i].Timestamp!.Value;
            if (ts < now - 14 * Day)
            {
                tooOld = i;
            }
            else if (retention is { } days && ts < now - days * Day)
            {
                expired = i;
            }
            else if (ts > now + 2 * 3_600_000L)
            {
                tooNew ??= i;
            }
            else
            {
                accepted.Add(new NewEvent(0, ts, events[i].Message!));
            }
        }
        var next = accepted.Count > 0 ? await store.PutAsync(r.LogGroupName!, r.LogStreamName!, accepted, ct).ConfigureAwait(false) : store.Stream(r.LogGroupName!, r.LogStreamName!).Snapshot.NextOrdinal;
        return new PutLogEventsResponse
        {
            NextSequenceToken = next.ToString("D20", CultureInfo.InvariantCulture),
            RejectedLogEventsInfo = tooOld is null && expired is null && tooNew is null ? null
                : new RejectedLogEventsInfo { TooOldLogEventEndIndex = tooOld, ExpiredLogEventEndIndex = expired, TooNewLogEventStartIndex = tooNew },
        };
    }

    private static AwsException InvalidToken() => LogsErrors.Invalid("The specified nextToken is invalid.");

    private GetLogEventsResponse GetEvents(GetLogEventsRequest r)
    {
        var stream = store.Stream(GroupName(r.LogGroupName, r.LogGroupIdentifier), r.LogStreamName!);
        var snap = stream.Snapshot;
        var limit = r.Limit ?? 10_000;
        long start = r.StartTime ?? long.MinValue, end = r.EndTime ?? long.MaxValue;
        bool InRange(StoredEvent e) => e.Timestamp >= start && e.Timestamp < end;

        bool forward;
        long position;
        if (r.NextToken is { } token)
        {
            if (token.Length < 3 || token[1] != '/' || token[0] is not ('f' or 'b')
                || !long.TryParse(token.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out position) || position > snap.NextOrdinal)
            {
                throw InvalidToken();
            }
            forward = token[0] == 'f';
        }
        else
        {
            forward = r.StartFromHead == true;
            position = forward ? snap.FirstOrdinal : snap.NextOrdinal;
        }

        var events = new List<StoredEvent>();
        long bytes = 0;
        if (forward)
        {
            var next = Math.Max(position, snap.FirstOrdinal);
            foreach (var e in StreamLog.Forward(snap, next, snap.NextOrdinal))
            {
                if (InRange(e))
                {
                    var size = Encoding.UTF8.GetByteCount(e.Message) + EventOverheadBytes;
                    if (events.Count == limit || (bytes + size > MaxBatchBytes && events.Count > 0))
                    {
                        break;
                    }
                    bytes += size;
                    events.Add(e);
                }
                next = e.Ordinal + 1;
            }
            var fwd = events.Count > 0 ? events[^1].Ordinal + 1 : Math.Max(position, next);
            // Skipped (out of range) events past the last one returned are not re-read next time.
            if (events.Count < limit && bytes <= MaxBatchBytes)
            {
                fwd = Math.Max(fwd, next);
            }
            return new GetLogEventsResponse
            {
                Events = [.. events.Select(Out)],
                NextForwardToken = "f/" + fwd.ToString("D20", CultureInfo.InvariantCulture),
                NextBackwardToken = "b/" + (events.Count > 0 ? events[0].Ordinal : position).ToString("D20", CultureInfo.InvariantCulture),
            };
        }
        var first = position;
        foreach (var e in StreamLog.Backward(snap, position))
        {
            if (InRange(e))
            {
                var size = Encoding.UTF8.GetByteCount(e.Message) + EventOverheadBytes;
                if (events.Count == limit || (bytes + size > MaxBatchBytes && events.Count > 0))
                {
                    break;
                }
                bytes += size;
                events.Add(e);
            }
            first = e.Ordinal;
        }
        events.Reverse();
        var back = events.Count > 0 ? events[0].Ordinal : first;
        return new GetLogEventsResponse
        {
            Events = [.. events.Select(Out)],
            NextForwardToken = "f/" + (events.Count > 0 ? events[^1].Ordinal + 1 : position).ToString("D20", CultureInfo.InvariantCulture),
            NextBackwardToken = "b/" + back.ToString("D20", CultureInfo.InvariantCulture),
        };
    }

    private static OutputLogEvent Out(StoredEvent e) => new() { Timestamp = e.Timestamp, Message = e.Message, IngestionTime = e.IngestionTime };

    /// <summary>How many events one FilterLogEvents call reads before answering with a nextToken (as CloudWatch stops at a scan budget).</summary>
    internal const int ScanBudget = 200_000;

    private FilterLogEventsResponse Filter(FilterLogEventsRequest r)
    {
        var group = store.Group(GroupName(r.LogGroupName, r.LogGroupIdentifier));
        if (r.LogStreamNames is not null && r.LogStreamNamePrefix is not null)
        {
            throw LogsErrors.Invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.");
        }
        FilterPattern pattern;
        try
        {
            pattern = FilterPattern.Parse(r.FilterPattern);
        }
        catch (FormatException)
        {
            throw LogsErrors.Invalid(FilterPattern.InvalidMessage);
        }
        var streams = store.Streams(group).Where(s =>
            (r.LogStreamNames is null || r.LogStreamNames.Contains(s.Name)) && (r.LogStreamNamePrefix is null || s.Name.StartsWith(r.LogStreamNamePrefix, StringComparison.Ordinal))).ToList();
        if (r.LogStreamNames is not null && streams.Count == 0)
        {
            throw LogsErrors.StreamNotFound();
        }
        Dictionary<string, long>? resume = null;
        if (r.NextToken is not null)
        {
            try
            {
                resume = JsonSerializer.Deserialize(Convert.FromBase64String(r.NextToken), LogsStoreJson.Default.DictionaryStringInt64);
            }
            catch (Exception e) when (e is FormatException or JsonException)
            {
                throw InvalidToken();
            }
            if (resume is null)
            {
                throw InvalidToken();
            }
        }
        long start = r.StartTime ?? long.MinValue, end = r.EndTime ?? long.MaxValue;
        var limit = r.Limit ?? 10_000;

        // Interleave the streams by timestamp: a k-way merge over one forward reader per stream.
        var cursors = new List<(StreamLog Stream, IEnumerator<StoredEvent> Reader)>();
        var queue = new PriorityQueue<int, (long Ts, int Stream, long Ordinal)>();
        try
        {
            for (var i = 0; i < streams.Count; i++)
            {
                var snap = streams[i].Snapshot;
                long from;
                if (resume is null)
                {
                    from = snap.FirstOrdinal;
                }
                else if (!resume.TryGetValue(streams[i].Name, out from))
                {
                    from = snap.NextOrdinal; // finished in an earlier page
                }
                var reader = ReadRange(snap, Math.Max(from, snap.FirstOrdinal), start, end).GetEnumerator();
                cursors.Add((streams[i], reader));
                if (reader.MoveNext())
                {
                    queue.Enqueue(i, (reader.Current.Timestamp, i, reader.Current.Ordinal));
                }
            }
            var events = new List<FilteredLogEvent>();
            long bytes = 0;
            var scanned = 0;
            while (queue.Count > 0 && events.Count < limit && scanned < ScanBudget)
            {
                var i = queue.Peek();
                var e = cursors[i].Reader.Current;
                if (pattern.Matches(e.Message))
                {
                    var size = Encoding.UTF8.GetByteCount(e.Message) + EventOverheadBytes;
                    if (bytes + size > MaxBatchBytes && events.Count > 0)
                    {
                        break;
                    }
                    bytes += size;
                    events.Add(new FilteredLogEvent
                    {
                        LogStreamName = cursors[i].Stream.Name,
                        Timestamp = e.Timestamp,
                        Message = e.Message,
                        IngestionTime = e.IngestionTime,
                        EventId = $"{LogFiles.Hash(cursors[i].Stream.Name)[..12]}{e.Ordinal:D20}",
                    });
                }
                scanned++;
                queue.Dequeue();
                if (cursors[i].Reader.MoveNext())
                {
                    queue.Enqueue(i, (cursors[i].Reader.Current.Timestamp, i, cursors[i].Reader.Current.Ordinal));
                }
            }
            string? nextToken = null;
            if (queue.Count > 0)
            {
                var positions = new Dictionary<string, long>(StringComparer.Ordinal);
                foreach (var (i, _) in queue.UnorderedItems)
                {
                    positions[cursors[i].Stream.Name] = cursors[i].Reader.Current.Ordinal;
                }
                nextToken = Convert.ToBase64String(JsonSerializer.SerializeToUtf8Bytes(positions, LogsStoreJson.Default.DictionaryStringInt64));
            }
            return new FilterLogEventsResponse
            {
                Events = events,
                SearchedLogStreams = [.. streams.Select(s => new SearchedLogStream { LogStreamName = s.Name, SearchedCompletely = nextToken is null })],
                NextToken = nextToken,
            };
        }
        finally
        {
            foreach (var c in cursors)
            {
                c.Reader.Dispose();
            }
        }
    }

    /// <summary>A stream's events from an ordinal on within [start, end] (FilterLogEvents' end is inclusive), skipping segments outside the range.</summary>
    private static IEnumerable<StoredEvent> ReadRange(StreamSnapshot snap, long from, long start, long end)
    {
        foreach (var seg in snap.Segments)
        {
            if (seg.EndOrdinal <= from || seg.Count == 0 || seg.MaxTimestamp < start || seg.MinTimestamp > end)
            {
                continue;
            }
            foreach (var e in Segment.Read(seg, from, seg.EndOrdinal))
            {
                if (e.Timestamp >= start && e.Timestamp <= end)
                {
                    yield return e;
                }
            }
        }
    }

    private static string EncodeToken(string value) => Convert.ToBase64String(Encoding.UTF8.GetBytes(value));

    private static string? DecodeToken(string token, string prefix)
    {
        try
        {
            var s = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            return s.StartsWith(prefix, StringComparison.Ordinal) ? s[prefix.Length..] : throw InvalidToken();
        }
        catch (FormatException)
        {
            throw InvalidToken();
        }
    }
}

/// <summary>The body of operations whose model has no output: <c>{}</c>.</summary>
internal sealed class EmptyResult;

[System.Text.Json.Serialization.JsonSerializable(typeof(EmptyResult))]
internal sealed partial class EmptyJson : System.Text.Json.Serialization.JsonSerializerContext;
