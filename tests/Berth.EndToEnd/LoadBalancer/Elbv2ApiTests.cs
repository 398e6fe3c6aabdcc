using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>The ELBv2 API's resource lifecycles through the aws CLI.</summary>
public sealed class Elbv2ApiTests(LoadBalancerFixture fx) : IClassFixture<LoadBalancerFixture>
{
    private Elbv2Cli Elb => fx.Elb;

    private static string[] Strings(JsonNode? array) => array!.AsArray().Select(x => x!.GetValue<string>()).ToArray();

    [Fact]
    public async Task LoadBalancers_DescribePaginateAttributesTagsDelete()
    {
        var names = Enumerable.Range(0, 3).Select(_ => LoadBalancerFixture.Unique("page")).ToArray();
        var arns = new List<string>();
        foreach (var n in names)
        {
            arns.Add((await Elb.CreateLoadBalancerAsync(n)).Arn);
        }
        // Idempotent: the same name and settings give back the same load balancer.
        var again = await Elb.TextAsync("LoadBalancers[0].LoadBalancerArn", "create-load-balancer", "--name", names[0], "--subnets", "subnet-0a1b2c3d", "subnet-1a2b3c4d");
        Assert.Equal(arns[0], again);

        // --page-size is DescribeLoadBalancers' own PageSize here (the CLI then stops auto-paging): follow NextMarker by hand.
        var seen = new List<string>();
        string? marker = null;
        for (var page = 0; page < 50; page++)
        {
            var r = await Elb.RunAsync(["describe-load-balancers", "--page-size", "1", .. (marker is null ? Array.Empty<string>() : ["--marker", marker])]);
            Assert.Single(r["LoadBalancers"]!.AsArray());
            seen.Add(r["LoadBalancers"]![0]!["LoadBalancerName"]!.GetValue<string>());
            marker = r["NextMarker"]?.GetValue<string>();
            if (marker is null)
            {
                break;
            }
        }
        Assert.Null(marker);
        Assert.Subset(seen.ToHashSet(), names.ToHashSet());
        Assert.Equal(seen.Count, seen.Distinct().Count());

        var byName = await Elb.RunAsync("describe-load-balancers", "--names", names[1], names[2]);
        Assert.Equal(names[1..], byName["LoadBalancers"]!.AsArray().Select(l => l!["LoadBalancerName"]!.GetValue<string>()));
        var lb = byName["LoadBalancers"]![0]!;
        Assert.Equal("active", lb["State"]!["Code"]!.GetValue<string>());
        Assert.EndsWith(".elb.localhost", lb["DNSName"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(["us-east-1a", "us-east-1b"], lb["AvailabilityZones"]!.AsArray().Select(z => z!["ZoneName"]!.GetValue<string>()));

        var attrs = await Elb.RunAsync("modify-load-balancer-attributes", "--load-balancer-arn", arns[1], "--attributes",
            "Key=idle_timeout.timeout_seconds,Value=120", "Key=deletion_protection.enabled,Value=true");
        Assert.Contains(attrs["Attributes"]!.AsArray(), a => a!["Key"]!.GetValue<string>() == "idle_timeout.timeout_seconds" && a["Value"]!.GetValue<string>() == "120");
        var refused = await Elb.Aws.TryRunAsync("elbv2", "delete-load-balancer", "--load-balancer-arn", arns[1]);
        Assert.Contains("OperationNotPermitted", refused.Stderr, StringComparison.Ordinal);
        await Elb.RunAsync("modify-load-balancer-attributes", "--load-balancer-arn", arns[1], "--attributes", "Key=deletion_protection.enabled,Value=false");

        await Elb.RunAsync("add-tags", "--resource-arns", arns[1], "--tags", "Key=team,Value=web", "Key=env,Value=test");
        await Elb.RunAsync("remove-tags", "--resource-arns", arns[1], "--tag-keys", "env");
        var tags = await Elb.RunAsync("describe-tags", "--resource-arns", arns[1]);
        Assert.Equal("team=web", string.Join(",", tags["TagDescriptions"]![0]!["Tags"]!.AsArray().Select(t => $"{t!["Key"]}={t["Value"]}")));

        foreach (var arn in arns)
        {
            await Elb.RunAsync("delete-load-balancer", "--load-balancer-arn", arn);
        }
        var gone = await Elb.Aws.TryRunAsync("elbv2", "describe-load-balancers", "--names", names[0]);
        Assert.Contains("LoadBalancerNotFound", gone.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TargetGroups_DefaultsModifyAttributesTargetsAndUsage()
    {
        var name = LoadBalancerFixture.Unique("tg");
        var tg = (await Elb.RunAsync("create-target-group", "--name", name, "--protocol", "HTTP", "--port", "8080", "--vpc-id", "vpc-0a1b2c3d", "--target-type", "ip"))["TargetGroups"]![0]!;
        var arn = tg["TargetGroupArn"]!.GetValue<string>();
        // ALB's health check defaults.
        Assert.Equal(("/", "traffic-port", 30, 5, 5, 2, "200"), (tg["HealthCheckPath"]!.GetValue<string>(), tg["HealthCheckPort"]!.GetValue<string>(),
            tg["HealthCheckIntervalSeconds"]!.GetValue<int>(), tg["HealthCheckTimeoutSeconds"]!.GetValue<int>(), tg["HealthyThresholdCount"]!.GetValue<int>(),
            tg["UnhealthyThresholdCount"]!.GetValue<int>(), tg["Matcher"]!["HttpCode"]!.GetValue<string>()));
        var attributes = (await Elb.RunAsync("describe-target-group-attributes", "--target-group-arn", arn))["Attributes"]!.AsArray()
            .ToDictionary(a => a!["Key"]!.GetValue<string>(), a => a!["Value"]!.GetValue<string>());
        Assert.Equal(("300", "false", "round_robin"), (attributes["deregistration_delay.timeout_seconds"], attributes["stickiness.enabled"], attributes["load_balancing.algorithm.type"]));

        var modified = (await Elb.RunAsync("modify-target-group", "--target-group-arn", arn, "--health-check-path", "/healthz", "--matcher", "HttpCode=200-399"))["TargetGroups"]![0]!;
        Assert.Equal(("/healthz", "200-399"), (modified["HealthCheckPath"]!.GetValue<string>(), modified["Matcher"]!["HttpCode"]!.GetValue<string>()));

        await Elb.RunAsync("register-targets", "--target-group-arn", arn, "--targets", "Id=10.0.0.7", "Id=10.0.0.8,Port=9090");
        var health = (await Elb.RunAsync("describe-target-health", "--target-group-arn", arn))["TargetHealthDescriptions"]!.AsArray();
        Assert.Equal(["10.0.0.7:8080", "10.0.0.8:9090"], health.Select(h => $"{h!["Target"]!["Id"]}:{h["Target"]!["Port"]}").Order());
        // No listener uses the group yet.
        Assert.All(health, h => Assert.Equal("Target.NotInUse", h!["TargetHealth"]!["Reason"]!.GetValue<string>()));
        var unknown = (await Elb.RunAsync("describe-target-health", "--target-group-arn", arn, "--targets", "Id=10.0.0.99,Port=1"))["TargetHealthDescriptions"]![0]!["TargetHealth"]!;
        Assert.Equal(("unused", "Target.NotRegistered"), (unknown["State"]!.GetValue<string>(), unknown["Reason"]!.GetValue<string>()));

        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("usage"));
        var listener = await Elb.CreateListenerAsync(lb, BerthServer.FreePort(), $"Type=forward,TargetGroupArn={arn}");
        var used = await Elb.RunAsync("describe-target-groups", "--load-balancer-arn", lb);
        Assert.Equal([lb], Strings(used["TargetGroups"]![0]!["LoadBalancerArns"]));
        var initial = (await Elb.RunAsync("describe-target-health", "--target-group-arn", arn))["TargetHealthDescriptions"]![0]!["TargetHealth"]!;
        Assert.Equal("initial", initial["State"]!.GetValue<string>());

        var inUse = await Elb.Aws.TryRunAsync("elbv2", "delete-target-group", "--target-group-arn", arn);
        Assert.Contains("ResourceInUse", inUse.Stderr, StringComparison.Ordinal);
        await Elb.RunAsync("delete-listener", "--listener-arn", listener);
        await Elb.RunAsync("delete-target-group", "--target-group-arn", arn);
        await Elb.RunAsync("delete-load-balancer", "--load-balancer-arn", lb);
    }

    [Fact]
    public async Task ListenersAndRules_PrioritiesModifyPortChangeAndDelete()
    {
        await using var backend = await TestBackend.StartAsync("rules");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("rules"));
        var tg = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("rules"));
        await Elb.RegisterAsync(tg, backend);
        var port = BerthServer.FreePort();
        var listener = await Elb.CreateListenerAsync(lb, port, "Type=fixed-response,FixedResponseConfig={StatusCode=503,MessageBody=default}");
        var a = await Elb.TextAsync("Rules[0].RuleArn", "create-rule", "--listener-arn", listener, "--priority", "5",
            "--conditions", "Field=http-request-method,HttpRequestMethodConfig={Values=[POST]}", "--actions", "Type=fixed-response,FixedResponseConfig={StatusCode=201,MessageBody=posted}");
        var b = await Elb.TextAsync("Rules[0].RuleArn", "create-rule", "--listener-arn", listener, "--priority", "6",
            "--conditions", "Field=query-string,QueryStringConfig={Values=[{Key=v,Value=2}]}", "--actions", $"Type=forward,TargetGroupArn={tg}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));
        Assert.Equal((201, "posted"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/?v=2", "-X", "POST"));
        Assert.Equal((200, "rules"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/?v=2"));
        Assert.Equal((503, "default"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));

        // Swap the priorities: now the query-string rule wins for a POST with ?v=2.
        await Elb.RunAsync("set-rule-priorities", "--rule-priorities", $"RuleArn={a},Priority=6", $"RuleArn={b},Priority=5");
        var rules = await Elb.RunAsync("describe-rules", "--listener-arn", listener);
        Assert.Equal([b, a], rules["Rules"]!.AsArray().Where(r => !r!["IsDefault"]!.GetValue<bool>()).Select(r => r!["RuleArn"]!.GetValue<string>()));
        Assert.Equal("default", rules["Rules"]!.AsArray().Last()!["Priority"]!.GetValue<string>());
        var swapped = await Wait.ForAsync(async () =>
            await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/?v=2", "-X", "POST") is { Status: 200 } r ? r.Body : null, TimeSpan.FromSeconds(3), "the swap to apply");
        Assert.Equal("rules", swapped);

        await Elb.RunAsync("modify-rule", "--rule-arn", b, "--conditions", "Field=path-pattern,Values=/only/*");
        await Wait.ForAsync(async () => (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/?v=2")).Status == 503 ? "503" : null, TimeSpan.FromSeconds(3), "the modified rule to apply");

        var newPort = BerthServer.FreePort();
        await Elb.RunAsync("modify-listener", "--listener-arn", listener, "--port", newPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Elbv2Cli.WaitForPortAsync(newPort, open: true, TimeSpan.FromSeconds(5));
        await Elbv2Cli.WaitForPortAsync(port, open: false, TimeSpan.FromSeconds(5));
        Assert.Equal((200, "rules"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{newPort}/only/x"));

        await Elb.RunAsync("delete-rule", "--rule-arn", a);
        Assert.Equal(2, (await Elb.RunAsync("describe-rules", "--listener-arn", listener))["Rules"]!.AsArray().Count);
        // Deleting the load balancer deletes its listeners and closes their ports.
        await Elb.RunAsync("delete-load-balancer", "--load-balancer-arn", lb);
        await Elbv2Cli.WaitForPortAsync(newPort, open: false, TimeSpan.FromSeconds(5));
        var missing = await Elb.Aws.TryRunAsync("elbv2", "describe-listeners", "--listener-arns", listener);
        Assert.Contains("ListenerNotFound", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Boto3_Elbv2Client_CreatesAndDescribes()
    {
        var r = await Boto3.RunAsync("elbv2_smoke.py", fx.Server.Endpoint, LoadBalancerFixture.Unique("boto"));
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("ok", r.Stdout, StringComparison.Ordinal);
    }
}
