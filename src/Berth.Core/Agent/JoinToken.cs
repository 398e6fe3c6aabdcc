using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Berth.Core.Agent;

/// <summary>
/// What an agent needs to join a server once: <c>berth-join.&lt;CA fingerprint&gt;.&lt;secret&gt;</c>, where the
/// fingerprint is the SHA-256 of the server CA's DER encoding (64 lowercase hex digits) and the secret 32 lowercase hex
/// digits. The fingerprint lets the agent trust the server without any other trust store (as <c>kubeadm join</c>'s
/// --discovery-token-ca-cert-hash and <c>docker swarm join</c>'s token do); the secret proves to the server that the
/// agent was invited.
/// </summary>
public sealed record JoinToken(string CaFingerprint, string Secret)
{
    public const string Prefix = "berth-join";
    private const int FingerprintLength = 64;
    private const int SecretLength = 32;

    public override string ToString() => $"{Prefix}.{CaFingerprint}.{Secret}";

    /// <summary>A new random secret in the token's alphabet.</summary>
    public static string NewSecret() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(SecretLength / 2));

    /// <summary>SHA-256 of the certificate's DER, as lowercase hex: the fingerprint a token carries.</summary>
    public static string Fingerprint(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));
    }

    /// <summary>Parses a token; on failure <paramref name="error"/> says what is wrong with it (never echoing the secret).</summary>
    public static bool TryParse(string? text, out JoinToken token, out string error)
    {
        token = new JoinToken("", "");
        var parts = (text ?? "").Trim().Split('.');
        if (parts.Length != 3 || parts[0] != Prefix)
        {
            error = $"a join token has three parts separated by dots, {Prefix}.<CA fingerprint>.<secret>; print it on the server with 'berth join-token'";
            return false;
        }
        var fingerprint = parts[1].ToLowerInvariant();
        if (fingerprint.Length != FingerprintLength || !IsHex(fingerprint))
        {
            error = $"the CA fingerprint in a join token is {FingerprintLength} hex digits (SHA-256), not '{parts[1]}'";
            return false;
        }
        var secret = parts[2].ToLowerInvariant();
        if (secret.Length != SecretLength || !IsHex(secret))
        {
            error = $"the secret in a join token is {SecretLength} hex digits";
            return false;
        }
        token = new JoinToken(fingerprint, secret);
        error = "";
        return true;
    }

    /// <summary>Compares a presented secret with the expected one in constant time.</summary>
    public static bool SecretMatches(string expected, string? presented)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var a = System.Text.Encoding.ASCII.GetBytes(expected);
        var b = System.Text.Encoding.ASCII.GetBytes((presented ?? "").ToLowerInvariant());
        return a.Length == b.Length && CryptographicOperations.FixedTimeEquals(a, b);
    }

    private static bool IsHex(string s) => s.All(char.IsAsciiHexDigitLower);
}
