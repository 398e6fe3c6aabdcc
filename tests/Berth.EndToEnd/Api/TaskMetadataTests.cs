using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// The task metadata endpoint v4 read from inside real containers with busybox wget, as an application does, and
/// compared with what DescribeTasks says. The container prints what it read; `docker logs` of the kept container
/// (stopped tasks' containers stay for the cleanup wait) gives it back.
/// </summary>
public sealed class TaskMetadataTests : LocalServerTest
{
    // Prints each document between markers; busybox's wget crashes with -T, so none is given.
    private const string Reader = "sleep 2; for p in /task '' /stats /task/stats; do echo \"=== $p\"; wget -qO- \"$ECS_CONTAINER_METADATA_URI_V4$p\"; echo; done; echo '=== end'";

    private static readonly string ReaderJson = JsonValue.Create(Reader).ToJsonString();

    private static Dictionary<string, JsonNode> Sections(string logs)
    {
        var result = new Dictionary<string, JsonNode>(StringComparer.Ordinal);
        string? name = null;
        var body = new List<string>();
        foreach (var line in logs.Split('\n'))
        {
            if (line.StartsWith("=== ", StringComparison.Ordinal))
            {
                if (name is not null)
                {
                    result[name] = JsonNode.Parse(string.Join('\n', body))!;
                }
                name = line[4..].Trim();
                body.Clear();
            }
            else
            {
                body.Add(line);
            }
        }
        return result;
    }

