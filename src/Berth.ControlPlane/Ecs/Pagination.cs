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

    /// <summary>
    /// A page of an already sorted index set: finds the token's position by binary search and walks on
    /// from there, so the cost is the page (plus what <paramref name="keep"/> skips), not the set.
    /// </summary>
    public static (List<string> Page, string? NextToken) PageSorted(System.Collections.Immutable.ImmutableSortedSet<string> sorted, Func<string, bool> keep, int? maxResults, string? nextToken, int limit = 100,
        string? prefix = null, bool descending = false)
    {
        if (maxResults is { } m && (m < 1 || m > limit))
        {
            throw AwsException.InvalidParameter($"maxResults: must be between 1 and {limit}.");
        }
        var after = Decode(nextToken);
        int Position(string key) => sorted.IndexOf(key) is var at && at >= 0 ? at : ~at;
        // Ascending: the first index past the token (or at the prefix); descending: the last one before them.
        int start;
        if (!descending)
        {
            start = after is null ? 0 : Position(after) + (sorted.Contains(after) ? 1 : 0);
            if (prefix is not null)
            {
                start = Math.Max(start, Position(prefix));
            }
        }
        else
        {
            start = after is null ? sorted.Count - 1 : Position(after) - 1;
            if (prefix is not null)
            {
                start = Math.Min(start, Position(prefix + "\uffff") - 1);
            }
        }
        var max = maxResults ?? limit;
        var page = new List<string>(Math.Min(max, 100));
        for (var i = start; descending ? i >= 0 : i < sorted.Count; i += descending ? -1 : 1)
        {
            var id = sorted[i];
            if (prefix is not null && !id.StartsWith(prefix, StringComparison.Ordinal))
            {
                if (descending ? string.CompareOrdinal(id, prefix) < 0 : string.CompareOrdinal(id, prefix) > 0)
                {
                    break; // walked out of the prefix's range
                }
                continue;
            }
            if (!keep(id))
            {
                continue;
            }
            if (page.Count == max)
            {
                return (page, Encode(page[^1]));
            }
            page.Add(id);
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
