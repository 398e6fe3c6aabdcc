using System.Net;

namespace Berth.LoadBalancer;

/// <summary>Settings of the load balancer: where listeners bind and how DNS names are formed.</summary>
public sealed record LoadBalancerOptions
{
    /// <summary>Address every listener port binds to.</summary>
    public IPAddress BindAddress { get; init; } = IPAddress.Loopback;

    /// <summary>Zone reported for load balancers created without subnets (the local agent's zone).</summary>
    public string DefaultAvailabilityZone { get; init; } = "us-east-1a";

    /// <summary>DNS names are NAME-NUMBER.REGION.{DnsSuffix}; names under .localhost resolve to loopback.</summary>
    public string DnsSuffix { get; init; } = "elb.localhost";

    /// <summary>Ports the rest of the process holds (the API, the agents' port); a listener may not take them.</summary>
    public IReadOnlySet<int> ReservedPorts { get; init; } = new HashSet<int>();

    /// <summary>Longest a connection to a target may take before the request answers 504 (ALB: 10 s).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// File the data plane keeps its targets' last health verdicts in, so that after a restart healthy targets keep their
    /// traffic and unhealthy ones stay out until the checks say otherwise; null: every target starts over in <c>initial</c>.
    /// </summary>
    public string? HealthFile { get; init; }

    /// <summary>
    /// Most client connections the listeners hold at once (all ports; shared evenly by the data plane's event loops). At
    /// the limit a loop stops accepting until connections close; waiting clients sit in the kernel's accept queue.
    /// </summary>
    public int MaxConnections { get; init; } = 50_000;

    /// <summary>How often draining targets and target group counts are re-examined.</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromMilliseconds(250);
}
