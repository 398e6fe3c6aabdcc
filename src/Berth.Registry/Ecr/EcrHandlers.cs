using System.Text;
using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Metadata;

namespace Berth.Registry.Ecr;

/// <summary>What every ECR operations class shares: the registry, its id, repository lookup and error mapping.</summary>
internal abstract class EcrHandlers(RegistryService registry, Arns arns)
{
    protected RegistryService Registry { get; } = registry;
    protected Arns Arns { get; } = arns;

    /// <summary>This registry's id (the account id).</summary>
    protected string RegistryId => Arns.Identity.AccountId;

    /// <summary>The repository, or RepositoryNotFoundException (also when <paramref name="registryId"/> names another registry).</summary>
    protected StoredRepository Repository(string? registryId, string name)
    {
        if (registryId is not null && registryId != RegistryId || Registry.FindRepository(name) is not { } repo)
        {
            throw EcrErrors.RepositoryNotFound(name, registryId ?? RegistryId);
        }
        return repo;
    }

    /// <summary>The image an id names, with ECR's errors: RepositoryNotFoundException, ImageNotFoundException, InvalidParameterException.</summary>
    protected RegistryImage FindImage(string? registryId, string name, ImageIdentifier id)
    {
        Repository(registryId, name);
        var (image, code, reason) = new ImagesView(Registry.ImagesOf(name)).Resolve(id);
        if (image is null)
        {
            throw code is ImageFailureCodeValues.ImageNotFound or ImageFailureCodeValues.ImageTagDoesNotMatchDigest
                ? EcrErrors.ImageNotFound(id, name, RegistryId)
                : AwsException.InvalidParameter(reason!);
        }
        return image;
    }

    /// <summary>Changes a repository document through the registry, with ECR's errors.</summary>
    protected async Task<StoredRepository> UpdateAsync(string? registryId, string name, Action<StoredRepository> change, CancellationToken ct)
    {
        Repository(registryId, name);
        try
        {
            return await Registry.UpdateRepositoryAsync(name, change, ct).ConfigureAwait(false);
        }
        catch (RegistryException e)
        {
            throw EcrErrors.From(e, name, RegistryId);
        }
    }
}

/// <summary>ECR's exceptions, with the messages ECR words them with, and the mapping from registry errors.</summary>
internal static class EcrErrors
{
    public static AwsException RepositoryNotFound(string name, string registryId)
        => new("RepositoryNotFoundException", $"The repository with name '{name}' does not exist in the registry with id '{registryId}'");

    public static AwsException ImageNotFound(ImageIdentifier id, string repository, string registryId)
        => new("ImageNotFoundException", $"The image with imageId {Show(id)} does not exist within the repository with name '{repository}' in the registry with id '{registryId}'");

    public static AwsException UploadNotFound(string uploadId, string repository, string registryId)
        => new("UploadNotFoundException", $"Upload with id '{uploadId}' does not exist in the repository with name '{repository}' in the registry with id '{registryId}'");

    public static AwsException Invalid(string parameter, string constraint)
        => AwsException.InvalidParameter($"Invalid parameter at '{parameter}' failed to satisfy constraint: '{constraint}'");

    /// <summary>"{imageDigest:'sha256:…', imageTag:'null'}" as ECR prints an image id.</summary>
    public static string Show(ImageIdentifier id) => $"{{imageDigest:'{id.ImageDigest ?? "null"}', imageTag:'{id.ImageTag ?? "null"}'}}";

