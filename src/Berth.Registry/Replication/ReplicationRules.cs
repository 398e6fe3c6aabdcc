using Berth.Aws.Ecr;
using Berth.Registry.Metadata;

namespace Berth.Registry.Replication;

/// <summary>Which destinations a push to a repository is replicated to, under ECR's rules.</summary>
public static class ReplicationRules
{
    public const string InProgress = "IN_PROGRESS";
    public const string Complete = "COMPLETE";
    public const string Failed = "FAILED";

    /// <summary>The failure code of a destination in another account's registry: Berth holds one registry.</summary>
    public const string CrossAccountUnsupported = "CROSS_ACCOUNT_REPLICATION_NOT_SUPPORTED";

    /// <summary>
    /// The destinations of every rule matching <paramref name="repository"/> (a rule without filters matches every
    /// repository; PREFIX_MATCH compares the start of the name), each once, in rule order. A destination in another
    /// account starts FAILED (<see cref="CrossAccountUnsupported"/>); the others IN_PROGRESS.
    /// </summary>
    public static List<StoredReplication> Destinations(ReplicationConfiguration? config, string repository, string accountId)
    {
        var result = new List<StoredReplication>();
        foreach (var rule in config?.Rules ?? [])
        {
            var filters = rule.RepositoryFilters ?? [];
            if (filters.Count > 0 && !filters.Any(f => f.FilterType == "PREFIX_MATCH" && repository.StartsWith(f.Filter ?? "", StringComparison.Ordinal)))
            {
                continue;
            }
            foreach (var d in rule.Destinations ?? [])
            {
                if (d.Region is null || d.RegistryId is null || result.Any(r => r.Region == d.Region && r.RegistryId == d.RegistryId))
                {
                    continue;
                }
                var sameAccount = d.RegistryId == accountId;
                result.Add(new StoredReplication
                {
                    Region = d.Region,
                    RegistryId = d.RegistryId,
                    Status = sameAccount ? InProgress : Failed,
                    FailureCode = sameAccount ? null : CrossAccountUnsupported,
                });
            }
        }
        return result;
    }
}

/// <summary>One pushed image to replicate: its region, repository and digest.</summary>
public readonly record struct ReplicationKey(string Region, string Repository, string Digest);
