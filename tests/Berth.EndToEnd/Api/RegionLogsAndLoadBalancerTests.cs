using System.Globalization;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;
using Berth.EndToEnd.LoadBalancer;

namespace Berth.EndToEnd.Api;

/// <summary>
/// CloudWatch Logs and ELBv2 per region, as ECS already is: the region the aws CLI signs for selects the namespace
/// (same names in two regions are two resources, ARNs carry the region); the data plane serves every region's
/// listeners on this host's ports, one listener per port across regions; awslogs output lands in the
/// awslogs-region's groups (else the task's region); an ECS service registers its tasks in its region's target group.
/// </summary>
public sealed class RegionLogsAndLoadBalancerTests
{
    private static AwsCli In(BerthServer server, string region)
    {
        var aws = new AwsCli(server.Endpoint);
        aws.Environment["AWS_DEFAULT_REGION"] = region;
        return aws;
    }

    private static List<string> Strings(JsonNode node) => [.. node.AsArray().Select(n => n!.GetValue<string>())];

    private static async Task<List<string>> MessagesAsync(AwsCli aws, string group, string stream)
        => Strings((await aws.RunAsync("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream, "--start-from-head", "--query", "events[].message"))!);

    [Fact]
    public async Task Logs_SameGroupNameInTwoRegions_EachRegionSeesOnlyItsOwnEventsRetentionAndTags_AfterARestartToo()
    {
        await using var server = await BerthServer.StartAsync("server");
        var east = In(server, "us-east-1");
        var west = In(server, "us-west-2");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        foreach (var (aws, word) in new[] { (east, "east"), (west, "west") })
        {
            await aws.RunAsync("logs", "create-log-group", "--log-group-name", "/app/twin", "--tags", $"side={word}");
            await aws.RunAsync("logs", "create-log-stream", "--log-group-name", "/app/twin", "--log-stream-name", "main");
            await aws.RunAsync("logs", "put-log-events", "--log-group-name", "/app/twin", "--log-stream-name", "main",
                "--log-events", $"timestamp={now},message={word}-1", $"timestamp={now},message={word}-2");
        }
        await west.RunAsync("logs", "put-retention-policy", "--log-group-name", "/app/twin", "--retention-in-days", "7");
        await west.RunAsync("logs", "create-log-group", "--log-group-name", "/app/west-only");

        async Task CheckAsync()
        {
            Assert.Equal(["east-1", "east-2"], await MessagesAsync(east, "/app/twin", "main"));
            Assert.Equal(["west-1", "west-2"], await MessagesAsync(west, "/app/twin", "main"));
            // --region on the command line wins over the environment, as for AWS.
            Assert.Equal(["west-1", "west-2"], Strings((await east.RunAsync("logs", "filter-log-events", "--log-group-name", "/app/twin", "--region", "us-west-2", "--query", "events[].message"))!));
            Assert.Equal(["east-1", "east-2"], Strings((await east.RunAsync("logs", "filter-log-events", "--log-group-name", "/app/twin", "--query", "events[].message"))!));

            var eastGroups = (await east.RunAsync("logs", "describe-log-groups"))["logGroups"]!.AsArray();
            var westGroups = (await west.RunAsync("logs", "describe-log-groups"))["logGroups"]!.AsArray();
            Assert.Equal(["/app/twin"], eastGroups.Select(g => g!["logGroupName"]!.GetValue<string>()).ToList());
            Assert.Equal(["/app/twin", "/app/west-only"], westGroups.Select(g => g!["logGroupName"]!.GetValue<string>()).ToList());
            Assert.Equal("arn:aws:logs:us-east-1:000000000000:log-group:/app/twin:*", eastGroups[0]!["arn"]!.GetValue<string>());
            Assert.Equal("arn:aws:logs:us-west-2:000000000000:log-group:/app/twin:*", westGroups[0]!["arn"]!.GetValue<string>());
            Assert.Null(eastGroups[0]!["retentionInDays"]);
            Assert.Equal(7, westGroups[0]!["retentionInDays"]!.GetValue<int>());
            Assert.Equal("east", (await east.RunAsync("logs", "list-tags-log-group", "--log-group-name", "/app/twin"))["tags"]!["side"]!.GetValue<string>());
            Assert.Equal("west", (await west.RunAsync("logs", "list-tags-for-resource", "--resource-arn", "arn:aws:logs:us-west-2:000000000000:log-group:/app/twin"))["tags"]!["side"]!.GetValue<string>());
        }
        await CheckAsync();

        // A group of us-west-2 named by ARN in us-east-1 is not one of us-east-1's.
        var cross = await east.TryRunAsync("logs", "list-tags-for-resource", "--resource-arn", "arn:aws:logs:us-west-2:000000000000:log-group:/app/twin");
        Assert.NotEqual(0, cross.ExitCode);
        Assert.Contains("InvalidParameterException", cross.Stderr, StringComparison.Ordinal);
        // A group only us-west-2 has does not exist in us-east-1.
        var missing = await east.TryRunAsync("logs", "get-log-events", "--log-group-name", "/app/west-only", "--log-stream-name", "main");
        Assert.Contains("ResourceNotFoundException", missing.Stderr, StringComparison.Ordinal);
        // Deleting us-east-1's group leaves us-west-2's.
        await east.RunAsync("logs", "delete-log-group", "--log-group-name", "/app/twin");
        Assert.Empty((await east.RunAsync("logs", "describe-log-groups"))["logGroups"]!.AsArray());
        Assert.Equal(["west-1", "west-2"], await MessagesAsync(west, "/app/twin", "main"));

        // A restart keeps each region's groups apart.
        await east.RunAsync("logs", "create-log-group", "--log-group-name", "/app/twin", "--tags", "side=east");
        await east.RunAsync("logs", "create-log-stream", "--log-group-name", "/app/twin", "--log-stream-name", "main");
        await east.RunAsync("logs", "put-log-events", "--log-group-name", "/app/twin", "--log-stream-name", "main",
            "--log-events", $"timestamp={now},message=east-1", $"timestamp={now},message=east-2");
        await server.KillAsync();
        await server.RestartAsync();
        await CheckAsync();
    }

    [Fact]
    public async Task Elbv2_SameNamesInTwoRegions_DistinctArns_ListenerInUsWest2ServesTraffic_PortTakenAcrossRegions()
    {
        await using var server = await BerthServer.StartAsync("server");
        await using var backend = await TestBackend.StartAsync("west-backend");
        var east = new Elbv2Cli(In(server, "us-east-1"));
        var west = new Elbv2Cli(In(server, "us-west-2"));

        var (eastLb, eastDns) = await east.CreateLoadBalancerAsync("twin");
        var (westLb, westDns) = await west.CreateLoadBalancerAsync("twin");
        Assert.StartsWith("arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/twin/", eastLb, StringComparison.Ordinal);
        Assert.StartsWith("arn:aws:elasticloadbalancing:us-west-2:000000000000:loadbalancer/app/twin/", westLb, StringComparison.Ordinal);
        Assert.EndsWith(".us-east-1.elb.localhost", eastDns, StringComparison.Ordinal);
        Assert.EndsWith(".us-west-2.elb.localhost", westDns, StringComparison.Ordinal);
        var eastTg = await east.CreateTargetGroupAsync("twin-tg");
        var westTg = await west.CreateTargetGroupAsync("twin-tg");
        Assert.StartsWith("arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/twin-tg/", eastTg, StringComparison.Ordinal);
        Assert.StartsWith("arn:aws:elasticloadbalancing:us-west-2:000000000000:targetgroup/twin-tg/", westTg, StringComparison.Ordinal);

        // Each region lists its own; names resolve in the request's region.
        Assert.Equal([westLb], Strings((await west.RunAsync("describe-load-balancers", "--query", "LoadBalancers[].LoadBalancerArn"))!));
        Assert.Equal([eastLb], Strings((await east.RunAsync("describe-load-balancers", "--names", "twin", "--query", "LoadBalancers[].LoadBalancerArn"))!));
        Assert.Equal([westTg], Strings((await west.RunAsync("describe-target-groups", "--names", "twin-tg", "--query", "TargetGroups[].TargetGroupArn"))!));
        // Another region's resource by ARN is not found here.
        var cross = await east.Aws.TryRunAsync("elbv2", "describe-target-groups", "--target-group-arns", westTg);
        Assert.Contains("TargetGroupNotFound", cross.Stderr, StringComparison.Ordinal);
        var crossLb = await west.Aws.TryRunAsync("elbv2", "describe-load-balancers", "--load-balancer-arns", eastLb);
        Assert.Contains("LoadBalancerNotFound", crossLb.Stderr, StringComparison.Ordinal);
        // Tags are each region's.
        await west.RunAsync("add-tags", "--resource-arns", westTg, "--tags", "Key=side,Value=west");
        Assert.Empty((await east.RunAsync("describe-tags", "--resource-arns", eastTg))["TagDescriptions"]![0]!["Tags"]!.AsArray());

        // A listener of us-west-2 forwards to us-west-2's group.
        await west.RegisterAsync(westTg, backend);
        var port = BerthServer.FreePort();
        await west.CreateListenerAsync(westLb, port, $"Type=forward,TargetGroupArn={westTg}");
        await west.WaitForStateAsync(westTg, "healthy", TimeSpan.FromSeconds(30));
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(10));
        var (status, body) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/");
        Assert.Equal(200, status);
        Assert.Equal("west-backend", body);
        Assert.Empty((await east.RunAsync("describe-listeners", "--load-balancer-arn", eastLb))["Listeners"]!.AsArray());

        // The port is this host's: us-east-1 cannot take it too (the error a port of another load balancer gets).
        var taken = await east.Aws.TryRunAsync("elbv2", "create-listener", "--load-balancer-arn", eastLb, "--protocol", "HTTP",
            "--port", port.ToString(CultureInfo.InvariantCulture), "--default-actions", $"Type=forward,TargetGroupArn={eastTg}");
        Assert.NotEqual(0, taken.ExitCode);
        Assert.Contains("InvalidConfigurationRequest", taken.Stderr, StringComparison.Ordinal);
        Assert.Contains(westLb, taken.Stderr, StringComparison.Ordinal);
        Assert.Empty((await east.RunAsync("describe-listeners", "--load-balancer-arn", eastLb))["Listeners"]!.AsArray());

        // A restart keeps both regions, and us-west-2's listener serves again.
        await server.KillAsync();
        await server.RestartAsync();
        Assert.Equal([westLb], Strings((await west.RunAsync("describe-load-balancers", "--query", "LoadBalancers[].LoadBalancerArn"))!));
        Assert.Equal([eastLb], Strings((await east.RunAsync("describe-load-balancers", "--query", "LoadBalancers[].LoadBalancerArn"))!));
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(30));
        await Wait.ForAsync(async () => (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/")) is (200, "west-backend") ? "ok" : null,
            TimeSpan.FromSeconds(30), "us-west-2's listener to serve after the restart");
    }

    [Fact]
    public async Task ServiceInUsWest2_RegistersItsTasksInUsWest2sTargetGroup_AndAwslogsShipToTheRightRegion()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var westAws = In(server, "us-west-2");
        var eastAws = In(server, "us-east-1");
        var west = new Elbv2Cli(westAws);
        await westAws.RunAsync("ecs", "create-cluster", "--cluster-name", "web");
        server.StartAgent("web", "west-agent", "--region", "us-west-2");
        var instance = await westAws.WaitForContainerInstanceAsync("web", TimeSpan.FromSeconds(60));
        var ec2Id = (await westAws.RunAsync("ecs", "describe-container-instances", "--cluster", "web", "--container-instances", instance))["containerInstances"]![0]!["ec2InstanceId"]!.GetValue<string>();

        // awslogs without awslogs-region: the task's region (us-west-2).
        const string Web = """[{"name":"web","image":"berth-test/busybox:latest","memory":32,"essential":true,"stopTimeout":2,"portMappings":[{"containerPort":80,"hostPort":0}],"command":["sh","-c","echo web-started; exec httpd -f -p 80 -h /www"],"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/web","awslogs-create-group":"true","awslogs-stream-prefix":"web"}}}]""";
        await EcsScenario.RegisterAsync(westAws, "web", Web);
        var (lb, _) = await west.CreateLoadBalancerAsync("web");
        // The same group name in us-east-1 holds nothing of this service's.
        var eastTg = await new Elbv2Cli(eastAws).CreateTargetGroupAsync("web-tg");
        var tg = await west.TextAsync("TargetGroups[0].TargetGroupArn", "create-target-group", "--name", "web-tg",
            "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-0a1b2c3d", "--target-type", "instance", "--health-check-path", "/",
            "--health-check-interval-seconds", "5", "--health-check-timeout-seconds", "2", "--healthy-threshold-count", "2", "--unhealthy-threshold-count", "2");
        Assert.StartsWith("arn:aws:elasticloadbalancing:us-west-2:", tg, StringComparison.Ordinal);
        var port = BerthServer.FreePort();
        await west.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");

        // A us-east-1 service cannot take us-west-2's target group.
        await eastAws.RunAsync("ecs", "create-cluster", "--cluster-name", "web");
        await EcsScenario.RegisterAsync(eastAws, "web", Web);
        var crossService = await eastAws.TryRunAsync("ecs", "create-service", "--cluster", "web", "--service-name", "web", "--task-definition", "web", "--desired-count", "1",
            "--load-balancers", $"targetGroupArn={tg},containerName=web,containerPort=80");
        Assert.Contains("InvalidParameterException", crossService.Stderr, StringComparison.Ordinal);
        Assert.Contains("is in region us-west-2", crossService.Stderr, StringComparison.Ordinal);

        await westAws.RunAsync("ecs", "create-service", "--cluster", "web", "--service-name", "web", "--task-definition", "web", "--desired-count", "1",
            "--load-balancers", $"targetGroupArn={tg},containerName=web,containerPort=80");
        // The service's task is us-west-2's instance target (resolved among us-west-2's container instances) and healthy.
        await west.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(90));
        var targets = (await west.RunAsync("describe-target-health", "--target-group-arn", tg))["TargetHealthDescriptions"]!.AsArray();
        Assert.Equal(ec2Id, Assert.Single(targets)!["Target"]!["Id"]!.GetValue<string>());
        Assert.Empty((await eastAws.RunAsync("elbv2", "describe-target-health", "--target-group-arn", eastTg))["TargetHealthDescriptions"]!.AsArray());
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(10));
        var (status, _) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/");
        Assert.NotEqual(503, status); // a target answered (busybox httpd: 200 or 404 for a missing index)
        Assert.NotEqual(502, status);