    private async Task<(JsonNode Task, Dictionary<string, JsonNode> Read)> RunReaderAsync(string family, string containers, params string[] extra)
    {
        await EcsScenario.RegisterAsync(Aws, family, containers, extra);
        var arn = (await EcsScenario.RunOneAsync(Aws, "default", family))["taskArn"]!.GetValue<string>();
        var task = await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "STOPPED", 90);
        var reader = task["containers"]!.AsArray().First(c => c!["name"]!.GetValue<string>() == "reader")!;
        var logs = await DockerCli.RunAsync("logs", reader["runtimeId"]!.GetValue<string>());
        Assert.True(logs.ExitCode == 0, logs.Stderr);
        Assert.Contains("=== end", logs.Stdout, StringComparison.Ordinal);
        return (task, Sections(logs.Stdout));
    }

    [Fact]
    public async Task Bridge_TaskContainerAndStats_MatchDescribeTasks()
    {
        var (task, read) = await RunReaderAsync("md-bridge", $$"""
            [{"name":"side","image":"{{EcsScenario.Image}}","memory":16,"essential":false,"command":["sleep","300"],"stopTimeout":1},
             {"name":"reader","image":"{{EcsScenario.Image}}","memory":32,"cpu":64,"command":["sh","-c",{{ReaderJson}}]}]
            """, "--cpu", "256", "--memory", "512");

        var md = read["/task"];
        Assert.Equal(task["taskArn"]!.GetValue<string>(), md["TaskARN"]!.GetValue<string>());
        Assert.Equal(task["clusterArn"]!.GetValue<string>(), md["Cluster"]!.GetValue<string>());
        Assert.Equal("md-bridge", md["Family"]!.GetValue<string>());
        Assert.Equal(task["taskDefinitionArn"]!.GetValue<string>().Split(':')[^1], md["Revision"]!.GetValue<string>());
        Assert.Equal("RUNNING", md["DesiredStatus"]!.GetValue<string>());
        Assert.Equal("EC2", md["LaunchType"]!.GetValue<string>());
        Assert.Equal("us-east-1a", md["AvailabilityZone"]!.GetValue<string>());
        Assert.Equal(0.25, md["Limits"]!["CPU"]!.GetValue<double>());
        Assert.Equal(512, md["Limits"]!["Memory"]!.GetValue<long>());
        Assert.NotNull(md["PullStartedAt"]);
        var described = task["containers"]!.AsArray().ToDictionary(c => c!["name"]!.GetValue<string>(), c => c!);
        var listed = md["Containers"]!.AsArray();
        Assert.Equal(["side", "reader"], listed.Select(c => c!["Name"]!.GetValue<string>()));
        foreach (var c in listed)
        {
            var d = described[c!["Name"]!.GetValue<string>()];
            Assert.Equal(d["runtimeId"]!.GetValue<string>(), c["DockerId"]!.GetValue<string>());
            Assert.Equal(d["containerArn"]!.GetValue<string>(), c["ContainerARN"]!.GetValue<string>());
            Assert.Equal("RUNNING", c["KnownStatus"]!.GetValue<string>());
            Assert.Equal("bridge", c["Networks"]![0]!["NetworkMode"]!.GetValue<string>());
            Assert.StartsWith("sha256:", c["ImageID"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        var self = read[""];
        Assert.Equal(described["reader"]["runtimeId"]!.GetValue<string>(), self["DockerId"]!.GetValue<string>());
        Assert.Equal("reader", self["Name"]!.GetValue<string>());
        Assert.Equal(EcsScenario.Image, self["Image"]!.GetValue<string>());
        Assert.Equal(64, self["Limits"]!["CPU"]!.GetValue<double>());
        Assert.Equal(32, self["Limits"]!["Memory"]!.GetValue<long>());
        Assert.Equal(task["taskArn"]!.GetValue<string>(), self["Labels"]!["com.amazonaws.ecs.task-arn"]!.GetValue<string>());
        var ip = self["Networks"]![0]!["IPv4Addresses"]![0]!.GetValue<string>();
        Assert.StartsWith("172.", ip, StringComparison.Ordinal);

        // Docker's own stats document: one sample with the previous one, as ECS relays it.
        var stats = read["/stats"];
        Assert.True(stats["memory_stats"]!["usage"]!.GetValue<long>() > 0, stats.ToJsonString());
        Assert.NotNull(stats["cpu_stats"]!["cpu_usage"]);
        Assert.NotNull(stats["precpu_stats"]);
        var taskStats = read["/task/stats"].AsObject();
        Assert.Equal(described.Values.Select(d => d["runtimeId"]!.GetValue<string>()).Order(), taskStats.Select(kv => kv.Key).Order());
        Assert.All(taskStats, kv => Assert.NotNull(kv.Value!["memory_stats"]));
    }

    [Fact]
    public async Task HostNetwork_ReachesTheEndpoint_AndSeesNetworkModeHost()
    {
        var (task, read) = await RunReaderAsync("md-host", $$"""
            [{"name":"reader","image":"{{EcsScenario.Image}}","memory":32,"command":["sh","-c",{{ReaderJson}}]}]
            """, "--network-mode", "host");

        Assert.Equal(task["taskArn"]!.GetValue<string>(), read["/task"]["TaskARN"]!.GetValue<string>());
        Assert.Equal("host", read[""]["Networks"]![0]!["NetworkMode"]!.GetValue<string>());
        Assert.Equal(task["containers"]![0]!["runtimeId"]!.GetValue<string>(), read[""]["DockerId"]!.GetValue<string>());
    }

    [Fact]
    public async Task UnknownToken_Answers404()
    {
        await EcsScenario.RegisterAsync(Aws, "md-probe", $$"""
            [{"name":"probe","image":"{{EcsScenario.Image}}","memory":16,"command":["sh","-c","echo $ECS_CONTAINER_METADATA_URI_V4; wget -qO- ${ECS_CONTAINER_METADATA_URI_V4%/*}/not-a-token || echo status=$?"]}]
            """);
        var arn = (await EcsScenario.RunOneAsync(Aws, "default", "md-probe"))["taskArn"]!.GetValue<string>();
        var task = await EcsScenario.WaitForStatusAsync(Aws, "default", arn, "STOPPED", 60);
        var logs = (await DockerCli.RunAsync("logs", task["containers"]![0]!["runtimeId"]!.GetValue<string>())).Stdout;

        Assert.Matches(@"^http://\d+\.\d+\.\d+\.\d+:\d+/v4/[0-9a-f]+-[0-9a-f]{16}\s", logs);
        Assert.Contains("status=1", logs, StringComparison.Ordinal); // wget fails on the 404
    }
}
