using System.Collections.Concurrent;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Core.Logs;
using Berth.Logs.Api;
using Berth.Logs.Storage;
using Microsoft.Extensions.Logging;

namespace Berth.Logs.Hosting;

/// <summary>One region's CloudWatch Logs: its store (DATA/logs/{region}/) and the API over it.</summary>
public sealed class LogRegion
{
    internal LogRegion(string name, LogStore store, AwsJsonService api)
    {
        Name = name;
        Store = store;
        Api = api;
    }

    public string Name { get; }
    public LogStore Store { get; }

    /// <summary>The Logs API of this region (the front door picks it by the request's region).</summary>
    public AwsJsonService Api { get; }
}

/// <summary>
/// Every region's log groups, each region a store of its own under DATA/logs/{region}/ (as AWS keeps them apart:
/// one group name in two regions holds two sets of events). The default region and every region found on disk
/// open at start; another opens on first use (a request signed for it, or awslogs output shipped to it). A
/// lookup of an open region is one dictionary read.
/// </summary>
public sealed partial class LogRegions : ILogIngest
{
    /// <summary>A bound on the regions one server opens (as ECS's).</summary>
    public const int MaxRegions = 32;

    private readonly ConcurrentDictionary<string, Lazy<LogRegion>> _regions = new(StringComparer.Ordinal);
    private readonly LogStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public LogRegions(LogStoreOptions options, BerthIdentity identity, TimeProvider time, ILogger<LogRegions> logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
        DefaultIdentity = identity;
        Directory.CreateDirectory(options.DataDirectory);
        MigrateRegionless();
        var regions = Directory.GetDirectories(options.DataDirectory).Select(Path.GetFileName).OfType<string>()
            .Where(Aws.Auth.CredentialScope.IsValidRegion).Append(identity.Region).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Take(MaxRegions);
        foreach (var region in regions)
        {
            var open = Open(region);
            _regions[region] = new Lazy<LogRegion>(open);
        }
        Default = _regions[identity.Region].Value;
    }

    /// <summary>The server's own account and region (<c>--account-id</c>, <c>--region</c>).</summary>
    public BerthIdentity DefaultIdentity { get; }

    /// <summary>The default region's logs, open from start.</summary>
    public LogRegion Default { get; }

    /// <summary>The regions open now.</summary>
    public IReadOnlyList<LogRegion> All => [.. _regions.Values.Where(l => l.IsValueCreated).Select(l => l.Value)];

    /// <summary>The region's logs, opened on first use (once, however many callers race for it).</summary>
    public LogRegion Get(string region)
    {
        if (_regions.TryGetValue(region, out var open) && open.IsValueCreated)
        {
            return open.Value;
        }
        if (!Aws.Auth.CredentialScope.IsValidRegion(region))
        {
            throw AwsException.InvalidParameter($"'{region}' is not a region name.");
        }
        if (open is null && _regions.Count >= MaxRegions)
        {
            throw new AwsException("LimitExceededException", $"This Berth keeps logs in at most {MaxRegions} regions; {region} would be one more.");
        }
        var lazy = _regions.GetOrAdd(region, r => new Lazy<LogRegion>(() => Open(r), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch (Exception)
        {
            // A failed open (the disk refused) is not remembered: the next caller tries again.
            _regions.TryRemove(new KeyValuePair<string, Lazy<LogRegion>>(region, lazy));
            throw;
        }
    }

    private LogRegion Open(string region)
    {
        var store = new LogStore(_options with { DataDirectory = Path.Combine(_options.DataDirectory, region) }, _time);
        var api = LogsApi.Build(store, DefaultIdentity with { Region = region });
        api.Regional = new RegionalDispatch(DefaultIdentity.Region, (r, _) => ValueTask.FromResult(Get(r).Api));
        if (region != DefaultIdentity.Region)
        {
            LogOpened(_logger, region);
        }
        return new LogRegion(region, store, api);
    }

    /// <summary>
    /// Before regions, the store was DATA/logs/groups/: it becomes the default region's (DATA/logs/{region}/groups/),
    /// once, by one rename (its documents hold names only, no region or ARN, so nothing inside changes).
    /// </summary>
    private void MigrateRegionless()
    {
        var old = Path.Combine(_options.DataDirectory, "groups");
        if (!Directory.Exists(old))
        {
            return;
        }
        var target = Path.Combine(_options.DataDirectory, DefaultIdentity.Region);
        var targetGroups = Path.Combine(target, "groups");
        if (Directory.Exists(targetGroups) && Directory.EnumerateFileSystemEntries(targetGroups).Any())
        {
            LogMigrationSkipped(_logger, old, targetGroups);
            return;
        }
        Directory.CreateDirectory(target);
        if (Directory.Exists(targetGroups))
        {
            Directory.Delete(targetGroups);
        }
        Directory.Move(old, targetGroups);
        LogMigrated(_logger, DefaultIdentity.Region);
    }

    /// <summary>The default region's ingest (agents that name no region ship to the task's, see <see cref="AppendInRegionAsync"/>).</summary>
    public ValueTask<LogIngestResult> AppendAsync(string group, string stream, bool createGroup, IReadOnlyList<IngestedLogEvent> events, CancellationToken ct)
        => Default.Store.AppendAsync(group, stream, createGroup, events, ct);

    public ValueTask<LogIngestResult> AppendInRegionAsync(string region, string group, string stream, bool createGroup, IReadOnlyList<IngestedLogEvent> events, CancellationToken ct)
    {
        LogRegion open;
        try
        {
            open = Get(region);
        }
        catch (AwsException e)
        {
            return ValueTask.FromResult(new LogIngestResult(0, e.Message));
        }
        return open.Store.AppendAsync(group, stream, createGroup, events, ct);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Logs region {Region} opened")]
    private static partial void LogOpened(ILogger logger, string region);

    [LoggerMessage(Level = LogLevel.Information, Message = "Log groups from before regions moved to region {Region}")]
    private static partial void LogMigrated(ILogger logger, string region);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Log groups at {Old} were not moved: {Target} already holds groups")]
    private static partial void LogMigrationSkipped(ILogger logger, string old, string target);
}
