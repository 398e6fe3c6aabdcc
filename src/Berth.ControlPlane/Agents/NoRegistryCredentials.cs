using Berth.Core;

namespace Berth.ControlPlane.Agents;

/// <summary>The provider when no registry is hosted: no image needs credentials from the control plane.</summary>
internal sealed class NoRegistryCredentials : IRegistryCredentialProvider
{
    public RegistryCredential? ForImage(string image) => null;
}
