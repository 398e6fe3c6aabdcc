using System.Diagnostics;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>
/// The data plane through the real <c>berth</c> process: load balancers, groups and listeners made with
/// the aws CLI, traffic sent with curl (and HttpClient where a thousand requests are needed) to
/// backends on loopback.
/// </summary>
public sealed partial class DataPlaneTests(LoadBalancerFixture fx) : IClassFixture<LoadBalancerFixture>
{
    private Elbv2Cli Elb => fx.Elb;

    [Fact]
    public async Task TwoRuleListener_RoutesByPathAndHost_WithAlbHeaders()
    {
        await using var api = await TestBackend.StartAsync("api");
        await using var admin = await TestBackend.StartAsync("admin");
        var (lb, dns) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("two"));
        var tgApi = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("api"));
        var tgAdmin = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("admin"));
        await Elb.RegisterAsync(tgApi, api);
        await Elb.RegisterAsync(tgAdmin, admin);
        var port = BerthServer.FreePort();
        var listener = await Elb.CreateListenerAsync(lb, port, "Type=fixed-response,FixedResponseConfig={StatusCode=404,ContentType=text/plain,MessageBody=no route}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "10",
            "--conditions", "Field=path-pattern,Values=/api/*", "--actions", $"Type=forward,TargetGroupArn={tgApi}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "20",
            "--conditions", """[{"Field":"host-header","HostHeaderConfig":{"Values":["admin.*"]}}]""", "--actions", $"Type=forward,TargetGroupArn={tgAdmin}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "30",
            "--conditions", "Field=path-pattern,Values=/old/*", "--actions", """[{"Type":"redirect","RedirectConfig":{"Path":"/new/#{path}","StatusCode":"HTTP_301"}}]""");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        // The DNS name is under .localhost, which curl resolves to loopback.
        Assert.Equal((200, "api"), await Elbv2Cli.CurlAsync($"http://{dns}:{port}/api/users"));
        Assert.Equal((200, "admin"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/anything", "-H", "Host: admin.example.com"));
        // Priority decides when both match: /api/* (10) before admin.* (20).
        Assert.Equal((200, "api"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/api/x", "-H", "Host: admin.example.com"));
        Assert.Equal((404, "no route"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/other"));
        var redirect = await Processes.RunAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", $"http://127.0.0.1:{port}/old/page"]);
        Assert.Equal($"301 http://127.0.0.1:{port}/new/old/page", redirect.Stdout);

        var (status, headers) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/api/headers", "-H", "X-Forwarded-For: 203.0.113.9");
        Assert.Equal(200, status);
        Assert.Contains("X-Forwarded-For: 203.0.113.9, 127.0.0.1", headers, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("X-Forwarded-Proto: http", headers, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"X-Forwarded-Port: {port}", headers, StringComparison.OrdinalIgnoreCase);
        Assert.Matches(TraceIdHeader(), headers);
        Assert.Contains($"Host: 127.0.0.1:{port}", headers, StringComparison.OrdinalIgnoreCase);

        // Deleting the listener closes its port.
        await Elb.RunAsync("delete-listener", "--listener-arn", listener);
        await Elbv2Cli.WaitForPortAsync(port, open: false, TimeSpan.FromSeconds(5));
    }

    [GeneratedRegex("X-Amzn-Trace-Id: Root=1-[0-9a-f]{8}-[0-9a-f]{24}", RegexOptions.IgnoreCase)]
    private static partial Regex TraceIdHeader();

    [Fact]
    public async Task WeightedForward_80_20_Within5PercentOver1000Requests()
    {
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("weighted"));
        var tgA = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("wa"));
        var tgB = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("wb"));
        await Elb.RegisterAsync(tgA, a);
        await Elb.RegisterAsync(tgB, b);
        var port = BerthServer.FreePort();
        await Elb.CreateListenerAsync(lb, port, $$$"""[{"Type":"forward","ForwardConfig":{"TargetGroups":[{"TargetGroupArn":"{{{tgA}}}","Weight":80},{"TargetGroupArn":"{{{tgB}}}","Weight":20}]}}]""");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var counts = new Dictionary<string, int> { ["a"] = 0, ["b"] = 0 };
        for (var i = 0; i < 1000; i++)
        {
            var body = await http.GetStringAsync($"http://127.0.0.1:{port}/");
            counts[body]++;
        }
        Assert.InRange(counts["a"], 750, 850);
        Assert.Equal(1000, counts["a"] + counts["b"]);
    }

    [Fact]
    public async Task HealthCheck_TakesFailingTargetOut_AndBringsItBack()
    {
        await using var good = await TestBackend.StartAsync("good");
        await using var flaky = await TestBackend.StartAsync("flaky");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("health"));
        var tg = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("health"), "--matcher", "HttpCode=200-299");
        await Elb.RegisterAsync(tg, good, flaky);
        var port = BerthServer.FreePort();
        await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elb.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(30));

        flaky.HealthStatus = 500;
        var unhealthy = await Wait.ForAsync(async () =>
        {
            var d = (await Elb.RunAsync("describe-target-health", "--target-group-arn", tg, "--targets", $"Id=127.0.0.1,Port={flaky.Port}"))["TargetHealthDescriptions"]![0]!["TargetHealth"]!;
            return d["State"]!.GetValue<string>() == "unhealthy" ? d : null;
        }, TimeSpan.FromSeconds(30), "the flaky target to turn unhealthy");
        Assert.Equal("Target.ResponseCodeMismatch", unhealthy["Reason"]!.GetValue<string>());
        Assert.Contains("[500]", unhealthy["Description"]!.GetValue<string>(), StringComparison.Ordinal);

        var before = flaky.Requests;
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal((200, "good"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
        }
        Assert.Equal(before, flaky.Requests);

        flaky.HealthStatus = 204; // inside the 200-299 matcher
        await Elb.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(30));
        var seen = new HashSet<string>();
        for (var i = 0; i < 10; i++)
        {
            seen.Add((await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/")).Body);
        }
        Assert.Equal(["flaky", "good"], seen.Order());
    }

    [Fact]
    public async Task FailOpen_AllTargetsUnhealthy_StillServed()
    {
        await using var sick = await TestBackend.StartAsync("sick");
        sick.HealthStatus = 503;
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("failopen"));
        var tg = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("failopen"));
        await Elb.RegisterAsync(tg, sick);
        var port = BerthServer.FreePort();
        await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elb.WaitForStateAsync(tg, "unhealthy", TimeSpan.FromSeconds(30));
        Assert.Equal((200, "sick"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
    }

    [Fact]
    public async Task ElbErrors_503NoTargets_502DeadOrReset_504Slow()
    {
        await using var live = await TestBackend.StartAsync("live");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("errors"));
        await Elb.RunAsync("modify-load-balancer-attributes", "--load-balancer-arn", lb, "--attributes", "Key=idle_timeout.timeout_seconds,Value=2");
        var empty = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("empty"));
        var dead = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("dead"));
        var slow = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("slow"));
        await Elb.RunAsync("register-targets", "--target-group-arn", dead, "--targets", $"Id=127.0.0.1,Port={BerthServer.FreePort()}");
        await Elb.RegisterAsync(slow, live);
        var port = BerthServer.FreePort();
        var listener = await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={empty}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "1", "--conditions", "Field=path-pattern,Values=/dead*", "--actions", $"Type=forward,TargetGroupArn={dead}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "2", "--conditions", "Field=path-pattern,Values=/slow*,/reset", "--actions", $"Type=forward,TargetGroupArn={slow}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        Assert.Equal(503, (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/")).Status);
        Assert.Equal(502, (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/dead")).Status);
        Assert.Equal(502, (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/reset")).Status);
        var sw = Stopwatch.StartNew();
        var timedOut = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/slow?ms=6000");
        Assert.Equal(504, timedOut.Status);
        Assert.InRange(sw.Elapsed.TotalSeconds, 1.5, 5.5);
        Assert.Equal((200, "live"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/slow?ms=100"));

        var metrics = await Elbv2Cli.CurlAsync($"{fx.Server.Endpoint}/_berth/metrics");
        Assert.Matches("berth_alb_HTTPCode_ELB_5XX_Count\\{target_group=\"dead-[0-9a-f]+\"\\} [1-9]", metrics.Body);
        Assert.Matches("berth_alb_HTTPCode_Target_2XX_Count\\{target_group=\"slow-[0-9a-f]+\"\\} 1", metrics.Body);
    }

    [Fact]
    public async Task Deregistration_InFlightSlowRequestCompletes_ThenDrainingEnds()
    {
        await using var backend = await TestBackend.StartAsync("draining");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("drain"));
        var tg = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("drain"));
        await Elb.SetAttributeAsync(tg, "deregistration_delay.timeout_seconds", "60");
        await Elb.RegisterAsync(tg, backend);
        var port = BerthServer.FreePort();
        await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        var inFlight = Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/slow?ms=4000");
        await Wait.ForAsync(() => Task.FromResult(backend.Requests > 0 ? "started" : null), TimeSpan.FromSeconds(5), "the slow request to reach the backend");
        var sw = Stopwatch.StartNew();
        await Elb.RunAsync("deregister-targets", "--target-group-arn", tg, "--targets", $"Id=127.0.0.1,Port={backend.Port}");
        var health = (await Elb.RunAsync("describe-target-health", "--target-group-arn", tg))["TargetHealthDescriptions"]![0]!["TargetHealth"]!;
        Assert.Equal(("draining", "Target.DeregistrationInProgress"), (health["State"]!.GetValue<string>(), health["Reason"]!.GetValue<string>()));
        // No new requests go to a draining target: the group has no registered targets left.
        await Wait.ForAsync(async () => (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/")).Status == 503 ? "503" : null, TimeSpan.FromSeconds(3), "new requests to get 503");

        Assert.Equal((200, "draining"), await inFlight);
        // With nothing in flight the target leaves draining long before the 60 s delay.
        await Wait.ForAsync(async () => (await Elb.HealthStatesAsync(tg)).Length == 0 ? "gone" : null, TimeSpan.FromSeconds(5), "draining to end");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"draining took {sw.Elapsed}");
    }

    [Fact]
    public async Task Stickiness_AwsAlbCookie_KeepsClientOnOneTarget()
    {
        await using var a = await TestBackend.StartAsync("s1");
        await using var b = await TestBackend.StartAsync("s2");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("sticky"));
        var tg = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("sticky"));
        await Elb.RunAsync("modify-target-group-attributes", "--target-group-arn", tg, "--attributes",
            "Key=stickiness.enabled,Value=true", "Key=stickiness.lb_cookie.duration_seconds,Value=600");
        await Elb.RegisterAsync(tg, a, b);
        var port = BerthServer.FreePort();
        await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elb.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(30));

        // Without the cookie, round robin reaches both targets.
        var seen = new HashSet<string>();
        for (var i = 0; i < 6; i++)
        {
            seen.Add((await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/")).Body);
        }
        Assert.Equal(2, seen.Count);

        var jar = Path.Combine(fx.Server.DataDirectory, "cookies-" + Guid.NewGuid().ToString("N"));
        var first = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/", "-c", jar);
        Assert.Contains("AWSALB", await File.ReadAllTextAsync(jar), StringComparison.Ordinal);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(first, await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/", "-b", jar));
        }
    }
}
