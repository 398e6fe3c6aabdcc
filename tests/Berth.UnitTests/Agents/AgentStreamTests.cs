using System.Threading.Channels;
using Berth.Aws.Ecs;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using Berth.Core.Agent;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.UnitTests.Agents;

/// <summary>Drives AgentGatewayService.Connect through in-memory streams, as an agent would over gRPC.</summary>
public sealed class AgentStreamTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Connect_FirstMessageNotRegister_RepliesRejected()
    {
        await using var f = new EcsFixture();
        var agent = new FakeStreams();
        agent.Send(new AgentMessage { Heartbeat = new Heartbeat { Sequence = 1 } });

        await f.Gateway.Connect(agent.Reader, agent.Writer, new FakeContext(CancellationToken.None)).WaitAsync(Timeout);

        Assert.Equal(ServerMessage.BodyOneofCase.Rejected, (await agent.NextAsync()).BodyCase);
    }

    [Fact]
    public async Task Connect_RegisterThenRunTask_SendsDesiredTasksAndAppliesReports()
    {
        await using var f = new EcsFixture();
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        var agent = new FakeStreams();
        using var cts = new CancellationTokenSource();
        agent.Send(new AgentMessage { Register = EcsFixture.Registration() });
        var call = f.Gateway.Connect(agent.Reader, agent.Writer, new FakeContext(cts.Token));

        var registered = await agent.NextAsync();
        Assert.Equal(ServerMessage.BodyOneofCase.Registered, registered.BodyCase);
        Assert.Empty((await agent.NextAsync()).Desired.Tasks);

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        var taskArn = run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        var desired = (await agent.NextAsync()).Desired.Tasks.Single();
        Assert.Equal(taskArn, desired.TaskArn);
        Assert.Equal("RUNNING", desired.DesiredStatus);
        Assert.Equal("web", desired.Spec.Family);
        Assert.Equal("web", desired.Spec.Containers.Single().Name);
        Assert.Equal(80, desired.Spec.Containers.Single().PortMappings.Single().ContainerPort);

        agent.Send(new AgentMessage { TaskStatus = new TaskStatusReport { TaskArn = taskArn, LastStatus = "RUNNING" } });
        var key = EcsState.ScopedId("default", taskArn[(taskArn.LastIndexOf('/') + 1)..]);
        await WaitForAsync(() => f.State.Tasks.Find(key)?.LastStatus == "RUNNING");

        await f.CallAsync("StopTask", $$"""{"task":"{{taskArn}}"}""");
        Assert.Equal("STOPPED", (await agent.NextAsync()).Desired.Tasks.Single().DesiredStatus);

        // The agent hangs up: the instance is marked disconnected.
        agent.Complete();
        await call.WaitAsync(Timeout);
        Assert.False(f.State.ContainerInstances.All.Single().Value.AgentConnected);
    }

    [Fact]
    public async Task Connect_TaskWithRegistryImages_DesiredTaskCarriesCredentialsOnlyForKnownImages()
    {
        var provider = new FakeCredentials(image => image.StartsWith("localhost:4566/", StringComparison.Ordinal)
            ? new RegistryCredential("localhost:4566", "AWS", "token-for-" + image) : null);
        await using var f = new EcsFixture(credentials: provider);
        var def = EcsFixture.Web();
        def.ContainerDefinitions![0].Image = "localhost:4566/app:1";
        def.ContainerDefinitions.Add(new ContainerDefinition { Name = "side", Image = "busybox", Memory = 16, Essential = false });
        def.ContainerDefinitions.Add(new ContainerDefinition { Name = "side2", Image = "localhost:4566/app:1", Memory = 16, Essential = false });
        await f.AddTaskDefinitionAsync("web", 1, def);
        var agent = new FakeStreams();
        using var cts = new CancellationTokenSource();
        agent.Send(new AgentMessage { Register = EcsFixture.Registration() });
        var call = f.Gateway.Connect(agent.Reader, agent.Writer, new FakeContext(cts.Token));
        Assert.Equal(ServerMessage.BodyOneofCase.Registered, (await agent.NextAsync()).BodyCase);
        Assert.Empty((await agent.NextAsync()).Desired.Tasks);

        await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        var desired = (await agent.NextAsync()).Desired.Tasks.Single();

        var auth = Assert.Single(desired.RegistryAuth); // once per distinct image, none for busybox
        Assert.Equal(("localhost:4566/app:1", "localhost:4566", "AWS", "token-for-localhost:4566/app:1"), (auth.Image, auth.ServerAddress, auth.Username, auth.Password));
        Assert.Equal(["busybox", "localhost:4566/app:1"], provider.Asked.Order(StringComparer.Ordinal).Distinct());
        await cts.CancelAsync();
        await call.WaitAsync(Timeout);
    }

    [Fact]
    public async Task RegistryAuthFor_ProviderThrows_SkipsThatImage()
    {
        await using var f = new EcsFixture(credentials: new FakeCredentials(image => image == "bad"
            ? throw new InvalidOperationException("boom") : new RegistryCredential("r:1", "AWS", "t")));
        var def = EcsFixture.Web();
        def.ContainerDefinitions!.Add(new ContainerDefinition { Name = "b", Image = "bad" });

        var auths = f.Gateway.RegistryAuthFor(def).ToList();

        Assert.Equal(["busybox"], auths.Select(a => a.Image));
        Assert.Empty(f.Gateway.RegistryAuthFor(null));
    }

    [Fact]
    public void AddBerthControlPlane_ProviderRegisteredBefore_IsKept()
    {
        var mine = new FakeCredentials(_ => null);
        var services = new ServiceCollection().AddSingleton<IRegistryCredentialProvider>(mine);
        services.AddBerthControlPlane(new ControlPlaneOptions { DataDirectory = "/nonexistent" });
        using var withRegistry = services.BuildServiceProvider();
        Assert.Same(mine, withRegistry.GetRequiredService<IRegistryCredentialProvider>());

        using var alone = new ServiceCollection().AddBerthControlPlane(new ControlPlaneOptions { DataDirectory = "/nonexistent" }).BuildServiceProvider();
        Assert.Null(alone.GetRequiredService<IRegistryCredentialProvider>().ForImage("localhost:4566/app:1"));
    }

    [Fact]
    public async Task Connect_AgentSilentLongerThanTimeout_EndsStreamAndMarksDisconnected()
    {
        await using var f = new EcsFixture(agentTimeout: TimeSpan.FromMilliseconds(300));
        var agent = new FakeStreams();
        agent.Send(new AgentMessage { Register = EcsFixture.Registration() });

        // Nothing more is sent: the watchdog must end the call on its own.
        await f.Gateway.Connect(agent.Reader, agent.Writer, new FakeContext(CancellationToken.None)).WaitAsync(Timeout);

        Assert.Equal(ServerMessage.BodyOneofCase.Registered, (await agent.NextAsync()).BodyCase);
        Assert.False(f.State.ContainerInstances.All.Single().Value.AgentConnected);
    }

    [Fact]
    public async Task Connect_AgentBackAfterItsHostWasLost_SnapshotListsItsTasksAsStopped()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        await using var f = new EcsFixture(time: time);
        using var sweeper = new Berth.ControlPlane.Domain.LostHostSweeper(f.Tasks, new ControlPlaneOptions { DataDirectory = "/nonexistent", AgentGrace = TimeSpan.FromSeconds(60) },
            time, Microsoft.Extensions.Logging.Abstractions.NullLogger<Berth.ControlPlane.Domain.LostHostSweeper>.Instance);
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        var first = new FakeStreams();
        first.Send(new AgentMessage { Register = EcsFixture.Registration() });
        var call = f.Gateway.Connect(first.Reader, first.Writer, new FakeContext(CancellationToken.None));
        var registered = (await first.NextAsync()).Registered;
        Assert.NotEmpty(registered.AgentSecret);
        await first.NextAsync(); // the empty snapshot
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        var taskArn = run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        await first.NextAsync();
        first.Send(new AgentMessage { TaskStatus = new TaskStatusReport { TaskArn = taskArn, LastStatus = "RUNNING", Sequence = 1 } });
        var key = EcsState.ScopedId("default", taskArn[(taskArn.LastIndexOf('/') + 1)..]);
        await WaitForAsync(() => f.State.Tasks.Find(key)?.LastStatus == "RUNNING");

        // The agent's process dies; its host stays silent past the grace.
        first.Complete();
        await call.WaitAsync(Timeout);
        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(1, await sweeper.ExpireDueAsync(CancellationToken.None));

        // It comes back still holding the task's containers: the snapshot tells it the task is STOPPED.
        var again = new FakeStreams();
        var register = EcsFixture.Registration();
        register.AgentSecret = registered.AgentSecret;
        register.ContainerInstanceArn = registered.ContainerInstanceArn;
        register.KnownTaskArns.Add(taskArn);
        again.Send(new AgentMessage { Register = register });
        var second = f.Gateway.Connect(again.Reader, again.Writer, new FakeContext(CancellationToken.None));
        var reply = await again.NextAsync();
        Assert.Equal(ServerMessage.BodyOneofCase.Registered, reply.BodyCase);
        var snapshot = (await again.NextAsync()).Desired;
        Assert.True(snapshot.Full);
        var listed = Assert.Single(snapshot.Tasks);
        Assert.Equal(taskArn, listed.TaskArn);
        Assert.Equal("STOPPED", listed.DesiredStatus);
        Assert.Equal("STOPPED", listed.LastStatus);
        again.Complete();
        await second.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Connect_OldStreamEndsAfterTheAgentReconnected_InstanceStaysConnected()
    {
        await using var f = new EcsFixture();
        var first = new FakeStreams();
        first.Send(new AgentMessage { Register = EcsFixture.Registration() });
        var firstCall = f.Gateway.Connect(first.Reader, first.Writer, new FakeContext(CancellationToken.None));
        var registered = (await first.NextAsync()).Registered;

        // The agent reconnects on a new stream while the server still holds the old one.
        var second = new FakeStreams();
        var again = EcsFixture.Registration();
        again.AgentSecret = registered.AgentSecret;
        again.ContainerInstanceArn = registered.ContainerInstanceArn;
        second.Send(new AgentMessage { Register = again });
        var secondCall = f.Gateway.Connect(second.Reader, second.Writer, new FakeContext(CancellationToken.None));
        Assert.Equal(ServerMessage.BodyOneofCase.Registered, (await second.NextAsync()).BodyCase);

        // The old stream ends late (it was replaced): the instance stays connected, so its grace never starts.
        first.Complete();
        await firstCall.WaitAsync(Timeout);
        Assert.True(f.State.ContainerInstances.All.Single().Value.AgentConnected);

        second.Complete();
        await secondCall.WaitAsync(Timeout);
        Assert.False(f.State.ContainerInstances.All.Single().Value.AgentConnected);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(20);
        }
    }

    private sealed class FakeCredentials(Func<string, RegistryCredential?> answer) : IRegistryCredentialProvider
    {
        public System.Collections.Concurrent.ConcurrentQueue<string> Asked { get; } = new();

        public RegistryCredential? ForImage(string image)
        {
            Asked.Enqueue(image);
            return answer(image);
        }
    }

    private sealed class FakeStreams
    {
        private readonly Channel<AgentMessage> _in = Channel.CreateUnbounded<AgentMessage>();
        private readonly Channel<ServerMessage> _out = Channel.CreateUnbounded<ServerMessage>();

        public FakeStreams()
        {
            Reader = new ChannelReaderStream(_in.Reader);
            Writer = new ChannelWriterStream(_out.Writer);
        }

        public IAsyncStreamReader<AgentMessage> Reader { get; }
        public IServerStreamWriter<ServerMessage> Writer { get; }

        public void Send(AgentMessage m) => _in.Writer.TryWrite(m);

        public void Complete() => _in.Writer.TryComplete();

        public async Task<ServerMessage> NextAsync() => await _out.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
    }

    private sealed class ChannelReaderStream(ChannelReader<AgentMessage> reader) : IAsyncStreamReader<AgentMessage>
    {
        public AgentMessage Current { get; private set; } = new();

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (!await reader.WaitToReadAsync(cancellationToken))
            {
                return false;
            }
            Current = await reader.ReadAsync(cancellationToken);
            return true;
        }
    }

    private sealed class ChannelWriterStream(ChannelWriter<ServerMessage> writer) : IServerStreamWriter<ServerMessage>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(ServerMessage message) => writer.WriteAsync(message).AsTask();

        // The default interface method refuses cancellable tokens; ASP.NET's writer honours them.
        public Task WriteAsync(ServerMessage message, CancellationToken cancellationToken) => writer.WriteAsync(message, cancellationToken).AsTask();
    }

    private sealed class FakeContext(CancellationToken ct) : ServerCallContext
    {
        protected override string MethodCore => "/berth.agent.v1.AgentGateway/Connect";
        protected override string HostCore => "localhost";
        protected override string PeerCore => "test";
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Metadata RequestHeadersCore => [];
        protected override CancellationToken CancellationTokenCore => ct;
        protected override Metadata ResponseTrailersCore => [];
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
