using System.Text.Json;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// One Berth for all rows of <see cref="EcsFidelityTests"/>: a server with one simulated agent (no Docker) in cluster
/// fid-sim whose image pulls take ten minutes, so the tasks the scenarios start stay PENDING until a scenario moves them.
/// </summary>
public sealed class EcsFidelityServer : IAsyncLifetime
{
    public BerthServer Server { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(Server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "fid-sim");
        Server.StartAgent("fid-sim", "fid-sim-agent", "--simulate", "1", "--simulate-pull-delay", "600000");
        await aws.WaitForContainerInstanceAsync("fid-sim", TimeSpan.FromSeconds(60));
    }

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// ECS wire fidelity, data-driven: each scenario of Python/ecs_fidelity.json is a list of boto3 calls with the members
/// ECS returns or leaves out and the error type and message it answers; ecs_fidelity.py runs one scenario against Berth
/// and reports every check that differs. docs/COMPATIBILITY.md's ECS table names the scenario covering each row.
/// </summary>
public sealed class EcsFidelityTests(EcsFidelityServer fixture) : IClassFixture<EcsFidelityServer>
{
    private static string CasesFile => Path.Combine(AppContext.BaseDirectory, "Python", "ecs_fidelity.json");

    public static TheoryData<string> Scenarios()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(CasesFile));
        var data = new TheoryData<string>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            data.Add(p.Name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public async Task Scenario_AnswersAsEcsDoes(string scenario)
    {
        var server = fixture.Server;
        var r = await Boto3.RunWithEnvAsync("ecs_fidelity.py", server.Endpoint,
            new Dictionary<string, string> { ["BERTH_AGENT_PORT"] = server.AgentPort.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            CasesFile, scenario);
        Assert.True(r.ExitCode == 0, $"{scenario}:\n{r.Stdout}\n{r.Stderr}");
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(0, doc.RootElement.GetProperty("failures").GetArrayLength());
    }

    private static void AssertFails(CommandResult r, string errorType, string message)
    {
        Assert.True(r.ExitCode != 0, $"expected {errorType}, but the command succeeded: {r.Stdout}");
        Assert.Contains($"({errorType})", r.Stderr, StringComparison.Ordinal);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
    }

    /// <summary>The same answers through the aws CLI: include-gated members, ECS's messages, the agent-facing calls.</summary>
    [Fact]
    public async Task AwsCli_SeesEcsMembersMessagesAndAgentCalls()
    {
        var server = fixture.Server;
        var aws = new AwsCli(server.Endpoint);

        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "fid-cli", "--tags", "key=team,value=cli",
            "--service-connect-defaults", "namespace=cli-ns");
        var plain = (await aws.RunAsync("ecs", "describe-clusters", "--clusters", "fid-cli"))["clusters"]![0]!.AsObject();
        Assert.False(plain.ContainsKey("tags"), plain.ToJsonString());
        Assert.False(plain.ContainsKey("settings"), plain.ToJsonString());
        Assert.StartsWith("arn:aws:servicediscovery:us-east-1:000000000000:namespace/ns-", plain["serviceConnectDefaults"]!["namespace"]!.GetValue<string>(), StringComparison.Ordinal);
        var tagged = (await aws.RunAsync("ecs", "describe-clusters", "--clusters", "fid-cli", "--include", "TAGS"))["clusters"]![0]!;
        Assert.Equal("cli", tagged["tags"]![0]!["value"]!.GetValue<string>());

        await aws.RunAsync("ecs", "register-task-definition", "--family", "fid-cli",
            "--container-definitions", """[{"name":"a","image":"berth-test/busybox","memory":64}]""");
        AssertFails(await aws.TryRunAsync("ecs", "deregister-task-definition", "--task-definition", "fid-cli"), "ClientException", "Revision is missing.");
        AssertFails(await aws.TryRunAsync("ecs", "register-task-definition", "--family", "fid-cli",
            "--container-definitions", """[{"name":"a","image":"","memory":64}]"""), "ClientException", "Container.image should not be null or empty.");
        AssertFails(await aws.TryRunAsync("ecs", "register-task-definition", "--family", "fid-cli", "--requires-compatibilities", "FARGATE",
            "--network-mode", "awsvpc", "--cpu", "256", "--memory", "512", "--ipc-mode", "host",
            "--container-definitions", """[{"name":"a","image":"berth-test/busybox"}]"""), "ClientException", "Tasks using the Fargate launch type do not support ipcMode.");

        var poll = await aws.RunAsync("ecs", "discover-poll-endpoint", "--cluster", "fid-sim");
        Assert.Equal($"http://127.0.0.1:{server.AgentPort}/", poll["endpoint"]!.GetValue<string>());

        var task = (await aws.RunAsync("ecs", "run-task", "--cluster", "fid-sim", "--task-definition", "fid-cli"))["tasks"]![0]!["taskArn"]!.GetValue<string>();
        var ack = await aws.RunAsync("ecs", "submit-task-state-change", "--cluster", "fid-sim", "--task", task, "--status", "RUNNING");
        Assert.Equal("ACK", ack["acknowledgment"]!.GetValue<string>());
        var running = (await aws.RunAsync("ecs", "describe-tasks", "--cluster", "fid-sim", "--tasks", task))["tasks"]![0]!;
        Assert.Equal("RUNNING", running["lastStatus"]!.GetValue<string>());
        AssertFails(await aws.TryRunAsync("ecs", "submit-task-state-change", "--cluster", "fid-sim", "--task", task, "--status", "PENDING"),
            "InvalidParameterException", "cannot go back from RUNNING to PENDING");

        var instance = (await aws.RunAsync("ecs", "list-container-instances", "--cluster", "fid-sim"))["containerInstanceArns"]![0]!.GetValue<string>();
        AssertFails(await aws.TryRunAsync("ecs", "deregister-container-instance", "--cluster", "fid-sim", "--container-instance", instance),
            "InvalidParameterException", "Found running tasks on the instance.");
    }
}
