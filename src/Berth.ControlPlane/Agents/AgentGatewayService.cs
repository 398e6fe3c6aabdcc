using System.Collections.Concurrent;
using System.Threading.Channels;
using Berth.Aws.Ecs;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.Core.Agent;
using Berth.Core.Logs;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Berth.ControlPlane.Agents;

/// <summary>
/// Server side of the agent stream (see agent.proto): registration with proof of identity, a snapshot
/// of the instance's desired state on every (re)connect, then deltas whenever one of the instance's own
/// tasks changes (and nothing otherwise), and the agent's reports applied through <see cref="TaskLifecycle"/>.
/// </summary>
internal sealed partial class AgentGatewayService(
    EcsState state, TaskLifecycle tasks, InstanceLifecycle instances, Arns arns, TimeProvider time, ControlPlaneOptions options, IRegistryCredentialProvider credentials, ILogger<AgentGatewayService> logger,
    AgentPki? pki = null,
    ILogIngest? logIngest = null,
    Aws.Auth.TaskRoleCredentialIssuer? roleCredentials = null)
    : AgentGateway.AgentGatewayBase
{
    // Instance key -> the connection currently serving it, so an old stream ending late cannot
    // mark a freshly reconnected agent as disconnected.
    private readonly ConcurrentDictionary<string, Connection> _connections = new(StringComparer.Ordinal);

    private static readonly TimeSpan StreamDrainTimeout = TimeSpan.FromSeconds(5);

    public override async Task Connect(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<ServerMessage> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct).ConfigureAwait(false) || requestStream.Current.BodyCase != AgentMessage.BodyOneofCase.Register)
        {
            await responseStream.WriteAsync(Rejected("The first message must be Register."), ct).ConfigureAwait(false);
            return;
        }
        var reg = requestStream.Current.Register;
        if (options.AgentTls && CertificateRefusal(context, reg) is { } refusal)
        {
            LogRejected(logger, reg.AgentId, refusal);
            await responseStream.WriteAsync(Rejected(refusal), ct).ConfigureAwait(false);
            return;
        }
        var outcome = await RegisterAsync(reg, ct, sameAgentOnly: options.AgentTls).ConfigureAwait(false);
        if (outcome.Stored is not { } stored)
        {
            LogRejected(logger, reg.AgentId, outcome.Rejection!);
            await responseStream.WriteAsync(Rejected(outcome.Rejection!), ct).ConfigureAwait(false);
            return;
        }
        var instanceArn = InstanceViews.Arn(arns, stored);
        var key = outcome.Key;

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // The desired-state sender and the log acknowledgements share the response stream, which takes one write at a time.
        var writer = new SerialWriter(responseStream);
        var connection = new Connection(time.GetUtcNow());
        connection.OnClose = cts.Cancel;
        // The registration recorded the instance connected: from here on the finally below must record its end,
        // even if the agent is gone before it hears the answer. Install this stream before closing the one it
        // replaces, so the old one's end finds itself replaced and leaves the record alone.
        Connection? previous = null;
        _connections.AddOrUpdate(key, connection, (_, old) =>
        {
            previous = old;
            return connection;
        });
        previous?.Close();
        try
        {
            await writer.WriteAsync(new ServerMessage
            {
                Registered = new Registered { ContainerInstanceArn = instanceArn, ClusterArn = arns.Cluster(stored.Cluster), AgentSecret = outcome.NewSecret ?? "" },
            }, ct).ConfigureAwait(false);
            LogRegistered(logger, instanceArn, reg.AgentId);
            // An old stream that ended on its own just before this one was installed may have recorded the instance
            // as disconnected after the registration recorded it connected: record the current view again.
            await instances.SetConnectedAsync(key, () => _connections.ContainsKey(key), ct).ConfigureAwait(false);

            var logs = Channel.CreateBounded<LogBatch>(new BoundedChannelOptions(LogQueueCapacity) { SingleReader = true, SingleWriter = true });
            var reader = ReadAsync(requestStream, key, connection, logs.Writer, writer, cts.Token);
            var sender = SendAsync(writer, key, reg.KnownTaskArns, connection, cts.Token);
            var watchdog = WatchAsync(connection, instanceArn, options.AgentTls ? reg.AgentId : null, cts.Token);
            var shipper = IngestAsync(logs.Reader, writer, instanceArn, cts.Token);
            await Task.WhenAny(reader, sender, watchdog, shipper).ConfigureAwait(false);
            await cts.CancelAsync().ConfigureAwait(false);
            // A write stuck on a half-open connection must not keep the instance marked connected: wait a
            // bounded time for the loops to notice the cancellation, then record the disconnect regardless.
            var ended = Task.WhenAll(Quiet(reader), Quiet(sender), Quiet(watchdog), Quiet(shipper));
            using (var drain = new CancellationTokenSource())
            {
                if (await Task.WhenAny(ended, Task.Delay(StreamDrainTimeout, drain.Token)).ConfigureAwait(false) != ended)
                {
                    LogDrainTimedOut(logger, instanceArn);
                }
                await drain.CancelAsync().ConfigureAwait(false);
            }
            // Surface a real failure of the reader or sender (not the cancellation we just caused).
            foreach (var t in new[] { reader, sender, shipper })
            {
                if (t.IsFaulted && t.Exception!.InnerException is not (OperationCanceledException or IOException or RpcException))
                {
                    LogStreamFailed(logger, t.Exception.InnerException!, instanceArn);
                }
            }
        }
        finally
        {
            if (_connections.TryRemove(new KeyValuePair<string, Connection>(key, connection)))
            {
                // False unless a newer stream has been installed meanwhile (then that one's view stands).
                await instances.SetConnectedAsync(key, () => _connections.ContainsKey(key), CancellationToken.None).ConfigureAwait(false);
                LogDisconnected(logger, instanceArn);
            }
        }
    }

    /// <summary>Last time each connected instance ("{cluster}/{id}") was heard from (for health reporting and tests).</summary>
    public DateTimeOffset? LastSeen(string instanceKey) => _connections.TryGetValue(instanceKey, out var c) ? c.LastSeen : null;

    /// <summary>The desired-state generation the instance's agent last acknowledged (0: none yet).</summary>
    public long AckedGeneration(string instanceKey) => _connections.TryGetValue(instanceKey, out var c) ? Interlocked.Read(ref c.Acked) : 0;

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

    /// <summary>Registration through the domain layer (kept here for the gateway's tests).</summary>
    internal Task<InstanceLifecycle.Registration> RegisterAsync(Register reg, CancellationToken ct, bool sameAgentOnly = false)
        => instances.RegisterAgentAsync(reg, ct, sameAgentOnly);

    /// <summary>
    /// With TLS on, why this stream may not register as <paramref name="reg"/>'s agent (null: it may): the client
    /// certificate must be this CA's, issued last to that very agent id, and not revoked. Replaying another agent's
    /// id, ARN and secret therefore fails without that agent's key.
    /// </summary>
    private string? CertificateRefusal(ServerCallContext context, Register reg)
    {
        if (pki is null)
        {
            return "this server has no agent CA";
        }
        var http = context.GetHttpContext();
        if (!http.Request.IsHttps)
        {
            return "the agent port requires TLS";
        }
        return pki.Authorize(http.Connection.ClientCertificate, reg.AgentId);
    }

    /// <summary>
    /// An agent that holds the join token and no certificate yet: signs a client certificate for its id (see
    /// <see cref="AgentPki.IssueAgentCertificate"/>). Only over TLS, where the agent verified this server by the CA
    /// fingerprint in its token before sending the secret.
    /// </summary>
    public override Task<CaCertificateResponse> CaCertificate(CaCertificateRequest request, ServerCallContext context)
    {
        if (pki is null || !options.AgentTls)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "this server's agent port is not TLS"));
        }
        return Task.FromResult(new CaCertificateResponse { Certificate = Google.Protobuf.ByteString.CopyFrom(pki.CaPublic.RawData) });
    }

    public override Task<JoinResponse> Join(JoinRequest request, ServerCallContext context)
    {
        if (pki is null || !options.AgentTls || !context.GetHttpContext().Request.IsHttps)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "this server's agent port is not TLS: agents on loopback connect without joining"));
        }
        try
        {
            using var cert = pki.IssueAgentCertificate(request.JoinSecret, request.AgentId, request.CertificateRequest.Span);
            LogJoined(logger, request.AgentId, cert.SerialNumber);
            return Task.FromResult(new JoinResponse
            {
                Certificate = Google.Protobuf.ByteString.CopyFrom(cert.RawData),
                CaCertificate = Google.Protobuf.ByteString.CopyFrom(pki.CaPublic.RawData),
            });
        }
        catch (AgentJoinRefusedException e)
        {
            LogJoinRefused(logger, request.AgentId, e.Message);
            throw new RpcException(new Status(StatusCode.PermissionDenied, e.Message));
        }
    }

    private async Task ReadAsync(IAsyncStreamReader<AgentMessage> stream, string instanceKey, Connection connection, ChannelWriter<LogBatch> logs, SerialWriter writer, CancellationToken ct)
    {
        while (await stream.MoveNext(ct).ConfigureAwait(false))
        {
            connection.LastSeen = time.GetUtcNow();
            var m = stream.Current;
            switch (m.BodyCase)
            {
                case AgentMessage.BodyOneofCase.TaskStatus:
                    if (await tasks.ApplyReportAsync(instanceKey, m.TaskStatus, ct).ConfigureAwait(false) is { } ignored)
                    {
                        LogReportIgnored(logger, m.TaskStatus.TaskArn, instanceKey, ignored);
                    }
                    break;
                case AgentMessage.BodyOneofCase.Ack:
                    Interlocked.Exchange(ref connection.Acked, m.Ack.Generation);
                    break;
                case AgentMessage.BodyOneofCase.LogBatch:
                    // Appends (disk writes) run on their own loop so reports and heartbeats are not held up behind
                    // them; the agent keeps one batch per stream in flight, so the queue only fills when an agent
                    // floods, and then the reader waits (back pressure) rather than buffering without bound.
                    await logs.WriteAsync(m.LogBatch, ct).ConfigureAwait(false);
                    break;
                case AgentMessage.BodyOneofCase.RoleCredentialsRequest:
                    await writer.WriteAsync(new ServerMessage { RoleCredentials = RoleCredentialsFor(instanceKey, m.RoleCredentialsRequest) }, ct).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>A snapshot first, then a delta for every batch of changes to this instance's tasks.</summary>
    private async Task SendAsync(SerialWriter stream, string instanceKey, IEnumerable<string> knownTaskArns, Connection connection, CancellationToken ct)
    {
        var cluster = instanceKey[..instanceKey.IndexOf('/', StringComparison.Ordinal)];
        var instanceId = instanceKey[(cluster.Length + 1)..];
        var feed = state.Feeds.Of(instanceKey);
        feed.Take(); // the snapshot below covers everything marked so far

        var snapshot = new DesiredState { Generation = feed.NextGeneration(), Full = true };
        var included = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in state.TaskIndex.Get(TaskIndex.ByInstance, cluster, instanceId))
        {
            if (state.Tasks.Find(id) is { IsStopped: false } t)
            {
                snapshot.Tasks.Add(Desired(t));
                included.Add(id);
            }
        }
        foreach (var arn in knownTaskArns)
        {
            // Tasks the agent still has containers of: stopped meanwhile (keep them until cleanup) or unknown (forget them).
            var key = state.KeyOf(cluster, arn);
            if (key is not null && included.Contains(key))
            {
                continue;
            }
            if (key is not null && state.Tasks.Find(key) is { } t && t.Cluster == cluster && t.InstanceId == instanceId)
            {
                snapshot.Tasks.Add(Desired(t));
                included.Add(key);
            }
            else
            {
                snapshot.RemovedTaskArns.Add(arn);
            }
        }
        await stream.WriteAsync(new ServerMessage { Desired = snapshot }, ct).ConfigureAwait(false);

        while (!ct.IsCancellationRequested)
        {
            await feed.WaitAsync(ct).ConfigureAwait(false);
            var changed = feed.Take();
            if (changed.Count == 0)
            {
                continue;
            }
            var delta = new DesiredState { Generation = feed.NextGeneration(), Full = false };
            foreach (var id in changed)
            {
                if (state.Tasks.Find(id) is { } t && t.InstanceId == instanceId)
                {
                    delta.Tasks.Add(Desired(t));
                }
                else
                {
                    delta.RemovedTaskArns.Add(arns.Task(cluster, id[(cluster.Length + 1)..]));
                }
            }
            await stream.WriteAsync(new ServerMessage { Desired = delta }, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Hands each batch to the log store in arrival order and acknowledges it on the stream.</summary>
    private async Task IngestAsync(ChannelReader<LogBatch> batches, SerialWriter stream, string instanceArn, CancellationToken ct)
    {
        await foreach (var batch in batches.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var ack = await IngestOneAsync(batch, ct).ConfigureAwait(false);
            if (ack.Error.Length > 0)
            {
                LogBatchRefused(logger, batch.Group, batch.Stream, instanceArn, ack.Error);
            }
            await stream.WriteAsync(new ServerMessage { LogAck = ack }, ct).ConfigureAwait(false);
        }
    }

    /// <summary>One batch: checked against PutLogEvents' bounds, then appended; never throws for bad input.</summary>
    internal async Task<LogAck> IngestOneAsync(LogBatch batch, CancellationToken ct)
    {
        var ack = new LogAck { BatchId = batch.BatchId, Group = batch.Group, Stream = batch.Stream };
        if (logIngest is null)
        {
            ack.Error = "This server has no CloudWatch Logs store; awslogs output cannot be shipped.";
            return ack;
        }
        if (LogBatchLimits.Check(batch) is { } problem)
        {
            ack.Error = problem;
            return ack;
        }
        var events = new IngestedLogEvent[batch.Lines.Count];
        for (var i = 0; i < events.Length; i++)
        {
            var l = batch.Lines[i];
            events[i] = new IngestedLogEvent(l.Sequence, l.TimestampMs, l.Message);
        }
        try
        {
            // awslogs-region picks the region's log groups, as the awslogs driver sends to that region's endpoint.
            var region = batch.Region.Length > 0 ? batch.Region : arns.Identity.Region;
            var result = await logIngest.AppendInRegionAsync(region, batch.Group, batch.Stream, batch.CreateGroup, events, ct).ConfigureAwait(false);
            ack.AcknowledgedSequence = result.AcknowledgedSequence;
            ack.Error = result.Error ?? "";
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // The agent keeps the batch and sends it again; the store's failure is this server's to log.
            LogIngestFailed(logger, e, batch.Group, batch.Stream);
            ack.Error = $"The log store failed: {e.GetBaseException().Message}";
        }
        return ack;
    }

    private DesiredTask Desired(TaskRecord t)
    {
        var d = new DesiredTask
        {
            TaskArn = arns.Task(t.Cluster, t.Id),
            DesiredStatus = t.DesiredStatus,
            LastStatus = t.LastStatus,
            LastSequence = t.LastSequence,
        };
        var def = tasks.DefinitionOf(t);
        if (def is not null)
        {
            d.Spec = TaskSpecs.Build(t, def, arns.Cluster(t.Cluster));
            d.Spec.Metadata = TaskSpecs.Metadata(t, arns);
        }
        if (t.DesiredStatus == TaskStates.Running && TaskStates.Rank(t.LastStatus) <= TaskStates.Rank(TaskStates.Pending))
        {
            d.RegistryAuth.AddRange(RegistryAuthFor(def));
        }
        if (RoleCredentialsOf(t, def) is { } role)
        {
            d.RoleCredentials = role;
        }
        return d;
    }

    /// <summary>Fresh credentials for the role of a task that is not stopped; null when it has no role (or there is no issuer).</summary>
    private RoleCredentials? RoleCredentialsOf(TaskRecord t, TaskDefinition? def)
    {
        if (roleCredentials is null || t.IsStopped || TaskSpecs.RoleOf(t, def) is not { } role)
        {
            return null;
        }
        var c = roleCredentials.Issue(role, arns.Task(t.Cluster, t.Id));
        return new RoleCredentials
        {
            TaskArn = c.TaskArn,
            RoleArn = c.RoleArn,
            AccessKeyId = c.AccessKeyId,
            SecretAccessKey = c.SecretAccessKey,
            SessionToken = c.Token,
            ExpirationMs = c.Expiration.ToUnixTimeMilliseconds(),
        };
    }

    /// <summary>The agent's refresh: credentials for each named task this instance runs that has a role and is not stopped.</summary>
    internal RoleCredentialsUpdate RoleCredentialsFor(string instanceKey, RoleCredentialsRequest request)
    {
        var cluster = instanceKey[..instanceKey.IndexOf('/', StringComparison.Ordinal)];
        var instanceId = instanceKey[(cluster.Length + 1)..];
        var update = new RoleCredentialsUpdate();
        foreach (var arn in request.TaskArns.Distinct(StringComparer.Ordinal).Take(1000))
        {
            // Another instance's task gets nothing: an agent is only ever given its own tasks' credentials.
            if (state.KeyOf(cluster, arn) is { } key && state.Tasks.Find(key) is { } t && t.Cluster == cluster && t.InstanceId == instanceId
                && RoleCredentialsOf(t, tasks.DefinitionOf(t)) is { } c)
            {
                update.Credentials.Add(c);
            }
        }
        return update;
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
    private async Task WatchAsync(Connection connection, string instanceArn, string? certifiedAgentId, CancellationToken ct)
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
            if (certifiedAgentId is not null && pki is not null && pki.IsRevoked(certifiedAgentId))
            {
                LogRevoked(logger, instanceArn);
                return;
            }
        }
    }

    private const int LogQueueCapacity = 64;

    /// <summary>gRPC allows one pending write per stream: the desired-state loop and the log acknowledgements take turns.</summary>
    private sealed class SerialWriter(IServerStreamWriter<ServerMessage> inner)
    {
        private readonly SemaphoreSlim _gate = new(1, 1);

        public async Task WriteAsync(ServerMessage message, CancellationToken ct)
        {
            await _gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await inner.WriteAsync(message, ct).ConfigureAwait(false);
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    private sealed class Connection(DateTimeOffset lastSeen)
    {
        private long _ticks = lastSeen.UtcTicks;
        public long Acked;

        public Action? OnClose { get; set; }

        public DateTimeOffset LastSeen
        {
            get => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
            set => Interlocked.Exchange(ref _ticks, value.UtcTicks);
        }

        /// <summary>A newer stream took the instance over: end this one.</summary>
        public void Close()
        {
            try
            {
                OnClose?.Invoke();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} registered as {InstanceArn}")]
    private static partial void LogRegistered(ILogger logger, string instanceArn, string agentId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {AgentId} registration rejected: {Reason}")]
    private static partial void LogRejected(ILogger logger, string agentId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} joined; client certificate serial {Serial}")]
    private static partial void LogJoined(ILogger logger, string agentId, string serial);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {AgentId} join refused: {Reason}")]
    private static partial void LogJoinRefused(ILogger logger, string agentId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent of {InstanceArn} was revoked; closing its stream")]
    private static partial void LogRevoked(ILogger logger, string instanceArn);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent of {InstanceArn} disconnected")]
    private static partial void LogDisconnected(ILogger logger, string instanceArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent of {InstanceArn} silent for longer than the agent timeout; closing its stream")]
    private static partial void LogTimedOut(ILogger logger, string instanceArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent stream of {InstanceArn} did not end within 5 s of being closed; recording the disconnect anyway")]
    private static partial void LogDrainTimedOut(ILogger logger, string instanceArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No registry credentials for {Image}: the provider failed")]
    private static partial void LogCredentialsFailed(ILogger logger, Exception exception, string image);

    [LoggerMessage(Level = LogLevel.Error, Message = "Agent stream of {InstanceArn} failed")]
    private static partial void LogStreamFailed(ILogger logger, Exception exception, string instanceArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Log batch for {Group}/{Stream} from {InstanceArn} not stored: {Error}")]
    private static partial void LogBatchRefused(ILogger logger, string group, string stream, string instanceArn, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Log store failed to append to {Group}/{Stream}")]
    private static partial void LogIngestFailed(ILogger logger, Exception exception, string group, string stream);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Report for {TaskArn} from {InstanceKey} ignored: {Why}")]
    private static partial void LogReportIgnored(ILogger logger, string taskArn, string instanceKey, string why);
}
