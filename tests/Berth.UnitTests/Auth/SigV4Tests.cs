using System.Security.Cryptography;
using System.Text;
using Berth.Aws.Auth;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Auth;

/// <summary>
/// The signer pieces against AWS's published SigV4 test suite (get-vanilla, get-vanilla-query-order-key-case:
/// credential AKIDEXAMPLE, 20150830T123600Z, us-east-1, service "service"), then the verifier end to end
/// on an in-memory HttpRequest with a fake clock.
/// </summary>
public sealed class SigV4Tests : IDisposable
{
    private const string ExampleKey = "AKIDEXAMPLE";
    private const string ExampleSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    private static readonly DateTimeOffset ExampleTime = new(2015, 8, 30, 12, 36, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-sigv4-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Sign(string method, string path, IEnumerable<KeyValuePair<string, string>> query, Dictionary<string, string> headers, string payloadHash,
        string secret = ExampleSecret, string scope = "20150830/us-east-1/service/aws4_request")
    {
        var signed = headers.Keys.Select(k => k.ToLowerInvariant()).Order(StringComparer.Ordinal).ToList();
        var canonical = SigV4.CanonicalRequest(method, path, query, signed, n => [headers.First(h => h.Key.Equals(n, StringComparison.OrdinalIgnoreCase)).Value], payloadHash);
        var parts = scope.Split('/');
        return SigV4.Signature(SigV4.SigningKey(secret, parts[0], parts[1], parts[2]), SigV4.StringToSign(headers.First(h => h.Key.Equals("x-amz-date", StringComparison.OrdinalIgnoreCase)).Value, scope, canonical));
    }

    [Fact]
    public void Signature_GetVanilla_MatchesAwsTestSuite()
    {
        var headers = new Dictionary<string, string> { ["Host"] = "example.amazonaws.com", ["X-Amz-Date"] = "20150830T123600Z" };
        Assert.Equal("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", Sign("GET", "/", [], headers, SigV4.EmptyPayloadHash));
    }

    [Fact]
    public void Signature_GetVanillaQueryOrderKeyCase_QuerySortedBeforeSigning()
    {
        var headers = new Dictionary<string, string> { ["Host"] = "example.amazonaws.com", ["X-Amz-Date"] = "20150830T123600Z" };
        Assert.Equal("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            Sign("GET", "/", [new("Param2", "value2"), new("Param1", "value1")], headers, SigV4.EmptyPayloadHash));
    }

    [Fact]
    public void CanonicalRequest_HeaderValues_TrimmedAndSpacesCollapsed()
    {
        var c = SigV4.CanonicalRequest("POST", "/", [], ["host", "my-header"], n => n == "host" ? ["h"] : ["  a   b  c ", "d"], "x");
        Assert.Equal("POST\n/\n\nhost:h\nmy-header:a b c,d\n\nhost;my-header\nx", c);
    }

    private AwsAuthenticator Authenticator(out FakeTimeProvider time, params AwsCredential[] credentials)
    {
        var path = CredentialFile.PathIn(_dir);
        CredentialFile.Save(path, credentials.Length > 0 ? credentials : [new AwsCredential { AccessKeyId = ExampleKey, SecretAccessKey = ExampleSecret, Name = "example" }]);
        time = new FakeTimeProvider(ExampleTime);
        return new AwsAuthenticator(AuthMode.SigV4, new CredentialStore(path), time);
    }

    /// <summary>The get-vanilla request as it reaches Kestrel, optionally re-signed after <paramref name="edit"/>.</summary>
    private static HttpRequest VanillaRequest(string? authorization = null, Action<HttpRequest>? edit = null)
    {
        var ctx = new DefaultHttpContext();
        var r = ctx.Request;
        r.Method = "GET";
        r.Path = "/";
        r.Headers.Host = "example.amazonaws.com";
        r.Headers["X-Amz-Date"] = "20150830T123600Z";
        r.Headers.Authorization = authorization ?? "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        edit?.Invoke(r);
        return r;
    }

    [Fact]
    public void Authenticate_AwsGetVanillaRequest_Accepted()
    {
        var auth = Authenticator(out _);
        var caller = auth.Authenticate(VanillaRequest(), [], "service");
        Assert.Equal("example", caller.Name);
        Assert.Equal("us-east-1", caller.Region);
        Assert.Equal(Permissions.Admin, caller.Permissions);
    }

    [Fact]
    public void Authenticate_WithinFifteenMinutes_Accepted_BeyondIt_SignatureExpired()
    {
        var auth = Authenticator(out var time);
        time.Advance(TimeSpan.FromMinutes(14));
        auth.Authenticate(VanillaRequest(), [], "service");
        time.Advance(TimeSpan.FromMinutes(2));
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(), [], "service"));
        Assert.Equal("InvalidSignatureException", e.ErrorType);
        Assert.Equal(400, e.StatusCode);
        Assert.Equal("Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)", e.Message);
    }

