using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>
/// Issue 12's bad-input and abuse table against one <c>berth server --auth sigv4</c>: every case asserts the
/// status (0 = the server closed the connection without an answer), the AWS error code where there is one, that
/// the server's resident memory stayed under 300 MiB the whole time (sampled every 50 ms), and that a signed
/// ListClusters still answers 200 afterwards. All traffic goes to 127.0.0.1 and every case is bounded in time.
/// </summary>
public sealed class AbuseTableTests(AbuseFixture f, ITestOutputHelper output) : IClassFixture<AbuseFixture>
{
    private const long RssLimitMiB = 300;
    private const string Ecs = "AmazonEC2ContainerServiceV20141113.";
    private const string Ecr = "AmazonEC2ContainerRegistry_V20150921.";
    private const string Logs = "Logs_20140328.";
    private const string Json = "application/x-amz-json-1.1";

    private sealed record Case(string Name, Func<AbuseFixture, Task<Answer>> Act, int[] Statuses, string? Code, string? Message = null);

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static string Deep(int depth) => "{\"clusterName\":" + new string('[', depth) + new string(']', depth) + "}";

    /// <summary>A request signed for <paramref name="service"/> with <paramref name="body"/>.</summary>
    private static Func<AbuseFixture, Task<Answer>> Signed(string service, string? target, byte[] body, string contentType = Json)
        => fx => fx.RawAsync(fx.Post(fx.SignedHeaders(service, target, body, contentType), body));

