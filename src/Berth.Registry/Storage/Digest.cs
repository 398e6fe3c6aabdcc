using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;

namespace Berth.Registry.Storage;

/// <summary>A content digest, <c>algorithm:hex</c>; only sha256 and sha512 are accepted (OCI image spec).</summary>
public readonly record struct Digest(string Algorithm, string Hex)
{
    public override string ToString() => Algorithm + ":" + Hex;

    public static bool TryParse(string? value, [NotNullWhen(true)] out Digest? digest)
    {
        digest = null;
        if (string.IsNullOrEmpty(value))
        {
            return false;
        }
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            return false;
        }
        var alg = value[..colon];
        var hex = value[(colon + 1)..];
        var expected = alg switch { "sha256" => 64, "sha512" => 128, _ => -1 };
        if (hex.Length != expected || !hex.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f'))
        {
            return false;
        }
        digest = new Digest(alg, hex);
        return true;
    }

    /// <summary>True when <paramref name="value"/> is shaped like a digest (has an algorithm part), valid or not.</summary>
    public static bool LooksLikeDigest(string value) => value.Contains(':', StringComparison.Ordinal);

    public IncrementalHash NewHash() => IncrementalHash.CreateHash(Algorithm == "sha512" ? HashAlgorithmName.SHA512 : HashAlgorithmName.SHA256);

    public static Digest Sha256(ReadOnlySpan<byte> content) => new("sha256", Convert.ToHexStringLower(SHA256.HashData(content)));

    public static Digest FromHash(string algorithm, byte[] hash) => new(algorithm, Convert.ToHexStringLower(hash));
}
