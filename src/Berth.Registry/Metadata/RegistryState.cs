using System.Text.Json.Serialization;
using Berth.Aws.Ecr;
using Berth.State;

namespace Berth.Registry.Metadata;

/// <summary>
/// The registry's metadata in the Berth store; blob bytes live in <see cref="Storage.BlobStore"/>.
/// </summary>
/// <remarks>
/// Key layout, one root per region, ROOT = registry/{region}/ ('@' and ':' never occur in repository names, so a
/// prefix scan never crosses repositories):
///   ROOT/repos/{name}                 repository settings, policies, tags
///   ROOT/manifests/{name}@{digest}    one manifest in one repository
///   ROOT/tags/{name}:{tag}            tag → manifest digest
///   ROOT/links/{name}@{digest}        a blob uploaded to (or mounted into) a repository
///   ROOT/settings/registry            registry-level settings: registry policy, scanning, replication
/// Before regions the root was registry/ itself (no region part): <see cref="Hosting.RegistryRegions"/> moves such
/// a store's documents under the default region's root once. A region name never equals a table name ("repos"),
/// so the two layouts never share a key.
/// </remarks>
public sealed class RegistryState : DocumentState
{
    /// <param name="store">The Berth store.</param>
    /// <param name="region">The region whose documents this state holds; null for the layout without regions (tests).</param>
    public RegistryState(IStateStore store, string? region = null) : base(store)
    {
        Region = region;
        var root = RootOf(region);
        Repositories = Table(root + "repos/", RegistryJsonContext.Default.StoredRepository);
        Manifests = Table(root + "manifests/", RegistryJsonContext.Default.StoredManifest);
        Tags = Table(root + "tags/", RegistryJsonContext.Default.StoredTag);
        Links = Table(root + "links/", RegistryJsonContext.Default.BlobLink);
        Settings = Table(root + "settings/", RegistryJsonContext.Default.RegistrySettings);
    }

    /// <summary>The table names under a root (what the migration from the layout without regions moves).</summary>
    internal static readonly string[] TableNames = ["repos/", "manifests/", "tags/", "links/", "settings/"];

    /// <summary>The key root of a region's documents.</summary>
    public static string RootOf(string? region) => region is null ? "registry/" : "registry/" + region + "/";

    public string? Region { get; }

    /// <summary>The one key of <see cref="Settings"/>.</summary>
    public const string SettingsId = "registry";

    public DocumentTable<StoredRepository> Repositories { get; }
    public DocumentTable<StoredManifest> Manifests { get; }
    public DocumentTable<StoredTag> Tags { get; }
    public DocumentTable<BlobLink> Links { get; }
    public DocumentTable<RegistrySettings> Settings { get; }

    /// <summary>The registry-level settings (an empty document until something is set).</summary>
    public RegistrySettings RegistrySettings => Settings.Find(SettingsId) ?? new RegistrySettings();

    public static string ManifestId(string repository, string digest) => repository + "@" + digest;
    public static string TagId(string repository, string tag) => repository + ":" + tag;
    public static string LinkId(string repository, string digest) => repository + "@" + digest;

    /// <summary>Manifests of one repository (unordered).</summary>
    public IEnumerable<StoredManifest> ManifestsOf(string repository)
        => Manifests.All.Where(m => m.Value.Repository == repository).Select(m => m.Value);

    /// <summary>Tags of one repository (unordered).</summary>
    public IEnumerable<StoredTag> TagsOf(string repository)
        => Tags.All.Where(t => t.Value.Repository == repository).Select(t => t.Value);

    public IEnumerable<string> TagsFor(string repository, string digest)
        => TagsOf(repository).Where(t => t.Digest == digest).Select(t => t.Tag);
}

/// <summary>A repository: the ECR shape plus what ECR keeps beside it.</summary>
public sealed class StoredRepository
{
    [JsonPropertyName("repository")]
    public required Repository Repository { get; set; }

    [JsonPropertyName("tags")]
    public List<Tag>? Tags { get; set; }

    [JsonPropertyName("policyText")]
    public string? PolicyText { get; set; }

    [JsonPropertyName("lifecyclePolicyText")]
    public string? LifecyclePolicyText { get; set; }

    [JsonPropertyName("lifecyclePolicyEvaluatedAt")]
    public DateTimeOffset? LifecyclePolicyEvaluatedAt { get; set; }

    /// <summary>The last StartLifecyclePolicyPreview's result (ECR keeps one preview per repository).</summary>
    [JsonPropertyName("lifecyclePreview")]
    public StoredLifecyclePreview? LifecyclePreview { get; set; }
}

