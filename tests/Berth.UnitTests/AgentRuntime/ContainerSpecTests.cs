using Berth.Core.Agent;
using Proto = Berth.Core.Agent;

namespace Berth.UnitTests.AgentRuntime;

public sealed class ContainerSpecTests
{
    private static (TaskSpec Task, Proto.ContainerSpec Container) Spec()
    {
        var task = new TaskSpec { Family = "web", Revision = 7, NetworkMode = "bridge" };
        task.Volumes.Add(new VolumeSpec { Name = "data" });
        task.Volumes.Add(new VolumeSpec { Name = "host", HostSourcePath = "/srv/x" });
        var c = new Proto.ContainerSpec { Name = "app", Image = "nginx:1", Essential = true, StopTimeoutSeconds = 12, MemoryMib = 256, CpuUnits = 128 };
        c.Environment.Add(new KeyValue { Name = "A", Value = "definition" });
        c.Environment.Add(new KeyValue { Name = "B", Value = "b" });
        c.Environment.Add(new KeyValue { Name = "A", Value = "override" });
        c.PortMappings.Add(new PortMapping { ContainerPort = 80, HostPort = 0, Protocol = "tcp" });
        c.PortMappings.Add(new PortMapping { ContainerPort = 53, HostPort = 5353, Protocol = "udp" });
        c.MountPoints.Add(new MountPoint { SourceVolume = "data", ContainerPath = "/data" });
        c.MountPoints.Add(new MountPoint { SourceVolume = "host", ContainerPath = "/x", ReadOnly = true });
        c.DockerLabels["com.amazonaws.ecs.task-arn"] = "spoofed";
        c.DockerLabels["team"] = "blue";
        c.HealthCheck = new HealthCheck { IntervalSeconds = 0, Retries = 0, StartPeriodSeconds = 10 };
        c.HealthCheck.Command.AddRange(["CMD-SHELL", "curl -f http://localhost/ || exit 1"]);
        c.LogConfiguration = new LogConfiguration { LogDriver = "awslogs" };
        return (task, c);
    }

    [Fact]
    public void Build_TypedSpec_MapsToDockerCreateParameters()
    {
        var (task, c) = Spec();

        var p = Berth.Agent.ContainerSpec.Build(task, c, "abc123", new Dictionary<string, string> { ["com.amazonaws.ecs.task-arn"] = "arn:task" });

        Assert.Equal("ecs-web-7-app-abc123", p.Name);
        Assert.Equal(["A=override", "B=b"], p.Env);
        Assert.Equal("arn:task", p.Labels["com.amazonaws.ecs.task-arn"]); // Berth's labels win over dockerLabels
        Assert.Equal("blue", p.Labels["team"]);
        Assert.Equal(TimeSpan.FromSeconds(12), p.StopTimeout);
        Assert.Equal("", p.HostConfig!.PortBindings!["80/tcp"]!.Single().HostPort);
        Assert.Equal("5353", p.HostConfig.PortBindings!["53/udp"]!.Single().HostPort);
        Assert.Equal(["ecs-abc123-data:/data", "/srv/x:/x:ro"], p.HostConfig.Binds);
        Assert.Equal(256L * 1024 * 1024, p.HostConfig.Memory);
        Assert.Equal(128, p.HostConfig.CPUShares);
        var hc = Assert.IsType<Docker.DotNet.Models.HealthcheckConfig>(p.Healthcheck);
        Assert.Equal(["CMD-SHELL", "curl -f http://localhost/ || exit 1"], hc.Test);
        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), 3L, TimeSpan.FromSeconds(10)),
            (hc.Interval, hc.Timeout, hc.Retries, hc.StartPeriod));
        Assert.Equal("json-file", p.HostConfig.LogConfig.Type); // other drivers are another issue's
        Assert.Null(p.Cmd); // the image's default
    }

    [Fact]
    public void Build_WithoutHealthCheck_LeavesTheImagesOwn()
    {
        var (task, c) = Spec();
        c.HealthCheck = null;

        var p = Berth.Agent.ContainerSpec.Build(task, c, "abc123", new Dictionary<string, string>());

        Assert.Null(p.Healthcheck);
    }

    [Theory]
    [InlineData("awslogs", "json-file", 0)]
    [InlineData("json-file", "json-file", 1)]
    [InlineData("syslog", "syslog", 1)]
    [InlineData("", "json-file", 0)]
    public void LogConfigOf_Driver_AwslogsFollowedFromJsonFileOthersPassedToDocker(string driver, string dockerDriver, int options)
    {
        var lc = new Berth.Core.Agent.LogConfiguration { LogDriver = driver };
        lc.Options[driver == "awslogs" ? "awslogs-group" : "max-size"] = "x";
        var config = Berth.Agent.ContainerSpec.LogConfigOf(lc);
        Assert.Equal(dockerDriver, config.Type);
        Assert.Equal(options, config.Config.Count);
        Assert.Equal("json-file", Berth.Agent.ContainerSpec.LogConfigOf(null).Type);
    }
}
