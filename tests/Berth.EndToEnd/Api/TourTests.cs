using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>The README's five-minute tour, step for step, with the real aws CLI and Docker.</summary>
public sealed class TourTests
{
    [Fact]
    public async Task Tour_RunCurlStop_Works()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);

        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "default");
        var td = await EcsScenario.RegisterAsync(aws, "web",
            """[{"name":"web","image":"berth-test/busybox:latest","memory":64,"essential":true,"stopTimeout":2,"portMappings":[{"containerPort":80,"hostPort":0}],"command":["httpd","-f","-p","80","-h","/www"]}]""");
        Assert.EndsWith("task-definition/web:1", td, StringComparison.Ordinal);

        var task = await EcsScenario.RunOneAsync(aws, "default", "web");
        var arn = task["taskArn"]!.GetValue<string>();
        var running = await EcsScenario.WaitForStatusAsync(aws, "default", arn, "RUNNING");
        var port = EcsScenario.HostPort(running);
        Assert.InRange(port, 1024, 65535);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var page = await Wait.ForAsync(async () =>
        {
            try { return await http.GetStringAsync($"http://127.0.0.1:{port}/"); }
            catch (HttpRequestException) { return null; }
        }, TimeSpan.FromSeconds(20), "httpd to answer");
        Assert.Contains("berth test image", page, StringComparison.Ordinal);

        await aws.RunAsync("ecs", "stop-task", "--cluster", "default", "--task", arn, "--reason", "tour over");
        var stopped = await EcsScenario.WaitForStatusAsync(aws, "default", arn, "STOPPED");
        Assert.Equal("UserInitiated", stopped["stopCode"]!.GetValue<string>());
        Assert.Equal("tour over", stopped["stoppedReason"]!.GetValue<string>());
        Assert.NotNull(stopped["stoppedAt"]);
        Assert.NotNull(stopped["pullStartedAt"]);
        Assert.Empty(await DockerCli.ContainersAsync(server.Label, all: false));
    }
}
