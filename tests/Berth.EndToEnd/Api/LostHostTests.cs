using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Many hosts (issue 10): agents that die are noticed, their tasks are stopped after the grace and their
/// containers stopped when they return; several agents share one Docker engine and each touches only its own.
/// Real server, real agent processes, real Docker, the aws CLI.
/// </summary>
public sealed class LostHostTests
{
    private const string Def = """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","600"],"stopTimeout":1}]""";

    [Fact]
    public async Task AgentKilled_AfterTheGrace_ItsTasksStop_AndOnReturnItStopsTheirContainers()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server", "--agent-grace", "3");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "lost");
        server.StartAgent("lost", "agent-a");
        server.StartAgent("lost", "agent-b");
        var (a, b) = await TwoInstancesAsync(server, aws, "lost");
        await EcsScenario.RegisterAsync(aws, "lost", Def);

        var onA = new[] { await StartOnAsync(aws, "lost", a.Arn), await StartOnAsync(aws, "lost", a.Arn) };
        var onB = await StartOnAsync(aws, "lost", b.Arn);
        foreach (var t in onA.Append(onB))
        {
            await EcsScenario.WaitForStatusAsync(aws, "lost", t, "RUNNING");
        }
        Assert.Equal(2, (await DockerCli.ContainersAsync("berth.agent-id=" + a.AgentId, all: false)).Length);

        await server.KillAgentAsync("agent-a");

        // The stream closes with the process: agentConnected false; the other agent is untouched.
        await Wait.ForAsync(async () => (await InstanceAsync(aws, "lost", a.Arn))["agentConnected"]!.GetValue<bool>() ? null : "", TimeSpan.FromSeconds(30), "agent A to show agentConnected false");
        Assert.True((await InstanceAsync(aws, "lost", b.Arn))["agentConnected"]!.GetValue<bool>());

        // After the 3 s grace, A's tasks are STOPPED by the server with a clear reason, and its resources are free.
        foreach (var t in onA)
        {
            var stopped = await EcsScenario.WaitForStatusAsync(aws, "lost", t, "STOPPED", 30);
            Assert.Equal("STOPPED", stopped["desiredStatus"]!.GetValue<string>());
            Assert.Equal("TerminationNotice", stopped["stopCode"]!.GetValue<string>());
            Assert.Equal($"Task stopped because the agent of container instance {a.Arn[(a.Arn.LastIndexOf('/') + 1)..]} has been disconnected for 3 seconds",
                stopped["stoppedReason"]!.GetValue<string>());
            Assert.NotNull(stopped["stoppedAt"]);
        }
        var instanceA = await InstanceAsync(aws, "lost", a.Arn);
        Assert.Equal(0, instanceA["runningTasksCount"]!.GetValue<int>());
        Assert.Equal(2048, Memory(instanceA, "remainingResources"));
        Assert.Equal("RUNNING", (await EcsScenario.DescribeAsync(aws, "lost", onB))["lastStatus"]!.GetValue<string>());
        // Nobody was there to stop A's containers: they still run until the agent comes back.
        Assert.Equal(2, (await DockerCli.ContainersAsync("berth.agent-id=" + a.AgentId, all: false)).Length);

        server.StartAgent("lost", "agent-a");

