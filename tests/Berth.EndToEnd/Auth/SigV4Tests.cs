using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>
/// berth server --auth sigv4 against the real aws CLI and botocore's signer: right keys pass; wrong secret,
/// unknown key, skewed date, tampered body, wrong service, missing or malformed Authorization fail with
/// AWS's error type and status; a read-only key reads but cannot write.
/// </summary>
public sealed class SigV4Tests(SigV4Fixture f) : IClassFixture<SigV4Fixture>
{
    [Fact]
    public async Task AwsCli_RightKeysPass_WrongSecretAndUnknownKeyFail_OnEcsEcrAndElbv2()
    {
        var admin = f.Cli(f.Admin.Key, f.Admin.Secret);
        Assert.Equal("ACTIVE", (await admin.RunAsync("ecs", "create-cluster", "--cluster-name", "signed"))["cluster"]!["status"]!.GetValue<string>());
        Assert.Contains("signed", (await admin.RunAsync("ecs", "list-clusters")).ToJsonString(), StringComparison.Ordinal);
        await admin.RunAsync("ecr", "describe-repositories");
        await admin.RunAsync("elbv2", "describe-load-balancers");
        await f.Cli(f.Session.Key, f.Session.Secret, f.Session.Token).RunAsync("ecs", "list-clusters");

        // One character changed: never the same secret (a secret that began with x once made "x" + rest the real one).
        var wrong = f.Cli(f.Admin.Key, (f.Admin.Secret[0] == 'x' ? "y" : "x") + f.Admin.Secret[1..]);
        foreach (var (args, code) in new (string[], string)[]
        {
            (["ecs", "list-clusters"], "InvalidSignatureException"),
            (["ecr", "describe-repositories"], "InvalidSignatureException"),
            (["elbv2", "describe-load-balancers"], "SignatureDoesNotMatch"),
        })
        {
            var r = await wrong.TryRunAsync(args);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains($"({code})", r.Stderr, StringComparison.Ordinal);
        }
        var unknown = await f.Cli("test", "test").TryRunAsync("ecs", "list-clusters");
        Assert.Contains("(UnrecognizedClientException)", unknown.Stderr, StringComparison.Ordinal);
        Assert.Contains("The security token included in the request is invalid.", unknown.Stderr, StringComparison.Ordinal);
        var unknownQuery = await f.Cli("test", "test").TryRunAsync("elbv2", "describe-load-balancers");
        Assert.Contains("(InvalidClientTokenId)", unknownQuery.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadOnlyKey_DescribesButCannotRunTaskOrCreateCluster_AccessDeniedInIamWording()
    {
        await f.Cli(f.Admin.Key, f.Admin.Secret).RunAsync("ecs", "create-cluster", "--cluster-name", "ro-target");
        var viewer = f.Cli(f.ReadOnly.Key, f.ReadOnly.Secret);
        Assert.Contains("ro-target", (await viewer.RunAsync("ecs", "describe-clusters", "--clusters", "ro-target")).ToJsonString(), StringComparison.Ordinal);
        await viewer.RunAsync("ecs", "list-task-definitions");
        Assert.Equal(0, (await viewer.TryRunAsync("ecr", "get-login-password")).ExitCode);

        var run = await viewer.TryRunAsync("ecs", "run-task", "--cluster", "ro-target", "--task-definition", "web:1");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("(AccessDeniedException)", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("User: arn:aws:iam::000000000000:user/viewer is not authorized to perform: ecs:RunTask", run.Stderr, StringComparison.Ordinal);
        var create = await viewer.TryRunAsync("ecs", "create-cluster", "--cluster-name", "nope");
        Assert.Contains("ecs:CreateCluster", create.Stderr, StringComparison.Ordinal);
        var tg = await viewer.TryRunAsync("elbv2", "create-target-group", "--name", "nope", "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-1");
        Assert.Contains("(AccessDenied)", tg.Stderr, StringComparison.Ordinal);
        var repo = await viewer.TryRunAsync("ecr", "create-repository", "--repository-name", "nope");
        Assert.Contains("ecr:CreateRepository", repo.Stderr, StringComparison.Ordinal);

        // Nothing was written.
        var clusters = (await f.Cli(f.Admin.Key, f.Admin.Secret).RunAsync("ecs", "list-clusters")).ToJsonString();
        Assert.DoesNotContain("nope", clusters, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BotocoreSignedRequests_EachBentOneWay_FailWithAwsErrors_AndServerKeepsAnswering()
    {
        var r = await Boto3.RunWithEnvAsync("sigv4_cases.py", f.Server.Endpoint, new Dictionary<string, string>
        {
            ["ADMIN_KEY"] = f.Admin.Key,
            ["ADMIN_SECRET"] = f.Admin.Secret,
            ["SESSION_KEY"] = f.Session.Key,
            ["SESSION_SECRET"] = f.Session.Secret,
            ["SESSION_TOKEN"] = f.Session.Token,
        });
        Assert.True(r.ExitCode == 0, r.Stderr);
        var cases = JsonNode.Parse(r.Stdout)!.AsArray().ToDictionary(c => c!["case"]!.GetValue<string>(), c => c!);
        void Expect(string name, int status, string? type, string? message = null)
        {
            var c = cases[name];
            Assert.True(status == c["status"]!.GetValue<int>(), $"{name}: {c.ToJsonString()}");
            if (type is not null)
            {
                Assert.True(type == c["type"]?.GetValue<string>(), $"{name}: {c.ToJsonString()}");
                Assert.Equal(type, c["errorTypeHeader"]?.GetValue<string>());
            }
            if (message is not null)
            {
                Assert.Contains(message, c["message"]!.GetValue<string>(), StringComparison.Ordinal);
            }
            Assert.True(c["after"]!.GetValue<int>() == 200, $"{name}: the next signed request got {c["after"]}");
        }
        Expect("ok", 200, null);
        Expect("other_region_accepted", 200, null);
        Expect("within_skew", 200, null);
        Expect("unsigned_payload", 200, null);
        Expect("session_ok", 200, null);
        Expect("query_ok", 200, null);
        Expect("wrong_secret", 400, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided.");
        Expect("unknown_key", 400, "UnrecognizedClientException", "The security token included in the request is invalid.");
        Expect("expired", 400, "InvalidSignatureException", "Signature expired: ");
        Expect("not_yet_current", 400, "InvalidSignatureException", "Signature not yet current: ");
        Expect("tampered_body", 400, "InvalidSignatureException", "does not match");
        Expect("wrong_service", 400, "InvalidSignatureException", "Credential should be scoped to correct service: 'ecs'.");
        Expect("missing_auth", 403, "MissingAuthenticationTokenException", "Missing Authentication Token");
        Expect("token_on_plain_key", 400, "UnrecognizedClientException");
        Expect("session_without_token", 400, "UnrecognizedClientException");
        Expect("session_wrong_token", 400, "UnrecognizedClientException");
        Assert.Equal(403, cases["query_wrong_secret"]["status"]!.GetValue<int>());
        Assert.Contains("<Code>SignatureDoesNotMatch</Code>", cases["query_wrong_secret"]["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    public static TheoryData<string, string?, int, string, string> MalformedHeaders()
    {
        var today = DateTime.UtcNow.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        const string K = "KEY"; // replaced by the admin key id
        var scope = $"{K}/{today}/us-east-1/ecs/aws4_request";
        const string Sig = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        return new TheoryData<string, string?, int, string, string>
        {
            { "AWS4-HMAC-SHA256", "now", 400, "IncompleteSignatureException", "Authorization header requires 'Credential' parameter." },
            { "AWS4-HMAC-SHA512 Credential=" + scope + ", SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "IncompleteSignatureException", "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'" },
            { "Basic dGVzdDp0ZXN0", "now", 400, "IncompleteSignatureException", "Unsupported AWS 'algorithm'" },
            { "Bearer abc.def.ghi", "now", 400, "IncompleteSignatureException", "Unsupported AWS 'algorithm'" },
            { "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "IncompleteSignatureException", "requires 'Credential' parameter" },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=host;x-amz-date", "now", 400, "IncompleteSignatureException", "requires 'Signature' parameter" },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", Signature=" + Sig, "now", 400, "IncompleteSignatureException", "requires 'SignedHeaders' parameter" },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=host;x-amz-date, Signature=" + Sig, null, 400, "IncompleteSignatureException", "requires existence of either a 'X-Amz-Date' or a 'Date' header" },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=host;x-amz-date, Signature=" + Sig, "yesterday", 400, "IncompleteSignatureException", "Date must be in ISO-8601 'basic format'. Got 'yesterday'." },
            { "AWS4-HMAC-SHA256 Credential=KEY/" + today + "/us-east-1/ecs, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements" },
            { "AWS4-HMAC-SHA256 Credential=" + scope + "/extra, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements" },
            { "AWS4-HMAC-SHA256 Credential=KEY /" + today + "/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "IncompleteSignatureException", "not a valid key=value pair (missing equal-sign)" },
            { "AWS4-HMAC-SHA256 Credential=KEY/" + today + "/us-east-1/ecs/aws5_request, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "InvalidSignatureException", "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'." },
            { "AWS4-HMAC-SHA256 Credential=KEY/" + today + "//ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "InvalidSignatureException", "Credential should be scoped to a valid region" },
            { "AWS4-HMAC-SHA256 Credential=KEY/" + today + "/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "InvalidSignatureException", "Credential should be scoped to correct service: 'ecs'." },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=x-amz-date, Signature=" + Sig, "now", 400, "InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader'" },
            { "AWS4-HMAC-SHA256 Credential=KEY/19990101/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "InvalidSignatureException", "Date in Credential scope does not match" },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "InvalidSignatureException", "The request signature we calculated does not match" },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=host;x-amz-date, Signature=not-hex-at-all", "now", 400, "InvalidSignatureException", "The request signature we calculated does not match" },
            { "AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/" + today + "/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + Sig, "now", 400, "UnrecognizedClientException", "The security token included in the request is invalid." },
            { "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=host;x-amz-date, Signature=" + Sig, "20000101T000000Z", 400, "InvalidSignatureException", "Signature expired: 20000101T000000Z is now earlier than" },
            { "AWS4-HMAC-SHA256 " + new string('A', 6000), "now", 400, "IncompleteSignatureException", "not a valid key=value pair" },
            { "AWS4-HMAC-SHA256 ,,,, ,", "now", 400, "IncompleteSignatureException", "Authorization header requires 'Credential' parameter." },
        };
    }

    [Theory]
    [MemberData(nameof(MalformedHeaders))]
    public async Task MalformedAuthorization_AwsErrorTypeAndStatus_ServerStillAnswers(string authorization, string? date, int status, string type, string message)
    {
        using var http = new HttpClient { BaseAddress = new Uri(f.Server.Endpoint), Timeout = TimeSpan.FromSeconds(30) };
        using var req = new HttpRequestMessage(HttpMethod.Post, "/") { Content = new StringContent("{}", Encoding.UTF8) };
        req.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-amz-json-1.1");
        req.Headers.TryAddWithoutValidation("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters");
        Assert.True(req.Headers.TryAddWithoutValidation("Authorization", authorization.Replace("KEY", f.Admin.Key, StringComparison.Ordinal)));
        if (date is not null)
        {
            req.Headers.TryAddWithoutValidation("X-Amz-Date", date == "now" ? DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) : date);
        }
        using var r = await http.SendAsync(req);
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(status == (int)r.StatusCode, body);
        var json = JsonNode.Parse(body)!;
        Assert.Equal(type, json["__type"]!.GetValue<string>());
        Assert.Contains(message, json["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(type, r.Headers.GetValues("x-amzn-ErrorType").Single());

        // Still answering: the health endpoint, and an unsigned call gets its own answer (not a 500, not a hang).
        using var health = await http.GetAsync("/_berth/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("sigv4", JsonNode.Parse(await health.Content.ReadAsStringAsync())!["auth"]!.GetValue<string>());
        using var unsigned = new HttpRequestMessage(HttpMethod.Post, "/") { Content = new StringContent("{}") };
        unsigned.Headers.TryAddWithoutValidation("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters");
        using var u = await http.SendAsync(unsigned);
        Assert.Equal(HttpStatusCode.Forbidden, u.StatusCode);
    }

    [Fact]
    public async Task PresignedQueryWithBadAlgorithm_Incomplete_NotA500()
    {
        using var http = new HttpClient { BaseAddress = new Uri(f.Server.Endpoint) };
        using var req = new HttpRequestMessage(HttpMethod.Post, "/?X-Amz-Algorithm=HMAC-MD5&X-Amz-Credential=x") { Content = new StringContent("{}") };
        req.Headers.TryAddWithoutValidation("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters");
        using var r = await http.SendAsync(req);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal("IncompleteSignatureException", JsonNode.Parse(await r.Content.ReadAsStringAsync())!["__type"]!.GetValue<string>());
    }

    [Fact]
    public async Task CredentialCreatedWhileRunning_AcceptedWithoutRestart_DeletedOneRefused()
    {
        var created = await BerthServer.RunCliAsync("credentials", "create", "--data", f.Server.DataDirectory, "--name", "late-" + Guid.NewGuid().ToString("N")[..8]);
        Assert.Equal(0, created.ExitCode);
        var key = System.Text.RegularExpressions.Regex.Match(created.Stdout, @"AccessKeyId:\s+(\S+)").Groups[1].Value;
        var secret = System.Text.RegularExpressions.Regex.Match(created.Stdout, @"SecretAccessKey:\s+(\S+)").Groups[1].Value;
        await f.Cli(key, secret).RunAsync("ecs", "list-clusters");

        var list = await BerthServer.RunCliAsync("credentials", "list", "--data", f.Server.DataDirectory);
        Assert.Contains(key, list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, list.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await BerthServer.RunCliAsync("credentials", "delete", key, "--data", f.Server.DataDirectory)).ExitCode);
        var refused = await Wait.ForAsync(async () =>
        {
            var r = await f.Cli(key, secret).TryRunAsync("ecs", "list-clusters");
            return r.ExitCode != 0 ? r : null;
        }, TimeSpan.FromSeconds(10), "the deleted key to be refused");
        Assert.Contains("(UnrecognizedClientException)", refused.Stderr, StringComparison.Ordinal);
    }
}
