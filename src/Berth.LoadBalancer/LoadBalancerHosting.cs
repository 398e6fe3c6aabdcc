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

namespace Berth.LoadBalancer;

public static class LoadBalancerHosting
{
    /// <summary>Registers the ELBv2 API (Query protocol, on the AWS front door) and the YARP data plane. Needs an <see cref="IStateStore"/> and a <see cref="BerthIdentity"/>.</summary>
    public static IServiceCollection AddBerthLoadBalancer(this IServiceCollection services, LoadBalancerOptions options)
    {
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IInstanceAddressResolver, NoInstances>();
        services.AddSingleton(sp =>
        {
            var state = new Elbv2State(sp.GetRequiredService<IStateStore>(), sp.GetRequiredService<BerthIdentity>());
            state.LoadAsync().GetAwaiter().GetResult();
            return state;
        });
        services.AddSingleton(sp => new Elbv2Arns(sp.GetRequiredService<BerthIdentity>()));
        services.AddSingleton<Elbv2Context>();
        services.AddSingleton<TargetHealthBook>();
        services.AddSingleton<DataPlaneMetrics>();
        services.AddSingleton<TargetGroupOperations>();
        services.AddSingleton<ITargetRegistration>(sp => sp.GetRequiredService<TargetGroupOperations>());
        services.AddSingleton<AwsQueryService>(Elbv2Api.Build);
        services.AddSingleton<DataPlaneHost>();
        services.AddHostedService(sp => sp.GetRequiredService<DataPlaneHost>());
        return services;
    }

    /// <summary>Maps <c>GET /_berth/metrics</c> (the data plane's counters, Prometheus text format).</summary>
    public static IEndpointRouteBuilder MapBerthLoadBalancer(this IEndpointRouteBuilder endpoints)
    {
        _ = endpoints.ServiceProvider.GetRequiredService<Elbv2State>();
        endpoints.MapGet("/_berth/metrics", (DataPlaneMetrics metrics, DataPlaneHost host) =>
            Results.Text(metrics.Render(host.HostCounts()), "text/plain; version=0.0.4"));
        return endpoints;
    }
}
