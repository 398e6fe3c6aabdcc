using Berth.ControlPlane.State;
using Berth.State;

namespace Berth.ControlPlane.Agents;

/// <summary>
/// At start no agent stream is open yet, so any instance still marked agentConnected (left over
/// from a server that was killed) is marked disconnected; agents flip it back when they re-register.
/// The region directory runs it for every region it opens at start, from its hosted service: hosted
/// services start before Kestrel accepts connections, so this cannot race a new stream.
/// </summary>
internal static class AgentConnectionReset
{
    public static async Task ResetAsync(EcsState state, CancellationToken cancellationToken)
    {
        await using var tx = await state.BeginAsync(cancellationToken).ConfigureAwait(false);
        foreach (var v in state.ContainerInstances.All)
        {
            if (v.Value.AgentConnected && v.Value.AgentId is not null)
            {
                tx.Put(state.ContainerInstances, v.Id, v.Value with { AgentConnected = false });
            }
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
