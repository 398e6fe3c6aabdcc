using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Berth.Core.Agent;
using Docker.DotNet.Models;

namespace Berth.Agent.Metadata;

/// <summary>
/// The JSON documents of the task metadata endpoint v4, field for field as the ECS container agent serves them
/// (Go's encoding/json with omitempty: an absent value is left out, never null). Pure functions of the task as the
/// engine knows it and Docker's inspect of its containers.
/// </summary>
internal static class MetadataDocuments
{
    /// <summary>What <c>${ECS_CONTAINER_METADATA_URI_V4}</c> answers: one container.</summary>
    /// <param name="networkOwner">
    /// The container whose network namespace <paramref name="c"/> joined (Docker network mode <c>container:ID</c>, as
    /// an awsvpc task's containers join its pause container's); its networks are the ones shown.
    /// </param>
    public static JsonObject Container(ContainerInspectResponse c, TaskMetadataView? task, ContainerInspectResponse? networkOwner = null)
    {
        var labels = c.Config?.Labels ?? new Dictionary<string, string>();
        var name = Get(labels, ContainerLabels.ContainerName) ?? "";
        var spec = task?.Desired?.Spec;
        var cs = spec?.Containers.FirstOrDefault(x => x.Name == name);
        var networkMode = spec?.NetworkMode is { Length: > 0 } m ? m : c.HostConfig?.NetworkMode ?? "bridge";
        var o = new JsonObject
        {
            ["DockerId"] = c.ID,
            ["Name"] = name,
            ["DockerName"] = (c.Name ?? "").TrimStart('/'),
            ["Image"] = cs?.Image is { Length: > 0 } image ? image : c.Config?.Image ?? "",
            ["ImageID"] = c.Image ?? "",
        };
        if (Ports(c, cs, networkMode) is { Count: > 0 } ports)
        {
            o["Ports"] = ports;
        }
        var shownLabels = new JsonObject();
        foreach (var (k, v) in labels.Where(kv => kv.Key is not (ContainerLabels.MetadataToken or ContainerLabels.CredentialsToken)).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            shownLabels[k] = v;
        }
        if (shownLabels.Count > 0)
        {
            o["Labels"] = shownLabels;
        }
        o["DesiredStatus"] = task?.Desired?.DesiredStatus is { Length: > 0 } desired ? desired : "RUNNING";
        o["KnownStatus"] = KnownStatus(c.State?.Status);
        if (c.State?.Status is "exited" or "dead")
        {
            o["ExitCode"] = c.State.ExitCode;
        }
        // Container limits in CPU units and MiB, both always present (0 when the definition gives none), as ECS shows them.
        o["Limits"] = new JsonObject
        {
            ["CPU"] = (double)(cs?.CpuUnits ?? 0),
            ["Memory"] = (long)(cs?.MemoryMib ?? 0),
        };
        if (c.Created > DateTime.MinValue.AddYears(1))
        {
            o["CreatedAt"] = Timestamp(new DateTimeOffset(DateTime.SpecifyKind(c.Created.ToUniversalTime(), DateTimeKind.Utc)));
        }
        if (DockerTime(c.State?.StartedAt) is { } started)
        {
            o["StartedAt"] = started;
        }
        if (c.State?.Status is "exited" or "dead" && DockerTime(c.State.FinishedAt) is { } finished)
        {
            o["FinishedAt"] = finished;
        }
        o["Type"] = "NORMAL";
        if (Health(c.State?.Health) is { } health)
        {
            o["Health"] = health;
        }
        if (Volumes(c) is { Count: > 0 } volumes)
        {
            o["Volumes"] = volumes;
        }
        // The definition's log driver, as ECS shows it (the agent may ship awslogs itself over another Docker driver).
        string driver;
        IDictionary<string, string> options;
        if (cs?.LogConfiguration is { LogDriver.Length: > 0 } lc)
        {
            (driver, options) = (lc.LogDriver, lc.Options);
        }
        else
        {
            (driver, options) = (c.HostConfig?.LogConfig?.Type ?? "", c.HostConfig?.LogConfig?.Config ?? new Dictionary<string, string>());
        }
        if (driver.Length > 0)
        {
            o["LogDriver"] = driver;
        }
        if (options.Count > 0)
        {
            var lo = new JsonObject();
            foreach (var (k, v) in options.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                lo[k] = v;
            }
            o["LogOptions"] = lo;
        }
        if (Get(spec?.Metadata?.ContainerArns, name) is { Length: > 0 } arn)
        {
            o["ContainerARN"] = arn;
        }
        if (Networks(networkOwner ?? c, networkMode) is { Count: > 0 } networks)
        {
            o["Networks"] = networks;
        }
        return o;
    }

