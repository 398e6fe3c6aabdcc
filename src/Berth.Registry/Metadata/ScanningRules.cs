using Berth.Aws.Ecr;

namespace Berth.Registry.Metadata;

/// <summary>
/// How a repository is scanned under the registry's scanning configuration, as ECR decides it: once the
/// registry has rules, they alone decide (a repository's own scanOnPush is overridden); a repository no
/// rule matches is scanned manually. Without rules, the repository's scanOnPush decides.
/// Berth has no scanner, so this only decides which images are marked as asked for a scan (and answer
/// UNSUPPORTED_IMAGE), never whether findings exist.
/// </summary>
public static class ScanningRules
{
    public const string Manual = "MANUAL";
    public const string OnPush = "SCAN_ON_PUSH";
    public const string Continuous = "CONTINUOUS_SCAN";

    /// <summary>The registry's configuration, or ECR's default (BASIC, no rules).</summary>
    public static RegistryScanningConfiguration Effective(RegistryScanningConfiguration? stored) => new()
    {
        ScanType = stored?.ScanType ?? "BASIC",
        Rules = stored?.Rules?.Select(r => new RegistryScanningRule
        {
            ScanFrequency = r.ScanFrequency,
            RepositoryFilters = r.RepositoryFilters?.Select(f => new ScanningRepositoryFilter { Filter = f.Filter, FilterType = f.FilterType }).ToList() ?? [],
        }).ToList() ?? [],
    };

    /// <summary>The scan frequency and the filters that chose it, for one repository.</summary>
    public static (string Frequency, List<ScanningRepositoryFilter> Filters) For(Repository repository, RegistryScanningConfiguration? registry)
    {
        var rules = registry?.Rules ?? [];
        if (rules.Count == 0)
        {
            return (repository.ImageScanningConfiguration?.ScanOnPush == true ? OnPush : Manual, []);
        }
        // A continuous rule wins over a scan-on-push rule when both match (continuous scanning also scans on push).
        foreach (var frequency in new[] { Continuous, OnPush })
        {
            foreach (var rule in rules.Where(r => r.ScanFrequency == frequency))
            {
                var matched = (rule.RepositoryFilters ?? []).Where(f => RegistryService.Wildcard(f.Filter, repository.RepositoryName ?? "")).ToList();
                if (matched.Count > 0)
                {
                    return (frequency, matched.Select(f => new ScanningRepositoryFilter { Filter = f.Filter, FilterType = f.FilterType }).ToList());
                }
            }
        }
        return (Manual, []);
    }

    /// <summary>Whether a push into the repository counts as asking for a scan.</summary>
    public static bool ScansOnPush(Repository repository, RegistryScanningConfiguration? registry)
        => For(repository, registry).Frequency != Manual;
}
