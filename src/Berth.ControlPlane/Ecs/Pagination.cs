using System.Text;
using Berth.Aws.Protocol;

namespace Berth.ControlPlane.Ecs;

/// <summary>
/// Keyset pagination for the List calls: the token is the last key of the previous page (opaque to the
/// client), so pages stay stable while resources come and go.
/// </summary>
internal static class Pagination
{
    public static (List<string> Page, string? NextToken) Page(IEnumerable<string> keys, int? maxResults, string? nextToken, IComparer<string>? order = null, int limit = 100)
    {
        if (maxResults is { } m && (m < 1 || m > limit))
        {
            throw AwsException.InvalidParameter($"maxResults: must be between 1 and {limit}.");
        }
        var comparer = order ?? StringComparer.Ordinal;
        var sorted = keys.Order(comparer);
        var after = Decode(nextToken);
        var rest = after is null ? sorted : sorted.Where(k => comparer.Compare(k, after) > 0);
        var max = maxResults ?? limit;
        var page = rest.Take(max + 1).ToList();
        if (page.Count > max)
        {
            page.RemoveAt(max);
            return (page, Encode(page[^1]));
        }
        return (page, null);
    }

    private static string Encode(string lastKey) => Convert.ToBase64String(Encoding.UTF8.GetBytes("p1:" + lastKey));

    private static string? Decode(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return null;
        }
        try
        {
            var s = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            if (s.StartsWith("p1:", StringComparison.Ordinal))
            {
                return s[3..];
            }
        }
        catch (FormatException)
        {
            // answered below
        }
        throw AwsException.InvalidParameter("nextToken: the token is not valid; pass the nextToken of the previous response unchanged.");
    }
}
