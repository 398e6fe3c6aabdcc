using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.ControlPlane.Agents;

public static class AgentGatewayHosting
{
    /// <summary>The agent port's service; each region has its own <see cref="AgentGatewayService"/> (see Regions/README.md).</summary>
    public static IServiceCollection AddBerthAgentGateway(this IServiceCollection services)
    {
        services.AddSingleton<AgentGatewayRouter>();
        return services;
    }

    public static WebApplication MapBerthAgentGateway(this WebApplication app)
    {
        app.MapGrpcService<AgentGatewayRouter>();
        return app;
    }
}