        await Wait.ForAsync(async () => (await InstanceAsync(aws, "lost", a.Arn))["agentConnected"]!.GetValue<bool>() ? "" : null, TimeSpan.FromSeconds(60), "agent A to reconnect");
        await Wait.ForAsync(async () => (await DockerCli.ContainersAsync("berth.agent-id=" + a.AgentId, all: false)).Length == 0 ? "" : null,
            TimeSpan.FromSeconds(60), "agent A to stop the containers of its stopped tasks");
        foreach (var t in onA)
        {
            var after = await EcsScenario.DescribeAsync(aws, "lost", t);
            Assert.Equal("STOPPED", after["lastStatus"]!.GetValue<string>());
            Assert.Contains("disconnected for 3 seconds", after["stoppedReason"]!.GetValue<string>(), StringComparison.Ordinal);
        }
        Assert.Single(await DockerCli.ContainersAsync("berth.agent-id=" + b.AgentId, all: false));
        Assert.Equal("RUNNING", (await EcsScenario.DescribeAsync(aws, "lost", onB))["lastStatus"]!.GetValue<string>());
    }

    [Fact]
    public async Task AgentKilled_ServiceTasksThere_AreReplacedOnTheOtherInstanceAfterTheGrace()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server", "--agent-grace", "3");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "lostsvc");
        server.StartAgent("lostsvc", "agent-a");
        server.StartAgent("lostsvc", "agent-b");
        var (a, b) = await TwoInstancesAsync(server, aws, "lostsvc");
        await EcsScenario.RegisterAsync(aws, "lostsvc", Def);
        // spread over instances: two tasks on each agent.
        await aws.RunAsync("ecs", "create-service", "--cluster", "lostsvc", "--service-name", "keep", "--task-definition", "lostsvc", "--desired-count", "4",
            "--placement-strategy", "type=spread,field=instanceId");
        await aws.RunAsync("ecs", "wait", "services-stable", "--cluster", "lostsvc", "--services", "keep");
        async Task<JsonNode[]> LiveTasksAsync()
        {
            var arns = (await aws.RunAsync("ecs", "list-tasks", "--cluster", "lostsvc", "--service-name", "keep"))["taskArns"]!.AsArray().Select(x => x!.GetValue<string>()).ToArray();
            return arns.Length == 0 ? [] : (await aws.RunAsync(["ecs", "describe-tasks", "--cluster", "lostsvc", "--tasks", .. arns]))["tasks"]!.AsArray().Select(t => t!).ToArray();
        }
        var before = await LiveTasksAsync();
        var onA = before.Where(t => t["containerInstanceArn"]!.GetValue<string>() == a.Arn).Select(t => t["taskArn"]!.GetValue<string>()).ToArray();
        Assert.Equal(2, onA.Length);

        await server.KillAgentAsync("agent-a");

        // After the grace A's tasks stop; the service starts replacements on B and is back at 4 RUNNING there.
        await Wait.ForAsync(async () =>
        {
            var live = await LiveTasksAsync();
            return live.Length == 4 && live.All(t => t["lastStatus"]!.GetValue<string>() == "RUNNING" && t["containerInstanceArn"]!.GetValue<string>() == b.Arn) ? "" : null;
        }, TimeSpan.FromSeconds(90), "the service to run its 4 tasks on agent B");
        foreach (var t in onA)
        {
            Assert.Equal("TerminationNotice", (await EcsScenario.DescribeAsync(aws, "lostsvc", t))["stopCode"]!.GetValue<string>());
        }
        var service = (await aws.RunAsync("ecs", "describe-services", "--cluster", "lostsvc", "--services", "keep"))["services"]![0]!;
        Assert.Equal(4, service["runningCount"]!.GetValue<int>());
        await aws.RunAsync("ecs", "delete-service", "--cluster", "lostsvc", "--service", "keep", "--force");
    }

    [Fact]
    public async Task AgentFrozen_SilentPastTheTimeout_ShowsDisconnected_TasksStop_AndThawedItStopsTheirContainers()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server", "--agent-grace", "3");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "frozen");
        server.StartAgent("frozen", "agent-a");
        server.StartAgent("frozen", "agent-b");
        var (a, b) = await TwoInstancesAsync(server, aws, "frozen");
        await EcsScenario.RegisterAsync(aws, "frozen", Def);
        var onA = await StartOnAsync(aws, "frozen", a.Arn);
        await EcsScenario.WaitForStatusAsync(aws, "frozen", onA, "RUNNING");

        // SIGSTOP: the process and its TCP connection stay up (the kernel still ACKs), but nothing is sent —
        // the stream is open yet silent, as with a hung agent or a half-open connection.
        await server.SignalAgentAsync("agent-a", "STOP");
        try
        {
            var frozenAt = System.Diagnostics.Stopwatch.StartNew();
            await Wait.ForAsync(async () => (await InstanceAsync(aws, "frozen", a.Arn))["agentConnected"]!.GetValue<bool>() ? null : "",
                TimeSpan.FromSeconds(90), "the silent agent A to show agentConnected false");
            // Not before the 30 s agent timeout less one 10 s heartbeat interval (the last beat may have just gone).
            Assert.True(frozenAt.Elapsed > TimeSpan.FromSeconds(19), $"disconnected after {frozenAt.Elapsed}");
            Assert.True((await InstanceAsync(aws, "frozen", b.Arn))["agentConnected"]!.GetValue<bool>());
            var stopped = await EcsScenario.WaitForStatusAsync(aws, "frozen", onA, "STOPPED", 30);
            Assert.Contains("has been disconnected for 3 seconds", stopped["stoppedReason"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Single(await DockerCli.ContainersAsync("berth.agent-id=" + a.AgentId, all: false));
        }
        finally
        {
            await server.SignalAgentAsync("agent-a", "CONT");
        }

        // Thawed, the agent finds its stream closed, registers again and stops the container of its stopped task.
        await Wait.ForAsync(async () => (await InstanceAsync(aws, "frozen", a.Arn))["agentConnected"]!.GetValue<bool>() ? "" : null, TimeSpan.FromSeconds(60), "agent A to reconnect");
        await Wait.ForAsync(async () => (await DockerCli.ContainersAsync("berth.agent-id=" + a.AgentId, all: false)).Length == 0 ? "" : null,
            TimeSpan.FromSeconds(60), "agent A to stop the container of its stopped task");
        Assert.Equal("STOPPED", (await EcsScenario.DescribeAsync(aws, "frozen", onA))["lastStatus"]!.GetValue<string>());
    }

    [Fact]
    public async Task TwoAgentsOnOneEngine_EachIsItsOwnInstance_AndTouchesOnlyItsOwnContainers()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "pair");
        server.StartAgent("pair", "agent-a", "--availability-zone", "us-east-1a");
        server.StartAgent("pair", "agent-b", "--availability-zone", "us-east-1b", "--memory", "1024");
        var (a, b) = await TwoInstancesAsync(server, aws, "pair");
        Assert.NotEqual(a.AgentId, b.AgentId);

        // Each has its own budget and attributes.
        var ia = await InstanceAsync(aws, "pair", a.Arn);
        var ib = await InstanceAsync(aws, "pair", b.Arn);
        Assert.Equal(2048, Memory(ia, "registeredResources"));
        Assert.Equal(1024, Memory(ib, "registeredResources"));
        Assert.Equal("us-east-1b", ib["attributes"]!.AsArray().First(x => x!["name"]!.GetValue<string>() == "ecs.availability-zone")!["value"]!.GetValue<string>());

        await EcsScenario.RegisterAsync(aws, "pair", Def);
        var ta = await StartOnAsync(aws, "pair", a.Arn);
        var tb = await StartOnAsync(aws, "pair", b.Arn);
        var containerA = (await EcsScenario.WaitForStatusAsync(aws, "pair", ta, "RUNNING"))["containers"]![0]!["runtimeId"]!.GetValue<string>();
        var containerB = (await EcsScenario.WaitForStatusAsync(aws, "pair", tb, "RUNNING"))["containers"]![0]!["runtimeId"]!.GetValue<string>();

        // Each container carries its own agent's id; by that label each agent sees exactly its own.
        Assert.Equal(a.AgentId, await LabelAsync(containerA, "berth.agent-id"));
        Assert.Equal(ta, await LabelAsync(containerA, "com.amazonaws.ecs.task-arn"));
        Assert.Equal(b.AgentId, await LabelAsync(containerB, "berth.agent-id"));
        Assert.Equal([containerA[..12]], await DockerCli.ContainersAsync("berth.agent-id=" + a.AgentId));
        Assert.Equal([containerB[..12]], await DockerCli.ContainersAsync("berth.agent-id=" + b.AgentId));
        Assert.Equal(1024 - 16, Memory(await InstanceAsync(aws, "pair", b.Arn), "remainingResources"));
        Assert.Equal(2048 - 16, Memory(await InstanceAsync(aws, "pair", a.Arn), "remainingResources"));

        // B restarts: it adopts its own container only (a snapshot that does not list A's task must not make it
        // reap A's container), and keeps its task without starting it again.
        await server.KillAgentAsync("agent-b");
        server.StartAgent("pair", "agent-b", "--availability-zone", "us-east-1b", "--memory", "1024");
        await Wait.ForAsync(async () => (await InstanceAsync(aws, "pair", b.Arn))["agentConnected"]!.GetValue<bool>() ? "" : null, TimeSpan.FromSeconds(60), "agent B to reconnect");
        // A task started on B after the reconnect runs only once B has applied its snapshot (and reaped what it would reap).
        var tb2 = await StartOnAsync(aws, "pair", b.Arn);
        await EcsScenario.WaitForStatusAsync(aws, "pair", tb2, "RUNNING");
        Assert.Equal("true", await StateAsync(containerA));
        Assert.Equal("true", await StateAsync(containerB));
        Assert.Equal("RUNNING", (await EcsScenario.DescribeAsync(aws, "pair", ta))["lastStatus"]!.GetValue<string>());
        Assert.Equal("RUNNING", (await EcsScenario.DescribeAsync(aws, "pair", tb))["lastStatus"]!.GetValue<string>());

        // Stopping B's first task stops its container and nothing of A's.
        await aws.RunAsync("ecs", "stop-task", "--cluster", "pair", "--task", tb);
        await EcsScenario.WaitForStatusAsync(aws, "pair", tb, "STOPPED");
        Assert.Equal("false", await StateAsync(containerB));
        Assert.Equal("true", await StateAsync(containerA));
        Assert.Equal([containerA[..12]], await DockerCli.ContainersAsync("berth.agent-id=" + a.AgentId));
    }

    private sealed record Agent(string AgentId, string Arn);

    /// <summary>Waits until both named agents registered (their identity files name their instances) and both show connected.</summary>
    private static async Task<(Agent A, Agent B)> TwoInstancesAsync(BerthServer server, AwsCli aws, string cluster)
    {
        var agents = await Wait.ForAsync(async () =>
        {
            try
            {
                var a = server.AgentIdentity("agent-a");
                var b = server.AgentIdentity("agent-b");
                if (a.ContainerInstanceArn is null || b.ContainerInstanceArn is null)
                {
                    return null;
                }
                var list = (await aws.RunAsync("ecs", "list-container-instances", "--cluster", cluster))["containerInstanceArns"]!.AsArray().Select(x => x!.GetValue<string>()).ToList();
                return list.Contains(a.ContainerInstanceArn) && list.Contains(b.ContainerInstanceArn)
                    ? new[] { new Agent(a.AgentId, a.ContainerInstanceArn), new Agent(b.AgentId, b.ContainerInstanceArn) }
                    : null;
            }
            catch (IOException)
            {
                return null; // identity file not written yet
            }
        }, TimeSpan.FromSeconds(60), "two agents to register");
        Assert.NotEqual(agents[0].Arn, agents[1].Arn);
        return (agents[0], agents[1]);
    }

    private static async Task<string> StartOnAsync(AwsCli aws, string cluster, string instanceArn)
    {
        var r = await aws.RunAsync("ecs", "start-task", "--cluster", cluster, "--task-definition", cluster, "--container-instances", instanceArn);
        Assert.True(r["failures"]!.AsArray().Count == 0, "failures: " + r["failures"]!.ToJsonString());
        var t = r["tasks"]![0]!;
        Assert.Equal(instanceArn, t["containerInstanceArn"]!.GetValue<string>());
        return t["taskArn"]!.GetValue<string>();
    }

    private static async Task<JsonNode> InstanceAsync(AwsCli aws, string cluster, string arn)
        => (await aws.RunAsync("ecs", "describe-container-instances", "--cluster", cluster, "--container-instances", arn))["containerInstances"]![0]!;

    private static int Memory(JsonNode instance, string member)
        => instance[member]!.AsArray().First(r => r!["name"]!.GetValue<string>() == "MEMORY")!["integerValue"]!.GetValue<int>();

    private static async Task<string> LabelAsync(string container, string label)
        => (await DockerCli.RunAsync("inspect", "-f", $"{{{{index .Config.Labels \"{label}\"}}}}", container)).Stdout.Trim();

    private static async Task<string> StateAsync(string container)
        => (await DockerCli.RunAsync("inspect", "-f", "{{.State.Running}}", container)).Stdout.Trim();
}
