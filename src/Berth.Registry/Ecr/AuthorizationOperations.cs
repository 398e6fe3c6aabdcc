using Berth.Aws.Auth;
using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Registry.Auth;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>
/// GetAuthorizationToken: a 12-hour registry password, as base64 "AWS:password", for docker login. The token is good
/// for every region (one registry host); the proxyEndpoint of a region other than the published one carries its path
/// prefix (http://HOST/us-west-2), so HOST/PATH + "/" + NAME reaches that region and docker login (which keeps only the
/// host) still works with it.
/// </summary>
internal sealed class AuthorizationOperations(RegistryTokens tokens, RegistryService registry)
{
    public void Map(AwsJsonService s)
        => s.Map(EcrOperations.GetAuthorizationToken, Json.GetAuthorizationTokenRequest, Json.GetAuthorizationTokenResponse, (_, _) =>
        {
            // The token carries who asked and what they may do: a read-only key's token pulls but cannot push.
            var caller = AwsCaller.Current ?? AwsCaller.Anonymous;
            var (password, expires) = tokens.Issue(caller.Permissions, caller.Name);
            return Task.FromResult(new GetAuthorizationTokenResponse
            {
                AuthorizationData =
                [
                    new AuthorizationData { AuthorizationToken = RegistryTokens.AuthorizationToken(password), ExpiresAt = expires, ProxyEndpoint = registry.ProxyEndpoint },
                ],
            });
        });
}
