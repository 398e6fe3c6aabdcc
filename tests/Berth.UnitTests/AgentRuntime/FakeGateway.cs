using System.Collections.Concurrent;
using System.Threading.Channels;
using Berth.Core.Agent;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// A stand-in control plane on a loopback socket: real gRPC, scripted answers. Issues ARN ci/N and secret
/// secret-N at first registration, sends an empty snapshot (generation 1), and records everything agents send.
/// </summary>
internal sealed class FakeGateway : AgentGateway.AgentGatewayBase, IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Stream> _streams = new(StringComparer.Ordinal);
    private int _instances;
    private WebApplication? _app;

    public ConcurrentQueue<Register> Registers { get; } = new();

    public Channel<(string Instance, AgentMessage Message)> Received { get; } = Channel.CreateUnbounded<(string, AgentMessage)>();

    /// <summary>When set, answers every registration with this rejection.</summary>
    public string? RejectWith { get; set; }

    public Uri Endpoint { get; private set; } = null!;

    /// <summary>The snapshot sent after each registration (by instance ARN); empty, generation 1, by default.</summary>
    public Func<string, DesiredState> InitialSnapshot { get; set; } = _ => new DesiredState { Generation = 1, Full = true };

    public async Task StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(this);
        _app = builder.Build();
        _app.MapGrpcService<FakeGateway>();
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Endpoint = new Uri(address);
    }

    public override async Task Connect(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<ServerMessage> responseStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken) || requestStream.Current.BodyCase != AgentMessage.BodyOneofCase.Register)
        {
            return;
        }
        var reg = requestStream.Current;
        Registers.Enqueue(reg.Register);
        if (RejectWith is { } reason)
        {
            await responseStream.WriteAsync(new ServerMessage { Rejected = new RegistrationRejected { Reason = reason } });
            return;
        }
        var arn = reg.Register.ContainerInstanceArn;
        var secret = "";
        if (arn.Length == 0)
        {
            var n = Interlocked.Increment(ref _instances);
            arn = $"arn:aws:ecs:us-east-1:000000000000:container-instance/default/ci{n}";
            secret = $"secret-{n}";
        }
        using var drop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        var stream = new Stream(responseStream, drop);
        _streams[arn] = stream;
        await stream.WriteAsync(new ServerMessage { Registered = new Registered { ContainerInstanceArn = arn, ClusterArn = "arn:aws:ecs:us-east-1:000000000000:cluster/default", AgentSecret = secret } });
        await stream.WriteAsync(new ServerMessage { Desired = InitialSnapshot(arn) });
        try
        {
            while (await requestStream.MoveNext(drop.Token))
            {
                Received.Writer.TryWrite((arn, requestStream.Current));
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _streams.TryRemove(new KeyValuePair<string, Stream>(arn, stream));
        }
    }

    public Task SendAsync(string instanceArn, DesiredState desired) => _streams[instanceArn].WriteAsync(new ServerMessage { Desired = desired });

    /// <summary>Ends the instance's stream from the server side, as a server restart would.</summary>
    public void Drop(string instanceArn)
    {
        if (_streams.TryGetValue(instanceArn, out var s))
        {
            s.Drop.Cancel();
        }
    }

    /// <summary>The next message of <paramref name="kind"/> any agent sent (others are skipped).</summary>
    public async Task<(string Instance, AgentMessage Message)> NextAsync(AgentMessage.BodyOneofCase kind, Func<AgentMessage, bool>? match = null)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var m = await Received.Reader.ReadAsync(cts.Token);
            if (m.Message.BodyCase == kind && (match is null || match(m.Message)))
            {
                return m;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private sealed class Stream(IServerStreamWriter<ServerMessage> writer, CancellationTokenSource drop)
    {
        private readonly SemaphoreSlim _lock = new(1, 1);

        public CancellationTokenSource Drop { get; } = drop;

        public async Task WriteAsync(ServerMessage m)
        {
            await _lock.WaitAsync();
            try
            {
                await writer.WriteAsync(m);
            }
            finally
            {
                _lock.Release();
            }
        }
    }
}
