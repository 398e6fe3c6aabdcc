using System.Text.Json;
using Berth.Aws.Auth;

namespace Berth.Aws.Protocol;

/// <summary>
/// Makes a JSON service regional: the front door serves each request with the <see cref="AwsJsonService"/> of
/// the request's region (its SigV4 credential scope's, or <see cref="DefaultRegion"/> for an unsigned request),
/// which <see cref="ResolveAsync"/> returns (creating that region's namespace on first use).
/// </summary>
/// <param name="defaultRegion">The server's configured region (<c>--region</c>).</param>
/// <param name="resolve">The service holding a region's resources.</param>
/// <param name="arnService">
/// The service name in this service's ARNs (<c>ecs</c>): a top-level request member holding such an ARN of
/// another region is refused as the service does (InvalidParameterException, "Invalid Region in ARN").
/// </param>
public sealed class RegionalDispatch(string defaultRegion, Func<string, CancellationToken, ValueTask<AwsJsonService>> resolve, string? arnService = null)
{
    private readonly string? _arnPrefix = arnService is null ? null : $"arn:aws:{arnService}:";

    public string DefaultRegion { get; } = defaultRegion;

    /// <summary>The region a request of <paramref name="caller"/> is served in; InvalidSignatureException for a scope region that cannot be one.</summary>
    public string RegionOf(AwsCaller caller)
    {
        var region = caller.Region ?? DefaultRegion;
        if (!CredentialScope.IsValidRegion(region))
        {
            throw AwsAuthException.InvalidSignature($"Credential should be scoped to a valid region, not '{region}'. ");
        }
        return region;
    }

    public ValueTask<AwsJsonService> ResolveAsync(string region, CancellationToken ct) => resolve(region, ct);

    /// <summary>
    /// Refuses a request naming a resource of another region by ARN. Only top-level members (strings and lists of
    /// strings: cluster, services, taskDefinition, resourceArn...) are looked at, so an ARN inside a container's
    /// environment is never taken for a reference.
    /// </summary>
    public void CheckArns(JsonElement body, string region)
    {
        if (_arnPrefix is null || body.ValueKind != JsonValueKind.Object)
        {
            return;
        }
        foreach (var member in body.EnumerateObject())
        {
            switch (member.Value.ValueKind)
            {
                case JsonValueKind.String:
                    Check(member.Value, region);
                    break;
                case JsonValueKind.Array:
                    foreach (var item in member.Value.EnumerateArray())
                    {
                        if (item.ValueKind == JsonValueKind.String)
                        {
                            Check(item, region);
                        }
                    }
                    break;
                default:
                    break;
            }
        }
    }

    private void Check(JsonElement element, string region)
    {
        string value;
        try
        {
            value = element.GetString()!;
        }
        catch (InvalidOperationException)
        {
            // Not text (invalid UTF-8, a lone surrogate): no ARN; reading the request answers SerializationException.
            return;
        }
        if (!value.StartsWith(_arnPrefix!, StringComparison.Ordinal))
        {
            return;
        }
        var rest = value.AsSpan(_arnPrefix!.Length);
        var colon = rest.IndexOf(':');
        if (colon >= 0 && !rest[..colon].SequenceEqual(region))
        {
            throw AwsException.InvalidParameter("Invalid Region in ARN");
        }
    }
}
