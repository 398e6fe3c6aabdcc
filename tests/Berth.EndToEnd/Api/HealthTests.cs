using System.Globalization;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Container health checks and dependsOn on real Docker through the aws CLI: the task's healthStatus as ECS derives
/// it, and containers started only once their dependencies' conditions hold.
/// </summary>
public sealed class HealthTests : IAsyncLifetime
{
    private BerthServer? _server;
    private AwsCli? _aws;

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        _server = await BerthServer.StartAsync();
        _aws = new AwsCli(_server.Endpoint);
        await _aws.RunAsync("ecs", "create-cluster");
        await _aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private static JsonNode Container(JsonNode task, string name)
        => task["containers"]!.AsArray().First(c => c!["name"]!.GetValue<string>() == name)!;

    /// <summary>Polls describe-tasks until the task's healthStatus is <paramref name="health"/>.</summary>
    private Task<JsonNode> WaitForHealthAsync(string arn, string health)
        => Wait.ForAsync(async () =>
        {
            var t = await EcsScenario.DescribeAsync(_aws!, "default", arn);
            return t["healthStatus"]?.GetValue<string>() == health ? t : null;
        }, TimeSpan.FromSeconds(60), $"task {arn} to be {health}");

    /// <summary>Docker's State.StartedAt and State.FinishedAt of the task's container <paramref name="name"/>.</summary>
    private static async Task<(DateTimeOffset Started, DateTimeOffset Finished)> DockerTimesAsync(string taskArn, string name)
    {
        var ids = await DockerCli.ContainersAsync($"com.amazonaws.ecs.task-arn={taskArn}");
        foreach (var id in ids)
        {
            var r = await DockerCli.RunAsync("inspect", "-f", "{{index .Config.Labels \"com.amazonaws.ecs.container-name\"}} {{.State.StartedAt}} {{.State.FinishedAt}}", id);
            var parts = r.Stdout.Trim().Split(' ');
            if (parts[0] == name)
            {
                return (DateTimeOffset.Parse(parts[1], CultureInfo.InvariantCulture), DateTimeOffset.Parse(parts[2], CultureInfo.InvariantCulture));
            }
        }
        throw new InvalidOperationException($"no Docker container {name} of {taskArn} among [{string.Join(", ", ids)}]");
    }

