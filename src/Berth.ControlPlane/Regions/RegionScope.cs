using Berth.Aws.Protocol;
using Berth.ControlPlane.Agents;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Ecs;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Berth.ControlPlane.Regions;

/// <summary>
/// One region's ECS namespace: its <see cref="EcsState"/> (keys under ecs/{account}/{region}/), the domain
/// lifecycles and controllers over it, the ECS API bound to them and the agent gateway its agents talk to.
/// Everything in a scope is built from the scope's <see cref="Identity"/>, so its ARNs carry its region.
/// </summary>
public sealed class RegionScope
{
    private RegionScope(RegionServices services)
    {
        Services = services;
        Identity = services.Get<BerthIdentity>();
        Arns = services.Get<Arns>();
        State = services.Get<EcsState>();
        Tasks = services.Get<TaskLifecycle>();
        Instances = services.Get<InstanceLifecycle>();
        ServiceLifecycle = services.Get<ServiceLifecycle>();
        Scheduler = services.Get<ServiceScheduler>();
        Sweeper = services.Get<LostHostSweeper>();
        Retention = services.Get<TaskRetention>();
        Gateway = services.Get<AgentGatewayService>();
        Ecs = services.Get<AwsJsonService>();
    }

    public string Region => Identity.Region;
    public BerthIdentity Identity { get; }
    public Arns Arns { get; }
    public EcsState State { get; }
    public TaskLifecycle Tasks { get; }
    public InstanceLifecycle Instances { get; }
    public ServiceLifecycle ServiceLifecycle { get; }
    public ServiceScheduler Scheduler { get; }
    internal LostHostSweeper Sweeper { get; }
    internal TaskRetention Retention { get; }
    internal AgentGatewayService Gateway { get; }

    /// <summary>The ECS API of this region (the front door picks it by the request's region).</summary>
    public AwsJsonService Ecs { get; }

    /// <summary>The scope's own services in front of the server's (for building more per-region parts).</summary>
    internal RegionServices Services { get; }

    /// <summary>The reconcile loops of this region, started and stopped by the <see cref="RegionDirectory"/>.</summary>
    internal IReadOnlyList<IHostedService> Controllers => [Scheduler, Sweeper, Retention];

    /// <summary>
    /// Loads the region's state from <paramref name="store"/> (no migration: the default region's load ran it, once;
    /// the default region's state comes <paramref name="loaded"/> already) and builds
    /// the region's parts. Whatever is not region-scoped (time, options, the agents' CA, the load balancer's target
    /// registration, loggers) comes from <paramref name="root"/>.
    /// </summary>
    internal static async Task<RegionScope> OpenAsync(IServiceProvider root, IStateStore store, BerthIdentity identity, CancellationToken ct, EcsState? loaded = null)
    {
        var state = loaded;
        if (state is null)
        {
            state = new EcsState(store, identity) { MigrateOnLoad = false };
            await state.LoadAsync(ct).ConfigureAwait(false);
        }
        var services = new RegionServices(root);
        var arns = new Arns(identity);
        services.Add(identity);
        services.Add(arns);
        services.Add(state);
        services.Add(new TaskLifecycle(state, arns, root.GetRequiredService<TimeProvider>()));
        services.Create<InstanceLifecycle>();
        services.Create<ServiceLifecycle>();
        services.Create<ServiceScheduler>();
        services.Create<LostHostSweeper>();
        services.Create<TaskRetention>();
        services.Create<AgentGatewayService>();
        services.Add(EcsApi.Build(services));
        return new RegionScope(services);
    }
}

/// <summary>
/// A region's service provider: the region-scoped instances first, then the server's container. Operations
/// classes are built with <see cref="ActivatorUtilities"/> over it, so a constructor asking for an
/// <see cref="EcsState"/> or <see cref="Arns"/> gets its region's, never the default region's.
/// </summary>
internal sealed class RegionServices(IServiceProvider root) : IServiceProvider
{
    private readonly Dictionary<Type, object> _own = [];

    public void Add<T>(T value) where T : class => _own[typeof(T)] = value;

    public T Create<T>() where T : class
    {
        var value = ActivatorUtilities.CreateInstance<T>(this);
        Add(value);
        return value;
    }

    public T Get<T>() where T : class => (T)_own[typeof(T)];

    public object? GetService(Type serviceType) => _own.TryGetValue(serviceType, out var v) ? v : root.GetService(serviceType);
}
