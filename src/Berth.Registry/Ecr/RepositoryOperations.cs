using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Metadata;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>CreateRepository, DescribeRepositories, DeleteRepository, PutImageTagMutability, PutImageScanningConfiguration.</summary>
internal sealed class RepositoryOperations(RegistryService registry, Arns arns) : EcrHandlers(registry, arns)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.CreateRepository, Json.CreateRepositoryRequest, Json.CreateRepositoryResponse, CreateAsync);
        s.Map(EcrOperations.DescribeRepositories, Json.DescribeRepositoriesRequest, Json.DescribeRepositoriesResponse, (r, _) => Task.FromResult(Describe(r)));
        s.Map(EcrOperations.DeleteRepository, Json.DeleteRepositoryRequest, Json.DeleteRepositoryResponse, DeleteAsync);
        s.Map(EcrOperations.PutImageTagMutability, Json.PutImageTagMutabilityRequest, Json.PutImageTagMutabilityResponse, PutTagMutabilityAsync);
        s.Map(EcrOperations.PutImageScanningConfiguration, Json.PutImageScanningConfigurationRequest, Json.PutImageScanningConfigurationResponse, PutScanningAsync);
    }

    private async Task<CreateRepositoryResponse> CreateAsync(CreateRepositoryRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        if (req.RegistryId is { } other && other != RegistryId)
        {
            throw EcrErrors.Invalid("registryId", $"this registry's id is '{RegistryId}'; repositories cannot be created in registry '{other}'");
        }
        if (!RegistryNames.IsValidRepository(name))
        {
            throw EcrErrors.From(RegistryException.NameInvalid(name), name, RegistryId);
        }
        var (mutability, filters) = TagMutability(req.ImageTagMutability, req.ImageTagMutabilityExclusionFilters);
        var encryption = Encryption(req.EncryptionConfiguration);
        EcrTags.Validate(req.Tags);
        var tags = EcrTags.Merge(null, req.Tags ?? []);

        var repository = Registry.NewRepository(name, mutability);
        repository.ImageTagMutabilityExclusionFilters = filters;
        repository.ImageScanningConfiguration = new ImageScanningConfiguration { ScanOnPush = req.ImageScanningConfiguration?.ScanOnPush ?? false };
        repository.EncryptionConfiguration = encryption;
        var stored = new StoredRepository { Repository = repository, Tags = tags.Count > 0 ? tags : null };
        if (!await Registry.CreateRepositoryAsync(stored, ct).ConfigureAwait(false))
        {
            throw new AwsException("RepositoryAlreadyExistsException", $"The repository with name '{name}' already exists in the registry with id '{RegistryId}'");
        }
        return new CreateRepositoryResponse { Repository = repository };
    }

    private DescribeRepositoriesResponse Describe(DescribeRepositoriesRequest req)
    {
        if (req.RepositoryNames is { Count: > 0 } names)
        {
            if (req.MaxResults is not null || req.NextToken is not null)
            {
                throw EcrErrors.Invalid("maxResults", "maxResults and nextToken cannot be used together with repositoryNames");
            }
            return new DescribeRepositoriesResponse
            {
                Repositories = names.Distinct(StringComparer.Ordinal).Select(n => Repository(req.RegistryId, n).Repository).ToList(),
            };
        }
        if (req.RegistryId is { } other && other != RegistryId)
        {
            return new DescribeRepositoriesResponse { Repositories = [] };
        }
        var (page, next) = EcrPaging.Page(Registry.State.Repositories.All.Select(r => r.Value.Repository), r => r.RepositoryName!, req.MaxResults, req.NextToken);
        return new DescribeRepositoriesResponse { Repositories = page, NextToken = next };
    }

    private async Task<DeleteRepositoryResponse> DeleteAsync(DeleteRepositoryRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        try
        {
            // ECR's wording exactly (scripts match on it); force is the way out.
            var deleted = await Registry.DeleteRepositoryAsync(name, req.Force ?? false, (_, _) => new AwsException("RepositoryNotEmptyException",
                $"The repository with name '{name}' in registry with id '{RegistryId}' cannot be deleted because it still contains images"), ct).ConfigureAwait(false);
            return new DeleteRepositoryResponse { Repository = deleted.Repository };
        }
        catch (RegistryException e)
        {
            throw EcrErrors.From(e, name, RegistryId);
        }
    }

    private async Task<PutImageTagMutabilityResponse> PutTagMutabilityAsync(PutImageTagMutabilityRequest req, CancellationToken ct)
    {
        var (mutability, filters) = TagMutability(req.ImageTagMutability, req.ImageTagMutabilityExclusionFilters);
        var updated = await UpdateAsync(req.RegistryId, req.RepositoryName!, r =>
        {
            r.Repository.ImageTagMutability = mutability;
            r.Repository.ImageTagMutabilityExclusionFilters = filters;
        }, ct).ConfigureAwait(false);
        return new PutImageTagMutabilityResponse
        {
            RegistryId = RegistryId,
            RepositoryName = req.RepositoryName,
            ImageTagMutability = updated.Repository.ImageTagMutability,
            ImageTagMutabilityExclusionFilters = updated.Repository.ImageTagMutabilityExclusionFilters,
        };
    }

    private async Task<PutImageScanningConfigurationResponse> PutScanningAsync(PutImageScanningConfigurationRequest req, CancellationToken ct)
    {
        var config = new ImageScanningConfiguration { ScanOnPush = req.ImageScanningConfiguration!.ScanOnPush ?? false };
        await UpdateAsync(req.RegistryId, req.RepositoryName!, r => r.Repository.ImageScanningConfiguration = config, ct).ConfigureAwait(false);
        return new PutImageScanningConfigurationResponse { RegistryId = RegistryId, RepositoryName = req.RepositoryName, ImageScanningConfiguration = config };
    }

    /// <summary>Tag mutability with its exclusion filters: required with the *_WITH_EXCLUSION settings, refused otherwise.</summary>
    private static (string Mutability, List<ImageTagMutabilityExclusionFilter>? Filters) TagMutability(string? mutability, List<ImageTagMutabilityExclusionFilter>? filters)
    {
        var value = mutability ?? ImageTagMutabilityValues.MUTABLE;
        var withExclusion = value is ImageTagMutabilityValues.IMMUTABLE_WITH_EXCLUSION or ImageTagMutabilityValues.MUTABLE_WITH_EXCLUSION;
        if (withExclusion && filters is not { Count: > 0 })
        {
            throw EcrErrors.Invalid("imageTagMutabilityExclusionFilters", $"at least one exclusion filter is required with imageTagMutability {value}");
        }
        if (!withExclusion && filters is { Count: > 0 })
        {
            throw EcrErrors.Invalid("imageTagMutabilityExclusionFilters", $"exclusion filters are only allowed with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not {value}");
        }
        return (value, withExclusion ? filters!.Select(f => new ImageTagMutabilityExclusionFilter { FilterType = f.FilterType, Filter = f.Filter }).ToList() : null);
    }

    /// <summary>
    /// The encryption setting stored as given (Berth does not encrypt blobs itself); AES256 is the default and takes
    /// no key. KMS or KMS_DSSE without a key gets the registry's "AWS managed key" ARN, as ECR fills in aws/ecr's key.
    /// </summary>
    private EncryptionConfiguration Encryption(EncryptionConfiguration? config)
    {
        if (config is null)
        {
            return new EncryptionConfiguration { EncryptionType = EncryptionTypeValues.AES256 };
        }
        if (config.EncryptionType == EncryptionTypeValues.AES256 && config.KmsKey is not null)
        {
            throw EcrErrors.Invalid("encryptionConfiguration.kmsKey", "a KMS key can only be given with encryptionType KMS or KMS_DSSE");
        }
        return new EncryptionConfiguration
        {
            EncryptionType = config.EncryptionType,
            KmsKey = config.KmsKey ?? (config.EncryptionType == EncryptionTypeValues.AES256 ? null : ManagedKmsKey(Arns.Identity)),
        };
    }

    /// <summary>
    /// The stand-in for ECR's AWS managed key (alias aws/ecr): arn:aws:kms:REGION:ACCOUNT:key/ID, where ID is a
    /// UUID derived from the account and region, so it is the same for every repository of this registry and
    /// across restarts. No KMS exists behind it: Berth stores blobs unencrypted either way.
    /// </summary>
    internal static string ManagedKmsKey(BerthIdentity identity)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"berth:aws/ecr:{identity.AccountId}:{identity.Region}"));
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50); // version 5-style (name-based)
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80); // RFC 4122 variant
        var id = new Guid(hash.AsSpan(0, 16), bigEndian: true);
        return $"arn:aws:kms:{identity.Region}:{identity.AccountId}:key/{id:D}";
    }
}