    /// <summary>An ECS request carrying <paramref name="authorization"/> (KEY is replaced by the admin key id).</summary>
    private static Func<AbuseFixture, Task<Answer>> WithAuthorization(string authorization, string? amzDate = "now")
        => fx =>
        {
            var date = amzDate == "now" ? DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) : amzDate;
            var headers = $"Content-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\n"
                + (date is null ? "" : $"X-Amz-Date: {date}\r\n")
                + $"Authorization: {authorization.Replace("KEY", fx.Admin.Key, StringComparison.Ordinal)}\r\n";
            return fx.RawAsync(fx.Post(headers, Utf8("{}")));
        };

    private static Func<AbuseFixture, Task<Answer>> Raw(Func<AbuseFixture, byte[]> request) => fx => fx.RawAsync(request(fx));

    private static readonly string Today = DateTime.UtcNow.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
    private static readonly string Sig = new('0', 64);

    private static readonly Case[] Table =
    [
        // Bodies
        new("oversized chunked body (256 MiB, no Content-Length)", ChunkedAsync, [413, 0], "SerializationException"),
        new("oversized Content-Length (100 MB declared)", Raw(fx => Encoding.ASCII.GetBytes(
            $"POST / HTTP/1.1\r\nHost: {fx.Host}\r\nContent-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n{{}}")), [413], "SerializationException"),
        new("oversized form body for the Query API (chunked 64 MiB)", fx => ChunkedAsync(fx, formBody: true), [413, 0], "ValidationError"),
        new("slow body (1 byte a second, 50 connections)", SlowBodyAsync, [408], "RequestTimeoutException"),
        new("malformed chunked encoding", Raw(fx => Encoding.ASCII.GetBytes(
            $"POST / HTTP/1.1\r\nHost: {fx.Host}\r\nContent-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n")), [400], "SerializationException"),
        // Headers and URL
        new("huge header (one of 40 KB)", Raw(fx => fx.Post("X-Big: " + new string('a', 40_000) + "\r\n", Utf8("{}"))), [431], null),
        new("many headers (200)", Raw(fx => fx.Post(string.Concat(Enumerable.Range(0, 200).Select(i => $"X-H{i}: v\r\n")), Utf8("{}"))), [431], null),
        new("huge URL (20 KB path)", Raw(fx => fx.Post("", Utf8("{}"), "/" + new string('a', 20_000))), [414], null),
        new("huge URL under the registry (/v2/ + 20 KB)", Raw(fx => Encoding.ASCII.GetBytes($"GET /v2/{new string('a', 20_000)} HTTP/1.1\r\nHost: {fx.Host}\r\nConnection: close\r\n\r\n")), [414], null),
        new("header line without a colon", Raw(fx => fx.Post("NoColonHere\r\n", Utf8("{}"))), [400], null),
        new("null byte in a header value", Raw(fx => fx.Post("X-Bad: a\0b\r\n", Utf8("{}"))), [400], null),
        new("garbage request line", Raw(_ => Utf8("HELLO\r\n\r\n")), [400], null),
        new("unknown HTTP version (HTTP/3.7)", Raw(fx => Utf8($"POST / HTTP/3.7\r\nHost: {fx.Host}\r\n\r\n")), [505], null),
        new("HTTP/1.0 unsigned", Raw(fx => fx.Post($"Content-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\n", Utf8("{}"), version: "HTTP/1.0")), [403], "MissingAuthenticationTokenException"),
        new("HTTP/1.0 health check still served", Raw(_ => Utf8("GET /_berth/health HTTP/1.0\r\n\r\n")), [200], null),
        new("HTTP/1.1 to the agents' HTTP/2 port", fx => fx.RawAsync(Utf8("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), port: fx.Server.AgentPort), [400], null),
        // Slow and many connections
        new("slowloris: 200 connections trickling headers", SlowlorisAsync, [408], null),
        new("connection flood from one address (10,000 slow connections, cap 256)", FloodAsync, [408], null),
        // JSON
        new("deep JSON nesting (100,000 levels)", Signed("ecs", Ecs + "CreateCluster", Utf8(Deep(100_000))), [400], "SerializationException", "deeper than 64"),
        new("deep JSON nesting just over the bound (65 levels)", Signed("ecs", Ecs + "CreateCluster", Utf8(Deep(65))), [400], "SerializationException", "deeper than 64"),
        new("deep JSON nesting on ECR", Signed("ecr", Ecr + "DescribeRepositories", Utf8(Deep(5000))), [400], "SerializationException", "deeper than 64"),
        new("deep JSON nesting on CloudWatch Logs", Signed("logs", Logs + "DescribeLogGroups", Utf8(Deep(5000))), [400], "SerializationException", "deeper than 64"),
        new("malformed JSON", Signed("ecs", Ecs + "CreateCluster", Utf8("{\"clusterName\": ")), [400], "SerializationException", "not valid JSON"),
        new("invalid UTF-8 in a JSON string", Signed("ecs", Ecs + "CreateCluster", [.. Utf8("{\"clusterName\":\"a"), 0xff, 0xfe, .. Utf8("\"}")]), [400], "SerializationException"),
        new("lone surrogate escape in a JSON string", Signed("ecs", Ecs + "CreateCluster", Utf8("{\"clusterName\":\"a\\ud800b\"}")), [400], "SerializationException"),
        new("null byte in a cluster name", Signed("ecs", Ecs + "CreateCluster", Utf8("{\"clusterName\":\"a\\u0000b\"}")), [400], "InvalidParameterException", "clusterName"),
        new("JSON array where an object belongs", Signed("ecs", Ecs + "ListClusters", Utf8("[1,2,3]")), [400], "SerializationException"),
        new("wrong content type (text/plain) with a JSON target", Signed("ecs", Ecs + "ListClusters", Utf8("{}"), "text/plain"), [200], null),
        new("unknown X-Amz-Target", Signed("ecs", Ecs + "MineBitcoin", Utf8("{}")), [400], "UnknownOperationException", "MineBitcoin"),
        new("X-Amz-Target of no service", Signed("ecs", "Nope_20990101.Anything", Utf8("{}")), [400], "UnknownOperationException"),
        // Signatures
        new("no Authorization at all", Raw(fx => fx.Post($"Content-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\n", Utf8("{}"))), [403], "MissingAuthenticationTokenException"),
        new("SigV4 missing Credential", WithAuthorization($"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={Sig}"), [400], "IncompleteSignatureException", "Authorization header requires"),
        new("SigV4 bad date", WithAuthorization($"AWS4-HMAC-SHA256 Credential=KEY/{Today}/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature={Sig}", "2026-13-45T99"), [400], "IncompleteSignatureException", "ISO-8601"),
        new("SigV4 wrong algorithm", WithAuthorization($"AWS4-HMAC-SHA1 Credential=KEY/{Today}/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature={Sig}"), [400], "IncompleteSignatureException", "algorithm"),
        new("SigV4 garbage", WithAuthorization("\u00ff\u00fe%%%=,,,=="), [400], "IncompleteSignatureException"),
        new("SigV4 empty Authorization", WithAuthorization(""), [400], "IncompleteSignatureException"),
        new("SigV4 credential of three parts", WithAuthorization($"AWS4-HMAC-SHA256 Credential=KEY/{Today}/ecs, SignedHeaders=host;x-amz-date, Signature={Sig}"), [400], "IncompleteSignatureException", "5 slash-delimited"),
        new("SigV4 huge signature (7 KB)", WithAuthorization($"AWS4-HMAC-SHA256 Credential=KEY/{Today}/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature={new string('f', 7000)}"), [400], "InvalidSignatureException"),
        new("SigV4 unknown key", WithAuthorization($"AWS4-HMAC-SHA256 Credential=AKIAAAAAAAAAAAAAAAAA/{Today}/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature={Sig}"), [400], "UnrecognizedClientException"),
        new("SigV4 signed an hour ago", fx => fx.RawAsync(fx.Post(fx.SignedHeaders("ecs", Ecs + "ListClusters", Utf8("{}"), at: DateTime.UtcNow.AddHours(-1)), Utf8("{}"))), [400], "InvalidSignatureException", "Signature expired"),
        new("presigned query garbage (bad percent-encoding)", Raw(fx => fx.Post($"Content-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\n", Utf8("{}"),
            "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%zz%&X-Amz-Date=x&X-Amz-Signature=%00")), [400], "IncompleteSignatureException"),
        new("presigned query with a negative X-Amz-Expires", Raw(fx => fx.Post($"Content-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\n", Utf8("{}"),
            $"/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=k%2F{Today}%2Fus-east-1%2Fecs%2Faws4_request&X-Amz-Date={Today}T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00&X-Amz-Expires=-5")), [400], "IncompleteSignatureException", "X-Amz-Expires"),
        new("Query API form body unsigned", Raw(fx => fx.Post("Content-Type: application/x-www-form-urlencoded\r\n", Utf8("Action=DescribeLoadBalancers&Version=2015-12-01&%zz=%%"))), [403], "MissingAuthenticationToken"),
    ];

    public static TheoryData<string> Cases() => new(Table.Select(c => c.Name));

    [Fact]
    public void Table_HasAtLeastThirtyCases() => Assert.True(Table.Length >= 30, $"{Table.Length} cases");

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task AbuseCase_AnswersAsAwsDoes_StaysUnder300MiB_AndServerStillAnswers(string name)
    {
        var c = Table.Single(x => x.Name == name);
        var peak = f.ResidentMiB();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, f.ResidentMiB());
                await Task.Delay(50, CancellationToken.None);
            }
        });
        var sw = Stopwatch.StartNew();
        Answer answer;
        try
        {
            answer = await c.Act(f).WaitAsync(TimeSpan.FromSeconds(90));
        }
        finally
        {
            await sampling.CancelAsync();
            await sampler;
        }
        peak = Math.Max(peak, f.ResidentMiB());
        var line = $"{name}: {answer.Status} {answer.ErrorType} in {sw.Elapsed.TotalSeconds:F1} s, server RSS peak {peak} MiB" + (answer.Status is 408 or 0 && answer.Text.Length < 300 ? $" ({answer.Text})" : "");
        output.WriteLine(line);
        if (Environment.GetEnvironmentVariable("BERTH_ABUSE_REPORT") is { Length: > 0 } report)
        {
            await File.AppendAllTextAsync(report, line + Environment.NewLine); // the figures for a report, on request
        }

        Assert.True(c.Statuses.Contains(answer.Status), $"{name}: status {answer.Status}, expected {string.Join(" or ", c.Statuses)}:\n{Cut(answer.Text)}");
        if (c.Code is not null && answer.Status != 0)
        {
            Assert.True(c.Code == answer.ErrorType, $"{name}: error {answer.ErrorType}, expected {c.Code}:\n{Cut(answer.Text)}");
        }
        if (c.Message is not null)
        {
            Assert.Contains(c.Message, answer.Text, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("ServerException", answer.Text, StringComparison.Ordinal);
        Assert.True(peak < RssLimitMiB, $"{name}: server resident memory reached {peak} MiB");
        await AssertStillAnswersAsync(name);
    }

    /// <summary>A signed ListClusters answers 200 (retried for up to 10 s while the server closes the case's connections).</summary>
    private async Task AssertStillAnswersAsync(string name)
    {
        var body = Utf8("{}");
        var sw = Stopwatch.StartNew();
        Answer last;
        do
        {
            try
            {
                last = await f.RawAsync(f.Post(f.SignedHeaders("ecs", Ecs + "ListClusters", body), body), TimeSpan.FromSeconds(5));
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                last = new Answer(0, null, e.Message);
            }
            if (last.Status == 200)
            {
                Assert.Contains("clusterArns", last.Text, StringComparison.Ordinal);
                return;
            }
            await Task.Delay(200);
        }
        while (sw.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Fail($"after '{name}' a signed ListClusters got {last.Status}:\n{Cut(last.Text)}\n{Cut(f.Server.Log)}");
    }

    private static string Cut(string s) => s.Length > 2000 ? s[..2000] + "…" : s;

    private static Task<Answer> ChunkedAsync(AbuseFixture fx) => ChunkedAsync(fx, formBody: false);

    /// <summary>A chunked POST far over the front doors' bound; the answer may be lost when the server closes mid-send (status 0).</summary>
    private static async Task<Answer> ChunkedAsync(AbuseFixture fx, bool formBody)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using var request = new HttpRequestMessage(HttpMethod.Post, fx.Server.Endpoint + "/")
        {
            Content = new StreamContent(new RepeatingStream((formBody ? 64L : 256L) * 1024 * 1024, formBody ? (byte)' ' : (byte)'a')),
        };
        request.Headers.TransferEncodingChunked = true;
        request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(formBody ? "application/x-www-form-urlencoded" : Json);
        if (!formBody)
        {
            request.Headers.TryAddWithoutValidation("X-Amz-Target", Ecs + "ListClusters");
        }
        try
        {
            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            var type = response.Headers.TryGetValues("x-amzn-ErrorType", out var v) ? v.First() : Answer.Parse("HTTP/1.1 200 \r\n\r\n" + text).ErrorType;
            return new Answer((int)response.StatusCode, type, text);
        }
        catch (HttpRequestException e)
        {
            return new Answer(0, null, e.Message);
        }
    }

    /// <summary>50 connections each declaring 1,000 bytes and sending one a second: Kestrel's minimum data rate cuts each off with 408.</summary>
    private static async Task<Answer> SlowBodyAsync(AbuseFixture fx)
    {
        var answers = await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", fx.Server.Port);
            var s = client.GetStream();
            await s.WriteAsync(Encoding.ASCII.GetBytes(
                $"POST / HTTP/1.1\r\nHost: {fx.Host}\r\nContent-Type: {Json}\r\nX-Amz-Target: {Ecs}ListClusters\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{"));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var reading = AbuseFixture.ReadAnswerAsync(s, cts.Token);
            while (!reading.IsCompleted && !cts.IsCancellationRequested)
            {
                try
                {
                    await s.WriteAsync(" "u8.ToArray(), cts.Token);
                }
                catch (Exception e) when (e is IOException or OperationCanceledException)
                {
                    break;
                }
                await Task.WhenAny(reading, Task.Delay(1000, CancellationToken.None));
            }
            return await reading;
        }));
        var statuses = answers.GroupBy(a => a.Status).ToDictionary(g => g.Key, g => g.Count());
        return statuses.Keys.Single() is var only && statuses.Count == 1 ? answers[0] : new Answer(-1, null, string.Join(", ", statuses.Select(kv => $"{kv.Value}× {kv.Key}")));
    }

    /// <summary>200 connections (under the cap) sending a header line a second, never finishing: each gets 408 within the timeout.</summary>
    private static async Task<Answer> SlowlorisAsync(AbuseFixture fx)
    {
        var sw = Stopwatch.StartNew();
        var answers = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", fx.Server.Port);
            var s = client.GetStream();
            await s.WriteAsync(Encoding.ASCII.GetBytes($"POST / HTTP/1.1\r\nHost: {fx.Host}\r\n"));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(AbuseFixture.HeadersTimeoutSeconds + 10));
            var reading = AbuseFixture.ReadAnswerAsync(s, cts.Token);
            for (var n = 0; !reading.IsCompleted && !cts.IsCancellationRequested; n++)
            {
                try
                {
                    await s.WriteAsync(Encoding.ASCII.GetBytes($"X-Slow-{n}: {i}\r\n"), cts.Token);
                }
                catch (Exception e) when (e is IOException or OperationCanceledException)
                {
                    break;
                }
                await Task.WhenAny(reading, Task.Delay(1000, CancellationToken.None));
            }
            return await reading;
        }));
        var elapsed = sw.Elapsed;
        Assert.True(elapsed < TimeSpan.FromSeconds(AbuseFixture.HeadersTimeoutSeconds + 6), $"the slow connections were closed only after {elapsed.TotalSeconds:F1} s");
        var statuses = answers.GroupBy(a => a.Status).ToDictionary(g => g.Key, g => g.Count());
        return statuses.Count == 1 ? answers[0] : new Answer(-1, null, string.Join(", ", statuses.Select(kv => $"{kv.Value}× {kv.Key}")));
    }

    /// <summary>
    /// 10,000 connections from 127.0.0.1 (fewer if the open-file limit does not allow them), each sending the start of a
    /// request and then nothing. The per-address cap closes all but 256 at once, unanswered; those 256 get 408 when the
    /// headers timeout runs out. Everything is closed within the timeout and a few seconds.
    /// </summary>
    private static async Task<Answer> FloodAsync(AbuseFixture fx)
    {
        var count = Math.Min(10_000, OpenFileHeadroom() - 1000);
        Assert.True(count > AbuseFixture.PerAddressCap * 2, $"only {count} file descriptors to spare");
        var sw = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var gate = new SemaphoreSlim(256);
        var head = Encoding.ASCII.GetBytes($"POST / HTTP/1.1\r\nHost: {fx.Host}\r\nX-Slow: ");
        var results = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            var client = new TcpClient();
            try
            {
                await gate.WaitAsync(deadline.Token);
                try
                {
                    await client.ConnectAsync("127.0.0.1", fx.Server.Port, deadline.Token);
                    await client.GetStream().WriteAsync(head, deadline.Token);
                }
                catch (Exception e) when (e is IOException or SocketException)
                {
                    return -2; // closed by the server before the first bytes were written
                }
                finally
                {
                    gate.Release();
                }
                return (await AbuseFixture.ReadAnswerAsync(client.GetStream(), deadline.Token)).Status;
            }
            catch (OperationCanceledException)
            {
                return -1; // still open at the deadline
            }
            finally
            {
                client.Dispose();
            }
        }));
        var elapsed = sw.Elapsed;
        var timedOut = results.Count(r => r == 408);
        var refused = results.Count(r => r is 0 or -2);
        var open = results.Count(r => r == -1);
        var summary = $"{count} connections in {elapsed.TotalSeconds:F1} s: {timedOut} answered 408 after the headers timeout, {refused} closed at once by the cap, {open} still open";
        Assert.True(open == 0, summary);
        Assert.True(timedOut <= AbuseFixture.PerAddressCap, summary);
        Assert.True(timedOut + refused == count, summary + $"; others: {string.Join(",", results.Where(r => r is not (408 or 0 or -2)).Distinct())}");
        return new Answer(timedOut > 0 ? 408 : 0, null, summary);
    }

    private static int OpenFileHeadroom()
    {
        var soft = File.ReadLines("/proc/self/limits").First(l => l.StartsWith("Max open files", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[3];
        var limit = soft == "unlimited" ? 1_000_000 : int.Parse(soft, CultureInfo.InvariantCulture);
        return limit - Directory.GetFiles("/proc/self/fd").Length;
    }
}
