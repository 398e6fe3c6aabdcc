using System.Text.Json.Serialization;

namespace Berth.Registry.Distribution;

public sealed record ErrorList([property: JsonPropertyName("errors")] IReadOnlyList<ErrorEntry> Errors);

public sealed record ErrorEntry(
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("detail")] string? Detail);

public sealed record TagList([property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("tags")] IReadOnlyList<string> Tags);

public sealed record Catalog([property: JsonPropertyName("repositories")] IReadOnlyList<string> Repositories);

public sealed record ReferrerDescriptor(
    [property: JsonPropertyName("mediaType")] string MediaType,
    [property: JsonPropertyName("digest")] string Digest,
    [property: JsonPropertyName("size")] long Size,
    [property: JsonPropertyName("artifactType")] string? ArtifactType,
    [property: JsonPropertyName("annotations")] Dictionary<string, string>? Annotations);

public sealed record ReferrersIndex(
    [property: JsonPropertyName("schemaVersion")] int SchemaVersion,
    [property: JsonPropertyName("mediaType")] string MediaType,
    [property: JsonPropertyName("manifests")] IReadOnlyList<ReferrerDescriptor> Manifests);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ErrorList))]
[JsonSerializable(typeof(TagList))]
[JsonSerializable(typeof(Catalog))]
[JsonSerializable(typeof(ReferrersIndex))]
internal sealed partial class DistributionJsonContext : JsonSerializerContext;
