using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Berth.Aws.Auth;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>
/// One <c>berth server --auth sigv4</c> for the abuse table, with a short request-headers timeout (3 s, so the
/// slow cases stay short) and a per-address cap of 256 connections (every test connection comes from 127.0.0.1).
/// Raw HTTP/1.1 over sockets, signed with <see cref="SigV4"/> where a case needs to get past authentication.
/// </summary>
public sealed partial class AbuseFixture : IAsyncLifetime
{
    public const int PerAddressCap = 256;
    public const int HeadersTimeoutSeconds = 3;

    public BerthServer Server { get; private set; } = null!;
    public (string Key, string Secret) Admin { get; private set; }
    public string Host => $"127.0.0.1:{Server.Port}";

    public async ValueTask InitializeAsync()
    {
        var data = Path.Combine(Path.GetTempPath(), "berth-e2e-" + Guid.NewGuid().ToString("N"));
        var r = await BerthServer.RunCliAsync(["credentials", "create", "--data", data, "--name", "admin"]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Admin = (KeyLine().Match(r.Stdout).Groups[1].Value, SecretLine().Match(r.Stdout).Groups[1].Value);
        Server = await BerthServer.StartWithDataAsync(data, "server", "--auth", "sigv4",
            "--request-headers-timeout", HeadersTimeoutSeconds.ToString(CultureInfo.InvariantCulture),
            "--max-connections-per-address", PerAddressCap.ToString(CultureInfo.InvariantCulture));
    }

    public async ValueTask DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }

    /// <summary>VmRSS of the server process, in MiB.</summary>
    public long ResidentMiB()
    {
        var pid = Server.Pid ?? throw new InvalidOperationException("the server is not running:\n" + Server.Log);
        return ProcessMemory.ResidentMiB(pid);
    }

    /// <summary>
    /// The header lines of a request signed as botocore signs it (host, x-amz-date, x-amz-target when given,
    /// content-type), or with <paramref name="authorization"/> in place of the real signature.
    /// </summary>
    public string SignedHeaders(string service, string? target, byte[] body, string contentType = "application/x-amz-json-1.1",
        string path = "/", IEnumerable<KeyValuePair<string, string>>? query = null, DateTime? at = null)
    {
        var amzDate = (at ?? DateTime.UtcNow).ToString(SigV4.DateFormat, CultureInfo.InvariantCulture);
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["content-type"] = contentType,
            ["host"] = Host,
            ["x-amz-date"] = amzDate,
        };
        if (target is not null)
        {
            headers["x-amz-target"] = target;
        }
        var names = headers.Keys.ToList();
        var canonical = SigV4.CanonicalRequest("POST", path, query ?? [], names, n => [headers[n]], SigV4.Hex(SHA256.HashData(body)));
        var scope = $"{amzDate[..8]}/us-east-1/{service}/aws4_request";
        var signature = SigV4.Signature(SigV4.SigningKey(Admin.Secret, amzDate[..8], "us-east-1", service), SigV4.StringToSign(amzDate, scope, canonical));
        var sb = new StringBuilder();
        sb.Append("Content-Type: ").Append(contentType).Append("\r\n");
        sb.Append("X-Amz-Date: ").Append(amzDate).Append("\r\n");
        if (target is not null)
        {
            sb.Append("X-Amz-Target: ").Append(target).Append("\r\n");
        }
        sb.Append("Authorization: ").Append(SigV4.Algorithm).Append(" Credential=").Append(Admin.Key).Append('/').Append(scope)
            .Append(", SignedHeaders=").Append(string.Join(';', names)).Append(", Signature=").Append(signature).Append("\r\n");
        return sb.ToString();
    }

    /// <summary>A POST with <paramref name="headerLines"/> (each ending in CRLF) and <paramref name="body"/>, closed after the answer.</summary>
    public byte[] Post(string headerLines, byte[] body, string requestTarget = "/", string version = "HTTP/1.1")
        => [.. Encoding.ASCII.GetBytes($"POST {requestTarget} {version}\r\nHost: {Host}\r\n{headerLines}Content-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body];

    /// <summary>Sends raw bytes on a fresh connection and reads the answer to its end (the requests ask for Connection: close).</summary>
    public async Task<Answer> RawAsync(byte[] request, TimeSpan? timeout = null, int? port = null)
    {
        using var client = new TcpClient();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        await client.ConnectAsync("127.0.0.1", port ?? Server.Port, cts.Token);
        var stream = client.GetStream();
        try
        {
            await stream.WriteAsync(request, cts.Token);
        }
        catch (IOException)
        {
            // the server may close before it has read everything; its answer may still be there to read
        }
        return await ReadAnswerAsync(stream, cts.Token);
    }

    public static async Task<Answer> ReadAnswerAsync(Stream stream, CancellationToken ct)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[16384];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(chunk, ct)) > 0 && buffer.Length < 1024 * 1024)
            {
                buffer.Write(chunk, 0, n);
            }
        }
        catch (IOException)
        {
            // reset after the answer: keep what arrived
        }
        return Answer.Parse(Encoding.UTF8.GetString(buffer.ToArray()));
    }

    [GeneratedRegex(@"AccessKeyId:\s+(AKIA[A-Z2-7]{16})")]
    private static partial Regex KeyLine();

    [GeneratedRegex(@"SecretAccessKey:\s+(\S{40})")]
    private static partial Regex SecretLine();
}

/// <summary>An HTTP answer as it came off the wire: status 0 when the server closed without one.</summary>
public sealed partial record Answer(int Status, string? ErrorType, string Text)
{
    public static Answer Parse(string raw)
    {
        var m = StatusLine().Match(raw);
        if (!m.Success)
        {
            return new Answer(0, null, raw);
        }
        var status = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        var type = ErrorTypeHeader().Match(raw) is { Success: true } h ? h.Groups[1].Value.Trim()
            : QueryCode().Match(raw) is { Success: true } q ? q.Groups[1].Value : null;
        return new Answer(status, type, raw);
    }

    [GeneratedRegex(@"^HTTP/1\.[01] (\d{3})")]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"(?im)^x-amzn-ErrorType:\s*([^\r\n:]+)")]
    private static partial Regex ErrorTypeHeader();

    [GeneratedRegex(@"<Code>([^<]+)</Code>")]
    private static partial Regex QueryCode();
}
