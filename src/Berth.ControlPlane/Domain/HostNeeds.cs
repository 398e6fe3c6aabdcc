using Berth.Aws.Ecs;
using Berth.Core.Agent;
using Berth.Scheduling;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// What a task definition asks of its host that the agents' host policy governs (privileged, host paths, the Docker
/// socket, added capabilities, devices, pidMode/ipcMode host, dockerSecurityOptions that lift confinement), worked out once per launch, and the check of one
/// placement candidate against the berth.policy.* attributes its agent reported.
/// </summary>
/// <remarks>
/// A refused candidate gets the reason <c>ATTRIBUTE:berth.policy.NAME</c>: ECS's ATTRIBUTE failure ("your task
/// needs an attribute the container instance lacks"), naming the attribute the way RESOURCE:MEMORY names the
/// resource. An instance that reports no policy (registered through RegisterContainerInstance, or by an older
/// agent) is not judged here; its agent, if it has a policy, still refuses the task when it arrives. Symbolic links
/// in host paths are only seen by the agent. Cost per candidate: a few attribute lookups; list-valued attributes
/// are parsed once per distinct value in a launch.
/// </remarks>
public sealed class HostNeeds
{
    private readonly string? _privileged;
    private readonly string? _hostPid;
    private readonly string? _hostIpc;
    private readonly string? _devices;
    private readonly (string Container, string Option)? _unconfined;
    private readonly List<(string Container, string Capability)> _capabilities = [];
    private readonly List<(string Container, string Source, string? Normalized)> _hostPaths = [];
    private readonly (string Container, string Source, string Socket)? _socket;
    private readonly Dictionary<string, string?> _capabilityVerdicts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string?> _pathVerdicts = new(StringComparer.Ordinal);
    /// <summary>ephemeralStorage.sizeInGiB (0: none): only an instance whose Docker data root is at least this large fits.</summary>
    private readonly int _ephemeralGib;

