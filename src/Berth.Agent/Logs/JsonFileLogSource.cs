using System.Runtime.CompilerServices;
using Docker.DotNet;
using Microsoft.Extensions.Logging;

namespace Berth.Agent.Logs;

/// <summary>
/// A container's output read straight from the json-file the Docker engine writes (as the ECS agent and Fluent Bit
/// tail such files), falling back to the logs API (<paramref name="api"/>) when that file cannot be used: an engine
/// that is not on this host (DOCKER_HOST over TCP), another log driver, compressed rotation, or a file this process
/// may not read (an agent that is not root).
/// </summary>
internal sealed partial class JsonFileLogSource(IDockerClient docker, ILogSource api, bool localEngine, TimeProvider time, ILogger logger) : ILogSource
{
    /// <summary>How often the end of a followed file is looked at again (bounds the added latency).</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>How often, while a file has nothing new, the engine is asked whether the container still runs.</summary>
    public static readonly TimeSpan StateInterval = TimeSpan.FromMilliseconds(500);

    private long _fileReads;
    private long _apiReads;

    /// <summary>Reads served from the json-file directly.</summary>
    public long FileReads => Interlocked.Read(ref _fileReads);

    /// <summary>Reads that went through the Docker logs API.</summary>
    public long ApiReads => Interlocked.Read(ref _apiReads);

    /// <summary>True when <paramref name="endpoint"/> (or DOCKER_HOST, or the default socket) is an engine on this host.</summary>
    public static bool IsLocalEngine(Uri? endpoint)
    {
        var host = endpoint?.ToString() ?? Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock";
        return host.StartsWith("unix:", StringComparison.OrdinalIgnoreCase);
    }

    public async IAsyncEnumerable<RawLogLine> ReadAsync(string containerId, long? sinceNs, [EnumeratorCancellation] CancellationToken ct)
    {
        var file = await UsableFileAsync(containerId, ct).ConfigureAwait(false);
        if (file is null)
        {
            Interlocked.Increment(ref _apiReads);
            await foreach (var l in api.ReadAsync(containerId, sinceNs, ct).ConfigureAwait(false))
            {
                yield return l;
            }
            yield break;
        }
        Interlocked.Increment(ref _fileReads);
        var lastCheck = time.GetTimestamp();
        async ValueTask<bool> StillWriting(CancellationToken c)
        {
            await Task.Delay(PollInterval, time, c).ConfigureAwait(false);
            if (time.GetElapsedTime(lastCheck) < StateInterval)
            {
                return true;
            }
            lastCheck = time.GetTimestamp();
            return await api.StateAsync(containerId, c).ConfigureAwait(false) == ContainerLogState.Running;
        }
        var tailer = new JsonFileTailer(file, logger);
        await foreach (var l in tailer.ReadAsync(sinceNs, StillWriting, ct).ConfigureAwait(false))
        {
            yield return l;
        }
        if (tailer.Unreadable > 0)
        {
            LogUnreadable(logger, file, tailer.Unreadable);
        }
    }

    public Task<ContainerLogState> StateAsync(string containerId, CancellationToken ct) => api.StateAsync(containerId, ct);

    /// <summary>The container's json-file when this process can read it; null (and why, logged) when not.</summary>
    internal async Task<string?> UsableFileAsync(string containerId, CancellationToken ct)
    {
        if (!localEngine)
        {
            LogThroughApi(logger, containerId, "the Docker engine is not on this host");
            return null;
        }
        Docker.DotNet.Models.ContainerInspectResponse c;
        try
        {
            c = await docker.Containers.InspectContainerAsync(containerId, ct).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
            return null; // the API read ends at once too
        }
        var config = c.HostConfig?.LogConfig;
        string? reason = null;
        if (config?.Type != "json-file")
        {
            reason = $"its log driver is {config?.Type ?? "unknown"}";
        }
        else if (config.Config is { } opts && opts.TryGetValue("compress", out var compress) && string.Equals(compress, "true", StringComparison.OrdinalIgnoreCase))
        {
            reason = "its rotated files are compressed";
        }
        else if (string.IsNullOrEmpty(c.LogPath))
        {
            reason = "the engine reports no log path";
        }
        else
        {
            try
            {
                using var probe = new FileStream(c.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                reason = $"its log file cannot be read here ({e.Message})";
            }
        }
        if (reason is not null)
        {
            LogThroughApi(logger, containerId, reason);
            return null;
        }
        LogFromFile(logger, containerId, c.LogPath);
        return c.LogPath;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Reading the output of {ContainerId} from its json-file {Path}")]
    private static partial void LogFromFile(ILogger logger, string containerId, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Reading the output of {ContainerId} through the Docker logs API: {Reason}")]
    private static partial void LogThroughApi(ILogger logger, string containerId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} lines of {Path} were not json-file entries and were skipped")]
    private static partial void LogUnreadable(ILogger logger, string path, long count);
}
