using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>
/// HTTP/1.1 wire semantics through a listener of the real <c>berth</c> process: bodies (sized, chunked, 100-continue),
/// responses (chunked, close-delimited, 204, HEAD, broken), connection reuse (keep-alive, pipelining, target
/// <c>Connection: close</c>), hop-by-hop and ALB headers, big headers, raw targets, concurrency. Written against what a
/// client and a target can observe only, so any data-plane implementation is held to the same behaviour.
/// </summary>
public sealed class ProxyWireTests(LoadBalancerFixture fx) : IClassFixture<LoadBalancerFixture>
{
    private Elbv2Cli Elb => fx.Elb;

    /// <summary>A load balancer with one listener forwarding to one group of <paramref name="ports"/>; the port once it accepts.</summary>
    private async Task<(int Port, string TargetGroup, string Listener, string GroupName)> ListenerAsync(string prefix, params int[] ports)
    {
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique(prefix));
        var name = LoadBalancerFixture.Unique(prefix);
        var tg = await Elb.CreateTargetGroupAsync(name);
        await Elb.RunAsync(["register-targets", "--target-group-arn", tg, "--targets", .. ports.Select(p => $"Id=127.0.0.1,Port={p}")]);
        var port = BerthServer.FreePort();
        var listener = await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));
        return (port, tg, listener, name);
    }

    private static async Task<(string Path, string Expected)> RandomFileAsync(int size)
    {
        var data = RandomNumberGenerator.GetBytes(size);
        var path = Path.Combine(Path.GetTempPath(), "berth-wire-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllBytesAsync(path, data);
        return (path, size.ToString(CultureInfo.InvariantCulture) + " " + Convert.ToHexStringLower(SHA256.HashData(data)));
    }

    [Fact]
    public async Task RequestBodies_ContentLength_Chunked_And100Continue_ArriveIntact()
    {
        await using var backend = await TestBackend.StartAsync("body");
        var (port, _, _, _) = await ListenerAsync("body", backend.Port);
        var url = $"http://127.0.0.1:{port}/echo";
        var (big, bigExpected) = await RandomFileAsync(1024 * 1024);
        var (mid, midExpected) = await RandomFileAsync(300 * 1024 + 7);
        try
        {
            // 1. A 1 MiB body with Content-Length.
            Assert.Equal((200, bigExpected), await Elbv2Cli.CurlAsync(url, "--data-binary", "@" + big, "-H", "Content-Type: application/octet-stream"));
            // 2. A chunked request body.
            Assert.Equal((200, midExpected), await Elbv2Cli.CurlAsync(url, "--data-binary", "@" + mid, "-H", "Transfer-Encoding: chunked"));
            // 3. Expect: 100-continue: the client is told to go on (curl would otherwise wait 1 s and send anyway) and the body arrives.
            var sw = Stopwatch.StartNew();
            var r = await Processes.RunAsync("curl", ["-sS", "-v", "-m", "30", "--expect100-timeout", "10", "-H", "Expect: 100-continue", "--data-binary", "@" + mid, url], timeout: TimeSpan.FromSeconds(40));
            Assert.Equal(0, r.ExitCode);
            Assert.Equal(midExpected, r.Stdout);
            Assert.Contains("HTTP/1.1 100 Continue", r.Stderr, StringComparison.Ordinal);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(8), $"the 100-continue upload took {sw.Elapsed}");
            // An empty POST still reaches the target as an empty body.
            Assert.Equal((200, "0 " + Convert.ToHexStringLower(SHA256.HashData([]))), await Elbv2Cli.CurlAsync(url, "-X", "POST"));
        }
        finally
        {
            File.Delete(big);
            File.Delete(mid);
        }
    }

    [Fact]
    public async Task ChunkedResponse_Complete_ForHttp11AndHttp10Clients()
    {
        await using var backend = await TestBackend.StartAsync("chunky");
        var (port, _, _, _) = await ListenerAsync("chunky", backend.Port);
        // 4. 500 chunks of 2 KiB (1000 KiB).
        var (status, body) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/chunked?n=500");
        Assert.Equal(200, status);
        Assert.Equal(500 * 2048, body.Length);
        Assert.Equal(TestBackend.ChunkedBody(500), body);
        // 5. An HTTP/1.0 client gets whole bodies, also the chunked one (which it cannot be sent chunked).
        Assert.Equal((200, "chunky"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/", "--http1.0"));
        Assert.Equal((200, TestBackend.ChunkedBody(50)), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/chunked?n=50", "--http1.0"));
        var v10 = await Processes.RunAsync("curl", ["-s", "-m", "30", "--http1.0", "-D", "-", "-o", "/dev/null", $"http://127.0.0.1:{port}/chunked?n=3"], timeout: TimeSpan.FromSeconds(40));
        Assert.DoesNotContain("Transfer-Encoding", v10.Stdout, StringComparison.OrdinalIgnoreCase);
        // The same over a raw HTTP/1.1 connection: the chunked body decodes to the bytes sent, and the connection is reusable.
        using var c = await RawHttpConnection.OpenAsync(port);
        await c.SendAsync(RawHttpConnection.Request("GET", "/chunked?n=20", port));
        var first = await c.ReadResponseAsync();
        Assert.Equal((200, TestBackend.ChunkedBody(20)), (first.Status, first.Body));
        await c.SendAsync(RawHttpConnection.Request("GET", "/", port));
        var second = await c.ReadResponseAsync();
        Assert.Equal((200, "chunky"), (second.Status, second.Body));
    }

    [Fact]
    public async Task Head_And204_HaveNoBody_AndTheConnectionStaysUsable()
    {
        await using var backend = await TestBackend.StartAsync("nobody");
        var (port, _, _, _) = await ListenerAsync("nobody", backend.Port);
        // 6. HEAD then GET on one connection: if a body followed the HEAD answer, the GET's answer would be garbled.
        using (var c = await RawHttpConnection.OpenAsync(port))
        {
            await c.SendAsync(RawHttpConnection.Request("HEAD", "/", port));
            var head = await c.ReadResponseAsync(head: true);
            Assert.Equal((200, ""), (head.Status, head.Body));
            await c.SendAsync(RawHttpConnection.Request("GET", "/", port));
            var get = await c.ReadResponseAsync();
            Assert.Equal((200, "nobody"), (get.Status, get.Body));
        }
        var curlHead = await Processes.RunAsync("curl", ["-s", "-m", "15", "-I", "-w", "%{http_code} %{size_download}", "-o", "/dev/null", $"http://127.0.0.1:{port}/"], timeout: TimeSpan.FromSeconds(25));
        Assert.Equal("200 0", curlHead.Stdout);
        // 7. 204 then GET on one connection.
        using (var c = await RawHttpConnection.OpenAsync(port))
        {
            await c.SendAsync(RawHttpConnection.Request("GET", "/nocontent", port));
            var none = await c.ReadResponseAsync();
            Assert.Equal((204, ""), (none.Status, none.Body));
            Assert.False(none.Headers.ContainsKey("Transfer-Encoding"), "a 204 must not carry Transfer-Encoding");
            await c.SendAsync(RawHttpConnection.Request("GET", "/", port));
            var get = await c.ReadResponseAsync();
            Assert.Equal((200, "nobody"), (get.Status, get.Body));
        }
        Assert.Equal((204, ""), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/nocontent"));
    }

    [Fact]
    public async Task Pipelining_ThreeRequestsInOneSend_AnsweredInOrder()
    {
        await using var backend = await TestBackend.StartAsync("pipe");
        var (port, _, _, _) = await ListenerAsync("pipe", backend.Port);
        using var c = await RawHttpConnection.OpenAsync(port);
        // 8. Three different answers (one chunked), so any reordering or mixing shows.
        await c.SendAsync(RawHttpConnection.Request("GET", "/echo-path/1?slow", port)
            + RawHttpConnection.Request("GET", "/chunked?n=2", port)
            + RawHttpConnection.Request("GET", "/echo-path/3", port));
        var r1 = await c.ReadResponseAsync();
        var r2 = await c.ReadResponseAsync();
        var r3 = await c.ReadResponseAsync();
        Assert.Equal((200, "/echo-path/1?slow"), (r1.Status, r1.Body));
        Assert.Equal((200, TestBackend.ChunkedBody(2)), (r2.Status, r2.Body));
        Assert.Equal((200, "/echo-path/3"), (r3.Status, r3.Body));
        // Still usable afterwards.
        await c.SendAsync(RawHttpConnection.Request("GET", "/", port));
        Assert.Equal("pipe", (await c.ReadResponseAsync()).Body);
    }

    [Fact]
    public async Task KeepAlive_200RequestsOnOneConnection_RoundRobin_CountedInMetrics()
    {
        await using var a = await TestBackend.StartAsync("ka");
        await using var b = await TestBackend.StartAsync("kb");
        var (port, _, _, groupName) = await ListenerAsync("keep", a.Port, b.Port);
        var connects = 0;
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ConnectCallback = async (ctx, ct) =>
            {
                Interlocked.Increment(ref connects);
                var s = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                await s.ConnectAsync(ctx.DnsEndPoint, ct);
                return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        var counts = new Dictionary<string, int> { ["ka"] = 0, ["kb"] = 0 };
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < 200; i++)
        {
            using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            counts[await response.Content.ReadAsStringAsync()]++;
        }
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"200 keep-alive requests took {sw.Elapsed}");
        // 9. One client connection carried all 200; round robin spread them over both targets.
        Assert.Equal(1, connects);
        Assert.InRange(counts["ka"], 80, 120);
        Assert.InRange(counts["kb"], 80, 120);
        // 19. The group's RequestCount shows them.
        var metrics = await Elbv2Cli.CurlAsync($"{fx.Server.Endpoint}/_berth/metrics");
        Assert.Equal(200, metrics.Status);
        var line = metrics.Body.Split('\n').Single(l => l.StartsWith($"berth_alb_RequestCount{{target_group=\"{groupName}\"}} ", StringComparison.Ordinal));
        Assert.True(double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture) >= 200, line);
    }

    [Fact]
    public async Task TargetConnectionClose_ClientConnectionStaysOpen()
    {
        await using var backend = await TestBackend.StartAsync("closer");
        var (port, _, _, _) = await ListenerAsync("closer", backend.Port);
        // 10. The target ends its connection after each answer; the client's connection to the listener is not the target's.
        using var c = await RawHttpConnection.OpenAsync(port);
        for (var i = 0; i < 3; i++)
        {
            await c.SendAsync(RawHttpConnection.Request("GET", "/close", port));
            var r = await c.ReadResponseAsync();
            Assert.Equal((200, "closer"), (r.Status, r.Body));
        }
        await c.SendAsync(RawHttpConnection.Request("GET", "/", port));
        var last = await c.ReadResponseAsync();
        Assert.Equal((200, "closer"), (last.Status, last.Body));
    }

    private static Dictionary<string, string> ParseHeaders(string body)
        => body.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => (Name: l[..l.IndexOf(':', StringComparison.Ordinal)], Value: l[(l.IndexOf(':', StringComparison.Ordinal) + 2)..]))
            .ToDictionary(h => h.Name, h => h.Value, StringComparer.OrdinalIgnoreCase);

    [Fact]
    public async Task HopByHopHeadersDropped_AlbHeadersSet_TraceIdKeptOrReplaced()
    {
        await using var backend = await TestBackend.StartAsync("hop");
        var (port, _, _, _) = await ListenerAsync("hop", backend.Port);
        // 11.
        const string trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
        var (status, body) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/headers",
            "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: 1", "-H", "Keep-Alive: timeout=5", "-H", "Proxy-Connection: x",
            "-H", "X-Custom: 1", "-H", "X-Amzn-Trace-Id: " + trace, "-H", "X-Forwarded-Proto: https", "-H", "X-Forwarded-Port: 1");
        Assert.Equal(200, status);
        var seen = ParseHeaders(body);
        Assert.False(seen.ContainsKey("Keep-Alive"), body);
        Assert.False(seen.ContainsKey("Proxy-Connection"), body);
        Assert.Equal("1", seen["X-Custom"]);
        Assert.Equal(trace, seen["X-Amzn-Trace-Id"]);
        Assert.Equal("http", seen["X-Forwarded-Proto"]);
        Assert.Equal(port.ToString(CultureInfo.InvariantCulture), seen["X-Forwarded-Port"]);
        Assert.Equal($"127.0.0.1:{port}", seen["Host"]);

        var (status2, body2) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/headers", "-H", "X-Amzn-Trace-Id: Self=abc");
        Assert.Equal(200, status2);
        Assert.Matches("^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$", ParseHeaders(body2)["X-Amzn-Trace-Id"]);
    }

    [Fact]
    public async Task HeadersNamedInConnection_AreNotForwarded()
    {
        await using var backend = await TestBackend.StartAsync("hop2");
        var (port, _, _, _) = await ListenerAsync("hop2", backend.Port);
        // 11 (RFC 9110 §7.6.1): a header the client names in Connection is for the next hop only.
        var (status, body) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/headers",
            "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: 1", "-H", "X-Custom: 1");
        Assert.Equal(200, status);
        var seen = ParseHeaders(body);
        Assert.Equal("1", seen["X-Custom"]);
        Assert.False(seen.ContainsKey("X-Hop"), body);
    }

    [Fact]
    public async Task EightKibHeaders_PassBothWays()
    {
        await using var backend = await TestBackend.StartAsync("big");
        var (port, _, _, _) = await ListenerAsync("big", backend.Port);
        // 12. An 8 KiB response header.
        using (var c = await RawHttpConnection.OpenAsync(port))
        {
            await c.SendAsync(RawHttpConnection.Request("GET", "/bigheader", port));
            var r = await c.ReadResponseAsync();
            Assert.Equal((200, "big"), (r.Status, r.Body));
            Assert.Equal(new string('b', 8192), r.Headers["X-Big"]);
        }
        // An 8 KiB request header.
        var value = string.Concat(Enumerable.Repeat("0123456789abcdef", 512));
        var (status, body) = await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/headers", "-H", "X-Long: " + value);
        Assert.Equal(200, status);
        Assert.Equal(value, ParseHeaders(body)["X-Long"]);
    }

    [Fact]
    public async Task RawTargets_CloseDelimited_Truncated_Garbage()
    {
        // 13. No Content-Length, not chunked: the body ends when the target closes.
        var closeBody = string.Concat(Enumerable.Range(0, 5000).Select(i => i.ToString("D6", CultureInfo.InvariantCulture) + "\n"));
        await using var closeDelimited = new RawTcpBackend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + closeBody);
        // 14. Content-Length: 100, then 10 bytes, then close.
        await using var truncated = new RawTcpBackend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789");
        // 15. Not HTTP.
        await using var garbage = new RawTcpBackend("HELLO\r\n\r\n");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("raw"));
        var tgClose = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("rclose"));
        var tgTrunc = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("rtrunc"));
        var tgGarbage = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("rgarb"));
        await Elb.RunAsync("register-targets", "--target-group-arn", tgClose, "--targets", $"Id=127.0.0.1,Port={closeDelimited.Port}");
        await Elb.RunAsync("register-targets", "--target-group-arn", tgTrunc, "--targets", $"Id=127.0.0.1,Port={truncated.Port}");
        await Elb.RunAsync("register-targets", "--target-group-arn", tgGarbage, "--targets", $"Id=127.0.0.1,Port={garbage.Port}");
        var port = BerthServer.FreePort();
        var listener = await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tgClose}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "1", "--conditions", "Field=path-pattern,Values=/trunc", "--actions", $"Type=forward,TargetGroupArn={tgTrunc}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "2", "--conditions", "Field=path-pattern,Values=/garbage", "--actions", $"Type=forward,TargetGroupArn={tgGarbage}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        Assert.Equal((200, closeBody), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
        Assert.Equal((200, closeBody), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/", "--http1.0"));

        var sw = Stopwatch.StartNew();
        var t = await Processes.RunAsync("curl", ["-s", "-m", "15", "-w", "\n%{http_code} %{size_download}", $"http://127.0.0.1:{port}/trunc"], timeout: TimeSpan.FromSeconds(25));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(12), $"the truncated answer took {sw.Elapsed} (curl exit {t.ExitCode})");
        Assert.NotEqual(28, t.ExitCode); // 28: curl's own timeout, i.e. the client hung
        var size = int.Parse(t.Stdout[(t.Stdout.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        Assert.False(t.ExitCode == 0 && size == 100, $"a truncated body was reported complete: exit {t.ExitCode}, {size} bytes");
        Assert.True(t.ExitCode != 0 || size < 100, $"exit {t.ExitCode}, {size} bytes");

        Assert.Equal(502, (await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/garbage")).Status);
        Assert.True(garbage.Requests >= 1);
        // The listener is still fine.
        Assert.Equal((200, closeBody), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/"));
    }

    [Fact]
    public async Task Concurrency_100Connections_x20Requests_AllAnswered()
    {
        await using var a = await TestBackend.StartAsync("c1");
        await using var b = await TestBackend.StartAsync("c2");
        var (port, _, _, _) = await ListenerAsync("conc", a.Port, b.Port);
        // 16.
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 100 };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ok = 0;
        var names = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 100).Select(async _ =>
        {
            for (var i = 0; i < 20; i++)
            {
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/"), deadline.Token);
                var body = await response.Content.ReadAsStringAsync(deadline.Token);
                if (response.StatusCode == HttpStatusCode.OK && body is "c1" or "c2")
                {
                    Interlocked.Increment(ref ok);
                }
                names.AddOrUpdate(body, 1, (_, n) => n + 1);
            }
        }));
        Assert.Equal(2000, ok);
        Assert.Equal(["c1", "c2"], names.Keys.Order());
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"2000 requests took {sw.Elapsed}");
    }

    [Fact]
    public async Task EncodedPathAndQuery_PassUnchanged()
    {
        await using var backend = await TestBackend.StartAsync("raw-target");
        var (port, _, _, _) = await ListenerAsync("enc", backend.Port);
        // 17.
        Assert.Equal((200, "/echo-path/a%20b?x=1&y=%2F"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/echo-path/a%20b?x=1&y=%2F", "--path-as-is"));
        Assert.Equal((200, "/echo-path/caf%C3%A9/~x?q=a+b&r=%26"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/echo-path/caf%C3%A9/~x?q=a+b&r=%26", "--path-as-is"));
    }

    [Fact]
    public async Task EncodedSlashInPath_PassesUnchanged()
    {
        await using var backend = await TestBackend.StartAsync("raw-slash");
        var (port, _, _, _) = await ListenerAsync("slash", backend.Port);
        // 17: %2F in a path segment is not a separator; ALB forwards the request target as received, never re-encoded.
        Assert.Equal((200, "/echo-path/x%2Fy?q=1"), await Elbv2Cli.CurlAsync($"http://127.0.0.1:{port}/echo-path/x%2Fy?q=1", "--path-as-is"));
    }

    [Fact]
    public async Task QueryStringAndMethodRules_RouteAsAlb()
    {
        await using var a = await TestBackend.StartAsync("default");
        await using var q = await TestBackend.StartAsync("query");
        await using var m = await TestBackend.StartAsync("method");
        var (lb, _) = await Elb.CreateLoadBalancerAsync(LoadBalancerFixture.Unique("rules"));
        var tgA = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("rdef"));
        var tgQ = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("rq"));
        var tgM = await Elb.CreateTargetGroupAsync(LoadBalancerFixture.Unique("rm"));
        await Elb.RegisterAsync(tgA, a);
        await Elb.RegisterAsync(tgQ, q);
        await Elb.RegisterAsync(tgM, m);
        var port = BerthServer.FreePort();
        var listener = await Elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tgA}");
        // 18.
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "10",
            "--conditions", """[{"Field":"query-string","QueryStringConfig":{"Values":[{"Key":"version","Value":"v2*"}]}}]""", "--actions", $"Type=forward,TargetGroupArn={tgQ}");
        await Elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "20",
            "--conditions", """[{"Field":"http-request-method","HttpRequestMethodConfig":{"Values":["POST","DELETE"]}}]""", "--actions", $"Type=forward,TargetGroupArn={tgM}");
        await Elbv2Cli.WaitForPortAsync(port, open: true, TimeSpan.FromSeconds(5));

        var root = $"http://127.0.0.1:{port}";
        Assert.Equal((200, "query"), await Elbv2Cli.CurlAsync($"{root}/?version=v2"));
        Assert.Equal((200, "query"), await Elbv2Cli.CurlAsync($"{root}/x?a=1&version=v2.1"));
        Assert.Equal((200, "query"), await Elbv2Cli.CurlAsync($"{root}/?VERSION=V2")); // ALB compares keys and values case-insensitively
        Assert.Equal((200, "default"), await Elbv2Cli.CurlAsync($"{root}/?version=v1"));
        Assert.Equal((200, "default"), await Elbv2Cli.CurlAsync($"{root}/?other=v2"));
        Assert.Equal((200, "method"), await Elbv2Cli.CurlAsync($"{root}/", "-X", "POST"));
        Assert.Equal((200, "method"), await Elbv2Cli.CurlAsync($"{root}/", "-X", "DELETE"));
        Assert.Equal((200, "default"), await Elbv2Cli.CurlAsync($"{root}/", "-X", "PUT"));
        Assert.Equal((200, "default"), await Elbv2Cli.CurlAsync($"{root}/"));
        // Priority: the query rule (10) wins over the method rule (20).
        Assert.Equal((200, "query"), await Elbv2Cli.CurlAsync($"{root}/?version=v2", "-X", "POST"));
    }

    [Fact]
    public async Task AsteriskAndAbsoluteFormTargets_DoNotBreakTheListener()
    {
        await using var backend = await TestBackend.StartAsync("odd");
        var (port, _, _, _) = await ListenerAsync("odd", backend.Port);
        // 20. Any status (or a close) is acceptable; no hang, and the listener keeps serving.
        foreach (var request in new[]
        {
            $"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
            $"GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
            $"GET http://other.example/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        })
        {
            using var c = await RawHttpConnection.OpenAsync(port);
            await c.SendAsync(request);
            var sw = Stopwatch.StartNew();
            var r = await c.TryReadResponseAsync();
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"'{request.Split('\r')[0]}' took {sw.Elapsed}");
            Assert.True(r is null || r.Status is >= 200 and < 600, $"'{request.Split('\r')[0]}' got {r?.Status}");
            using var next = await RawHttpConnection.OpenAsync(port);
            await next.SendAsync(RawHttpConnection.Request("GET", "/", port));
            var ok = await next.ReadResponseAsync();
            Assert.Equal((200, "odd"), (ok.Status, ok.Body));
        }
    }
}
