using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace Berth.Aws.Auth;

/// <summary>
/// Reads the region of a request from its SigV4 credential scope (<c>AKID/DATE/REGION/SERVICE/aws4_request</c>),
/// in the Authorization header or a presigned query's X-Amz-Credential, without checking the signature:
/// with authentication off the scope still selects the region, as every AWS client signs with the region it
/// was configured for.
/// </summary>
public static partial class CredentialScope
{
    /// <summary>The scope's region; null when the request carries no (well-formed) credential scope.</summary>
    public static string? RegionOf(HttpRequest request)
    {
        var authorization = request.Headers.Authorization;
        if (authorization.Count > 0)
        {
            return RegionOfHeader(authorization.ToString());
        }
        return request.Query.TryGetValue("X-Amz-Credential", out var credential) ? RegionOfCredential(credential.ToString()) : null;
    }

    /// <summary>The region of an <c>AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...</c> header; null otherwise.</summary>
    public static string? RegionOfHeader(string header)
    {
        const string Key = "Credential=";
        var at = header.IndexOf(Key, StringComparison.Ordinal);
        if (at < 0 || !header.StartsWith(SigV4.Algorithm, StringComparison.Ordinal))
        {
            return null;
        }
        var start = at + Key.Length;
        var end = header.IndexOfAny([',', ' '], start);
        return RegionOfCredential(end < 0 ? header[start..] : header[start..end]);
    }

    /// <summary>The third of the five slash-separated parts of a credential; null when it is not one.</summary>
    public static string? RegionOfCredential(string credential)
    {
        var parts = credential.Split('/');
        return parts.Length == 5 && parts[2].Length > 0 ? parts[2] : null;
    }

    /// <summary>
    /// True for a name shaped like an AWS region (us-east-1, eu-central-2, us-gov-west-1, ap-southeast-5):
    /// lower-case words and a number, joined by hyphens. The region becomes part of store keys and ARNs, so
    /// nothing else (slashes, colons, upper case) may pass.
    /// </summary>
    public static bool IsValidRegion(string region) => region.Length <= 32 && RegionPattern().IsMatch(region);

    [GeneratedRegex("^[a-z]{2,}(-[a-z]+)+-[0-9]{1,2}$", RegexOptions.CultureInvariant)]
    private static partial Regex RegionPattern();
}
