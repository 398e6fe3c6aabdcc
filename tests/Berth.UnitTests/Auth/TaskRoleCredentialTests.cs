using System.Security.Cryptography;
using Berth.Aws.Auth;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Auth;

/// <summary>
/// Task role credentials: issued and verified from the token alone (no table), refused when tampered with, presented
/// with another key id, expired (fake clock) or when their task has stopped; and a request signed with them through
/// <see cref="AwsAuthenticator"/>, whose caller is the assumed role.
/// </summary>
public sealed class TaskRoleCredentialTests : IDisposable
{
    private const string Role = "arn:aws:iam::000000000000:role/app-role";
    private const string Task = "arn:aws:ecs:us-east-1:000000000000:task/default/0123456789abcdef0123456789abcdef";
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 2, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-taskroles-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TaskRoleCredentialIssuer Issuer(FakeTimeProvider time, byte[]? key = null)
        => new(key ?? Enumerable.Range(1, 32).Select(i => (byte)i).ToArray(), time);

    [Fact]
    public void Issue_ThenVerify_GivesTheSameCredential_ValidForSixHours()
    {
        var time = new FakeTimeProvider(Start);
        var issuer = Issuer(time);
        var c = issuer.Issue(Role, Task);

        Assert.Matches("^ASIA[A-Z2-7]{16}$", c.AccessKeyId);
        Assert.Equal(40, c.SecretAccessKey.Length);
        Assert.Equal(Start + TimeSpan.FromHours(6), c.Expiration);
        var v = issuer.Verify(c.AccessKeyId, c.Token);
        Assert.Equal(c, v);

        // Another issuer with the same key (a restarted server) verifies it too: nothing is remembered.
        Assert.Equal(c.SecretAccessKey, Issuer(time).Verify(c.AccessKeyId, c.Token).SecretAccessKey);
    }

    [Fact]
    public void Verify_AtExpiry_ExpiredToken_JustBefore_Accepted()
    {
        var time = new FakeTimeProvider(Start);
        var issuer = Issuer(time);
        var c = issuer.Issue(Role, Task);
        time.Advance(TimeSpan.FromHours(6) - TimeSpan.FromSeconds(1));
        issuer.Verify(c.AccessKeyId, c.Token);
        time.Advance(TimeSpan.FromSeconds(1));
        var e = Assert.Throws<AwsAuthException>(() => issuer.Verify(c.AccessKeyId, c.Token));
        Assert.Equal("ExpiredTokenException", e.ErrorType);
        Assert.Equal("ExpiredToken", e.QueryCode);
    }

    [Fact]
    public void Verify_TamperedTokenOtherKeyIdOrOtherServerKey_Unrecognized()
    {
        var time = new FakeTimeProvider(Start);
        var issuer = Issuer(time);
        var c = issuer.Issue(Role, Task);
        var other = issuer.Issue(Role, Task);

        var middle = c.Token.Length / 2;
        var tampered = c.Token[..middle] + (c.Token[middle] == 'A' ? 'B' : 'A') + c.Token[(middle + 1)..];
        foreach (var (key, token) in new[] { (c.AccessKeyId, tampered), (other.AccessKeyId, c.Token), (c.AccessKeyId, "BERTHTASK1.x"), (c.AccessKeyId, "BERTHTASK1.!!!.???"), (c.AccessKeyId, "plain") })
        {
            var e = Assert.Throws<AwsAuthException>(() => issuer.Verify(key, token));
            Assert.Equal("UnrecognizedClientException", e.ErrorType);
        }
        var foreign = Issuer(time, RandomNumberGenerator.GetBytes(32));
        Assert.Equal("UnrecognizedClientException", Assert.Throws<AwsAuthException>(() => foreign.Verify(c.AccessKeyId, c.Token)).ErrorType);
    }

    [Fact]
    public void Verify_TaskNoLongerLive_ExpiredToken()
    {
        var time = new FakeTimeProvider(Start);
        var issuer = Issuer(time);
        var c = issuer.Issue(Role, Task);
        var live = true;
        string? asked = null;
        issuer.TaskIsLive = arn =>
        {
            asked = arn;
            return live;
        };
        issuer.Verify(c.AccessKeyId, c.Token);
        Assert.Equal(Task, asked);
        live = false;
        Assert.Equal("ExpiredTokenException", Assert.Throws<AwsAuthException>(() => issuer.Verify(c.AccessKeyId, c.Token)).ErrorType);
    }

    [Fact]
    public void LoadOrCreate_MakesTheKeyOnce_OwnerOnly_AndKeepsIt()
    {
        var time = new FakeTimeProvider(Start);
        var first = TaskRoleCredentialIssuer.LoadOrCreate(_dir, time);
        var c = first.Issue(Role, Task);
        var path = Path.Combine(_dir, TaskRoleCredentialIssuer.KeyFileName);
        Assert.Equal(32, new FileInfo(path).Length);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        Assert.Equal(c.SecretAccessKey, TaskRoleCredentialIssuer.LoadOrCreate(_dir, time).Verify(c.AccessKeyId, c.Token).SecretAccessKey);
    }

