namespace Berth.Registry;

/// <summary>An error of the registry, answered on /v2/ as the distribution spec's error JSON and mapped to ECR exceptions by the ECR API.</summary>
public sealed class RegistryException(string code, string message, int status, string? detail = null) : Exception(message)
{
    public string Code { get; } = code;
    public int Status { get; } = status;
    public string? Detail { get; } = detail;

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
    public static RegistryException Unsupported(string message) => new("UNSUPPORTED", message, 405);
    public static RegistryException Denied(string message) => new("DENIED", message, 403);
    public static RegistryException SizeInvalid(string message, int status = 400) => new("SIZE_INVALID", message, status);
    public static RegistryException RangeInvalid(string message) => new("BLOB_UPLOAD_INVALID", message, 416);
}
