using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Berth.Core;

namespace Berth.LoadBalancer.Api;

/// <summary>Builds and reads ELBv2 ARNs: <c>arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID</c> and friends.</summary>
public sealed partial class Elbv2Arns(BerthIdentity identity)
{
    public BerthIdentity Identity { get; } = identity;

    private string Prefix => $"arn:aws:elasticloadbalancing:{Identity.Region}:{Identity.AccountId}:";

    public static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    public string LoadBalancer(string name, string id) => $"{Prefix}loadbalancer/app/{name}/{id}";
    public string TargetGroup(string name, string id) => $"{Prefix}targetgroup/{name}/{id}";
    public string Listener(string lbName, string lbId, string id) => $"{Prefix}listener/app/{lbName}/{lbId}/{id}";
    public string Rule(string lbName, string lbId, string listenerId, string id) => $"{Prefix}listener-rule/app/{lbName}/{lbId}/{listenerId}/{id}";

    /// <summary>The id (last segment) of an ARN of <paramref name="kind"/> in this account and region, or null.</summary>
    public string? IdOf(string arn, string kind)
    {
        if (!arn.StartsWith(Prefix + kind + "/", StringComparison.Ordinal))
        {
            return null;
        }
        var id = arn[(arn.LastIndexOf('/') + 1)..];
        return HexId().IsMatch(id) ? id : null;
    }

    /// <summary>The default rule of a listener is not stored; its id is derived from the listener's.</summary>
    public static string DefaultRuleId(string listenerId) => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.ASCII.GetBytes("default:" + listenerId)))[..16];

    [GeneratedRegex("^[0-9a-f]{16}$")]
    private static partial Regex HexId();
}
