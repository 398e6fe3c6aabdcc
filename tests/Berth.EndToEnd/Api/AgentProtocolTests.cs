using Berth.Core.Agent;
using Berth.EndToEnd.Harness;
using Grpc.Core;
using Grpc.Net.Client;

namespace Berth.EndToEnd.Api;

/// <summary>The agent protocol's guarantees against the real server, spoken by hand over real gRPC.</summary>
public sealed class AgentProtocolTests
{
    [Fact]
    public async Task StaleReport_FromAnotherAgentsStream_IsIgnored_AndStatusNeverMovesBack()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "proto");
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.AgentPort}");
        await using var first = await RawAgent.ConnectAsync(channel, "proto", "agent-a");
        await using var second = await RawAgent.ConnectAsync(channel, "proto", "agent-b");
        await EcsScenario.RegisterAsync(aws, "proto", """[{"name":"main","image":"berth-test/busybox:latest","memory":16}]""");

        var run = await aws.RunAsync("ecs", "run-task", "--cluster", "proto", "--task-definition", "proto",
            "--placement-constraints", "type=memberOf,expression=attribute:test.agent == agent-a");
        var task = run["tasks"]![0]!;
        var arn = task["taskArn"]!.GetValue<string>();
        Assert.Equal(first.InstanceArn, task["containerInstanceArn"]!.GetValue<string>());
        var delivered = await first.NextDesiredAsync();
        Assert.Equal(arn, delivered.Tasks.Single().TaskArn);
        Assert.Equal("main", delivered.Tasks.Single().Spec.Containers.Single().Name);

        // The other agent claims the task stopped: ignored.
        await second.ReportAsync(new TaskStatusReport { TaskArn = arn, LastStatus = "STOPPED", StopCode = "EssentialContainerExited", Sequence = 50 });
        // The owner reports RUNNING, then a stale PENDING (older sequence) and a newer one claiming PENDING.
        await first.ReportAsync(new TaskStatusReport { TaskArn = arn, LastStatus = "RUNNING", Sequence = 2 });
        await first.ReportAsync(new TaskStatusReport { TaskArn = arn, LastStatus = "PENDING", Sequence = 1 });
        await first.ReportAsync(new TaskStatusReport { TaskArn = arn, LastStatus = "PENDING", Sequence = 3 });

        var t = await EcsScenario.WaitForStatusAsync(aws, "proto", arn, "RUNNING", 30);
        await Task.Delay(500); // any late apply of the ignored reports would show by now
        t = await EcsScenario.DescribeAsync(aws, "proto", arn);
        Assert.Equal("RUNNING", t["lastStatus"]!.GetValue<string>());
        Assert.Equal("RUNNING", t["desiredStatus"]!.GetValue<string>());
        Assert.Null(t["stopCode"]);
    }

    [Fact]
    public async Task SecondProcess_PresentingAnInstanceArnWithoutItsSecret_IsRefused()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "proto");
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.AgentPort}");
        await using var owner = await RawAgent.ConnectAsync(channel, "proto", "agent-a");

        using var call = new AgentGateway.AgentGatewayClient(channel).Connect();
        await call.RequestStream.WriteAsync(new AgentMessage { Register = RawAgent.Registration("proto", "agent-a", owner.InstanceArn, secret: "") });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(ServerMessage.BodyOneofCase.Rejected, call.ResponseStream.Current.BodyCase);
        Assert.Contains("belongs to another agent", call.ResponseStream.Current.Rejected.Reason, StringComparison.Ordinal);
        var ci = (await aws.RunAsync("ecs", "describe-container-instances", "--cluster", "proto", "--container-instances", owner.InstanceArn))["containerInstances"]![0]!;
        Assert.True(ci["agentConnected"]!.GetValue<bool>()); // the owner's stream was not taken over
    }

    /// <summary>An agent spoken by hand: register, read desired states, send reports.</summary>
    private sealed class RawAgent : IAsyncDisposable
    {
        private readonly AsyncDuplexStreamingCall<AgentMessage, ServerMessage> _call;

        private RawAgent(AsyncDuplexStreamingCall<AgentMessage, ServerMessage> call, string instanceArn, string hostname)
        {
            _call = call;
            InstanceArn = instanceArn;
            Hostname = hostname;
        }

        public string InstanceArn { get; }
        public string Hostname { get; }

        public static Register Registration(string cluster, string agentId, string instanceArn = "", string secret = "")
        {
            var r = new Register
            {
                Cluster = cluster, AgentId = agentId, CpuUnits = 1024, MemoryMib = 1024, Hostname = "host-" + agentId,
                AgentVersion = "test", AgentHash = "test", DockerVersion = "none", ContainerInstanceArn = instanceArn, AgentSecret = secret,
            };
            r.Attributes["ecs.os-type"] = "linux";
            r.Attributes["test.agent"] = agentId;
            return r;
        }

        public static async Task<RawAgent> ConnectAsync(GrpcChannel channel, string cluster, string agentId)
        {
            var call = new AgentGateway.AgentGatewayClient(channel).Connect();
            await call.RequestStream.WriteAsync(new AgentMessage { Register = Registration(cluster, agentId) });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            var registered = call.ResponseStream.Current;
            Assert.Equal(ServerMessage.BodyOneofCase.Registered, registered.BodyCase);
            Assert.False(string.IsNullOrEmpty(registered.Registered.AgentSecret));
            var agent = new RawAgent(call, registered.Registered.ContainerInstanceArn, "host-" + agentId);
            var snapshot = await agent.NextDesiredAsync();
            Assert.True(snapshot.Full);
            return agent;
        }

        public async Task<DesiredState> NextDesiredAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (await _call.ResponseStream.MoveNext(timeout.Token))
            {
                if (_call.ResponseStream.Current.BodyCase == ServerMessage.BodyOneofCase.Desired)
                {
                    var d = _call.ResponseStream.Current.Desired;
                    await _call.RequestStream.WriteAsync(new AgentMessage { Ack = new DesiredAck { Generation = d.Generation } });
                    return d;
                }
            }
            throw new InvalidOperationException("the server ended the stream");
        }

        public Task ReportAsync(TaskStatusReport report) => _call.RequestStream.WriteAsync(new AgentMessage { TaskStatus = report });

        public async ValueTask DisposeAsync()
        {
            try
            {
                await _call.RequestStream.CompleteAsync();
            }
            catch (InvalidOperationException)
            {
            }
            _call.Dispose();
        }
    }
}
