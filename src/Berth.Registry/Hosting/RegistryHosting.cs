using Berth.Aws.Protocol;
using Berth.Registry.Auth;
using Berth.Registry.Distribution;
using Berth.Registry.Ecr;
using Berth.Registry.Lifecycle;
using Berth.Registry.Replication;
using Berth.Registry.Storage;
using Berth.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Berth.Registry.Hosting;

public static class RegistryHosting
{
    /// <summary>Registers the registry: blob store, one registry per region with its ECR API, the replication worker and the background sweeper (lifecycle policies, then garbage collection). Needs an <see cref="IStateStore"/> and a <see cref="Berth.Core.BerthIdentity"/>.</summary>
    public static IServiceCollection AddBerthRegistry(this IServiceCollection services, RegistryOptions options)
    {
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(sp => new BlobStore(options.DataDirectory, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<ReplicationQueue>();
        // One registry per region (RegistryRegions): the published region's and the stored ones open here, before
        // the first request; the others on first use.
        services.AddSingleton(sp => RegistryRegions.OpenAsync(sp).GetAwaiter().GetResult());
        // The published region's parts, for callers that are not regional (and tests).
        services.AddSingleton(sp => sp.GetRequiredService<RegistryRegions>().Default.State);
        services.AddSingleton(sp => sp.GetRequiredService<RegistryRegions>().Default.Service);
        services.AddSingleton<RegistryTokens>();
        // Replaces the control plane's no-op default: the last registration is the one resolved.
        services.AddSingleton<Berth.Core.IRegistryCredentialProvider, RegistryCredentialProvider>();
        services.AddSingleton<DistributionApi>();
        // The ECR API: the published region's, which hands each request to the region it is signed for.
        services.AddSingleton<AwsJsonService>(sp =>
        {
            var regions = sp.GetRequiredService<RegistryRegions>();
            var ecr = regions.Default.Ecr;
            ecr.Regional = new RegionalDispatch(regions.Published.Region, async (region, ct) => (await regions.GetAsync(region, ct).ConfigureAwait(false)).Ecr);
            return ecr;
        });
        services.AddSingleton<IRegistryMaintenance, LifecyclePolicyRunner>();
        services.AddHostedService<RegistrySweeper>();
        services.AddSingleton<ReplicationWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<ReplicationWorker>());
        return services;
    }

    /// <summary>Maps /v2/ (every method, every path below it).</summary>
    public static IEndpointRouteBuilder MapBerthRegistry(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.ServiceProvider.GetRequiredService<DistributionApi>();
        endpoints.Map("/v2", api.HandleAsync);
        endpoints.Map("/v2/{**rest}", api.HandleAsync);
        return endpoints;
    }
}
