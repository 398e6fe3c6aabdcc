using System.Globalization;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>A target group's success codes: "200", "200,202" or "200-299" (codes 200 to 499, as ALB allows).</summary>
public sealed class HttpCodeMatcher
{
    private readonly (int From, int To)[] _ranges;

    private HttpCodeMatcher((int, int)[] ranges) => _ranges = ranges;

    public bool Matches(int status) => _ranges.Any(r => status >= r.From && status <= r.To);

    public static HttpCodeMatcher? TryParse(string text)
    {
        var ranges = new List<(int, int)>();
        foreach (var part in text.Split(','))
        {
            var dash = part.IndexOf('-', StringComparison.Ordinal);
            var from = dash < 0 ? part : part[..dash];
            var to = dash < 0 ? part : part[(dash + 1)..];
            if (!int.TryParse(from, NumberStyles.None, CultureInfo.InvariantCulture, out var a) || !int.TryParse(to, NumberStyles.None, CultureInfo.InvariantCulture, out var b)
                || a < 200 || b > 499 || a > b)
            {
                return null;
            }
            ranges.Add((a, b));
        }
        return ranges.Count == 0 ? null : new HttpCodeMatcher([.. ranges]);
    }
}
