using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>What the data plane rebuilds from the store after kill -9, and the least-outstanding-requests algorithm.</summary>
public sealed class DataPlaneRestartAndAlgorithmTests
{
    [Fact]
    public async Task KillAndRestart_ListenersRulesAndTargetsServeAgain()
    {
        await using var server = await BerthServer.StartAsync("server");
        var elb = new Elbv2Cli(new AwsCli(server.Endpoint));
        await using var backend = await TestBackend.StartAsync("persisted");
        var (lb, _) = await elb.CreateLoadBalancerAsync("restart");
        var tg = await elb.CreateTargetGroupAsync("restart");
        await elb.RegisterAsync(tg, backend);
        var port = BerthServer.FreePort();
        var listener = await elb.CreateListenerAsync(lb, port, "Type=fixed-response,FixedResponseConfig={StatusCode=404}");
        await elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "7", "--conditions", "Field=path-pattern,Values=/app*", "--actions", $"Type=forward,TargetGroupArn={tg}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));
        Assert.Equal((200, "persisted"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/app"));

        await server.KillAsync();
        await Elbv2Cli.WaitForPortAsync(port, open: false, TimeSpan.FromSeconds(5));
        await server.RestartAsync();
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(10));
        Assert.Equal((200, "persisted"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/app"));
        Assert.Equal(404, (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/other")).Status);
        var health = (await elb.RunAsync("describe-target-health", "--target-group-arn", tg))["TargetHealthDescriptions"]!.AsArray();
        Assert.Equal(backend.Port, Assert.Single(health)!["Target"]!["Port"]!.GetValue<int>());
    }

    [Fact]
    public async Task KillAndRestart_TargetsKeepTheirLastVerdicts()
    {
        await using var server = await BerthServer.StartAsync("server");
        var elb = new Elbv2Cli(new AwsCli(server.Endpoint));
        await using var good = await TestBackend.StartAsync("good");
        await using var bad = await TestBackend.StartAsync("bad");
        bad.HealthStatus = 500;
        var (lb, _) = await elb.CreateLoadBalancerAsync("verdicts");
        var tg = await elb.CreateTargetGroupAsync("verdicts");
        await elb.RegisterAsync(tg, good, bad);
        var port = BerthServer.FreePort();
        await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        async Task<Dictionary<int, string>> StatesAsync()
            => (await elb.RunAsync("describe-target-health", "--target-group-arn", tg))["TargetHealthDescriptions"]!.AsArray()
                .ToDictionary(d => d!["Target"]!["Port"]!.GetValue<int>(), d => d!["TargetHealth"]!["State"]!.GetValue<string>());
        // The first check passes good at once; bad needs two failures, 5 s apart.
        await Wait.ForAsync(async () => (await StatesAsync()) is var s && s[good.Port] == "healthy" && s[bad.Port] == "unhealthy" ? "ok" : null,
            TimeSpan.FromSeconds(60), "good healthy and bad unhealthy");
        // Checks every 60 s from now on: after the restart the first check fails bad once, too few (2) to judge it unhealthy by itself.
        await elb.RunAsync("modify-target-group", "--target-group-arn", tg, "--health-check-interval-seconds", "60");
        var file = Path.Combine(server.DataDirectory, "lb-health.json");
        await Wait.ForAsync(() => Task.FromResult(File.Exists(file) && File.ReadAllText(file).Contains("unhealthy", StringComparison.Ordinal) ? "saved" : null),
            TimeSpan.FromSeconds(10), "the verdicts to be saved");

        await server.KillAsync();
        await server.RestartAsync();
        // Straight after the restart: the verdicts are the saved ones, not 'initial'; bad gets no traffic.
        var after = await StatesAsync();
        Assert.Equal("healthy", after[good.Port]);
        Assert.Equal("unhealthy", after[bad.Port]);
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(10));
        var before = bad.Requests;
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal((200, "good"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
        }
        Assert.Equal(before, bad.Requests);
    }

    [Fact]
    public async Task LeastOutstandingRequests_AvoidsTheTargetThatIsBusy()
    {
        await using var server = await BerthServer.StartAsync("server");
        var elb = new Elbv2Cli(new AwsCli(server.Endpoint));
        await using var a = await TestBackend.StartAsync("a");
        await using var b = await TestBackend.StartAsync("b");
        var (lb, _) = await elb.CreateLoadBalancerAsync("lor");
        var tg = await elb.CreateTargetGroupAsync("lor");
        await elb.SetAttributeAsync(tg, "load_balancing.algorithm.type", "least_outstanding_requests");
        await elb.RegisterAsync(tg, a, b);
        var port = BerthServer.FreePort();
        await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await elb.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(30));

        // Four slow requests in flight: least outstanding requests spreads them two and two.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var slow = Enumerable.Range(0, 4).Select(_ => http.GetStringAsync($"http://127.0.0.1:{port}/slow?ms=3000")).ToArray();
        await Wait.ForAsync(() => Task.FromResult(a.Requests + b.Requests >= 4 ? "in flight" : null), TimeSpan.FromSeconds(5), "four slow requests to start");
        Assert.Equal((2, 2), (a.Requests, b.Requests));
        // One more slow request on a: now b has fewer outstanding, and every quick request goes there.
        var extra = http.GetStringAsync($"http://127.0.0.1:{port}/slow?ms=3000");
        await Wait.ForAsync(() => Task.FromResult(a.Requests + b.Requests >= 5 ? "in flight" : null), TimeSpan.FromSeconds(5), "the fifth request to start");
        var busier = a.Requests > b.Requests ? "a" : "b";
        var idler = busier == "a" ? "b" : "a";
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(idler, await http.GetStringAsync($"http://127.0.0.1:{port}/"));
        }
        await Task.WhenAll([.. slow, extra]);
    }

    [Fact]
    public async Task WebSocketUpgrade_PassesThroughTheListener()
    {
        await using var server = await BerthServer.StartAsync("server");
        var elb = new Elbv2Cli(new AwsCli(server.Endpoint));
        await using var backend = await TestBackend.StartAsync("ws");
        var (lb, _) = await elb.CreateLoadBalancerAsync("websocket");
        var tg = await elb.CreateTargetGroupAsync("websocket");
        await elb.RegisterAsync(tg, backend);
        var port = BerthServer.FreePort();
        await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        using var ws = new System.Net.WebSockets.ClientWebSocket();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/socket"), cts.Token);
        var buffer = new byte[1024];
        foreach (var message in new[] { "one", "two" })
        {
            await ws.SendAsync(System.Text.Encoding.UTF8.GetBytes(message), System.Net.WebSockets.WebSocketMessageType.Text, true, cts.Token);
            var r = await ws.ReceiveAsync(buffer, cts.Token);
            Assert.Equal("ws:" + message, System.Text.Encoding.UTF8.GetString(buffer, 0, r.Count));
        }
        await ws.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "done", cts.Token);
    }

    [Fact]
    public async Task SlowStart_NewlyHealthyTarget_GetsASmallShareFirst()
    {
        await using var server = await BerthServer.StartAsync("server");
        var elb = new Elbv2Cli(new AwsCli(server.Endpoint));
        await using var old = await TestBackend.StartAsync("old");
        await using var fresh = await TestBackend.StartAsync("fresh");
        var (lb, _) = await elb.CreateLoadBalancerAsync("slowstart");
        var tg = await elb.CreateTargetGroupAsync("slowstart");
        await elb.RegisterAsync(tg, old);
        var port = BerthServer.FreePort();
        await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await elb.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(30));
        await elb.SetAttributeAsync(tg, "slow_start.duration_seconds", "120");
        await elb.RegisterAsync(tg, fresh);
        await elb.WaitForStateAsync(tg, "healthy", TimeSpan.FromSeconds(30));

        // Within seconds of turning healthy the new target's share is a few percent, not half.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var toFresh = 0;
        for (var i = 0; i < 200; i++)
        {
            if (await http.GetStringAsync($"http://127.0.0.1:{port}/") == "fresh")
            {
                toFresh++;
            }
        }
        Assert.InRange(toFresh, 0, 40);
    }
}
