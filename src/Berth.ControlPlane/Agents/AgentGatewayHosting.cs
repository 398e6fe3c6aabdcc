using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.ControlPlane.Agents;

public static class AgentGatewayHosting
{
    public static IServiceCollection AddBerthAgentGateway(this IServiceCollection services)
    {
        services.AddSingleton<AgentGatewayService>();
        services.AddHostedService<AgentConnectionReset>();
        return services;
    }

    public static WebApplication MapBerthAgentGateway(this WebApplication app)
    {
        app.MapGrpcService<AgentGatewayService>();
        return app;
    }
}
