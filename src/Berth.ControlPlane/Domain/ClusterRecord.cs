using System.Text.Json.Serialization;

namespace Berth.ControlPlane.Domain;

// Storage records for clusters: our own shapes, not the generated wire types (see TaskRecord.cs for why).
// Immutable: a change is a new record (`with`). ClusterViews builds the wire shape on the way out.

/// <summary>One cluster, as stored under ecs/{account}/{region}/clusters/{name}.</summary>
public sealed record ClusterRecord
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("status")] public string Status { get; init; } = "ACTIVE";
    [JsonPropertyName("tags")] public IReadOnlyList<ResourceTagRecord>? Tags { get; init; }
    [JsonPropertyName("settings")] public IReadOnlyList<ClusterSettingRecord>? Settings { get; init; }
    [JsonPropertyName("configuration")] public ClusterConfigurationRecord? Configuration { get; init; }
    [JsonPropertyName("capacityProviders")] public IReadOnlyList<string>? CapacityProviders { get; init; }
    [JsonPropertyName("defaultCapacityProviderStrategy")] public IReadOnlyList<CapacityProviderStrategyRecord>? DefaultCapacityProviderStrategy { get; init; }
    /// <summary>The namespace of the cluster's serviceConnectDefaults; null when it has none.</summary>
    [JsonPropertyName("serviceConnectNamespace")] public string? ServiceConnectNamespace { get; init; }
}

public sealed record ClusterSettingRecord(
    [property: JsonPropertyName("name")] string? Name,
    [property: JsonPropertyName("value")] string? Value);

public sealed record CapacityProviderStrategyRecord(
    [property: JsonPropertyName("capacityProvider")] string? CapacityProvider,
    [property: JsonPropertyName("weight")] int? Weight,
    [property: JsonPropertyName("base")] int? Base);

public sealed record ClusterConfigurationRecord
{
    [JsonPropertyName("executeCommand")] public ExecuteCommandRecord? ExecuteCommand { get; init; }
    [JsonPropertyName("managedStorage")] public ManagedStorageRecord? ManagedStorage { get; init; }
}

public sealed record ExecuteCommandRecord
{
    [JsonPropertyName("kmsKeyId")] public string? KmsKeyId { get; init; }
    [JsonPropertyName("logging")] public string? Logging { get; init; }
    [JsonPropertyName("log")] public ExecuteCommandLogRecord? Log { get; init; }
}

public sealed record ExecuteCommandLogRecord
{
    [JsonPropertyName("cloudWatchLogGroupName")] public string? CloudWatchLogGroupName { get; init; }
    [JsonPropertyName("cloudWatchEncryptionEnabled")] public bool? CloudWatchEncryptionEnabled { get; init; }
    [JsonPropertyName("s3BucketName")] public string? S3BucketName { get; init; }
    [JsonPropertyName("s3EncryptionEnabled")] public bool? S3EncryptionEnabled { get; init; }
    [JsonPropertyName("s3KeyPrefix")] public string? S3KeyPrefix { get; init; }
}

public sealed record ManagedStorageRecord
{
    [JsonPropertyName("kmsKeyId")] public string? KmsKeyId { get; init; }
    [JsonPropertyName("fargateEphemeralStorageKmsKeyId")] public string? FargateEphemeralStorageKmsKeyId { get; init; }
}
