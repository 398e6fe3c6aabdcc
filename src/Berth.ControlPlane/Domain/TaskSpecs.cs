using Berth.Aws.Ecs;
using Berth.Core.Agent;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Builds the typed <see cref="TaskSpec"/> an agent runs: the task definition with the task's overrides
/// applied (command, environment, cpu and memory per container), so the agent needs no ECS wire shapes.
/// </summary>
public static class TaskSpecs
{
    /// <summary>The role the task's containers get credentials for: the RunTask override, else the definition's taskRoleArn.</summary>
    public static string? RoleOf(TaskRecord task, TaskDefinition? def)
        => task.Overrides?.TaskRoleArn is { Length: > 0 } o ? o : def?.TaskRoleArn is { Length: > 0 } d ? d : null;

    public static TaskSpec Build(TaskRecord task, TaskDefinition def, string clusterArn)
    {
        var spec = new TaskSpec
        {
            ClusterArn = clusterArn,
            TaskDefinitionArn = def.TaskDefinitionArn ?? "",
            Family = def.Family ?? task.Family,
            Revision = def.Revision ?? task.Revision,
            NetworkMode = def.NetworkMode ?? "bridge",
            CpuUnits = Berth.Scheduling.Reservations.ParseUnits(task.Cpu) ?? 0,
            MemoryMib = Berth.Scheduling.Reservations.ParseUnits(task.Memory) ?? 0,
            PidMode = def.PidMode ?? "",
            IpcMode = def.IpcMode ?? "",
            TaskRoleArn = RoleOf(task, def) ?? "",
            EphemeralStorageGib = def.EphemeralStorage?.SizeInGiB ?? 0,
        };
        foreach (var v in def.Volumes ?? [])
        {
            if (v.Name is not null)
            {
                spec.Volumes.Add(new VolumeSpec { Name = v.Name, HostSourcePath = v.Host?.SourcePath ?? "" });
            }
        }
        var overrides = (task.Overrides?.Containers ?? []).GroupBy(o => o.Name).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        foreach (var c in def.ContainerDefinitions ?? [])
        {
            if (c.Name is null)
            {
                continue;
            }
            var o = overrides.GetValueOrDefault(c.Name);
            var cs = new ContainerSpec
            {
                Name = c.Name,
                // A service deployment's resolved digest, when it has one (VersionConsistency); else the definition's image.
                Image = task.Containers.FirstOrDefault(x => x.Name == c.Name)?.PinnedImage ?? c.Image ?? "",
                Essential = c.Essential != false,
                CpuUnits = o?.Cpu ?? c.Cpu ?? 0,
                MemoryMib = o?.Memory ?? c.Memory ?? 0,
                MemoryReservationMib = o?.MemoryReservation ?? c.MemoryReservation ?? 0,
                WorkingDirectory = c.WorkingDirectory ?? "",
                User = c.User ?? "",
                Hostname = c.Hostname ?? "",
                StopTimeoutSeconds = c.StopTimeout ?? 30,
            };
            cs.Command.AddRange(o?.Command ?? c.Command ?? []);
            cs.EntryPoint.AddRange(c.EntryPoint ?? []);
            foreach (var e in c.Environment ?? [])
            {
                cs.Environment.Add(new Berth.Core.Agent.KeyValue { Name = e.Name ?? "", Value = e.Value ?? "" });
            }
            foreach (var e in o?.Environment ?? [])
            {
                cs.Environment.Add(new Berth.Core.Agent.KeyValue { Name = e.Name, Value = e.Value });
            }
            foreach (var pm in c.PortMappings ?? [])
            {
                if (pm.ContainerPort is { } cp)
                {
                    cs.PortMappings.Add(new Berth.Core.Agent.PortMapping { ContainerPort = cp, HostPort = pm.HostPort ?? 0, Protocol = pm.Protocol ?? "tcp" });
                }
            }
            foreach (var mp in c.MountPoints ?? [])
            {
                if (mp.SourceVolume is not null && mp.ContainerPath is not null)
                {
                    cs.MountPoints.Add(new Berth.Core.Agent.MountPoint { SourceVolume = mp.SourceVolume, ContainerPath = mp.ContainerPath, ReadOnly = mp.ReadOnly == true });
                }
            }
            foreach (var kv in c.DockerLabels ?? [])
            {
                cs.DockerLabels[kv.Key] = kv.Value;
            }
            cs.Links.AddRange(c.Links ?? []);
            foreach (var u in c.Ulimits ?? [])
            {
                cs.Ulimits.Add(new Berth.Core.Agent.Ulimit { Name = u.Name ?? "", Soft = u.SoftLimit ?? 0, Hard = u.HardLimit ?? 0 });
            }
            if (c.LogConfiguration is { } lc)
            {
                var log = new Berth.Core.Agent.LogConfiguration { LogDriver = lc.LogDriver ?? "" };
                foreach (var kv in lc.Options ?? [])
                {
                    log.Options[kv.Key] = kv.Value;
                }
                cs.LogConfiguration = log;
            }
            foreach (var d in c.DependsOn ?? [])
            {
                cs.DependsOn.Add(new Berth.Core.Agent.ContainerDependency { ContainerName = d.ContainerName ?? "", Condition = d.Condition ?? "START" });
            }
            if (c.HealthCheck is { Command.Count: > 0 } hc)
            {
                var h = new Berth.Core.Agent.HealthCheck
                {
                    IntervalSeconds = hc.Interval ?? 30,
                    TimeoutSeconds = hc.Timeout ?? 5,
                    Retries = hc.Retries ?? 3,
                    StartPeriodSeconds = hc.StartPeriod ?? 0,
                };
                h.Command.AddRange(hc.Command);
                cs.HealthCheck = h;
            }
            AddOptions(cs, c);
            spec.Containers.Add(cs);
        }
        return spec;
    }

