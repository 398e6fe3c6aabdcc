using System.Globalization;
using Berth.Aws.Ecs;
using Berth.Core;

namespace Berth.ControlPlane.Domain;

/// <summary>Translates between the stored <see cref="TaskRecord"/> and the ECS wire shape.</summary>
public static class TaskViews
{
    public static string TaskArn(Arns arns, TaskRecord t) => arns.Task(t.Cluster, t.Id);

    /// <summary>
    /// A container's UUID, derived from its task id and name (a version-5-style name-based UUID over SHA-256):
    /// stable, unique per task and container, and not stored.
    /// </summary>
    public static string ContainerUuid(string taskId, string containerName)
    {
        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(taskId + "/" + containerName), hash);
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash[..16], bigEndian: true).ToString("D");
    }

    public static EcsTask ToWire(Arns arns, TaskRecord t, bool withTags)
    {
        var taskArn = TaskArn(arns, t);
        var containerPrefix = $"arn:aws:ecs:{arns.Identity.Region}:{arns.Identity.AccountId}:container/{t.Cluster}/{t.Id}/";
        return new EcsTask
        {
            TaskArn = taskArn,
            ClusterArn = arns.Cluster(t.Cluster),
            TaskDefinitionArn = arns.TaskDefinition(t.Family, t.Revision),
            ContainerInstanceArn = t.InstanceId is null ? null : arns.ContainerInstance(t.Cluster, t.InstanceId),
            DesiredStatus = t.DesiredStatus,
            LastStatus = t.LastStatus,
            LaunchType = t.LaunchType,
            CreatedAt = t.CreatedAt,
            StartedBy = t.StartedBy,
            Group = t.Group,
            Overrides = new TaskOverride
            {
                ContainerOverrides = (t.Overrides?.Containers ?? []).Select(o => new ContainerOverride
                {
                    Name = o.Name,
                    Command = o.Command?.ToList(),
                    Environment = o.Environment?.Select(e => new Berth.Aws.Ecs.KeyValuePair { Name = e.Name, Value = e.Value }).ToList(),
                    Cpu = o.Cpu,
                    Memory = o.Memory,
                    MemoryReservation = o.MemoryReservation,
                }).ToList(),
                Cpu = t.Overrides?.Cpu,
                Memory = t.Overrides?.Memory,
                TaskRoleArn = t.Overrides?.TaskRoleArn,
            },
            Tags = withTags && t.Tags is { Count: > 0 } ? t.Tags.Select(x => new Tag { Key = x.Key, Value = x.Value }).ToList() : null,
            Cpu = t.Cpu,
            Memory = t.Memory,
            Version = t.Version,
            Attachments = t.Awsvpc is null ? [] : [EniAttachment(arns, t)],
            Attributes = [],
            PlatformVersion = t.PlatformVersion,
            PlatformFamily = t.LaunchType == "FARGATE" ? "Linux" : null,
            CapacityProviderName = t.CapacityProviderName,
            EphemeralStorage = t.LaunchType == "FARGATE" ? new EphemeralStorage { SizeInGiB = 20 } : null,
            PullStartedAt = t.PullStartedAt,
            PullStoppedAt = t.PullStoppedAt,
            StartedAt = t.StartedAt,
            ExecutionStoppedAt = t.ExecutionStoppedAt,
            StoppingAt = t.StoppingAt,
            StoppedAt = t.StoppedAt,
            StopCode = t.StopCode,
            StoppedReason = t.StoppedReason,
            HealthStatus = TaskHealth.Of(t),
            Connectivity = t.ConnectivityAt is null ? null : "CONNECTED",
            ConnectivityAt = t.ConnectivityAt,
            Containers = t.Containers.Select(c => new Container
            {
                ContainerArn = containerPrefix + (c.Uuid ?? ContainerUuid(t.Id, c.Name)),
                TaskArn = taskArn,
                Name = c.Name,
                Image = c.Image,
                ImageDigest = c.ImageDigest,
                RuntimeId = c.RuntimeId,
                LastStatus = c.LastStatus,
                ExitCode = c.ExitCode,
                Reason = c.Reason,
                // ECS reports UNKNOWN for a container without a health check, and before the first verdict.
                HealthStatus = c.HealthStatus ?? TaskHealth.Unknown,
                NetworkInterfaces = t.Awsvpc is not null && t.PrivateIp is not null
                    ? [new NetworkInterface { AttachmentId = NetworkRules.AttachmentId(t.Id), PrivateIpv4Address = t.PrivateIp }]
                    : [],
                NetworkBindings = c.Bindings?.Select(b => new NetworkBinding { BindIP = b.BindIp, ContainerPort = b.ContainerPort, HostPort = b.HostPort, Protocol = b.Protocol }).ToList(),
                Cpu = c.Cpu,
                Memory = c.Memory,
                MemoryReservation = c.MemoryReservation,
            }).ToList(),
        };
    }

    /// <summary>
    /// An awsvpc task's network interface as ECS shows it: PRECREATED until the agent reports the task's address,
    /// ATTACHED while the task lives, DETACHED once it stopped. The subnet is the first one asked for.
    /// </summary>
    private static Attachment EniAttachment(Arns arns, TaskRecord t)
    {
        var details = new List<Berth.Aws.Ecs.KeyValuePair>
        {
            new() { Name = "subnetId", Value = t.Awsvpc!.Subnets.FirstOrDefault() ?? "" },
            new() { Name = "networkInterfaceId", Value = NetworkRules.NetworkInterfaceId(t.Id) },
        };
        if (t.PrivateIp is { } ip)
        {
            details.Add(new() { Name = "macAddress", Value = t.MacAddress ?? "" });
            details.Add(new() { Name = "privateDnsName", Value = NetworkRules.PrivateDnsName(ip, arns.Identity.Region) });
            details.Add(new() { Name = "privateIPv4Address", Value = ip });
        }
        return new Attachment
        {
            Id = NetworkRules.AttachmentId(t.Id),
            Type = "ElasticNetworkInterface",
            Status = t.IsStopped ? "DETACHED" : t.PrivateIp is null ? "PRECREATED" : "ATTACHED",
            Details = details,
        };
    }

    /// <summary>The overrides Berth applies (cpu, memory; per container command, environment, cpu, memory), as a record.</summary>
    public static OverridesRecord? OverridesFromWire(TaskOverride? o) => o is null ? null : new OverridesRecord
    {
        TaskRoleArn = o.TaskRoleArn,
        Cpu = o.Cpu,
        Memory = o.Memory,
        Containers = (o.ContainerOverrides ?? []).Where(c => c.Name is not null).Select(c => new ContainerOverrideRecord
        {
            Name = c.Name!,
            Command = c.Command,
            Environment = c.Environment?.Select(e => new KeyValueRecord(e.Name ?? "", e.Value ?? "")).ToList(),
            Cpu = c.Cpu,
            Memory = c.Memory,
            MemoryReservation = c.MemoryReservation,
        }).ToList(),
    };

    /// <summary>A format-1 stored task (the wire shape) as a record; used by the store migration.</summary>
    public static TaskRecord? FromWire(EcsTask w, TaskDefinition? def)
    {
        if (w.TaskArn is null || !Arns.TryParse(w.TaskArn, out var parsed))
        {
            return null;
        }
        var slash = parsed.Path.IndexOf('/');
        if (slash <= 0)
        {
            return null;
        }
        var family = def?.Family;
        var revision = def?.Revision ?? 0;
        if (family is null && w.TaskDefinitionArn is { } tdArn)
        {
            var name = tdArn[(tdArn.IndexOf('/') + 1)..];
            var colon = name.LastIndexOf(':');
            family = colon > 0 ? name[..colon] : name;
            revision = colon > 0 && int.TryParse(name[(colon + 1)..], CultureInfo.InvariantCulture, out var r) ? r : 0;
        }
        var reservation = def is null ? null : Berth.Scheduling.Reservations.For(def, w.Overrides);
        return new TaskRecord
        {
            Id = parsed.Path[(slash + 1)..],
            Cluster = parsed.Path[..slash],
            Family = family ?? "",
            Revision = revision,
            InstanceId = w.ContainerInstanceArn is null ? null : Arns.NameOf(w.ContainerInstanceArn),
            DesiredStatus = TaskStates.Intern(w.DesiredStatus ?? TaskStates.Running),
            LastStatus = TaskStates.Intern(w.LastStatus ?? TaskStates.Provisioning),
            LaunchType = w.LaunchType ?? "EC2",
            CreatedAt = w.CreatedAt ?? DateTimeOffset.UnixEpoch,
            StartedBy = w.StartedBy,
            Group = w.Group,
            Cpu = w.Cpu,
            Memory = w.Memory,
            StaticPorts = reservation?.StaticPorts.ToArray(),
            Overrides = OverridesFromWire(w.Overrides),
            Tags = w.Tags?.Select(t => new TagRecord(t.Key ?? "", t.Value ?? "")).ToList(),
            Version = w.Version ?? 1,
            Containers = (w.Containers ?? []).Where(c => c.Name is not null).Select(c => new ContainerRecord
            {
                Name = c.Name!,
                Image = c.Image,
                Uuid = c.ContainerArn is { } ca ? ca[(ca.LastIndexOf('/') + 1)..] : Guid.NewGuid().ToString("D"),
                LastStatus = c.LastStatus ?? "PENDING",
                RuntimeId = c.RuntimeId,
                ExitCode = c.ExitCode,
                Reason = c.Reason,
                ImageDigest = c.ImageDigest,
                HealthStatus = c.HealthStatus,
                Cpu = c.Cpu,
                Memory = c.Memory,
                MemoryReservation = c.MemoryReservation,
                Bindings = c.NetworkBindings?.Select(b => new BindingRecord(b.BindIP ?? "0.0.0.0", b.ContainerPort ?? 0, b.HostPort ?? 0, b.Protocol ?? "tcp")).ToList(),
            }).ToList(),
            PullStartedAt = w.PullStartedAt,
            PullStoppedAt = w.PullStoppedAt,
            StartedAt = w.StartedAt,
            ExecutionStoppedAt = w.ExecutionStoppedAt,
            StoppingAt = w.StoppingAt,
            StoppedAt = w.StoppedAt,
            ConnectivityAt = w.ConnectivityAt,
            StopCode = w.StopCode,
            StoppedReason = w.StoppedReason,
        };
    }
}
