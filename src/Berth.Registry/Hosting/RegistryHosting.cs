using Berth.Aws.Protocol;
using Berth.Registry.Auth;
using Berth.Registry.Distribution;
using Berth.Registry.Ecr;
using Berth.Registry.Lifecycle;
using Berth.Registry.Metadata;
using Berth.Registry.Storage;
using Berth.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Berth.Registry.Hosting;

public static class RegistryHosting
{
    /// <summary>Registers the registry: blob store, metadata, the ECR API and the background sweeper (lifecycle policies, then garbage collection). Needs an <see cref="IStateStore"/>.</summary>
    public static IServiceCollection AddBerthRegistry(this IServiceCollection services, RegistryOptions options)
    {
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(sp => new BlobStore(options.DataDirectory, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp =>
        {
            var state = new RegistryState(sp.GetRequiredService<IStateStore>());
            state.LoadAsync().GetAwaiter().GetResult();
            return state;
        });
        services.AddSingleton<RegistryTokens>();
        // Replaces the control plane's no-op default: the last registration is the one resolved.
        services.AddSingleton<Berth.Core.IRegistryCredentialProvider, RegistryCredentialProvider>();
        services.AddSingleton<RegistryService>();
        services.AddSingleton<DistributionApi>();
        services.AddSingleton<AwsJsonService>(EcrApi.Build);
        services.AddSingleton<IRegistryMaintenance, LifecyclePolicyRunner>();
        services.AddHostedService<RegistrySweeper>();
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
