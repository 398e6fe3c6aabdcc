using Berth.Core.Agent;
using Proto = Berth.Core.Agent;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>The container options beyond the basics, from the typed spec to Docker's create parameters, as ECS maps them.</summary>
public sealed class ContainerOptionsTests
{
    private static Proto.ContainerSpec Container(string name, bool essential = true) => new() { Name = name, Image = "busybox", Essential = essential, MemoryMib = 64 };

    [Fact]
    public void Build_EveryOption_MapsOntoDocker()
    {
        var task = new TaskSpec { Family = "opts", Revision = 2, NetworkMode = "bridge" };
        var c = Container("app");
        c.Privileged = true;
        c.ReadonlyRootFilesystem = true;
        c.DnsServers.AddRange(["10.0.0.2", "10.0.0.3"]);
        c.DnsSearchDomains.Add("example.internal");
        c.ExtraHosts.Add(new Proto.HostEntry { Hostname = "db", IpAddress = "10.1.2.3" });
        c.SystemControls["net.core.somaxconn"] = "1024";
        c.DisableNetworking = true;
        c.Interactive = true;
        c.PseudoTerminal = true;
        c.DockerSecurityOptions.Add("no-new-privileges");
        c.Hostname = "box";
        var lp = new Proto.LinuxParameters { InitProcessEnabled = true, SharedMemorySizeMib = 128, MaxSwapMib = 32, Swappiness = 10 };
        lp.CapabilitiesAdd.Add("NET_ADMIN");
        lp.CapabilitiesDrop.Add("MKNOD");
        var dev = new Proto.Device { HostPath = "/dev/null", ContainerPath = "/dev/mynull" };
        dev.Permissions.AddRange(["read", "write"]);
        lp.Devices.Add(dev);
        lp.Devices.Add(new Proto.Device { HostPath = "/dev/zero" });
        var tmpfs = new Proto.Tmpfs { ContainerPath = "/scratch", SizeMib = 16 };
        tmpfs.MountOptions.AddRange(["noexec", "nosuid"]);
        lp.Tmpfs.Add(tmpfs);
        c.LinuxParameters = lp;
        task.Containers.Add(c);

        var p = Berth.Agent.ContainerSpec.Build(task, c, "t1", new Dictionary<string, string>());
        var h = p.HostConfig!;

        Assert.True(h.Privileged);
        Assert.True(h.ReadonlyRootfs);
        Assert.Equal(["10.0.0.2", "10.0.0.3"], h.DNS);
        Assert.Equal(["example.internal"], h.DNSSearch);
        Assert.Equal(["db:10.1.2.3"], h.ExtraHosts);
        Assert.Equal("1024", h.Sysctls!["net.core.somaxconn"]);
        Assert.True(p.NetworkDisabled);
        Assert.True(p.OpenStdin);
        Assert.True(p.Tty);
        Assert.Equal(["no-new-privileges"], h.SecurityOpt);
        Assert.Equal("box", p.Hostname);
        Assert.Equal(["NET_ADMIN"], h.CapAdd);
        Assert.Equal(["MKNOD"], h.CapDrop);
        Assert.Equal(("/dev/null", "/dev/mynull", "rw"), (h.Devices[0].PathOnHost, h.Devices[0].PathInContainer, h.Devices[0].CgroupPermissions));
        Assert.Equal(("/dev/zero", "/dev/zero", "rwm"), (h.Devices[1].PathOnHost, h.Devices[1].PathInContainer, h.Devices[1].CgroupPermissions));
        Assert.True(h.Init);
        Assert.Equal(128L * 1024 * 1024, h.ShmSize);
        Assert.Equal("size=16m,noexec,nosuid", h.Tmpfs!["/scratch"]);
        Assert.Equal((64L + 32) * 1024 * 1024, h.MemorySwap); // ECS: memory plus maxSwap
        Assert.Equal(10L, h.MemorySwappiness);
        Assert.Null(h.PidMode);
        Assert.Null(h.IpcMode);
    }

    [Fact]
    public void Build_NoOptions_LeavesDockerDefaults()
    {
        var task = new TaskSpec { Family = "plain", Revision = 1 };
        var c = Container("app");
        task.Containers.Add(c);

        var p = Berth.Agent.ContainerSpec.Build(task, c, "t1", new Dictionary<string, string>());

        Assert.False(p.HostConfig!.Privileged);
        Assert.False(p.HostConfig.ReadonlyRootfs);
        Assert.Null(p.HostConfig.DNS);
        Assert.Null(p.HostConfig.Sysctls);
        Assert.Null(p.HostConfig.CapAdd);
        Assert.Null(p.HostConfig.Init);
        Assert.Equal(0L, p.HostConfig.MemorySwap);
        Assert.Null(p.HostConfig.MemorySwappiness);
        Assert.False(p.Tty);
    }

