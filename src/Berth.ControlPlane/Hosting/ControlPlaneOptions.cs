using Berth.Core;

namespace Berth.ControlPlane.Hosting;

/// <summary>Settings of one control-plane process.</summary>
public sealed record ControlPlaneOptions
{
    /// <summary>Directory holding state.db (and, later, registry blobs).</summary>
    public required string DataDirectory { get; init; }

    public BerthIdentity Identity { get; init; } = new();

    /// <summary>How long an agent may stay silent before its instance is marked agentConnected=false.</summary>
    public TimeSpan AgentTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long an instance's agent may stay disconnected before the instance's live tasks are marked STOPPED
    /// (its host is taken as lost, so services can replace them elsewhere); a reconnect within it cancels that.
    /// </summary>
    public TimeSpan AgentGrace { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The public endpoint clients use ("http://127.0.0.1:4566"); used in repositoryUri and proxyEndpoint.</summary>
    public string PublicEndpoint { get; init; } = "http://127.0.0.1:4566";

    /// <summary>Port of the HTTP/2 listener agents dial; reported by /_berth/health so an agent needs only the public URL.</summary>
    public int AgentPort { get; init; } = 4567;

    /// <summary>How long a STOPPED task stays describable before the retention sweep removes it (ECS: at least an hour).</summary>
    public TimeSpan TaskRetention { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How often the retention sweep runs.</summary>
    public TimeSpan RetentionSweepInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// True when the agent port speaks TLS: agents join with the token (AgentGateway.Join) and then connect with a
    /// client certificate from <see cref="Agents.AgentPki"/>, which Connect requires and binds to the agent id.
    /// </summary>
    public bool AgentTls { get; init; }
}