    /// <summary>
    /// What the agent's task metadata endpoint shows and only the server knows: the launch type, the service the
    /// task belongs to (its group is <c>service:NAME</c>), and each container's ARN as DescribeTasks gives it.
    /// </summary>
    public static TaskMetadata Metadata(TaskRecord task, Berth.Core.Arns arns)
    {
        var m = new TaskMetadata
        {
            LaunchType = task.LaunchType,
            ServiceName = task.Group is { } g && g.StartsWith("service:", StringComparison.Ordinal) ? g["service:".Length..] : "",
        };
        var prefix = $"arn:aws:ecs:{arns.Identity.Region}:{arns.Identity.AccountId}:container/{task.Cluster}/{task.Id}/";
        foreach (var c in task.Containers)
        {
            m.ContainerArns[c.Name] = prefix + (c.Uuid ?? TaskViews.ContainerUuid(task.Id, c.Name));
        }
        return m;
    }

    /// <summary>The container options RegisterTaskDefinition lets through (it refuses the ones Berth cannot run).</summary>
    private static void AddOptions(ContainerSpec cs, ContainerDefinition c)
    {
        cs.Privileged = c.Privileged == true;
        cs.ReadonlyRootFilesystem = c.ReadonlyRootFilesystem == true;
        cs.DnsServers.AddRange(c.DnsServers ?? []);
        cs.DnsSearchDomains.AddRange(c.DnsSearchDomains ?? []);
        foreach (var h in c.ExtraHosts ?? [])
        {
            cs.ExtraHosts.Add(new Berth.Core.Agent.HostEntry { Hostname = h.Hostname ?? "", IpAddress = h.IpAddress ?? "" });
        }
        foreach (var v in c.VolumesFrom ?? [])
        {
            if (v.SourceContainer is not null)
            {
                cs.VolumesFrom.Add(new Berth.Core.Agent.VolumeFrom { SourceContainer = v.SourceContainer, ReadOnly = v.ReadOnly == true });
            }
        }
        foreach (var sc in c.SystemControls ?? [])
        {
            if (sc.Namespace is not null)
            {
                cs.SystemControls[sc.Namespace] = sc.Value ?? "";
            }
        }
        cs.DisableNetworking = c.DisableNetworking == true;
        cs.Interactive = c.Interactive == true;
        cs.PseudoTerminal = c.PseudoTerminal == true;
        cs.DockerSecurityOptions.AddRange(c.DockerSecurityOptions ?? []);
        cs.StartTimeoutSeconds = c.StartTimeout ?? 0;
        if (c.LinuxParameters is { } lp)
        {
            var l = new Berth.Core.Agent.LinuxParameters
            {
                InitProcessEnabled = lp.InitProcessEnabled == true,
                SharedMemorySizeMib = lp.SharedMemorySize ?? 0,
            };
            l.CapabilitiesAdd.AddRange(lp.Capabilities?.Add ?? []);
            l.CapabilitiesDrop.AddRange(lp.Capabilities?.Drop ?? []);
            foreach (var d in lp.Devices ?? [])
            {
                var dev = new Berth.Core.Agent.Device { HostPath = d.HostPath ?? "", ContainerPath = d.ContainerPath ?? "" };
                dev.Permissions.AddRange(d.Permissions ?? []);
                l.Devices.Add(dev);
            }
            foreach (var t in lp.Tmpfs ?? [])
            {
                var tmpfs = new Berth.Core.Agent.Tmpfs { ContainerPath = t.ContainerPath ?? "", SizeMib = t.Size ?? 0 };
                tmpfs.MountOptions.AddRange(t.MountOptions ?? []);
                l.Tmpfs.Add(tmpfs);
            }
            if (lp.MaxSwap is { } swap)
            {
                l.MaxSwapMib = swap;
            }
            if (lp.Swappiness is { } swappiness)
            {
                l.Swappiness = swappiness;
            }
            cs.LinuxParameters = l;
        }
    }
}