    private HostNeeds(TaskDefinition def)
    {
        var hostVolumes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in def.Volumes ?? [])
        {
            if (v?.Name is { } name && v.Host?.SourcePath is { Length: > 0 } source)
            {
                hostVolumes[name] = source;
            }
        }
        _ephemeralGib = def.EphemeralStorage?.SizeInGiB ?? 0;
        var first = (def.ContainerDefinitions ?? []).FirstOrDefault()?.Name ?? "";
        if (def.PidMode == "host")
        {
            _hostPid = first;
        }
        if (def.IpcMode == "host")
        {
            _hostIpc = first;
        }
        foreach (var c in def.ContainerDefinitions ?? [])
        {
            var name = c?.Name ?? "";
            if (c is null)
            {
                continue;
            }
            if (c.Privileged == true)
            {
                _privileged ??= name;
            }
            foreach (var cap in c.LinuxParameters?.Capabilities?.Add ?? [])
            {
                if (!string.IsNullOrEmpty(cap))
                {
                    _capabilities.Add((name, HostPolicy.NormalizeCapability(cap)));
                }
            }
            if (_unconfined is null && HostPolicy.FirstUnconfining(c.DockerSecurityOptions) is { } option)
            {
                _unconfined = (name, option);
            }
            if (c.LinuxParameters?.Devices is { Count: > 0 })
            {
                _devices ??= name;
            }
            foreach (var mp in c.MountPoints ?? [])
            {
                if (mp?.SourceVolume is { } volume && hostVolumes.TryGetValue(volume, out var source))
                {
                    var normalized = HostPolicy.TryNormalizePath(source, out var n, out _) ? n : null;
                    _hostPaths.Add((name, source, normalized));
                    if (normalized is not null && _socket is null && HostPolicy.ExposedSocket(normalized, HostPolicy.WellKnownDockerSockets) is { } socket)
                    {
                        _socket = (name, source, socket);
                    }
                }
            }
        }
    }

    /// <summary>What <paramref name="def"/> needs from its host; null when nothing the host policy governs (most definitions).</summary>
    public static HostNeeds? Of(TaskDefinition def)
    {
        var needs = new HostNeeds(def);
        return needs._privileged is null && needs._hostPid is null && needs._hostIpc is null && needs._devices is null
            && needs._unconfined is null && needs._capabilities.Count == 0 && needs._hostPaths.Count == 0 && needs._ephemeralGib == 0 ? null : needs;
    }

    public static string ReasonOf(string attribute) => Scheduler.ReasonAttribute + ":" + attribute;

    /// <summary>Null when <paramref name="candidate"/>'s reported host policy allows the task (or it reports none), else the failure reason.</summary>
    public string? Refuse(InstanceCandidate candidate)
    {
        var a = candidate.Attributes;
        // Not a policy: an instance that reports no size (registered by hand, a simulated host) cannot promise the space.
        if (_ephemeralGib > 0 && !(EphemeralSpace.Parse(a.GetValueOrDefault(EphemeralSpace.Attribute)) >= _ephemeralGib))
        {
            return ReasonOf(EphemeralSpace.Attribute);
        }
        if (!a.TryGetValue(HostPolicy.PrivilegedAttribute, out var privileged))
        {
            return null;
        }
        if (_privileged is not null && privileged != HostPolicy.Allowed)
        {
            return ReasonOf(HostPolicy.PrivilegedAttribute);
        }
        if (_hostPid is not null && !Allowed(a, HostPolicy.HostPidAttribute))
        {
            return ReasonOf(HostPolicy.HostPidAttribute);
        }
        if (_hostIpc is not null && !Allowed(a, HostPolicy.HostIpcAttribute))
        {
            return ReasonOf(HostPolicy.HostIpcAttribute);
        }
        if (_unconfined is not null && !Allowed(a, HostPolicy.UnconfinedAttribute))
        {
            return ReasonOf(HostPolicy.UnconfinedAttribute);
        }
        if (_capabilities.Count > 0 && CapabilityRefused(a.GetValueOrDefault(HostPolicy.CapabilitiesAttribute) ?? HostPolicy.None) is not null)
        {
            return ReasonOf(HostPolicy.CapabilitiesAttribute);
        }
        if (_devices is not null && !Allowed(a, HostPolicy.DevicesAttribute))
        {
            return ReasonOf(HostPolicy.DevicesAttribute);
        }
        if (_socket is not null && !Allowed(a, HostPolicy.DockerSocketAttribute))
        {
            return ReasonOf(HostPolicy.DockerSocketAttribute);
        }
        if (_hostPaths.Count > 0 && PathRefused(a.GetValueOrDefault(HostPolicy.HostPathsAttribute) ?? HostPolicy.None) is not null)
        {
            return ReasonOf(HostPolicy.HostPathsAttribute);
        }
        return null;
    }

    /// <summary>The Failure's detail for a reason <see cref="Refuse"/> gave (naming the container, the field and the agent option), else null.</summary>
    public string? Detail(string reason, IReadOnlyDictionary<string, string>? attributes)
    {
        string Value(string name) => attributes?.GetValueOrDefault(name) ?? HostPolicy.Denied;
        if (reason == ReasonOf(EphemeralSpace.Attribute))
        {
            return attributes?.GetValueOrDefault(EphemeralSpace.Attribute) is { } size
                ? $"ephemeralStorage.sizeInGiB {_ephemeralGib}: the container instance's Docker data root holds {size} GiB ({EphemeralSpace.Attribute}={size})"
                : $"ephemeralStorage.sizeInGiB {_ephemeralGib}: the container instance reports no {EphemeralSpace.Attribute} (its agent cannot measure its Docker data root)";
        }
        if (reason == ReasonOf(HostPolicy.PrivilegedAttribute))
        {
            return $"container {_privileged}: privileged is not allowed by the container instance's host policy ({HostPolicy.PrivilegedAttribute}={Value(HostPolicy.PrivilegedAttribute)}; berth agent --allow-privileged)";
        }
        if (reason == ReasonOf(HostPolicy.HostPidAttribute))
        {
            return $"container {_hostPid}: pidMode host is not allowed by the container instance's host policy ({HostPolicy.HostPidAttribute}={Value(HostPolicy.HostPidAttribute)}; berth agent --allow-host-pid)";
        }
        if (reason == ReasonOf(HostPolicy.HostIpcAttribute))
        {
            return $"container {_hostIpc}: ipcMode host is not allowed by the container instance's host policy ({HostPolicy.HostIpcAttribute}={Value(HostPolicy.HostIpcAttribute)}; berth agent --allow-host-ipc)";
        }
        if (reason == ReasonOf(HostPolicy.UnconfinedAttribute) && _unconfined is { } u)
        {
            return $"container {u.Container}: dockerSecurityOptions {u.Option} is not allowed by the container instance's host policy ({HostPolicy.UnconfinedAttribute}={Value(HostPolicy.UnconfinedAttribute)}; berth agent --allow-unconfined)";
        }
        if (reason == ReasonOf(HostPolicy.CapabilitiesAttribute))
        {
            var value = attributes?.GetValueOrDefault(HostPolicy.CapabilitiesAttribute) ?? HostPolicy.None;
            var (container, cap) = CapabilityRefused(value) ?? _capabilities[0];
            return $"container {container}: linuxParameters.capabilities.add {cap} is not allowed by the container instance's host policy ({HostPolicy.CapabilitiesAttribute}={value}; berth agent --allow-capability {cap})";
        }
        if (reason == ReasonOf(HostPolicy.DevicesAttribute))
        {
            return $"container {_devices}: linuxParameters.devices is not allowed by the container instance's host policy ({HostPolicy.DevicesAttribute}={Value(HostPolicy.DevicesAttribute)}; berth agent --allow-devices)";
        }
        if (reason == ReasonOf(HostPolicy.DockerSocketAttribute) && _socket is { } s)
        {
            return $"container {s.Container}: host path {s.Source} exposes the Docker socket {s.Socket}, which the container instance's host policy does not allow ({HostPolicy.DockerSocketAttribute}={Value(HostPolicy.DockerSocketAttribute)}; berth agent --allow-docker-socket)";
        }
        if (reason == ReasonOf(HostPolicy.HostPathsAttribute))
        {
            var value = attributes?.GetValueOrDefault(HostPolicy.HostPathsAttribute) ?? HostPolicy.None;
            var (container, source, _) = PathRefused(value) ?? _hostPaths[0];
            return $"container {container}: host path {source} is not under an allowed prefix of the container instance's host policy ({HostPolicy.HostPathsAttribute}={value}; berth agent --allow-host-path)";
        }
        return null;
    }

    private static bool Allowed(IReadOnlyDictionary<string, string> a, string name) => a.TryGetValue(name, out var v) && v == HostPolicy.Allowed;

    private (string Container, string Capability)? CapabilityRefused(string value)
    {
        if (!_capabilityVerdicts.TryGetValue(value, out var refused))
        {
            var allowed = value == HostPolicy.None ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(HostPolicy.NormalizeCapability).ToHashSet(StringComparer.Ordinal);
            refused = allowed.Contains(HostPolicy.AllCapabilities) ? null
                : _capabilities.Where(c => c.Capability == HostPolicy.AllCapabilities || !allowed.Contains(c.Capability)).Select(c => c.Capability).FirstOrDefault();
            _capabilityVerdicts[value] = refused;
        }
        return refused is null ? null : _capabilities.First(c => c.Capability == refused);
    }

    private (string Container, string Source, string? Normalized)? PathRefused(string value)
    {
        if (!_pathVerdicts.TryGetValue(value, out var refused))
        {
            var prefixes = value == HostPolicy.None ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            refused = _hostPaths.Where(p => p.Normalized is null || !HostPolicy.IsUnderAny(p.Normalized, prefixes)).Select(p => p.Source).FirstOrDefault();
            _pathVerdicts[value] = refused;
        }
        return refused is null ? null : _hostPaths.First(p => p.Source == refused);
    }
}
