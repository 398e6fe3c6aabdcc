namespace Berth.Core;

/// <summary>
/// Basic credentials the Docker engine presents to one registry when it pulls a task's image; for
/// Berth's own registry ECR style: user name "AWS", password a registry token.
/// </summary>
/// <param name="ServerAddress">The registry as the image names it, <c>host[:port]</c> (for example
/// <c>localhost:4566</c>); a scheme or trailing slash is tolerated.</param>
public sealed record RegistryCredential(string ServerAddress, string Username, string Password)
{
    // Records print every property; a password must not end up in a log line.
    public override string ToString() => $"RegistryCredential {{ ServerAddress = {ServerAddress}, Username = {Username} }}";
}

/// <summary>
/// Tells the control plane which credentials an agent needs to pull an image. The control plane asks
/// for every container image of a task each time it sends the task to an agent, so a provider may hand
/// out short-lived tokens. The default provider knows none; Berth's registry registers the real one.
/// </summary>
public interface IRegistryCredentialProvider
{
    /// <summary>
    /// Credentials for pulling <paramref name="image"/> exactly as the task definition names it
    /// (for example <c>localhost:4566/app:1</c>), or null when the image needs none or is not known.
    /// </summary>
    RegistryCredential? ForImage(string image);
}

/// <summary>Docker's reading of an image reference's registry part.</summary>
public static class ImageReference
{
    /// <summary>
    /// Splits <c>repository[:tag][@digest]</c>; a colon before the last '/' belongs to the registry's port, not a tag.
    /// </summary>
    public static (string Repository, string? Tag, string? Digest) Parse(string image)
    {
        string? digest = null;
        var at = image.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            digest = image[(at + 1)..];
            image = image[..at];
        }
        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? (image[..colon], image[(colon + 1)..], digest) : (image, null, digest);
    }

    /// <summary>
    /// The registry <c>host[:port]</c> of <paramref name="image"/>, or null for Docker Hub. As Docker
    /// reads it: the part before the first '/' names a registry when it contains '.' or ':', is
    /// <c>localhost</c>, or has an upper-case letter.
    /// </summary>
    public static string? RegistryHost(string image)
    {
        var slash = image.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return null;
        }
        var first = image[..slash];
        return first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal)
            || first == "localhost" || first.Any(char.IsAsciiLetterUpper) ? first : null;
    }
}
