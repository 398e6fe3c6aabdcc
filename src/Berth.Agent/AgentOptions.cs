using Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>Settings of one agent (one container instance).</summary>
public sealed record AgentOptions
{
    /// <summary>The control plane's URL, e.g. http://127.0.0.1:4566.</summary>
    public required Uri ServerUrl { get; init; }

    /// <summary>The gRPC (HTTP/2) endpoint to dial; when null the agent asks ServerUrl's /_berth/health for its agentPort.</summary>
    public Uri? AgentEndpoint { get; init; }

    /// <summary>Directory for the agent's own small state (agent.json: its id, container instance ARN and secret).</summary>
    public required string DataDirectory { get; init; }

    public string Cluster { get; init; } = "default";

    /// <summary>CPU units to register instead of 1024 per core.</summary>
    public int? CpuUnits { get; init; }

    /// <summary>Memory (MiB) to register instead of the host's total.</summary>
    public long? MemoryMiB { get; init; }

    public string InstanceType { get; init; } = "berth.local";
    public string AvailabilityZone { get; init; } = "us-east-1a";

    /// <summary>Docker Engine endpoint; unix:///var/run/docker.sock by default (DOCKER_HOST honoured).</summary>
    public Uri? DockerEndpoint { get; init; }

    /// <summary>Extra labels put on every container this agent creates (tests use one to clean up).</summary>
    public IReadOnlyDictionary<string, string> ContainerLabels { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// How long containers of a stopped task are kept (so `docker logs` works) before they and the task's volumes are
    /// removed; 3 hours by default, as ECS's ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION.
    /// </summary>
    public TimeSpan TaskCleanupWait { get; init; } = TimeSpan.FromHours(3);

    /// <summary>
    /// How often every container of this agent is re-read from Docker, as a safety net for lost events; between
    /// resyncs the agent acts on Docker's event stream only.
    /// </summary>
    public TimeSpan ResyncInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often the agent sends a heartbeat on its stream.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// TLS on the agent channel (mutual, pinned to the server's CA); null: plaintext, which the CLI allows only when
    /// the server is on loopback.
    /// </summary>
    public AgentTlsOptions? Tls { get; init; }

    /// <summary>Serve the task metadata endpoint (ECS_CONTAINER_METADATA_URI_V4) to the containers this agent starts.</summary>
    public bool MetadataEndpoint { get; init; } = true;

    /// <summary>
    /// TCP port of the metadata endpoint on the Docker bridge's gateway address; null: the port this agent used
    /// before (kept in DATA/metadata.json, so containers that outlive an agent restart keep a working URI), else a free one.
    /// </summary>
    public int? MetadataPort { get; init; }

    /// <summary>Image cleanup as ECS's agent does it (ECS_DISABLE_IMAGE_CLEANUP=false): only images this agent pulled.</summary>
    public bool ImageCleanup { get; init; } = true;

    /// <summary>Time between image cleanup cycles (ECS_IMAGE_CLEANUP_INTERVAL, 30 min).</summary>
    public TimeSpan ImageCleanupInterval { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>An image pulled less than this long ago is kept (ECS_IMAGE_MINIMUM_CLEANUP_AGE, 1 h), unless disk space is short.</summary>
    public TimeSpan ImageMinimumCleanupAge { get; init; } = TimeSpan.FromHours(1);

    /// <summary>At most this many images are removed per cycle (ECS_NUM_IMAGES_DELETE_PER_CYCLE, 5).</summary>
    public int ImagesDeletedPerCycle { get; init; } = 5;

    /// <summary>Below this share of free space on Docker's data directory, the minimum age no longer protects an unused image.</summary>
    public double ImageCleanupMinFreeDiskFraction { get; init; } = 0.10;

    /// <summary>The capacity provider this instance belongs to: registered as the attribute ecs.capacity-provider; null: none.</summary>
    public string? CapacityProvider { get; init; }

    /// <summary>
    /// What task definitions may take from this host (host paths, the Docker socket, privileged, capabilities,
    /// devices, host pid/ipc): nothing by default. Reported as berth.policy.* attributes; a task asking for more stops
    /// with TaskFailedToStart.
    /// </summary>
    public HostPolicy HostPolicy { get; init; } = HostPolicy.Default;

    /// <summary>The region the instance registers into (<c>berth agent --region</c>); null: the server's default region.</summary>
    public string? Region { get; init; }
}

/// <summary>How the agent secures its channel: the join token it joins with when it holds no certificate yet.</summary>
public sealed record AgentTlsOptions
{
    /// <summary>berth-join.FINGERPRINT.SECRET; needed only until the agent holds its certificate (DATA/agent/tls).</summary>
    public string? JoinToken { get; init; }
}
