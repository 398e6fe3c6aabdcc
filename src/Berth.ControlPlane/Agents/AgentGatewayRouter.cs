using Berth.Aws.Auth;
using Berth.ControlPlane.Regions;
using Berth.Core.Agent;
using Grpc.Core;

namespace Berth.ControlPlane.Agents;

/// <summary>
/// The agent port's gRPC service: reads an agent's first message (Register), opens the region it names
/// (<c>berth agent --region</c>; empty means the server's default region) and hands the whole stream to that
/// region's <see cref="AgentGatewayService"/>, which serves it as before. Joining and the CA certificate are
/// not regional and go to the default region's gateway.
/// </summary>
internal sealed class AgentGatewayRouter(RegionDirectory regions) : AgentGateway.AgentGatewayBase
{
    public override async Task Connect(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<ServerMessage> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct).ConfigureAwait(false))
        {
            return;
        }
        var first = requestStream.Current;
        var region = first.BodyCase == AgentMessage.BodyOneofCase.Register && first.Register.Region.Length > 0
            ? first.Register.Region
            : regions.DefaultIdentity.Region;
        if (!CredentialScope.IsValidRegion(region))
        {
            await responseStream.WriteAsync(new ServerMessage { Rejected = new RegistrationRejected { Reason = $"'{region}' is not a region name (for example us-west-2)." } }, ct).ConfigureAwait(false);
            return;
        }
        RegionScope scope;
        try
        {
            scope = await regions.GetAsync(region, ct).ConfigureAwait(false);
        }
        catch (Aws.Protocol.AwsException e)
        {
            await responseStream.WriteAsync(new ServerMessage { Rejected = new RegistrationRejected { Reason = e.Message } }, ct).ConfigureAwait(false);
            return;
        }
        await scope.Gateway.Connect(new Replay(first, requestStream), responseStream, context).ConfigureAwait(false);
    }

    public override Task<CaCertificateResponse> CaCertificate(CaCertificateRequest request, ServerCallContext context)
        => regions.Default.Gateway.CaCertificate(request, context);

    public override Task<JoinResponse> Join(JoinRequest request, ServerCallContext context)
        => regions.Default.Gateway.Join(request, context);

    /// <summary>The stream with its first message, already read here, put back in front.</summary>
    private sealed class Replay(AgentMessage first, IAsyncStreamReader<AgentMessage> rest) : IAsyncStreamReader<AgentMessage>
    {
        // 0: nothing read yet; 1: the first message is current; 2: the rest of the stream is.
        private int _step;

        public AgentMessage Current => _step == 2 ? rest.Current : first;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (_step == 0)
            {
                _step = 1;
                return Task.FromResult(true);
            }
            _step = 2;
            return rest.MoveNext(cancellationToken);
        }
    }
}
