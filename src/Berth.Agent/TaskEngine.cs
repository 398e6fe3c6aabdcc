using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Berth.Aws.Ecs;
using Berth.Core;
using Berth.Core.Agent;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging;

namespace Berth.Agent;

/// <summary>
/// Drives the Docker engine towards the desired task set and reports what it observes.
/// </summary>
/// <remarks>
/// Level-triggered: every pass re-reads the containers from Docker (by label) and decides from that,
/// never from memory alone, so a lost event, a crash or a restart heals on the next pass. Each task is
/// reconciled by at most one worker at a time; a slow stop does not hold up other tasks.
/// </remarks>
public sealed partial class TaskEngine : IAsyncDisposable
{
    private readonly IDockerClient _docker;
    private readonly string _agentId;
    private readonly Uri _serverUrl;
    private readonly IReadOnlyDictionary<string, string> _extraLabels;
    private readonly TimeSpan _cleanupWait;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, TrackedTask> _tasks = new(StringComparer.Ordinal);
    private readonly Channel<TaskStatusReport> _reports = Channel.CreateUnbounded<TaskStatusReport>();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private bool _desiredKnown;

    /// <param name="serverUrl">The control plane's URL; images in its registry are pulled through it (see <see cref="RegistryRouting.PullReference"/>).</param>
    public TaskEngine(IDockerClient docker, string agentId, Uri serverUrl, IReadOnlyDictionary<string, string> extraLabels, TimeSpan cleanupWait, TimeProvider time, ILogger<TaskEngine> logger)
    {
        _docker = docker;
        _agentId = agentId;
        _serverUrl = serverUrl;
        _extraLabels = extraLabels;
        _cleanupWait = cleanupWait;
        _time = time;
        _logger = logger;
    }

    /// <summary>Every status change, in order; the connection forwards them to the server.</summary>
    public ChannelReader<TaskStatusReport> Reports => _reports.Reader;

