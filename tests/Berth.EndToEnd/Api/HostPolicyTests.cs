using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// One <c>berth server</c> and two <c>berth agent</c> processes on real Docker, each in its own cluster: "strict"
/// with the default host policy (nothing from the host) and "open" with <c>--allow-host-path DIR --allow-privileged --allow-unconfined</c>.
/// </summary>
public sealed class HostPolicyFixture : IAsyncLifetime
{
    public BerthServer Server { get; private set; } = null!;
    public AwsCli Aws { get; private set; } = null!;
    public string Allowed { get; private set; } = "";
    public string StrictInstance { get; private set; } = "";
    public string OpenInstance { get; private set; } = "";
    private string _dir = "";

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        _dir = Directory.CreateTempSubdirectory("berth-e2e-policy-").FullName;
        Allowed = Directory.CreateDirectory(Path.Combine(_dir, "allowed")).FullName;
        Server = await BerthServer.StartAsync("server");
        Aws = new AwsCli(Server.Endpoint);
        await Aws.RunAsync("ecs", "create-cluster", "--cluster-name", "strict");
        await Aws.RunAsync("ecs", "create-cluster", "--cluster-name", "open");
        Server.StartAgent("strict", "strict");
        Server.StartAgent("open", "open", "--allow-host-path", Allowed, "--allow-privileged", "--allow-unconfined");
        try
        {
            StrictInstance = await Aws.WaitForContainerInstanceAsync("strict", TimeSpan.FromSeconds(60));
            OpenInstance = await Aws.WaitForContainerInstanceAsync("open", TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException(e.Message + "\n" + Server.Log, e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
        if (_dir.Length > 0)
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}

public sealed class HostPolicyTests(HostPolicyFixture f) : IClassFixture<HostPolicyFixture>
{
    private static string HostVolume(string path) => new JsonArray(new JsonObject { ["name"] = "data", ["host"] = new JsonObject { ["sourcePath"] = path } }).ToJsonString();

    private const string Mounting = """[{"name":"web","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":1,"mountPoints":[{"sourceVolume":"data","containerPath":"/data"}]}]""";

    private static async Task<Dictionary<string, string?>> AttributesAsync(AwsCli aws, string cluster, string instance)
    {
        var ci = (await aws.RunAsync("ecs", "describe-container-instances", "--cluster", cluster, "--container-instances", instance))["containerInstances"]![0]!;
        return ci["attributes"]!.AsArray().ToDictionary(a => a!["name"]!.GetValue<string>(), a => a!["value"]?.GetValue<string>());
    }

    private static async Task<string[]> ContainersOfAsync(string taskArn)
    {
        var r = await DockerCli.RunAsync("ps", "-aq", "--filter", $"label=com.amazonaws.ecs.task-arn={taskArn}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    [Fact]
    public async Task DescribeContainerInstances_ShowsEachAgentsPolicy()
    {
        var strict = await AttributesAsync(f.Aws, "strict", f.StrictInstance);
        Assert.Equal("none", strict["berth.policy.host-paths"]);
        Assert.Equal("denied", strict["berth.policy.privileged"]);
        Assert.Equal("denied", strict["berth.policy.docker-socket"]);
        Assert.Equal("none", strict["berth.policy.capabilities"]);
        Assert.Equal("denied", strict["berth.policy.devices"]);
        Assert.Equal("denied", strict["berth.policy.host-pid"]);
        Assert.Equal("denied", strict["berth.policy.host-ipc"]);
        Assert.Equal("denied", strict["berth.policy.unconfined"]);

        var open = await AttributesAsync(f.Aws, "open", f.OpenInstance);
        Assert.Equal(f.Allowed, open["berth.policy.host-paths"]);
        Assert.Equal("allowed", open["berth.policy.privileged"]);
        Assert.Equal("denied", open["berth.policy.docker-socket"]);
        Assert.Equal("allowed", open["berth.policy.unconfined"]);

        // Only the agent sets them: a client cannot widen an instance's policy.
        var put = await f.Aws.TryRunAsync("ecs", "put-attributes", "--cluster", "strict", "--attributes",
            $"name=berth.policy.privileged,value=allowed,targetId={f.StrictInstance}");
        Assert.NotEqual(0, put.ExitCode);
        Assert.Contains("InvalidParameterException", put.Stderr, StringComparison.Ordinal);
        Assert.Equal("denied", (await AttributesAsync(f.Aws, "strict", f.StrictInstance))["berth.policy.privileged"]);
    }

    [Fact]
    public async Task RunTask_PrivilegedOnAClusterWhoseOnlyInstanceForbidsIt_PlacementFailureNamesIt()
    {
        // As ContainerOptionsTests: a non-root user, since this sandbox's Docker cannot apply every capability to root.
        await EcsScenario.RegisterAsync(f.Aws, "priv", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":1,"privileged":true,"user":"1000:1000"}]""");

        var run = await f.Aws.RunAsync("ecs", "run-task", "--cluster", "strict", "--task-definition", "priv");

        Assert.Empty(run["tasks"]!.AsArray());
        var failure = run["failures"]![0]!;
        Assert.Equal("ATTRIBUTE:berth.policy.privileged", failure["reason"]!.GetValue<string>());
        Assert.Equal(f.StrictInstance, failure["arn"]!.GetValue<string>());
        Assert.Contains("berth agent --allow-privileged", failure["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // The same definition on the host that allows it runs privileged.
        var arn = (await EcsScenario.RunOneAsync(f.Aws, "open", "priv"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(f.Aws, "open", arn, "RUNNING");
        var inspect = await DockerCli.RunAsync("inspect", "--format", "{{.HostConfig.Privileged}}", Assert.Single(await ContainersOfAsync(arn)));
        Assert.Equal("true", inspect.Stdout.Trim());
        await f.Aws.RunAsync("ecs", "stop-task", "--cluster", "open", "--task", arn);
    }

    [Fact]
    public async Task RunTask_HostPathOnAnInstanceWithoutPrefixes_PlacementFailureNamesHostPaths()
    {
        await EcsScenario.RegisterAsync(f.Aws, "etc", Mounting, "--volumes", HostVolume("/etc"));

        var run = await f.Aws.RunAsync("ecs", "run-task", "--cluster", "strict", "--task-definition", "etc");

        Assert.Empty(run["tasks"]!.AsArray());
        Assert.Equal("ATTRIBUTE:berth.policy.host-paths", run["failures"]![0]!["reason"]!.GetValue<string>());
        Assert.Contains("host path /etc", run["failures"]![0]!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostPath_SymlinkOutOfTheAllowedPrefix_AgentStopsTheTaskBeforeCreatingAContainer()
    {
        // The control plane sees a path under the allowed prefix; only the agent sees that it leads to /etc.
        var link = Path.Combine(f.Allowed, "escape");
        File.CreateSymbolicLink(link, "/etc");
        await EcsScenario.RegisterAsync(f.Aws, "escape", Mounting, "--volumes", HostVolume(link));

        var arn = (await EcsScenario.RunOneAsync(f.Aws, "open", "escape"))["taskArn"]!.GetValue<string>();
        var t = await EcsScenario.WaitForStatusAsync(f.Aws, "open", arn, "STOPPED", seconds: 30);

        Assert.Equal("TaskFailedToStart", t["stopCode"]!.GetValue<string>());
        Assert.Equal($"CannotStartContainerError: container web: host path {link} (resolves to /etc) (volume data) is not under an allowed prefix (berth agent --allow-host-path)",
            t["stoppedReason"]!.GetValue<string>());
        Assert.Empty(await ContainersOfAsync(arn));
    }

    [Fact]
    public async Task HostPath_UnderTheAllowedPrefix_RunsAndTheContainerSeesTheHostFile()
    {
        var data = Directory.CreateDirectory(Path.Combine(f.Allowed, "app")).FullName;
        await File.WriteAllTextAsync(Path.Combine(data, "hello.txt"), "from the host");
        await EcsScenario.RegisterAsync(f.Aws, "inside", Mounting, "--volumes", HostVolume(data));

        var arn = (await EcsScenario.RunOneAsync(f.Aws, "open", "inside"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(f.Aws, "open", arn, "RUNNING");

        var id = Assert.Single(await ContainersOfAsync(arn));
        var read = await DockerCli.RunAsync("exec", id, "cat", "/data/hello.txt");
        Assert.Equal("from the host", read.Stdout);

        // The same definition on the host without prefixes is never placed there.
        var strict = await f.Aws.RunAsync("ecs", "run-task", "--cluster", "strict", "--task-definition", "inside");
        Assert.Equal("ATTRIBUTE:berth.policy.host-paths", strict["failures"]![0]!["reason"]!.GetValue<string>());
        await f.Aws.RunAsync("ecs", "stop-task", "--cluster", "open", "--task", arn);
    }

    [Fact]
    public async Task HostPath_DockerSocket_RefusedAtPlacementAndThroughALinkByTheAgent()
    {
        await EcsScenario.RegisterAsync(f.Aws, "sock", Mounting, "--volumes", HostVolume("/var/run/docker.sock"));
        var run = await f.Aws.RunAsync("ecs", "run-task", "--cluster", "open", "--task-definition", "sock");
        Assert.Empty(run["tasks"]!.AsArray());
        Assert.Equal("ATTRIBUTE:berth.policy.docker-socket", run["failures"]![0]!["reason"]!.GetValue<string>());

        // A link to the socket inside the allowed prefix passes placement; the agent resolves it and refuses.
        var link = Path.Combine(f.Allowed, "sock-link");
        File.CreateSymbolicLink(link, "/var/run/docker.sock");
        await EcsScenario.RegisterAsync(f.Aws, "sock-link", Mounting, "--volumes", HostVolume(link));
        var arn = (await EcsScenario.RunOneAsync(f.Aws, "open", "sock-link"))["taskArn"]!.GetValue<string>();
        var t = await EcsScenario.WaitForStatusAsync(f.Aws, "open", arn, "STOPPED", seconds: 30);

        Assert.Equal("TaskFailedToStart", t["stopCode"]!.GetValue<string>());
        var reason = t["stoppedReason"]!.GetValue<string>();
        Assert.StartsWith($"CannotStartContainerError: container web: host path {link} (resolves to ", reason, StringComparison.Ordinal);
        Assert.Contains("exposes the Docker socket", reason, StringComparison.Ordinal);
        Assert.EndsWith("(berth agent --allow-docker-socket)", reason, StringComparison.Ordinal);
        Assert.Empty(await ContainersOfAsync(arn));
    }

    [Fact]
    public async Task RunTask_SeccompUnconfined_RefusedByPlacementOnADefaultAgent_RunsUnconfinedWhereAllowed()
    {
        await EcsScenario.RegisterAsync(f.Aws, "unconfined", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":1,"dockerSecurityOptions":["no-new-privileges","seccomp=unconfined"]}]""");

        var run = await f.Aws.RunAsync("ecs", "run-task", "--cluster", "strict", "--task-definition", "unconfined");

        Assert.Empty(run["tasks"]!.AsArray());
        var failure = run["failures"]![0]!;
        Assert.Equal("ATTRIBUTE:berth.policy.unconfined", failure["reason"]!.GetValue<string>());
        Assert.Equal(f.StrictInstance, failure["arn"]!.GetValue<string>());
        var detail = failure["detail"]!.GetValue<string>();
        Assert.Contains("container main: dockerSecurityOptions seccomp=unconfined", detail, StringComparison.Ordinal);
        Assert.Contains("berth agent --allow-unconfined", detail, StringComparison.Ordinal);

        // On the agent started with --allow-unconfined the container runs with Docker's seccomp filter off.
        var arn = (await EcsScenario.RunOneAsync(f.Aws, "open", "unconfined"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(f.Aws, "open", arn, "RUNNING");
        var id = Assert.Single(await ContainersOfAsync(arn));
        var inspect = await DockerCli.RunAsync("inspect", "--format", "{{json .HostConfig.SecurityOpt}}", id);
        Assert.Equal("""["no-new-privileges","seccomp=unconfined"]""", inspect.Stdout.Trim());
        var seccomp = await DockerCli.RunAsync("exec", id, "grep", "^Seccomp:", "/proc/self/status");
        Assert.Equal("Seccomp:\t0", seccomp.Stdout.Trim()); // 0: no filter; Docker's default profile shows 2
        await f.Aws.RunAsync("ecs", "stop-task", "--cluster", "open", "--task", arn);
    }
}