    [Fact]
    public void Authenticate_DateInTheFuture_SignatureNotYetCurrent()
    {
        var early = Authenticator(out _);
        var auth = new AwsAuthenticator(AuthMode.SigV4, early.Credentials, new FakeTimeProvider(ExampleTime - TimeSpan.FromMinutes(16)));
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(), [], "service"));
        Assert.StartsWith("Signature not yet current: 20150830T123600Z is still later than", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Authenticate_WrongSecret_InvalidSignature()
    {
        var auth = Authenticator(out _, new AwsCredential { AccessKeyId = ExampleKey, SecretAccessKey = "another-secret", Name = "x" });
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(), [], "service"));
        Assert.Equal("InvalidSignatureException", e.ErrorType);
        Assert.Equal(AwsAuthException.MismatchMessage, e.Message);
        Assert.Equal("SignatureDoesNotMatch", e.QueryCode);
        Assert.Equal(403, e.QueryStatus);
    }

    [Fact]
    public void Authenticate_UnknownKey_UnrecognizedClient()
    {
        var auth = Authenticator(out _, new AwsCredential { AccessKeyId = "AKIAOTHER", SecretAccessKey = ExampleSecret, Name = "x" });
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(), [], "service"));
        Assert.Equal("UnrecognizedClientException", e.ErrorType);
        Assert.Equal("The security token included in the request is invalid.", e.Message);
        Assert.Equal("InvalidClientTokenId", e.QueryCode);
    }

    [Fact]
    public void Authenticate_WrongService_NamesTheServiceExpected()
    {
        var auth = Authenticator(out _);
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(), [], "ecs"));
        Assert.Equal("Credential should be scoped to correct service: 'ecs'. ", e.Message);
    }

    [Fact]
    public void Authenticate_TamperedQueryOrHeader_InvalidSignature()
    {
        var auth = Authenticator(out _);
        Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(edit: r => r.QueryString = new QueryString("?a=b")), [], "service"));
        Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(edit: r => r.Headers.Host = "other.example.com"), [], "service"));
        Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(edit: r => r.Method = "POST"), [], "service"));
        // The body is hashed too: get-vanilla signed the empty body.
        Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(), "x"u8, "service"));
    }

    [Fact]
    public void Authenticate_DeclaredPayloadHashNotTheBody_Refused()
    {
        var auth = Authenticator(out _);
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(
            VanillaRequest(edit: r => r.Headers["X-Amz-Content-Sha256"] = SigV4.EmptyPayloadHash), "tampered"u8, "service"));
        Assert.Contains("x-amz-content-sha256", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Authenticate_UnsignedPayload_BodyNotHashed()
    {
        var auth = Authenticator(out _);
        var headers = new Dictionary<string, string> { ["Host"] = "example.amazonaws.com", ["X-Amz-Date"] = "20150830T123600Z" };
        var sig = Sign("POST", "/", [], headers, SigV4.UnsignedPayload);
        var request = VanillaRequest($"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}", r =>
        {
            r.Method = "POST";
            r.Headers["X-Amz-Content-Sha256"] = SigV4.UnsignedPayload;
        });
        Assert.Equal("example", auth.Authenticate(request, "any body"u8, "service").Name);
    }

    [Fact]
    public void Authenticate_SessionToken_RequiredWhenTheCredentialHasOne_RefusedWhenItHasNone()
    {
        var withToken = new AwsCredential { AccessKeyId = ExampleKey, SecretAccessKey = ExampleSecret, Name = "s", SessionToken = "tok" };
        var auth = Authenticator(out _, withToken);
        Assert.Equal("UnrecognizedClientException", Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(), [], "service")).ErrorType);
        Assert.Equal("s", auth.Authenticate(VanillaRequest(edit: r => r.Headers["X-Amz-Security-Token"] = "tok"), [], "service").Name);
        Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(edit: r => r.Headers["X-Amz-Security-Token"] = "wrong"), [], "service"));

        var plain = Authenticator(out _);
        Assert.Equal("UnrecognizedClientException", Assert.Throws<AwsAuthException>(() => plain.Authenticate(VanillaRequest(edit: r => r.Headers["X-Amz-Security-Token"] = "tok"), [], "service")).ErrorType);
    }

    [Theory]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa0", "Date in Credential scope does not match")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=x-amz-date, Signature=5fa0", "'Host' or ':authority' must be a 'SignedHeader'")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, SignedHeaders=host;x-amz-date, Signature=5fa0", "Credential must have exactly 5 slash-delimited elements")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, SignedHeaders=host;x-amz-date, Signature=5fa0", "valid terminator")]
    [InlineData("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=5fa0", "Authorization header requires 'Credential' parameter.")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request", "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE /20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa0", "'/20150830/us-east-1/service/aws4_request' not a valid key=value pair (missing equal-sign)")]
    [InlineData("Basic dGVzdDp0ZXN0", "Unsupported AWS 'algorithm': 'Basic'")]
    public void Authenticate_MalformedHeader_SaysWhatIsWrong(string header, string message)
    {
        var auth = Authenticator(out _);
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(header), [], "service"));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.True(e.StatusCode is 400 or 403);
    }

    [Fact]
    public void Authenticate_NoAuthorization_MissingAuthenticationToken()
    {
        var auth = Authenticator(out _);
        var e = Assert.Throws<AwsAuthException>(() => auth.Authenticate(VanillaRequest(edit: r => r.Headers.Remove("Authorization")), [], "service"));
        Assert.Equal("MissingAuthenticationTokenException", e.ErrorType);
        Assert.Equal(403, e.StatusCode);
        Assert.Equal("Missing Authentication Token", e.Message);
    }

    [Fact]
    public void Authenticate_PresignedQuery_Accepted_AndExpires()
    {
        var auth = Authenticator(out var time);
        var query = new List<KeyValuePair<string, string>>
        {
            new("X-Amz-Algorithm", SigV4.Algorithm),
            new("X-Amz-Credential", "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"),
            new("X-Amz-Date", "20150830T123600Z"),
            new("X-Amz-Expires", "60"),
            new("X-Amz-SignedHeaders", "host"),
        };
        var canonical = SigV4.CanonicalRequest("GET", "/", query, ["host"], _ => ["example.amazonaws.com"], SigV4.EmptyPayloadHash);
        var sig = SigV4.Signature(SigV4.SigningKey(ExampleSecret, "20150830", "us-east-1", "service"), SigV4.StringToSign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", canonical));
        var qs = string.Join('&', query.Select(kv => kv.Key + "=" + Uri.EscapeDataString(kv.Value))) + "&X-Amz-Signature=" + sig;
        HttpRequest Request()
        {
            var r = new DefaultHttpContext().Request;
            r.Method = "GET";
            r.Path = "/";
            r.Headers.Host = "example.amazonaws.com";
            r.QueryString = new QueryString("?" + qs);
            return r;
        }
        Assert.Equal("example", auth.Authenticate(Request(), [], "service").Name);
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.StartsWith("Signature expired", Assert.Throws<AwsAuthException>(() => auth.Authenticate(Request(), [], "service")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Authorize_ReadOnly_DescribeAllowed_RunTaskDeniedInIamWording()
    {
        var auth = Authenticator(out _);
        var ro = new AwsCaller("AKIA1", "viewer", Permissions.ReadOnly, "us-east-1");
        auth.Authorize(ro, "ecs", "DescribeTasks");
        auth.Authorize(ro, "ecr", "BatchGetImage");
        var e = Assert.Throws<AwsAuthException>(() => auth.Authorize(ro, "ecs", "RunTask"));
        Assert.Equal("AccessDeniedException", e.ErrorType);
        Assert.Equal(400, e.StatusCode);
        Assert.StartsWith("User: arn:aws:iam::000000000000:user/viewer is not authorized to perform: ecs:RunTask on resource: *", e.Message, StringComparison.Ordinal);
        auth.Authorize(ro with { Permissions = Permissions.Admin }, "ecs", "RunTask");
    }

    [Theory]
    [InlineData("DescribeTasks", true)]
    [InlineData("ListClusters", true)]
    [InlineData("GetAuthorizationToken", true)]
    [InlineData("BatchGetImage", true)]
    [InlineData("BatchCheckLayerAvailability", true)]
    [InlineData("RunTask", false)]
    [InlineData("CreateCluster", false)]
    [InlineData("PutImage", false)]
    [InlineData("BatchDeleteImage", false)]
    [InlineData("CompleteLayerUpload", false)]
    public void IsReadOperation_ByOperationName(string operation, bool read) => Assert.Equal(read, Permissions.IsReadOperation(operation));

    [Fact]
    public void CredentialFile_SavedOwnerOnly_AndStorePicksUpNewKeysWithoutRestart()
    {
        var path = CredentialFile.PathIn(_dir);
        var store = new CredentialStore(path);
        Assert.Equal(0, store.Count);
        var c = AwsCredential.Generate("admin", Permissions.Admin, ExampleTime);
        Assert.Matches("^AKIA[A-Z2-7]{16}$", c.AccessKeyId);
        Assert.Equal(40, c.SecretAccessKey.Length);
        CredentialFile.Save(path, [c]);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        Assert.Equal(c, store.Find(c.AccessKeyId)); // an unknown key makes the store look at the file again
        Assert.Equal(c, Assert.Single(CredentialFile.Load(path)));
    }

    [Theory]
    [InlineData(null, "127.0.0.1", 0, AuthMode.None, false)]
    [InlineData(null, "127.0.0.2", 0, AuthMode.None, false)]
    [InlineData(null, "localhost", 0, AuthMode.None, false)]
    [InlineData(null, "::1", 0, AuthMode.None, false)]
    [InlineData(null, "0.0.0.0", 0, AuthMode.SigV4, true)]
    [InlineData(null, "10.1.2.3", 0, AuthMode.SigV4, true)]
    [InlineData(null, "10.1.2.3", 1, AuthMode.SigV4, false)]
    [InlineData("", "*", 1, AuthMode.SigV4, false)]
    [InlineData("none", "10.1.2.3", 0, AuthMode.None, false)]
    [InlineData("sigv4", "127.0.0.1", 0, AuthMode.SigV4, true)]
    [InlineData("sigv4", "127.0.0.1", 2, AuthMode.SigV4, false)]
    public void Decide_DefaultIsSigV4OffLoopback_AndRefusesWithoutCredentials(string? requested, string host, int credentials, AuthMode mode, bool refused)
    {
        var (m, error) = AuthStartup.Decide(requested, host, credentials, "/srv/berth");
        Assert.Equal(mode, m);
        Assert.Equal(refused, error is not null);
        if (refused)
        {
            Assert.Contains("berth credentials create --name admin --data /srv/berth", error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Decide_UnknownMode_Refused() => Assert.Contains("not one of none, sigv4", AuthStartup.Decide("kerberos", "127.0.0.1", 1, "d").Error, StringComparison.Ordinal);

    [Fact]
    public void Hash_OfEmptyBody_IsTheConstant() => Assert.Equal(SigV4.EmptyPayloadHash, SigV4.Hex(SHA256.HashData(Encoding.UTF8.GetBytes(""))));
}
