using Berth.Core.Agent;
using Grpc.Core;

namespace Berth.ControlPlane.Agents;

/// <summary>Server side of the agent stream (see agent.proto).</summary>
internal sealed class AgentGatewayService : AgentGateway.AgentGatewayBase
{
    public override Task Connect(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<ServerMessage> responseStream, ServerCallContext context)
        => throw new RpcException(new Status(StatusCode.Unimplemented, "not yet"));
}
