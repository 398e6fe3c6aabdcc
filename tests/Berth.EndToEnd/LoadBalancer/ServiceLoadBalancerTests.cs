using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Api;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>An ECS service behind the load balancer: its tasks become targets, and a rolling deployment loses no request.</summary>
public sealed class ServiceLoadBalancerTests
{
    private static string Definition(string version) =>
        $$"""[{"name":"web","image":"berth-test/busybox:latest","memory":32,"essential":true,"stopTimeout":2,"portMappings":[{"containerPort":80,"hostPort":0}],"command":["httpd","-f","-p","80","-h","/www"],"environment":[{"name":"V","value":"{{version}}"}]}]""";

    private static async Task<JsonNode> ServiceAsync(AwsCli aws, string name)
        => (await aws.RunAsync("ecs", "describe-services", "--services", name))["services"]![0]!;

    private static async Task WaitCompletedAsync(AwsCli aws, string name, TimeSpan timeout)
        => await Wait.ForAsync(async () =>
        {
            var s = await ServiceAsync(aws, name);
            var d = s["deployments"]!.AsArray();
            return d.Count == 1 && d[0]!["rolloutState"]!.GetValue<string>() == "COMPLETED" ? "ok" : null;
        }, timeout, $"service {name} to complete its deployment");

    [Fact]
    public async Task RollingDeployment_BehindTheLoadBalancer_NoRequestFails()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        var elb = new Elbv2Cli(aws);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "default");
        await EcsScenario.RegisterAsync(aws, "web", Definition("1"));
        await EcsScenario.RegisterAsync(aws, "web", Definition("2"));

        var (lb, _) = await elb.CreateLoadBalancerAsync("svc-" + Guid.NewGuid().ToString("N")[..8]);
        var tg = await elb.TextAsync("TargetGroups[0].TargetGroupArn", "create-target-group", "--name", "svc-" + Guid.NewGuid().ToString("N")[..8],
            "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-0a1b2c3d", "--target-type", "instance", "--health-check-path", "/",
            "--health-check-interval-seconds", "5", "--health-check-timeout-seconds", "2", "--healthy-threshold-count", "2", "--unhealthy-threshold-count", "2");
        await elb.SetAttributeAsync(tg, "deregistration_delay.timeout_seconds", "3");
        var port = BerthServer.FreePort();
        await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");

        var created = (await aws.RunAsync("ecs", "create-service", "--service-name", "web", "--task-definition", "web:1", "--desired-count", "2",
            "--load-balancers", $"targetGroupArn={tg},containerName=web,containerPort=80"))["service"]!;
        Assert.Equal(tg, created["loadBalancers"]![0]!["targetGroupArn"]!.GetValue<string>());
        Assert.Equal(0, created["healthCheckGracePeriodSeconds"]!.GetValue<int>());
        await WaitCompletedAsync(aws, "web", TimeSpan.FromSeconds(90));
        await elb.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(30));
        Assert.Equal(2, (await elb.HealthStatesAsync(tg)).Length);

        // Load through the listener for the whole deployment: bounded in count and time, loopback only.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        var codes = new List<int>();
        var load = Task.Run(async () =>
        {
            for (var i = 0; i < 20_000 && !stop.IsCancellationRequested; i++)
            {
                try
                {
                    using var r = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/"), stop.Token);
                    lock (codes)
                    {
                        codes.Add((int)r.StatusCode);
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }
                catch (HttpRequestException)
                {
                    lock (codes)
                    {
                        codes.Add(0);
                    }
                }
                await Task.Delay(20, CancellationToken.None);
            }
        });
        await Task.Delay(500);
        var sw = Stopwatch.StartNew();
        await aws.RunAsync("ecs", "update-service", "--service", "web", "--task-definition", "web:2");
        await WaitCompletedAsync(aws, "web", TimeSpan.FromSeconds(120));
        // Keep sending a little past the end, while the old targets finish draining.
        await Task.Delay(TimeSpan.FromSeconds(4));
        await stop.CancelAsync();
        await load;

        int[] seen;
        lock (codes)
        {
            seen = [.. codes];
        }
        Assert.True(seen.Length > 100, $"only {seen.Length} requests went out in {sw.Elapsed}");
        var failed = seen.Where(c => c is < 200 or > 299).GroupBy(c => c).Select(g => $"{g.Key.ToString(CultureInfo.InvariantCulture)} x{g.Count()}").ToList();
        Assert.True(failed.Count == 0, $"{seen.Length} requests, non-2xx: {string.Join(", ", failed)}");

        // The group now holds exactly the new tasks' host ports, healthy.
        var service = await ServiceAsync(aws, "web");
        Assert.EndsWith("task-definition/web:2", service["taskDefinition"]!.GetValue<string>(), StringComparison.Ordinal);
        var taskArns = (await aws.RunAsync("ecs", "list-tasks", "--service-name", "web"))["taskArns"]!.AsArray().Select(a => a!.GetValue<string>()).ToArray();
        Assert.Equal(2, taskArns.Length);
        var tasks = (await aws.RunAsync(["ecs", "describe-tasks", "--tasks", .. taskArns]))["tasks"]!.AsArray();
        var ports = tasks.Select(t => EcsScenario.HostPort(t!)).Order().ToArray();
        await Wait.ForAsync(async () =>
        {
            var health = (await elb.RunAsync("describe-target-health", "--target-group-arn", tg))["TargetHealthDescriptions"]!.AsArray();
            var targets = health.Select(h => h!["Target"]!["Port"]!.GetValue<int>()).Order().ToArray();
            return targets.SequenceEqual(ports) && health.All(h => h!["TargetHealth"]!["State"]!.GetValue<string>() == "healthy") ? "ok" : null;
        }, TimeSpan.FromSeconds(30), "the target group to hold exactly the new tasks");
        var events = service["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()).ToArray();
        Assert.Contains(events, e => e.StartsWith("(service web) has begun draining connections on", StringComparison.Ordinal));
        Assert.Contains(events, e => e.StartsWith("(service web) registered", StringComparison.Ordinal) && e.Contains(tg, StringComparison.Ordinal));

        await aws.RunAsync("ecs", "delete-service", "--service", "web", "--force");
    }

    [Fact]
    public async Task CreateService_WithAMissingTargetGroupOrContainerPort_IsRefused()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "default");
        await EcsScenario.RegisterAsync(aws, "web", Definition("1"));
        var missing = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/none/0123456789abcdef";

        var r = await aws.TryRunAsync("ecs", "create-service", "--service-name", "web", "--task-definition", "web", "--desired-count", "1",
            "--load-balancers", $"targetGroupArn={missing},containerName=web,containerPort=80");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("InvalidParameterException", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("targetGroupArn", r.Stderr, StringComparison.Ordinal);

        r = await aws.TryRunAsync("ecs", "create-service", "--service-name", "web", "--task-definition", "web", "--desired-count", "1",
            "--load-balancers", $"targetGroupArn={missing},containerName=web,containerPort=8080");
        Assert.Contains("containerPort", r.Stderr, StringComparison.Ordinal);

        // A group that exists but that no listener forwards to: ECS refuses it too.
        var lonely = await new Elbv2Cli(aws).TextAsync("TargetGroups[0].TargetGroupArn", "create-target-group", "--name", "lonely-" + Guid.NewGuid().ToString("N")[..8],
            "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-0a1b2c3d", "--target-type", "instance");
        r = await aws.TryRunAsync("ecs", "create-service", "--service-name", "web", "--task-definition", "web", "--desired-count", "1",
            "--load-balancers", $"targetGroupArn={lonely},containerName=web,containerPort=80");
        Assert.Contains("InvalidParameterException", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"The target group with targetGroupArn {lonely} does not have an associated load balancer.", r.Stderr, StringComparison.Ordinal);
        Assert.Empty((await aws.RunAsync("ecs", "list-services"))["serviceArns"]!.AsArray());
    }
}
