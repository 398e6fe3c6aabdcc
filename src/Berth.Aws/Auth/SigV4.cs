using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Berth.Aws.Auth;

/// <summary>
/// The pieces of AWS Signature Version 4 that both a signer and a verifier need: the canonical request,
/// the string to sign, the signing key and the signature. Pure functions over strings; no HTTP types.
/// </summary>
public static class SigV4
{
    public const string Algorithm = "AWS4-HMAC-SHA256";
    public const string Terminator = "aws4_request";
    public const string UnsignedPayload = "UNSIGNED-PAYLOAD";
    public const string EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    public const string DateFormat = "yyyyMMdd'T'HHmmss'Z'";

    /// <summary>kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").</summary>
    public static byte[] SigningKey(string secret, string date, string region, string service)
    {
        var k = HMACSHA256.HashData(Encoding.UTF8.GetBytes("AWS4" + secret), Encoding.UTF8.GetBytes(date));
        k = HMACSHA256.HashData(k, Encoding.UTF8.GetBytes(region));
        k = HMACSHA256.HashData(k, Encoding.UTF8.GetBytes(service));
        return HMACSHA256.HashData(k, Encoding.UTF8.GetBytes(Terminator));
    }

    public static string StringToSign(string amzDate, string scope, string canonicalRequest)
        => Algorithm + "\n" + amzDate + "\n" + scope + "\n" + Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)));

    public static string Signature(byte[] signingKey, string stringToSign)
        => Hex(HMACSHA256.HashData(signingKey, Encoding.UTF8.GetBytes(stringToSign)));

    /// <summary>
    /// The canonical request. <paramref name="path"/> is the decoded path, <paramref name="query"/> the decoded
    /// (name, value) pairs, <paramref name="headers"/> lower-case name to values for every signed header.
    /// </summary>
    public static string CanonicalRequest(string method, string path, IEnumerable<KeyValuePair<string, string>> query,
        IReadOnlyList<string> signedHeaders, Func<string, IReadOnlyList<string>> headerValues, string payloadHash)
    {
        var sb = new StringBuilder(256);
        sb.Append(method).Append('\n');
        sb.Append(CanonicalPath(path)).Append('\n');
        sb.Append(CanonicalQuery(query)).Append('\n');
        foreach (var name in signedHeaders)
        {
            sb.Append(name).Append(':');
            var values = headerValues(name);
            for (var i = 0; i < values.Count; i++)
            {
                if (i > 0)
                {
                    sb.Append(',');
                }
                AppendTrimmed(sb, values[i]);
            }
            sb.Append('\n');
        }
        sb.Append('\n');
        sb.AppendJoin(';', signedHeaders).Append('\n');
        sb.Append(payloadHash);
        return sb.ToString();
    }

    /// <summary>Each segment URI-encoded (the services other than S3 encode the already-encoded path once more; for "/" both agree).</summary>
    public static string CanonicalPath(string path)
    {
        if (path.Length == 0)
        {
            return "/";
        }
        var sb = new StringBuilder(path.Length + 8);
        foreach (var segment in path.Split('/'))
        {
            if (sb.Length > 0 || path[0] == '/')
            {
                sb.Append('/');
            }
            sb.Append(UriEncode(UriEncode(segment)));
        }
        var s = sb.ToString();
        return path[0] == '/' && s.StartsWith("//", StringComparison.Ordinal) ? s[1..] : s;
    }

    public static string CanonicalQuery(IEnumerable<KeyValuePair<string, string>> query)
    {
        var pairs = query.Select(kv => (Name: UriEncode(kv.Key), Value: UriEncode(kv.Value))).ToList();
        if (pairs.Count == 0)
        {
            return "";
        }
        pairs.Sort((a, b) =>
        {
            var c = string.CompareOrdinal(a.Name, b.Name);
            return c != 0 ? c : string.CompareOrdinal(a.Value, b.Value);
        });
        return string.Join('&', pairs.Select(p => p.Name + "=" + p.Value));
    }

    /// <summary>RFC 3986 percent-encoding of everything but the unreserved characters, upper-case hex.</summary>
    public static string UriEncode(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        var sb = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (b is (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'0' and <= (byte)'9') or (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~')
            {
                sb.Append((char)b);
            }
            else
            {
                sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }
        return sb.ToString();
    }

    public static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    private static void AppendTrimmed(StringBuilder sb, string value)
    {
        // Leading and trailing spaces removed, runs of spaces inside collapsed to one.
        var span = value.AsSpan().Trim();
        var space = false;
        foreach (var c in span)
        {
            if (c == ' ')
            {
                space = true;
                continue;
            }
            if (space)
            {
                sb.Append(' ');
                space = false;
            }
            sb.Append(c);
        }
    }
}
