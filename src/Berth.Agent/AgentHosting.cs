using Microsoft.Extensions.DependencyInjection;

namespace Berth.Agent;

public static class AgentHosting
{
    /// <summary>Registers the agent as a hosted service that dials <see cref="AgentOptions.ServerUrl"/>.</summary>
    public static IServiceCollection AddBerthAgent(this IServiceCollection services, AgentOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton(TimeProvider.System);
        return services;
    }
}
