using Berth.Aws.Ecs;
using Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>The typed TaskSpec as the ECS shapes the Docker task engine builds containers from.</summary>
internal static class SpecConversion
{
    public static (EcsTask Task, TaskDefinition Definition) ToEcs(string taskArn, TaskSpec spec)
    {
        var def = new TaskDefinition
        {
            TaskDefinitionArn = spec.TaskDefinitionArn,
            Family = spec.Family,
            Revision = spec.Revision,
            NetworkMode = spec.NetworkMode,
            Volumes = spec.Volumes.Select(v => new Volume { Name = v.Name, Host = v.HostSourcePath.Length > 0 ? new HostVolumeProperties { SourcePath = v.HostSourcePath } : null }).ToList(),
            ContainerDefinitions = spec.Containers.Select(c => new ContainerDefinition
            {
                Name = c.Name,
                Image = c.Image,
                Essential = c.Essential,
                Command = c.Command.Count > 0 ? [.. c.Command] : null,
                EntryPoint = c.EntryPoint.Count > 0 ? [.. c.EntryPoint] : null,
                Environment = c.Environment.Select(e => new Berth.Aws.Ecs.KeyValuePair { Name = e.Name, Value = e.Value }).ToList(),
                Cpu = c.CpuUnits,
                Memory = c.MemoryMib > 0 ? c.MemoryMib : null,
                MemoryReservation = c.MemoryReservationMib > 0 ? c.MemoryReservationMib : null,
                PortMappings = c.PortMappings.Select(p => new Berth.Aws.Ecs.PortMapping { ContainerPort = p.ContainerPort, HostPort = p.HostPort, Protocol = p.Protocol }).ToList(),
                MountPoints = c.MountPoints.Select(m => new Berth.Aws.Ecs.MountPoint { SourceVolume = m.SourceVolume, ContainerPath = m.ContainerPath, ReadOnly = m.ReadOnly }).ToList(),
                WorkingDirectory = c.WorkingDirectory.Length > 0 ? c.WorkingDirectory : null,
                User = c.User.Length > 0 ? c.User : null,
                Hostname = c.Hostname.Length > 0 ? c.Hostname : null,
                DockerLabels = c.DockerLabels.Count > 0 ? new Dictionary<string, string>(c.DockerLabels) : null,
                StopTimeout = c.StopTimeoutSeconds,
                Links = c.Links.Count > 0 ? [.. c.Links] : null,
                Ulimits = c.Ulimits.Count > 0 ? c.Ulimits.Select(u => new Berth.Aws.Ecs.Ulimit { Name = u.Name, SoftLimit = (int)u.Soft, HardLimit = (int)u.Hard }).ToList() : null,
                LogConfiguration = c.LogConfiguration is null ? null : new Berth.Aws.Ecs.LogConfiguration { LogDriver = c.LogConfiguration.LogDriver, Options = new Dictionary<string, string>(c.LogConfiguration.Options) },
                DependsOn = c.DependsOn.Select(d => new Berth.Aws.Ecs.ContainerDependency { ContainerName = d.ContainerName, Condition = d.Condition }).ToList(),
            }).ToList(),
        };
        var task = new EcsTask { TaskArn = taskArn, ClusterArn = spec.ClusterArn, TaskDefinitionArn = spec.TaskDefinitionArn, Overrides = new TaskOverride { ContainerOverrides = [] } };
        return (task, def);
    }
}
