using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Berth.Core;
using Berth.Core.Agent;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging;

namespace Berth.Agent.Runtime;

/// <summary>The container runtime over the Docker Engine API; every container it lists or watches carries this agent's id label.</summary>
internal sealed partial class DockerRuntime(IDockerClient docker, string agentId, ILogger<DockerRuntime> logger, TimeProvider? time = null, PulledImages? pulled = null) : IContainerRuntime
{
    /// <summary>How long an image seen present is taken as present without asking dockerd again.</summary>
    internal static readonly TimeSpan ImageFresh = TimeSpan.FromSeconds(5);

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    // A scale-out starts many tasks of one image at once: they share one image inspect (in flight) and, for
    // ImageFresh after it, none. A create that finds the image gone forgets it (RuntimeException.ImageMissing).
    private readonly ConcurrentDictionary<string, Lazy<Task<bool>>> _imageChecks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _imageSeenAt = new(StringComparer.Ordinal);
    // containers[].imageDigest by (image id, reference): a digest once found stays; "none" is asked again after ImageFresh.
    private readonly ConcurrentDictionary<(string ImageId, string Reference), (string Digest, long At)> _digests = new();
    private readonly SemaphoreSlim _awsvpcLock = new(1, 1);
    private long? _awsvpcCheckedAt;
    private static readonly TimeSpan AwsvpcFresh = TimeSpan.FromSeconds(30);

    // What the engine must hear about to reconcile a task; exec_*, attach, resize and the like are noise.
    private static readonly string[] WatchedEvents = ["start", "die", "stop", "kill", "oom", "health_status", "destroy"];

    public async Task<string> VersionAsync(CancellationToken ct)
        => (await docker.System.GetVersionAsync(ct).ConfigureAwait(false)).Version ?? "unknown";

