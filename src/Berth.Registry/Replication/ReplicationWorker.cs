using System.Collections.Concurrent;
using Berth.Registry.Hosting;
using Berth.Registry.Metadata;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Registry.Replication;

/// <summary>
/// Copies pushed images to the regions their registry's replication rules name, out of the push's request path.
/// Level-triggered: a push stores its destinations as IN_PROGRESS entries on the manifest (desired state, in the
/// same commit as the manifest) and announces the image on the <see cref="ReplicationQueue"/>; this worker copies
/// each IN_PROGRESS destination and records COMPLETE or FAILED. At start it looks through every open region for
/// IN_PROGRESS entries (a crash between a push and its copy); every <see cref="ResyncInterval"/> it retries the
/// images whose copy failed transiently and looks through any region opened since — never the whole store again, so
/// the resync costs what is pending, not what the registry holds.
/// </summary>
internal sealed partial class ReplicationWorker(RegistryRegions regions, ReplicationQueue queue, TimeProvider time, ILogger<ReplicationWorker> logger) : BackgroundService
{
    /// <summary>How often the store is searched for replications still in progress.</summary>
    public static readonly TimeSpan ResyncInterval = TimeSpan.FromSeconds(30);

    /// <summary>Copies tried (a resync apart) before a destination is FAILED.</summary>
    public const int MaxAttempts = 5;

    private readonly ConcurrentDictionary<ReplicationKey, byte> _retry = new();
    private readonly ConcurrentDictionary<string, byte> _scanned = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        EnqueuePending();
        while (!stoppingToken.IsCancellationRequested)
        {
            ReplicationKey? key;
            using (var resync = new CancellationTokenSource(ResyncInterval, time))
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, resync.Token))
            {
                key = await queue.TakeAsync(wait.Token).ConfigureAwait(false);
            }
            if (key is null)
            {
                if (!stoppingToken.IsCancellationRequested)
                {
                    Resync();
                }
                continue;
            }
            try
            {
                await ReconcileAsync(key.Value, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The entries stay IN_PROGRESS: the next resync tries again.
                _retry.TryAdd(key.Value, 0);
                LogFailed(logger, e, key.Value.Region, key.Value.Repository, key.Value.Digest);
            }
        }
    }

    /// <summary>Queues every image of every open region that still has a destination IN_PROGRESS (at start).</summary>
    public void EnqueuePending()
    {
        foreach (var region in regions.Open)
        {
            _scanned.TryAdd(region.Region, 0);
            Scan(region);
        }
    }

    /// <summary>The periodic pass: the images whose copy failed and is to be tried again, and regions opened since the last look.</summary>
    private void Resync()
    {
        foreach (var region in regions.Open)
        {
            if (_scanned.TryAdd(region.Region, 0))
            {
                Scan(region);
            }
        }
        foreach (var key in _retry.Keys)
        {
            _retry.TryRemove(key, out _);
            queue.Enqueue(key);
        }
    }

    private void Scan(RegistryRegion region)
    {
        foreach (var m in region.State.Manifests.All)
        {
            if (m.Value.Replication?.Any(r => r.Status == ReplicationRules.InProgress) == true)
            {
                queue.Enqueue(new ReplicationKey(region.Region, m.Value.Repository, m.Value.Digest));
            }
        }
    }

    /// <summary>
    /// Copies one image to each of its IN_PROGRESS destinations and records the outcome. The record is written only if
    /// the manifest did not change meanwhile (a new push of it resets its destinations); otherwise it is queued again.
    /// </summary>
    public async Task ReconcileAsync(ReplicationKey key, CancellationToken ct)
    {
        if (!regions.TryGet(key.Region, out var source)
            || source.State.Manifests.Get(RegistryState.ManifestId(key.Repository, key.Digest)) is not { Value.Replication: { } targets } read)
        {
            return;
        }
        var outcomes = new List<(string Region, string RegistryId, string Status, string? Failure)>();
        foreach (var target in targets.Where(t => t.Status == ReplicationRules.InProgress))
        {
            try
            {
                var destination = await regions.GetAsync(target.Region, ct).ConfigureAwait(false);
                await destination.Service.ReplicateFromAsync(source.Service, read.Value, ct).ConfigureAwait(false);
                outcomes.Add((target.Region, target.RegistryId, ReplicationRules.Complete, null));
                LogReplicated(logger, key.Repository, key.Digest, key.Region, target.Region);
            }
            catch (RegistryException e) when (e.IsImmutableTag)
            {
                // Retrying cannot help: the destination's tag is immutable and names another image.
                outcomes.Add((target.Region, target.RegistryId, ReplicationRules.Failed, "IMAGE_TAG_IMMUTABLE"));
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                var code = e switch
                {
                    RegistryException r => r.Code,
                    Aws.Protocol.AwsException a => a.ErrorType,
                    _ => "INTERNAL_ERROR",
                };
                outcomes.Add((target.Region, target.RegistryId, target.Attempts + 1 >= MaxAttempts ? ReplicationRules.Failed : ReplicationRules.InProgress, code));
                LogCopyFailed(logger, e, key.Repository, key.Digest, target.Region, target.Attempts + 1);
            }
        }
        if (outcomes.Count == 0)
        {
            return;
        }
        var written = await source.Service.SetReplicationAsync(key.Repository, key.Digest, read.Revision, entries =>
        {
            foreach (var (region, registryId, status, failure) in outcomes)
            {
                if (entries.Find(e => e.Region == region && e.RegistryId == registryId && e.Status == ReplicationRules.InProgress) is { } entry)
                {
                    entry.Status = status;
                    if (status == ReplicationRules.InProgress)
                    {
                        entry.Attempts++;
                        entry.FailureCode = null;
                    }
                    else
                    {
                        entry.FailureCode = failure;
                    }
                }
            }
            return true;
        }, ct).ConfigureAwait(false);
        if (!written)
        {
            // Pushed again (or pulled) since it was read: look at it afresh.
            queue.Enqueue(key);
        }
        else if (outcomes.Exists(o => o.Status == ReplicationRules.InProgress))
        {
            // A transient failure: tried again at the next resync, up to MaxAttempts.
            _retry.TryAdd(key, 0);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Replicated {Repository}@{Digest} from {Source} to {Destination}")]
    private static partial void LogReplicated(ILogger logger, string repository, string digest, string source, string destination);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Replicating {Repository}@{Digest} to {Destination} failed (attempt {Attempt})")]
    private static partial void LogCopyFailed(ILogger logger, Exception e, string repository, string digest, string destination, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Replication of {Region}/{Repository}@{Digest} failed; retrying at the next resync")]
    private static partial void LogFailed(ILogger logger, Exception e, string region, string repository, string digest);
}
