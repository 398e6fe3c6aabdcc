using Berth.Aws.Auth;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Agents;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Ecs;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Berth.ControlPlane.Hosting;

public static class ControlPlaneHosting
{
    /// <summary>Registers the store, the ECS API, the agent gateway and the controllers.</summary>
    public static IServiceCollection AddBerthControlPlane(this IServiceCollection services, ControlPlaneOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton(options.Identity);
        services.AddSingleton<Arns>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IStateStore>(_ => SqliteStateStore.Open(Path.Combine(options.DataDirectory, "state.db")));
        services.AddSingleton(sp =>
        {
            var state = new EcsState(sp.GetRequiredService<IStateStore>(), options.Identity);
            state.LoadAsync().GetAwaiter().GetResult();
            return state;
        });
        services.AddSingleton(sp => new TaskLifecycle(sp.GetRequiredService<EcsState>(), sp.GetRequiredService<Arns>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<InstanceLifecycle>();
        services.AddHostedService<TaskRetention>();
        services.AddSingleton<ServiceLifecycle>();
        services.TryAddSingleton<IServiceTargets, NoServiceTargets>();
        services.AddSingleton<ServiceScheduler>();
        services.AddHostedService(sp => sp.GetRequiredService<ServiceScheduler>());
        services.AddSingleton<LostHostSweeper>();
        services.AddHostedService(sp => sp.GetRequiredService<LostHostSweeper>());
        services.AddSingleton<AwsJsonService>(sp => EcsApi.Build(sp));
        services.AddGrpc();
        // The registry registers the real provider; this one only fills in when there is none.
        services.TryAddSingleton<IRegistryCredentialProvider, NoRegistryCredentials>();
        // The agents' CA (DATA/pki); the CLI registers the instance it made its serving certificate from first.
        services.TryAddSingleton(sp => AgentPki.LoadOrCreate(options.DataDirectory, sp.GetRequiredService<TimeProvider>()));
        services.AddBerthAgentGateway();
        return services;
    }

    /// <summary>Maps the AWS front door, the agent gateway and the health endpoint.</summary>
    public static WebApplication MapBerthControlPlane(this WebApplication app)
    {
        // Load state before the first request rather than inside it.
        _ = app.Services.GetRequiredService<EcsState>();
        app.MapAwsFrontDoor();
        app.MapBerthAgentGateway();
        var auth = AwsAuthenticator.ModeName(app.Services.GetService<AwsAuthenticator>()?.Mode ?? AuthMode.None);
        app.MapGet("/_berth/health", (EcsState state, BerthIdentity id, ControlPlaneOptions o) => Results.Json(new HealthStatus(
            "ok", id.AccountId, id.Region, o.AgentPort, state.Store.Revision,
            state.Clusters.Count, state.ContainerInstances.Count, state.Tasks.Count, auth), HostingJsonContext.Default.HealthStatus));
        return app;
    }
}

public sealed record HealthStatus(string Status, string AccountId, string Region, int AgentPort, long StoreRevision, int Clusters, int ContainerInstances, int Tasks, string Auth = "none");

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(HealthStatus))]
internal sealed partial class HostingJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
