using System.Globalization;
using Berth.Aws.Ecs;
using Berth.ControlPlane.State;
using Berth.Core;

namespace Berth.ControlPlane.Domain;

/// <summary>Container instance records to and from the wire shape (the other way only to migrate old stores).</summary>
public static class InstanceViews
{
    public static string Arn(Arns arns, InstanceRecord r) => arns.ContainerInstance(r.Cluster, r.Id);

    /// <summary>The stored part of the wire shape: no remaining resources or task counts (those come from the ledger).</summary>
    public static ContainerInstance ToWire(Arns arns, InstanceRecord r, bool withTags) => new()
    {
        ContainerInstanceArn = Arn(arns, r),
        Ec2InstanceId = r.Ec2InstanceId,
        Status = r.Status,
        AgentConnected = r.AgentConnected,
        RegisteredAt = r.RegisteredAt,
        Version = r.Version,
        VersionInfo = new VersionInfo { AgentVersion = r.VersionInfo.AgentVersion, AgentHash = r.VersionInfo.AgentHash, DockerVersion = r.VersionInfo.DockerVersion },
        RegisteredResources =
        [
            new Resource { Name = "CPU", Type = "INTEGER", IntegerValue = r.Cpu, DoubleValue = 0, LongValue = 0 },
            new Resource { Name = "MEMORY", Type = "INTEGER", IntegerValue = r.Memory, DoubleValue = 0, LongValue = 0 },
            new Resource { Name = "PORTS", Type = "STRINGSET", StringSetValue = [.. r.Ports], DoubleValue = 0, LongValue = 0, IntegerValue = 0 },
            new Resource { Name = "PORTS_UDP", Type = "STRINGSET", StringSetValue = [.. r.UdpPorts], DoubleValue = 0, LongValue = 0, IntegerValue = 0 },
        ],
        Attributes = r.Attributes.Select(a => new EcsAttribute { Name = a.Name, Value = a.Value, TargetType = a.TargetType, TargetId = a.TargetId }).ToList(),
        Tags = withTags ? ToWire(r.Tags) ?? [] : null,
        Attachments = [],
    };

    public static List<Tag>? ToWire(IReadOnlyList<ResourceTagRecord>? tags) => tags?.Select(t => new Tag { Key = t.Key, Value = t.Value }).ToList();

    public static List<ResourceTagRecord>? FromWire(IEnumerable<Tag>? tags) => tags?.Select(t => new ResourceTagRecord(t.Key, t.Value)).ToList();

    public static List<AttributeRecord> FromWire(IEnumerable<EcsAttribute>? attributes)
        => attributes?.Select(a => new AttributeRecord { Name = a.Name, Value = a.Value, TargetType = a.TargetType, TargetId = a.TargetId }).ToList() ?? [];

    /// <summary>A format-2 stored instance (the wire shape plus what the control plane kept beside it) as a record.</summary>
    public static InstanceRecord FromWire(StoredContainerInstance s)
    {
        var i = s.Instance;
        var resources = i.RegisteredResources ?? [];
        Resource? R(string name) => resources.FirstOrDefault(r => r.Name == name);
        var arn = i.ContainerInstanceArn ?? "";
        return new InstanceRecord
        {
            Id = arn[(arn.LastIndexOf('/') + 1)..],
            Cluster = s.Cluster,
            Ec2InstanceId = i.Ec2InstanceId,
            Status = i.Status ?? "ACTIVE",
            AgentConnected = i.AgentConnected ?? false,
            RegisteredAt = i.RegisteredAt,
            Version = i.Version ?? 0,
            VersionInfo = new VersionInfoRecord { AgentVersion = i.VersionInfo?.AgentVersion, AgentHash = i.VersionInfo?.AgentHash, DockerVersion = i.VersionInfo?.DockerVersion },
            Cpu = R("CPU")?.IntegerValue ?? 0,
            Memory = R("MEMORY")?.IntegerValue ?? 0,
            Ports = R("PORTS")?.StringSetValue ?? [],
            UdpPorts = R("PORTS_UDP")?.StringSetValue ?? [],
            Attributes = FromWire(i.Attributes),
            Tags = FromWire(i.Tags),
            AgentId = s.AgentId,
            AgentSecretHash = s.AgentSecretHash,
            DeregisteredAt = s.DeregisteredAt,
        };
    }

    /// <summary>Registered TCP ports as numbers (entries that are not numbers reserve nothing).</summary>
    public static IEnumerable<int> PortNumbers(IEnumerable<string> ports)
    {
        foreach (var p in ports)
        {
            if (int.TryParse(p, CultureInfo.InvariantCulture, out var n))
            {
                yield return n;
            }
        }
    }
}
