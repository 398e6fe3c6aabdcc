using Berth.EndToEnd.Api;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>An awsvpc (Fargate) service behind an <c>ip</c> target group: its tasks are registered by address and container port.</summary>
public sealed class AwsvpcServiceLoadBalancerTests
{
    [Fact]
    public async Task FargateService_IpTargetGroup_TasksRegisteredByAddress_ServedThroughTheListener()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        var elb = new Elbv2Cli(aws);
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(30));
        await EcsScenario.RegisterAsync(aws, "vpc-lb", $$"""[{"name":"web","image":"{{EcsScenario.Image}}","stopTimeout":1,"portMappings":[{"containerPort":80}],"command":["httpd","-f","-p","80","-h","/www"]}]""",
            "--network-mode", "awsvpc", "--requires-compatibilities", "FARGATE", "--cpu", "256", "--memory", "512");

        var (lb, _) = await elb.CreateLoadBalancerAsync("vpc-" + Guid.NewGuid().ToString("N")[..8]);
        var health = new[] { "--health-check-path", "/", "--health-check-interval-seconds", "5", "--health-check-timeout-seconds", "2", "--healthy-threshold-count", "2" };
        var ipGroup = await elb.TextAsync("TargetGroups[0].TargetGroupArn", ["create-target-group", "--name", "ip-" + Guid.NewGuid().ToString("N")[..8],
            "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-0a1b2c3d", "--target-type", "ip", .. health]);
        var instanceGroup = await elb.TextAsync("TargetGroups[0].TargetGroupArn", ["create-target-group", "--name", "in-" + Guid.NewGuid().ToString("N")[..8],
            "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-0a1b2c3d", "--target-type", "instance", .. health]);
        var port = BerthServer.FreePort();
        await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={ipGroup}");
        await elb.CreateListenerAsync(lb, BerthServer.FreePort(), $"Type=forward,TargetGroupArn={instanceGroup}");
        const string network = "awsvpcConfiguration={subnets=[subnet-0a1b2c3d]}";

        // As ECS: an awsvpc service needs an ip target group.
        var refused = await aws.TryRunAsync("ecs", "create-service", "--service-name", "wrong", "--task-definition", "vpc-lb", "--desired-count", "1",
            "--launch-type", "FARGATE", "--network-configuration", network, "--load-balancers", $"targetGroupArn={instanceGroup},containerName=web,containerPort=80");
        Assert.Contains("(InvalidParameterException)", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("has target type instance, which is incompatible with the awsvpc network mode specified in the task definition.", refused.Stderr, StringComparison.Ordinal);

        await aws.RunAsync("ecs", "create-service", "--service-name", "vpc-lb", "--task-definition", "vpc-lb", "--desired-count", "2",
            "--launch-type", "FARGATE", "--network-configuration", network, "--load-balancers", $"targetGroupArn={ipGroup},containerName=web,containerPort=80");
        await Wait.ForAsync(async () =>
        {
            var states = await elb.HealthStatesAsync(ipGroup);
            return states.Length == 2 && states.All(s => s == "healthy") ? states : null;
        }, TimeSpan.FromSeconds(90), "two healthy ip targets");

        var taskArns = (await aws.RunAsync("ecs", "list-tasks", "--service-name", "vpc-lb"))["taskArns"]!.AsArray().Select(a => a!.GetValue<string>()).ToArray();
        var tasks = (await aws.RunAsync(["ecs", "describe-tasks", "--tasks", .. taskArns]))["tasks"]!.AsArray();
        var ips = tasks.Select(t => t!["attachments"]![0]!["details"]!.AsArray().First(d => d!["name"]!.GetValue<string>() == "privateIPv4Address")!["value"]!.GetValue<string>())
            .Order(StringComparer.Ordinal).ToArray();
        var targets = (await elb.RunAsync("describe-target-health", "--target-group-arn", ipGroup))["TargetHealthDescriptions"]!.AsArray()
            .Select(d => (d!["Target"]!["Id"]!.GetValue<string>(), d["Target"]!["Port"]!.GetValue<int>())).OrderBy(x => x.Item1, StringComparer.Ordinal).ToArray();
        Assert.Equal(ips.Select(ip => (ip, 80)), targets);

        var (status, body) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/");
        Assert.Equal(200, status);
        Assert.Contains("berth test image", body, StringComparison.Ordinal);
        await aws.RunAsync("ecs", "delete-service", "--service", "vpc-lb", "--force");
    }
}