    [Fact]
    public async Task HealthCheckPasses_TaskBecomesHealthy()
    {
        // "plain" is essential without a health check: it does not hold the task at UNKNOWN (as in ECS).
        await EcsScenario.RegisterAsync(_aws!, "healthy", """
            [{"name":"web","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,
              "healthCheck":{"command":["CMD-SHELL","exit 0"],"interval":5,"timeout":2,"retries":1}},
             {"name":"plain","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2}]
            """);
        var described = await _aws!.RunAsync("ecs", "describe-task-definition", "--task-definition", "healthy");
        var hc = described["taskDefinition"]!["containerDefinitions"]![0]!["healthCheck"]!;
        Assert.Equal(5, hc["interval"]!.GetValue<int>());

        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "healthy"))["taskArn"]!.GetValue<string>();
        var running = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "RUNNING");
        // Docker runs the first probe one interval after the start: until then the verdict is unknown.
        Assert.Contains(running["healthStatus"]!.GetValue<string>(), new[] { "UNKNOWN", "HEALTHY" });

        var t = await WaitForHealthAsync(arn, "HEALTHY");
        Assert.Equal("RUNNING", t["lastStatus"]!.GetValue<string>());
        Assert.Equal("HEALTHY", Container(t, "web")["healthStatus"]!.GetValue<string>());
        Assert.Equal("UNKNOWN", Container(t, "plain")["healthStatus"]!.GetValue<string>());

        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
    }

    [Fact]
    public async Task HealthCheckFails_TaskBecomesUnhealthyAndKeepsRunning()
    {
        await EcsScenario.RegisterAsync(_aws!, "unhealthy", """
            [{"name":"web","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,
              "healthCheck":{"command":["CMD-SHELL","exit 1"],"interval":5,"timeout":2,"retries":1}}]
            """);
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "unhealthy"))["taskArn"]!.GetValue<string>();

        var t = await WaitForHealthAsync(arn, "UNHEALTHY");
        Assert.Equal("UNHEALTHY", Container(t, "web")["healthStatus"]!.GetValue<string>());
        // A task run by hand carries on whatever its health (ECS replaces unhealthy tasks only in a service).
        Assert.Equal("RUNNING", t["lastStatus"]!.GetValue<string>());

        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
    }

    [Fact]
    public async Task DependsOnSuccess_DependentStartsOnlyAfterTheInitContainerExitedZero()
    {
        await EcsScenario.RegisterAsync(_aws!, "init-ok", """
            [{"name":"init","image":"berth-test/busybox:latest","memory":16,"essential":false,"command":["sh","-c","sleep 2; exit 0"]},
             {"name":"app","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,
              "dependsOn":[{"containerName":"init","condition":"SUCCESS"}]}]
            """);
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "init-ok"))["taskArn"]!.GetValue<string>();

        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "RUNNING");

        // The order is asserted from Docker's own start and finish times below, not from how soon a describe call
        // after RunTask answers (on a loaded machine the aws CLI alone can take longer than the init container).
        Assert.Equal(0, Container(t, "init")["exitCode"]!.GetValue<int>());
        Assert.Equal("STOPPED", Container(t, "init")["lastStatus"]!.GetValue<string>());
        Assert.Equal("RUNNING", Container(t, "app")["lastStatus"]!.GetValue<string>());
        var init = await DockerTimesAsync(arn, "init");
        var app = await DockerTimesAsync(arn, "app");
        Assert.True(app.Started >= init.Finished, $"app started at {app.Started:O}, before init finished at {init.Finished:O}");
        Assert.True(init.Finished - init.Started >= TimeSpan.FromSeconds(1.5), $"init ran {init.Finished - init.Started}");

        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
    }

    [Fact]
    public async Task DependsOnSuccess_InitContainerExitsOne_DependentNeverStartsAndTheTaskStops()
    {
        await EcsScenario.RegisterAsync(_aws!, "init-fails", """
            [{"name":"init","image":"berth-test/busybox:latest","memory":16,"essential":false,"command":["sh","-c","sleep 1; exit 1"]},
             {"name":"app","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],
              "dependsOn":[{"containerName":"init","condition":"SUCCESS"}]}]
            """);
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "init-fails"))["taskArn"]!.GetValue<string>();

        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");

        Assert.Equal("EssentialContainerExited", t["stopCode"]!.GetValue<string>());
        Assert.Equal("Essential container in task exited", t["stoppedReason"]!.GetValue<string>());
        Assert.Equal(1, Container(t, "init")["exitCode"]!.GetValue<int>());
        var app = Container(t, "app");
        Assert.Equal("STOPPED", app["lastStatus"]!.GetValue<string>());
        var reason = app["reason"]!.GetValue<string>();
        Assert.StartsWith("CannotStartContainerError: dependency graph", reason, StringComparison.Ordinal);
        Assert.Contains("[init]", reason, StringComparison.Ordinal);
        Assert.Contains("did not exit successfully", reason, StringComparison.Ordinal);
        Assert.Null(app["runtimeId"]);
        // Docker never saw the app container: only init was created.
        Assert.Single(await DockerCli.ContainersAsync($"com.amazonaws.ecs.task-arn={arn}"));
    }

    [Fact]
    public async Task DependsOnHealthy_DependentStartsOnlyOnceTheDependencyIsHealthy()
    {
        await EcsScenario.RegisterAsync(_aws!, "needs-healthy", """
            [{"name":"db","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,
              "healthCheck":{"command":["CMD-SHELL","exit 0"],"interval":5,"timeout":2,"retries":1}},
             {"name":"app","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,
              "dependsOn":[{"containerName":"db","condition":"HEALTHY"}]}]
            """);
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "needs-healthy"))["taskArn"]!.GetValue<string>();

        var t = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "RUNNING");

        Assert.Equal("HEALTHY", Container(t, "db")["healthStatus"]!.GetValue<string>());
        var db = await DockerTimesAsync(arn, "db");
        var app = await DockerTimesAsync(arn, "app");
        // Docker's first probe runs one interval (5 s) after the start.
        Assert.True(app.Started - db.Started >= TimeSpan.FromSeconds(4), $"db started {db.Started:O}, app {app.Started:O}");

        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "STOPPED");
    }
}
