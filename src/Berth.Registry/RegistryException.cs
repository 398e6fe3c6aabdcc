namespace Berth.Registry;

/// <summary>An error of the registry, answered on /v2/ as the distribution spec's error JSON and mapped to ECR exceptions by the ECR API.</summary>
public sealed class RegistryException(string code, string message, int status, string? detail = null) : Exception(message)
{
    public string Code { get; } = code;
    public int Status { get; } = status;
    public string? Detail { get; } = detail;

    /// <summary>True for a TAG_INVALID raised because an immutable repository refused to move the tag (ECR: ImageTagAlreadyExistsException).</summary>
    public bool IsImmutableTag { get; private init; }

    public static RegistryException BlobUnknown(string digest) => new("BLOB_UNKNOWN", "blob unknown to registry", 404, digest);
    public static RegistryException UploadUnknown(string id) => new("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404, id);
    public static RegistryException UploadInvalid(string message) => new("BLOB_UPLOAD_INVALID", message, 400);
    public static RegistryException DigestInvalid(string message, string? detail = null) => new("DIGEST_INVALID", message, 400, detail);
    public static RegistryException ManifestUnknown(string reference) => new("MANIFEST_UNKNOWN", "manifest unknown", 404, reference);
    public static RegistryException ManifestInvalid(string message) => new("MANIFEST_INVALID", message, 400);
    public static RegistryException ManifestBlobUnknown(string digest) => new("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry: " + digest, 400, digest);
    public static RegistryException NameInvalid(string name) => new("NAME_INVALID", "invalid repository name", 400, name);
    public static RegistryException NameUnknown(string name) => new("NAME_UNKNOWN", $"repository name not known to registry: {name}", 404, name);
    public static RegistryException TagInvalid(string tag) => new("TAG_INVALID", "manifest tag did not match URI", 400, tag);
    public static RegistryException TagImmutable(string repository, string tag) => new("TAG_INVALID",
        $"The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the tag is immutable.", 400, tag) { IsImmutableTag = true };

    // Codes below are the registry's own (the ECR API maps them); the distribution API never raises them.

    /// <summary>The manifest is already stored under that tag (or, pushed by digest, at all): nothing would change.</summary>
    public static RegistryException ManifestExists(string digest, string? tag) => new("MANIFEST_EXISTS",
        tag is null ? $"Image with digest '{digest}' already exists" : $"Image with digest '{digest}' and tag '{tag}' already exists", 409, digest);

    /// <summary>An index of the repository still lists the manifest, so it cannot be deleted on its own.</summary>
    public static RegistryException ManifestReferenced(string digest, IEnumerable<string> indexes) => new("MANIFEST_REFERENCED",
        $"Requested image referenced by manifest list: [{string.Join(", ", indexes)}]", 409, digest);

    /// <summary>A tag and a digest were both given but the tag points at another manifest.</summary>
    public static RegistryException TagDigestMismatch(string tag, string digest) => new("TAG_DIGEST_MISMATCH",
        $"Invalid request parameters: given tag '{tag}' does not map to the given digest '{digest}'", 400, tag);

    public static RegistryException Unsupported(string message) => new("UNSUPPORTED", message, 405);
    public static RegistryException Denied(string message) => new("DENIED", message, 403);
    public static RegistryException SizeInvalid(string message, int status = 400) => new("SIZE_INVALID", message, status);
    public static RegistryException RangeInvalid(string message) => new("BLOB_UPLOAD_INVALID", message, 416);
}