    [Fact]
    public void AssumedRoleArn_RoleNameAndTaskId_AsStsNamesThem()
    {
        Assert.Equal("arn:aws:sts::000000000000:assumed-role/app-role/0123456789abcdef0123456789abcdef",
            TaskRoleCredentialIssuer.AssumedRoleArn("000000000000", Role, Task));
        Assert.Equal("arn:aws:sts::123456789012:assumed-role/r/0123456789abcdef0123456789abcdef",
            TaskRoleCredentialIssuer.AssumedRoleArn("123456789012", "arn:aws:iam::123456789012:role/path/to/r", Task));
        Assert.Equal("arn:aws:sts::1:assumed-role/short/0123456789abcdef0123456789abcdef", TaskRoleCredentialIssuer.AssumedRoleArn("1", "short", Task));
    }

    /// <summary>A POST / signed with <paramref name="c"/> as botocore would sign it, at the fake clock's time.</summary>
    private static HttpRequest Signed(TaskRoleCredential c, DateTimeOffset now, string? token)
    {
        var amzDate = now.UtcDateTime.ToString(SigV4.DateFormat, System.Globalization.CultureInfo.InvariantCulture);
        var scope = $"{amzDate[..8]}/us-east-1/ecs/aws4_request";
        var headers = new Dictionary<string, string> { ["host"] = "127.0.0.1:4566", ["x-amz-date"] = amzDate };
        if (token is not null)
        {
            headers["x-amz-security-token"] = token;
        }
        var signed = headers.Keys.Order(StringComparer.Ordinal).ToList();
        var canonical = SigV4.CanonicalRequest("POST", "/", [], signed, n => [headers[n]], SigV4.EmptyPayloadHash);
        var signature = SigV4.Signature(SigV4.SigningKey(c.SecretAccessKey, amzDate[..8], "us-east-1", "ecs"), SigV4.StringToSign(amzDate, scope, canonical));
        var r = new DefaultHttpContext().Request;
        r.Method = "POST";
        r.Path = "/";
        foreach (var (k, v) in headers)
        {
            r.Headers[k] = v;
        }
        r.Headers.Authorization = $"AWS4-HMAC-SHA256 Credential={c.AccessKeyId}/{scope}, SignedHeaders={string.Join(';', signed)}, Signature={signature}";
        return r;
    }

    [Fact]
    public void Authenticate_SignedWithTaskCredentials_CallerIsTheAssumedRole_OnlyWithItsToken()
    {
        var time = new FakeTimeProvider(Start);
        var issuer = Issuer(time);
        var store = new CredentialStore(CredentialFile.PathIn(_dir));
        var auth = new AwsAuthenticator(AuthMode.SigV4, store, time, "000000000000", issuer);
        var c = issuer.Issue(Role, Task);

        var caller = auth.Authenticate(Signed(c, time.GetUtcNow(), c.Token), [], "ecs");
        Assert.Equal("arn:aws:sts::000000000000:assumed-role/app-role/0123456789abcdef0123456789abcdef", caller.Arn);
        Assert.Equal(c.AccessKeyId, caller.AccessKeyId);
        Assert.Equal(Permissions.Admin, caller.Permissions);
        Assert.Equal("us-east-1", caller.Region);

        // Without the token the key id is unknown; with another task's token it is not that token's key id.
        Assert.Equal("UnrecognizedClientException", Assert.Throws<AwsAuthException>(() => auth.Authenticate(Signed(c, time.GetUtcNow(), null), [], "ecs")).ErrorType);
        var other = issuer.Issue(Role, Task);
        Assert.Equal("UnrecognizedClientException", Assert.Throws<AwsAuthException>(() => auth.Authenticate(Signed(c, time.GetUtcNow(), other.Token), [], "ecs")).ErrorType);
        // The right token with a wrong secret: the signature does not match.
        var wrongSecret = c with { SecretAccessKey = other.SecretAccessKey };
        Assert.Equal("InvalidSignatureException", Assert.Throws<AwsAuthException>(() => auth.Authenticate(Signed(wrongSecret, time.GetUtcNow(), c.Token), [], "ecs")).ErrorType);

        time.Advance(TimeSpan.FromHours(6));
        Assert.Equal("ExpiredTokenException", Assert.Throws<AwsAuthException>(() => auth.Authenticate(Signed(c, time.GetUtcNow(), c.Token), [], "ecs")).ErrorType);

        // An authorization failure names the assumed role, as IAM does.
        var denied = Assert.Throws<AwsAuthException>(() => auth.Authorize(caller with { Permissions = Permissions.ReadOnly }, "ecs", "RunTask"));
        Assert.StartsWith("User: arn:aws:sts::000000000000:assumed-role/app-role/", denied.Message, StringComparison.Ordinal);
    }
}