    /// <summary>Re-adopts this agent's containers from Docker, then starts the reconcile loop.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        foreach (var c in await ListOwnContainersAsync(null, ct).ConfigureAwait(false))
        {
            if (c.Labels.TryGetValue(ContainerLabels.TaskArn, out var arn))
            {
                _tasks.GetOrAdd(arn, a => new TrackedTask(a));
            }
        }
        LogAdopted(_logger, _tasks.Count);
        _loop = Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>A desired state from the server: a full snapshot or a delta (see agent.proto).</summary>
    public void ApplyDesired(DesiredState desired)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in desired.Tasks)
        {
            seen.Add(d.TaskArn);
            var t = _tasks.GetOrAdd(d.TaskArn, a => new TrackedTask(a));
            if (d.Spec is not null)
            {
                (t.Task, t.Definition) = SpecConversion.ToEcs(d.TaskArn, d.Spec);
            }
            t.DesiredStatus = d.DesiredStatus;
            t.ServerLastStatus = d.LastStatus;
            t.Sequence = Math.Max(t.Sequence, d.LastSequence);
            t.RegistryAuth = [.. d.RegistryAuth];
            t.Orphan = false;
        }
        foreach (var arn in desired.RemovedTaskArns)
        {
            if (_tasks.TryGetValue(arn, out var t))
            {
                t.Orphan = true;
            }
        }
        if (desired.Full)
        {
            foreach (var t in _tasks.Values)
            {
                if (!seen.Contains(t.Arn))
                {
                    t.Orphan = true; // unknown to the server: stop and forget
                }
            }
        }
        _desiredKnown = true;
        Wake();
    }

    /// <summary>Tasks this agent has containers or records of, for Register.known_task_arns.</summary>
    public IReadOnlyList<string> KnownTaskArns() => _tasks.Keys.ToList();

    /// <summary>The last report of every task, for a fresh connection.</summary>
    public IReadOnlyList<TaskStatusReport> Snapshot() => _tasks.Values.Select(t => t.LastReport).OfType<TaskStatusReport>().ToList();

    private void Wake()
    {
        if (_wake.CurrentCount == 0)
        {
            try
            {
                _wake.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            foreach (var t in _tasks.Values)
            {
                if (t.Worker is null || t.Worker.IsCompleted)
                {
                    t.Worker = Task.Run(async () =>
                    {
                        try
                        {
                            await ReconcileAsync(t, ct).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (ct.IsCancellationRequested)
                        {
                        }
                        catch (Exception e)
                        {
                            LogReconcileFailed(_logger, e, t.Arn);
                        }
                        finally
                        {
                            if (t.WakeAfter)
                            {
                                t.WakeAfter = false;
                                Wake();
                            }
                        }
                    }, CancellationToken.None);
                }
            }
            try
            {
                await _wake.WaitAsync(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task ReconcileAsync(TrackedTask t, CancellationToken ct)
    {
        var containers = await ListOwnContainersAsync(t.Arn, ct).ConfigureAwait(false);
        var observed = new Dictionary<string, ContainerInspectResponse>(StringComparer.Ordinal);
        foreach (var c in containers)
        {
            if (c.Labels.TryGetValue(ContainerLabels.ContainerName, out var name))
            {
                observed[name] = await _docker.Containers.InspectContainerAsync(c.ID, ct).ConfigureAwait(false);
            }
        }

        if (t.Stopped)
        {
            if (t.StoppedSeenAt is { } at && _time.GetUtcNow() - at >= _cleanupWait || t.Orphan)
            {
                foreach (var c in observed.Values)
                {
                    await _docker.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, ct).ConfigureAwait(false);
                }
                _tasks.TryRemove(t.Arn, out _);
            }
            return;
        }

        if (t.Definition is null || t.Task is null)
        {
            // Adopted from Docker but not yet described by the server: report what is there, change nothing.
            if (_desiredKnown && t.Orphan)
            {
                await StopAllAsync(t, observed, ct).ConfigureAwait(false);
                _tasks.TryRemove(t.Arn, out _);
            }
            return;
        }

        var defs = t.Definition.ContainerDefinitions ?? [];
        if (t.Orphan || t.DesiredStatus == "STOPPED")
        {
            if (observed.Values.Any(c => c.State?.Running == true))
            {
                Report(t, "DEPROVISIONING", observed);
                await StopAllAsync(t, observed, ct).ConfigureAwait(false);
                observed = await InspectAllAsync(observed, ct).ConfigureAwait(false);
            }
            MarkStopped(t, observed, null, null);
            return;
        }

        // Desired RUNNING. A task the server saw past PENDING ran here before: if its containers are
        // gone (removed while the agent was away), it is over; launching it again could run a job twice.
        if (observed.Count == 0 && TaskStateRank(t.ServerLastStatus) > TaskStateRank("PENDING") && t.LastReport is null)
        {
            MarkStopped(t, observed, "EssentialContainerExited", "Task's containers are gone: it ran on this instance and was lost while the agent was away");
            return;
        }
        var missing = defs.Where(d => d.Name is not null && !observed.ContainsKey(d.Name)).ToList();
        if (missing.Count > 0 || observed.Values.Any(c => c.State?.Status == "created"))
        {
            if (!await LaunchAsync(t, defs, observed, ct).ConfigureAwait(false))
            {
                return;
            }
            observed = await InspectAllAsync(await ReobserveAsync(t, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
        }

        var exitedEssential = defs.FirstOrDefault(d => d.Essential != false && d.Name is not null
            && observed.TryGetValue(d.Name, out var c) && !(c.State?.Running == true) && c.State?.Status is "exited" or "dead");
        if (exitedEssential is not null)
        {
            if (observed.Values.Any(c => c.State?.Running == true))
            {
                Report(t, "DEPROVISIONING", observed);
                await StopAllAsync(t, observed, ct).ConfigureAwait(false);
                observed = await InspectAllAsync(observed, ct).ConfigureAwait(false);
            }
            MarkStopped(t, observed, "EssentialContainerExited", "Essential container in task exited");
            return;
        }
        if (t.StartedAt == 0)
        {
            t.StartedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        }
        Report(t, "RUNNING", observed);
    }

    private static TaskStatusReport WithSequence(TaskStatusReport r, long sequence)
    {
        var copy = r.Clone();
        copy.Sequence = sequence;
        return copy;
    }

    private static int TaskStateRank(string status) => Array.IndexOf(
        new[] { "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED" }, status);

    private async Task<bool> LaunchAsync(TrackedTask t, List<ContainerDefinition> defs, Dictionary<string, ContainerInspectResponse> observed, CancellationToken ct)
    {
        Report(t, "PENDING", observed);
        var taskId = t.Arn[(t.Arn.LastIndexOf('/') + 1)..];
        if (t.PullStartedAt == 0)
        {
            t.PullStartedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        }
        foreach (var image in defs.Select(d => d.Image).OfType<string>().Distinct(StringComparer.Ordinal))
        {
            var pull = RegistryRouting.PullReference(image, _serverUrl);
            try
            {
                await EnsureImageAsync(pull, RegistryRouting.FindAuth(t.RegistryAuth, image), ct).ConfigureAwait(false);
            }
            catch (DockerApiException e)
            {
                t.PullStoppedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
                var from = pull == image ? "" : $" (from {pull})";
                var error = ErrorText(e);
                if (error.Contains("server gave HTTP response to HTTPS client", StringComparison.Ordinal) && ImageReference.RegistryHost(pull) is { } registry)
                {
                    // Docker speaks plain HTTP only to loopback registries unless told otherwise.
                    error += $" (list {registry} in insecure-registries of this host's Docker engine, /etc/docker/daemon.json)";
                }
                MarkStopped(t, observed, "TaskFailedToStart", $"CannotPullContainerError: pull image {image}{from}: {error}");
                return false;
            }
        }
        if (t.PullStoppedAt == 0)
        {
            t.PullStoppedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        }
        Report(t, "PENDING", observed);

        var labels = new Dictionary<string, string>(_extraLabels, StringComparer.Ordinal)
        {
            [ContainerLabels.TaskArn] = t.Arn,
            [ContainerLabels.Cluster] = t.Task!.ClusterArn ?? "",
            [ContainerLabels.Family] = t.Definition!.Family ?? "",
            [ContainerLabels.Version] = (t.Definition.Revision ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture),
            [ContainerLabels.AgentId] = _agentId,
        };
        // dependsOn: containers something depends on start first; otherwise definition order.
        var dependedOn = defs.SelectMany(d => d.DependsOn ?? []).Select(x => x.ContainerName).ToHashSet(StringComparer.Ordinal);
        foreach (var d in defs.OrderBy(d => dependedOn.Contains(d.Name) ? 0 : 1))
        {
            if (d.Name is null)
            {
                continue;
            }
            string id;
            if (observed.TryGetValue(d.Name, out var existing))
            {
                if (existing.State?.Status != "created")
                {
                    continue;
                }
                id = existing.ID;
            }
            else
            {
                var spec = ContainerSpec.Build(t.Task, t.Definition, d, taskId, new Dictionary<string, string>(labels) { [ContainerLabels.ContainerName] = d.Name });
                spec.Image = RegistryRouting.PullReference(spec.Image, _serverUrl);
                try
                {
                    id = (await _docker.Containers.CreateContainerAsync(spec, ct).ConfigureAwait(false)).ID;
                }
                catch (DockerApiException e)
                {
                    MarkStopped(t, observed, "TaskFailedToStart", $"CannotCreateContainerError: {ErrorText(e)}");
                    return false;
                }
            }
            try
            {
                await _docker.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct).ConfigureAwait(false);
            }
            catch (DockerApiException e)
            {
                MarkStopped(t, observed, "TaskFailedToStart", $"CannotStartContainerError: {ErrorText(e)}");
                return false;
            }
        }
        return true;
    }

    private async Task EnsureImageAsync(string image, RegistryAuth? auth, CancellationToken ct)
    {
        try
        {
            await _docker.Images.InspectImageAsync(image, ct).ConfigureAwait(false);
            return; // a local image is used as is
        }
        catch (DockerImageNotFoundException)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
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
        LogPulling(_logger, image, auth is not null);
        await _docker.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = name, Tag = tag! }, authConfig,
            new Progress<JSONMessage>(m => { if (m.Error?.Message is { Length: > 0 } err) { lock (errors) { errors.Add(err); } } }), ct).ConfigureAwait(false);
        // The pull endpoint reports some failures in the stream, not as an HTTP error.
        try
        {
            await _docker.Images.InspectImageAsync(image, ct).ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            throw new DockerApiException(e.StatusCode, errors.Count > 0 ? string.Join("; ", errors) : $"image {image} not found after pull");
        }
    }

    private async Task StopAllAsync(TrackedTask t, Dictionary<string, ContainerInspectResponse> observed, CancellationToken ct)
    {
        var defs = t.Definition?.ContainerDefinitions ?? [];
        await Task.WhenAll(observed.Where(kv => kv.Value.State?.Running == true).Select(kv =>
        {
            var timeout = defs.FirstOrDefault(d => d.Name == kv.Key)?.StopTimeout ?? 30;
            // Docker sends SIGTERM, then SIGKILL once the timeout has passed.
            return _docker.Containers.StopContainerAsync(kv.Value.ID, new ContainerStopParameters { WaitBeforeKillSeconds = (uint)Math.Max(0, timeout) }, ct);
        })).ConfigureAwait(false);
    }

    private async Task<Dictionary<string, ContainerInspectResponse>> InspectAllAsync(Dictionary<string, ContainerInspectResponse> observed, CancellationToken ct)
    {
        var fresh = new Dictionary<string, ContainerInspectResponse>(StringComparer.Ordinal);
        foreach (var (name, c) in observed)
        {
            fresh[name] = await _docker.Containers.InspectContainerAsync(c.ID, ct).ConfigureAwait(false);
        }
        return fresh;
    }

    private async Task<Dictionary<string, ContainerInspectResponse>> ReobserveAsync(TrackedTask t, CancellationToken ct)
    {
        var result = new Dictionary<string, ContainerInspectResponse>(StringComparer.Ordinal);
        foreach (var c in await ListOwnContainersAsync(t.Arn, ct).ConfigureAwait(false))
        {
            if (c.Labels.TryGetValue(ContainerLabels.ContainerName, out var name))
            {
                result[name] = await _docker.Containers.InspectContainerAsync(c.ID, ct).ConfigureAwait(false);
            }
        }
        return result;
    }

    private void MarkStopped(TrackedTask t, Dictionary<string, ContainerInspectResponse> observed, string? stopCode, string? reason)
    {
        t.Stopped = true;
        t.StoppedSeenAt = _time.GetUtcNow();
        t.StopCode ??= stopCode;
        t.StoppedReason ??= reason;
        t.ExecutionStoppedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        Report(t, "STOPPED", observed);
    }

    private void Report(TrackedTask t, string status, Dictionary<string, ContainerInspectResponse> observed)
    {
        var r = new TaskStatusReport
        {
            TaskArn = t.Arn,
            LastStatus = status,
            PullStartedAt = t.PullStartedAt,
            PullStoppedAt = t.PullStoppedAt,
            StartedAt = t.StartedAt,
            ExecutionStoppedAt = status == "STOPPED" ? t.ExecutionStoppedAt : 0,
            StopCode = t.StopCode ?? "",
            StoppedReason = t.StoppedReason ?? "",
        };
        foreach (var d in t.Definition?.ContainerDefinitions ?? [])
        {
            if (d.Name is null)
            {
                continue;
            }
            var cs = new Berth.Core.Agent.ContainerStatus { Name = d.Name, LastStatus = status == "STOPPED" ? "STOPPED" : "PENDING" };
            if (observed.TryGetValue(d.Name, out var c))
            {
                cs.RuntimeId = c.ID;
                cs.LastStatus = c.State?.Running == true ? "RUNNING" : c.State?.Status is "exited" or "dead" ? "STOPPED" : cs.LastStatus;
                if (cs.LastStatus == "STOPPED" && c.State?.Status is "exited" or "dead")
                {
                    cs.HasExitCode = true;
                    cs.ExitCode = (int)c.State!.ExitCode;
                    if (c.State!.OOMKilled)
                    {
                        cs.Reason = "OutOfMemoryError: Container killed due to memory usage";
                    }
                }
                foreach (var (key, binds) in c.NetworkSettings?.Ports ?? new Dictionary<string, IList<Docker.DotNet.Models.PortBinding>>())
                {
                    var hostBinding = binds?.FirstOrDefault(b => b.HostIP is null or "" or "0.0.0.0") ?? binds?.FirstOrDefault();
                    var slash = key.IndexOf('/', StringComparison.Ordinal);
                    if (hostBinding is null || !int.TryParse(hostBinding.HostPort, out var hp) || !int.TryParse(key[..slash], out var cp))
                    {
                        continue;
                    }
                    cs.NetworkBindings.Add(new Berth.Core.Agent.PortBinding { BindIp = hostBinding.HostIP is { Length: > 0 } ip ? ip : "0.0.0.0", ContainerPort = cp, HostPort = hp, Protocol = key[(slash + 1)..] });
                }
            }
            r.Containers.Add(cs);
        }
        if (t.LastReport is not null && t.LastReport.Equals(WithSequence(r, t.LastReport.Sequence)))
        {
            return;
        }
        r.Sequence = ++t.Sequence;
        t.LastReport = r;
        _reports.Writer.TryWrite(r);
        LogReported(_logger, t.Arn, status);
    }

    private async Task<IList<ContainerListResponse>> ListOwnContainersAsync(string? taskArn, CancellationToken ct)
    {
        var labels = new Dictionary<string, bool> { [$"{ContainerLabels.AgentId}={_agentId}"] = true };
        if (taskArn is not null)
        {
            labels[$"{ContainerLabels.TaskArn}={taskArn}"] = true;
        }
        return await _docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = labels },
        }, ct).ConfigureAwait(false);
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

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _stop.Dispose();
    }

    private sealed class TrackedTask(string arn)
    {
        public string Arn { get; } = arn;
        public EcsTask? Task { get; set; }
        public TaskDefinition? Definition { get; set; }
        public string DesiredStatus { get; set; } = "RUNNING";
        public string ServerLastStatus { get; set; } = "";
        public long Sequence { get; set; }
        public IReadOnlyList<RegistryAuth> RegistryAuth { get; set; } = [];
        public bool Orphan { get; set; }
        public bool Stopped { get; set; }
        public DateTimeOffset? StoppedSeenAt { get; set; }
        public long PullStartedAt { get; set; }
        public long PullStoppedAt { get; set; }
        public long StartedAt { get; set; }
        public long ExecutionStoppedAt { get; set; }
        public string? StopCode { get; set; }
        public string? StoppedReason { get; set; }
        public TaskStatusReport? LastReport { get; set; }
        public System.Threading.Tasks.Task? Worker { get; set; }
        public bool WakeAfter { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Re-adopted containers of {Count} task(s) from Docker")]
    private static partial void LogAdopted(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ignoring an unreadable desired task {TaskArn}")]
    private static partial void LogBadDesired(ILogger logger, Exception e, string taskArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reconciling {TaskArn} failed; retrying on the next pass")]
    private static partial void LogReconcileFailed(ILogger logger, Exception e, string taskArn);

    [LoggerMessage(Level = LogLevel.Information, Message = "Pulling {Image} (with registry credentials: {WithCredentials})")]
    private static partial void LogPulling(ILogger logger, string image, bool withCredentials);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{TaskArn} is {Status}")]
    private static partial void LogReported(ILogger logger, string taskArn, string status);
}
