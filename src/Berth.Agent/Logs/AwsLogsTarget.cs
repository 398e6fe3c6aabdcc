using System.Globalization;
using Proto = Berth.Core.Agent;

namespace Berth.Agent.Logs;

/// <summary>Where and how one container's <c>awslogs</c> output is shipped, read from its logConfiguration.</summary>
/// <param name="Blocking">
/// <c>mode: blocking</c> (the default): the follower reads the container's json-file only as fast as the server
/// acknowledges, so nothing is ever dropped (the backlog waits on disk). <c>mode: non-blocking</c>: the follower
/// keeps reading into a buffer of <paramref name="MaxBufferBytes"/> and drops the oldest lines when it is full
/// (the server unreachable or slower than the container).
/// </param>
internal sealed record AwsLogsTarget(string Group, string Stream, bool CreateGroup, bool Blocking, long MaxBufferBytes)
{
    /// <summary>awslogs-region, or empty: the task's region (the server ships to the log groups of that region).</summary>
    public string Region { get; init; } = "";

    public const string Driver = "awslogs";

    /// <summary>Docker's default max-buffer-size for non-blocking mode: 1 MB.</summary>
    public const long DefaultMaxBufferBytes = 1L << 20;

    /// <summary>The follower's read-ahead in blocking mode: enough for two full batches.</summary>
    public const long BlockingBufferBytes = 2L * Core.Agent.LogBatchLimits.MaxBytes;

    /// <summary>Null when <paramref name="container"/> does not log with awslogs (or its options are unusable).</summary>
    public static AwsLogsTarget? For(Proto.ContainerSpec container, string taskArn, string containerId)
    {
        if (container.LogConfiguration is not { LogDriver: Driver } lc || !lc.Options.TryGetValue("awslogs-group", out var group) || group.Length == 0)
        {
            return null;
        }
        // As ECS names streams: PREFIX/CONTAINER_NAME/TASK_ID; without a prefix (EC2 launch type) the container's id.
        var taskId = taskArn[(taskArn.LastIndexOf('/') + 1)..];
        var stream = lc.Options.TryGetValue("awslogs-stream-prefix", out var prefix) && prefix.Length > 0
            ? $"{prefix}/{container.Name}/{taskId}"
            : containerId;
        var create = lc.Options.TryGetValue("awslogs-create-group", out var c) && string.Equals(c, "true", StringComparison.OrdinalIgnoreCase);
        var blocking = !(lc.Options.TryGetValue("mode", out var mode) && mode == "non-blocking");
        var max = lc.Options.TryGetValue("max-buffer-size", out var size) && ParseSize(size) is { } bytes ? bytes : DefaultMaxBufferBytes;
        return new AwsLogsTarget(group, stream, create, blocking, max) { Region = lc.Options.TryGetValue("awslogs-region", out var region) ? region : "" };
    }

    /// <summary>Docker's size syntax: a number with an optional unit b, k, m, g (powers of 1024; "kb", "mib" too). Null when unreadable or not positive.</summary>
    public static long? ParseSize(string text)
    {
        var s = text.Trim().ToLowerInvariant();
        var end = 0;
        while (end < s.Length && (char.IsAsciiDigit(s[end]) || s[end] == '.'))
        {
            end++;
        }
        if (end == 0 || !double.TryParse(s.AsSpan(0, end), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n))
        {
            return null;
        }
        var unit = s[end..].Trim();
        double factor = unit switch
        {
            "" or "b" => 1,
            "k" or "kb" or "kib" => 1L << 10,
            "m" or "mb" or "mib" => 1L << 20,
            "g" or "gb" or "gib" => 1L << 30,
            _ => -1,
        };
        if (factor < 0)
        {
            return null;
        }
        var bytes = (long)(n * factor);
        return bytes > 0 ? bytes : null;
    }
}
