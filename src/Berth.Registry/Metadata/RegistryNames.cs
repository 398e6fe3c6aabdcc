using System.Text.RegularExpressions;

namespace Berth.Registry.Metadata;

/// <summary>Repository names and tags as ECR and the distribution spec accept them.</summary>
public static partial class RegistryNames
{
    /// <summary>
    /// ECR's repositoryName (botocore's pattern, the same as the distribution spec's): 2–256 characters of
    /// lowercase path components joined by '/', each of letters and digits separated by '.', '_', '__' or dashes.
    /// </summary>
    public static bool IsValidRepository(string? name)
        => name is { Length: >= 2 and <= 256 } && RepositoryPattern().IsMatch(name);

    public static bool IsValidTag(string? tag) => tag is not null && TagPattern().IsMatch(tag);

    [GeneratedRegex(@"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$", RegexOptions.CultureInvariant)]
    private static partial Regex RepositoryPattern();

    [GeneratedRegex(@"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$", RegexOptions.CultureInvariant)]
    private static partial Regex TagPattern();
}
