using System.Globalization;
using Docker.DotNet.Models;
using Proto = Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>Turns a container of the server's typed task spec (overrides already applied) into Docker's create parameters.</summary>
internal static class ContainerSpec
{
    // ECS's health check defaults, for fields the definition leaves at 0.
    private const int DefaultHealthIntervalSeconds = 30;
    private const int DefaultHealthTimeoutSeconds = 5;
    private const int DefaultHealthRetries = 3;

    public static string ContainerName(Proto.TaskSpec task, Proto.ContainerSpec c, string taskId)
        => Sanitize($"ecs-{task.Family}-{task.Revision.ToString(CultureInfo.InvariantCulture)}-{c.Name}-{taskId}");

    /// <param name="labels">Berth's and ECS's labels (task ARN, cluster, family, ...); they win over the definition's dockerLabels.</param>
    /// <param name="hostPaths">The host path to bind per host volume name, as the host policy checked it (<see cref="HostPolicyCheck"/>); null: the definition's.</param>
    public static CreateContainerParameters Build(Proto.TaskSpec task, Proto.ContainerSpec c, string taskId, IReadOnlyDictionary<string, string> labels,
        IReadOnlyDictionary<string, string>? hostPaths = null)
    {
        var networkMode = task.NetworkMode is { Length: > 0 } m ? m : "bridge";

        // In order; a later entry of the same name wins (the server appends the overrides' entries).
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in c.Environment)
        {
            env[kv.Name] = kv.Value;
        }

        var exposed = new Dictionary<string, EmptyStruct>();
        var bindings = new Dictionary<string, IList<PortBinding>>();
        foreach (var pm in c.PortMappings)
        {
            var key = $"{pm.ContainerPort.ToString(CultureInfo.InvariantCulture)}/{(pm.Protocol is { Length: > 0 } p ? p : "tcp")}";
            exposed[key] = default;
            if (networkMode == "bridge")
            {
                // hostPort 0: Docker picks a free ephemeral port.
                bindings[key] = [new PortBinding { HostPort = pm.HostPort > 0 ? pm.HostPort.ToString(CultureInfo.InvariantCulture) : "" }];
            }
        }