/// <summary>
/// Registry-level settings, one document per registry: ECR's registry policy, basic/enhanced scanning
/// configuration and replication configuration. Null members are unset (ECR's defaults apply).
/// </summary>
public sealed class RegistrySettings
{
    [JsonPropertyName("policyText")]
    public string? PolicyText { get; set; }

    [JsonPropertyName("scanning")]
    public RegistryScanningConfiguration? Scanning { get; set; }

    [JsonPropertyName("replication")]
    public ReplicationConfiguration? Replication { get; set; }
}

/// <summary>A lifecycle policy preview: the policy evaluated, when, and the images it would expire.</summary>
public sealed class StoredLifecyclePreview
{
    [JsonPropertyName("policyText")]
    public required string PolicyText { get; set; }

    [JsonPropertyName("evaluatedAt")]
    public DateTimeOffset EvaluatedAt { get; set; }

    [JsonPropertyName("results")]
    public List<LifecyclePolicyPreviewResult> Results { get; set; } = [];
}

/// <summary>A manifest stored in a repository; its bytes are the blob named by <see cref="Digest"/>.</summary>
public sealed class StoredManifest
{
    [JsonPropertyName("repository")]
    public required string Repository { get; set; }

    [JsonPropertyName("digest")]
    public required string Digest { get; set; }

    [JsonPropertyName("mediaType")]
    public required string MediaType { get; set; }

    /// <summary>Size of the manifest itself in bytes.</summary>
    [JsonPropertyName("size")]
    public long Size { get; set; }

    /// <summary>Sum of the config and layer sizes (of the children, for an index), as ECR's imageSizeInBytes.</summary>
    [JsonPropertyName("imageSize")]
    public long ImageSize { get; set; }

    [JsonPropertyName("pushedAt")]
    public DateTimeOffset PushedAt { get; set; }

    [JsonPropertyName("lastPulledAt")]
    public DateTimeOffset? LastPulledAt { get; set; }

    /// <summary>Blob digests the manifest references (config and layers).</summary>
    [JsonPropertyName("blobs")]
    public List<string> Blobs { get; set; } = [];

    /// <summary>Manifest digests an index references.</summary>
    [JsonPropertyName("children")]
    public List<string> Children { get; set; } = [];

    [JsonPropertyName("subject")]
    public string? Subject { get; set; }

    [JsonPropertyName("artifactType")]
    public string? ArtifactType { get; set; }

    [JsonPropertyName("configMediaType")]
    public string? ConfigMediaType { get; set; }

    [JsonPropertyName("annotations")]
    public Dictionary<string, string>? Annotations { get; set; }

    /// <summary>When a scan was asked for (StartImageScan, or a push with scan on push); null when never.</summary>
    [JsonPropertyName("scanRequestedAt")]
    public DateTimeOffset? ScanRequestedAt { get; set; }

    /// <summary>
    /// Where this push is replicated to (the registry's replication rules when it was pushed) and how far each copy
    /// got; null when no rule matched, or for an image that is itself a replica (ECR does not replicate onwards).
    /// </summary>
    [JsonPropertyName("replication")]
    public List<StoredReplication>? Replication { get; set; }
}

/// <summary>One destination of a pushed image: IN_PROGRESS until the replication worker copied it (COMPLETE) or gave up (FAILED).</summary>
public sealed class StoredReplication
{
    [JsonPropertyName("region")]
    public required string Region { get; set; }

    [JsonPropertyName("registryId")]
    public required string RegistryId { get; set; }

    [JsonPropertyName("status")]
    public required string Status { get; set; }

    [JsonPropertyName("failureCode")]
    public string? FailureCode { get; set; }

    /// <summary>Copies tried and failed so far (a transient failure is retried a few times before FAILED).</summary>
    [JsonPropertyName("attempts")]
    public int Attempts { get; set; }
}

public sealed class StoredTag
{
    [JsonPropertyName("repository")]
    public required string Repository { get; set; }

    [JsonPropertyName("tag")]
    public required string Tag { get; set; }

    [JsonPropertyName("digest")]
    public required string Digest { get; set; }
}

public sealed class BlobLink
{
    [JsonPropertyName("repository")]
    public required string Repository { get; set; }

    [JsonPropertyName("digest")]
    public required string Digest { get; set; }

    [JsonPropertyName("size")]
    public long Size { get; set; }

    [JsonPropertyName("linkedAt")]
    public DateTimeOffset LinkedAt { get; set; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredRepository))]
[JsonSerializable(typeof(StoredManifest))]
[JsonSerializable(typeof(StoredTag))]
[JsonSerializable(typeof(BlobLink))]
[JsonSerializable(typeof(RegistrySettings))]
[JsonSerializable(typeof(StoredReplication))]
internal sealed partial class RegistryJsonContext : JsonSerializerContext;
