using System.Collections.Concurrent;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.LoadBalancer.Api;
using Berth.LoadBalancer.DataPlane;
using Berth.LoadBalancer.State;
using Berth.State;
using Microsoft.Extensions.Logging;

namespace Berth.LoadBalancer;

/// <summary>One region's ELBv2 namespace: its state (elbv2/{account}/{region}/...), ARNs and API.</summary>
public sealed class Elbv2Region
{
    internal Elbv2Region(Elbv2State state, Elbv2Arns arns, Elbv2Context context, TargetGroupOperations targetGroups, AwsQueryService api)
    {
        State = state;
        Arns = arns;
        Context = context;
        TargetGroups = targetGroups;
        Api = api;
    }

    public string Name => Arns.Identity.Region;
    public Elbv2State State { get; }
    public Elbv2Arns Arns { get; }
    internal Elbv2Context Context { get; }
    internal TargetGroupOperations TargetGroups { get; }

    /// <summary>The ELBv2 API of this region (the Query front door picks it by the request's region).</summary>
    public AwsQueryService Api { get; }
}

/// <summary>
/// Every region's load balancers, target groups, listeners and rules, each region a state of its own over the one
/// store (as ECS's regions are). The data plane is host-wide: it serves the listeners of every region, so a
/// listener port is unique across regions (<see cref="PortGate"/>). A lookup of an open region is one dictionary read.
/// </summary>
public sealed partial class Elbv2Regions : ITargetRegistration
{
    /// <summary>A bound on the regions one server opens (as ECS's).</summary>
    public const int MaxRegions = 32;

    private const string ArnPrefix = "arn:aws:elasticloadbalancing:";

    private readonly ConcurrentDictionary<string, Lazy<Task<Elbv2Region>>> _regions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (Elbv2Region Region, string Metric)> _targetGroupRegion = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly IStateStore _store;
    private readonly LoadBalancerOptions _options;
    private readonly TimeProvider _time;
    private readonly TargetHealthBook _health;
    private readonly IInstanceAddressResolver _instances;
    private readonly ILogger _logger;
    private volatile Elbv2Region[] _all = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Elbv2Regions(IStateStore store, BerthIdentity identity, LoadBalancerOptions options, TimeProvider time, TargetHealthBook health, IInstanceAddressResolver instances, ILogger logger)
    {
        _store = store;
        DefaultIdentity = identity;
        _options = options;
        _time = time;
        _health = health;
        _instances = instances;
        _logger = logger;
    }

    /// <summary>The server's own account and region (<c>--account-id</c>, <c>--region</c>).</summary>
    public BerthIdentity DefaultIdentity { get; }

    /// <summary>The default region's namespace, open from start.</summary>
    public Elbv2Region Default { get; private set; } = null!;

    /// <summary>The open regions (a snapshot, replaced whole when a region opens): what the data plane serves.</summary>
    public IReadOnlyList<Elbv2Region> All => _all;

    /// <summary>
    /// Taken around a listener port's check and commit (CreateListener, ModifyListener): each region writes under its
    /// own lock, and two regions must not both claim one port of this host.
    /// </summary>
    internal SemaphoreSlim PortGate { get; } = new(1, 1);

    /// <summary>Opens the default region and every region the store holds ELBv2 documents of.</summary>
    public static async Task<Elbv2Regions> OpenAsync(IStateStore store, BerthIdentity identity, LoadBalancerOptions options, TimeProvider time,
        TargetHealthBook health, IInstanceAddressResolver instances, ILogger logger, CancellationToken ct = default)
    {
        var regions = new Elbv2Regions(store, identity, options, time, health, instances, logger);
        var root = $"elbv2/{identity.AccountId}/";
        var known = new SortedSet<string>(StringComparer.Ordinal) { identity.Region };
        foreach (var e in await store.ListAsync(root, ct).ConfigureAwait(false))
        {
            var slash = e.Key.IndexOf('/', root.Length);
            if (slash > root.Length)
            {
                known.Add(e.Key[root.Length..slash]);
            }
        }
        foreach (var region in known.Where(Aws.Auth.CredentialScope.IsValidRegion).Take(MaxRegions))
        {
            var open = await regions.OpenRegionAsync(region, ct).ConfigureAwait(false);
            regions._regions[region] = new Lazy<Task<Elbv2Region>>(Task.FromResult(open));
        }
        regions.Default = await regions._regions[identity.Region].Value.ConfigureAwait(false);
        return regions;
    }

