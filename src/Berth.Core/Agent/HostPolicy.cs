using System.Globalization;

namespace Berth.Core.Agent;

/// <summary>
/// What the operator of an agent host lets task definitions take from the host: bind mounts of host paths (only
/// under given prefixes), the Docker socket, privileged containers, added capabilities, devices, the host's
/// pid and ipc namespaces, and security options that lift Docker's confinement. Nothing by default. The agent
/// enforces it; it also reports it as container instance attributes (<see cref="Attributes"/>) so that placement
/// can skip instances that would refuse a task.
/// </summary>
/// <remarks>
/// Like the ECS agent's ECS_DISABLE_PRIVILEGED, inverted: a host must opt in. networkMode <c>host</c> is not part of
/// the policy: it shares the host's network stack but none of its files, processes or devices, and ECS allows it on
/// every EC2 instance.
/// </remarks>
public sealed record HostPolicy
{
    public const string HostPathsAttribute = "berth.policy.host-paths";
    public const string DockerSocketAttribute = "berth.policy.docker-socket";
    public const string PrivilegedAttribute = "berth.policy.privileged";
    public const string CapabilitiesAttribute = "berth.policy.capabilities";
    public const string DevicesAttribute = "berth.policy.devices";
    public const string HostPidAttribute = "berth.policy.host-pid";
    public const string HostIpcAttribute = "berth.policy.host-ipc";
    public const string UnconfinedAttribute = "berth.policy.unconfined";

    /// <summary>The prefix of every policy attribute: only the agent sets them (PutAttributes refuses the names).</summary>
    public const string AttributePrefix = "berth.policy.";

    public const string Allowed = "allowed";
    public const string Denied = "denied";
    public const string None = "none";
    public const string AllCapabilities = "ALL";

    /// <summary>Host paths (normalised, absolute) under which bind mounts are allowed; "/" allows every path but the Docker socket.</summary>
    public IReadOnlyList<string> HostPathPrefixes { get; init; } = [];

    /// <summary>Whether a bind mount may hold the Docker socket (the socket itself or a directory above it): root on the host.</summary>
    public bool DockerSocket { get; init; }

    public bool Privileged { get; init; }

