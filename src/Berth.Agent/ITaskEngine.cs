using System.Threading.Channels;
using Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>
/// What runs tasks behind an <see cref="AgentConnection"/>: Docker (<see cref="TaskEngine"/>) or a simulation
/// (<see cref="Simulation.SimulatedEngine"/>). The connection is the same for both, so the server cannot tell them apart.
/// </summary>
internal interface ITaskEngine : IAsyncDisposable
{
    /// <summary>Adopts what the host already runs (Docker: containers found by this agent's labels).</summary>
    Task StartAsync(CancellationToken ct);

    /// <summary>Tasks the engine has containers or records of, for <see cref="Register.KnownTaskArns"/>.</summary>
    IReadOnlyCollection<string> KnownTaskArns();

    /// <summary>
    /// Applies one desired state (snapshot or delta) to the engine's records and schedules the work; returns
    /// once it is recorded, so the caller can acknowledge its generation. Starting and stopping happen afterwards.
    /// </summary>
    void Apply(DesiredState desired);

    /// <summary>Reports for the server, sequence numbers assigned, in order; outlives connections.</summary>
    ChannelReader<TaskStatusReport> Reports { get; }
}