        var volumes = task.Volumes.Where(v => v.Name.Length > 0).GroupBy(v => v.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        var binds = new List<string>();
        foreach (var mp in c.MountPoints)
        {
            if (mp.ContainerPath.Length == 0 || !volumes.TryGetValue(mp.SourceVolume, out var vol))
            {
                continue;
            }
            var source = vol.HostSourcePath is { Length: > 0 } hostPath ? hostPaths?.GetValueOrDefault(vol.Name) ?? hostPath : Sanitize(TaskVolumePrefix(taskId) + vol.Name);
            binds.Add($"{source}:{mp.ContainerPath}{(mp.ReadOnly ? ":ro" : "")}");
        }

        var create = new CreateContainerParameters
        {
            Name = ContainerName(task, c, taskId),
            Image = c.Image,
            Cmd = c.Command.Count > 0 ? [.. c.Command] : null!,
            Entrypoint = c.EntryPoint.Count > 0 ? [.. c.EntryPoint] : null!,
            Env = env.Select(kv => $"{kv.Key}={kv.Value}").ToList(),
            WorkingDir = c.WorkingDirectory is { Length: > 0 } wd ? wd : null!,
            User = c.User is { Length: > 0 } u ? u : null!,
            // Docker sets it in host mode too (the container keeps its own UTS namespace).
            Hostname = (c.Hostname.Length == 0 ? null : c.Hostname)!,
            Labels = new Dictionary<string, string>(c.DockerLabels, StringComparer.Ordinal)
                .Concat(labels).GroupBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal),
            ExposedPorts = exposed,
            StopTimeout = TimeSpan.FromSeconds(c.StopTimeoutSeconds > 0 ? c.StopTimeoutSeconds : 30),
            Healthcheck = c.HealthCheck is { Command.Count: > 0 } hc ? new HealthcheckConfig
            {
                Test = [.. hc.Command],
                Interval = TimeSpan.FromSeconds(hc.IntervalSeconds > 0 ? hc.IntervalSeconds : DefaultHealthIntervalSeconds),
                Timeout = TimeSpan.FromSeconds(hc.TimeoutSeconds > 0 ? hc.TimeoutSeconds : DefaultHealthTimeoutSeconds),
                Retries = hc.Retries > 0 ? hc.Retries : DefaultHealthRetries,
                StartPeriod = TimeSpan.FromSeconds(hc.StartPeriodSeconds),
            } : null!,
            HostConfig = new HostConfig
            {
                // awsvpc: the task engine makes the container join its pause container (AwsvpcNetwork.Join); until then, no network.
                NetworkMode = networkMode == "awsvpc" ? "none" : networkMode,
                PortBindings = bindings,
                CPUShares = c.CpuUnits > 0 ? c.CpuUnits : 2, // Docker's minimum; ECS gives cpu 0 the same floor
                Memory = c.MemoryMib > 0 ? c.MemoryMib * 1024L * 1024L : 0,
                MemoryReservation = c.MemoryReservationMib > 0 ? c.MemoryReservationMib * 1024L * 1024L : 0,
                Links = networkMode == "bridge" && c.Links.Count > 0 ? c.Links.Select(l => l.Contains(':', StringComparison.Ordinal) ? l : $"{l}:{l}").ToList() : null!,
                Binds = binds,
                Ulimits = c.Ulimits.Count > 0 ? c.Ulimits.Select(x => new Docker.DotNet.Models.Ulimit { Name = x.Name, Soft = x.Soft, Hard = x.Hard }).ToList() : null!,
                LogConfig = LogConfigOf(c.LogConfiguration),
            },
        };
        ApplyOptions(create, task, c, taskId);
        return create;
    }

    /// <summary>
    /// The container whose namespaces a task with <c>pidMode</c> or <c>ipcMode</c> <c>task</c> shares: the first one
    /// (in definition order) that depends on no other, so it is started before any container that joins it.
    /// </summary>
    /// <remarks>
    /// The ECS agent holds these namespaces in a pause container; Berth lets one of the task's own containers hold
    /// them, so no extra image is needed. The others join it with <c>container:NAME</c> and wait for it to run
    /// (<see cref="Prerequisites"/>). An essential holder lives as long as the task; a non-essential one that exits
    /// early leaves containers not yet started unable to join, and the task then fails to start.
    /// </remarks>
    public static Proto.ContainerSpec? NamespaceHolder(Proto.TaskSpec task)
        => task.PidMode != "task" && task.IpcMode != "task" ? null
            : task.Containers.FirstOrDefault(c => c.Essential && c.DependsOn.Count == 0)
                ?? task.Containers.FirstOrDefault(c => c.DependsOn.Count == 0)
                ?? task.Containers.FirstOrDefault();

    /// <summary>
    /// Containers of the task that must exist before <paramref name="c"/> is created, beyond its dependsOn: the
    /// sources of its volumesFrom (Docker copies their mounts at create time), and, running (<c>Running</c> true), the
    /// namespace holder and the containers it links to (as the ECS agent orders links).
    /// </summary>
    public static IEnumerable<(string Name, bool Running)> Prerequisites(Proto.TaskSpec task, Proto.ContainerSpec c)
    {
        foreach (var v in c.VolumesFrom)
        {
            yield return (v.SourceContainer, false);
        }
        if (task.NetworkMode is "" or "bridge")
        {
            foreach (var l in c.Links)
            {
                yield return (l.Split(':', 2)[0], true);
            }
        }
        if (NamespaceHolder(task) is { } holder && holder.Name != c.Name)
        {
            yield return (holder.Name, true);
        }
    }

    private const long MiB = 1024L * 1024L;

    /// <summary>The container options of ECS's container definition beyond the basics, as ECS maps them onto Docker.</summary>
    private static void ApplyOptions(CreateContainerParameters create, Proto.TaskSpec task, Proto.ContainerSpec c, string taskId)
    {
        var host = create.HostConfig ??= new HostConfig();
        host.Privileged = c.Privileged;
        host.ReadonlyRootfs = c.ReadonlyRootFilesystem;
        if (c.DnsServers.Count > 0)
        {
            host.DNS = [.. c.DnsServers];
        }
        if (c.DnsSearchDomains.Count > 0)
        {
            host.DNSSearch = [.. c.DnsSearchDomains];
        }
        if (c.ExtraHosts.Count > 0)
        {
            host.ExtraHosts = c.ExtraHosts.Select(h => $"{h.Hostname}:{h.IpAddress}").ToList();
        }
        if (c.VolumesFrom.Count > 0)
        {
            host.VolumesFrom = c.VolumesFrom
                .Select(v => task.Containers.FirstOrDefault(x => x.Name == v.SourceContainer) is { } source
                    ? $"{ContainerName(task, source, taskId)}:{(v.ReadOnly ? "ro" : "rw")}"
                    : throw new ArgumentException($"volumesFrom: container '{v.SourceContainer}' is not in the task"))
                .ToList();
        }
        if (host.NetworkMode == "bridge" && c.Links.Count > 0)
        {
            // A link names a container of the definition; Docker wants that container's own name.
            host.Links = c.Links.Select(l =>
            {
                var parts = l.Split(':', 2);
                return task.Containers.FirstOrDefault(x => x.Name == parts[0]) is { } target
                    ? $"{ContainerName(task, target, taskId)}:{(parts.Length > 1 && parts[1].Length > 0 ? parts[1] : parts[0])}"
                    : throw new ArgumentException($"links: container '{parts[0]}' is not in the task");
            }).ToList();
        }
        if (c.SystemControls.Count > 0)
        {
            host.Sysctls = new Dictionary<string, string>(c.SystemControls, StringComparer.Ordinal);
        }
        if (c.DockerSecurityOptions.Count > 0)
        {
            host.SecurityOpt = [.. c.DockerSecurityOptions];
        }
        create.NetworkDisabled = c.DisableNetworking;
        create.OpenStdin = c.Interactive;
        create.Tty = c.PseudoTerminal;

        var holder = NamespaceHolder(task);
        var holderName = holder is null ? null : ContainerName(task, holder, taskId);
        host.PidMode = task.PidMode switch
        {
            "host" => "host",
            "task" when holder!.Name != c.Name => $"container:{holderName}",
            _ => null!,
        };
        host.IpcMode = task.IpcMode switch
        {
            "host" => "host",
            "none" => "none",
            "task" when holder!.Name == c.Name => "shareable",
            "task" => $"container:{holderName}",
            _ => null!,
        };

        if (c.LinuxParameters is not { } lp)
        {
            return;
        }
        if (lp.CapabilitiesAdd.Count > 0)
        {
            host.CapAdd = [.. lp.CapabilitiesAdd];
        }
        if (lp.CapabilitiesDrop.Count > 0)
        {
            host.CapDrop = [.. lp.CapabilitiesDrop];
        }
        if (lp.Devices.Count > 0)
        {
            host.Devices = lp.Devices.Select(d => new DeviceMapping
            {
                PathOnHost = d.HostPath,
                PathInContainer = d.ContainerPath is { Length: > 0 } p ? p : d.HostPath,
                CgroupPermissions = d.Permissions.Count == 0 ? "rwm"
                    : string.Concat(d.Permissions.Select(x => x switch { "read" => "r", "write" => "w", "mknod" => "m", _ => "" })),
            }).ToList();
        }
        if (lp.InitProcessEnabled)
        {
            host.Init = true;
        }
        if (lp.SharedMemorySizeMib > 0)
        {
            host.ShmSize = lp.SharedMemorySizeMib * MiB;
        }
        if (lp.Tmpfs.Count > 0)
        {
            host.Tmpfs = lp.Tmpfs.ToDictionary(
                t => t.ContainerPath,
                t => string.Join(',', new[] { $"size={t.SizeMib.ToString(CultureInfo.InvariantCulture)}m" }.Concat(t.MountOptions)),
                StringComparer.Ordinal);
        }
        if (lp.HasMaxSwapMib)
        {
            // ECS: --memory-swap is the container's memory plus maxSwap; 0 means no swap at all. The server refuses
            // maxSwap without a hard memory limit (Docker needs one to bound the swap).
            host.MemorySwap = (c.MemoryMib + (long)lp.MaxSwapMib) * MiB;
            host.MemorySwappiness = lp.HasSwappiness ? lp.Swappiness : 60;
        }
    }

    /// <summary>The start of the name of every task-scoped Docker volume of the task (removed with its containers after the cleanup wait).</summary>
    public static string TaskVolumePrefix(string taskId) => Sanitize($"ecs-{taskId}-");

    /// <summary>
    /// awslogs: Docker's json-file, which the agent follows and ships (Logs.LogShipper), so <c>docker logs</c> works too.
    /// The drivers Docker has itself (json-file, syslog, journald, gelf, fluentd, splunk) are passed to it with their
    /// options, as ECS's agent does; RegisterTaskDefinition refuses any other. No configuration: json-file.
    /// </summary>
    internal static LogConfig LogConfigOf(Proto.LogConfiguration? lc) => lc switch
    {
        null or { LogDriver: "" or "awslogs" } => new LogConfig { Type = "json-file", Config = new Dictionary<string, string>() },
        _ => new LogConfig { Type = lc.LogDriver, Config = new Dictionary<string, string>(lc.Options, StringComparer.Ordinal) },
    };

    /// <summary>Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-].</summary>
    private static string Sanitize(string name)
        => new(name.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '.' or '-' ? ch : '-').ToArray());

    /// <summary>Splits "repo[:tag]" / "repo@digest" for the pull API.</summary>
    public static (string Image, string? Tag) SplitReference(string image)
    {
        if (image.Contains('@', StringComparison.Ordinal))
        {
            return (image, null);
        }
        var (repository, tag, _) = Berth.Core.ImageReference.Parse(image);
        return (repository, tag ?? "latest");
    }
}