    /// <summary>Capabilities (upper case, without CAP_) that linuxParameters.capabilities.add may name; "ALL" allows any.</summary>
    public IReadOnlySet<string> Capabilities { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    public bool Devices { get; init; }

    /// <summary>pidMode host: the container sees (and, with the right capabilities, can act on) every process of the host.</summary>
    public bool HostPid { get; init; }

    /// <summary>ipcMode host: the container shares the host's System V IPC and /dev/shm.</summary>
    public bool HostIpc { get; init; }

    /// <summary>dockerSecurityOptions that lift the confinement Docker applies by default (see <see cref="Unconfining"/>).</summary>
    public bool Unconfined { get; init; }

    /// <summary>Nothing from the host: the default of every agent.</summary>
    public static HostPolicy Default { get; } = new();

    /// <summary>Everything allowed (tests, and operators who run only trusted task definitions).</summary>
    public static HostPolicy AllowAll { get; } = new()
    {
        HostPathPrefixes = ["/"],
        DockerSocket = true,
        Privileged = true,
        Capabilities = new HashSet<string>(StringComparer.Ordinal) { AllCapabilities },
        Devices = true,
        HostPid = true,
        HostIpc = true,
        Unconfined = true,
    };

    /// <summary>The policy as container instance attributes (lists comma-separated, "none" when empty).</summary>
    public IEnumerable<KeyValuePair<string, string>> Attributes()
    {
        yield return new(HostPathsAttribute, HostPathPrefixes.Count == 0 ? None : string.Join(',', HostPathPrefixes));
        yield return new(DockerSocketAttribute, Word(DockerSocket));
        yield return new(PrivilegedAttribute, Word(Privileged));
        yield return new(CapabilitiesAttribute, Capabilities.Count == 0 ? None
            : Capabilities.Contains(AllCapabilities) ? AllCapabilities : string.Join(',', Capabilities.Order(StringComparer.Ordinal)));
        yield return new(DevicesAttribute, Word(Devices));
        yield return new(HostPidAttribute, Word(HostPid));
        yield return new(HostIpcAttribute, Word(HostIpc));
        yield return new(UnconfinedAttribute, Word(Unconfined));
    }

    private static string Word(bool allowed) => allowed ? Allowed : Denied;

    /// <summary>Whether a capability may be added: "ALL" allowed, or this one. <paramref name="capability"/> as the definition names it.</summary>
    public bool AllowsCapability(string capability)
        => Capabilities.Contains(AllCapabilities) || (NormalizeCapability(capability) is var c && c != AllCapabilities && Capabilities.Contains(c));

    /// <summary>Whether <paramref name="normalizedPath"/> (see <see cref="TryNormalizePath"/>) is one of the prefixes or below one.</summary>
    public bool AllowsHostPath(string normalizedPath) => IsUnderAny(normalizedPath, HostPathPrefixes);

    /// <summary>Whether <paramref name="path"/> equals one of <paramref name="prefixes"/> or lies below one, component by component (/srv/data does not hold /srv/database).</summary>
    public static bool IsUnderAny(string path, IEnumerable<string> prefixes)
    {
        foreach (var prefix in prefixes)
        {
            if (IsUnder(path, prefix))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Whether normalised <paramref name="path"/> is <paramref name="prefix"/> or below it.</summary>
    public static bool IsUnder(string path, string prefix)
        => prefix == "/" ? path.StartsWith('/')
            : path.StartsWith(prefix, StringComparison.Ordinal) && (path.Length == prefix.Length || path[prefix.Length] == '/');

    /// <summary>"cap_net_admin" → "NET_ADMIN", as ECS and Docker both accept either form.</summary>
    public static string NormalizeCapability(string capability)
    {
        var c = capability.Trim().ToUpperInvariant();
        return c.StartsWith("CAP_", StringComparison.Ordinal) ? c[4..] : c;
    }

    /// <summary>
    /// An absolute path with repeated and trailing slashes and "." components removed. A ".." component is refused
    /// rather than resolved: "/srv/data/../../etc" says one thing and binds another.
    /// </summary>
    public static bool TryNormalizePath(string? path, out string normalized, out string error)
    {
        normalized = "";
        error = "";
        if (string.IsNullOrWhiteSpace(path) || !path.StartsWith('/'))
        {
            error = "must be an absolute path";
            return false;
        }
        if (path.Contains('\0', StringComparison.Ordinal))
        {
            error = "must not contain a NUL character";
            return false;
        }
        var parts = new List<string>();
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".")
            {
                continue;
            }
            if (part == "..")
            {
                error = "must not contain '..'";
                return false;
            }
            parts.Add(part);
        }
        normalized = "/" + string.Join('/', parts);
        return true;
    }

    /// <summary>
    /// Reads the policy back from container instance attributes; null when the instance reports none (registered
    /// through RegisterContainerInstance, or an agent older than the policy): such an instance is not judged in advance.
    /// </summary>
    public static HostPolicy? FromAttributes(IReadOnlyDictionary<string, string> attributes)
    {
        if (!attributes.TryGetValue(PrivilegedAttribute, out var privileged))
        {
            return null;
        }
        static bool Is(IReadOnlyDictionary<string, string> a, string name) => a.TryGetValue(name, out var v) && v == Allowed;
        static IEnumerable<string> List(IReadOnlyDictionary<string, string> a, string name)
            => a.TryGetValue(name, out var v) && v != None ? v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
        return new HostPolicy
        {
            HostPathPrefixes = [.. List(attributes, HostPathsAttribute)],
            DockerSocket = Is(attributes, DockerSocketAttribute),
            Privileged = privileged == Allowed,
            Capabilities = new HashSet<string>(List(attributes, CapabilitiesAttribute).Select(NormalizeCapability), StringComparer.Ordinal),
            Devices = Is(attributes, DevicesAttribute),
            HostPid = Is(attributes, HostPidAttribute),
            HostIpc = Is(attributes, HostIpcAttribute),
            Unconfined = Is(attributes, UnconfinedAttribute),
        };
    }

    /// <summary>
    /// The policy an operator asks for (the agent's --allow-* options); false with a message naming the option when a
    /// prefix is not an absolute path without "..", or a capability is not a name like NET_ADMIN (or ALL).
    /// </summary>
    public static bool TryCreate(IEnumerable<string> hostPaths, IEnumerable<string> capabilities, bool dockerSocket, bool privileged,
        bool devices, bool hostPid, bool hostIpc, out HostPolicy policy, out string error)
    {
        policy = Default;
        error = "";
        var prefixes = new List<string>();
        foreach (var p in hostPaths)
        {
            if (!TryNormalizePath(p, out var n, out var why))
            {
                error = $"--allow-host-path '{p}' {why}";
                return false;
            }
            if (n.Contains(',', StringComparison.Ordinal))
            {
                error = $"--allow-host-path '{p}' must not contain a comma (the berth.policy.host-paths attribute lists prefixes comma-separated)";
                return false;
            }
            if (!prefixes.Contains(n))
            {
                prefixes.Add(n);
            }
        }
        var caps = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in capabilities)
        {
            var n = NormalizeCapability(c);
            if (n.Length == 0 || !n.All(ch => ch is (>= 'A' and <= 'Z') or '_'))
            {
                error = $"--allow-capability '{c}' is not a capability name like NET_ADMIN or SYS_PTRACE (or ALL)";
                return false;
            }
            caps.Add(n);
        }
        policy = new HostPolicy
        {
            HostPathPrefixes = prefixes,
            DockerSocket = dockerSocket,
            Privileged = privileged,
            Capabilities = caps,
            Devices = devices,
            HostPid = hostPid,
            HostIpc = hostIpc,
        };
        return true;
    }

