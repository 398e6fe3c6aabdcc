using System.Text.RegularExpressions;

namespace Berth.Registry.Metadata;

/// <summary>
/// How /v2/ names reach regions. A name is a repository of the published region (the server's <c>--region</c>),
/// unless its first component is an AWS region name (<c>us-west-2/web</c>): then it is the repository
/// (<c>web</c>) of that region. Only AWS's own shape counts (a partition prefix such as us, eu, ap, us-gov, a
/// compass direction or "central", a number), so an ordinary namespace like <c>team-app-1/web</c> stays a
/// repository name of the published region. Docker needs no configuration for either (same host, ordinary path components).
/// </summary>
public static partial class RegistryRoutes
{
    /// <summary>True when a name's first component selects a region: an AWS region name (us-west-2, eu-central-1, us-gov-east-1).</summary>
    public static bool IsRegionComponent(ReadOnlySpan<char> component) => component.Length is > 0 and <= 32 && AwsRegionShape().IsMatch(component);

    [GeneratedRegex("^(af|ap|ca|cn|eu|il|me|mx|sa|us)(-gov|-iso|-isob|-isof)?-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[0-9]{1,2}$", RegexOptions.CultureInvariant)]
    private static partial Regex AwsRegionShape();

    /// <summary>
    /// The /v2/ path of repository <paramref name="name"/> of <paramref name="region"/>: the name itself in the
    /// published region, else REGION/NAME. A published-region repository whose own first component looks like a
    /// region is written with the region too (us-east-1/us-west-2/x), so every repository has a path that reaches it.
    /// </summary>
    public static string PathOf(string region, string publishedRegion, string name)
    {
        var slash = name.IndexOf('/', StringComparison.Ordinal);
        var ambiguous = slash > 0 && IsRegionComponent(name.AsSpan(0, slash));
        return region == publishedRegion && !ambiguous ? name : region + "/" + name;
    }

    /// <summary>
    /// Splits the part of a /v2/ path after "/v2/" into the region it names (null: the published region) and the
    /// rest as that region sees it ("us-west-2/web/manifests/1" → us-west-2, "web/manifests/1").
    /// </summary>
    public static (string? Region, string Remainder) Split(string rest)
    {
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && slash < rest.Length - 1 && IsRegionComponent(rest.AsSpan(0, slash)))
        {
            return (rest[..slash], rest[(slash + 1)..]);
        }
        return (null, rest);
    }
}