    public async Task<IReadOnlyList<RuntimeContainer>> ListAsync(string? taskArn, CancellationToken ct)
    {
        var labels = new Dictionary<string, bool> { [$"{ContainerLabels.AgentId}={agentId}"] = true };
        if (taskArn is not null)
        {
            labels[$"{ContainerLabels.TaskArn}={taskArn}"] = true;
        }
        var listed = await docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = labels },
        }, ct).ConfigureAwait(false);
        var result = new List<RuntimeContainer>(listed.Count);
        foreach (var c in listed)
        {
            if (c.Labels.ContainsKey(ContainerLabels.TaskArn) && c.Labels.ContainsKey(ContainerLabels.ContainerName)
                && await InspectAsync(c.ID, ct).ConfigureAwait(false) is { } inspected)
            {
                result.Add(inspected);
            }
        }
        return result;
    }

    public async Task<RuntimeContainer?> InspectAsync(string id, CancellationToken ct)
    {
        ContainerInspectResponse c;
        try
        {
            c = await docker.Containers.InspectContainerAsync(id, ct).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
            return null;
        }
        var labels = c.Config?.Labels ?? new Dictionary<string, string>();
        var ports = new List<Core.Agent.PortBinding>();
        foreach (var (key, binds) in c.NetworkSettings?.Ports ?? new Dictionary<string, IList<Docker.DotNet.Models.PortBinding>>())
        {
            // Docker lists one binding per address family (0.0.0.0 and ::); ECS reports the IPv4 one.
            var hostBinding = binds?.FirstOrDefault(b => b.HostIP is null or "" or "0.0.0.0") ?? binds?.FirstOrDefault();
            var slash = key.IndexOf('/', StringComparison.Ordinal);
            if (hostBinding is null || slash <= 0
                || !int.TryParse(hostBinding.HostPort, NumberStyles.None, CultureInfo.InvariantCulture, out var hp)
                || !int.TryParse(key.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out var cp))
            {
                continue;
            }
            ports.Add(new Core.Agent.PortBinding { BindIp = hostBinding.HostIP is { Length: > 0 } ip ? ip : "0.0.0.0", ContainerPort = cp, HostPort = hp, Protocol = key[(slash + 1)..] });
        }
        return new RuntimeContainer
        {
            Id = c.ID,
            TaskArn = labels.TryGetValue(ContainerLabels.TaskArn, out var arn) ? arn : "",
            ContainerName = labels.TryGetValue(ContainerLabels.ContainerName, out var name) ? name : "",
            State = c.State?.Status ?? "unknown",
            ExitCode = c.State?.ExitCode ?? 0,
            OomKilled = c.State?.OOMKilled ?? false,
            Health = c.State?.Health?.Status is { Length: > 0 } h && h != "none" ? h : null,
            Ports = ports,
            IpAddress = c.NetworkSettings?.Networks?.TryGetValue(AwsvpcNetwork.Name, out var net) == true ? net.IPAddress ?? "" : "",
            MacAddress = c.NetworkSettings?.Networks?.TryGetValue(AwsvpcNetwork.Name, out var net2) == true ? net2.MacAddress ?? "" : "",
            FinishedAt = ParseFinishedAt(c.State?.FinishedAt),
            ImageDigest = await ImageDigestAsync(c.Image, c.Config?.Image, ct).ConfigureAwait(false),
        };
    }

    /// <summary>
    /// The container's image digest as ECS reports it: the manifest digest of a digest reference, else the image's
    /// repository digest (Docker's RepoDigests) for the repository it was created from; "" for an image no registry
    /// gave (built, imported or loaded on this host).
    /// </summary>
    private async Task<string> ImageDigestAsync(string? imageId, string? reference, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(imageId) || string.IsNullOrEmpty(reference))
        {
            return "";
        }
        var at = reference.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            return reference[(at + 1)..];
        }
        if (_digests.TryGetValue((imageId, reference), out var known) && (known.Digest.Length > 0 || _time.GetElapsedTime(known.At) < ImageFresh))
        {
            return known.Digest;
        }
        string digest;
        try
        {
            digest = RepoDigestFor((await docker.Images.InspectImageAsync(imageId, ct).ConfigureAwait(false)).RepoDigests, reference);
        }
        catch (DockerApiException)
        {
            return "";
        }
        _digests[(imageId, reference)] = (digest, _time.GetTimestamp());
        return digest;
    }

    /// <summary>The digest of the entry of <paramref name="repoDigests"/> ("repo@sha256:…") for <paramref name="reference"/>'s repository; "" when none.</summary>
    internal static string RepoDigestFor(IEnumerable<string>? repoDigests, string reference)
    {
        var (repository, _) = ContainerSpec.SplitReference(reference);
        foreach (var entry in repoDigests ?? [])
        {
            var at = entry.IndexOf('@', StringComparison.Ordinal);
            if (at > 0 && string.Equals(entry[..at], repository, StringComparison.Ordinal))
            {
                return entry[(at + 1)..];
            }
        }
        return "";
    }

    private string? _dataRoot;

    public async Task<string?> DataRootAsync(CancellationToken ct)
        => _dataRoot ??= (await docker.System.GetSystemInfoAsync(ct).ConfigureAwait(false)).DockerRootDir is { Length: > 0 } root ? root : null;

    public async Task EnsureAwsvpcAsync(CancellationToken ct)
    {
        await _awsvpcLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Checked again now and then: someone may have removed the network or the image behind our back.
            if (_awsvpcCheckedAt is { } at && _time.GetElapsedTime(at) < AwsvpcFresh)
            {
                return;
            }
            await EnsureTaskNetworkAsync(ct).ConfigureAwait(false);
            await EnsurePauseImageAsync(ct).ConfigureAwait(false);
            _awsvpcCheckedAt = _time.GetTimestamp();
        }
        finally
        {
            _awsvpcLock.Release();
        }
    }

    private async Task EnsureTaskNetworkAsync(CancellationToken ct)
    {
        var existing = await docker.Networks.ListNetworksAsync(new NetworksListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["name"] = new Dictionary<string, bool> { [AwsvpcNetwork.Name] = true } },
        }, ct).ConfigureAwait(false);
        if (existing.Any(n => n.Name == AwsvpcNetwork.Name))
        {
            return;
        }
        try
        {
            // No subnet given: Docker's address pools hand out one that clashes with no other network or route.
            await docker.Networks.CreateNetworkAsync(new NetworksCreateParameters
            {
                Name = AwsvpcNetwork.Name,
                Driver = "bridge",
                Labels = new Dictionary<string, string> { [AwsvpcNetwork.Label] = "awsvpc" },
            }, ct).ConfigureAwait(false);
            LogNetworkCreated(logger, AwsvpcNetwork.Name);
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            // Another agent on this host made it meanwhile.
        }
        catch (DockerApiException e)
        {
            throw new RuntimeException($"creating the awsvpc network {AwsvpcNetwork.Name}: {ErrorText(e)}", e);
        }
    }

    private async Task EnsurePauseImageAsync(CancellationToken ct)
    {
        if (await InspectImageAsync(PauseImage.Reference, ct).ConfigureAwait(false))
        {
            return;
        }
        var executable = PauseImage.Executable(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture)
            ?? throw new RuntimeException($"awsvpc: no pause executable for {System.Runtime.InteropServices.RuntimeInformation.OSArchitecture}");
        var (repo, tag) = ContainerSpec.SplitReference(PauseImage.Reference);
        var errors = new List<string>();
        using var rootfs = PauseImage.RootFileSystem(executable);
        try
        {
            await docker.Images.CreateImageAsync(new ImagesCreateParameters { FromSrc = "-", Repo = repo, Tag = tag! }, rootfs, new AuthConfig(),
                new Progress<JSONMessage>(m => { if (m.Error?.Message is { Length: > 0 } err) { lock (errors) { errors.Add(err); } } }), ct).ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            throw new RuntimeException($"importing the pause image {PauseImage.Reference}: {ErrorText(e)}", e);
        }
        if (!await InspectImageAsync(PauseImage.Reference, ct).ConfigureAwait(false))
        {
            throw new RuntimeException($"importing the pause image {PauseImage.Reference} failed: {string.Join("; ", errors)}");
        }
        LogPauseImported(logger, PauseImage.Reference);
    }

    /// <summary>Docker's FinishedAt is RFC 3339 with nanoseconds, and 0001-01-01T00:00:00Z for a container that never exited.</summary>
    internal static DateTimeOffset? ParseFinishedAt(string? value)
        => DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) && at.Year > 1 ? at : null;

    public async Task EnsureImageAsync(string image, RegistryAuth? auth, CancellationToken ct)
    {
        if (await ImagePresentAsync(image, ct).ConfigureAwait(false))
        {
            return; // a local image is used as is
        }
        var (name, tag) = ContainerSpec.SplitReference(image);
        var errors = new List<string>();
        // The engine answers the registry's Basic challenge with these (ECR style: user "AWS", a token).
        var authConfig = auth is null ? new AuthConfig() : new AuthConfig
        {
            ServerAddress = ImageReference.RegistryHost(image) ?? auth.ServerAddress,
            Username = auth.Username,
            Password = auth.Password,
        };
        LogPulling(logger, image, auth is not null);
        try
        {
            await docker.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = name, Tag = tag! }, authConfig,
                new Progress<JSONMessage>(m => { if (m.Error?.Message is { Length: > 0 } err) { lock (errors) { errors.Add(err); } } }), ct).ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            throw new RuntimeException(ErrorText(e), e);
        }
        // The pull endpoint reports some failures in the stream, not as an HTTP error.
        try
        {
            await docker.Images.InspectImageAsync(image, ct).ConfigureAwait(false);
            _imageSeenAt[image] = _time.GetTimestamp();
            pulled?.Add(image, _time.GetUtcNow()); // image cleanup may remove only what this agent pulled
        }
        catch (DockerApiException e)
        {
            throw new RuntimeException(errors.Count > 0 ? string.Join("; ", errors) : $"image {image} not found after pull", e);
        }
    }

    private async Task<bool> ImagePresentAsync(string image, CancellationToken ct)
    {
        if (_imageSeenAt.TryGetValue(image, out var at) && _time.GetElapsedTime(at) < ImageFresh)
        {
            return true;
        }
        var check = _imageChecks.GetOrAdd(image, i => new Lazy<Task<bool>>(() => InspectImageAsync(i, ct)));
        try
        {
            var present = await check.Value.WaitAsync(ct).ConfigureAwait(false);
            if (present)
            {
                _imageSeenAt[image] = _time.GetTimestamp();
            }
            return present;
        }
        finally
        {
            _imageChecks.TryRemove(KeyValuePair.Create(image, check));
        }
    }

    private async Task<bool> InspectImageAsync(string image, CancellationToken ct)
    {
        try
        {
            await docker.Images.InspectImageAsync(image, ct).ConfigureAwait(false);
            return true;
        }
        catch (DockerImageNotFoundException)
        {
            return false;
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    public async Task<string> CreateAsync(CreateContainerParameters parameters, CancellationToken ct)
    {
        try
        {
            return (await docker.Containers.CreateContainerAsync(parameters, ct).ConfigureAwait(false)).ID;
        }
        catch (DockerApiException e)
        {
            var text = ErrorText(e);
            var imageMissing = e.StatusCode == System.Net.HttpStatusCode.NotFound && text.Contains("No such image", StringComparison.OrdinalIgnoreCase);
            if (imageMissing)
            {
                _imageSeenAt.TryRemove(parameters.Image, out _);
            }
            throw new RuntimeException(text, e) { ImageMissing = imageMissing };
        }
    }

    public async Task StartAsync(string id, CancellationToken ct)
    {
        try
        {
            await docker.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct).ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            throw new RuntimeException(ErrorText(e), e);
        }
    }

    public Task StopAsync(string id, int timeoutSeconds, CancellationToken ct)
        => docker.Containers.StopContainerAsync(id, new ContainerStopParameters { WaitBeforeKillSeconds = (uint)Math.Max(0, timeoutSeconds) }, ct);

    public async Task RemoveAsync(string id, CancellationToken ct)
    {
        try
        {
            await docker.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, ct).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
        }
    }

    public async Task RemoveTaskVolumesAsync(string taskId, CancellationToken ct)
    {
        var prefix = ContainerSpec.TaskVolumePrefix(taskId);
        var listed = await docker.Volumes.ListAsync(new VolumesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["name"] = new Dictionary<string, bool> { [prefix] = true } },
        }, ct).ConfigureAwait(false);
        foreach (var v in listed.Volumes ?? [])
        {
            // The name filter matches anywhere in the name; only this task's own volumes go.
            if (v.Name is not { } name || !name.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }
            try
            {
                await docker.Volumes.RemoveAsync(name, force: false, ct).ConfigureAwait(false);
            }
            catch (DockerApiException e)
            {
                LogVolumeKept(logger, name, ErrorText(e));
            }
        }
    }

    public Task WatchAsync(Action<RuntimeEvent> onEvent, CancellationToken ct)
    {
        var filters = new Dictionary<string, IDictionary<string, bool>>
        {
            ["type"] = new Dictionary<string, bool> { ["container"] = true },
            ["label"] = new Dictionary<string, bool> { [$"{ContainerLabels.AgentId}={agentId}"] = true },
            ["event"] = WatchedEvents.ToDictionary(e => e, _ => true),
        };
        // Progress<T> would post to the thread pool out of order; this forwards each message inline, in stream order.
        return docker.System.MonitorEventsAsync(new ContainerEventsParameters { Filters = filters }, new Inline(m =>
        {
            var attrs = m.Actor?.Attributes;
            if (m.Actor?.ID is { Length: > 0 } id && attrs is not null && attrs.TryGetValue(ContainerLabels.TaskArn, out var arn))
            {
                onEvent(new RuntimeEvent(id, arn, m.Action ?? ""));
            }
        }), ct);
    }

    private static string ErrorText(DockerApiException e)
    {
        var body = e.ResponseBody;
        if (!string.IsNullOrEmpty(body))
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.TryGetProperty("message", out var m))
                {
                    return m.GetString() ?? body;
                }
            }
            catch (JsonException)
            {
            }
            return body.Trim();
        }
        return e.Message;
    }

    private sealed class Inline(Action<Message> action) : IProgress<Message>
    {
        public void Report(Message value) => action(value);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task volume {Volume} was not removed: {Reason}")]
    private static partial void LogVolumeKept(ILogger logger, string volume, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Pulling {Image} (with registry credentials: {WithCredentials})")]
    private static partial void LogPulling(ILogger logger, string image, bool withCredentials);

    [LoggerMessage(Level = LogLevel.Information, Message = "Created the awsvpc task network {Network}")]
    private static partial void LogNetworkCreated(ILogger logger, string network);

    [LoggerMessage(Level = LogLevel.Information, Message = "Imported the pause image {Image}")]
    private static partial void LogPauseImported(ILogger logger, string image);
}
