using System.Security.Cryptography;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging;

namespace Berth.ControlPlane.Domain;

/// <summary>The rules of a container instance's life as agents drive it: registration with proof of identity, connection state.</summary>
public sealed partial class InstanceLifecycle(EcsState state, Arns arns, TimeProvider time, ILogger<InstanceLifecycle> logger)
{
    /// <summary>The outcome of an agent's registration: the instance and its key, the secret issued (first registration only), or why it was refused.</summary>
    public sealed record Registration(InstanceRecord? Stored, string Key, string? NewSecret, string? Rejection);

    private static string Hash(string secret) => Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(secret)));

    /// <summary>
    /// An agent registers (or registers again): it must prove with its secret that it is the agent that owns an
    /// existing instance; a first registration is issued a new secret. Creates the default cluster on first use.
    /// <paramref name="sameAgentOnly"/> (TLS, where the agent id is certified): an existing instance is taken again
    /// only by the agent id that registered it, even with the right secret.
    /// </summary>
    public async Task<Registration> RegisterAgentAsync(Register reg, CancellationToken ct, bool sameAgentOnly = false)
    {
        var clusterName = string.IsNullOrEmpty(reg.Cluster) ? "default" : Arns.NameOf(reg.Cluster);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var cluster = state.Clusters.Find(clusterName);
        if (cluster is null && clusterName == "default")
        {
            // ECS creates the default cluster on first use.
            cluster = Clusters.New(clusterName);
            tx.Put(state.Clusters, clusterName, cluster);
        }
        if (cluster is not { Status: "ACTIVE" })
        {
            return new Registration(null, "", null, $"Cluster {clusterName} not found: create it first (aws ecs create-cluster --cluster-name {clusterName}).");
        }

        InstanceRecord? previous = null;
        string? key = null;
        if (!string.IsNullOrEmpty(reg.ContainerInstanceArn))
        {
            var k = state.KeyIn(clusterName, reg.ContainerInstanceArn);
            if (k is not null && state.ContainerInstances.Find(k) is { } known && known.Status != "INACTIVE")
            {
                previous = known;
                key = k;
            }
        }
        if (previous is null && !string.IsNullOrEmpty(reg.AgentId) && state.Ledger.ByAgent(clusterName, reg.AgentId) is { } byAgent
            && state.ContainerInstances.Find(byAgent) is { } match && match.Status != "INACTIVE")
        {
            previous = match;
            key = byAgent;
        }
        if (sameAgentOnly && previous is not null && previous.AgentId is not null && !string.Equals(previous.AgentId, reg.AgentId, StringComparison.Ordinal))
        {
            return new Registration(null, "", null,
                $"Container instance {InstanceViews.Arn(arns, previous)} belongs to agent {previous.AgentId}, not to agent {reg.AgentId}.");
        }
        string? newSecret = null;
        var secretHash = previous?.AgentSecretHash;
        if (previous is not null && secretHash is not null)
        {
            // The instance was registered by an agent that holds a secret: only that agent may take it again.
            if (string.IsNullOrEmpty(reg.AgentSecret) || !CryptographicOperations.FixedTimeEquals(
                    System.Text.Encoding.ASCII.GetBytes(Hash(reg.AgentSecret)), System.Text.Encoding.ASCII.GetBytes(secretHash)))
            {
                return new Registration(null, "", null,
                    $"Container instance {InstanceViews.Arn(arns, previous)} belongs to another agent (its secret does not match). " +
                    "To register this host as a new container instance, remove agent.json from the agent's data directory.");
            }
        }
        else
        {
            newSecret = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
            secretHash = Hash(newSecret);
        }
        key ??= EcsState.ScopedId(clusterName, Guid.NewGuid().ToString("N"));
        var id = key[(clusterName.Length + 1)..];

        var attributes = reg.Attributes.Select(kv => new AttributeRecord { Name = kv.Key, Value = kv.Value }).ToList();
        // Keep attributes set through PutAttributes; the agent's own ones are refreshed.
        foreach (var a in previous?.Attributes ?? [])
        {
            if (a.Name is not null && !reg.Attributes.ContainsKey(a.Name))
            {
                attributes.Add(a);
            }
        }
        var ports = InstanceLedger.ReservedPortStrings(reg.ReservedPorts).ToList();
        var udp = reg.ReservedUdpPorts.Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)).Distinct().ToList();
        var now = time.GetUtcNow();
        var stored = new InstanceRecord
        {
            Id = id,
            Cluster = clusterName,
            Ec2InstanceId = reg.Hostname,
            Status = previous?.Status is "DRAINING" ? "DRAINING" : "ACTIVE",
            AgentConnected = true,
            RegisteredAt = previous?.RegisteredAt ?? now,
            Version = (previous?.Version ?? 0) + 1,
            VersionInfo = new VersionInfoRecord
            {
                AgentVersion = reg.AgentVersion,
                AgentHash = reg.AgentHash,
                DockerVersion = "DockerVersion: " + reg.DockerVersion,
            },
            Cpu = reg.CpuUnits,
            Memory = (int)Math.Min(reg.MemoryMib, int.MaxValue),
            Ports = ports,
            UdpPorts = udp,
            Attributes = attributes,
            Tags = previous?.Tags,
            AgentId = reg.AgentId,
            AgentSecretHash = secretHash,
        };
        tx.Put(state.ContainerInstances, key, stored);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new Registration(stored, key, newSecret, null);
    }

    /// <summary>Records whether the instance's agent holds a stream now.</summary>
    public Task SetConnectedAsync(string key, bool connected, CancellationToken ct) => SetConnectedAsync(key, () => connected, ct);

    /// <summary>
    /// Records the gateway's current view of whether the instance's agent holds a stream, reading it under the
    /// write lock: when an old stream's end and a new stream's start race, whichever writes last writes the latest
    /// view, so a live agent is never left recorded as disconnected (and then taken for a lost host).
    /// </summary>
    public async Task SetConnectedAsync(string key, Func<bool> connectedNow, CancellationToken ct)
    {
        try
        {
            await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
            var connected = connectedNow();
            if (state.ContainerInstances.Find(key) is { } s && s.AgentConnected != connected)
            {
                tx.Put(state.ContainerInstances, key, s with { AgentConnected = connected, Version = s.Version + 1 });
                await tx.CommitAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogSetConnectedFailed(logger, e, key);
        }
    }


    [LoggerMessage(Level = LogLevel.Error, Message = "Could not record the agent connection state of {InstanceKey}")]
    private static partial void LogSetConnectedFailed(ILogger logger, Exception exception, string instanceKey);
}

/// <summary>Cluster rules shared by the API and agent registration.</summary>
public static class Clusters
{
    /// <summary>A new ACTIVE cluster with ECS's defaults (also used when an agent registers into "default").</summary>
    public static ClusterRecord New(string name) => new()
    {
        Name = name,
        Status = "ACTIVE",
        Settings = [new ClusterSettingRecord("containerInsights", "disabled")],
        CapacityProviders = [],
        DefaultCapacityProviderStrategy = [],
    };
}
