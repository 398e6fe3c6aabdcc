using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Regions side by side on one Berth: the region a client signs for (aws --region, boto3 region_name) selects
/// its namespace; resources, revisions and ARNs never cross; an agent registered with --region runs that
/// region's tasks only; a restart keeps every region.
/// </summary>
public sealed class RegionTests
{
    private static AwsCli In(BerthServer server, string region)
    {
        var aws = new AwsCli(server.Endpoint);
        aws.Environment["AWS_DEFAULT_REGION"] = region;
        return aws;
    }

    private static List<string> Strings(JsonNode node) => [.. node.AsArray().Select(n => n!.GetValue<string>())];

    [Fact]
    public async Task TwoRegions_AwsCliAndBoto3_SeparateNamespacesAgentInOneRegionAndRestartKeepsBoth()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var east = In(server, "us-east-1");
        var west = In(server, "us-west-2");

        // Same cluster name in both regions, ARNs of each.
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:cluster/twin", (await east.RunAsync("ecs", "create-cluster", "--cluster-name", "twin"))["cluster"]!["clusterArn"]!.GetValue<string>());
        Assert.Equal("arn:aws:ecs:us-west-2:000000000000:cluster/twin", (await west.RunAsync("ecs", "create-cluster", "--cluster-name", "twin"))["cluster"]!["clusterArn"]!.GetValue<string>());
        await west.RunAsync("ecs", "create-cluster", "--cluster-name", "west-only");
        Assert.Equal(["arn:aws:ecs:us-east-1:000000000000:cluster/twin"], Strings((await east.RunAsync("ecs", "list-clusters"))["clusterArns"]!));
        Assert.Equal(["arn:aws:ecs:us-west-2:000000000000:cluster/twin", "arn:aws:ecs:us-west-2:000000000000:cluster/west-only"],
            Strings((await west.RunAsync("ecs", "list-clusters"))["clusterArns"]!).Order(StringComparer.Ordinal).ToList());
        // --region on the command line wins over the environment, as for AWS.
        Assert.Equal(2, (await east.RunAsync("ecs", "list-clusters", "--region", "us-west-2"))["clusterArns"]!.AsArray().Count);

        // Revisions counted per region.
        const string Sleeper = """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","600"],"stopTimeout":2}]""";
        Assert.Equal("arn:aws:ecs:us-west-2:000000000000:task-definition/sleeper:1", await EcsScenario.RegisterAsync(west, "sleeper", Sleeper));
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:task-definition/sleeper:1", await EcsScenario.RegisterAsync(east, "sleeper", Sleeper));
        Assert.Equal("arn:aws:ecs:us-west-2:000000000000:task-definition/sleeper:2", await EcsScenario.RegisterAsync(west, "sleeper", Sleeper));

        // Another region's ARN: refused as ECS refuses it.
        var cross = await west.TryRunAsync("ecs", "describe-clusters", "--clusters", "arn:aws:ecs:us-east-1:000000000000:cluster/twin");
        Assert.NotEqual(0, cross.ExitCode);
        Assert.Contains("InvalidParameterException", cross.Stderr, StringComparison.Ordinal);
        Assert.Contains("Invalid Region in ARN", cross.Stderr, StringComparison.Ordinal);
        var crossRun = await east.TryRunAsync("ecs", "run-task", "--cluster", "twin", "--task-definition", "arn:aws:ecs:us-west-2:000000000000:task-definition/sleeper:2");
        Assert.Contains("Invalid Region in ARN", crossRun.Stderr, StringComparison.Ordinal);

        // boto3 sees the same separation.
        var py = await Boto3.RunAsync("regions.py", server.Endpoint);
        Assert.True(py.ExitCode == 0, py.Stderr);
        var b = py.Json;
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:cluster/boto-twin", b["east"]!["clusterArn"]!.GetValue<string>());
        Assert.Equal("arn:aws:ecs:us-west-2:000000000000:cluster/boto-twin", b["west"]!["clusterArn"]!.GetValue<string>());
        Assert.Equal(1, b["east"]!["revision"]!.GetValue<int>());
        Assert.Equal(1, b["west"]!["revision"]!.GetValue<int>());
        Assert.Equal(2, b["west"]!["revision2"]!.GetValue<int>());
        Assert.Equal(1, b["east"]!["latest"]!.GetValue<int>());
        Assert.Equal("arn:aws:ecs:us-west-2:000000000000:task-definition/boto-twin:1", b["west"]!["taskDefinitionArn"]!.GetValue<string>());
        Assert.DoesNotContain(Strings(b["east"]!["clusters"]!), a => a.Contains("us-west-2", StringComparison.Ordinal));
        Assert.DoesNotContain(Strings(b["west"]!["clusters"]!), a => a.Contains("us-east-1", StringComparison.Ordinal));
        Assert.Equal("InvalidParameterException", b["crossRegion"]![0]!.GetValue<string>());

