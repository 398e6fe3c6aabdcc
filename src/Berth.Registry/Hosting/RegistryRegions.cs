using System.Collections.Concurrent;
using Berth.Aws.Auth;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Ecr;
using Berth.Registry.Metadata;
using Berth.Registry.Replication;
using Berth.Registry.Storage;
using Berth.State;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Berth.Registry.Hosting;

/// <summary>
/// The registry of every region, by name, as ECR keeps one registry per region: each region's repositories,
/// images, policies and registry settings are its own <see cref="RegistryState"/> (keys under registry/{region}/),
/// its own <see cref="RegistryService"/> (ARNs and repositoryUri carry the region) and its own ECR API. The blob
/// store is shared. The published region (the server's <c>--region</c>) and every region the store knows
/// (registry/regions/{region} records) open at start; another opens when a request first names it. A lookup of an
/// open region is one dictionary read.
/// </summary>
public sealed partial class RegistryRegions
{
    /// <summary>A bound on the regions one server opens (each keeps its metadata in memory), as for ECS.</summary>
    public const int MaxRegions = 32;

    private const string MarkerRoot = "registry/regions/";

    private readonly ConcurrentDictionary<string, Lazy<Task<RegistryRegion>>> _regions = new(StringComparer.Ordinal);
    private readonly IServiceProvider _root;
    private readonly IStateStore _store;
    private readonly ILogger _logger;

    private RegistryRegions(IServiceProvider root, IStateStore store, BerthIdentity published, ILogger logger)
    {
        _root = root;
        _store = store;
        Published = published;
        _logger = logger;
    }

    /// <summary>The server's account and region: the region the short /v2/ names reach.</summary>
    public BerthIdentity Published { get; }

    /// <summary>The published region's registry.</summary>
    public RegistryRegion Default { get; private set; } = null!;