    [Fact]
    public void Build_MaxSwapWithoutSwappiness_UsesEcsDefaultOf60()
    {
        var task = new TaskSpec { Family = "swap", Revision = 1 };
        var c = Container("app");
        c.LinuxParameters = new Proto.LinuxParameters { MaxSwapMib = 0 };
        task.Containers.Add(c);

        var h = Berth.Agent.ContainerSpec.Build(task, c, "t1", new Dictionary<string, string>()).HostConfig!;

        Assert.Equal(64L * 1024 * 1024, h.MemorySwap); // maxSwap 0: no swap at all
        Assert.Equal(60L, h.MemorySwappiness);
    }

    [Fact]
    public void Build_VolumesFrom_NamesTheSourcesDockerContainer()
    {
        var task = new TaskSpec { Family = "vf", Revision = 3 };
        var data = Container("data", essential: false);
        var app = Container("app");
        app.VolumesFrom.Add(new Proto.VolumeFrom { SourceContainer = "data", ReadOnly = true });
        task.Containers.AddRange([data, app]);

        var p = Berth.Agent.ContainerSpec.Build(task, app, "t9", new Dictionary<string, string>());

        Assert.Equal(["ecs-vf-3-data-t9:ro"], p.HostConfig!.VolumesFrom);
        Assert.Equal([("data", false)], Berth.Agent.ContainerSpec.Prerequisites(task, app));
    }

    [Fact]
    public void Build_PidAndIpcTask_FirstIndependentEssentialContainerHoldsTheNamespaces()
    {
        var task = new TaskSpec { Family = "ns", Revision = 1, PidMode = "task", IpcMode = "task" };
        var init = Container("init", essential: false);
        var main = Container("main");
        var side = Container("side");
        side.DependsOn.Add(new ContainerDependency { ContainerName = "main", Condition = "START" });
        task.Containers.AddRange([init, main, side]);

        Assert.Equal("main", Berth.Agent.ContainerSpec.NamespaceHolder(task)!.Name);
        var holder = Berth.Agent.ContainerSpec.Build(task, main, "t1", new Dictionary<string, string>()).HostConfig!;
        Assert.Null(holder.PidMode);
        Assert.Equal("shareable", holder.IpcMode);
        foreach (var joiner in new[] { init, side })
        {
            var h = Berth.Agent.ContainerSpec.Build(task, joiner, "t1", new Dictionary<string, string>()).HostConfig!;
            Assert.Equal("container:ecs-ns-1-main-t1", h.PidMode);
            Assert.Equal("container:ecs-ns-1-main-t1", h.IpcMode);
            Assert.Contains(("main", true), Berth.Agent.ContainerSpec.Prerequisites(task, joiner));
        }
    }

    [Theory]
    [InlineData("host", "none", "host", "none")]
    [InlineData("host", "host", "host", "host")]
    [InlineData("", "", null, null)]
    public void Build_HostAndNoneModes_PassStraightThrough(string pid, string ipc, string? dockerPid, string? dockerIpc)
    {
        var task = new TaskSpec { Family = "ns", Revision = 1, PidMode = pid, IpcMode = ipc };
        var c = Container("app");
        task.Containers.Add(c);

        var h = Berth.Agent.ContainerSpec.Build(task, c, "t1", new Dictionary<string, string>()).HostConfig!;

        Assert.Equal(dockerPid, h.PidMode);
        Assert.Equal(dockerIpc, h.IpcMode);
        Assert.Null(Berth.Agent.ContainerSpec.NamespaceHolder(task));
        Assert.Empty(Berth.Agent.ContainerSpec.Prerequisites(task, c));
    }

    [Fact]
    public void Build_Links_NameTheTargetsDockerContainerAndWaitForIt()
    {
        var task = new TaskSpec { Family = "ln", Revision = 4, NetworkMode = "bridge" };
        var db = Container("db");
        var app = Container("app");
        app.Links.AddRange(["db", "db:database"]);
        task.Containers.AddRange([app, db]);

        var p = Berth.Agent.ContainerSpec.Build(task, app, "t2", new Dictionary<string, string>());

        Assert.Equal(["ecs-ln-4-db-t2:db", "ecs-ln-4-db-t2:database"], p.HostConfig!.Links);
        Assert.Equal([("db", true), ("db", true)], Berth.Agent.ContainerSpec.Prerequisites(task, app));
    }
}
