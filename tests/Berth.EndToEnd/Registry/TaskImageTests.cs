using Berth.EndToEnd.Api;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>
/// Tasks whose images live in Berth's own registry, with registry authentication on: the agent pulls
/// through the Docker engine with a registry token the server hands it, and a missing tag stops the task.
/// </summary>
public sealed class TaskImageTests : IAsyncLifetime
{
    private BerthServer? _server;
    private AwsCli? _aws;
    private string _dockerConfig = "";
    private readonly List<string> _images = [];

    private string Repo => "tasks-" + _server!.RunId[..12];

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        _server = await BerthServer.StartAsync("up", "--registry-auth");
        _aws = new AwsCli(_server.Endpoint);
        _dockerConfig = Directory.CreateTempSubdirectory("berth-docker-config-").FullName;
        await _aws.RunAsync("ecs", "create-cluster");
        await _aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var image in _images)
        {
            await DockerCli.RunAsync("rmi", image);
        }
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        Directory.Delete(_dockerConfig, recursive: true);
    }

    private async Task LoginAndPushAsync(string image)
    {
        var password = await _aws!.TryRunAsync("ecr", "get-login-password");
        Assert.Equal(0, password.ExitCode);
        var login = await DockerCli.RunAsync("--config", _dockerConfig, "login", "--username", "AWS", "--password", password.Stdout.Trim(), $"127.0.0.1:{_server!.Port}");
        Assert.True(login.ExitCode == 0, login.Stderr);
        _images.Add(image);
        Assert.Equal(0, (await DockerCli.RunAsync("tag", "berth-test/busybox:latest", image)).ExitCode);
        var push = await DockerCli.RunAsync("--config", _dockerConfig, "push", image);
        Assert.True(push.ExitCode == 0, push.Stdout + push.Stderr);
    }

    [Fact]
    public async Task ImageFromBerthRegistry_WithAuth_IsPulledByTheAgentAndRuns()
    {
        var pushed = $"127.0.0.1:{_server!.Port}/{Repo}/app:1";
        await LoginAndPushAsync(pushed);
        // The task names the image as docker users do on this machine: localhost:PORT/...
        var image = $"localhost:{_server.Port}/{Repo}/app:1";
        _images.Add(image);
        await DockerCli.RunAsync("rmi", image);
        Assert.NotEqual(0, (await DockerCli.RunAsync("image", "inspect", image)).ExitCode);

        await EcsScenario.RegisterAsync(_aws!, "fromreg", $$"""[{"name":"main","image":"{{image}}","memory":16,"command":["sh","-c","cat /www/index.html"]}]""");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "fromreg"))["taskArn"]!.GetValue<string>();
        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
        Assert.Equal("EssentialContainerExited", t["stopCode"]!.GetValue<string>());
        Assert.Equal(0, t["containers"]![0]!["exitCode"]!.GetValue<int>());
        Assert.NotNull(t["pullStartedAt"]);
        Assert.NotNull(t["pullStoppedAt"]);
        Assert.True(t["pullStoppedAt"]!.GetValue<double>() >= t["pullStartedAt"]!.GetValue<double>());
        // The engine now has the image under the name the task used: it came from Berth's registry.
        Assert.Equal(0, (await DockerCli.RunAsync("image", "inspect", image)).ExitCode);
    }

    [Fact]
    public async Task MissingTag_StopsTheTaskWithCannotPullContainerError()
    {
        var image = $"localhost:{_server!.Port}/{Repo}/app:missing";
        await EcsScenario.RegisterAsync(_aws!, "missingtag", $$"""[{"name":"main","image":"{{image}}","memory":16}]""");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "missingtag"))["taskArn"]!.GetValue<string>();
        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
        Assert.Equal("TaskFailedToStart", t["stopCode"]!.GetValue<string>());
        var reason = t["stoppedReason"]!.GetValue<string>();
        Assert.StartsWith("CannotPullContainerError", reason, StringComparison.Ordinal);
        Assert.Contains(image, reason, StringComparison.Ordinal);
        Assert.NotNull(t["pullStartedAt"]);
    }
}
