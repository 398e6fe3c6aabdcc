using System.Text.RegularExpressions;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;

namespace Berth.ControlPlane.Ecs;

/// <summary>
/// RegisterTaskDefinition's checks of volumes and container options: each member either runs as ECS defines it or
/// is refused here with a message naming it, so nothing is accepted and then dropped. ECS's own wording is kept
/// where it is known ("Unknown volume 'x'.", "Invalid 'volumesFrom' setting. Unknown container: 'x'.", "Container
/// port 80 is used in more than one port mapping for container web"), prefixed with the member's path.
/// </summary>
/// <remarks>
/// networkMode, logConfiguration and the Fargate members (requiresCompatibilities, task cpu/memory) are checked
/// elsewhere. The README's task definition table lists what Berth does with every member.
/// </remarks>
internal static partial class TaskDefinitionRules
{
    /// <summary>Linux capabilities ECS accepts in linuxParameters.capabilities (KernelCapabilities).</summary>
    private static readonly HashSet<string> Capabilities = new(StringComparer.Ordinal)
    {
        "ALL", "AUDIT_CONTROL", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER",
        "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD",
        "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
        "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
    };

    private const string NoSecretsStore = "is not supported until Berth has a secrets store";

    public static void Validate(RegisterTaskDefinitionRequest req)
    {
        if (req.TaskRoleArn is { } taskRole && !IsRoleArn(taskRole))
        {
            throw AwsException.Client($"taskRoleArn: '{taskRole}' is not an IAM role name or ARN (arn:aws:iam::ACCOUNT:role/NAME).");
        }
        if (req.ExecutionRoleArn is { } executionRole && !IsRoleArn(executionRole))
        {
            throw AwsException.Client($"executionRoleArn: '{executionRole}' is not an IAM role name or ARN (arn:aws:iam::ACCOUNT:role/NAME).");
        }
        if (req.RequiresCompatibilities?.Contains("FARGATE") == true)
        {
            RefuseOnFargate(req);
            // ECS: on Fargate the execution role pulls private images and ships awslogs, so it must be there. Berth's
            // agent does both with its own identity, but a definition ECS refuses is refused here too.
            if (string.IsNullOrEmpty(req.ExecutionRoleArn) && req.ContainerDefinitions?.Any(c => c.LogConfiguration?.LogDriver == "awslogs") == true)
            {
                throw AwsException.Client("Fargate requires task definition to have execution role ARN to support log driver awslogs.");
            }
        }
        ValidateTaskMembers(req);
        var volumes = ValidateVolumes(req.Volumes);
        var containers = req.ContainerDefinitions!;
        var names = containers.Select(c => c.Name!).ToHashSet(StringComparer.Ordinal);
        var mode = req.NetworkMode ?? "bridge";
        for (var i = 0; i < containers.Count; i++)
        {
            ValidateContainer(containers[i], $"containerDefinitions[{i}]", mode, volumes, names);
            if (req.IpcMode == "host")
            {
                RefuseIpcSysctls(containers[i], $"containerDefinitions[{i}]");
            }
        }
        RefuseStartCycles(containers);
    }

    /// <summary>
    /// The agent creates a container after those it depends on, takes volumes from and links to: a cycle among
    /// these would leave the task PENDING for ever. (Cycles of dependsOn alone are refused before this.)
    /// </summary>
    private static void RefuseStartCycles(List<ContainerDefinition> containers)
    {
        var edges = containers.ToDictionary(c => c.Name!, c => (c.DependsOn ?? []).Select(d => d.ContainerName!)
            .Concat((c.VolumesFrom ?? []).Select(v => v.SourceContainer!))
            .Concat((c.Links ?? []).Select(l => l.Split(':')[0]))
            .ToList(), StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in containers)
        {
            if (Visit(c.Name!) is { } cycle)
            {
                throw AwsException.Client($"containerDefinitions: dependsOn, links and volumesFrom form a cycle ({cycle}); none of these containers could start.");
            }
        }

        string? Visit(string name)
        {
            switch (state.GetValueOrDefault(name))
            {
                case 1:
                    return name;
                case 2:
                    return null;
            }
            state[name] = 1;
            foreach (var next in edges.GetValueOrDefault(name) ?? [])
            {
                if (Visit(next) is { } path)
                {
                    return name + " -> " + path;
                }
            }
            state[name] = 2;
            return null;
        }
    }

