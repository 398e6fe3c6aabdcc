using Berth.Registry.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Registry.Lifecycle;

/// <summary>
/// Applies every repository's lifecycle policy at each registry sweep (before garbage collection, which
/// then frees the blobs only the expired images used): the evaluation and the deletion happen under one
/// hold of the registry's write lock, and the repository's lastEvaluatedAt is stamped.
/// </summary>
internal sealed partial class LifecyclePolicyRunner(RegistryRegions regions, TimeProvider time, ILogger<LifecyclePolicyRunner> logger) : IRegistryMaintenance
{
    public async Task RunAsync(CancellationToken ct)
    {
        foreach (var region in regions.Open)
        {
            await RunAsync(region.Service, ct).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(RegistryService registry, CancellationToken ct)
    {
        var names = registry.State.Repositories.All.Where(r => r.Value.LifecyclePolicyText is not null).Select(r => r.Id).ToList();
        foreach (var name in names)
        {
            IReadOnlyList<RegistryImage> expired;
            try
            {
                expired = await registry.ExpireImagesAsync(name, (repo, images) => Select(repo, images, time.GetUtcNow()), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // One repository's trouble must not hold up the others, nor the garbage collection after this step.
                LogFailed(logger, e, name);
                continue;
            }
            foreach (var image in expired)
            {
                LogExpired(logger, name, image.Manifest.Digest, string.Join(",", image.Tags));
            }
        }
    }

    /// <summary>Digests the repository's policy expires now (none when it has no valid policy).</summary>
    internal static IEnumerable<string> Select(Metadata.StoredRepository repository, IReadOnlyList<RegistryImage> images, DateTimeOffset now)
    {
        if (repository.LifecyclePolicyText is not { } text || !LifecyclePolicy.TryParse(text, out var policy))
        {
            return [];
        }
        return LifecycleEvaluator.Evaluate(images.Select(ToLifecycleImage), policy!, now).Select(e => e.Image.Digest);
    }

    internal static LifecycleImage ToLifecycleImage(RegistryImage image)
        => new(image.Manifest.Digest, image.Tags, image.Manifest.PushedAt, image.ReferencedBy.Count > 0);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lifecycle policy of {Repository} could not be applied; retrying at the next sweep")]
    private static partial void LogFailed(ILogger logger, Exception e, string repository);

    [LoggerMessage(Level = LogLevel.Information, Message = "Lifecycle policy of {Repository} expired {Digest} (tags: {Tags})")]
    private static partial void LogExpired(ILogger logger, string repository, string digest, string tags);
}
