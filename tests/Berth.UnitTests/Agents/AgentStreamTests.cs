using System.Threading.Channels;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core.Agent;
using Grpc.Core;

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
        Assert.Empty((await agent.NextAsync()).DesiredTasks.Tasks);

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        var taskArn = run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        var desired = (await agent.NextAsync()).DesiredTasks.Tasks.Single();
        Assert.Equal(taskArn, desired.TaskArn);
        Assert.Equal("RUNNING", desired.DesiredStatus);
        Assert.Contains("\"family\":\"web\"", desired.TaskDefinitionJson, StringComparison.Ordinal);
        Assert.Contains(taskArn, desired.TaskJson, StringComparison.Ordinal);

        agent.Send(new AgentMessage { TaskStatus = new TaskStatusReport { TaskArn = taskArn, LastStatus = "RUNNING" } });
        var key = EcsState.ScopedId("default", taskArn[(taskArn.LastIndexOf('/') + 1)..]);
        await WaitForAsync(() => f.State.Tasks.Find(key)?.LastStatus == "RUNNING");

        await f.CallAsync("StopTask", $$"""{"task":"{{taskArn}}"}""");
        Assert.Equal("STOPPED", (await agent.NextAsync()).DesiredTasks.Tasks.Single().DesiredStatus);

        // The agent hangs up: the instance is marked disconnected.
        agent.Complete();
        await call.WaitAsync(Timeout);
        Assert.False(f.State.ContainerInstances.All.Single().Value.Instance.AgentConnected);
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
        Assert.False(f.State.ContainerInstances.All.Single().Value.Instance.AgentConnected);
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
