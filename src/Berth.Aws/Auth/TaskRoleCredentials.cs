using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Berth.Aws.Auth;

/// <summary>Temporary credentials a task's containers get for its <c>taskRoleArn</c> (the ECS credentials endpoint's fields).</summary>
public sealed record TaskRoleCredential(string RoleArn, string TaskArn, string AccessKeyId, string SecretAccessKey, string Token, DateTimeOffset Expiration);

/// <summary>
/// Issues and verifies task role credentials without keeping any table: the session token is a server-signed
/// statement "this access key id acts as ROLE for TASK until EXPIRY", and the secret is derived from the server's
/// key and that statement, so a request signed with them is checked from the token alone.
/// </summary>
/// <remarks>
/// Token: <c>BERTHTASK1.</c> + base64url(payload) + <c>.</c> + base64url(HMAC-SHA256(key, "token\n" + payload)),
/// payload <c>ACCESS_KEY_ID\nROLE_ARN\nTASK_ARN\nEXPIRY_UNIX_SECONDS</c>. Secret: base64 of the first 30 bytes of
/// HMAC-SHA256(key, "secret\n" + payload), 40 characters as IAM's are. The key (32 random bytes) is made once in
/// DATA/task-credentials.key with mode 0600; deleting it revokes every task credential issued.
/// </remarks>
public sealed class TaskRoleCredentialIssuer
{
    public const string KeyFileName = "task-credentials.key";
    public const string TokenPrefix = "BERTHTASK1.";

    /// <summary>As ECS: role credentials last 6 hours; the agent asks for new ones when half of that is left.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(6);

    private const string Alphabet32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    private readonly byte[] _key;
    private readonly TimeProvider _time;

    public TaskRoleCredentialIssuer(byte[] key, TimeProvider time)
    {
        if (key.Length < 32)
        {
            throw new ArgumentException("The task credential key must have at least 32 bytes.", nameof(key));
        }
        _key = key;
        _time = time;
    }

    /// <summary>
    /// False when the task a credential was issued for is stopped or gone (set by the control plane; O(1), read on
    /// every request signed with a task credential). Unset: every unexpired credential is accepted.
    /// </summary>
    public Func<string, bool>? TaskIsLive { get; set; }

    /// <summary>The issuer whose key is kept in <paramref name="dataDirectory"/>, making the key on first use.</summary>
    public static TaskRoleCredentialIssuer LoadOrCreate(string dataDirectory, TimeProvider time)
    {
        var path = Path.Combine(dataDirectory, KeyFileName);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(dataDirectory);
            var temp = path + "." + Environment.ProcessId + ".tmp";
            var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(RandomNumberGenerator.GetBytes(32));
                stream.Flush(flushToDisk: true);
            }
            try
            {
                // Not over an existing key: two processes starting on one directory keep the first one's.
                File.Move(temp, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                File.Delete(temp);
            }
        }
        var key = File.ReadAllBytes(path);
        if (key.Length < 32)
        {
            throw new InvalidDataException($"{path} holds {key.Length} bytes, not a 32-byte key: remove it to make a new one (task credentials issued with it stop working).");
        }
        return new TaskRoleCredentialIssuer(key, time);
    }

    /// <summary>New credentials for <paramref name="taskArn"/> acting as <paramref name="roleArn"/>, valid for <see cref="Lifetime"/>.</summary>
    public TaskRoleCredential Issue(string roleArn, string taskArn)
    {
        ArgumentException.ThrowIfNullOrEmpty(roleArn);
        ArgumentException.ThrowIfNullOrEmpty(taskArn);
        if (roleArn.Contains('\n', StringComparison.Ordinal) || taskArn.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException("ARNs cannot hold line breaks.");
        }
        var now = _time.GetUtcNow();
        // Whole seconds: the expiry travels as seconds in the token and must be the same on both sides.
        var expiry = DateTimeOffset.FromUnixTimeSeconds((now + Lifetime).ToUnixTimeSeconds());
        var keyId = "ASIA" + RandomNumberGenerator.GetString(Alphabet32, 16);
        var payload = $"{keyId}\n{roleArn}\n{taskArn}\n{expiry.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}";
        var payloadBytes = Encoding.UTF8.GetBytes(payload);
        var token = TokenPrefix + Base64Url.EncodeToString(payloadBytes) + "." + Base64Url.EncodeToString(Mac("token\n", payloadBytes));
        return new TaskRoleCredential(roleArn, taskArn, keyId, Secret(payloadBytes), token, expiry);
    }

    /// <summary>True when <paramref name="token"/> looks like one of these tokens (the authenticator then verifies it here).</summary>
    public static bool IsTaskToken(string? token) => token is not null && token.StartsWith(TokenPrefix, StringComparison.Ordinal);

    /// <summary>
    /// The credential <paramref name="token"/> states, checked: signed with this server's key, issued to
    /// <paramref name="accessKeyId"/>, not expired, its task still live. Throws <see cref="AwsAuthException"/> otherwise.
    /// </summary>
    public TaskRoleCredential Verify(string accessKeyId, string token)
    {
        if (!IsTaskToken(token))
        {
            throw AwsAuthException.UnrecognizedClient();
        }
        var body = token.AsSpan(TokenPrefix.Length);
        var dot = body.IndexOf('.');
        if (dot <= 0 || body.Length > 4096)
        {
            throw AwsAuthException.UnrecognizedClient();
        }
        byte[] payload, mac;
        try
        {
            payload = Base64Url.DecodeFromChars(body[..dot]);
            mac = Base64Url.DecodeFromChars(body[(dot + 1)..]);
        }
        catch (FormatException)
        {
            throw AwsAuthException.UnrecognizedClient();
        }
        if (!CryptographicOperations.FixedTimeEquals(mac, Mac("token\n", payload)))
        {
            throw AwsAuthException.UnrecognizedClient();
        }
        var parts = Encoding.UTF8.GetString(payload).Split('\n');
        if (parts.Length != 4 || parts[0] != accessKeyId
            || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            // A genuine token presented with another access key id.
            throw AwsAuthException.UnrecognizedClient();
        }
        var expiry = DateTimeOffset.FromUnixTimeSeconds(seconds);
        if (_time.GetUtcNow() >= expiry)
        {
            throw AwsAuthException.ExpiredToken();
        }
        if (TaskIsLive is { } live && !live(parts[2]))
        {
            // ECS's agent forgets a stopped task's credentials; here they stop working at once.
            throw AwsAuthException.ExpiredToken();
        }
        return new TaskRoleCredential(parts[1], parts[2], parts[0], Secret(payload), token, expiry);
    }

    /// <summary>The identity a task credential acts as: <c>arn:aws:sts::ACCOUNT:assumed-role/ROLE_NAME/TASK_ID</c>.</summary>
    public static string AssumedRoleArn(string accountId, string roleArn, string taskArn)
    {
        var role = roleArn[(roleArn.LastIndexOf('/') + 1)..];
        var task = taskArn[(taskArn.LastIndexOf('/') + 1)..];
        return $"arn:aws:sts::{accountId}:assumed-role/{role}/{task}";
    }

    private string Secret(byte[] payload) => Convert.ToBase64String(Mac("secret\n", payload).AsSpan(0, 30));

    private byte[] Mac(string purpose, byte[] payload)
    {
        var data = new byte[purpose.Length + payload.Length];
        Encoding.ASCII.GetBytes(purpose, data);
        payload.CopyTo(data, purpose.Length);
        return HMACSHA256.HashData(_key, data);
    }
}