        // An agent registered into us-west-2 joins that region's cluster only.
        server.StartAgent("twin", "west-agent", "--region", "us-west-2");
        var instance = await west.WaitForContainerInstanceAsync("twin", TimeSpan.FromSeconds(60));
        Assert.StartsWith("arn:aws:ecs:us-west-2:000000000000:container-instance/twin/", instance, StringComparison.Ordinal);
        Assert.Empty((await east.RunAsync("ecs", "list-container-instances", "--cluster", "twin"))["containerInstanceArns"]!.AsArray());
        // us-east-1's twin has no instance: its task cannot be placed; us-west-2's runs on the agent.
        var eastRun = await east.TryRunAsync("ecs", "run-task", "--cluster", "twin", "--task-definition", "sleeper");
        Assert.Contains("No Container Instances were found in your cluster.", eastRun.Stderr, StringComparison.Ordinal);
        var task = await EcsScenario.RunOneAsync(west, "twin", "sleeper");
        var taskArn = task["taskArn"]!.GetValue<string>();
        Assert.StartsWith("arn:aws:ecs:us-west-2:000000000000:task/twin/", taskArn, StringComparison.Ordinal);
        Assert.Equal(instance, task["containerInstanceArn"]!.GetValue<string>());
        await EcsScenario.WaitForStatusAsync(west, "twin", taskArn, "RUNNING");
        // The container carries the region's ARNs in ECS's labels.
        var containers = await DockerCli.ContainersAsync(server.Label, all: false);
        var labels = (await DockerCli.RunAsync("inspect", "--format", "{{index .Config.Labels \"com.amazonaws.ecs.task-arn\"}}", Assert.Single(containers))).Stdout.Trim();
        Assert.Equal(taskArn, labels);
        Assert.Empty((await east.RunAsync("ecs", "list-tasks", "--cluster", "twin"))["taskArns"]!.AsArray());

        // Health: the default region, and every region open.
        using (var http = new HttpClient())
        {
            var health = JsonNode.Parse(await http.GetStringAsync(server.Endpoint + "/_berth/health"))!;
            Assert.Equal("us-east-1", health["region"]!.GetValue<string>());
            Assert.Equal(["us-east-1", "us-west-2"], Strings(health["regions"]!));
            Assert.Equal(2, health["clusters"]!.GetValue<int>()); // us-east-1's: twin and boto-twin
        }

        // A restart keeps both regions, and the agent comes back into us-west-2.
        await server.KillAsync();
        await server.RestartAsync();
        server.StartAgent("twin", "west-agent", "--region", "us-west-2");
        Assert.Equal(3, (await west.RunAsync("ecs", "list-clusters"))["clusterArns"]!.AsArray().Count);
        Assert.Equal(2, (await east.RunAsync("ecs", "list-clusters"))["clusterArns"]!.AsArray().Count);
        Assert.Equal("arn:aws:ecs:us-west-2:000000000000:task-definition/sleeper:3", await EcsScenario.RegisterAsync(west, "sleeper", Sleeper));
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:task-definition/sleeper:2", await EcsScenario.RegisterAsync(east, "sleeper", Sleeper));
        Assert.Equal("RUNNING", (await EcsScenario.WaitForStatusAsync(west, "twin", taskArn, "RUNNING"))["lastStatus"]!.GetValue<string>());
        await Wait.ForAsync(async () =>
        {
            var ci = (await west.RunAsync("ecs", "describe-container-instances", "--cluster", "twin", "--container-instances", instance))["containerInstances"]![0]!;
            return ci["agentConnected"]!.GetValue<bool>() ? ci : null;
        }, TimeSpan.FromSeconds(60), "the us-west-2 agent to reconnect after the restart");
    }
}
