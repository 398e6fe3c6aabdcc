using System.Security.Cryptography;
using System.Text;
using Berth.Registry.Hosting;

namespace Berth.Registry.Auth;

/// <summary>
/// Issues and checks the registry passwords GetAuthorizationToken hands out: an expiry signed with
/// HMAC-SHA256 under a key kept in the data directory (so tokens survive a restart). Docker presents
/// them as Basic credentials with user name "AWS", as it does for ECR. A token carries the name and the
/// permission set of the credential that asked for it, so a read-only key's token can pull but not push.
/// </summary>
public sealed class RegistryTokens
{
    public const string UserName = "AWS";
    private readonly byte[] _key;
    private readonly TimeProvider _time;
    private readonly RegistryOptions _options;

    public RegistryTokens(RegistryOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
        var path = Path.Combine(options.DataDirectory, "token.key");
        if (File.Exists(path) && File.ReadAllBytes(path) is { Length: 32 } existing)
        {
            _key = existing;
        }
        else
        {
            Directory.CreateDirectory(options.DataDirectory);
            _key = RandomNumberGenerator.GetBytes(32);
            var temp = path + ".tmp";
            File.WriteAllBytes(temp, _key);
            File.Move(temp, path, overwrite: true);
        }
    }

    /// <summary>A new password for an admin, and when it expires.</summary>
    public (string Password, DateTimeOffset ExpiresAt) Issue() => Issue("admin", "anonymous");

    /// <summary>A new password carrying <paramref name="permissions"/> ("admin" or "read-only") and the user name, and when it expires.</summary>
    public (string Password, DateTimeOffset ExpiresAt) Issue(string permissions, string name)
    {
        var expires = _time.GetUtcNow() + _options.TokenLifetime;
        var payload = Encoding.UTF8.GetBytes(expires.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture) + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))
            + "." + permissions + "." + name);
        var token = Base64Url(payload) + "." + Base64Url(HMACSHA256.HashData(_key, payload));
        return (token, expires);
    }

    /// <summary>ECR's authorizationToken: base64 of "AWS:password".</summary>
    public static string AuthorizationToken(string password) => Convert.ToBase64String(Encoding.UTF8.GetBytes(UserName + ":" + password));

    /// <summary>True when <paramref name="authorization"/> is a Basic credential for AWS with an unexpired token of ours.</summary>
    public bool IsValidBasic(string? authorization) => ValidateBasic(authorization) is not null;

    /// <summary>The permission set ("admin", "read-only") of a valid Basic credential, or null.</summary>
    public string? ValidateBasic(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(authorization[6..].Trim()));
        }
        catch (FormatException)
        {
            return null;
        }
        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 && decoded[..colon] == UserName ? ValidatePassword(decoded[(colon + 1)..]) : null;
    }

    public bool IsValidPassword(string token) => ValidatePassword(token) is not null;

    /// <summary>The permission set an unexpired token of ours carries (tokens from before permissions were added count as admin), or null.</summary>
    public string? ValidatePassword(string token)
    {
        var dot = token.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || !TryBase64Url(token[..dot], out var payload) || !TryBase64Url(token[(dot + 1)..], out var mac))
        {
            return null;
        }
        if (!CryptographicOperations.FixedTimeEquals(mac, HMACSHA256.HashData(_key, payload)))
        {
            return null;
        }
        var parts = Encoding.UTF8.GetString(payload).Split('.', 4);
        if (!long.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var exp)
            || DateTimeOffset.FromUnixTimeSeconds(exp) <= _time.GetUtcNow())
        {
            return null;
        }
        return parts.Length >= 3 ? parts[2] : "admin";
    }

    private static string Base64Url(byte[] data) => Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool TryBase64Url(string s, out byte[] data)
    {
        var b64 = s.Replace('-', '+').Replace('_', '/');
        b64 += new string('=', (4 - b64.Length % 4) % 4);
        data = new byte[b64.Length];
        return Convert.TryFromBase64String(b64, data, out var n) && (data = data[..n]).Length > 0;
    }
}