    /// <summary>
    /// What a task definition that requires FARGATE may not use (ECS developer guide, "Amazon ECS task definition
    /// differences for Fargate"), with ECS's messages: "Tasks using the Fargate launch type do not support ipcMode."
    /// and "... pidMode 'host'. The supported value for pidMode is 'task'." for the task members, "Fargate compatible
    /// task definitions do not support X" for the others. pidMode 'task' is valid on Fargate (platform 1.4.0 on).
    /// </summary>
    private static void RefuseOnFargate(RegisterTaskDefinitionRequest req)
    {
        if (req.IpcMode is not null)
        {
            throw AwsException.Client("Tasks using the Fargate launch type do not support ipcMode.");
        }
        if (req.PidMode is { } pid && pid != "task")
        {
            throw AwsException.Client($"Tasks using the Fargate launch type do not support pidMode '{pid}'. The supported value for pidMode is 'task'.");
        }
        if (req.PlacementConstraints is { Count: > 0 })
        {
            throw AwsException.Client("Fargate compatible task definitions do not support constraints");
        }
        foreach (var v in req.Volumes ?? [])
        {
            if (v.DockerVolumeConfiguration is not null)
            {
                throw AwsException.Client("Fargate compatible task definitions do not support dockerVolumeConfiguration");
            }
        }
        foreach (var c in req.ContainerDefinitions ?? [])
        {
            var lp = c.LinuxParameters;
            string? member = c.Privileged == true ? "privileged"
                : c.DockerSecurityOptions is { Count: > 0 } ? "dockerSecurityOptions"
                : c.DisableNetworking is not null ? "disableNetworking"
                : c.DnsServers is { Count: > 0 } ? "dnsServers"
                : c.DnsSearchDomains is { Count: > 0 } ? "dnsSearchDomains"
                : c.ExtraHosts is { Count: > 0 } ? "extraHosts"
                : lp?.Devices is { Count: > 0 } ? "devices"
                : lp?.SharedMemorySize is not null ? "sharedMemorySize"
                : lp?.Tmpfs is { Count: > 0 } ? "tmpfs"
                : lp?.MaxSwap is not null ? "maxSwap"
                : lp?.Swappiness is not null ? "swappiness"
                : lp?.Capabilities?.Add?.FirstOrDefault(a => a != "SYS_PTRACE") is { } cap ? "capabilities add " + cap
                : null;
            if (member is not null)
            {
                throw AwsException.Client($"Fargate compatible task definitions do not support {member}");
            }
        }
    }

    private static void ValidateTaskMembers(RegisterTaskDefinitionRequest req)
    {
        if (req.ProxyConfiguration is not null)
        {
            throw AwsException.Client("proxyConfiguration: App Mesh proxy configuration is not supported by Berth.");
        }
        if (req.InferenceAccelerators is { Count: > 0 })
        {
            throw AwsException.Client("inferenceAccelerators: Elastic Inference accelerators are not supported by Berth.");
        }
        if (req.EnableFaultInjection == true)
        {
            throw AwsException.Client("enableFaultInjection: fault injection is not supported by Berth.");
        }
        if (req.EphemeralStorage is { SizeInGiB: { } gib } && (gib < 21 || gib > 200))
        {
            throw AwsException.Client($"ephemeralStorage.sizeInGiB: must be between 21 and 200 GiB, got {gib}.");
        }
        if (req.RuntimePlatform?.OperatingSystemFamily is { } os && os != "LINUX")
        {
            throw AwsException.Client($"runtimePlatform.operatingSystemFamily: Berth runs Linux containers only, not {os}.");
        }
    }

