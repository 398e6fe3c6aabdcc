using System.Collections.Concurrent;
using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.ControlPlane.Ecs;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using Berth.Core.Agent;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Berth.ControlPlane.Agents;

/// <summary>Server side of the agent stream (see agent.proto).</summary>
internal sealed partial class AgentGatewayService(
    EcsState state, Arns arns, TimeProvider time, ControlPlaneOptions options, IRegistryCredentialProvider credentials, ILogger<AgentGatewayService> logger)
    : AgentGateway.AgentGatewayBase
{
    private static readonly TimeSpan ResendInterval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan WakeInterval = TimeSpan.FromSeconds(5);

    // Instance id -> the connection currently serving it, so an old stream ending late cannot
    // mark a freshly reconnected agent as disconnected.
    private readonly ConcurrentDictionary<string, Connection> _connections = new(StringComparer.Ordinal);

    public override async Task Connect(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<ServerMessage> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct).ConfigureAwait(false) || requestStream.Current.BodyCase != AgentMessage.BodyOneofCase.Register)
        {
            await responseStream.WriteAsync(Rejected("The first message must be Register."), ct).ConfigureAwait(false);
            return;
        }
        var reg = requestStream.Current.Register;
        var (stored, id, rejection) = await RegisterAsync(reg, ct).ConfigureAwait(false);
        if (stored is null)
        {
            LogRejected(logger, reg.AgentId, rejection!);
            await responseStream.WriteAsync(Rejected(rejection!), ct).ConfigureAwait(false);
            return;
        }
        var instanceArn = stored.Instance.ContainerInstanceArn!;
        await responseStream.WriteAsync(new ServerMessage
        {
            Registered = new Registered { ContainerInstanceArn = instanceArn, ClusterArn = arns.Cluster(stored.Cluster) },
        }, ct).ConfigureAwait(false);
        LogRegistered(logger, instanceArn, reg.AgentId);

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var connection = new Connection(time.GetUtcNow());
        _connections[id] = connection;
        try
        {
            var reader = ReadAsync(requestStream, connection, cts.Token);
            var sender = SendAsync(responseStream, instanceArn, cts.Token);
            var watchdog = WatchAsync(connection, instanceArn, cts.Token);
            await Task.WhenAny(reader, sender, watchdog).ConfigureAwait(false);
            await cts.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(Quiet(reader), Quiet(sender), Quiet(watchdog)).ConfigureAwait(false);
            // Surface a real failure of the reader or sender (not the cancellation we just caused).
            foreach (var t in new[] { reader, sender })
            {
                if (t.IsFaulted && t.Exception!.InnerException is not (OperationCanceledException or IOException or RpcException))
                {
                    LogStreamFailed(logger, t.Exception.InnerException!, instanceArn);
                }
            }
        }
        finally
        {
            if (_connections.TryRemove(new KeyValuePair<string, Connection>(id, connection)))
            {
                await SetConnectedAsync(stored.Cluster, id, false, CancellationToken.None).ConfigureAwait(false);
                LogDisconnected(logger, instanceArn);
            }
        }
    }

    /// <summary>Last time each connected instance was heard from (for health reporting and tests).</summary>
    public DateTimeOffset? LastSeen(string instanceId) => _connections.TryGetValue(instanceId, out var c) ? c.LastSeen : null;

    private static async Task Quiet(Task t)
    {
        try
        {
            await t.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Observed by the caller through Task.IsFaulted.
        }
    }

    private static ServerMessage Rejected(string reason) => new() { Rejected = new RegistrationRejected { Reason = reason } };

    internal async Task<(StoredContainerInstance? Stored, string Id, string? Rejection)> RegisterAsync(Register reg, CancellationToken ct)
    {
        var clusterName = string.IsNullOrEmpty(reg.Cluster) ? "default" : Arns.NameOf(reg.Cluster);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var cluster = state.Clusters.Find(clusterName);
        if (cluster is null && clusterName == "default")
        {
            // ECS creates the default cluster on first use.
            cluster = Berth.ControlPlane.Ecs.ClusterOperations.NewCluster(arns, clusterName);
            tx.Put(state.Clusters, clusterName, cluster);
        }
        if (cluster is not { Status: "ACTIVE" })
        {
            return (null, "", "Cluster not found");
        }

        StoredContainerInstance? previous = null;
        string? id = null;
        if (!string.IsNullOrEmpty(reg.ContainerInstanceArn))
        {
            var key = TaskQueries.ScopedIdOf(clusterName, reg.ContainerInstanceArn);
            if (key.StartsWith(clusterName + "/", StringComparison.Ordinal) && state.ContainerInstances.Find(key) is { } known && known.Instance.Status != "INACTIVE")
            {
                previous = known;
                id = key[(clusterName.Length + 1)..];
            }
        }
        if (previous is null && !string.IsNullOrEmpty(reg.AgentId))
        {
            var match = state.ContainerInstances.All.FirstOrDefault(v => v.Value.Cluster == clusterName && v.Value.AgentId == reg.AgentId && v.Value.Instance.Status != "INACTIVE");
            if (match is not null)
            {
                previous = match.Value;
                id = match.Id[(clusterName.Length + 1)..];
            }
        }
        id ??= Guid.NewGuid().ToString("N");

        var attributes = reg.Attributes.Select(kv => new EcsAttribute { Name = kv.Key, Value = kv.Value }).ToList();
        // Keep attributes set through PutAttributes; the agent's own ones are refreshed.
        foreach (var a in previous?.Instance.Attributes ?? [])
        {
            if (a.Name is not null && !reg.Attributes.ContainsKey(a.Name))
            {
                attributes.Add(a);
            }
        }
        var ports = TaskQueries.EcsReservedPorts.Concat(reg.ReservedPorts.Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture))).Distinct().ToList();
        var udp = reg.ReservedUdpPorts.Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)).Distinct().ToList();
        var now = time.GetUtcNow();
        var instance = new ContainerInstance
        {
            ContainerInstanceArn = arns.ContainerInstance(clusterName, id),
            Ec2InstanceId = reg.Hostname,
            Status = previous?.Instance.Status is "DRAINING" ? "DRAINING" : "ACTIVE",
            AgentConnected = true,
            RegisteredAt = previous?.Instance.RegisteredAt ?? now,
            Version = (previous?.Instance.Version ?? 0) + 1,
            VersionInfo = new Berth.Aws.Ecs.VersionInfo
            {
                AgentVersion = reg.AgentVersion,
                AgentHash = reg.AgentHash,
                DockerVersion = "DockerVersion: " + reg.DockerVersion,
            },
            RegisteredResources =
            [
                new Resource { Name = "CPU", Type = "INTEGER", IntegerValue = reg.CpuUnits, DoubleValue = 0, LongValue = 0 },
                new Resource { Name = "MEMORY", Type = "INTEGER", IntegerValue = (int)Math.Min(reg.MemoryMib, int.MaxValue), DoubleValue = 0, LongValue = 0 },
                new Resource { Name = "PORTS", Type = "STRINGSET", StringSetValue = ports, DoubleValue = 0, LongValue = 0, IntegerValue = 0 },
                new Resource { Name = "PORTS_UDP", Type = "STRINGSET", StringSetValue = udp, DoubleValue = 0, LongValue = 0, IntegerValue = 0 },
            ],
            Attributes = attributes,
            Tags = previous?.Instance.Tags,
            Attachments = [],
            AgentUpdateStatus = null,
        };
        var stored = new StoredContainerInstance { Cluster = clusterName, AgentId = reg.AgentId, Instance = instance };
        tx.Put(state.ContainerInstances, EcsState.ScopedId(clusterName, id), stored);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return (stored, id, null);
    }

    private async Task SetConnectedAsync(string cluster, string id, bool connected, CancellationToken ct)
    {
        try
        {
            await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
            if (state.ContainerInstances.Find(EcsState.ScopedId(cluster, id)) is { } s && s.Instance.AgentConnected != connected)
            {
                var copy = state.ContainerInstances.Clone(s);
                copy.Instance.AgentConnected = connected;
                copy.Instance.Version = (copy.Instance.Version ?? 0) + 1;
                tx.Put(state.ContainerInstances, EcsState.ScopedId(cluster, id), copy);
                await tx.CommitAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogStreamFailed(logger, e, id);
        }
    }

    private async Task ReadAsync(IAsyncStreamReader<AgentMessage> stream, Connection connection, CancellationToken ct)
    {
        while (await stream.MoveNext(ct).ConfigureAwait(false))
        {
            connection.LastSeen = time.GetUtcNow();
            var m = stream.Current;
            if (m.BodyCase == AgentMessage.BodyOneofCase.TaskStatus)
            {
                await ApplyStatusAsync(m.TaskStatus, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The whole desired set for the instance, whenever it changes and at least every 30 s.</summary>
    private async Task SendAsync(IServerStreamWriter<ServerMessage> stream, string instanceArn, CancellationToken ct)
    {
        string? sentFingerprint = null;
        var sentAt = DateTimeOffset.MinValue;
        while (!ct.IsCancellationRequested)
        {
            var gen = state.Generation;
            var tasks = state.Tasks.All.Select(v => v.Value)
                .Where(t => t.ContainerInstanceArn == instanceArn && t.LastStatus != "STOPPED")
                .OrderBy(t => t.TaskArn, StringComparer.Ordinal)
                .ToList();
            var fingerprint = string.Join('\n', tasks.Select(t => t.TaskArn + " " + t.DesiredStatus));
            var now = time.GetUtcNow();
            if (fingerprint != sentFingerprint || now - sentAt >= ResendInterval)
            {
                var desired = new DesiredTasks();
                foreach (var t in tasks)
                {
                    var def = TaskQueries.DefinitionOf(state, t);
                    var d = new DesiredTask
                    {
                        TaskArn = t.TaskArn,
                        DesiredStatus = t.DesiredStatus ?? "RUNNING",
                        TaskJson = JsonSerializer.Serialize(t, EcsJsonContext.Default.EcsTask),
                        TaskDefinitionJson = def is null ? "" : JsonSerializer.Serialize(def, EcsJsonContext.Default.TaskDefinition),
                    };
                    if (t.DesiredStatus != "STOPPED")
                    {
                        d.RegistryAuth.AddRange(RegistryAuthFor(def));
                    }
                    desired.Tasks.Add(d);
                }
                await stream.WriteAsync(new ServerMessage { DesiredTasks = desired }, ct).ConfigureAwait(false);
                sentFingerprint = fingerprint;
                sentAt = now;
            }
            await state.WaitForChangeAsync(gen, WakeInterval, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Pull credentials for every distinct container image of <paramref name="def"/> the provider knows.</summary>
    internal IEnumerable<RegistryAuth> RegistryAuthFor(TaskDefinition? def)
    {
        var images = (def?.ContainerDefinitions ?? []).Select(c => c.Image).OfType<string>().Distinct(StringComparer.Ordinal);
        foreach (var image in images)
        {
            RegistryCredential? c;
            try
            {
                c = credentials.ForImage(image);
            }
            catch (Exception e)
            {
                // Without credentials the pull fails and says why; the task list must still reach the agent.
                LogCredentialsFailed(logger, e, image);
                continue;
            }
            if (c is not null)
            {
                yield return new RegistryAuth { Image = image, ServerAddress = c.ServerAddress, Username = c.Username, Password = c.Password };
            }
        }
    }

    /// <summary>Ends the stream when the agent has been silent for longer than AgentTimeout.</summary>
    private async Task WatchAsync(Connection connection, string instanceArn, CancellationToken ct)
    {
        var period = options.AgentTimeout / 4 > TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : options.AgentTimeout / 4;
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(period, time, ct).ConfigureAwait(false);
            if (time.GetUtcNow() - connection.LastSeen > options.AgentTimeout)
            {
                LogTimedOut(logger, instanceArn);
                return;
            }
        }
    }

    internal async Task ApplyStatusAsync(TaskStatusReport report, CancellationToken ct)
    {
        if (!Arns.TryParse(report.TaskArn, out var parsed) || parsed.ResourceType != "task")
        {
            return;
        }
        var slash = parsed.Path.IndexOf('/');
        if (slash <= 0)
        {
            return;
        }
        var key = EcsState.ScopedId(parsed.Path[..slash], parsed.Path[(slash + 1)..]);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        if (state.Tasks.Find(key) is not { } current || current.LastStatus == "STOPPED")
        {
            return;
        }
        var task = state.Tasks.Clone(current);
        var now = time.GetUtcNow();
        if (report.LastStatus is "PENDING" or "ACTIVATING" or "RUNNING" or "DEACTIVATING" or "STOPPING" or "DEPROVISIONING" or "STOPPED")
        {
            task.LastStatus = report.LastStatus;
        }
        task.PullStartedAt = Ms(report.PullStartedAt) ?? task.PullStartedAt;
        task.PullStoppedAt = Ms(report.PullStoppedAt) ?? task.PullStoppedAt;
        task.StartedAt = Ms(report.StartedAt) ?? task.StartedAt;
        task.ExecutionStoppedAt = Ms(report.ExecutionStoppedAt) ?? task.ExecutionStoppedAt;
        task.Containers ??= [];
        foreach (var c in report.Containers)
        {
            var target = task.Containers.FirstOrDefault(x => x.Name == c.Name);
            if (target is null)
            {
                target = new Container { Name = c.Name, TaskArn = task.TaskArn };
                task.Containers.Add(target);
            }
            if (!string.IsNullOrEmpty(c.RuntimeId))
            {
                target.RuntimeId = c.RuntimeId;
            }
            if (!string.IsNullOrEmpty(c.LastStatus))
            {
                target.LastStatus = c.LastStatus;
            }
            if (c.HasExitCode)
            {
                target.ExitCode = c.ExitCode;
            }
            if (!string.IsNullOrEmpty(c.Reason))
            {
                target.Reason = c.Reason;
            }
            if (!string.IsNullOrEmpty(c.ImageDigest))
            {
                target.ImageDigest = c.ImageDigest;
            }
            target.NetworkBindings = c.NetworkBindings.Select(b => new NetworkBinding
            {
                BindIP = b.BindIp,
                ContainerPort = b.ContainerPort,
                HostPort = b.HostPort,
                Protocol = string.IsNullOrEmpty(b.Protocol) ? "tcp" : b.Protocol,
            }).ToList();
        }
        if (task.LastStatus == "RUNNING" && task.Connectivity is null)
        {
            task.Connectivity = "CONNECTED";
            task.ConnectivityAt = now;
        }
        if (!string.IsNullOrEmpty(report.StopCode) && task.DesiredStatus == "RUNNING")
        {
            task.DesiredStatus = "STOPPED";
            task.StopCode = report.StopCode;
            task.StoppedReason = string.IsNullOrEmpty(report.StoppedReason) ? null : report.StoppedReason;
            task.StoppingAt = now;
        }
        else if (!string.IsNullOrEmpty(report.StoppedReason) && task.StoppedReason is null)
        {
            task.StoppedReason = report.StoppedReason;
        }
        if (task.LastStatus == "STOPPED")
        {
            task.StoppedAt ??= now;
            task.StoppingAt ??= now;
            if (task.DesiredStatus != "STOPPED")
            {
                task.DesiredStatus = "STOPPED";
            }
        }
        task.Version = (task.Version ?? 0) + 1;
        tx.Put(state.Tasks, key, task);
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    private static DateTimeOffset? Ms(long unixMs) => unixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(unixMs) : null;

    private sealed class Connection(DateTimeOffset lastSeen)
    {
        private long _ticks = lastSeen.UtcTicks;

        public DateTimeOffset LastSeen
        {
            get => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
            set => Interlocked.Exchange(ref _ticks, value.UtcTicks);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} registered as {InstanceArn}")]
    private static partial void LogRegistered(ILogger logger, string instanceArn, string agentId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {AgentId} registration rejected: {Reason}")]
    private static partial void LogRejected(ILogger logger, string agentId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent of {InstanceArn} disconnected")]
    private static partial void LogDisconnected(ILogger logger, string instanceArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent of {InstanceArn} silent for longer than the agent timeout; closing its stream")]
    private static partial void LogTimedOut(ILogger logger, string instanceArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No registry credentials for {Image}: the provider failed")]
    private static partial void LogCredentialsFailed(ILogger logger, Exception exception, string image);

    [LoggerMessage(Level = LogLevel.Error, Message = "Agent stream of {InstanceArn} failed")]
    private static partial void LogStreamFailed(ILogger logger, Exception exception, string instanceArn);
}
