using System.Diagnostics;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// The container options of a task definition, run on real Docker through the aws CLI and checked with
/// <c>docker inspect</c> / <c>docker exec</c>: one task carrying most options at once, then the ones that need
/// several containers (pid/ipc namespaces shared in the task, volumesFrom), then a task Docker cannot start.
/// </summary>
public sealed class ContainerOptionsTests : LocalServerTest
{
    // The host policy denies these by default; this test's host allows what its task definitions ask for.
    protected override string[] ServerArgs => ["--allow-privileged", "--allow-capability", "NET_ADMIN", "--allow-devices", "--allow-host-pid"];

    private static async Task<string> ContainerIdAsync(string taskArn, string container)
    {
        var r = await DockerCli.RunAsync("ps", "-aq", "--filter", $"label=com.amazonaws.ecs.task-arn={taskArn}", "--filter", $"label=com.amazonaws.ecs.container-name={container}");
        var id = r.Stdout.Trim();
        Assert.False(string.IsNullOrEmpty(id), $"no Docker container for {container} of {taskArn}: {r.Stderr}");
        return id;
    }

    private static async Task<JsonNode> InspectAsync(string taskArn, string container)
    {
        var r = await DockerCli.RunAsync("inspect", await ContainerIdAsync(taskArn, container));
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonNode.Parse(r.Stdout)![0]!;
    }

    private static async Task<string> ExecAsync(string taskArn, string container, params string[] command)
    {
        var r = await DockerCli.RunAsync(["exec", await ContainerIdAsync(taskArn, container), .. command]);
        Assert.True(r.ExitCode == 0, $"exec {string.Join(' ', command)}: {r.Stdout} {r.Stderr}");
        return r.Stdout;
    }

    private static List<string> Strings(JsonNode? n) => n?.AsArray().Select(x => x!.GetValue<string>()).ToList() ?? [];

    [Fact]
    public async Task ManyOptions_OneTask_DockerShowsEachAsEcsDefinesIt()
    {
        await EcsScenario.RegisterAsync(Aws, "opts", """
            [{"name":"main","image":"berth-test/busybox:latest","memory":64,"command":["sleep","300"],"stopTimeout":2,
              "privileged":true,"readonlyRootFilesystem":true,"user":"1000:1000","workingDirectory":"/tmp","hostname":"opts-box",
              "dnsServers":["10.9.8.7"],"dnsSearchDomains":["berth.internal"],
              "extraHosts":[{"hostname":"db.local","ipAddress":"10.1.2.3"}],
              "systemControls":[{"namespace":"net.core.somaxconn","value":"512"}],
              "dockerSecurityOptions":["no-new-privileges"],
              "dockerLabels":{"team":"blue"},
              "ulimits":[{"name":"nofile","softLimit":1024,"hardLimit":2048}],
              "linuxParameters":{"capabilities":{"add":["NET_ADMIN"],"drop":["MKNOD"]},
                "devices":[{"hostPath":"/dev/null","containerPath":"/dev/berthnull","permissions":["read","write"]}],
                "initProcessEnabled":true,"sharedMemorySize":96,
                "tmpfs":[{"containerPath":"/scratch","size":16,"mountOptions":["noexec"]}],
                "maxSwap":32,"swappiness":10}},
             {"name":"quiet","image":"berth-test/busybox:latest","memory":16,"essential":false,"stopTimeout":2,
              "disableNetworking":true,"interactive":true,"pseudoTerminal":true,"entryPoint":["/bin/sh","-c"],"command":["sleep 300"]}]
            """, "--pid-mode", "host");
        var arn = (await EcsScenario.RunOneAsync(Aws, "default", "opts"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "RUNNING");

        var main = await InspectAsync(arn, "main");
        var host = main["HostConfig"]!;
        var config = main["Config"]!;
        Assert.True(host["Privileged"]!.GetValue<bool>());
        Assert.True(host["ReadonlyRootfs"]!.GetValue<bool>());
        Assert.Equal("1000:1000", config["User"]!.GetValue<string>());
        Assert.Equal("/tmp", config["WorkingDir"]!.GetValue<string>());
        Assert.Equal("opts-box", config["Hostname"]!.GetValue<string>());
        Assert.Equal(["10.9.8.7"], Strings(host["Dns"]));
        Assert.Equal(["berth.internal"], Strings(host["DnsSearch"]));
        Assert.Equal(["db.local:10.1.2.3"], Strings(host["ExtraHosts"]));
        Assert.Equal("512", host["Sysctls"]!["net.core.somaxconn"]!.GetValue<string>());
        Assert.Contains("no-new-privileges", Strings(host["SecurityOpt"])); // privileged adds label=disable beside it
        Assert.Equal("blue", config["Labels"]!["team"]!.GetValue<string>());
        var nofile = host["Ulimits"]!.AsArray().Single(u => u!["Name"]!.GetValue<string>() == "nofile")!;
        Assert.Equal((1024, 2048), (nofile["Soft"]!.GetValue<int>(), nofile["Hard"]!.GetValue<int>()));
        Assert.Contains("NET_ADMIN", Strings(host["CapAdd"]).Select(c => c.Replace("CAP_", "", StringComparison.Ordinal)));
        Assert.Contains("MKNOD", Strings(host["CapDrop"]).Select(c => c.Replace("CAP_", "", StringComparison.Ordinal)));
        var device = host["Devices"]![0]!;
        Assert.Equal(("/dev/null", "/dev/berthnull", "rw"),
            (device["PathOnHost"]!.GetValue<string>(), device["PathInContainer"]!.GetValue<string>(), device["CgroupPermissions"]!.GetValue<string>()));
        Assert.True(host["Init"]!.GetValue<bool>());
        Assert.Equal(96L * 1024 * 1024, host["ShmSize"]!.GetValue<long>());
        Assert.Equal("size=16m,noexec", host["Tmpfs"]!["/scratch"]!.GetValue<string>());
        Assert.Equal((64L + 32) * 1024 * 1024, host["MemorySwap"]!.GetValue<long>());
        Assert.Equal(10L, host["MemorySwappiness"]!.GetValue<long>());
        Assert.Equal("host", host["PidMode"]!.GetValue<string>());

        // And from inside: the resolver, the hosts entry, the init process as PID 1 seen through the host's pid namespace.
        var resolv = await ExecAsync(arn, "main", "cat", "/etc/resolv.conf");
        Assert.Contains("nameserver 10.9.8.7", resolv, StringComparison.Ordinal);
        Assert.Contains("search berth.internal", resolv, StringComparison.Ordinal);
        Assert.Contains("10.1.2.3", await ExecAsync(arn, "main", "cat", "/etc/hosts"), StringComparison.Ordinal);
        var write = await DockerCli.RunAsync("exec", await ContainerIdAsync(arn, "main"), "touch", "/rootfs-write-test");
        Assert.NotEqual(0, write.ExitCode); // read-only root file system

        var quiet = await InspectAsync(arn, "quiet");
        Assert.True(quiet["Config"]!["NetworkDisabled"]!.GetValue<bool>());
        Assert.True(quiet["Config"]!["OpenStdin"]!.GetValue<bool>());
        Assert.True(quiet["Config"]!["Tty"]!.GetValue<bool>());
        Assert.Equal(["/bin/sh", "-c"], Strings(quiet["Config"]!["Entrypoint"]));
        Assert.Equal(["sleep 300"], Strings(quiet["Config"]!["Cmd"]));

        await Aws.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "STOPPED");
    }

