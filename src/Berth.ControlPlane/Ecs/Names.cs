using System.Text.RegularExpressions;

namespace Berth.ControlPlane.Ecs;

/// <summary>ECS's naming rules, in one place.</summary>
internal static partial class Names
{
    /// <summary>Cluster names: up to 255 letters, numbers, hyphens and underscores.</summary>
    public static bool IsValidClusterName(string name) => ClusterName().IsMatch(name);

    /// <summary>Task definition families, container names: up to 255 letters, numbers, hyphens and underscores.</summary>
    public static bool IsValidFamily(string name) => ClusterName().IsMatch(name);

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,255}$")]
    private static partial Regex ClusterName();
}
