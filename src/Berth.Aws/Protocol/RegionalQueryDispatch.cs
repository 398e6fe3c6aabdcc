using Berth.Aws.Auth;

namespace Berth.Aws.Protocol;

/// <summary>
/// Makes a Query service regional, as <see cref="RegionalDispatch"/> does a JSON one: the Query front door serves
/// each request with the <see cref="AwsQueryService"/> of the request's region (its SigV4 credential scope's, or
/// <see cref="DefaultRegion"/> for an unsigned request). ARNs of another region are not refused up front: ELBv2
/// answers them as resources it does not have (LoadBalancerNotFound, TargetGroupNotFound...), as its regions do.
/// </summary>
public sealed class RegionalQueryDispatch(string defaultRegion, Func<string, CancellationToken, ValueTask<AwsQueryService>> resolve)
{
    public string DefaultRegion { get; } = defaultRegion;

    /// <summary>The region a request of <paramref name="caller"/> is served in; InvalidSignature for a scope region that cannot be one.</summary>
    public string RegionOf(AwsCaller caller)
    {
        var region = caller.Region ?? DefaultRegion;
        if (!CredentialScope.IsValidRegion(region))
        {
            throw AwsAuthException.InvalidSignature($"Credential should be scoped to a valid region, not '{region}'. ");
        }
        return region;
    }

    public ValueTask<AwsQueryService> ResolveAsync(string region, CancellationToken ct) => resolve(region, ct);
}
