using Berth.Agent.Simulation;
using Docker.DotNet;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Agent;

public static class AgentHosting
{
    /// <summary>Docker Engine API 1.41 (Engine 20.10) is the oldest engine Berth supports; newer engines accept it.</summary>
    public static readonly Version DockerApiVersion = new(1, 41);

    /// <summary>Registers the agent as a hosted service that dials <see cref="AgentOptions.ServerUrl"/>.</summary>
    public static IServiceCollection AddBerthAgent(this IServiceCollection services, AgentOptions options)
    {
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IDockerClient>(_ => CreateDockerClient(options.DockerEndpoint));
        services.AddHostedService<AgentService>();
        return services;
    }

    /// <summary>Registers a fleet of simulated container instances (no Docker) as a hosted service.</summary>
    public static IServiceCollection AddBerthSimulatedFleet(this IServiceCollection services, SimulatedFleetOptions options)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(sp => new SimulatedFleet(options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>()));
        services.AddHostedService<SimulatedFleetService>();
        return services;
    }

    /// <summary>A client for <paramref name="endpoint"/>, else DOCKER_HOST, else the local socket.</summary>
    public static IDockerClient CreateDockerClient(Uri? endpoint = null)
    {
        var host = endpoint?.ToString() ?? Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock";
        return new DockerClientBuilder().WithEndpoint(new Uri(host)).WithApiVersion(DockerApiVersion).Build();
    }

    private sealed class SimulatedFleetService(SimulatedFleet fleet) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => fleet.StartAsync(CancellationToken.None);

        public async Task StopAsync(CancellationToken cancellationToken) => await fleet.DisposeAsync().ConfigureAwait(false);
    }
}
