using System.Text.Json.Nodes;
using Berth.Agent;
using Berth.Agent.Metadata;
using Berth.Core.Agent;
using PortMapping = Berth.Core.Agent.PortMapping;
using LogConfiguration = Berth.Core.Agent.LogConfiguration;
using Docker.DotNet.Models;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>The task metadata v4 documents, against the field names and omissions of ECS's documented examples.</summary>
public sealed class MetadataDocumentsTests
{
    private const string TaskArn = "arn:aws:ecs:us-east-1:000000000000:task/default/8f03e41243824aea923aca126495f665";
    private const string ContainerArn = "arn:aws:ecs:us-east-1:000000000000:container/default/8f03e41243824aea923aca126495f665/0206b271-b33f-47ab-86c6-a0ba208a70a9";

    private static TaskMetadataView View(string networkMode = "bridge", string service = "MyService", int taskCpu = 256, int taskMemory = 512)
    {
        var spec = new Berth.Core.Agent.TaskSpec
        {
            ClusterArn = "arn:aws:ecs:us-east-1:000000000000:cluster/default",
            Family = "curltest",
            Revision = 24,
            NetworkMode = networkMode,
            CpuUnits = taskCpu,
            MemoryMib = taskMemory,
            Metadata = new TaskMetadata { LaunchType = "EC2", ServiceName = service },
        };
        spec.Metadata.ContainerArns["curl"] = ContainerArn;
        var c = new Berth.Core.Agent.ContainerSpec { Name = "curl", Image = "localhost:4566/curltest:latest", CpuUnits = 10, MemoryMib = 128 };
        c.PortMappings.Add(new PortMapping { ContainerPort = 80, Protocol = "tcp" });
        c.LogConfiguration = new LogConfiguration { LogDriver = "awslogs" };
        c.LogConfiguration.Options["awslogs-group"] = "/ecs/metadata";
        c.LogConfiguration.Options["awslogs-stream-prefix"] = "ecs";
        spec.Containers.Add(c);
        var desired = new DesiredTask { TaskArn = TaskArn, DesiredStatus = "RUNNING", LastStatus = "RUNNING", Spec = spec };
        return new TaskMetadataView(desired, "RUNNING", PullStartedAt: 1_601_599_386_202, PullStoppedAt: 1_601_599_386_312, ExecutionStoppedAt: 0);
    }

    private static ContainerInspectResponse Inspect(string state = "running", string network = "bridge") => new()
    {
        ID = "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66",
        Name = "/ecs-curltest-24-curl-8f03e41243824aea923aca126495f665",
        Image = "sha256:d691691e9652791a60114e67b365688d20d19940dde7c4736ea30e660d8d3553",
        Created = new DateTime(2020, 10, 2, 0, 15, 7, 620, DateTimeKind.Utc),
        State = new Docker.DotNet.Models.State
        {
            Status = state,
            Running = state == "running",
            ExitCode = state == "exited" ? 3 : 0,
            StartedAt = "2020-10-02T00:15:08.062559351Z",
            FinishedAt = state == "exited" ? "2020-10-02T00:16:08.5Z" : "0001-01-01T00:00:00Z",
        },
        Config = new ContainerConfig
        {
            Image = "127.0.0.1:4566/curltest:latest",
            Labels = new Dictionary<string, string>
            {
                [ContainerLabels.Cluster] = "arn:aws:ecs:us-east-1:000000000000:cluster/default",
                [ContainerLabels.ContainerName] = "curl",
                [ContainerLabels.TaskArn] = TaskArn,
                [ContainerLabels.Family] = "curltest",
                [ContainerLabels.Version] = "24",
                [ContainerLabels.MetadataToken] = "secret-token",
                [ContainerLabels.CredentialsToken] = "credentials-secret",
            },
        },
        HostConfig = new HostConfig { NetworkMode = network, LogConfig = new LogConfig { Type = "json-file", Config = new Dictionary<string, string>() } },
        NetworkSettings = new NetworkSettings
        {
            Ports = network == "bridge"
                ? new Dictionary<string, IList<Docker.DotNet.Models.PortBinding>> { ["80/tcp"] = [new() { HostIP = "0.0.0.0", HostPort = "32768" }, new() { HostIP = "::", HostPort = "32768" }] }
                : new Dictionary<string, IList<Docker.DotNet.Models.PortBinding>>(),
            Networks = new Dictionary<string, EndpointSettings>
            {
                [network] = network == "host" ? new EndpointSettings() : new EndpointSettings { IPAddress = "10.0.2.100", IPPrefixLen = 24, Gateway = "10.0.2.1", MacAddress = "0e:9e:32:c7:48:85" },
            },
        },
        Mounts = [],
    };

