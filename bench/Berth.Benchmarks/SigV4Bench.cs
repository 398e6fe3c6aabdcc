using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Berth.Aws.Auth;

namespace Berth.Benchmarks;

/// <summary>
/// The cost of SigV4 verification (issue 12): the same DescribeTasks calls against two servers started
/// side by side on the same seeded store, one with --auth none and one with --auth sigv4, measured in
/// alternating rounds. Each request body is signed once before the run and its headers replayed (valid for
/// the 15-minute window), so the load generator does the same work for both and the difference is the server's.
/// </summary>
internal static class SigV4Bench
{
    public static async Task<int> RunAsync(Uri none, Uri sigv4, string key, string secret, int seconds, int concurrency, int rounds)
    {
        using var plain = ControlPlaneBench.Client(none, concurrency * 2);
        using var signedClient = ControlPlaneBench.Client(sigv4, concurrency * 2);
        var list = await ControlPlaneBench.CallAsync(plain, "ListTasks", """{"cluster":"bench-api","desiredStatus":"STOPPED","maxResults":100}""");
        var arns = list.GetProperty("taskArns").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var cases = new (string Name, string Body)[]
        {
            ("DescribeTasks (1 task)", JsonSerializer.Serialize(new Dictionary<string, object> { ["cluster"] = "bench-api", ["tasks"] = arns[..1] })),
            ("DescribeTasks (100 tasks)", JsonSerializer.Serialize(new Dictionary<string, object> { ["cluster"] = "bench-api", ["tasks"] = arns })),
        };
        Console.WriteLine($"| operation ({concurrency} clients, {rounds} alternating rounds of {seconds} s each, median) | auth none | auth sigv4 | change |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var (name, body) in cases)
        {
            var headers = Sign(sigv4, key, secret, body);
            var off = new List<(double Rate, double P99)>();
            var on = new List<(double Rate, double P99)>();
            for (var r = 0; r < rounds; r++)
            {
                off.Add(await MeasureAsync(plain, body, null, seconds, concurrency));
                on.Add(await MeasureAsync(signedClient, body, headers, seconds, concurrency));
            }
            var (offRate, offP99) = (Median(off.Select(x => x.Rate)), Median(off.Select(x => x.P99)));
            var (onRate, onP99) = (Median(on.Select(x => x.Rate)), Median(on.Select(x => x.P99)));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {offRate:F0} req/s, p99 {offP99:F2} ms | {onRate:F0} req/s, p99 {onP99:F2} ms | {(onRate / offRate - 1) * 100:+0.0;-0.0} % req/s |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"|  rounds (req/s) | {string.Join(" / ", off.Select(x => x.Rate.ToString("F0", CultureInfo.InvariantCulture)))} | {string.Join(" / ", on.Select(x => x.Rate.ToString("F0", CultureInfo.InvariantCulture)))} | |"));
        }
        return 0;
    }

    private static Dictionary<string, string> Sign(Uri endpoint, string key, string secret, string body)
    {
        var now = DateTime.UtcNow;
        var amzDate = now.ToString(SigV4.DateFormat, CultureInfo.InvariantCulture);
        var date = amzDate[..8];
        var host = endpoint.Authority;
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["content-type"] = "application/x-amz-json-1.1",
            ["host"] = host,
            ["x-amz-date"] = amzDate,
            ["x-amz-target"] = "AmazonEC2ContainerServiceV20141113.DescribeTasks",
        };
        var names = headers.Keys.ToList();
        var payload = SigV4.Hex(SHA256.HashData(Encoding.UTF8.GetBytes(body)));
        var canonical = SigV4.CanonicalRequest("POST", "/", [], names, n => [headers[n]], payload);
        var scope = $"{date}/us-east-1/ecs/aws4_request";
        var signature = SigV4.Signature(SigV4.SigningKey(secret, date, "us-east-1", "ecs"), SigV4.StringToSign(amzDate, scope, canonical));
        return new Dictionary<string, string>
        {
            ["X-Amz-Date"] = amzDate,
            ["Authorization"] = $"{SigV4.Algorithm} Credential={key}/{scope}, SignedHeaders={string.Join(';', names)}, Signature={signature}",
        };
    }

    private static async Task<(double Rate, double P99)> MeasureAsync(HttpClient http, string body, Dictionary<string, string>? auth, int seconds, int concurrency)
    {
        var (rate, latencies) = await ControlPlaneBench.LoadAsync(() => CallAsync(http, body, auth), seconds, concurrency);
        return (rate, ControlPlaneBench.Pct(latencies, 0.99));
    }

    private static async Task CallAsync(HttpClient http, string body, Dictionary<string, string>? auth)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/") { Content = new StringContent(body, Encoding.UTF8) };
        req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-amz-json-1.1");
        req.Headers.Add("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.DescribeTasks");
        foreach (var (k, v) in auth ?? [])
        {
            req.Headers.TryAddWithoutValidation(k, v);
        }
        using var resp = await http.SendAsync(req);
        var bytes = await resp.Content.ReadAsByteArrayAsync();
        if (!resp.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"DescribeTasks answered {(int)resp.StatusCode}: {Encoding.UTF8.GetString(bytes)}");
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}