    /// <summary>What <c>${ECS_CONTAINER_METADATA_URI_V4}/task</c> answers: the task and every container of it on this host.</summary>
    public static JsonObject Task(string taskArn, TaskMetadataView? task, IEnumerable<ContainerInspectResponse> containers, string availabilityZone)
    {
        var spec = task?.Desired?.Spec;
        var labels = containers.Select(c => c.Config?.Labels).FirstOrDefault(l => l is not null) ?? new Dictionary<string, string>();
        var o = new JsonObject
        {
            ["Cluster"] = spec?.ClusterArn is { Length: > 0 } cluster ? cluster : Get(labels, ContainerLabels.Cluster) ?? "",
            ["TaskARN"] = taskArn,
            ["Family"] = spec?.Family is { Length: > 0 } family ? family : Get(labels, ContainerLabels.Family) ?? "",
        };
        if (spec?.Metadata?.ServiceName is { Length: > 0 } service)
        {
            o["ServiceName"] = service;
        }
        o["Revision"] = spec is { Revision: > 0 } ? spec.Revision.ToString(CultureInfo.InvariantCulture) : Get(labels, ContainerLabels.Version) ?? "";
        if (task?.Desired?.DesiredStatus is { Length: > 0 } desired)
        {
            o["DesiredStatus"] = desired;
        }
        o["KnownStatus"] = task?.KnownStatus is { Length: > 0 } known ? known : "NONE";
        if (spec is { CpuUnits: > 0 } or { MemoryMib: > 0 })
        {
            // Task-level limits: CPU in vCPUs (1024 units each), memory in MiB; each only when set.
            var limits = new JsonObject();
            if (spec.CpuUnits > 0)
            {
                limits["CPU"] = spec.CpuUnits / 1024.0;
            }
            if (spec.MemoryMib > 0)
            {
                limits["Memory"] = (long)spec.MemoryMib;
            }
            o["Limits"] = limits;
        }
        if (task is { PullStartedAt: > 0 })
        {
            o["PullStartedAt"] = Timestamp(DateTimeOffset.FromUnixTimeMilliseconds(task.PullStartedAt));
        }
        if (task is { PullStoppedAt: > 0 })
        {
            o["PullStoppedAt"] = Timestamp(DateTimeOffset.FromUnixTimeMilliseconds(task.PullStoppedAt));
        }
        if (task is { ExecutionStoppedAt: > 0 })
        {
            o["ExecutionStoppedAt"] = Timestamp(DateTimeOffset.FromUnixTimeMilliseconds(task.ExecutionStoppedAt));
        }
        if (availabilityZone.Length > 0)
        {
            o["AvailabilityZone"] = availabilityZone;
        }
        o["LaunchType"] = spec?.Metadata?.LaunchType is { Length: > 0 } launchType ? launchType : "EC2";
        // In the task definition's order, as the agent lists its containers.
        var order = spec?.Containers.Select((c, i) => (c.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal) ?? [];
        var list = new JsonArray();
        var byId = containers.ToDictionary(c => c.ID, StringComparer.Ordinal);
        foreach (var c in containers.OrderBy(c => order.GetValueOrDefault(Get(c.Config?.Labels, ContainerLabels.ContainerName) ?? "", int.MaxValue)))
        {
            list.Add(Container(c, task, NetworkOwnerId(c) is { } owner ? byId.GetValueOrDefault(owner) : null));
        }
        if (list.Count > 0)
        {
            o["Containers"] = list;
        }
        return o;
    }

    /// <summary>The id of the container whose network namespace <paramref name="c"/> shares (mode <c>container:ID</c>); null otherwise.</summary>
    internal static string? NetworkOwnerId(ContainerInspectResponse c)
        => c.HostConfig?.NetworkMode is { } m && m.StartsWith("container:", StringComparison.Ordinal) ? m["container:".Length..] : null;

    internal static string? Get(IDictionary<string, string>? d, string key) => d is not null && d.TryGetValue(key, out var v) ? v : null;

    /// <summary>ECS's container statuses from Docker's state.</summary>
    internal static string KnownStatus(string? dockerState) => dockerState switch
    {
        "created" => "CREATED",
        "running" or "paused" or "restarting" => "RUNNING",
        "exited" or "dead" or "removing" => "STOPPED",
        _ => "NONE",
    };

    /// <summary>RFC 3339 in UTC with as many fraction digits as needed (Go's RFC3339Nano, as the ECS agent writes times).</summary>
    internal static string Timestamp(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    /// <summary>Docker's own RFC 3339 time, passed through; null for Docker's zero time (never happened).</summary>
    private static string? DockerTime(string? value)
        => value is { Length: > 0 } && !value.StartsWith("0001-01-01", StringComparison.Ordinal) ? value : null;

    private static JsonArray Ports(ContainerInspectResponse c, Core.Agent.ContainerSpec? cs, string networkMode)
    {
        var ports = new JsonArray();
        if (networkMode is "awsvpc" or "host")
        {
            // No port translation: the host (or the task's own address) port is the container port.
            foreach (var pm in cs?.PortMappings ?? [])
            {
                ports.Add(new JsonObject
                {
                    ["ContainerPort"] = pm.ContainerPort,
                    ["Protocol"] = pm.Protocol is { Length: > 0 } p ? p : "tcp",
                    ["HostPort"] = pm.ContainerPort,
                });
            }
            return ports;
        }
        foreach (var (key, binds) in (c.NetworkSettings?.Ports ?? new Dictionary<string, IList<Docker.DotNet.Models.PortBinding>>()).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var slash = key.IndexOf('/', StringComparison.Ordinal);
            if (slash <= 0 || !int.TryParse(key.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out var containerPort))
            {
                continue;
            }
            // Docker lists one binding per address family; ECS shows the IPv4 one.
            var b = binds?.FirstOrDefault(x => x.HostIP is null or "" or "0.0.0.0") ?? binds?.FirstOrDefault();
            var port = new JsonObject { ["ContainerPort"] = containerPort, ["Protocol"] = key[(slash + 1)..] };
            if (b is not null && int.TryParse(b.HostPort, NumberStyles.None, CultureInfo.InvariantCulture, out var hostPort) && hostPort > 0)
            {
                port["HostPort"] = hostPort;
                port["HostIp"] = b.HostIP is { Length: > 0 } ip ? ip : "0.0.0.0";
            }
            ports.Add(port);
        }
        return ports;
    }

    private static JsonArray Networks(ContainerInspectResponse c, string networkMode)
    {
        var networks = new JsonArray();
        foreach (var (name, ep) in (c.NetworkSettings?.Networks ?? new Dictionary<string, EndpointSettings>()).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var mode = name is "bridge" or "host" or "none" ? name : networkMode == "awsvpc" ? "awsvpc" : name;
            if (mode == "none")
            {
                continue;
            }
            var n = new JsonObject { ["NetworkMode"] = mode };
            if (ep.IPAddress is { Length: > 0 } ip)
            {
                n["IPv4Addresses"] = new JsonArray(ip);
            }
            if (ep.GlobalIPv6Address is { Length: > 0 } ip6)
            {
                n["IPv6Addresses"] = new JsonArray(ip6);
            }
            if (mode == "awsvpc" && ep.IPAddress is { Length: > 0 } && ep.IPPrefixLen is > 0 and <= 32)
            {
                // The task's interface, described as ECS describes an ENI.
                n["AttachmentIndex"] = 0;
                if (ep.MacAddress is { Length: > 0 } mac)
                {
                    n["MACAddress"] = mac;
                }
                if (SubnetOf(ep.IPAddress, (int)ep.IPPrefixLen) is { } subnet)
                {
                    n["IPv4SubnetCIDRBlock"] = subnet;
                }
                if (ep.Gateway is { Length: > 0 } gw)
                {
                    n["SubnetGatewayIpv4Address"] = $"{gw}/{ep.IPPrefixLen.ToString(CultureInfo.InvariantCulture)}";
                }
            }
            networks.Add(n);
        }
        return networks;
    }

    internal static string? SubnetOf(string ip, int prefix)
    {
        if (!IPAddress.TryParse(ip, out var a) || a.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return null;
        }
        var bytes = a.GetAddressBytes();
        var value = (uint)bytes[0] << 24 | (uint)bytes[1] << 16 | (uint)bytes[2] << 8 | bytes[3];
        var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        var net = value & mask;
        return $"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{prefix.ToString(CultureInfo.InvariantCulture)}";
    }

    private static JsonObject? Health(Docker.DotNet.Models.Health? h)
    {
        if (h?.Status is not { Length: > 0 } status || status == "none")
        {
            return null;
        }
        var o = new JsonObject
        {
            ["status"] = status switch { "healthy" => "HEALTHY", "unhealthy" => "UNHEALTHY", _ => "UNKNOWN" },
        };
        if (h.Log is { Count: > 0 } log)
        {
            var last = log[^1];
            o["statusSince"] = Timestamp(new DateTimeOffset(DateTime.SpecifyKind(last.End.ToUniversalTime(), DateTimeKind.Utc)));
            if (last.ExitCode != 0)
            {
                o["exitCode"] = last.ExitCode;
            }
            if (last.Output is { Length: > 0 } output)
            {
                o["output"] = output;
            }
        }
        return o;
    }

    private static JsonArray Volumes(ContainerInspectResponse c)
    {
        var volumes = new JsonArray();
        foreach (var m in c.Mounts ?? [])
        {
            var v = new JsonObject();
            if (m.Name is { Length: > 0 } name)
            {
                v["DockerName"] = name;
            }
            if (m.Source is { Length: > 0 } source)
            {
                v["Source"] = source;
            }
            if (m.Destination is { Length: > 0 } destination)
            {
                v["Destination"] = destination;
            }
            volumes.Add(v);
        }
        return volumes;
    }
}