    private static string[] Keys(JsonNode? o) => [.. o!.AsObject().Select(kv => kv.Key)];

    [Fact]
    public void Container_Bridge_HasTheDocumentedFieldsAndValues()
    {
        var o = MetadataDocuments.Container(Inspect(), View());

        Assert.Equal(["DockerId", "Name", "DockerName", "Image", "ImageID", "Ports", "Labels", "DesiredStatus", "KnownStatus", "Limits",
            "CreatedAt", "StartedAt", "Type", "LogDriver", "LogOptions", "ContainerARN", "Networks"], Keys(o));
        Assert.Equal("curl", (string?)o["Name"]);
        Assert.Equal("ecs-curltest-24-curl-8f03e41243824aea923aca126495f665", (string?)o["DockerName"]);
        Assert.Equal("localhost:4566/curltest:latest", (string?)o["Image"]); // as the definition names it, not the rewritten pull reference
        Assert.Equal("RUNNING", (string?)o["KnownStatus"]);
        Assert.Equal("""{"CPU":10,"Memory":128}""", o["Limits"]!.ToJsonString());
        Assert.Equal("2020-10-02T00:15:07.62Z", (string?)o["CreatedAt"]);
        Assert.Equal("2020-10-02T00:15:08.062559351Z", (string?)o["StartedAt"]);
        Assert.Equal("NORMAL", (string?)o["Type"]);
        Assert.Equal("awslogs", (string?)o["LogDriver"]);
        Assert.Equal("/ecs/metadata", (string?)o["LogOptions"]!["awslogs-group"]);
        Assert.Equal(ContainerArn, (string?)o["ContainerARN"]);
        Assert.Equal("""[{"ContainerPort":80,"Protocol":"tcp","HostPort":32768,"HostIp":"0.0.0.0"}]""", o["Ports"]!.ToJsonString());
        Assert.Equal("""[{"NetworkMode":"bridge","IPv4Addresses":["10.0.2.100"]}]""", o["Networks"]!.ToJsonString());
        // The URI's token is the container's secret: not shown among its labels.
        Assert.Null(o["Labels"]![ContainerLabels.MetadataToken]);
        Assert.Null(o["Labels"]![ContainerLabels.CredentialsToken]);
        Assert.Equal("24", (string?)o["Labels"]![ContainerLabels.Version]);
    }

    [Fact]
    public void Container_Exited_HasExitCodeAndFinishedAtAndKnownStatusStopped()
    {
        var o = MetadataDocuments.Container(Inspect(state: "exited"), View());

        Assert.Equal("STOPPED", (string?)o["KnownStatus"]);
        Assert.Equal(3, (long?)o["ExitCode"]);
        Assert.Equal("2020-10-02T00:16:08.5Z", (string?)o["FinishedAt"]);
    }

    [Fact]
    public void Container_Running_OmitsExitCodeFinishedAtHealthAndVolumes()
    {
        var o = MetadataDocuments.Container(Inspect(), View());

        foreach (var absent in new[] { "ExitCode", "FinishedAt", "Health", "Volumes" })
        {
            Assert.False(o.ContainsKey(absent), absent);
        }
    }

    [Fact]
    public void Container_Awsvpc_DescribesTheInterfaceAsAnEni()
    {
        var o = MetadataDocuments.Container(Inspect(network: "berth-task-net"), View(networkMode: "awsvpc"));

        var n = o["Networks"]![0]!;
        Assert.Equal("awsvpc", (string?)n["NetworkMode"]);
        Assert.Equal("10.0.2.100", (string?)n["IPv4Addresses"]![0]);
        Assert.Equal(0, (int?)n["AttachmentIndex"]);
        Assert.Equal("0e:9e:32:c7:48:85", (string?)n["MACAddress"]);
        Assert.Equal("10.0.2.0/24", (string?)n["IPv4SubnetCIDRBlock"]);
        Assert.Equal("10.0.2.1/24", (string?)n["SubnetGatewayIpv4Address"]);
        // No port translation in awsvpc: the host port is the container port.
        Assert.Equal("""[{"ContainerPort":80,"Protocol":"tcp","HostPort":80}]""", o["Ports"]!.ToJsonString());
    }

