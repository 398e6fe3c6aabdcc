using System.Text.Json;
using Berth.Registry.Storage;

namespace Berth.Registry.Metadata;

/// <summary>What a manifest or index refers to, read from its JSON.</summary>
public sealed record ParsedManifest(
    string MediaType,
    IReadOnlyList<Descriptor> Blobs,
    IReadOnlyList<Descriptor> Children,
    Descriptor? Subject,
    string? ArtifactType,
    string? ConfigMediaType,
    Dictionary<string, string>? Annotations)
{
    public bool IsIndex => Children.Count > 0 || MediaTypes.IsIndex(MediaType);
}

public sealed record Descriptor(string MediaType, string Digest, long Size, bool External = false);

public static class MediaTypes
{
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string DockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
    public const string DockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";

    public static readonly string[] Manifests = [DockerManifest, DockerManifestList, OciManifest, OciIndex];

    public static bool IsIndex(string mediaType) => mediaType is DockerManifestList or OciIndex;

    public static bool IsSupported(string mediaType) => Array.IndexOf(Manifests, mediaType) >= 0;
}

/// <summary>Reads Docker v2 schema 2 manifests and manifest lists, OCI image manifests and indexes.</summary>
public static class ManifestParser
{
    public const int MaxManifestBytes = 4 * 1024 * 1024;

    private static readonly string[] ForeignLayerTypes =
    [
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    ];

    /// <param name="content">the manifest's bytes</param>
    /// <param name="contentType">the request's Content-Type (may be empty)</param>
    public static ParsedManifest Parse(ReadOnlySpan<byte> content, string? contentType)
    {
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(content, new JsonReaderOptions { MaxDepth = 64 });
            doc = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException e)
        {
            throw RegistryException.ManifestInvalid("manifest is not valid JSON: " + e.Message);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw RegistryException.ManifestInvalid("manifest must be a JSON object");
            }
            var declared = OptionalString(root, "mediaType");
            var header = NormalizeContentType(contentType);
            if (declared is not null && header is not null && header != declared && header is not "application/json" and not "application/octet-stream")
            {
                throw RegistryException.ManifestInvalid($"mediaType '{declared}' does not match Content-Type '{header}'");
            }
            var mediaType = declared ?? (header is not null && MediaTypes.IsSupported(header) ? header : Infer(root));
            if (mediaType is MediaTypes.DockerSchema1 or MediaTypes.DockerSchema1Signed || root.TryGetProperty("schemaVersion", out var sv) && sv.ValueKind == JsonValueKind.Number && sv.GetInt32() == 1)
            {
                throw RegistryException.ManifestInvalid("Docker image manifest schema 1 is not supported; push with a current client (schema 2 or OCI)");
            }
            if (!MediaTypes.IsSupported(mediaType))
            {
                throw RegistryException.ManifestInvalid($"unsupported manifest media type '{mediaType}'");
            }
            if (!root.TryGetProperty("schemaVersion", out sv) || sv.ValueKind != JsonValueKind.Number || !sv.TryGetInt32(out var version) || version != 2)
            {
                throw RegistryException.ManifestInvalid("schemaVersion must be 2");
            }

            var blobs = new List<Descriptor>();
            var children = new List<Descriptor>();
            string? configMediaType = null;
            if (MediaTypes.IsIndex(mediaType))
            {
                if (root.TryGetProperty("layers", out _) || root.TryGetProperty("config", out _))
                {
                    throw RegistryException.ManifestInvalid("an index has 'manifests', not 'config' or 'layers'");
                }
                foreach (var m in RequiredArray(root, "manifests"))
                {
                    children.Add(ReadDescriptor(m, "manifests[]"));
                }
            }
            else
            {
                if (root.TryGetProperty("manifests", out _))
                {
                    throw RegistryException.ManifestInvalid("an image manifest has 'config' and 'layers', not 'manifests'");
                }
                if (!root.TryGetProperty("config", out var config) || config.ValueKind != JsonValueKind.Object)
                {
                    throw RegistryException.ManifestInvalid("manifest has no 'config' descriptor");
                }
                var c = ReadDescriptor(config, "config");
                configMediaType = c.MediaType;
                blobs.Add(c);
                foreach (var l in RequiredArray(root, "layers"))
                {
                    var d = ReadDescriptor(l, "layers[]");
                    var external = Array.IndexOf(ForeignLayerTypes, d.MediaType) >= 0 && l.TryGetProperty("urls", out var urls) && urls.ValueKind == JsonValueKind.Array && urls.GetArrayLength() > 0;
                    blobs.Add(external ? d with { External = true } : d);
                }
            }

            Descriptor? subject = null;
            if (root.TryGetProperty("subject", out var s) && s.ValueKind != JsonValueKind.Null)
            {
                if (s.ValueKind != JsonValueKind.Object)
                {
                    throw RegistryException.ManifestInvalid("'subject' must be a descriptor");
                }
                subject = ReadDescriptor(s, "subject");
            }
            Dictionary<string, string>? annotations = null;
            if (root.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object)
            {
                annotations = [];
                foreach (var p in a.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.String)
                    {
                        throw RegistryException.ManifestInvalid($"annotation '{p.Name}' must be a string");
                    }
                    annotations[p.Name] = p.Value.GetString()!;
                }
            }
            return new ParsedManifest(mediaType, blobs, children, subject, OptionalString(root, "artifactType"), configMediaType, annotations);
        }
    }

    /// <summary>"application/json; charset=utf-8" → "application/json"; empty → null.</summary>
    public static string? NormalizeContentType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return null;
        }
        var semi = contentType.IndexOf(';', StringComparison.Ordinal);
        return (semi >= 0 ? contentType[..semi] : contentType).Trim().ToLowerInvariant();
    }

    private static string Infer(JsonElement root)
        => root.TryGetProperty("manifests", out _) ? MediaTypes.OciIndex : MediaTypes.OciManifest;

    private static string? OptionalString(JsonElement e, string name)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw RegistryException.ManifestInvalid($"'{name}' must be a string");
    }

    private static JsonElement.ArrayEnumerator RequiredArray(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Array)
        {
            throw RegistryException.ManifestInvalid($"manifest has no '{name}' array");
        }
        return v.EnumerateArray();
    }

    private static Descriptor ReadDescriptor(JsonElement e, string where)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw RegistryException.ManifestInvalid($"{where} must be a descriptor object");
        }
        var mediaType = OptionalString(e, "mediaType") ?? throw RegistryException.ManifestInvalid($"{where} has no mediaType");
        var digest = OptionalString(e, "digest");
        if (!Digest.TryParse(digest, out _))
        {
            throw RegistryException.ManifestInvalid($"{where} has an invalid digest '{digest}'");
        }
        if (!e.TryGetProperty("size", out var size) || size.ValueKind != JsonValueKind.Number || !size.TryGetInt64(out var n) || n < 0)
        {
            throw RegistryException.ManifestInvalid($"{where} ({digest}) has no valid size");
        }
        return new Descriptor(mediaType, digest!, n);
    }
}
