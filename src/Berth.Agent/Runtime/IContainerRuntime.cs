using Berth.Core.Agent;
using Docker.DotNet.Models;

namespace Berth.Agent.Runtime;

/// <summary>
/// The few container-engine calls <see cref="TaskEngine"/> makes. Docker behind it in production
/// (<see cref="DockerRuntime"/>), a hand-written fake in tests.
/// </summary>
internal interface IContainerRuntime
{
    Task<string> VersionAsync(CancellationToken ct);

    /// <summary>This agent's containers (by its agent-id label), of one task when <paramref name="taskArn"/> is set.</summary>
    Task<IReadOnlyList<RuntimeContainer>> ListAsync(string? taskArn, CancellationToken ct);

    /// <summary>Null when the container is gone.</summary>
    Task<RuntimeContainer?> InspectAsync(string id, CancellationToken ct);

    /// <summary>Makes <paramref name="image"/> present locally (a local image is used as is); <see cref="RuntimeException"/> when it cannot.</summary>
    Task EnsureImageAsync(string image, RegistryAuth? auth, CancellationToken ct);

    Task<string> CreateAsync(CreateContainerParameters parameters, CancellationToken ct);

    Task StartAsync(string id, CancellationToken ct);

    /// <summary>SIGTERM, then SIGKILL after <paramref name="timeoutSeconds"/>.</summary>
    Task StopAsync(string id, int timeoutSeconds, CancellationToken ct);

    Task RemoveAsync(string id, CancellationToken ct);

    /// <summary>
    /// Removes the task-scoped Docker volumes of the task whose id is <paramref name="taskId"/> (named
    /// <c>ecs-TASKID-VOLUME</c> by <see cref="ContainerSpec.Build"/>) once its containers are gone; a volume still in
    /// use is left alone.
    /// </summary>
    Task RemoveTaskVolumesAsync(string taskId, CancellationToken ct);

    /// <summary>
    /// Streams this agent's container events to <paramref name="onEvent"/> until the stream breaks (returns or
    /// throws) or <paramref name="ct"/> is cancelled. Events may be lost across a break: callers resync after one.
    /// </summary>
    Task WatchAsync(Action<RuntimeEvent> onEvent, CancellationToken ct);

    /// <summary>
    /// awsvpc: makes the task network (<see cref="AwsvpcNetwork.Name"/>) and the pause image
    /// (<see cref="PauseImage.Reference"/>) present, creating them when missing; <see cref="RuntimeException"/> when it cannot.
    /// </summary>
    Task EnsureAwsvpcAsync(CancellationToken ct);

    /// <summary>The engine's data root (where writable layers live), for ephemeralStorage; null when the runtime has none to measure.</summary>
    Task<string?> DataRootAsync(CancellationToken ct) => Task.FromResult<string?>(null);
}

/// <summary>One container as the engine sees it: what inspect says, reduced to what the agent reports.</summary>
internal sealed record RuntimeContainer
{
    public required string Id { get; init; }
    public required string TaskArn { get; init; }
    public required string ContainerName { get; init; }

    /// <summary>Docker's state: created, running, paused, restarting, removing, exited or dead.</summary>
    public required string State { get; init; }
    public long ExitCode { get; init; }
    public bool OomKilled { get; init; }

    /// <summary>Docker's health (starting, healthy, unhealthy); null without a health check.</summary>
    public string? Health { get; init; }
    public IReadOnlyList<Core.Agent.PortBinding> Ports { get; init; } = [];
    public string ImageDigest { get; init; } = "";

    /// <summary>The container's address and MAC on the awsvpc task network; empty when it is not attached to it.</summary>
    public string IpAddress { get; init; } = "";
    public string MacAddress { get; init; } = "";

    /// <summary>When the container last exited (Docker's State.FinishedAt); null while it has never exited.</summary>
    public DateTimeOffset? FinishedAt { get; init; }

    public bool Running => State is "running" or "restarting" or "paused";
    public bool Exited => State is "exited" or "dead";
}

/// <summary>A container of this agent changed (start, die, stop, kill, oom, health_status, destroy).</summary>
internal readonly record struct RuntimeEvent(string ContainerId, string TaskArn, string Action);

/// <summary>A container-engine call failed; the message is the engine's own, fit for a stoppedReason.</summary>
internal sealed class RuntimeException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>A create failed because the image is not there (removed since it was seen): pull it and try again.</summary>
    public bool ImageMissing { get; init; }
}
