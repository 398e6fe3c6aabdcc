using Berth.Aws.Protocol;
using Berth.Core;
using Berth.LoadBalancer.Api;
using Berth.LoadBalancer.DataPlane;
using Berth.LoadBalancer.State;
using Berth.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Berth.LoadBalancer;

public static class LoadBalancerHosting
{
    /// <summary>Registers the ELBv2 API (Query protocol, on the AWS front door) and the YARP data plane. Needs an <see cref="IStateStore"/> and a <see cref="BerthIdentity"/>.</summary>
    public static IServiceCollection AddBerthLoadBalancer(this IServiceCollection services, LoadBalancerOptions options)
    {
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IInstanceAddressResolver, NoInstances>();
        services.AddSingleton<TargetHealthBook>();
        services.AddSingleton<DataPlaneMetrics>();
        // Each region its own namespace (the request's SigV4 region selects it); the default region and every region
        // the store holds are opened at start, others on first use.
        services.AddSingleton(sp => Elbv2Regions.OpenAsync(
            sp.GetRequiredService<IStateStore>(), sp.GetRequiredService<BerthIdentity>(), options, sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<TargetHealthBook>(), sp.GetRequiredService<IInstanceAddressResolver>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<Elbv2Regions>()).GetAwaiter().GetResult());
        services.AddSingleton(sp => sp.GetRequiredService<Elbv2Regions>().Default.State);
        services.AddSingleton<ITargetRegistration>(sp => sp.GetRequiredService<Elbv2Regions>());
        services.AddSingleton(sp => sp.GetRequiredService<Elbv2Regions>().Default.Api);
        services.AddSingleton<DataPlaneHost>();
        services.AddHostedService(sp => sp.GetRequiredService<DataPlaneHost>());
        return services;
    }

    /// <summary>Maps <c>GET /_berth/metrics</c> (the data plane's counters, Prometheus text format).</summary>
    public static IEndpointRouteBuilder MapBerthLoadBalancer(this IEndpointRouteBuilder endpoints)
    {
        _ = endpoints.ServiceProvider.GetRequiredService<Elbv2Regions>();
        endpoints.MapGet("/_berth/metrics", (DataPlaneMetrics metrics, DataPlaneHost host) =>
            Results.Text(metrics.Render(host.HostCounts()) + host.FastPathMetrics(), "text/plain; version=0.0.4"));
        return endpoints;
    }
}