    [Fact]
    public void Container_InThePauseContainersNamespace_ShowsThePauseContainersNetwork()
    {
        var pause = Inspect(network: "berth-task-net");
        pause.ID = "pause0123";
        var app = Inspect(network: "berth-task-net");
        app.HostConfig!.NetworkMode = "container:pause0123";
        app.NetworkSettings!.Networks = new Dictionary<string, EndpointSettings>();

        Assert.False(MetadataDocuments.Container(app, View(networkMode: "awsvpc")).ContainsKey("Networks"));
        var o = MetadataDocuments.Container(app, View(networkMode: "awsvpc"), pause);
        Assert.Equal("10.0.2.100", (string?)o["Networks"]![0]!["IPv4Addresses"]![0]);
        var task = MetadataDocuments.Task(TaskArn, View(networkMode: "awsvpc"), [app, pause], "us-east-1a");
        Assert.All(task["Containers"]!.AsArray(), c => Assert.Equal("awsvpc", (string?)c!["Networks"]![0]!["NetworkMode"]));
    }

    [Fact]
    public void Container_Host_HasNetworkModeHostWithoutAddresses()
    {
        var o = MetadataDocuments.Container(Inspect(network: "host"), View(networkMode: "host"));

        Assert.Equal("""[{"NetworkMode":"host"}]""", o["Networks"]!.ToJsonString());
    }

    [Fact]
    public void Task_HasTheDocumentedFieldsInOrder_WithVcpuLimitsAndServiceName()
    {
        var o = MetadataDocuments.Task(TaskArn, View(), [Inspect()], "us-east-1a");

        Assert.Equal(["Cluster", "TaskARN", "Family", "ServiceName", "Revision", "DesiredStatus", "KnownStatus", "Limits",
            "PullStartedAt", "PullStoppedAt", "AvailabilityZone", "LaunchType", "Containers"], Keys(o));
        Assert.Equal(TaskArn, (string?)o["TaskARN"]);
        Assert.Equal("24", (string?)o["Revision"]); // a string, as ECS writes it
        Assert.Equal("MyService", (string?)o["ServiceName"]);
        Assert.Equal("""{"CPU":0.25,"Memory":512}""", o["Limits"]!.ToJsonString());
        Assert.Equal("2020-10-02T00:43:06.202Z", (string?)o["PullStartedAt"]);
        Assert.Equal("EC2", (string?)o["LaunchType"]);
        Assert.Equal("curl", (string?)o["Containers"]![0]!["Name"]);
    }

    [Fact]
    public void Task_WithoutServiceOrTaskLimits_OmitsThem()
    {
        var o = MetadataDocuments.Task(TaskArn, View(service: "", taskCpu: 0, taskMemory: 0), [Inspect()], "us-east-1a");

        Assert.False(o.ContainsKey("ServiceName"));
        Assert.False(o.ContainsKey("Limits"));
        Assert.False(o.ContainsKey("ExecutionStoppedAt"));
    }

    [Fact]
    public void Task_UnknownToTheEngine_FallsBackToTheContainersLabels()
    {
        var o = MetadataDocuments.Task(TaskArn, null, [Inspect(state: "exited")], "us-east-1a");

        Assert.Equal("curltest", (string?)o["Family"]);
        Assert.Equal("24", (string?)o["Revision"]);
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:cluster/default", (string?)o["Cluster"]);
    }

    [Theory]
    [InlineData("created", "CREATED")]
    [InlineData("running", "RUNNING")]
    [InlineData("exited", "STOPPED")]
    [InlineData("dead", "STOPPED")]
    public void KnownStatus_MapsDockerStatesToEcsOnes(string docker, string ecs) => Assert.Equal(ecs, MetadataDocuments.KnownStatus(docker));

    [Theory]
    [InlineData("172.17.0.5", 16, "172.17.0.0/16")]
    [InlineData("10.1.2.3", 28, "10.1.2.0/28")]
    [InlineData("fe80::1", 64, null)]
    public void SubnetOf_MasksTheAddress(string ip, int prefix, string? subnet) => Assert.Equal(subnet, MetadataDocuments.SubnetOf(ip, prefix));
}
