using System.Collections.Concurrent;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Agents;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.ControlPlane.Regions;

/// <summary>
/// Every region this server holds, by name: the default region (<c>--region</c>) and every region found in the
/// store are opened at start; a region named by a request or an agent for the first time is opened then (once,
/// however many callers race for it) and remembered in the store (berth/regions/{account}/{region}) so the
/// next start opens it too. A lookup of an open region is one dictionary read.
/// </summary>
public sealed partial class RegionDirectory : IHostedService
{
    /// <summary>A bound on the regions one server opens (each has its state in memory and three loops).</summary>
    public const int MaxRegions = 32;

    private const string MarkerRoot = "berth/regions/";

    private readonly ConcurrentDictionary<string, Lazy<Task<RegionScope>>> _scopes = new(StringComparer.Ordinal);
    private readonly IServiceProvider _root;
    private readonly IStateStore _store;
    private readonly ILogger<RegionDirectory> _logger;
    private readonly object _gate = new();
    private bool _started;
    private bool _stopped;

    private RegionDirectory(IServiceProvider root, IStateStore store, BerthIdentity identity, ILogger<RegionDirectory> logger)
    {
        _root = root;
        _store = store;
        DefaultIdentity = identity;
        _logger = logger;
    }

    /// <summary>The server's own account and region (<c>--account-id</c>, <c>--region</c>).</summary>
    public BerthIdentity DefaultIdentity { get; }

    /// <summary>The default region's scope, open from start.</summary>
    public RegionScope Default { get; private set; } = null!;

    /// <summary>The regions open now, sorted.</summary>
    public IReadOnlyList<string> Regions => [.. _scopes.Where(kv => kv.Value.IsValueCreated && kv.Value.Value.IsCompletedSuccessfully).Select(kv => kv.Key).Order(StringComparer.Ordinal)];

    /// <summary>
    /// Opens the default region over <paramref name="defaultState"/> (loaded already, which migrated the store
    /// once for every region) and every other region the store knows of. Before this version regions were not
    /// recorded: a store without records is looked through once for the regions its ECS keys name (a data
    /// directory may have been served under several --region values).
    /// </summary>
    public static async Task<RegionDirectory> OpenAsync(IServiceProvider root, EcsState defaultState, ILogger<RegionDirectory> logger, CancellationToken ct = default)
    {
        var store = defaultState.Store;
        var identity = defaultState.Identity;
        var directory = new RegionDirectory(root, store, identity, logger);
        var markers = MarkerRoot + identity.AccountId + "/";
        var known = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in await store.ListAsync(markers, ct).ConfigureAwait(false))
        {
            known.Add(e.Key[markers.Length..]);
        }
        if (known.Count == 0)
        {
            var ecs = $"ecs/{identity.AccountId}/";
            foreach (var e in await store.ListAsync(ecs, ct).ConfigureAwait(false))
            {
                var slash = e.Key.IndexOf('/', ecs.Length);
                if (slash > ecs.Length)
                {
                    known.Add(e.Key[ecs.Length..slash]);
                }
            }
        }
        known.Add(identity.Region);
        foreach (var region in known.Where(Aws.Auth.CredentialScope.IsValidRegion).Take(MaxRegions))
        {
            var scope = region == identity.Region
                ? await RegionScope.OpenAsync(root, store, identity, ct, defaultState).ConfigureAwait(false)
                : await directory.OpenScopeAsync(region, ct).ConfigureAwait(false);
            directory._scopes[region] = new Lazy<Task<RegionScope>>(Task.FromResult(scope));
        }
        directory.Default = await directory._scopes[identity.Region].Value.ConfigureAwait(false);
        return directory;
    }

    /// <summary>The scope of <paramref name="region"/>, opening it on first use. The name must be a valid region.</summary>
    public async ValueTask<RegionScope> GetAsync(string region, CancellationToken ct = default)
    {
        if (_scopes.TryGetValue(region, out var open) && open.Value.IsCompletedSuccessfully)
        {
            return open.Value.Result;
        }
        if (!Aws.Auth.CredentialScope.IsValidRegion(region))
        {
            throw AwsException.InvalidParameter($"'{region}' is not a region name.");
        }
        if (open is null && _scopes.Count >= MaxRegions)
        {
            throw new AwsException("LimitExceededException", $"This Berth serves at most {MaxRegions} regions; {region} would be one more.");
        }
        var lazy = _scopes.GetOrAdd(region, r => new Lazy<Task<RegionScope>>(() => OpenNewAsync(r)));
        try
        {
            return await lazy.Value.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // A failed open (the store was unavailable) is not remembered: the next request tries again.
            _scopes.TryRemove(new KeyValuePair<string, Lazy<Task<RegionScope>>>(region, lazy));
            throw;
        }
    }

    private async Task<RegionScope> OpenNewAsync(string region)
    {
        // Not cancelled by the first caller going away: other callers may be waiting for the same region.
        var scope = await OpenScopeAsync(region, CancellationToken.None).ConfigureAwait(false);
        await _store.CommitAsync([new StoreWrite(MarkerRoot + DefaultIdentity.AccountId + "/" + region, "{}"u8.ToArray())], CancellationToken.None).ConfigureAwait(false);
        bool start;
        lock (_gate)
        {
            start = _started && !_stopped;
        }
        if (start)
        {
            await StartScopeAsync(scope, resetAgents: false, CancellationToken.None).ConfigureAwait(false);
        }
        LogOpened(_logger, region);
        return scope;
    }

    private Task<RegionScope> OpenScopeAsync(string region, CancellationToken ct)
        => RegionScope.OpenAsync(_root, _store, DefaultIdentity with { Region = region }, ct);

    private static async Task StartScopeAsync(RegionScope scope, bool resetAgents, CancellationToken ct)
    {
        if (resetAgents)
        {
            await AgentConnectionReset.ResetAsync(scope.State, ct).ConfigureAwait(false);
        }
        foreach (var controller in scope.Controllers)
        {
            await controller.StartAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Marks the open regions' leftover agent connections as gone (no stream is open before this runs: hosted
    /// services start before Kestrel accepts connections), then starts their controllers.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        RegionScope[] open;
        lock (_gate)
        {
            _started = true;
            open = [.. _scopes.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully).Select(l => l.Value.Result)];
        }
        foreach (var scope in open)
        {
            await StartScopeAsync(scope, resetAgents: true, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        RegionScope[] open;
        lock (_gate)
        {
            _stopped = true;
            open = [.. _scopes.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully).Select(l => l.Value.Result)];
        }
        foreach (var scope in open)
        {
            foreach (var controller in scope.Controllers)
            {
                await controller.StopAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The scope of <paramref name="region"/> if it is open; nothing is opened by this (for callers that only read, as the load balancer's instance targets).</summary>
    public bool TryGet(string region, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RegionScope? scope)
    {
        if (_scopes.TryGetValue(region, out var open) && open.IsValueCreated && open.Value.IsCompletedSuccessfully)
        {
            scope = open.Value.Result;
            return true;
        }
        scope = null;
        return false;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Region {Region} opened (first request or agent naming it)")]
    private static partial void LogOpened(ILogger logger, string region);
}