    /// <summary>The region's namespace if it is open (no region is opened by this).</summary>
    public bool TryGet(string region, out Elbv2Region open)
    {
        if (_regions.TryGetValue(region, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
        {
            open = lazy.Value.Result;
            return true;
        }
        open = null!;
        return false;
    }

    /// <summary>The region's namespace, opened on first use (once, however many callers race for it).</summary>
    public async ValueTask<Elbv2Region> GetAsync(string region, CancellationToken ct = default)
    {
        if (TryGet(region, out var open))
        {
            return open;
        }
        if (!Aws.Auth.CredentialScope.IsValidRegion(region))
        {
            throw Elbv2Errors.Validation($"'{region}' is not a region name.");
        }
        if (!_regions.ContainsKey(region) && _regions.Count >= MaxRegions)
        {
            throw new AwsException("LimitExceeded", $"This Berth serves load balancers in at most {MaxRegions} regions; {region} would be one more.");
        }
        var lazy = _regions.GetOrAdd(region, r => new Lazy<Task<Elbv2Region>>(() => OpenRegionAsync(r, CancellationToken.None)));
        try
        {
            return await lazy.Value.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // A failed open (the store was unavailable) is not remembered: the next request tries again.
            _regions.TryRemove(new KeyValuePair<string, Lazy<Task<Elbv2Region>>>(region, lazy));
            throw;
        }
    }

    private async Task<Elbv2Region> OpenRegionAsync(string region, CancellationToken ct)
    {
        var identity = DefaultIdentity with { Region = region };
        var state = new Elbv2State(_store, identity);
        var arns = new Elbv2Arns(identity);
        var context = new Elbv2Context(state, arns, _options, _time) { Regions = this };
        var targetGroups = new TargetGroupOperations(context, _health, _instances);
        var api = Elbv2Api.Build(context, targetGroups);
        api.Regional = new RegionalQueryDispatch(DefaultIdentity.Region, async (r, ct) => (await GetAsync(r, ct).ConfigureAwait(false)).Api);
        var open = new Elbv2Region(state, arns, context, targetGroups, api);
        // Before the load, so the documents it loads are indexed too.
        var metric = region == DefaultIdentity.Region ? "" : region + "/";
        state.TargetGroups.Changed += (id, old, now) =>
        {
            if (now is null)
            {
                _targetGroupRegion.TryRemove(id, out _);
            }
            else
            {
                _targetGroupRegion[id] = (open, metric + now.TargetGroup.TargetGroupName);
            }
        };
        state.Durable += Signal;
        await state.LoadAsync(ct).ConfigureAwait(false);
        lock (_gate)
        {
            _all = [.. _all.Where(r => r.Name != region).Append(open).OrderBy(r => r.Name, StringComparer.Ordinal)];
        }
        if (region != DefaultIdentity.Region)
        {
            LogOpened(_logger, region);
        }
        Signal();
        return open;
    }

    private void Signal() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Grows with every commit of any region and with every region opened.</summary>
    public long Generation
    {
        get
        {
            var all = _all;
            long sum = all.Length;
            foreach (var r in all)
            {
                sum += r.State.Generation;
            }
            return sum;
        }
    }

    /// <summary>Completes when any region changes after <paramref name="seenGeneration"/> was read, or at the timeout.</summary>
    public async Task WaitForChangeAsync(long seenGeneration, TimeSpan timeout, CancellationToken ct)
    {
        var changed = Volatile.Read(ref _changed).Task;
        if (Generation != seenGeneration)
        {
            return;
        }
        try
        {
            await changed.WaitAsync(timeout, _time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <summary>A target group of any region by its id (ids are random 64-bit values, unique across regions): one dictionary read.</summary>
    internal StoredTargetGroup? FindTargetGroup(string id)
        => _targetGroupRegion.TryGetValue(id, out var at) ? at.Region.State.TargetGroups.Find(id) : null;

    /// <summary>The name a target group's metrics carry: its name, prefixed with its region outside the default one.</summary>
    internal string? MetricName(string id) => _targetGroupRegion.TryGetValue(id, out var at) ? at.Metric : null;

    /// <summary>The listener of any region on this host port, or null.</summary>
    internal Versioned<StoredListener>? ListenerOnPort(int port)
    {
        foreach (var r in _all)
        {
            if (r.State.Index.ListenerOnPort(port) is { } id && r.State.Listeners.Get(id) is { } l)
            {
                return l;
            }
        }
        return null;
    }

    // ITargetRegistration: the target group's ARN names its region (the ECS service's, which created it there).

    private TargetGroupOperations RegionOf(string targetGroupArn)
    {
        if (targetGroupArn.StartsWith(ArnPrefix, StringComparison.Ordinal))
        {
            var rest = targetGroupArn.AsSpan(ArnPrefix.Length);
            var colon = rest.IndexOf(':');
            if (colon > 0 && TryGet(rest[..colon].ToString(), out var region))
            {
                return region.TargetGroups;
            }
            if (colon > 0)
            {
                throw Elbv2Errors.TargetGroupNotFound($"Target group '{targetGroupArn}' not found");
            }
        }
        return Default.TargetGroups;
    }

    public Task RegisterTargetsAsync(string targetGroupArn, IReadOnlyList<TargetEndpoint> targets, CancellationToken ct = default)
        => RegionOf(targetGroupArn).RegisterTargetsAsync(targetGroupArn, targets, ct);

    public Task DeregisterTargetsAsync(string targetGroupArn, IReadOnlyList<TargetEndpoint> targets, CancellationToken ct = default)
        => RegionOf(targetGroupArn).DeregisterTargetsAsync(targetGroupArn, targets, ct);

    public IReadOnlyList<TargetHealthReport> DescribeTargetHealth(string targetGroupArn) => RegionOf(targetGroupArn).DescribeTargetHealth(targetGroupArn);

    public bool IsAttached(string targetGroupArn) => RegionOf(targetGroupArn).IsAttached(targetGroupArn);

    public string TargetType(string targetGroupArn) => RegionOf(targetGroupArn).TargetType(targetGroupArn);

    [LoggerMessage(Level = LogLevel.Information, Message = "Load balancer region {Region} opened")]
    private static partial void LogOpened(ILogger logger, string region);
}
