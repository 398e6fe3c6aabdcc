using System.Threading.Channels;
using Berth.Core.Agent;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace Berth.Agent;

/// <summary>
/// One container instance's link to the control plane, the same for Docker and simulated engines: registers (with
/// the identity's ARN and secret), applies each desired state to the engine and acknowledges its generation,
/// forwards the engine's reports once the first snapshot is applied, beats its heart, and reconnects for ever with
/// a capped, jittered backoff.
/// </summary>
internal sealed partial class AgentConnection(
    AgentIdentity identity,
    ITaskEngine engine,
    Func<CancellationToken, Task<Register>> describeHost,
    AgentConnection.ChannelSource channels,
    HeartbeatWheel heartbeats,
    TimeProvider time,
    Random random,
    ILogger logger,
    bool quiet = false,
    Logs.LogShipper? logs = null,
    Metadata.RoleCredentialCache? roles = null)
{
    /// <summary>Gives the channel for one connection attempt; <c>Owned</c>: dispose it when the attempt ends.</summary>
    public delegate Task<(GrpcChannel Channel, bool Owned)> ChannelSource(CancellationToken ct);

    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan FirstRejectedBackoff = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxRejectedBackoff = TimeSpan.FromSeconds(60);

    /// <summary>The container instance ARN once registered.</summary>
    public string? ContainerInstanceArn => identity.ContainerInstanceArn;

    /// <summary>True while a stream is registered with the server.</summary>
    public bool Connected { get; private set; }

    /// <summary>Raised after each successful registration (the first and every reconnect).</summary>
    public event Action<string>? Registered;

    public async Task RunAsync(CancellationToken ct)
    {
        var backoff = FirstBackoff;
        var rejectedBackoff = FirstRejectedBackoff / 2;
        while (!ct.IsCancellationRequested)
        {
            var wait = backoff;
            try
            {
                await RunOnceAsync(() => (backoff, rejectedBackoff) = (FirstBackoff, FirstRejectedBackoff / 2), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (RegistrationRejectedException e)
            {
                // Refusals last until someone acts (creates the cluster, removes a stale identity): ask less often.
                rejectedBackoff = TimeSpan.FromTicks(Math.Min(rejectedBackoff.Ticks * 2, MaxRejectedBackoff.Ticks));
                wait = rejectedBackoff;
                var reason = e.Message.TrimEnd('.', ' ');
                if (identity.ContainerInstanceArn is { } claimed && identity.Directory is not null)
                {
                    LogRejectedClaim(logger, reason, claimed, identity.Describe, wait.TotalSeconds);
                }
                else
                {
                    LogRejected(logger, reason, wait.TotalSeconds);
                }
            }
            catch (Exception e)
            {
                wait = backoff;
                LogConnectionLost(logger, e.GetBaseException().Message, wait.TotalSeconds);
            }
            finally
            {
                Connected = false;
            }
            // Jitter: a fleet that lost its server together must not come back in one burst.
            var jittered = wait * (0.5 + random.NextDouble() * 0.5);
            try
            {
                await Task.Delay(jittered, time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
        }
    }

    private async Task RunOnceAsync(Action connected, CancellationToken ct)
    {
        var (channel, owned) = await channels(ct).ConfigureAwait(false);
        try
        {
            var client = new AgentGateway.AgentGatewayClient(channel);
            using var call = client.Connect(cancellationToken: ct);

            var register = await describeHost(ct).ConfigureAwait(false);
            register.ContainerInstanceArn = identity.ContainerInstanceArn ?? "";
            register.AgentId = identity.AgentId;
            register.AgentSecret = identity.AgentSecret ?? "";
            register.KnownTaskArns.AddRange(engine.KnownTaskArns());
            await call.RequestStream.WriteAsync(new AgentMessage { Register = register }, ct).ConfigureAwait(false);

            if (!await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
            {
                throw new InvalidOperationException("the server closed the stream before answering the registration");
            }
            var first = call.ResponseStream.Current;
            if (first.BodyCase == ServerMessage.BodyOneofCase.Rejected)
            {
                throw new RegistrationRejectedException(first.Rejected.Reason);
            }
            if (first.BodyCase != ServerMessage.BodyOneofCase.Registered)
            {
                throw new InvalidOperationException($"expected Registered, got {first.BodyCase}");
            }
            Remember(first.Registered);
            Connected = true;
            if (quiet)
            {
                LogRegisteredQuiet(logger, first.Registered.ContainerInstanceArn);
            }
            else
            {
                LogRegistered(logger, first.Registered.ContainerInstanceArn, channel.Target);
            }
            connected();
            Registered?.Invoke(first.Registered.ContainerInstanceArn);

            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var outgoing = Channel.CreateUnbounded<AgentMessage>(new UnboundedChannelOptions { SingleReader = true });
            var writer = WriteAsync(call.RequestStream, outgoing.Reader, linked.Token);
            long beats = 0;
            using var heartbeat = heartbeats.Join(() =>
            {
                roles?.RefreshDue();
                outgoing.Writer.TryWrite(new AgentMessage { Heartbeat = new Heartbeat { Sequence = Interlocked.Increment(ref beats) } });
            });
            Task? forward = null;
            // Log batches share the stream; those in flight when it ends are sent again on the next one.
            logs?.Attach(m => outgoing.Writer.TryWrite(m));
            roles?.Attach(m => outgoing.Writer.TryWrite(m));
            try
            {
                await foreach (var m in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
                {
                    if (m.BodyCase == ServerMessage.BodyOneofCase.LogAck)
                    {
                        logs?.OnAck(m.LogAck);
                        continue;
                    }
                    if (m.BodyCase == ServerMessage.BodyOneofCase.RoleCredentials)
                    {
                        foreach (var c in m.RoleCredentials.Credentials)
                        {
                            roles?.Put(c);
                        }
                        continue;
                    }
                    if (m.BodyCase != ServerMessage.BodyOneofCase.Desired)
                    {
                        continue;
                    }
                    if (roles is not null)
                    {
                        foreach (var d in m.Desired.Tasks)
                        {
                            if (d.RoleCredentials is { } c)
                            {
                                roles.Put(c);
                            }
                        }
                        foreach (var removed in m.Desired.RemovedTaskArns)
                        {
                            roles.Forget(removed);
                        }
                    }
                    engine.Apply(m.Desired);
                    outgoing.Writer.TryWrite(new AgentMessage { Ack = new DesiredAck { Generation = m.Desired.Generation } });
                    // Reports flow only after the snapshot: the engine then knows which tasks the server lists and
                    // the last sequence it applied of each.
                    forward ??= m.Desired.Full ? ForwardAsync(outgoing.Writer, linked.Token) : null;
                    if (writer.IsCompleted)
                    {
                        await writer.ConfigureAwait(false); // surfaces the write error
                    }
                }
            }
            finally
            {
                logs?.Detach();
                roles?.Attach(null);
                outgoing.Writer.TryComplete();
                await linked.CancelAsync().ConfigureAwait(false);
                await writer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (forward is not null)
                {
                    await forward.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
            }
            throw new RpcException(new Status(StatusCode.Unavailable, "the server ended the stream"));
        }
        finally
        {
            if (owned)
            {
                channel.Dispose();
            }
        }
    }

    private void Remember(Registered registered)
    {
        var changed = false;
        if (identity.ContainerInstanceArn != registered.ContainerInstanceArn)
        {
            identity.ContainerInstanceArn = registered.ContainerInstanceArn;
            changed = true;
        }
        if (registered.AgentSecret.Length > 0 && registered.AgentSecret != identity.AgentSecret)
        {
            identity.AgentSecret = registered.AgentSecret;
            changed = true;
        }
        if (changed)
        {
            identity.Save();
        }
    }

    private static async Task WriteAsync(IClientStreamWriter<AgentMessage> stream, ChannelReader<AgentMessage> outgoing, CancellationToken ct)
    {
        await foreach (var m in outgoing.ReadAllAsync(ct).ConfigureAwait(false))
        {
            await stream.WriteAsync(m, ct).ConfigureAwait(false);
        }
    }

    private async Task ForwardAsync(ChannelWriter<AgentMessage> outgoing, CancellationToken ct)
    {
        try
        {
            await foreach (var r in engine.Reports.ReadAllAsync(ct).ConfigureAwait(false))
            {
                outgoing.TryWrite(new AgentMessage { TaskStatus = r });
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private sealed class RegistrationRejectedException(string reason) : Exception(reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Registered as {ContainerInstanceArn} with {Endpoint}")]
    private static partial void LogRegistered(ILogger logger, string containerInstanceArn, string endpoint);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Registered as {ContainerInstanceArn}")]
    private static partial void LogRegisteredQuiet(ILogger logger, string containerInstanceArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection to the control plane lost ({Reason}); retrying in about {Seconds} s")]
    private static partial void LogConnectionLost(ILogger logger, string reason, double seconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "The control plane refused this agent's registration: {Reason}. Retrying in about {Seconds} s.")]
    private static partial void LogRejected(ILogger logger, string reason, double seconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "The control plane refused this agent's registration: {Reason}. This agent's identity (container instance {ContainerInstanceArn}) is kept in {IdentityFile}: to register this host as a new container instance, remove that file and restart the agent. Retrying in about {Seconds} s.")]
    private static partial void LogRejectedClaim(ILogger logger, string reason, string containerInstanceArn, string identityFile, double seconds);
}
