using Berth.Agent;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// The host policy: path normalisation and prefixes, "..", symbolic links out of an allowed prefix, the Docker
/// socket (also through a directory above it), privileged, capabilities, devices, host pid/ipc; its attributes; and
/// the task engine refusing a task before it pulls or creates anything.
/// </summary>
public sealed class HostPolicyTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "berth-policy-" + Guid.NewGuid().ToString("N"));

    public HostPolicyTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static HostPolicy Policy(string[]? paths = null, string[]? caps = null, bool socket = false, bool privileged = false, bool devices = false, bool pid = false, bool ipc = false)
    {
        Assert.True(HostPolicy.TryCreate(paths ?? [], caps ?? [], socket, privileged, devices, pid, ipc, out var policy, out var error), error);
        return policy;
    }

    private static TaskSpec Mounting(string sourcePath, string volume = "data")
    {
        var spec = Desired("t", containers: ["web"]).Spec;
        spec.Volumes.Add(new VolumeSpec { Name = volume, HostSourcePath = sourcePath });
        spec.Containers[0].MountPoints.Add(new MountPoint { SourceVolume = volume, ContainerPath = "/data" });
        return spec;
    }

    [Theory]
    [InlineData("/srv/data", "/srv/data")]
    [InlineData("/srv//data/", "/srv/data")]
    [InlineData("/srv/./data/.", "/srv/data")]
    [InlineData("/", "/")]
    public void TryNormalizePath_AbsolutePath_Normalised(string path, string expected)
    {
        Assert.True(HostPolicy.TryNormalizePath(path, out var n, out _));
        Assert.Equal(expected, n);
    }

    [Theory]
    [InlineData("/srv/data/../../etc", "..")]
    [InlineData("relative/path", "absolute")]
    [InlineData("", "absolute")]
    public void TryNormalizePath_DotDotOrRelative_Refused(string path, string named)
    {
        Assert.False(HostPolicy.TryNormalizePath(path, out _, out var error));
        Assert.Contains(named, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/srv/data", "/srv/data", true)]
    [InlineData("/srv/data/x/y", "/srv/data", true)]
    [InlineData("/srv/database", "/srv/data", false)]
    [InlineData("/srv", "/srv/data", false)]
    [InlineData("/etc", "/", true)]
    public void IsUnder_ComparesWholeComponents(string path, string prefix, bool expected)
        => Assert.Equal(expected, HostPolicy.IsUnder(path, prefix));

    [Fact]
    public void TryCreate_BadPrefixOrCapability_RefusedNamingTheOption()
    {
        Assert.False(HostPolicy.TryCreate(["/srv/../etc"], [], false, false, false, false, false, out _, out var e1));
        Assert.Contains("--allow-host-path '/srv/../etc'", e1, StringComparison.Ordinal);
        Assert.False(HostPolicy.TryCreate(["srv"], [], false, false, false, false, false, out _, out var e2));
        Assert.Contains("absolute", e2, StringComparison.Ordinal);
        Assert.False(HostPolicy.TryCreate([], ["NET ADMIN"], false, false, false, false, false, out _, out var e3));
        Assert.Contains("--allow-capability", e3, StringComparison.Ordinal);
    }

    [Fact]
    public void Attributes_DefaultDeniesEverything_AndRoundTrip()
    {
        var attrs = HostPolicy.Default.Attributes().ToDictionary();
        Assert.Equal("none", attrs[HostPolicy.HostPathsAttribute]);
        Assert.Equal("denied", attrs[HostPolicy.PrivilegedAttribute]);
        Assert.Equal("denied", attrs[HostPolicy.DockerSocketAttribute]);
        Assert.Equal("none", attrs[HostPolicy.CapabilitiesAttribute]);
        Assert.Equal("denied", attrs[HostPolicy.DevicesAttribute]);
        Assert.Equal("denied", attrs[HostPolicy.HostPidAttribute]);
        Assert.Equal("denied", attrs[HostPolicy.HostIpcAttribute]);

        var policy = Policy(["/srv/data", "/home/ci/"], ["net_admin", "CAP_SYS_TIME"], privileged: true, pid: true);
        attrs = policy.Attributes().ToDictionary();
        Assert.Equal("/srv/data,/home/ci", attrs[HostPolicy.HostPathsAttribute]);
        Assert.Equal("NET_ADMIN,SYS_TIME", attrs[HostPolicy.CapabilitiesAttribute]);
        Assert.Equal("allowed", attrs[HostPolicy.PrivilegedAttribute]);
        var back = HostPolicy.FromAttributes(attrs)!;
        Assert.Equal(policy.HostPathPrefixes, back.HostPathPrefixes);
        Assert.True(back.Privileged && back.HostPid && !back.HostIpc && !back.DockerSocket && !back.Devices);
        Assert.True(back.AllowsCapability("cap_net_admin") && !back.AllowsCapability("SYS_ADMIN") && !back.AllowsCapability("ALL"));
        Assert.Null(HostPolicy.FromAttributes(new Dictionary<string, string> { ["ecs.os-type"] = "linux" }));
    }

    [Fact]
    public void Refusal_HostPathOutsideEveryPrefix_NamesContainerPathAndOption()
    {
        var check = new HostPolicyCheck(Policy([Path.Combine(_root, "allowed")]));
        var why = check.Refusal(Mounting("/etc"));
        Assert.Equal("container web: host path /etc (volume data) is not under an allowed prefix (berth agent --allow-host-path)", why);
        Assert.NotNull(new HostPolicyCheck(HostPolicy.Default).Refusal(Mounting(Path.Combine(_root, "allowed"))));
    }

    [Fact]
    public void Refusal_HostPathUnderAPrefix_AllowedAndBoundAsResolved()
    {
        var allowed = Directory.CreateDirectory(Path.Combine(_root, "allowed")).FullName;
        var check = new HostPolicyCheck(Policy([allowed]));
        var spec = Mounting(allowed + "//sub/./dir/");
        Assert.Null(check.Refusal(spec, spec.Containers[0], out var paths));
        Assert.Equal(allowed + "/sub/dir", paths["data"]);
        // Build binds the checked path, not the text of the definition.
        var create = Berth.Agent.ContainerSpec.Build(spec, spec.Containers[0], "t", new Dictionary<string, string>(), paths);
        Assert.Equal([allowed + "/sub/dir:/data"], create.HostConfig!.Binds);
    }

    [Fact]
    public void Refusal_DotDotEscape_Refused()
    {
        var allowed = Directory.CreateDirectory(Path.Combine(_root, "allowed")).FullName;
        var why = new HostPolicyCheck(Policy([allowed])).Refusal(Mounting(allowed + "/../../etc"));
        Assert.Contains("must not contain '..'", why, StringComparison.Ordinal);
    }

    [Fact]
    public void Refusal_SymlinkInsideAPrefixPointingOut_RefusedWithTheResolvedPath()
    {
        var allowed = Directory.CreateDirectory(Path.Combine(_root, "allowed")).FullName;
        var outside = Directory.CreateDirectory(Path.Combine(_root, "secret")).FullName;
        File.CreateSymbolicLink(Path.Combine(allowed, "escape"), "../secret");
        File.CreateSymbolicLink(Path.Combine(allowed, "inside"), Path.Combine(allowed, "real"));
        var check = new HostPolicyCheck(Policy([allowed]));

        var why = check.Refusal(Mounting(allowed + "/escape/keys"));
        Assert.Contains($"resolves to {outside}/keys", why, StringComparison.Ordinal);
        Assert.Contains("is not under an allowed prefix", why, StringComparison.Ordinal);

        var spec = Mounting(allowed + "/inside/x");
        Assert.Null(check.Refusal(spec, spec.Containers[0], out var paths));
        Assert.Equal(allowed + "/real/x", paths["data"]);
    }

    [Fact]
    public void Refusal_PrefixThatIsASymlink_AllowsPathsThroughIt()
    {
        var real = Directory.CreateDirectory(Path.Combine(_root, "real")).FullName;
        var link = Path.Combine(_root, "link");
        File.CreateSymbolicLink(link, real);
        Assert.Null(new HostPolicyCheck(Policy([link])).Refusal(Mounting(link + "/x")));
    }

    [Fact]
    public void Refusal_SymlinkLoop_RefusedNotHung()
    {
        var allowed = Directory.CreateDirectory(Path.Combine(_root, "allowed")).FullName;
        File.CreateSymbolicLink(Path.Combine(allowed, "a"), Path.Combine(allowed, "b"));
        File.CreateSymbolicLink(Path.Combine(allowed, "b"), Path.Combine(allowed, "a"));
        var why = new HostPolicyCheck(Policy([allowed])).Refusal(Mounting(allowed + "/a"));
        Assert.Contains("too many levels of symbolic links", why, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/var/run/docker.sock")]
    [InlineData("/run/docker.sock")]
    [InlineData("/var/run")]
    [InlineData("/run")]
    [InlineData("/")]
    public void Refusal_DockerSocketEvenUnderAllowedPrefix_RefusedUnlessAllowed(string path)
    {
        var why = new HostPolicyCheck(Policy(["/"])).Refusal(Mounting(path));
        Assert.Contains("exposes the Docker socket", why, StringComparison.Ordinal);
        Assert.Contains("(berth agent --allow-docker-socket)", why, StringComparison.Ordinal);
        Assert.Null(new HostPolicyCheck(Policy(["/"], socket: true)).Refusal(Mounting(path)));
        // The socket also needs its path allowed.
        Assert.Contains("not under an allowed prefix", new HostPolicyCheck(Policy(["/srv"], socket: true)).Refusal(Mounting(path)), StringComparison.Ordinal);
    }

    [Fact]
    public void Refusal_DockerHostSocketOfTheAgent_Guarded()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_root, "rootless")).FullName;
        var check = new HostPolicyCheck(Policy([_root]), [HostPolicyCheck.SocketPathOf(new Uri("unix://" + dir + "/docker.sock"))!]);
        Assert.Contains($"exposes the Docker socket {dir}/docker.sock", check.Refusal(Mounting(dir)), StringComparison.Ordinal);
        Assert.Null(check.Refusal(Mounting(Path.Combine(_root, "elsewhere"))));
    }

    [Fact]
    public void Refusal_PrivilegedCapabilitiesDevicesPidIpc_EachNamesItsOption()
    {
        var spec = Desired("t", containers: ["web"]).Spec;
        var c = spec.Containers[0];
        var deny = new HostPolicyCheck(HostPolicy.Default);
        Assert.Null(deny.Refusal(spec));

        c.Privileged = true;
        Assert.Equal("container web: privileged is not allowed on this container instance (berth agent --allow-privileged)", deny.Refusal(spec));
        Assert.Null(new HostPolicyCheck(Policy(privileged: true)).Refusal(spec));
        c.Privileged = false;

        c.LinuxParameters = new LinuxParameters();
        c.LinuxParameters.CapabilitiesAdd.Add("NET_ADMIN");
        c.LinuxParameters.CapabilitiesAdd.Add("SYS_ADMIN");
        Assert.Equal("container web: linuxParameters.capabilities.add NET_ADMIN is not allowed on this container instance (berth agent --allow-capability NET_ADMIN)", deny.Refusal(spec));
        Assert.Contains("capabilities.add SYS_ADMIN", new HostPolicyCheck(Policy(caps: ["NET_ADMIN"])).Refusal(spec), StringComparison.Ordinal);
        Assert.Null(new HostPolicyCheck(Policy(caps: ["NET_ADMIN", "SYS_ADMIN"])).Refusal(spec));
        Assert.Null(new HostPolicyCheck(Policy(caps: ["ALL"])).Refusal(spec));
        c.LinuxParameters.CapabilitiesAdd.Clear();
        c.LinuxParameters.CapabilitiesAdd.Add("ALL");
        Assert.Contains("capabilities.add ALL", new HostPolicyCheck(Policy(caps: ["NET_ADMIN"])).Refusal(spec), StringComparison.Ordinal);
        c.LinuxParameters.CapabilitiesAdd.Clear();
        c.LinuxParameters.CapabilitiesDrop.Add("MKNOD"); // dropping is always fine
        Assert.Null(deny.Refusal(spec));

        c.LinuxParameters.Devices.Add(new Device { HostPath = "/dev/fuse" });
        Assert.Equal("container web: linuxParameters.devices /dev/fuse is not allowed on this container instance (berth agent --allow-devices)", deny.Refusal(spec));
        Assert.Null(new HostPolicyCheck(Policy(devices: true)).Refusal(spec));
        c.LinuxParameters.Devices.Clear();

        spec.PidMode = "host";
        Assert.Contains("pidMode host", deny.Refusal(spec), StringComparison.Ordinal);
        Assert.Null(new HostPolicyCheck(Policy(pid: true)).Refusal(spec));
        spec.PidMode = "task"; // the task's own namespace needs nothing from the host
        spec.IpcMode = "host";
        Assert.Contains("(berth agent --allow-host-ipc)", deny.Refusal(spec), StringComparison.Ordinal);
        spec.IpcMode = "task";
        Assert.Null(deny.Refusal(spec));
    }

    [Fact]
    public void Refusal_TaskScopedVolume_NeedsNothing()
    {
        var spec = Mounting("");
        Assert.Null(new HostPolicyCheck(HostPolicy.Default).Refusal(spec));
    }

    [Theory]
    [InlineData("seccomp=unconfined", true)]
    [InlineData("seccomp:unconfined", true)]
    [InlineData("seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}", true)] // a task's own profile can allow everything
    [InlineData("seccomp=builtin", false)]
    [InlineData("apparmor=unconfined", true)]
    [InlineData("apparmor:unconfined", true)]
    [InlineData("apparmor=docker-default", false)]
    [InlineData("label=disable", true)]
    [InlineData("label:disable", true)]
    [InlineData("disable", true)]
    [InlineData("label=type:spc_t", true)]
    [InlineData("label=level:s0:c100,c200", true)]
    [InlineData("systempaths=unconfined", true)]
    [InlineData("no-new-privileges", false)]
    [InlineData("no-new-privileges=true", false)]
    [InlineData("no-new-privileges:true", false)]
    [InlineData("no-new-privileges=false", true)]
    [InlineData("no-new-privileges:0", true)]
    [InlineData("writable-cgroups", true)]
    [InlineData("writable-cgroups=true", true)]
    [InlineData("writable-cgroups=false", false)]
    [InlineData("bogus", false)]
    public void Unconfining_ReadsOptionsAsDockerDoes(string option, bool expected)
        => Assert.Equal(expected, HostPolicy.Unconfining(option));

    [Fact]
    public void Refusal_UnconfiningSecurityOption_RefusedUnlessAllowed()
    {
        var spec = Desired("t", containers: ["web"]).Spec;
        var c = spec.Containers[0];
        c.DockerSecurityOptions.Add("no-new-privileges");
        var deny = new HostPolicyCheck(HostPolicy.Default);
        Assert.Null(deny.Refusal(spec));

        c.DockerSecurityOptions.Add("seccomp=unconfined");
        Assert.Equal("container web: dockerSecurityOptions seccomp=unconfined is not allowed on this container instance (berth agent --allow-unconfined)", deny.Refusal(spec));
        Assert.Null(new HostPolicyCheck(HostPolicy.Default with { Unconfined = true }).Refusal(spec));
        Assert.Null(new HostPolicyCheck(HostPolicy.AllowAll).Refusal(spec));
        // privileged does not imply it: the operator allows each on its own.
        Assert.NotNull(new HostPolicyCheck(Policy(privileged: true)).Refusal(spec));
    }

    [Fact]
    public void Attributes_Unconfined_DeniedByDefaultAndRoundTrips()
    {
        Assert.Equal("denied", HostPolicy.Default.Attributes().ToDictionary()[HostPolicy.UnconfinedAttribute]);
        var attrs = (HostPolicy.Default with { Unconfined = true }).Attributes().ToDictionary();
        Assert.Equal("allowed", attrs[HostPolicy.UnconfinedAttribute]);
        Assert.True(HostPolicy.FromAttributes(attrs)!.Unconfined);
        Assert.False(HostPolicy.FromAttributes(HostPolicy.Default.Attributes().ToDictionary())!.Unconfined);
    }

    [Fact]
    public async Task TaskEngine_TaskAskingForMore_StoppedTaskFailedToStartWithoutPullOrCreate()
    {
        var runtime = new FakeContainerRuntime();
        await using var engine = new TaskEngine(runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string>(),
            TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60), new FakeTimeProvider(), NullLogger<TaskEngine>.Instance,
            hostPolicy: new HostPolicyCheck(HostPolicy.Default));
        await engine.StartAsync(CancellationToken.None);
        var refused = Desired("hp", containers: ["web"]);
        refused.Spec.Volumes.Add(new VolumeSpec { Name = "etc", HostSourcePath = "/etc" });
        refused.Spec.Containers[0].MountPoints.Add(new MountPoint { SourceVolume = "etc", ContainerPath = "/host-etc" });
        var fine = Desired("ok", containers: ["web"]);
        engine.Apply(Snapshot(1, refused, fine));

        var stopped = (await ReadUntilAsync(engine.Reports, Arn("hp"), "STOPPED"))[^1];
        await engine.WhenIdleAsync();

        Assert.Equal("TaskFailedToStart", stopped.StopCode);
        Assert.Equal("CannotStartContainerError: container web: host path /etc (volume etc) is not under an allowed prefix (berth agent --allow-host-path)", stopped.StoppedReason);
        Assert.Single(runtime.Created); // only the other task's container
        Assert.Equal(Arn("ok"), runtime.Created[0].Labels["com.amazonaws.ecs.task-arn"]);
        Assert.Single(runtime.Calls, c => c.StartsWith("pull:", StringComparison.Ordinal)); // the refused task pulled nothing
    }
}
