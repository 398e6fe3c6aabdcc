using System.Text.Json.Serialization;

namespace Berth.ControlPlane.Domain;

// Storage records for container instances: our own shapes, not the generated wire types (see TaskRecord.cs
// for why). Immutable: a change is a new record (`with`). InstanceViews builds the wire shape on the way out.

/// <summary>One container instance, as stored under ecs/{account}/{region}/instances/{cluster}/{id}.</summary>
public sealed record InstanceRecord
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("cluster")] public required string Cluster { get; init; }
    /// <summary>The EC2 instance id ECS reports; the agent's hostname for instances a berth agent registered.</summary>
    [JsonPropertyName("ec2InstanceId")] public string? Ec2InstanceId { get; init; }
    [JsonPropertyName("status")] public string Status { get; init; } = "ACTIVE";
    [JsonPropertyName("agentConnected")] public bool AgentConnected { get; init; }
    [JsonPropertyName("registeredAt")] public DateTimeOffset? RegisteredAt { get; init; }
    [JsonPropertyName("version")] public long Version { get; init; }
    [JsonPropertyName("versionInfo")] public VersionInfoRecord VersionInfo { get; init; } = new();
    /// <summary>Registered CPU units and memory (MiB).</summary>
    [JsonPropertyName("cpu")] public int Cpu { get; init; }
    [JsonPropertyName("memory")] public int Memory { get; init; }
    /// <summary>Registered reserved host ports, as given (ECS's STRINGSET values: RegisterContainerInstance echoes them as sent).</summary>
    [JsonPropertyName("ports")] public IReadOnlyList<string> Ports { get; init; } = [];
    [JsonPropertyName("udpPorts")] public IReadOnlyList<string> UdpPorts { get; init; } = [];
    [JsonPropertyName("attributes")] public IReadOnlyList<AttributeRecord> Attributes { get; init; } = [];
    [JsonPropertyName("tags")] public IReadOnlyList<ResourceTagRecord>? Tags { get; init; }
    /// <summary>Stable id of the berth agent that registered it; null for instances registered through the API.</summary>
    [JsonPropertyName("agentId")] public string? AgentId { get; init; }
    /// <summary>SHA-256 (hex) of the secret issued to that agent at its first registration; it must present the secret to register again.</summary>
    [JsonPropertyName("agentSecretHash")] public string? AgentSecretHash { get; init; }
    /// <summary>When DeregisterContainerInstance made it INACTIVE; it is removed one retention window later.</summary>
    [JsonPropertyName("deregisteredAt")] public DateTimeOffset? DeregisteredAt { get; init; }

    [JsonIgnore] public string Key => Cluster + "/" + Id;
}

public sealed record VersionInfoRecord
{
    [JsonPropertyName("agentVersion")] public string? AgentVersion { get; init; }
    [JsonPropertyName("agentHash")] public string? AgentHash { get; init; }
    [JsonPropertyName("dockerVersion")] public string? DockerVersion { get; init; }
}

/// <summary>
/// A container instance attribute. Target type and id are kept only because RegisterContainerInstance echoes
/// the attributes a client sent, member for member.
/// </summary>
public sealed record AttributeRecord
{
    [JsonPropertyName("name")] public string? Name { get; init; }
    [JsonPropertyName("value")] public string? Value { get; init; }
    [JsonPropertyName("targetType")] public string? TargetType { get; init; }
    [JsonPropertyName("targetId")] public string? TargetId { get; init; }
}

/// <summary>A tag of a cluster or container instance; the value may be absent, as ECS allows.</summary>
public sealed record ResourceTagRecord(
    [property: JsonPropertyName("key")] string? Key,
    [property: JsonPropertyName("value")] string? Value);
