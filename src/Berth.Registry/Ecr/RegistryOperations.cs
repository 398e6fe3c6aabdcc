using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Metadata;
using Berth.Registry.Replication;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>
/// The registry level: DescribeRegistry, Put/Get/DeleteRegistryPolicy, Put/GetRegistryScanningConfiguration,
/// BatchGetRepositoryScanningConfiguration, PutReplicationConfiguration, DescribeImageReplicationStatus. All of it is
/// one settings document per region in the registry's store (<see cref="RegistrySettings"/>), so it survives restarts.
/// </summary>
/// <remarks>
/// The registry policy is stored, not enforced (there are no IAM principals); scanning only marks images as asked
/// for a scan (Berth has no scanner; see <see cref="ScanOperations"/>). Replication rules act: a push they match
/// is copied to each destination region of this registry by <see cref="Replication.ReplicationWorker"/>; a
/// destination in another account's registry is recorded FAILED (Berth holds one registry).
/// </remarks>
internal sealed class RegistryOperations(RegistryService registry, Arns arns) : EcrHandlers(registry, arns)
{
    /// <summary>ECR's limit on distinct destinations across all replication rules.</summary>
    private const int MaxReplicationDestinations = 25;

    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.DescribeRegistry, Json.DescribeRegistryRequest, Json.DescribeRegistryResponse, (_, _) => Task.FromResult(new DescribeRegistryResponse
        {
            RegistryId = RegistryId,
            ReplicationConfiguration = Registry.State.RegistrySettings.Replication ?? new ReplicationConfiguration { Rules = [] },
        }));

        s.Map(EcrOperations.PutRegistryPolicy, Json.PutRegistryPolicyRequest, Json.PutRegistryPolicyResponse, async (r, ct) =>
        {
            PolicyOperations.Validate(r.PolicyText!, "policyText", "registry");
            await Registry.UpdateSettingsAsync(x => x.PolicyText = r.PolicyText, ct).ConfigureAwait(false);
            return new PutRegistryPolicyResponse { RegistryId = RegistryId, PolicyText = r.PolicyText };
        });
        s.Map(EcrOperations.GetRegistryPolicy, Json.GetRegistryPolicyRequest, Json.GetRegistryPolicyResponse, (_, _) => Task.FromResult(new GetRegistryPolicyResponse
        {
            RegistryId = RegistryId,
            PolicyText = Registry.State.RegistrySettings.PolicyText ?? throw PolicyNotFound(),
        }));
        s.Map(EcrOperations.DeleteRegistryPolicy, Json.DeleteRegistryPolicyRequest, Json.DeleteRegistryPolicyResponse, async (_, ct) =>
        {
            string? old = null;
            await Registry.UpdateSettingsAsync(x =>
            {
                old = x.PolicyText ?? throw PolicyNotFound();
                x.PolicyText = null;
            }, ct).ConfigureAwait(false);
            return new DeleteRegistryPolicyResponse { RegistryId = RegistryId, PolicyText = old };
        });

        s.Map(EcrOperations.PutRegistryScanningConfiguration, Json.PutRegistryScanningConfigurationRequest, Json.PutRegistryScanningConfigurationResponse, async (r, ct) =>
        {
            var config = ValidateScanning(r);
            await Registry.UpdateSettingsAsync(x => x.Scanning = config, ct).ConfigureAwait(false);
            return new PutRegistryScanningConfigurationResponse { RegistryScanningConfiguration = ScanningRules.Effective(config) };
        });
        s.Map(EcrOperations.GetRegistryScanningConfiguration, Json.GetRegistryScanningConfigurationRequest, Json.GetRegistryScanningConfigurationResponse, (_, _) => Task.FromResult(new GetRegistryScanningConfigurationResponse
        {
            RegistryId = RegistryId,
            ScanningConfiguration = ScanningRules.Effective(Registry.State.RegistrySettings.Scanning),
        }));
        s.Map(EcrOperations.BatchGetRepositoryScanningConfiguration, Json.BatchGetRepositoryScanningConfigurationRequest, Json.BatchGetRepositoryScanningConfigurationResponse, (r, _) => Task.FromResult(BatchGetScanning(r)));

        s.Map(EcrOperations.PutReplicationConfiguration, Json.PutReplicationConfigurationRequest, Json.PutReplicationConfigurationResponse, async (r, ct) =>
        {
            var config = ValidateReplication(r.ReplicationConfiguration!);
            await Registry.UpdateSettingsAsync(x => x.Replication = config, ct).ConfigureAwait(false);
            return new PutReplicationConfigurationResponse { ReplicationConfiguration = config };
        });
        s.Map(EcrOperations.DescribeImageReplicationStatus, Json.DescribeImageReplicationStatusRequest, Json.DescribeImageReplicationStatusResponse, (r, _) =>
        {
            var image = FindImage(r.RegistryId, r.RepositoryName!, r.ImageId!);
            return Task.FromResult(new DescribeImageReplicationStatusResponse
            {
                RepositoryName = r.RepositoryName,
                ImageId = new ImageIdentifier { ImageDigest = image.Manifest.Digest, ImageTag = r.ImageId!.ImageTag },
                // One entry per destination the rules named when the image was pushed; none for an image no rule matched.
                ReplicationStatuses = (image.Manifest.Replication ?? []).Select(x => new ImageReplicationStatus
                {
                    Region = x.Region,
                    RegistryId = x.RegistryId,
                    Status = x.Status,
                    FailureCode = x.Status == ReplicationRules.InProgress ? null : x.FailureCode,
                }).ToList(),
            });
        });
    }

    private AwsException PolicyNotFound() => new("RegistryPolicyNotFoundException", $"Registry policy does not exist in the registry with id '{RegistryId}'");

    /// <summary>
    /// ECR's rules beyond the model: BASIC scanning has no continuous scans, a frequency appears in at most one
    /// rule, a rule needs at least one filter, and MANUAL is what a repository gets when no rule matches (not a rule).
    /// </summary>
    private static RegistryScanningConfiguration ValidateScanning(PutRegistryScanningConfigurationRequest r)
    {
        var scanType = r.ScanType ?? "BASIC";
        var rules = r.Rules ?? [];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < rules.Count; i++)
        {
            var frequency = rules[i].ScanFrequency!;
            if (frequency == ScanningRules.Manual)
            {
                throw EcrErrors.Invalid($"rules.{i + 1}.member.scanFrequency", "a registry scanning rule's scanFrequency must be SCAN_ON_PUSH or CONTINUOUS_SCAN; repositories no rule matches are scanned manually");
            }
            if (scanType == "BASIC" && frequency == ScanningRules.Continuous)
            {
                throw EcrErrors.Invalid($"rules.{i + 1}.member.scanFrequency", "CONTINUOUS_SCAN needs scanType ENHANCED; BASIC scanning supports SCAN_ON_PUSH only");
            }
            if (!seen.Add(frequency))
            {
                throw EcrErrors.Invalid($"rules.{i + 1}.member.scanFrequency", $"more than one rule has scanFrequency {frequency}; put all its repository filters in one rule");
            }
            if (rules[i].RepositoryFilters is not { Count: > 0 })
            {
                throw EcrErrors.Invalid($"rules.{i + 1}.member.repositoryFilters", "a scanning rule needs at least one repository filter ('*' for every repository)");
            }
        }
        return ScanningRules.Effective(new RegistryScanningConfiguration { ScanType = scanType, Rules = rules });
    }

    private BatchGetRepositoryScanningConfigurationResponse BatchGetScanning(BatchGetRepositoryScanningConfigurationRequest r)
    {
        var registryConfig = Registry.State.RegistrySettings.Scanning;
        var configs = new List<RepositoryScanningConfiguration>();
        var failures = new List<RepositoryScanningConfigurationFailure>();
        foreach (var name in r.RepositoryNames!.Distinct(StringComparer.Ordinal))
        {
            if (Registry.FindRepository(name) is not { } repo)
            {
                failures.Add(new RepositoryScanningConfigurationFailure
                {
                    RepositoryName = name,
                    FailureCode = "REPOSITORY_NOT_FOUND",
                    FailureReason = $"The repository with name '{name}' does not exist in the registry with id '{RegistryId}'",
                });
                continue;
            }
            var (frequency, filters) = ScanningRules.For(repo.Repository, registryConfig);
            configs.Add(new RepositoryScanningConfiguration
            {
                RepositoryArn = repo.Repository.RepositoryArn,
                RepositoryName = name,
                ScanOnPush = frequency != ScanningRules.Manual,
                ScanFrequency = frequency,
                AppliedScanFilters = filters,
            });
        }
        return new BatchGetRepositoryScanningConfigurationResponse { ScanningConfigurations = configs, Failures = failures };
    }

    /// <summary>
    /// ECR's limits and rules: at most 10 rules (the model), 25 distinct destinations in all, and no
    /// destination that is this registry in its own region (an image cannot be replicated onto itself).
    /// </summary>
    private ReplicationConfiguration ValidateReplication(ReplicationConfiguration config)
    {
        var rules = config.Rules ?? [];
        var destinations = new HashSet<(string, string)>();
        for (var i = 0; i < rules.Count; i++)
        {
            var rule = rules[i];
            if (rule.Destinations is not { Count: > 0 })
            {
                throw EcrErrors.Invalid($"replicationConfiguration.rules.{i + 1}.member.destinations", "a replication rule needs at least one destination");
            }
            foreach (var d in rule.Destinations)
            {
                if (d.Region == Arns.Identity.Region && d.RegistryId == RegistryId)
                {
                    throw EcrErrors.Invalid($"replicationConfiguration.rules.{i + 1}.member.destinations", $"the destination region '{d.Region}' and registry '{d.RegistryId}' are this registry's own; replication needs another region or registry");
                }
                destinations.Add((d.Region!, d.RegistryId!));
            }
            foreach (var f in rule.RepositoryFilters ?? [])
            {
                if (f.FilterType != "PREFIX_MATCH")
                {
                    throw EcrErrors.Invalid($"replicationConfiguration.rules.{i + 1}.member.repositoryFilters", $"filterType must be PREFIX_MATCH, not '{f.FilterType}'");
                }
            }
        }
        if (destinations.Count > MaxReplicationDestinations)
        {
            throw EcrErrors.Invalid("replicationConfiguration.rules", $"a replication configuration may name at most {MaxReplicationDestinations} distinct destinations; this one names {destinations.Count}");
        }
        return new ReplicationConfiguration
        {
            Rules = rules.Select(r => new ReplicationRule
            {
                Destinations = r.Destinations!.Select(d => new ReplicationDestination { Region = d.Region, RegistryId = d.RegistryId }).ToList(),
                RepositoryFilters = r.RepositoryFilters?.Select(f => new RepositoryFilter { Filter = f.Filter, FilterType = f.FilterType }).ToList(),
            }).ToList(),
        };
    }
}
