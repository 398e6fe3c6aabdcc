using System.Collections.Concurrent;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>The ALB target health states and reason codes.</summary>
public static class TargetHealthStates
{
    public const string Initial = "initial";
    public const string Healthy = "healthy";
    public const string Unhealthy = "unhealthy";
    public const string Draining = "draining";
    public const string Unused = "unused";

    public const string RegistrationInProgress = "Elb.RegistrationInProgress";
    public const string InitialHealthChecking = "Elb.InitialHealthChecking";
    public const string ResponseCodeMismatch = "Target.ResponseCodeMismatch";
    public const string Timeout = "Target.Timeout";
    public const string FailedHealthChecks = "Target.FailedHealthChecks";
    public const string DeregistrationInProgress = "Target.DeregistrationInProgress";
    public const string NotInUse = "Target.NotInUse";
    public const string NotRegistered = "Target.NotRegistered";
}

/// <summary>What the data plane currently knows about one target of one target group.</summary>
public sealed record TargetHealthView(string State, string? Reason, string? Description);

/// <summary>
/// Observed target health, keyed by target group id and "address:port". Written by the health-check
/// policy and the draining sweep, read by DescribeTargetHealth and the destination policy.
/// Entries are immutable records swapped atomically (habit 5: readers never lock).
/// </summary>
public sealed class TargetHealthBook(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Entry>> _groups = new(StringComparer.Ordinal);

    /// <summary>One target's record. Counters are the current streak of passing or failing checks.</summary>
    internal sealed record Entry(string State, string? Reason, string? Description, int Passes, int Failures, DateTimeOffset? DrainUntil)
    {
        /// <summary>When the target turned healthy, if slow start was on then (the start of its slow start).</summary>
        public DateTimeOffset? HealthySince { get; init; }
    }

    public static string Key(string id, int port) => $"{id}:{port}";

    private ConcurrentDictionary<string, Entry> Group(string tgId) => _groups.GetOrAdd(tgId, _ => new(StringComparer.Ordinal));

    /// <summary>A newly registered target starts in <c>initial</c>; re-registering a draining one restarts it.</summary>
    public void Registered(string tgId, string key)
        => Group(tgId).AddOrUpdate(key,
            _ => new Entry(TargetHealthStates.Initial, TargetHealthStates.RegistrationInProgress, "Target registration is in progress", 0, 0, null),
            (_, e) => e.State == TargetHealthStates.Draining
                ? new Entry(TargetHealthStates.Initial, TargetHealthStates.RegistrationInProgress, "Target registration is in progress", 0, 0, null)
                : e);

    /// <summary>Starts draining: no new requests; the entry stays until the delay passes or the target has nothing in flight.</summary>
    public void Deregistered(string tgId, string key, TimeSpan delay)
        => Group(tgId)[key] = new Entry(TargetHealthStates.Draining, TargetHealthStates.DeregistrationInProgress, "Target deregistration is in progress", 0, 0, time.GetUtcNow() + delay);

    public void Forget(string tgId, string key)
    {
        if (_groups.TryGetValue(tgId, out var g))
        {
            g.TryRemove(key, out _);
        }
    }

    public void ForgetGroup(string tgId) => _groups.TryRemove(tgId, out _);

    /// <summary>Records one health check result and returns the state it leaves the target in.</summary>
    /// <param name="slowStart">Whether the group has slow start on: a target turning healthy then starts its slow start.</param>
    public string RecordProbe(string tgId, string key, bool passed, string? reason, string? description, int healthyThreshold, int unhealthyThreshold, bool slowStart = false)
    {
        var group = Group(tgId);
        while (true)
        {
            if (!group.TryGetValue(key, out var e))
            {
                return TargetHealthStates.Unused;
            }
            if (e.State == TargetHealthStates.Draining)
            {
                return e.State;
            }
            Entry next;
            if (passed)
            {
                var passes = e.Passes + 1;
                // A new target needs one passing check; an unhealthy one needs the healthy threshold.
                var healthy = e.State == TargetHealthStates.Healthy || e.State == TargetHealthStates.Initial || passes >= healthyThreshold;
                next = healthy
                    ? new Entry(TargetHealthStates.Healthy, null, null, passes, 0, null) { HealthySince = e.State == TargetHealthStates.Healthy ? e.HealthySince : slowStart ? time.GetUtcNow() : null }
                    : e with { Passes = passes, Failures = 0 };
            }
            else
            {
                var failures = e.Failures + 1;
                next = failures >= unhealthyThreshold || e.State == TargetHealthStates.Unhealthy
                    ? new Entry(TargetHealthStates.Unhealthy, reason, description, 0, failures, null)
                    : e with { Passes = 0, Failures = failures };
            }
            if (group.TryUpdate(key, next, e))
            {
                if (next.State != e.State || next.Reason != e.Reason)
                {
                    Interlocked.Increment(ref _verdicts);
                }
                return next.State;
            }
        }
    }

    /// <summary>The target's view; in <c>initial</c> the reason says whether checks have started (the group is in use).</summary>
    public TargetHealthView? Find(string tgId, string key, bool inUse)
    {
        if (!_groups.TryGetValue(tgId, out var g) || !g.TryGetValue(key, out var e))
        {
            return null;
        }
        if (e.State == TargetHealthStates.Draining)
        {
            return new TargetHealthView(e.State, e.Reason, e.Description);
        }
        if (!inUse)
        {
            return new TargetHealthView(TargetHealthStates.Unused, TargetHealthStates.NotInUse, "Target group is not configured to receive traffic from the load balancer");
        }
        if (e.State == TargetHealthStates.Initial)
        {
            return new TargetHealthView(e.State, TargetHealthStates.InitialHealthChecking, "Initial health checking in progress");
        }
        return new TargetHealthView(e.State, e.Reason, e.Description);
    }

    /// <summary>When the target turned healthy with slow start on; null when it is not healthy or did not slow-start.</summary>
    public DateTimeOffset? HealthySince(string tgId, string key)
        => _groups.TryGetValue(tgId, out var g) && g.TryGetValue(key, out var e) && e.State == TargetHealthStates.Healthy ? e.HealthySince : null;

    public bool Contains(string tgId, string key) => _groups.TryGetValue(tgId, out var g) && g.ContainsKey(key);

    public bool IsHealthy(string tgId, string key)
        => _groups.TryGetValue(tgId, out var g) && g.TryGetValue(key, out var e) && e.State == TargetHealthStates.Healthy;

    /// <summary>Draining targets of a group with the moment their delay ends.</summary>
    public IReadOnlyList<(string Key, DateTimeOffset Until)> Draining(string tgId)
        => _groups.TryGetValue(tgId, out var g)
            ? g.Where(kv => kv.Value.State == TargetHealthStates.Draining).Select(kv => (kv.Key, kv.Value.DrainUntil ?? DateTimeOffset.MinValue)).ToList()
            : [];

    public IEnumerable<string> Groups => _groups.Keys;

    private long _verdicts;

    /// <summary>Counts verdict changes (a target turning healthy or unhealthy, or failing for another reason): what is worth persisting.</summary>
    public long Verdicts => Interlocked.Read(ref _verdicts);

    /// <summary>Every target's last verdict (healthy or unhealthy), by target group id and "address:port".</summary>
    public Dictionary<string, Dictionary<string, TargetVerdict>> ExportVerdicts()
    {
        var result = new Dictionary<string, Dictionary<string, TargetVerdict>>(StringComparer.Ordinal);
        foreach (var (tgId, group) in _groups)
        {
            foreach (var (key, e) in group)
            {
                if (e.State is TargetHealthStates.Healthy or TargetHealthStates.Unhealthy)
                {
                    if (!result.TryGetValue(tgId, out var targets))
                    {
                        result[tgId] = targets = new(StringComparer.Ordinal);
                    }
                    targets[key] = new TargetVerdict { State = e.State, Reason = e.Reason, Description = e.Description };
                }
            }
        }
        return result;
    }

    /// <summary>
    /// Seeds a target with the verdict it had before a restart, so a healthy target keeps its traffic and an unhealthy one stays
    /// out until the health checks say otherwise. Only for a target the book does not hold yet, or holds as just registered.
    /// </summary>
    public void Restore(string tgId, string key, TargetVerdict verdict)
    {
        if (verdict.State is not (TargetHealthStates.Healthy or TargetHealthStates.Unhealthy))
        {
            return;
        }
        var restored = new Entry(verdict.State, verdict.Reason, verdict.Description, 0, 0, null);
        Group(tgId).AddOrUpdate(key, _ => restored, (_, e) => e.State == TargetHealthStates.Initial && e.Passes == 0 && e.Failures == 0 ? restored : e);
    }
}

/// <summary>A target's last health verdict as persisted across restarts of the data plane.</summary>
public sealed class TargetVerdict
{
    [System.Text.Json.Serialization.JsonPropertyName("state")] public required string State { get; init; }
    [System.Text.Json.Serialization.JsonPropertyName("reason")] public string? Reason { get; init; }
    [System.Text.Json.Serialization.JsonPropertyName("description")] public string? Description { get; init; }
}