    /// <summary>The regions open now.</summary>
    public IReadOnlyList<RegistryRegion> Open
        => [.. _regions.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully).Select(l => l.Value.Result).OrderBy(r => r.Region, StringComparer.Ordinal)];

    /// <summary>
    /// Opens the published region and every region recorded in the store. A store from before regions (documents
    /// directly under registry/repos/ ...) is moved under the published region's root first, in one commit, once.
    /// </summary>
    public static async Task<RegistryRegions> OpenAsync(IServiceProvider root, CancellationToken ct = default)
    {
        var store = root.GetRequiredService<IStateStore>();
        var identity = root.GetRequiredService<BerthIdentity>();
        var regions = new RegistryRegions(root, store, identity, root.GetRequiredService<ILoggerFactory>().CreateLogger<RegistryRegions>());
        await MigrateAsync(store, identity.Region, ct).ConfigureAwait(false);
        var known = new SortedSet<string>(StringComparer.Ordinal) { identity.Region };
        foreach (var e in await store.ListAsync(MarkerRoot, ct).ConfigureAwait(false))
        {
            known.Add(e.Key[MarkerRoot.Length..]);
        }
        foreach (var region in known.Where(CredentialScope.IsValidRegion).Take(MaxRegions))
        {
            var opened = await regions.OpenRegionAsync(region, ct).ConfigureAwait(false);
            regions._regions[region] = new Lazy<Task<RegistryRegion>>(Task.FromResult(opened));
        }
        regions.Default = regions._regions[identity.Region].Value.Result;
        return regions;
    }

    /// <summary>Format without regions → registry/{published}/...: every document moved in one store commit.</summary>
    internal static async Task MigrateAsync(IStateStore store, string region, CancellationToken ct)
    {
        var writes = new List<StoreWrite>();
        var from = RegistryState.RootOf(null);
        var to = RegistryState.RootOf(region);
        foreach (var table in RegistryState.TableNames)
        {
            foreach (var e in await store.ListAsync(from + table, ct).ConfigureAwait(false))
            {
                // Unconditional: a document of both layouts (an older binary run on this store after a newer one)
                // takes the one the older binary wrote last rather than refusing to start.
                writes.Add(new StoreWrite(to + e.Key[from.Length..], e.Value));
                writes.Add(new StoreWrite(e.Key, null, e.Revision));
            }
        }
        if (writes.Count > 0)
        {
            writes.Add(new StoreWrite(MarkerRoot + region, "{}"u8.ToArray()));
            await store.CommitAsync(writes, ct).ConfigureAwait(false);
        }
    }

    /// <summary>An open region, without opening one (reads of a region nobody wrote to need not create it).</summary>
    public bool TryGet(string region, out RegistryRegion registry)
    {
        if (_regions.TryGetValue(region, out var open) && open.IsValueCreated && open.Value.IsCompletedSuccessfully)
        {
            registry = open.Value.Result;
            return true;
        }
        registry = null!;
        return false;
    }

    /// <summary>The registry of <paramref name="region"/>, opening it on first use (LimitExceededException past <see cref="MaxRegions"/>).</summary>
    public async ValueTask<RegistryRegion> GetAsync(string region, CancellationToken ct = default)
    {
        if (TryGet(region, out var open))
        {
            return open;
        }
        if (!CredentialScope.IsValidRegion(region))
        {
            throw AwsException.InvalidParameter($"'{region}' is not a region name.");
        }
        if (!_regions.ContainsKey(region) && _regions.Count >= MaxRegions)
        {
            throw new AwsException("LimitExceededException", $"This Berth serves at most {MaxRegions} regions; {region} would be one more.");
        }
        var lazy = _regions.GetOrAdd(region, r => new Lazy<Task<RegistryRegion>>(() => OpenNewAsync(r)));
        try
        {
            return await lazy.Value.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // A failed open (the store was unavailable) is forgotten: the next request tries again.
            _regions.TryRemove(new KeyValuePair<string, Lazy<Task<RegistryRegion>>>(region, lazy));
            throw;
        }
    }

    private async Task<RegistryRegion> OpenNewAsync(string region)
    {
        // Not cancelled by the first caller going away: others may wait for the same region.
        var opened = await OpenRegionAsync(region, CancellationToken.None).ConfigureAwait(false);
        await _store.CommitAsync([new StoreWrite(MarkerRoot + region, "{}"u8.ToArray())], CancellationToken.None).ConfigureAwait(false);
        LogOpened(_logger, region);
        return opened;
    }

    private async Task<RegistryRegion> OpenRegionAsync(string region, CancellationToken ct)
    {
        var state = new RegistryState(_store, region);
        await state.LoadAsync(ct).ConfigureAwait(false);
        var services = new RegionalServices(_root);
        var arns = new Arns(Published with { Region = region });
        var registry = new RegistryService(state, _root.GetRequiredService<BlobStore>(), _root.GetRequiredService<RegistryOptions>(), arns,
            _root.GetRequiredService<TimeProvider>(), Published.Region, _root.GetRequiredService<ReplicationQueue>());
        services.Add(arns);
        services.Add(state);
        services.Add(registry);
        services.Add(this);
        return new RegistryRegion(region, state, registry, EcrApi.Build(services));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Registry region {Region} opened (first request naming it)")]
    private static partial void LogOpened(ILogger logger, string region);
}

/// <summary>One region's registry: its metadata, its operations and its ECR API.</summary>
public sealed class RegistryRegion(string region, RegistryState state, RegistryService service, AwsJsonService ecr)
{
    public string Region { get; } = region;
    public RegistryState State { get; } = state;
    public RegistryService Service { get; } = service;

    /// <summary>This region's ECR API (the front door picks it by the request's region).</summary>
    public AwsJsonService Ecr { get; } = ecr;
}

/// <summary>A region's own instances in front of the server's container, so an operations class asking for a <see cref="RegistryService"/> or <see cref="Arns"/> gets its region's.</summary>
internal sealed class RegionalServices(IServiceProvider root) : IServiceProvider
{
    private readonly Dictionary<Type, object> _own = [];

    public void Add<T>(T value) where T : class => _own[typeof(T)] = value;

    public object? GetService(Type serviceType) => _own.TryGetValue(serviceType, out var v) ? v : root.GetService(serviceType);
}
