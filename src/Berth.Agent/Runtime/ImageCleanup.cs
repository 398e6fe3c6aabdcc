using System.Text.Json;
using System.Text.Json.Serialization;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging;

namespace Berth.Agent.Runtime;

/// <summary>An image this agent pulled, and when.</summary>
internal sealed record PulledImage(
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("pulledAt")] DateTimeOffset PulledAt);

/// <summary>
/// The images this agent pulled (DATA/pulled-images.json, written to a temporary file and renamed): the only
/// images image cleanup may remove, so an image someone built or pulled by hand on the host is never touched.
/// </summary>
internal sealed class PulledImages
{
    private readonly string? _file;
    private readonly Dictionary<string, PulledImage> _images = new(StringComparer.Ordinal);

    /// <param name="file">Where the list is kept; null: in memory only (tests).</param>
    public PulledImages(string? file)
    {
        _file = file;
        if (file is not null && File.Exists(file))
        {
            try
            {
                foreach (var p in JsonSerializer.Deserialize(File.ReadAllText(file), PulledImagesJson.Default.ListPulledImage) ?? [])
                {
                    _images[p.Image] = p;
                }
            }
            catch (JsonException)
            {
                // A damaged list forgets what it held: those images are then never cleaned up, the safe side.
            }
        }
    }

    public IReadOnlyList<PulledImage> All()
    {
        lock (_images)
        {
            return [.. _images.Values];
        }
    }

    public void Add(string image, DateTimeOffset at)
    {
        lock (_images)
        {
            _images[image] = new PulledImage(image, at);
            Save();
        }
    }

    public void Remove(string image)
    {
        lock (_images)
        {
            if (_images.Remove(image))
            {
                Save();
            }
        }
    }

    private void Save()
    {
        if (_file is null)
        {
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(_file)!);
        var tmp = _file + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize([.. _images.Values.OrderBy(p => p.Image, StringComparer.Ordinal)], PulledImagesJson.Default.ListPulledImage));
        File.Move(tmp, _file, overwrite: true);
    }
}

[JsonSerializable(typeof(List<PulledImage>))]
internal sealed partial class PulledImagesJson : JsonSerializerContext;

/// <summary>
/// Image cleanup as ECS's agent does it (ECS_IMAGE_CLEANUP_INTERVAL, ECS_IMAGE_MINIMUM_CLEANUP_AGE,
/// ECS_NUM_IMAGES_DELETE_PER_CYCLE): every interval, the images this agent pulled that no container on the host
/// uses and that were pulled at least the minimum age ago are removed, oldest pull first, at most N per cycle.
/// When Docker's disk is short of space the minimum age no longer protects an unused image.
/// </summary>
internal sealed partial class ImageCleaner(IDockerClient docker, PulledImages pulled, AgentOptions options, TimeProvider time, ILogger<ImageCleaner> logger)
{
    /// <summary>The images to remove this cycle, in order (a pure choice, for tests).</summary>
    internal static IReadOnlyList<PulledImage> Choose(IReadOnlyList<PulledImage> tracked, Func<string, bool> inUse, DateTimeOffset now,
        TimeSpan minimumAge, bool diskPressure, int max)
        => [.. tracked
            .Where(p => !inUse(p.Image) && (diskPressure || now - p.PulledAt >= minimumAge))
            .OrderBy(p => p.PulledAt).ThenBy(p => p.Image, StringComparer.Ordinal)
            .Take(Math.Max(0, max))];

    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(options.ImageCleanupInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    await CycleAsync(ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is DockerApiException or HttpRequestException or IOException)
                {
                    LogCycleFailed(logger, e.GetBaseException().Message);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>One cleanup cycle; returns the images removed.</summary>
    internal async Task<IReadOnlyList<string>> CycleAsync(CancellationToken ct)
    {
        var tracked = pulled.All();
        if (tracked.Count == 0)
        {
            return [];
        }
        // Every container on the host counts, not only this agent's: another agent's or a user's container may use it.
        var containers = await docker.Containers.ListContainersAsync(new ContainersListParameters { All = true }, ct).ConfigureAwait(false);
        var usedIds = containers.Select(c => c.ImageID).Where(id => !string.IsNullOrEmpty(id)).ToHashSet(StringComparer.Ordinal);
        var idOf = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var p in tracked)
        {
            try
            {
                idOf[p.Image] = (await docker.Images.InspectImageAsync(p.Image, ct).ConfigureAwait(false)).ID;
            }
            catch (DockerImageNotFoundException)
            {
                pulled.Remove(p.Image); // removed by someone else: nothing to track
                idOf[p.Image] = null;
            }
        }
        var pressure = DiskPressure(await DockerRootAsync(ct).ConfigureAwait(false));
        var chosen = Choose([.. tracked.Where(p => idOf[p.Image] is not null)], image => usedIds.Contains(idOf[image]!), time.GetUtcNow(),
            options.ImageMinimumCleanupAge, pressure, options.ImagesDeletedPerCycle);
        var removed = new List<string>();
        foreach (var p in chosen)
        {
            try
            {
                // Untags this reference (and removes the image once no other tag holds it); never forced, so Docker
                // refuses an image a container created meanwhile uses.
                await docker.Images.DeleteImageAsync(p.Image, new ImageDeleteParameters { Force = false }, ct).ConfigureAwait(false);
                pulled.Remove(p.Image);
                removed.Add(p.Image);
                LogRemoved(logger, p.Image, pressure);
            }
            catch (DockerImageNotFoundException)
            {
                pulled.Remove(p.Image);
            }
            catch (DockerApiException e)
            {
                LogKept(logger, p.Image, e.Message);
            }
        }
        return removed;
    }

    private async Task<string?> DockerRootAsync(CancellationToken ct)
    {
        try
        {
            return (await docker.System.GetSystemInfoAsync(ct).ConfigureAwait(false)).DockerRootDir;
        }
        catch (DockerApiException)
        {
            return null;
        }
    }

    private bool DiskPressure(string? root)
    {
        if (root is null || !Directory.Exists(root))
        {
            return false; // Docker's disk is not visible from here (a remote engine): age alone decides
        }
        var drive = new DriveInfo(root);
        return drive.TotalSize > 0 && (double)drive.AvailableFreeSpace / drive.TotalSize < options.ImageCleanupMinFreeDiskFraction;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Image cleanup removed {Image} (disk pressure: {DiskPressure})")]
    private static partial void LogRemoved(ILogger logger, string image, bool diskPressure);

    [LoggerMessage(Level = LogLevel.Information, Message = "Image cleanup kept {Image}: {Reason}")]
    private static partial void LogKept(ILogger logger, string image, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Image cleanup cycle failed: {Reason}")]
    private static partial void LogCycleFailed(ILogger logger, string reason);
}
