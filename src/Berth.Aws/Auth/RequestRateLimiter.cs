using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Berth.Aws.Auth;

/// <summary>One token bucket of a rate-limit file: the actions that share it, its capacity (burst) and refill rate (sustained, per second).</summary>
public sealed record RateLimitBucket
{
    public string Name { get; init; } = "";
    public double Burst { get; init; }
    public double PerSecond { get; init; }
    /// <summary>IAM-style action names, <c>ecs:DescribeClusters</c>, or <c>ecs:*</c> for every action of a service.</summary>
    public IReadOnlyList<string> Actions { get; init; } = [];
}

/// <summary>The rate-limit file (<c>--rate-limits FILE</c>): buckets by action, and a bucket for the actions none names.</summary>
public sealed record RateLimitPolicy
{
    public IReadOnlyList<RateLimitBucket> Buckets { get; init; } = [];
    /// <summary>The bucket of every action no bucket names; none means those actions are not limited.</summary>
    public RateLimitBucket? Default { get; init; }

    /// <summary>Reads and checks a rate-limit file; the message of the exception names the file and the field at fault.</summary>
    public static RateLimitPolicy Load(string path)
    {
        RateLimitPolicy? policy;
        try
        {
            policy = JsonSerializer.Deserialize(File.ReadAllBytes(path), RateLimitJson.Default.RateLimitPolicy);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a rate-limit file: {e.Message}", e);
        }
        if (policy is null)
        {
            throw new InvalidDataException($"{path}: empty rate-limit file.");
        }
        // The source-generated reader leaves a missing list null whatever the initializer says.
        policy = policy with { Buckets = policy.Buckets is null ? [] : [.. policy.Buckets.Select(b => b.Actions is null ? b with { Actions = [] } : b)] };
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < policy.Buckets.Count; i++)
        {
            var b = policy.Buckets[i];
            Check(b, $"buckets[{i}]", path);
            if (b.Actions.Count == 0)
            {
                throw new InvalidDataException($"{path}: buckets[{i}].actions names no action.");
            }
            foreach (var a in b.Actions)
            {
                if (a.IndexOf(':', StringComparison.Ordinal) is <= 0 || a.EndsWith(':'))
                {
                    throw new InvalidDataException($"{path}: buckets[{i}].actions: '{a}' is not SERVICE:Action (for example ecs:RunTask).");
                }
                if (!seen.Add(a))
                {
                    throw new InvalidDataException($"{path}: buckets[{i}].actions: '{a}' is in two buckets.");
                }
            }
        }
        if (policy.Default is { } d)
        {
            Check(d, "default", path);
        }
        return policy;
    }

    private static void Check(RateLimitBucket b, string where, string path)
    {
        if (!(b.Burst >= 1) || !(b.PerSecond > 0) || double.IsInfinity(b.Burst) || double.IsInfinity(b.PerSecond))
        {
            throw new InvalidDataException($"{path}: {where} needs burst >= 1 and perSecond > 0 (got burst {b.Burst}, perSecond {b.PerSecond}).");
        }
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, MaxDepth = 8)]
[JsonSerializable(typeof(RateLimitPolicy))]
internal sealed partial class RateLimitJson : JsonSerializerContext;

/// <summary>
/// Per-caller token buckets as ECS throttles its API: each bucket holds up to <c>burst</c> tokens and gains
/// <c>perSecond</c> a second; a request takes one, and with none left it is refused (<c>ThrottlingException</c>,
/// "Rate exceeded", HTTP 400). ECS keys the buckets by account and region; Berth keys them by credential
/// (access key id), or by client address when authentication is off, so one noisy credential cannot starve the others.
/// </summary>
/// <remarks>
/// A hand-written bucket instead of System.Threading.RateLimiting's: that one refills on its own timer and
/// cannot be driven by an injected <see cref="TimeProvider"/>, so its tests would have to sleep. Here the refill
/// is computed from the elapsed time when a request arrives, which is exact and needs no timer at all.
/// </remarks>
public sealed class RequestRateLimiter
{
    // A bound on the table, not a policy: an idle bucket refills to full, which is the same as a new one, so
    // forgetting them all costs at most one extra burst per caller.
    private const int MaxBuckets = 100_000;
    private readonly TimeProvider _time;
    private readonly RateLimitBucket[] _buckets;
    private readonly FrozenDictionary<string, int> _byAction;
    private readonly FrozenDictionary<string, int> _byService;
    private readonly int _default = -1;
    private readonly ConcurrentDictionary<(string Caller, int Bucket), State> _state = new();

    public RequestRateLimiter(RateLimitPolicy policy, TimeProvider time)
    {
        _time = time;
        var buckets = policy.Buckets.ToList();
        var byAction = new Dictionary<string, int>(StringComparer.Ordinal);
        var byService = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < buckets.Count; i++)
        {
            foreach (var a in buckets[i].Actions)
            {
                if (a.EndsWith(":*", StringComparison.Ordinal))
                {
                    byService[a[..^2]] = i;
                }
                else
                {
                    byAction[a] = i;
                }
            }
        }
        if (policy.Default is { } d)
        {
            _default = buckets.Count;
            buckets.Add(d);
        }
        _buckets = [.. buckets];
        _byAction = byAction.ToFrozenDictionary(StringComparer.Ordinal);
        _byService = byService.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The key of a request's buckets: its access key id, or its client address when it is not authenticated.</summary>
    public static string CallerKey(AwsCaller caller, Microsoft.AspNetCore.Http.HttpContext context)
        => caller.Authenticated ? caller.AccessKeyId : "addr:" + (context.Connection.RemoteIpAddress?.ToString() ?? "");

    /// <summary>
    /// Takes one token from <paramref name="caller"/>'s bucket for <paramref name="service"/>:<paramref name="operation"/>
    /// (service is the signing name: ecs, ecr, logs, elasticloadbalancing). False when the bucket is empty.
    /// </summary>
    public bool TryAcquire(string caller, string service, string operation)
    {
        var index = BucketOf(service, operation);
        if (index < 0)
        {
            return true;
        }
        var bucket = _buckets[index];
        if (_state.Count > MaxBuckets)
        {
            _state.Clear();
        }
        var now = _time.GetTimestamp();
        var state = _state.GetOrAdd((caller, index), static (_, a) => new State(a.Burst, a.Now), (bucket.Burst, Now: now));
        lock (state)
        {
            var elapsed = _time.GetElapsedTime(state.Stamp, now).TotalSeconds;
            if (elapsed > 0)
            {
                state.Tokens = Math.Min(bucket.Burst, state.Tokens + elapsed * bucket.PerSecond);
                state.Stamp = now;
            }
            if (state.Tokens < 1)
            {
                return false;
            }
            state.Tokens -= 1;
            return true;
        }
    }

    private int BucketOf(string service, string operation)
    {
        // The lookup key is built only for a limiter that has per-action buckets.
        if (_byAction.Count > 0 && _byAction.TryGetValue(string.Concat(service, ":", operation), out var i))
        {
            return i;
        }
        return _byService.TryGetValue(service, out var s) ? s : _default;
    }

    private sealed class State(double tokens, long stamp)
    {
        public double Tokens = tokens;
        public long Stamp = stamp;
    }

    public static AwsAuthException Throttled()
        => new("ThrottlingException", 400, "Throttling", 400, "Rate exceeded");
}
