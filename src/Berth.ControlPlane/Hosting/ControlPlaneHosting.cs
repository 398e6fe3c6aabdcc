using Berth.Aws.Auth;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Agents;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Ecs;
using Berth.ControlPlane.Regions;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

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
        // Every region is a scope of its own (Regions/README.md): its state, lifecycles, controllers, ECS API and
        // agent gateway. The directory opens the default region and the stored ones at start, others on first use.
        // The default region's state loads first, on its own (it migrates an old store, once for all regions):
        // what is not regional yet (the load balancer's instance targets) reads it, and building the regions'
        // controllers reaches those parts, so it must not wait for the directory.
        services.AddSingleton(sp =>
        {
            var state = new EcsState(sp.GetRequiredService<IStateStore>(), options.Identity);
            state.LoadAsync().GetAwaiter().GetResult();
            return state;
        });
        services.AddSingleton(sp => RegionDirectory.OpenAsync(sp, sp.GetRequiredService<EcsState>(),
            sp.GetRequiredService<ILogger<RegionDirectory>>()).GetAwaiter().GetResult());
        services.AddHostedService(sp => sp.GetRequiredService<RegionDirectory>());
        // The default region's other parts, for callers that are not regional.
        services.AddSingleton(sp => sp.GetRequiredService<RegionDirectory>().Default.Tasks);
        services.AddSingleton(sp => sp.GetRequiredService<RegionDirectory>().Default.Instances);
        services.AddSingleton(sp => sp.GetRequiredService<RegionDirectory>().Default.ServiceLifecycle);
        services.AddSingleton(sp => sp.GetRequiredService<RegionDirectory>().Default.Scheduler);
        services.TryAddSingleton<IServiceTargets, NoServiceTargets>();
        // The ECS API: the default region's, which dispatches each request to the region it is signed for.
        services.AddSingleton<AwsJsonService>(sp =>
        {
            var regions = sp.GetRequiredService<RegionDirectory>();
            var ecs = regions.Default.Ecs;
            ecs.Regional = new RegionalDispatch(options.Identity.Region, async (region, ct) => (await regions.GetAsync(region, ct).ConfigureAwait(false)).Ecs, "ecs");
            return ecs;
        });
        services.AddGrpc();
        // The registry registers the real provider; this one only fills in when there is none.
        services.TryAddSingleton<IRegistryCredentialProvider, NoRegistryCredentials>();
        // The agents' CA (DATA/pki); the CLI registers the instance it made its serving certificate from first.
        services.TryAddSingleton(sp => AgentPki.LoadOrCreate(options.DataDirectory, sp.GetRequiredService<TimeProvider>()));
        // Task role credentials (taskRoleArn): signed with a key kept in DATA, verified by the AWS front door.
        services.TryAddSingleton(sp => TaskRoleCredentialIssuer.LoadOrCreate(options.DataDirectory, sp.GetRequiredService<TimeProvider>()));
        services.AddBerthAgentGateway();
        return services;
    }

    /// <summary>True when <paramref name="taskArn"/> names a task of an open region that has not stopped.</summary>
    internal static bool IsLive(RegionDirectory regions, string taskArn)
    {
        // arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID
        var parts = taskArn.Split(':', 6);
        if (parts.Length != 6 || !parts[5].StartsWith("task/", StringComparison.Ordinal))
        {
            return false;
        }
        var path = parts[5]["task/".Length..];
        var slash = path.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return false;
        }
        var scope = regions.GetAsync(parts[3]);
        if (!scope.IsCompletedSuccessfully)
        {
            return false;
        }
        var state = scope.Result.State;
        return state.KeyOf(path[..slash], taskArn) is { } key && state.Tasks.Find(key) is { IsStopped: false };
    }

    /// <summary>Maps the AWS front door, the agent gateway and the health endpoint.</summary>
    public static WebApplication MapBerthControlPlane(this WebApplication app)
    {
        // Load state before the first request rather than inside it.
        var regions = app.Services.GetRequiredService<RegionDirectory>();
        // A task's role credentials stop working once the task has stopped (or is gone): one index lookup per request.
        app.Services.GetRequiredService<TaskRoleCredentialIssuer>().TaskIsLive = taskArn => IsLive(regions, taskArn);
        app.MapAwsFrontDoor();
        app.MapBerthAgentGateway();
        var auth = AwsAuthenticator.ModeName(app.Services.GetService<AwsAuthenticator>()?.Mode ?? AuthMode.None);
        // Counts are the default region's; regions lists every region open.
        app.MapGet("/_berth/health", (ControlPlaneOptions o) =>
        {
            var state = regions.Default.State;
            var id = regions.DefaultIdentity;
            return Results.Json(new HealthStatus(
                "ok", id.AccountId, id.Region, o.AgentPort, state.Store.Revision,
                state.Clusters.Count, state.ContainerInstances.Count, state.Tasks.Count, auth, regions.Regions), HostingJsonContext.Default.HealthStatus);
        });
        return app;
    }
}

public sealed record HealthStatus(string Status, string AccountId, string Region, int AgentPort, long StoreRevision, int Clusters, int ContainerInstances, int Tasks, string Auth = "none", IReadOnlyList<string>? Regions = null);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(HealthStatus))]
internal sealed partial class HostingJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
