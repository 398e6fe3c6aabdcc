using Berth.Core;
using Berth.Registry.Hosting;

namespace Berth.Registry.Auth;

/// <summary>
/// Gives agents a fresh registry token for images in Berth's own registry when authentication is on
/// (the agent hands it to the Docker engine's pull, as ECS's agent does with an ECR token).
/// </summary>
internal sealed class RegistryCredentialProvider(RegistryOptions options, RegistryTokens tokens) : IRegistryCredentialProvider
{
    public RegistryCredential? ForImage(string image)
    {
        if (!options.RequireAuth || ImageReference.RegistryHost(image) is not { } host || !options.IsOwnHost(host))
        {
            return null;
        }
        // Agents only pull.
        var (password, _) = tokens.Issue("read-only", "berth-agent");
        return new RegistryCredential(host, RegistryTokens.UserName, password);
    }
}
