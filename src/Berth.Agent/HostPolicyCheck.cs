using Berth.Core.Agent;
using Proto = Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>
/// The agent's side of the <see cref="HostPolicy"/>: judges a task's containers before any of them is created, and
/// gives the host path each bind mount may use (symbolic links resolved, so the path checked is the path bound).
/// </summary>
/// <remarks>
/// Host paths are normalised (a ".." component is refused, not resolved), then their symbolic links are resolved
/// in this process's view of the file system, component by component; the resolved path must lie under an allowed
/// prefix (each prefix counts as given and as resolved) and must not hold the Docker socket. What is bound is the
/// resolved path, so a link inside an allowed prefix that points out of it is refused rather than followed by
/// Docker. A link swapped between this check and Docker's mount can still win the race: the check narrows that
/// window to the create call; it cannot close it. Run the agent on the host itself (not in a container with a
/// different view of the file system) for the resolution to mean anything.
/// </remarks>
internal sealed class HostPolicyCheck
{
    private const int MaxLinkHops = 40;
    private readonly string[] _prefixes;
    private readonly string[] _sockets;

    /// <param name="dockerSockets">Paths of the Docker socket besides the well-known ones (the agent's DOCKER_HOST).</param>
    public HostPolicyCheck(HostPolicy policy, IEnumerable<string>? dockerSockets = null)
    {
        Policy = policy;
        _prefixes = [.. WithResolved(policy.HostPathPrefixes)];
        _sockets = [.. WithResolved(HostPolicy.WellKnownDockerSockets.Concat(dockerSockets ?? []))];
    }

    public HostPolicy Policy { get; }

    /// <summary>The Docker socket paths this check guards (normalised, with their resolved forms).</summary>
    public IReadOnlyList<string> Sockets => _sockets;