/// <summary>The verifier alone, in process: microseconds per Authenticate of a signed DescribeTasks request.</summary>
internal static class SigV4VerifyBench
{
    public static int Run(int iterations, int bodyBytes)
    {
        var dir = Directory.CreateTempSubdirectory("berth-sigv4-bench-").FullName;
        try
        {
            var credential = AwsCredential.Generate("bench", Permissions.Admin, DateTimeOffset.UtcNow);
            CredentialFile.Save(CredentialFile.PathIn(dir), [credential]);
            var auth = new AwsAuthenticator(AuthMode.SigV4, new CredentialStore(CredentialFile.PathIn(dir)), TimeProvider.System);
            var body = Encoding.UTF8.GetBytes("{\"tasks\":[\"" + new string('a', Math.Max(0, bodyBytes - 14)) + "\"]}");
            var now = DateTime.UtcNow;
            var amzDate = now.ToString(SigV4.DateFormat, CultureInfo.InvariantCulture);
            var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
            {
                ["content-type"] = "application/x-amz-json-1.1",
                ["host"] = "127.0.0.1:4566",
                ["x-amz-date"] = amzDate,
                ["x-amz-target"] = "AmazonEC2ContainerServiceV20141113.DescribeTasks",
            };
            var names = headers.Keys.ToList();
            var canonical = SigV4.CanonicalRequest("POST", "/", [], names, n => [headers[n]], SigV4.Hex(SHA256.HashData(body)));
            var scope = $"{amzDate[..8]}/us-east-1/ecs/aws4_request";
            var signature = SigV4.Signature(SigV4.SigningKey(credential.SecretAccessKey, amzDate[..8], "us-east-1", "ecs"), SigV4.StringToSign(amzDate, scope, canonical));
            var ctx = new Microsoft.AspNetCore.Http.DefaultHttpContext();
            var r = ctx.Request;
            r.Method = "POST";
            r.Path = "/";
            foreach (var (k, v) in headers)
            {
                r.Headers[k] = v;
            }
            r.Headers.Authorization = $"{SigV4.Algorithm} Credential={credential.AccessKeyId}/{scope}, SignedHeaders={string.Join(';', names)}, Signature={signature}";
            for (var i = 0; i < 1000; i++)
            {
                auth.Authenticate(r, body, "ecs");
            }
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < iterations; i++)
            {
                auth.Authenticate(r, body, "ecs");
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| Authenticate, {body.Length}-byte body | {sw.Elapsed.TotalMicroseconds / iterations:F1} µs per request ({iterations} in one thread) |"));
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
