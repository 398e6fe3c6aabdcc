using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>
/// The data plane's two paths through the real <c>berth</c> process: plain HTTP/1.1 on the fast path's own loops, the
/// rest handed over to Kestrel (told the client and listener by the hand-over's first line), the connection cap, a
/// target that closes kept-alive connections, and the server with the fast path turned off.
/// </summary>
public sealed partial class FastPathTests(LoadBalancerFixture fx) : IClassFixture<LoadBalancerFixture>
{
    private Elbv2Cli Elb => fx.Elb;

    private static async Task<(long Fast, long HandedOver)> CountersAsync(BerthServer server)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(server.Endpoint + "/_berth/metrics");
        long Read(string name)
        {
            var m = Regex.Match(text, "^" + name + " (\\d+)$", RegexOptions.Multiline);
            return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
        }
        return (Read("berth_alb_fast_path_requests"), Read("berth_alb_handed_over_connections"));
    }

    private async Task<(int Port, string Tg)> ListenerAsync(Elbv2Cli elb, params TestBackend[] backends)
    {
        var (lb, _) = await elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("fp"));
        var tg = await elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("fp"));
        await elb.RegisterAsync(tg, backends);
        var port = BerthServer.FreePort();
        await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));
        return (port, tg);
    }

    [Fact]
    public async Task PlainRequests_TakeTheFastPath_OthersAreHandedOverWithClientAndListenerKept()
    {
        await using var backend = await TestBackend.StartAsync("fast");
        var (port, _) = await ListenerAsync(Elb, backend);
        var before = await CountersAsync(fx.Server);

        Assert.Equal((200, "fast"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
        var mid = await CountersAsync(fx.Server);
        Assert.True(mid.Fast > before.Fast, $"fast path count {before.Fast} -> {mid.Fast}");
        Assert.Equal(before.HandedOver, mid.HandedOver);

        // HTTP/1.0 is Kestrel's: handed over, and the target still sees the client's address and the listener's port.
        var (status, headers) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/headers", "--http1.0", "-H", "X-Forwarded-For: 198.51.100.7");
        Assert.Equal(200, status);
        Assert.Contains("X-Forwarded-For: 198.51.100.7, 127.0.0.1", headers, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"X-Forwarded-Port: {port}", headers, StringComparison.OrdinalIgnoreCase);
        var after = await CountersAsync(fx.Server);
        Assert.True(after.HandedOver > mid.HandedOver, $"handed-over count {mid.HandedOver} -> {after.HandedOver}");

        // The same headers on the fast path.
        (status, headers) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/headers", "-H", "X-Forwarded-For: 198.51.100.7");
        Assert.Equal(200, status);
        Assert.Contains("X-Forwarded-For: 198.51.100.7, 127.0.0.1", headers, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"X-Forwarded-Port: {port}", headers, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("X-Forwarded-Proto: http", headers, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task SourceIpRule_HoldsOnBothPaths()
    {
        await using var local = await TestBackend.StartAsync("local");
        await using var other = await TestBackend.StartAsync("other");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("src"));
        var tgLocal = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("loc"));
        var tgOther = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("oth"));
        await Elb.RegisterAsync(tgLocal, local);
        await Elb.RegisterAsync(tgOther, other);
        var port = BerthServer.FreePort();
        var listener = await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tgOther}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "5",
            "--conditions", """[{"Field":"source-ip","SourceIpConfig":{"Values":["127.0.0.0/8"]}}]""", "--actions", $"Type=forward,TargetGroupArn={tgLocal}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));
        // HTTP/1.1 (fast path) and HTTP/1.0 (handed over): the client is on loopback either way.
        Assert.Equal((200, "local"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
        Assert.Equal((200, "local"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/", "--http1.0"));
    }

    [Fact]
    public async Task TargetClosingKeptAliveConnections_EveryRequestStillAnswered()
    {
        // A target that answers one request per connection and then closes it without saying so (HTTP/1.1, no
        // Connection: close): the load balancer's pooled connection is dead by the next request, sometimes only just.
        await using var raw = new RawTcpBackend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("oneshot"));
        var tg = await Elb.TextAsync("TargetGroups[0].TargetGroupArn", "create-target-group", "--name", LoadBalancerFixture.Unique("oneshot"),
            "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-0a1b2c3d", "--target-type", "ip");
        await Elb.RunAsync("register-targets", "--target-group-arn", tg, "--targets", $"Id=127.0.0.1,Port={raw.Port}");
        var port = BerthServer.FreePort();
        await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { Timeout = TimeSpan.FromSeconds(20) };
        for (var i = 0; i < 40; i++)
        {
            raw.CloseDelayMs = i % 2 == 0 ? 0 : 30;
            using var response = await http.GetAsync($"http://127.0.0.1:{port}/n{i}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("ok", await response.Content.ReadAsStringAsync());
        }
        Assert.True(raw.Connections >= 40, $"the target saw {raw.Connections} connections for 40 requests");
    }

    [Fact]
    public async Task ConnectionCap_ExtraClientsWaitUntilOthersClose()
    {
        await using var server = await BerthServer.StartAsync("server", "--lb-max-connections", "1");
        var elb = new Elbv2Cli(new AwsCli(server.Endpoint));
        await using var backend = await TestBackend.StartAsync("capped");
        var (port, _) = await ListenerAsync(elb, backend);
        // One connection per event loop (one loop per core): open more clients than cores.
        var clients = Enumerable.Range(0, Environment.ProcessorCount + 3).Select(_ => new TcpClient()).ToList();
        try
        {
            foreach (var c in clients)
            {
                await c.ConnectAsync(IPAddress.Loopback, port); // completes from the kernel's accept queue even when not accepted
                await c.GetStream().WriteAsync(Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"));
            }
            var answered = new List<TcpClient>();
            var deadline = DateTime.UtcNow.AddSeconds(3);
            while (DateTime.UtcNow < deadline)
            {
                foreach (var c in clients.Except(answered).Where(c => c.Available > 0).ToList())
                {
                    answered.Add(c);
                }
                await Task.Delay(50);
            }
            Assert.NotEmpty(answered);
            Assert.True(answered.Count <= Environment.ProcessorCount, $"{answered.Count} of {clients.Count} answered with a cap of one per loop");
            // Closing the answered ones lets the others in, one by one as each answered one is closed.
            foreach (var c in answered)
            {
                c.Dispose();
            }
            var waiting = clients.Except(answered).ToList();
            var done = 0;
            var until = DateTime.UtcNow.AddSeconds(30);
            while (waiting.Count > 0 && DateTime.UtcNow < until)
            {
                foreach (var c in waiting.Where(c => c.Available > 0).ToList())
                {
                    var buffer = new byte[c.Available];
                    var n = await c.GetStream().ReadAsync(buffer);
                    Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(buffer, 0, n), StringComparison.Ordinal);
                    c.Dispose();
                    waiting.Remove(c);
                    done++;
                }
                await Task.Delay(50);
            }
            Assert.Empty(waiting);
            Assert.Equal(clients.Count - answered.Count, done);
        }
        finally
        {
            foreach (var c in clients)
            {
                c.Dispose();
            }
        }
    }

    [Fact]
    public async Task FastPathOff_KestrelServesTheListenerPorts()
    {
        await using var server = await BerthServer.StartWithEnvAsync(new Dictionary<string, string> { ["BERTH_LB_FAST_PATH"] = "0" }, "server");
        var elb = new Elbv2Cli(new AwsCli(server.Endpoint));
        await using var backend = await TestBackend.StartAsync("kestrel");
        var (port, _) = await ListenerAsync(elb, backend);
        Assert.Equal((200, "kestrel"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
        Assert.Equal((-1, -1), await CountersAsync(server));
    }
}
