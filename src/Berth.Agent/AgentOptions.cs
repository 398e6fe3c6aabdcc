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

    /// <summary>How long containers of a stopped task are kept before removal.</summary>
    public TimeSpan TaskCleanupWait { get; init; } = TimeSpan.FromMinutes(10);

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
}

/// <summary>How the agent secures its channel: the join token it joins with when it holds no certificate yet.</summary>
public sealed record AgentTlsOptions
{
    /// <summary>berth-join.FINGERPRINT.SECRET; needed only until the agent holds its certificate (DATA/agent/tls).</summary>
    public string? JoinToken { get; init; }
}