        // The container's output is in us-west-2's /ecs/web, not in us-east-1 (where no such group exists).
        await Wait.ForAsync(async () =>
        {
            var r = await westAws.TryRunAsync("logs", "filter-log-events", "--log-group-name", "/ecs/web", "--query", "events[].message");
            return r.ExitCode == 0 && r.Stdout.Contains("web-started", StringComparison.Ordinal) ? "ok" : null;
        }, TimeSpan.FromSeconds(60), "the service's output in us-west-2's /ecs/web");
        var eastLogs = await eastAws.TryRunAsync("logs", "filter-log-events", "--log-group-name", "/ecs/web");
        Assert.Contains("ResourceNotFoundException", eastLogs.Stderr, StringComparison.Ordinal);

        // awslogs-region names another region: that region's group gets the output.
        const string Once = """[{"name":"once","image":"berth-test/busybox:latest","memory":16,"essential":true,"command":["sh","-c","echo to-eu-west-1"],"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/once","awslogs-region":"eu-west-1","awslogs-create-group":"true","awslogs-stream-prefix":"once"}}}]""";
        await EcsScenario.RegisterAsync(westAws, "once", Once);
        var task = await EcsScenario.RunOneAsync(westAws, "web", "once");
        await EcsScenario.WaitForStatusAsync(westAws, "web", task["taskArn"]!.GetValue<string>(), "STOPPED");
        var eu = In(server, "eu-west-1");
        await Wait.ForAsync(async () =>
        {
            var r = await eu.TryRunAsync("logs", "filter-log-events", "--log-group-name", "/ecs/once", "--query", "events[].message");
            return r.ExitCode == 0 && r.Stdout.Contains("to-eu-west-1", StringComparison.Ordinal) ? "ok" : null;
        }, TimeSpan.FromSeconds(60), "the task's output in eu-west-1's /ecs/once");
        Assert.Contains("ResourceNotFoundException", (await westAws.TryRunAsync("logs", "filter-log-events", "--log-group-name", "/ecs/once")).Stderr, StringComparison.Ordinal);

        // An awslogs-region that is no region is refused when the definition is registered.
        var bad = await westAws.TryRunAsync("ecs", "register-task-definition", "--family", "bad", "--container-definitions",
            """[{"name":"b","image":"berth-test/busybox:latest","memory":16,"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"g","awslogs-region":"Mars_1"}}}]""");
        Assert.Contains("ClientException", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("awslogs-region", bad.Stderr, StringComparison.Ordinal);
    }
}
