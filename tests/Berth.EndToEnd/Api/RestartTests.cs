using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>kill -9 loses nothing: containers keep running, the store keeps every resource, states stay true.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task Kill9_WhileTasksRun_ContainersSurviveAndStateIsTrueAfterRestart()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        await EcsScenario.RegisterAsync(aws, "survivor", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","600"],"stopTimeout":2}]""");
        var keep = (await EcsScenario.RunOneAsync(aws, "default", "survivor"))["taskArn"]!.GetValue<string>();
        var doomed = (await EcsScenario.RunOneAsync(aws, "default", "survivor"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(aws, "default", keep, "RUNNING");
        var doomedTask = await EcsScenario.WaitForStatusAsync(aws, "default", doomed, "RUNNING");
        var doomedContainer = doomedTask["containers"]![0]!["runtimeId"]!.GetValue<string>();

        await server.KillAsync();
        Assert.Equal(2, (await DockerCli.ContainersAsync(server.Label, all: false)).Length);
        // Behind berth's back while it is down: one container dies with a code of its own.
        await DockerCli.RunAsync("kill", "--signal", "KILL", doomedContainer);

        await server.RestartAsync();
        Assert.Contains("survivor", (await aws.RunAsync("ecs", "list-task-definitions"))["taskDefinitionArns"]!.ToJsonString(), StringComparison.Ordinal);
        Assert.Contains("default", (await aws.RunAsync("ecs", "list-clusters"))["clusterArns"]!.ToJsonString(), StringComparison.Ordinal);
        var stopped = await EcsScenario.WaitForStatusAsync(aws, "default", doomed, "STOPPED", 60);
        Assert.Equal(137, stopped["containers"]![0]!["exitCode"]!.GetValue<int>());
        var alive = await EcsScenario.DescribeAsync(aws, "default", keep);
        Assert.Equal("RUNNING", alive["lastStatus"]!.GetValue<string>());
        // Re-adopted, not recreated: still exactly one running container, the same one.
        var running = await DockerCli.ContainersAsync(server.Label, all: false);
        Assert.Single(running);
        Assert.StartsWith(running[0], alive["containers"]![0]!["runtimeId"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