    /// <returns>The volume names.</returns>
    private static HashSet<string> ValidateVolumes(List<Volume>? volumes)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < (volumes?.Count ?? 0); i++)
        {
            var v = volumes![i];
            var at = $"volumes[{i}]";
            if (v is null)
            {
                throw AwsException.Client($"{at}: must not be null.");
            }
            if (string.IsNullOrEmpty(v.Name))
            {
                throw AwsException.Client($"{at}.name: volume.name should not be null or empty.");
            }
            if (!NamePattern().IsMatch(v.Name))
            {
                throw AwsException.Client($"{at}.name: volume.name contains invalid characters (up to 255 letters, numbers, hyphens and underscores).");
            }
            if (!names.Add(v.Name))
            {
                throw AwsException.Client($"{at}.name: duplicate volume name '{v.Name}': each volume of a task definition needs its own name.");
            }
            if (v.DockerVolumeConfiguration is not null)
            {
                throw AwsException.Client($"{at}.dockerVolumeConfiguration: Docker volume configurations (scope, autoprovision, driver) are not supported by Berth yet; use host or omit it for a task-scoped volume.");
            }
            if (v.EfsVolumeConfiguration is not null)
            {
                throw AwsException.Client($"{at}.efsVolumeConfiguration: Amazon EFS volumes are not supported by Berth.");
            }
            if (v.FsxWindowsFileServerVolumeConfiguration is not null)
            {
                throw AwsException.Client($"{at}.fsxWindowsFileServerVolumeConfiguration: FSx for Windows File Server volumes are not supported by Berth.");
            }
            if (v.S3filesVolumeConfiguration is not null)
            {
                throw AwsException.Client($"{at}.s3filesVolumeConfiguration: S3 Files volumes are not supported by Berth.");
            }
            if (v.ConfiguredAtLaunch == true)
            {
                throw AwsException.Client($"{at}.configuredAtLaunch: volumes configured at launch (Amazon EBS) are not supported by Berth.");
            }
            if (v.Host?.SourcePath is { Length: > 0 } path && !path.StartsWith('/'))
            {
                throw AwsException.Client($"{at}.host.sourcePath: must be an absolute path on the host, got '{path}'.");
            }
        }
        return names;
    }

    private static void ValidateContainer(ContainerDefinition c, string at, string mode, HashSet<string> volumes, HashSet<string> containers)
    {
        var name = c.Name!;
        if (c.Secrets is { Count: > 0 })
        {
            throw AwsException.Client($"{at}.secrets: {NoSecretsStore} (container '{name}'); pass the values in environment for now.");
        }
        if (c.RepositoryCredentials is not null)
        {
            throw AwsException.Client($"{at}.repositoryCredentials: {NoSecretsStore} (container '{name}'); images in Berth's own registry need none.");
        }
        if (c.EnvironmentFiles is { Count: > 0 })
        {
            throw AwsException.Client($"{at}.environmentFiles: environment files in Amazon S3 are not supported by Berth (container '{name}').");
        }
        if (c.FirelensConfiguration is not null)
        {
            throw AwsException.Client($"{at}.firelensConfiguration: FireLens log routing is not supported by Berth (container '{name}').");
        }
        if (c.CredentialSpecs is { Count: > 0 })
        {
            throw AwsException.Client($"{at}.credentialSpecs: gMSA credential specs are not supported by Berth (container '{name}').");
        }
        if (c.ResourceRequirements is { Count: > 0 } rr)
        {
            throw AwsException.Client($"{at}.resourceRequirements: {rr[0]?.Type ?? "resource"} requirements are not supported by Berth (container '{name}').");
        }
        if (c.RestartPolicy is { Enabled: true })
        {
            throw AwsException.Client($"{at}.restartPolicy: container restart policies are not supported by Berth yet (container '{name}'); the task stops when an essential container exits.");
        }
        if (c.StartTimeout is < 0)
        {
            throw AwsException.Client($"{at}.startTimeout: must be 0 or more seconds (container '{name}').");
        }
        if (c.StopTimeout is < 0)
        {
            throw AwsException.Client($"{at}.stopTimeout: must be 0 or more seconds (container '{name}').");
        }

        ValidatePorts(c, at);
        ValidateMounts(c, at, volumes, containers);
        ValidateNetworkOptions(c, at, mode, containers);
        ValidateLinux(c, at);

        for (var j = 0; j < (c.DockerSecurityOptions?.Count ?? 0); j++)
        {
            var o = c.DockerSecurityOptions![j];
            if (string.IsNullOrWhiteSpace(o))
            {
                throw AwsException.Client($"{at}.dockerSecurityOptions[{j}]: must not be empty (container '{name}').");
            }
            if (o.StartsWith("credentialspec:", StringComparison.OrdinalIgnoreCase))
            {
                throw AwsException.Client($"{at}.dockerSecurityOptions[{j}]: credentialspec is for Windows gMSA and is not supported by Berth (container '{name}').");
            }
        }
        for (var j = 0; j < (c.Ulimits?.Count ?? 0); j++)
        {
            var u = c.Ulimits![j];
            if (u.SoftLimit > u.HardLimit)
            {
                throw AwsException.Client($"{at}.ulimits[{j}].softLimit: {u.SoftLimit} is above hardLimit {u.HardLimit} for ulimit '{u.Name}' (container '{name}').");
            }
        }
    }

    private static void ValidatePorts(ContainerDefinition c, string at)
    {
        var seen = new HashSet<(int, string)>();
        for (var j = 0; j < (c.PortMappings?.Count ?? 0); j++)
        {
            var pm = c.PortMappings![j];
            if (pm.ContainerPortRange is not null)
            {
                throw AwsException.Client($"{at}.portMappings[{j}].containerPortRange: port ranges are not supported by Berth yet (container '{c.Name}'); map each port.");
            }
            if (pm.ContainerPort is { } cp && !seen.Add((cp, pm.Protocol ?? "tcp")))
            {
                throw AwsException.InvalidParameter($"{at}.portMappings[{j}].containerPort: Container port {cp} is used in more than one port mapping for container {c.Name}");
            }
        }
    }

    private static void ValidateMounts(ContainerDefinition c, string at, HashSet<string> volumes, HashSet<string> containers)
    {
        for (var j = 0; j < (c.MountPoints?.Count ?? 0); j++)
        {
            var mp = c.MountPoints![j];
            if (mp.SourceVolume is null || !volumes.Contains(mp.SourceVolume))
            {
                throw AwsException.Client($"{at}.mountPoints[{j}].sourceVolume: Unknown volume '{mp.SourceVolume}'.");
            }
            if (mp.ContainerPath is not { Length: > 0 } path || !path.StartsWith('/'))
            {
                throw AwsException.Client($"{at}.mountPoints[{j}].containerPath: an absolute path in the container is required (container '{c.Name}').");
            }
        }
        for (var j = 0; j < (c.VolumesFrom?.Count ?? 0); j++)
        {
            var source = c.VolumesFrom![j].SourceContainer;
            if (source is null || !containers.Contains(source))
            {
                throw AwsException.Client($"{at}.volumesFrom[{j}].sourceContainer: Invalid 'volumesFrom' setting. Unknown container: '{source}'.");
            }
            if (source == c.Name)
            {
                throw AwsException.Client($"{at}.volumesFrom[{j}].sourceContainer: container '{c.Name}' cannot take volumes from itself.");
            }
        }
    }

    private static void ValidateNetworkOptions(ContainerDefinition c, string at, string mode, HashSet<string> containers)
    {
        var name = c.Name!;
        if (c.Links is { Count: > 0 })
        {
            if (mode != "bridge")
            {
                throw AwsException.Client($"{at}.links: links are only supported in the bridge network mode, not {mode} (container '{name}').");
            }
            for (var j = 0; j < c.Links.Count; j++)
            {
                var target = c.Links[j]?.Split(':')[0];
                if (target is null || !containers.Contains(target))
                {
                    throw AwsException.Client($"{at}.links[{j}]: Invalid 'links' setting. Unknown container: '{target}'.");
                }
                if (target == name)
                {
                    throw AwsException.Client($"{at}.links[{j}]: container '{name}' cannot link to itself.");
                }
            }
        }
        if (mode == "awsvpc")
        {
            // ECS: not supported for tasks that use the awsvpc network mode (the task's network belongs to the task).
            foreach (var (member, set) in new (string, bool)[]
            {
                ("hostname", c.Hostname is not null),
                ("dnsServers", c.DnsServers is { Count: > 0 }),
                ("dnsSearchDomains", c.DnsSearchDomains is { Count: > 0 }),
                ("extraHosts", c.ExtraHosts is { Count: > 0 }),
                ("disableNetworking", c.DisableNetworking == true),
            })
            {
                if (set)
                {
                    throw AwsException.Client($"{at}.{member}: not supported in the awsvpc network mode (container '{name}').");
                }
            }
        }
        for (var j = 0; j < (c.ExtraHosts?.Count ?? 0); j++)
        {
            var h = c.ExtraHosts![j];
            if (string.IsNullOrWhiteSpace(h.Hostname) || h.Hostname.Contains(':', StringComparison.Ordinal))
            {
                throw AwsException.Client($"{at}.extraHosts[{j}].hostname: a host name is required (container '{name}').");
            }
            if (!System.Net.IPAddress.TryParse(h.IpAddress, out _))
            {
                throw AwsException.Client($"{at}.extraHosts[{j}].ipAddress: '{h.IpAddress}' is not an IP address (container '{name}').");
            }
        }
        for (var j = 0; j < (c.DnsServers?.Count ?? 0); j++)
        {
            if (!System.Net.IPAddress.TryParse(c.DnsServers![j], out _))
            {
                throw AwsException.Client($"{at}.dnsServers[{j}]: '{c.DnsServers[j]}' is not an IP address (container '{name}').");
            }
        }
        for (var j = 0; j < (c.SystemControls?.Count ?? 0); j++)
        {
            var sc = c.SystemControls![j];
            if (string.IsNullOrWhiteSpace(sc.Namespace) || sc.Value is null)
            {
                throw AwsException.Client($"{at}.systemControls[{j}]: namespace and value are both required (container '{name}').");
            }
            if (mode == "host" && sc.Namespace.StartsWith("net.", StringComparison.Ordinal))
            {
                throw AwsException.Client($"{at}.systemControls[{j}].namespace: network namespace systemControls such as {sc.Namespace} aren't supported for tasks that use the host network mode (they would change the host's own settings) (container '{name}').");
            }
        }
    }

    /// <summary>
    /// ipcMode host: an IPC namespace sysctl would set the host's own (runc refuses it at start, too late for a
    /// clear answer). ECS: "For tasks that use the host IPC mode, IPC namespace systemControls aren't supported."
    /// </summary>
    private static void RefuseIpcSysctls(ContainerDefinition c, string at)
    {
        for (var j = 0; j < (c.SystemControls?.Count ?? 0); j++)
        {
            if (c.SystemControls![j].Namespace is { } ns && IsIpcSysctl(ns))
            {
                throw AwsException.Client($"{at}.systemControls[{j}].namespace: IPC namespace systemControls such as {ns} aren't supported for tasks that use the host IPC mode (they would change the host's own settings) (container '{c.Name}').");
            }
        }
    }

    /// <summary>The sysctls of the IPC namespace, as runc lists them: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*.</summary>
    internal static bool IsIpcSysctl(string name)
        => name == "kernel.sem" || name.StartsWith("kernel.msg", StringComparison.Ordinal) || name.StartsWith("kernel.shm", StringComparison.Ordinal)
            || name.StartsWith("fs.mqueue.", StringComparison.Ordinal);

    private static void ValidateLinux(ContainerDefinition c, string at)
    {
        if (c.LinuxParameters is not { } lp)
        {
            return;
        }
        var name = c.Name!;
        at += ".linuxParameters";
        foreach (var (member, list) in new[] { ("add", lp.Capabilities?.Add), ("drop", lp.Capabilities?.Drop) })
        {
            for (var j = 0; j < (list?.Count ?? 0); j++)
            {
                if (list![j] is not { } cap || !Capabilities.Contains(cap))
                {
                    throw AwsException.Client($"{at}.capabilities.{member}[{j}]: '{list[j]}' is not a capability ECS accepts (for example NET_ADMIN or SYS_PTRACE) (container '{name}').");
                }
            }
        }
        for (var j = 0; j < (lp.Devices?.Count ?? 0); j++)
        {
            var d = lp.Devices![j];
            if (d.HostPath is not { Length: > 0 } hp || !hp.StartsWith('/'))
            {
                throw AwsException.Client($"{at}.devices[{j}].hostPath: an absolute path on the host is required (container '{name}').");
            }
            if (d.ContainerPath is { Length: > 0 } cp && !cp.StartsWith('/'))
            {
                throw AwsException.Client($"{at}.devices[{j}].containerPath: must be an absolute path (container '{name}').");
            }
        }
        for (var j = 0; j < (lp.Tmpfs?.Count ?? 0); j++)
        {
            var t = lp.Tmpfs![j];
            if (t.ContainerPath is not { Length: > 0 } tp || !tp.StartsWith('/'))
            {
                throw AwsException.Client($"{at}.tmpfs[{j}].containerPath: an absolute path in the container is required (container '{name}').");
            }
            if (t.Size is not > 0)
            {
                throw AwsException.Client($"{at}.tmpfs[{j}].size: must be a positive number of MiB (container '{name}').");
            }
            for (var k = 0; k < (t.MountOptions?.Count ?? 0); k++)
            {
                if (string.IsNullOrWhiteSpace(t.MountOptions![k]) || t.MountOptions[k].Contains(',', StringComparison.Ordinal))
                {
                    throw AwsException.Client($"{at}.tmpfs[{j}].mountOptions[{k}]: one mount option per entry (container '{name}').");
                }
            }
        }
        if (lp.SharedMemorySize is < 1)
        {
            throw AwsException.Client($"{at}.sharedMemorySize: must be a positive number of MiB (container '{name}').");
        }
        if (lp.MaxSwap is { } swap)
        {
            if (swap < 0)
            {
                throw AwsException.Client($"{at}.maxSwap: must be 0 or a positive number of MiB (container '{name}').");
            }
            if (c.Memory is null)
            {
                throw AwsException.Client($"{at}.maxSwap: needs the container's memory (hard limit): Docker's swap limit is memory plus maxSwap (container '{name}').");
            }
        }
        if (lp.Swappiness is < 0 or > 100)
        {
            throw AwsException.Client($"{at}.swappiness: must be between 0 and 100 (container '{name}').");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,255}$")]
    private static partial Regex NamePattern();

    /// <summary>
    /// A role as ECS takes it in taskRoleArn / executionRoleArn: a role ARN (with an optional path), or the role's
    /// short name. The role itself is not looked up: Berth has no IAM.
    /// </summary>
    public static bool IsRoleArn(string role) => RolePattern().IsMatch(role);

    [GeneratedRegex(@"^(arn:aws[a-z-]*:iam::[0-9]{12}:role/([\x21-\x7E]{1,510}/)?)?[A-Za-z0-9+=,.@_-]{1,64}$")]
    private static partial Regex RolePattern();
}
