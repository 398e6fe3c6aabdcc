namespace Berth.Core;

/// <summary>The account and region every ARN Berth issues is built from.</summary>
public sealed record BerthIdentity(string AccountId = BerthIdentity.DefaultAccountId, string Region = BerthIdentity.DefaultRegion)
{
    public const string DefaultAccountId = "000000000000";
    public const string DefaultRegion = "us-east-1";
}
