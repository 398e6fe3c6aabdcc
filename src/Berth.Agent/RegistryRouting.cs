using Berth.Core;
using Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>Where the agent pulls a task's image from, and with which credentials.</summary>
internal static class RegistryRouting
{
    /// <summary>
    /// The reference to pull and create the container from. Images in Berth's registry are named
    /// <c>localhost:PORT/...</c> or <c>127.0.0.1:PORT/...</c>; on another host that names the wrong machine, so
    /// when the agent's server is not a loopback address and PORT is the server's port, the registry part
    /// becomes the server's <c>HOST:PORT</c>. Every other image is returned unchanged.
    /// </summary>
    public static string PullReference(string image, Uri serverUrl)
    {
        if (serverUrl.IsLoopback || ImageReference.RegistryHost(image) is not { } registry)
        {
            return image;
        }
        var colon = registry.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(registry.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            || port != serverUrl.Port)
        {
            return image;
        }
        var host = registry[..colon];
        if (!host.Equals("localhost", StringComparison.OrdinalIgnoreCase) && host != "127.0.0.1")
        {
            return image;
        }
        // Uri.Host keeps the brackets of an IPv6 literal, as an image reference needs them.
        return $"{serverUrl.Host}:{serverUrl.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}{image[registry.Length..]}";
    }

    /// <summary>
    /// The credentials for <paramref name="image"/> (as the task definition names it): the entry issued for
    /// exactly that image, else one for the image's registry. Loopback names of the same port count as one
    /// registry (<c>localhost:4566</c> and <c>127.0.0.1:4566</c> are both Berth's). Null when none fits.
    /// </summary>
    public static RegistryAuth? FindAuth(IEnumerable<RegistryAuth> auths, string image)
    {
        var list = auths as IReadOnlyCollection<RegistryAuth> ?? auths.ToList();
        if (list.FirstOrDefault(a => a.Image == image) is { } exact)
        {
            return exact;
        }
        if (ImageReference.RegistryHost(image) is not { } registry)
        {
            return null;
        }
        return list.FirstOrDefault(a => SameRegistry(a.ServerAddress, registry));
    }

    /// <summary>True when two registry addresses name the same registry (scheme, path and case ignored).</summary>
    public static bool SameRegistry(string a, string b)
    {
        var x = Normalize(a);
        var y = Normalize(b);
        if (x.Length == 0 || y.Length == 0)
        {
            return false;
        }
        if (x == y)
        {
            return true;
        }
        var (hx, px) = SplitPort(x);
        var (hy, py) = SplitPort(y);
        return px is not null && px == py && IsLoopbackName(hx) && IsLoopbackName(hy);
    }

    private static string Normalize(string address)
    {
        var s = address.Trim();
        var scheme = s.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            s = s[(scheme + 3)..];
        }
        var slash = s.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            s = s[..slash];
        }
        return s.ToLowerInvariant();
    }

    private static (string Host, string? Port) SplitPort(string hostPort)
    {
        var colon = hostPort.LastIndexOf(':');
        // "[::1]:4566" splits at the last colon; a bare "[::1]" has its last colon inside the brackets.
        return colon > 0 && colon > hostPort.LastIndexOf(']') ? (hostPort[..colon], hostPort[(colon + 1)..]) : (hostPort, null);
    }

    private static bool IsLoopbackName(string host)
        => host == "localhost" || System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip);
}