    /// <summary>A registry error as the ECR exception it corresponds to.</summary>
    public static AwsException From(RegistryException e, string repository, string registryId) => e.Code switch
    {
        "NAME_UNKNOWN" => RepositoryNotFound(repository, registryId),
        "NAME_INVALID" => Invalid("repositoryName", "must be 2-256 characters: lowercase path components of letters and digits, separated by '.', '_', '__' or dashes"),
        "MANIFEST_UNKNOWN" => ImageNotFound(Digest(e.Detail) ? new ImageIdentifier { ImageDigest = e.Detail } : new ImageIdentifier { ImageTag = e.Detail }, repository, registryId),
        "TAG_INVALID" when e.IsImmutableTag => new AwsException("ImageTagAlreadyExistsException", e.Message),
        "TAG_INVALID" => Invalid("imageTag", $"'{e.Detail}' is not a valid tag: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"),
        "MANIFEST_EXISTS" => new AwsException("ImageAlreadyExistsException", $"{e.Message} in the repository with name '{repository}' in registry with id '{registryId}'"),
        "MANIFEST_INVALID" or "SIZE_INVALID" => Invalid("imageManifest", e.Message),
        "MANIFEST_BLOB_UNKNOWN" or "BLOB_UNKNOWN" => new AwsException("LayersNotFoundException",
            $"Layers with digests '[{e.Detail}]' required for pushing image into repository with name '{repository}' in registry with id '{registryId}' do not exist"),
        "DIGEST_INVALID" => new AwsException("ImageDigestDoesNotMatchException", $"The specified image digest '{e.Detail}' does not match the digest that the registry calculated for the image."),
        "BLOB_UPLOAD_UNKNOWN" => UploadNotFound(e.Detail ?? "", repository, registryId),
        "MANIFEST_REFERENCED" or "TAG_DIGEST_MISMATCH" => AwsException.InvalidParameter(e.Message),
        _ => new AwsException("ServerException", e.Message, 500),
    };

    private static bool Digest(string? s) => s is not null && Storage.Digest.LooksLikeDigest(s);
}

/// <summary>
/// Keyset pagination for ECR's list calls: the token is the last key of the previous page (opaque to
/// the client), so pages stay stable while images and repositories come and go.
/// </summary>
internal static class EcrPaging
{
    public static (List<T> Page, string? NextToken) Page<T>(IEnumerable<T> items, Func<T, string> key, int? maxResults, string? nextToken, int defaultMax = 100)
    {
        var after = Decode(nextToken);
        var sorted = items.Select(i => (Key: key(i), Item: i)).OrderBy(x => x.Key, StringComparer.Ordinal);
        var rest = after is null ? sorted : sorted.Where(x => string.CompareOrdinal(x.Key, after) > 0);
        var max = maxResults ?? defaultMax;
        var page = rest.Take(max + 1).ToList();
        if (page.Count > max)
        {
            page.RemoveAt(max);
            return (page.Select(x => x.Item).ToList(), Encode(page[^1].Key));
        }
        return (page.Select(x => x.Item).ToList(), null);
    }

    private static string Encode(string lastKey) => Convert.ToBase64String(Encoding.UTF8.GetBytes("e1:" + lastKey));

    private static string? Decode(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return null;
        }
        try
        {
            var s = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            if (s.StartsWith("e1:", StringComparison.Ordinal))
            {
                return s[3..];
            }
        }
        catch (FormatException)
        {
            // answered below
        }
        throw EcrErrors.Invalid("nextToken", "the token is not valid; pass the nextToken of the previous response unchanged");
    }
}

/// <summary>ECR's tag rules for repositories: at most 50, keys 1-128 characters without the aws: prefix, values up to 256.</summary>
internal static class EcrTags
{
    public const int MaxTags = 50;

    public static void Validate(IReadOnlyList<Tag>? tags)
    {
        for (var i = 0; i < (tags?.Count ?? 0); i++)
        {
            var t = tags![i];
            if (string.IsNullOrEmpty(t.Key) || t.Key.Length > 128)
            {
                throw new AwsException("InvalidTagParameterException", $"tags[{i}].Key: tag keys must be 1-128 characters long.");
            }
            if (t.Key.StartsWith("aws:", StringComparison.OrdinalIgnoreCase))
            {
                throw new AwsException("InvalidTagParameterException", $"tags[{i}].Key: the key '{t.Key}' uses the reserved prefix aws:.");
            }
            if (t.Value is null || t.Value.Length > 256)
            {
                throw new AwsException("InvalidTagParameterException", $"tags[{i}].Value: tag values must be 0-256 characters long.");
            }
        }
    }

    /// <summary>Tags merged by key (later ones win); TooManyTagsException beyond 50.</summary>
    public static List<Tag> Merge(IEnumerable<Tag>? existing, IEnumerable<Tag> added)
    {
        var merged = new Dictionary<string, Tag>(StringComparer.Ordinal);
        foreach (var t in (existing ?? []).Concat(added))
        {
            merged[t.Key ?? ""] = new Tag { Key = t.Key, Value = t.Value };
        }
        if (merged.Count > MaxTags)
        {
            throw new AwsException("TooManyTagsException", $"A repository can have at most {MaxTags} tags; this request would leave {merged.Count}.");
        }
        return [.. merged.Values];
    }
}