    [Fact]
    public async Task PidAndIpcModeTask_ContainersShareTheNamespaces()
    {
        await EcsScenario.RegisterAsync(Aws, "sharedns", """
            [{"name":"first","image":"berth-test/busybox:latest","memory":16,"command":["sh","-c","exec sleep 301"],"stopTimeout":2},
             {"name":"second","image":"berth-test/busybox:latest","memory":16,"command":["sh","-c","exec sleep 302"],"stopTimeout":2}]
            """, "--pid-mode", "task", "--ipc-mode", "task");
        var arn = (await EcsScenario.RunOneAsync(Aws, "default", "sharedns"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "RUNNING");

        // Each sees the other's process: one pid namespace for the task.
        var fromSecond = await ExecAsync(arn, "second", "ps");
        Assert.Contains("sleep 301", fromSecond, StringComparison.Ordinal);
        Assert.Contains("sleep 302", fromSecond, StringComparison.Ordinal);
        Assert.Contains("sleep 302", await ExecAsync(arn, "first", "ps"), StringComparison.Ordinal);
        // One IPC namespace: the same /proc/self/ns/ipc link in both.
        var ipc1 = (await ExecAsync(arn, "first", "readlink", "/proc/self/ns/ipc")).Trim();
        var ipc2 = (await ExecAsync(arn, "second", "readlink", "/proc/self/ns/ipc")).Trim();
        Assert.StartsWith("ipc:[", ipc1, StringComparison.Ordinal);
        Assert.Equal(ipc1, ipc2);
        var hostIpc = (await Processes.RunAsync("readlink", ["/proc/self/ns/ipc"])).Stdout.Trim();
        Assert.NotEqual(hostIpc, ipc1); // the task's own, not the host's
        var second = await InspectAsync(arn, "second");
        Assert.StartsWith("container:", second["HostConfig"]!["PidMode"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("shareable", (await InspectAsync(arn, "first"))["HostConfig"]!["IpcMode"]!.GetValue<string>());

        await Aws.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "STOPPED");
    }

    [Fact]
    public async Task VolumesFrom_TargetSeesTheSourcesMountsReadOnly()
    {
        // The target comes first in the definition: the agent still creates the source before it.
        await EcsScenario.RegisterAsync(Aws, "volfrom", """
            [{"name":"reader","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,
              "volumesFrom":[{"sourceContainer":"writer","readOnly":true}]},
             {"name":"writer","image":"berth-test/busybox:latest","memory":16,"command":["sh","-c","echo shared > /data/note; exec sleep 300"],"stopTimeout":2,
              "mountPoints":[{"sourceVolume":"data","containerPath":"/data"}]}]
            """, "--volumes", """[{"name":"data"}]""");
        var arn = (await EcsScenario.RunOneAsync(Aws, "default", "volfrom"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "RUNNING");

        var note = await Wait.ForAsync(async () =>
        {
            var r = await DockerCli.RunAsync("exec", await ContainerIdAsync(arn, "reader"), "cat", "/data/note");
            return r.ExitCode == 0 ? r.Stdout : null;
        }, TimeSpan.FromSeconds(20), "the writer's file seen by the reader");
        Assert.Equal("shared", note.Trim());
        var write = await DockerCli.RunAsync("exec", await ContainerIdAsync(arn, "reader"), "touch", "/data/other");
        Assert.NotEqual(0, write.ExitCode); // readOnly: true
        var vf = Strings((await InspectAsync(arn, "reader"))["HostConfig"]!["VolumesFrom"]);
        Assert.Single(vf);
        Assert.EndsWith("-writer-" + arn[(arn.LastIndexOf('/') + 1)..] + ":ro", vf[0], StringComparison.Ordinal);

        await Aws.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "STOPPED");
    }

    [Fact]
    public async Task Links_ClientListedFirst_ReachesTheLinkedContainerByItsAlias()
    {
        await EcsScenario.RegisterAsync(Aws, "linked", """
            [{"name":"client","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,"links":["web:webhost"]},
             {"name":"web","image":"berth-test/busybox:latest","memory":16,"command":["httpd","-f","-p","80","-h","/www"],"stopTimeout":2}]
            """);
        var arn = (await EcsScenario.RunOneAsync(Aws, "default", "linked"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "RUNNING");

        var body = await Wait.ForAsync(async () =>
        {
            var r = await DockerCli.RunAsync("exec", await ContainerIdAsync(arn, "client"), "wget", "-q", "-O", "-", "http://webhost/");
            return r.ExitCode == 0 ? r.Stdout : null;
        }, TimeSpan.FromSeconds(20), "the client to reach web as webhost");
        Assert.Contains("berth test image", body, StringComparison.Ordinal);

        await Aws.RunAsync("ecs", "stop-task", "--task", arn);
        await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "STOPPED");
    }

    [Theory]
    [InlineData("badstart-device", "\"linuxParameters\":{\"devices\":[{\"hostPath\":\"/dev/berth-no-such-device\"}]}", "/dev/berth-no-such-device")]
    [InlineData("badstart-sysctl", "\"systemControls\":[{\"namespace\":\"kernel.berth_bogus\",\"value\":\"1\"}]", "kernel.berth_bogus")]
    public async Task DockerCannotStartAContainer_TaskStopsWithTaskFailedToStartWithinSeconds(string family, string option, string named)
    {
        // The first container starts (with an init process, so SIGTERM stops it at once); Docker refuses the second
        // at start (a device the host lacks, a sysctl outside the container's namespaces).
        await EcsScenario.RegisterAsync(Aws, family, $$$"""
            [{"name":"ok","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":2,
              "linuxParameters":{"initProcessEnabled":true}},
             {"name":"broken","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],
              "dependsOn":[{"containerName":"ok","condition":"START"}],{{{option}}}}]
            """);
        var sw = Stopwatch.StartNew();
        var arn = (await EcsScenario.RunOneAsync(Aws, "default", family))["taskArn"]!.GetValue<string>();
        var t = await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "STOPPED", seconds: 20);
        // Measured by the task's own clock (createdAt to executionStoppedAt), not the CLI's polling.
        var took = t["executionStoppedAt"]!.GetValue<double>() - t["createdAt"]!.GetValue<double>();
        Assert.True(took < 10, $"stopped {took:F1} s after it was created ({sw.Elapsed} by the test's clock)");
        Assert.Equal("TaskFailedToStart", t["stopCode"]!.GetValue<string>());
        var reason = t["stoppedReason"]!.GetValue<string>();
        Assert.StartsWith("CannotStartContainerError", reason, StringComparison.Ordinal);
        Assert.Contains(named, reason, StringComparison.Ordinal);
        // Nothing of the task keeps running.
        var ok = await ContainerIdAsync(arn, "ok");
        var state = await DockerCli.RunAsync("inspect", "--format", "{{.State.Running}}", ok);
        Assert.True(state.ExitCode != 0 || state.Stdout.Trim() == "false", $"container 'ok' still running: {state.Stdout}");
        Assert.Equal("STOPPED", t["desiredStatus"]!.GetValue<string>());
    }
}
