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
    public static CreateContainerParameters Build(Proto.TaskSpec task, Proto.ContainerSpec c, string taskId, IReadOnlyDictionary<string, string> labels)
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
            var source = vol.HostSourcePath is { Length: > 0 } hostPath ? hostPath : Sanitize($"ecs-{taskId}-{vol.Name}");
            binds.Add($"{source}:{mp.ContainerPath}{(mp.ReadOnly ? ":ro" : "")}");
        }

        return new CreateContainerParameters
        {
            Name = ContainerName(task, c, taskId),
            Image = c.Image,
            Cmd = c.Command.Count > 0 ? [.. c.Command] : null!,
            Entrypoint = c.EntryPoint.Count > 0 ? [.. c.EntryPoint] : null!,
            Env = env.Select(kv => $"{kv.Key}={kv.Value}").ToList(),
            WorkingDir = c.WorkingDirectory is { Length: > 0 } wd ? wd : null!,
            User = c.User is { Length: > 0 } u ? u : null!,
            Hostname = (networkMode == "host" || c.Hostname.Length == 0 ? null : c.Hostname)!,
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
                NetworkMode = networkMode == "awsvpc" ? "bridge" : networkMode,
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
    }

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
        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? (image[..colon], image[(colon + 1)..]) : (image, "latest");
    }
}
