using System.Diagnostics;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>Task lifecycle on real Docker through the aws CLI: exits, ports, stop timeouts, placement.</summary>
public sealed class TaskLifecycleTests : IAsyncLifetime
{
    private BerthServer? _server;
    private AwsCli? _aws;

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        _server = await BerthServer.StartAsync();
        _aws = new AwsCli(_server.Endpoint);
        await _aws.RunAsync("ecs", "create-cluster");
        // The local agent registers in "default"; wait for it.
        await _aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [Fact]
    public async Task EssentialContainer_ExitsWithCode3_TaskStopsWithEssentialContainerExited()
    {
        await EcsScenario.RegisterAsync(_aws!, "exit3", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sh","-c","sleep 1; exit 3"]}]""");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "exit3"))["taskArn"]!.GetValue<string>();
        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
        Assert.Equal("EssentialContainerExited", t["stopCode"]!.GetValue<string>());
        Assert.Equal("Essential container in task exited", t["stoppedReason"]!.GetValue<string>());
        Assert.Equal(3, t["containers"]![0]!["exitCode"]!.GetValue<int>());
    }

    [Fact]
    public async Task NonEssentialContainer_Exits_TaskKeepsRunning()
    {
        await EcsScenario.RegisterAsync(_aws!, "sidecar", """
            [{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2},
             {"name":"helper","image":"berth-test/busybox:latest","memory":16,"essential":false,"command":["sh","-c","exit 7"]}]
            """);
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "sidecar"))["taskArn"]!.GetValue<string>();
        var t = await Wait.ForAsync(async () =>
        {
            var d = await EcsScenario.DescribeAsync(_aws!, "default", arn);
            var helper = d["containers"]!.AsArray().First(c => c!["name"]!.GetValue<string>() == "helper")!;
            return helper["lastStatus"]?.GetValue<string>() == "STOPPED" ? d : null;
        }, TimeSpan.FromSeconds(60), "the helper container to stop");
        Assert.Equal("RUNNING", t["lastStatus"]!.GetValue<string>());
        Assert.Equal(7, t["containers"]!.AsArray().First(c => c!["name"]!.GetValue<string>() == "helper")!["exitCode"]!.GetValue<int>());
        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
    }

    [Fact]
    public async Task TwoTasks_DynamicHostPorts_DifferAndBothAnswer()
    {
        await EcsScenario.RegisterAsync(_aws!, "web2", """[{"name":"web","image":"berth-test/busybox:latest","memory":16,"portMappings":[{"containerPort":80,"hostPort":0}],"command":["httpd","-f","-p","80","-h","/www"]}]""");
        var run = await _aws!.RunAsync("ecs", "run-task", "--task-definition", "web2", "--count", "2");
        Assert.Equal(2, run["tasks"]!.AsArray().Count);
        var ports = new List<int>();
        foreach (var task in run["tasks"]!.AsArray())
        {
            var t = await EcsScenario.WaitForStatusAsync(_aws, "default", task!["taskArn"]!.GetValue<string>(), "RUNNING");
            ports.Add(EcsScenario.HostPort(t));
        }
        Assert.NotEqual(ports[0], ports[1]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        foreach (var port in ports)
        {
            var body = await Wait.ForAsync(async () =>
            {
                try { return await http.GetStringAsync($"http://127.0.0.1:{port}/"); }
                catch (HttpRequestException) { return null; }
            }, TimeSpan.FromSeconds(20), $"port {port}");
            Assert.Contains("berth test image", body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ImageCannotBePulled_TaskStopsWithCannotPullContainerError()
    {
        // Nothing listens on port 1: the engine's pull fails at once.
        const string image = "localhost:1/berth-missing/nope:1";
        await EcsScenario.RegisterAsync(_aws!, "nopull", $$"""[{"name":"main","image":"{{image}}","memory":16}]""");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "nopull"))["taskArn"]!.GetValue<string>();
        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
        Assert.Equal("TaskFailedToStart", t["stopCode"]!.GetValue<string>());
        var reason = t["stoppedReason"]!.GetValue<string>();
        Assert.StartsWith("CannotPullContainerError", reason, StringComparison.Ordinal);
        Assert.Contains(image, reason, StringComparison.Ordinal);
        // Docker's own words follow ours.
        Assert.True(reason.Length > $"CannotPullContainerError: pull image {image}: ".Length, reason);
        Assert.NotNull(t["pullStartedAt"]);
        Assert.NotNull(t["pullStoppedAt"]);
        Assert.True(t["pullStoppedAt"]!.GetValue<double>() >= t["pullStartedAt"]!.GetValue<double>());
        Assert.Equal("STOPPED", t["desiredStatus"]!.GetValue<string>());
        Assert.Equal(image, t["containers"]![0]!["image"]!.GetValue<string>());
    }

    [Fact]
    public async Task RunTask_TooMuchMemory_FailsWithResourceMemory()
    {
        await EcsScenario.RegisterAsync(_aws!, "huge", """[{"name":"main","image":"berth-test/busybox:latest","memory":999999}]""");
        var run = await _aws!.RunAsync("ecs", "run-task", "--task-definition", "huge");
        Assert.Empty(run["tasks"]!.AsArray());
        Assert.Equal("RESOURCE:MEMORY", run["failures"]![0]!["reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task StopTask_ContainerIgnoresSigterm_KilledAfterStopTimeout()
    {
        await EcsScenario.RegisterAsync(_aws!, "stubborn", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"stopTimeout":3,"command":["sh","-c","trap '' TERM; while true; do sleep 1; done"]}]""");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "stubborn"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "RUNNING");
        var sw = Stopwatch.StartNew();
        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
        Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(2.5), $"stopped after {sw.Elapsed}: SIGTERM was not ignored?");
        Assert.Equal(137, t["containers"]![0]!["exitCode"]!.GetValue<int>());
    }

    [Fact]
    public async Task StopTask_ContainerHandlesSigterm_ExitsCleanlyBeforeTimeout()
    {
        await EcsScenario.RegisterAsync(_aws!, "polite", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"stopTimeout":20,"command":["sh","-c","trap 'exit 0' TERM; while true; do sleep 1; done"]}]""");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "polite"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "RUNNING");
        var sw = Stopwatch.StartNew();
        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), $"took {sw.Elapsed}");
        Assert.Equal(0, t["containers"]![0]!["exitCode"]!.GetValue<int>());
    }
}
