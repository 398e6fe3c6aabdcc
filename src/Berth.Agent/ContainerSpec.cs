using Berth.Aws.Ecs;
using Docker.DotNet.Models;

namespace Berth.Agent;

/// <summary>Turns an ECS container definition (plus the task's overrides) into Docker's create parameters.</summary>
internal static class ContainerSpec
{
    public static string ContainerName(TaskDefinition def, ContainerDefinition c, string taskId)
        => Sanitize($"ecs-{def.Family}-{def.Revision}-{c.Name}-{taskId}");

    public static CreateContainerParameters Build(EcsTask task, TaskDefinition def, ContainerDefinition c, string taskId, IReadOnlyDictionary<string, string> labels)
    {
        var ov = task.Overrides?.ContainerOverrides?.FirstOrDefault(o => o.Name == c.Name);
        var networkMode = def.NetworkMode ?? "bridge";

        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in (c.Environment ?? []).Concat(ov?.Environment ?? []))
        {
            if (kv.Name is { } name)
            {
                env[name] = kv.Value ?? "";
            }
        }

        var exposed = new Dictionary<string, EmptyStruct>();
        var bindings = new Dictionary<string, IList<PortBinding>>();
        foreach (var pm in c.PortMappings ?? [])
        {
            if (pm.ContainerPort is not { } cp)
            {
                continue;
            }
            var key = $"{cp}/{pm.Protocol ?? "tcp"}";
            exposed[key] = default;
            if (networkMode == "bridge")
            {
                // hostPort 0 or absent: Docker picks a free ephemeral port.
                bindings[key] = [new PortBinding { HostPort = pm.HostPort is > 0 ? pm.HostPort.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) : "" }];
            }
        }

        var volumes = (def.Volumes ?? []).Where(v => v.Name is not null).ToDictionary(v => v.Name!, StringComparer.Ordinal);
        var binds = new List<string>();
        foreach (var mp in c.MountPoints ?? [])
        {
            if (mp.SourceVolume is null || mp.ContainerPath is null || !volumes.TryGetValue(mp.SourceVolume, out var vol))
            {
                continue;
            }
            var source = vol.Host?.SourcePath is { Length: > 0 } hostPath ? hostPath : Sanitize($"ecs-{taskId}-{vol.Name}");
            binds.Add($"{source}:{mp.ContainerPath}{(mp.ReadOnly == true ? ":ro" : "")}");
        }

        var memory = ov?.Memory ?? c.Memory;
        var reservation = ov?.MemoryReservation ?? c.MemoryReservation;
        var cpu = ov?.Cpu ?? c.Cpu;

        return new CreateContainerParameters
        {
            Name = ContainerName(def, c, taskId),
            Image = c.Image!,
            Cmd = (ov?.Command ?? c.Command)!,
            Entrypoint = c.EntryPoint!,
            Env = env.Select(kv => $"{kv.Key}={kv.Value}").ToList(),
            WorkingDir = c.WorkingDirectory!,
            User = c.User!,
            Hostname = (networkMode == "host" ? null : c.Hostname)!,
            Labels = new Dictionary<string, string>(c.DockerLabels ?? [], StringComparer.Ordinal)
                .Concat(labels).GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.Last().Value),
            ExposedPorts = exposed,
            StopTimeout = TimeSpan.FromSeconds(c.StopTimeout ?? 30),
            HostConfig = new HostConfig
            {
                NetworkMode = networkMode == "awsvpc" ? "bridge" : networkMode,
                PortBindings = bindings,
                CPUShares = cpu is > 0 ? cpu.Value : 2, // Docker's minimum; ECS gives cpu 0 the same floor
                Memory = memory is > 0 ? memory.Value * 1024L * 1024L : 0,
                MemoryReservation = reservation is > 0 ? reservation.Value * 1024L * 1024L : 0,
                Links = networkMode == "bridge" ? c.Links?.Select(l => l.Contains(':', StringComparison.Ordinal) ? l : $"{l}:{l}").ToList()! : null!,
                Binds = binds,
                Ulimits = c.Ulimits?.Select(u => new Docker.DotNet.Models.Ulimit { Name = u.Name!, Soft = u.SoftLimit ?? 0, Hard = u.HardLimit ?? 0 }).ToList()!,
                LogConfig = c.LogConfiguration is { LogDriver: "json-file" } lc
                    ? new LogConfig { Type = "json-file", Config = lc.Options ?? new Dictionary<string, string>() }
                    : new LogConfig { Type = "json-file", Config = new Dictionary<string, string>() },
            },
        };
    }

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
        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? (image[..colon], image[(colon + 1)..]) : (image, "latest");
    }
}
