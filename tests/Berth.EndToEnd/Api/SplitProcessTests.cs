using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>`berth server` and `berth agent --server URL` as two processes.</summary>
public sealed class SplitProcessTests
{
    [Fact]
    public async Task ServerAndAgent_TwoProcesses_InstanceRegistersAndTaskRuns()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "split");
        server.StartAgent("split");
        var instanceArn = await aws.WaitForContainerInstanceAsync("split", TimeSpan.FromSeconds(60));
        var ci = (await aws.RunAsync("ecs", "describe-container-instances", "--cluster", "split", "--container-instances", instanceArn))["containerInstances"]![0]!;
        Assert.True(ci["agentConnected"]!.GetValue<bool>());
        Assert.Equal(2048, ci["registeredResources"]!.AsArray().First(r => r!["name"]!.GetValue<string>() == "MEMORY")!["integerValue"]!.GetValue<int>());
        Assert.Contains("DockerVersion", ci["versionInfo"]!["dockerVersion"]!.GetValue<string>(), StringComparison.Ordinal);

        await EcsScenario.RegisterAsync(aws, "split", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","60"],"stopTimeout":1}]""");
        var arn = (await EcsScenario.RunOneAsync(aws, "split", "split"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(aws, "split", arn, "RUNNING");
        var after = (await aws.RunAsync("ecs", "describe-container-instances", "--cluster", "split", "--container-instances", instanceArn))["containerInstances"]![0]!;
        Assert.Equal(1, after["runningTasksCount"]!.GetValue<int>());
        Assert.Equal(2048 - 16, after["remainingResources"]!.AsArray().First(r => r!["name"]!.GetValue<string>() == "MEMORY")!["integerValue"]!.GetValue<int>());
    }
}