    private static IEnumerable<string> WithResolved(IEnumerable<string> paths)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in paths)
        {
            if (!HostPolicy.TryNormalizePath(p, out var n, out _))
            {
                continue;
            }
            if (seen.Add(n))
            {
                yield return n;
            }
            string? resolved;
            try
            {
                resolved = Resolve(n);
            }
            catch (IOException)
            {
                resolved = null;
            }
            if (resolved is not null && seen.Add(resolved))
            {
                yield return resolved;
            }
        }
    }

    /// <summary>The first thing any container of <paramref name="task"/> asks for that this host does not allow; null when none.</summary>
    public string? Refusal(Proto.TaskSpec task)
    {
        foreach (var c in task.Containers)
        {
            if (Refusal(task, c, out _) is { } refused)
            {
                return refused;
            }
        }
        return null;
    }

    /// <summary>
    /// What <paramref name="c"/> asks for that this host does not allow ("container NAME: ... (berth agent --allow-...)"),
    /// or null; then <paramref name="hostPaths"/> holds the path to bind for each host volume the container mounts.
    /// </summary>
    public string? Refusal(Proto.TaskSpec task, Proto.ContainerSpec c, out IReadOnlyDictionary<string, string> hostPaths)
    {
        var paths = new Dictionary<string, string>(StringComparer.Ordinal);
        hostPaths = paths;
        var who = $"container {c.Name}";
        var policy = Policy;
        if (c.Privileged && !policy.Privileged)
        {
            return $"{who}: privileged is not allowed on this container instance (berth agent --allow-privileged)";
        }
        if (task.PidMode == "host" && !policy.HostPid)
        {
            return $"{who}: pidMode host is not allowed on this container instance (berth agent --allow-host-pid)";
        }
        if (task.IpcMode == "host" && !policy.HostIpc)
        {
            return $"{who}: ipcMode host is not allowed on this container instance (berth agent --allow-host-ipc)";
        }
        if (!policy.Unconfined && HostPolicy.FirstUnconfining(c.DockerSecurityOptions) is { } unconfining)
        {
            return $"{who}: dockerSecurityOptions {unconfining} is not allowed on this container instance (berth agent --allow-unconfined)";
        }
        if (c.LinuxParameters is { } lp)
        {
            foreach (var cap in lp.CapabilitiesAdd)
            {
                if (!policy.AllowsCapability(cap))
                {
                    var name = HostPolicy.NormalizeCapability(cap);
                    return $"{who}: linuxParameters.capabilities.add {name} is not allowed on this container instance (berth agent --allow-capability {name})";
                }
            }
            if (lp.Devices.Count > 0 && !policy.Devices)
            {
                return $"{who}: linuxParameters.devices {lp.Devices[0].HostPath} is not allowed on this container instance (berth agent --allow-devices)";
            }
        }
        if (c.MountPoints.Count == 0)
        {
            return null;
        }
        var volumes = new Dictionary<string, Proto.VolumeSpec>(StringComparer.Ordinal);
        foreach (var v in task.Volumes)
        {
            volumes[v.Name] = v; // a later entry of the same name wins, as ContainerSpec.Build reads them
        }
        foreach (var mp in c.MountPoints)
        {
            if (!volumes.TryGetValue(mp.SourceVolume, out var vol) || vol.HostSourcePath is not { Length: > 0 } source || paths.ContainsKey(vol.Name))
            {
                continue;
            }
            if (!HostPolicy.TryNormalizePath(source, out var normalized, out var error))
            {
                return $"{who}: host path {source} (volume {vol.Name}) {error}";
            }
            string resolved;
            try
            {
                resolved = Resolve(normalized);
            }
            catch (IOException e)
            {
                return $"{who}: host path {source} (volume {vol.Name}) cannot be resolved: {e.Message}";
            }
            var shown = resolved == normalized ? source : $"{source} (resolves to {resolved})";
            if (HostPolicy.ExposedSocket(resolved, _sockets) is { } socket && !policy.DockerSocket)
            {
                return $"{who}: host path {shown} (volume {vol.Name}) exposes the Docker socket {socket}, which is not allowed on this container instance (berth agent --allow-docker-socket)";
            }
            if (!HostPolicy.IsUnderAny(resolved, _prefixes))
            {
                return $"{who}: host path {shown} (volume {vol.Name}) is not under an allowed prefix (berth agent --allow-host-path)";
            }
            paths[vol.Name] = resolved;
        }
        return null;
    }

    /// <summary>
    /// <paramref name="normalized"/> with every symbolic link among its components replaced by its target, as
    /// realpath(3) does; components that do not exist are kept as they are (Docker creates a missing bind source).
    /// </summary>
    internal static string Resolve(string normalized)
    {
        var pending = new LinkedList<string>(normalized.Split('/', StringSplitOptions.RemoveEmptyEntries));
        var resolved = new List<string>();
        var hops = 0;
        while (pending.First is { } first)
        {
            var part = first.Value;
            pending.RemoveFirst();
            if (part == ".")
            {
                continue;
            }
            if (part == "..")
            {
                // Only reached through a link's target: the components so far are real directories, so ".." is their parent.
                if (resolved.Count > 0)
                {
                    resolved.RemoveAt(resolved.Count - 1);
                }
                continue;
            }
            resolved.Add(part);
            string? target;
            try
            {
                target = new FileInfo("/" + string.Join('/', resolved)).LinkTarget;
            }
            catch (UnauthorizedAccessException)
            {
                target = null;
            }
            if (target is null)
            {
                continue;
            }
            if (++hops > MaxLinkHops)
            {
                throw new IOException("too many levels of symbolic links");
            }
            resolved.RemoveAt(resolved.Count - 1);
            if (target.StartsWith('/'))
            {
                resolved.Clear();
            }
            var parts = target.Split('/', StringSplitOptions.RemoveEmptyEntries);
            for (var i = parts.Length - 1; i >= 0; i--)
            {
                pending.AddFirst(parts[i]);
            }
        }
        return "/" + string.Join('/', resolved);
    }

    /// <summary>The socket path of a unix:// Docker endpoint (DOCKER_HOST), else null.</summary>
    public static string? SocketPathOf(Uri? endpoint)
        => endpoint is { Scheme: "unix" } ? endpoint.LocalPath is { Length: > 0 } p ? p : endpoint.AbsolutePath : null;
}
