using Docker.DotNet.Models;

namespace Berth.Agent;

/// <summary>
/// How an awsvpc task is wired on a host, as the ECS agent does it: a pause container holds the task's network
/// namespace and its one address on the Berth-managed bridge network <see cref="Name"/>; every container of the task
/// joins that namespace (<c>container:PAUSE</c>), so they share <c>localhost</c> and the task's IP.
/// </summary>
internal static class AwsvpcNetwork
{
    /// <summary>The user-defined bridge network every awsvpc task of this host gets its address on.</summary>
    public const string Name = "berth-awsvpc";

    /// <summary>Label on the network, so an operator (and a cleanup) can tell it is Berth's.</summary>
    public const string Label = "berth.network";

    /// <summary>The pause container's container-name label: ECS's own name for it, which no definition can use ('~' is not allowed).</summary>
    public const string PauseContainerName = "~internal~ecs~pause";

    public static bool IsPause(string containerName) => containerName == PauseContainerName;

    /// <summary>The pause container: the task's labels, a zero stop timeout (it ignores SIGTERM), on <see cref="Name"/>.</summary>
    public static CreateContainerParameters PauseContainer(string dockerName, IReadOnlyDictionary<string, string> labels) => new()
    {
        Name = dockerName,
        Image = Runtime.PauseImage.Reference,
        Cmd = [Runtime.PauseImage.Command],
        Labels = new Dictionary<string, string>(labels, StringComparer.Ordinal) { [ContainerLabels.ContainerName] = PauseContainerName },
        StopTimeout = TimeSpan.Zero,
        HostConfig = new HostConfig
        {
            NetworkMode = Name,
            CPUShares = 2,
            Memory = 16L * 1024 * 1024,
            LogConfig = new LogConfig { Type = "json-file", Config = new Dictionary<string, string>() },
        },
    };

    /// <summary>
    /// Makes a task container join the pause container's namespace. Docker refuses a hostname, published or exposed
    /// ports and links with a container network mode; ports need no publishing: they listen on the task's IP.
    /// </summary>
    public static void Join(CreateContainerParameters create, string pauseId)
    {
        create.HostConfig ??= new HostConfig();
        create.HostConfig.NetworkMode = $"container:{pauseId}";
        create.Hostname = null!;
        create.ExposedPorts = null!;
        create.HostConfig.PortBindings = null!;
        create.HostConfig.Links = null!;
    }
}