    /// <summary>
    /// Whether a dockerSecurityOptions entry weakens the confinement Docker gives every container: seccomp off or a
    /// profile the task brings (seccomp=unconfined, or inline JSON that may allow everything; only seccomp=builtin,
    /// Docker's own, is kept), AppArmor off (apparmor=unconfined), SELinux labelling off or a label the task picks
    /// (label=disable, label=type:spc_t, label=level:s0:c1,c2), /proc and /sys unmasked (systempaths=unconfined), no-new-privileges turned
    /// off against the daemon's default (no-new-privileges=false), and writable cgroups. Read as dockerd parses
    /// SecurityOpt: "=" separates key and value, else the deprecated ":"; bare "disable" is label=disable.
    /// </summary>
    public static bool Unconfining(string option)
    {
        switch (option)
        {
            case "no-new-privileges":
                return false;
            case "writable-cgroups" or "disable":
                return true;
        }
        var at = option.IndexOf('=', StringComparison.Ordinal);
        if (at < 0)
        {
            at = option.IndexOf(':', StringComparison.Ordinal);
        }
        if (at < 0)
        {
            return false; // Docker refuses it ("invalid --security-opt"): the task stops at create
        }
        var key = option[..at];
        var value = option[(at + 1)..];
        return key switch
        {
            "seccomp" => value != "builtin",
            "apparmor" => value == "unconfined",
            // Every SELinux label choice: off, or a user/role/type/level the task picks (an MCS level shared with another
            // container reaches that container's files), so none is left to the task without the permission.
            "label" => true,
            "systempaths" => value == "unconfined",
            "no-new-privileges" => value is "0" or "f" or "F" or "false" or "FALSE" or "False", // Go's strconv.ParseBool
            "writable-cgroups" => value is "1" or "t" or "T" or "true" or "TRUE" or "True",
            _ => false,
        };
    }

    /// <summary>The first of <paramref name="options"/> that <see cref="Unconfining"/> finds, else null.</summary>
    public static string? FirstUnconfining(IEnumerable<string>? options) => options?.FirstOrDefault(o => o is not null && Unconfining(o));

    /// <summary>The well-known places of the Docker socket; the agent adds the one it talks to (DOCKER_HOST).</summary>
    public static IReadOnlyList<string> WellKnownDockerSockets { get; } = ["/var/run/docker.sock", "/run/docker.sock"];

    /// <summary>Whether binding <paramref name="normalizedPath"/> exposes one of <paramref name="sockets"/>: the socket itself or a directory above it.</summary>
    public static string? ExposedSocket(string normalizedPath, IEnumerable<string> sockets)
        => sockets.FirstOrDefault(s => IsUnder(s, normalizedPath));

    public override string ToString() => string.Join("; ", Attributes().Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key}={kv.Value}")));
}
