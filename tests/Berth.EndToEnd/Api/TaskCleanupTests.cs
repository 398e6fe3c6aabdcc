using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Stopped tasks' containers stay for the cleanup wait (so `docker logs` works), then go with the task's volumes,
/// also across an agent restart; a short --task-cleanup-wait keeps the test short.
/// </summary>
public sealed class TaskCleanupTests
{
    private static async Task<bool> VolumeExistsAsync(string name)
        => (await DockerCli.RunAsync("volume", "ls", "-q", "--filter", "name=" + name)).Stdout.Split('\n').Any(l => l.Trim() == name);

    [Fact]
    public async Task FailedTask_ContainerAndLogsKeptForTheWait_ThenRemovedWithItsVolume()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("up", "--task-cleanup-wait", "8s");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        await EcsScenario.RegisterAsync(aws, "fails", $$"""
            [{"name":"main","image":"{{EcsScenario.Image}}","memory":16,"mountPoints":[{"sourceVolume":"scratch","containerPath":"/scratch"}],
              "command":["sh","-c","echo cannot open /etc/app.conf; echo 1 > /scratch/x; exit 3"]}]
            """, "--volumes", """[{"name":"scratch"}]""");
        var arn = (await EcsScenario.RunOneAsync(aws, "default", "fails"))["taskArn"]!.GetValue<string>();
        var task = await EcsScenario.WaitForStatusAsync(aws, "default", arn, "STOPPED");
        var id = task["containers"]![0]!["runtimeId"]!.GetValue<string>();
        var volume = $"ecs-{arn[(arn.LastIndexOf('/') + 1)..]}-scratch";

        var logs = await DockerCli.RunAsync("logs", id);
        Assert.Equal("cannot open /etc/app.conf", logs.Stdout.Trim());
        Assert.True(await VolumeExistsAsync(volume), $"volume {volume} should be kept with the container");

        await Wait.ForAsync(async () => (await DockerCli.RunAsync("inspect", id)).ExitCode != 0 ? "" : null, TimeSpan.FromSeconds(40), "the container to be removed after the wait");
        Assert.False(await VolumeExistsAsync(volume), $"volume {volume} should go with the container");
        Assert.Equal("STOPPED", (await EcsScenario.DescribeAsync(aws, "default", arn))["lastStatus"]!.GetValue<string>());
    }

    [Fact]
    public async Task AgentRestart_KeptContainerIsNotReportedOrRelaunched_AndGoesWhenItsWaitEnds()
    {
        await DockerCli.RequireAsync();
        string[] args = ["--task-cleanup-wait", "25s"];
        await using var server = await BerthServer.StartAsync("up", args);
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        await EcsScenario.RegisterAsync(aws, "oneshot", $$"""[{"name":"main","image":"{{EcsScenario.Image}}","memory":16,"command":["sh","-c","echo done; exit 3"]}]""");
        var arn = (await EcsScenario.RunOneAsync(aws, "default", "oneshot"))["taskArn"]!.GetValue<string>();
        var before = await EcsScenario.WaitForStatusAsync(aws, "default", arn, "STOPPED");
        var id = before["containers"]![0]!["runtimeId"]!.GetValue<string>();
        var stoppedAt = DateTimeOffset.UtcNow;

        await server.KillAsync();
        await server.RestartAsync(args);
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(30));

        // Adopted again, but it is a stopped task's kept container: not relaunched, not reported anew.
        Assert.Equal(0, (await DockerCli.RunAsync("inspect", id)).ExitCode);
        Assert.Equal("done", (await DockerCli.RunAsync("logs", id)).Stdout.Trim());
        var after = await EcsScenario.DescribeAsync(aws, "default", arn);
        Assert.Equal("STOPPED", after["lastStatus"]!.GetValue<string>());
        Assert.Equal(before["stoppedReason"]!.GetValue<string>(), after["stoppedReason"]!.GetValue<string>());
        Assert.Equal(before["version"]!.GetValue<long>(), after["version"]!.GetValue<long>());
        Assert.Equal([id[..12]], await DockerCli.ContainersAsync("com.amazonaws.ecs.task-arn=" + arn));

        await Wait.ForAsync(async () => (await DockerCli.RunAsync("inspect", id)).ExitCode != 0 ? "" : null, TimeSpan.FromSeconds(60), "the kept container to be removed");
        // Counted from when the container exited (Docker's FinishedAt), not from the restart.
        Assert.True(DateTimeOffset.UtcNow - stoppedAt < TimeSpan.FromSeconds(25 + 20), "removed late: the wait restarted with the agent?");
    }

    [Fact]
    public async Task ImageCleanup_RemovesAnUnusedImageTheAgentPulled_NeverOneItDidNot()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("up", "--task-cleanup-wait", "1s", "--image-cleanup-interval", "2s", "--image-minimum-cleanup-age", "0s");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        // An image of its own (a distinct id, so other tests' busybox containers do not count as using it), pushed to
        // Berth's registry and removed locally, so that the agent has to pull it.
        var pushed = $"127.0.0.1:{server.Port}/cleanup-{server.RunId[..12]}/app:1";
        var image = $"localhost:{server.Port}/cleanup-{server.RunId[..12]}/app:1";
        var build = await Processes.RunAsync("sh", ["-c", $"printf 'FROM {EcsScenario.Image}\nLABEL berth.cleanup-test={server.RunId}\n' | docker build -q -t {pushed} -"]);
        Assert.True(build.ExitCode == 0, build.Stdout + build.Stderr);
        try
        {
            var push = await DockerCli.RunAsync("push", pushed);
            Assert.True(push.ExitCode == 0, push.Stdout + push.Stderr);
            Assert.Equal(0, (await DockerCli.RunAsync("rmi", pushed)).ExitCode);

            await EcsScenario.RegisterAsync(aws, "pulled", $$"""[{"name":"main","image":"{{image}}","memory":16,"command":["true"]}]""");
            var arn = (await EcsScenario.RunOneAsync(aws, "default", "pulled"))["taskArn"]!.GetValue<string>();
            await EcsScenario.WaitForStatusAsync(aws, "default", arn, "STOPPED");

            // Once its container is gone (1 s wait), the next cycle removes the image the agent pulled.
            await Wait.ForAsync(async () => (await DockerCli.RunAsync("image", "inspect", image)).ExitCode != 0 ? "" : null, TimeSpan.FromSeconds(40), "the pulled image to be cleaned up");
            Assert.Equal(0, (await DockerCli.RunAsync("image", "inspect", EcsScenario.Image)).ExitCode); // built here, never pulled by the agent
        }
        finally
        {
            await DockerCli.RunAsync("rmi", image);
            await DockerCli.RunAsync("rmi", pushed);
        }
    }
}
