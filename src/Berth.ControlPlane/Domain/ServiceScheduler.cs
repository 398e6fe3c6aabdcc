using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
using Berth.Scheduling;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// The service scheduler: a level-triggered reconcile loop. It never rescans every service on a timer;
/// a service is looked at again when something it depends on changes — its own record, one of its tasks
/// (status, desired status, health), an instance of its cluster it has tasks on (or any instance, for
/// DAEMON services and services waiting for capacity) — or when a deadline it set passes (restart
/// backoff, health-check grace). Each look reads the service and its tasks (the task index's set for
/// group "service:NAME"), asks <see cref="ServicePlanner"/> what to do, and applies the plan: stops,
/// launches through <see cref="TaskLifecycle"/>, and the record's bookkeeping merged into the newest
/// version of the service (compare-and-swap, retried).
/// </summary>
public sealed partial class ServiceScheduler : BackgroundService
{
    private readonly EcsState _state;
    private readonly TaskLifecycle _tasks;
    private readonly TimeProvider _time;
    private readonly ILogger<ServiceScheduler> _logger;
    private readonly object _gate = new();
    private HashSet<string> _dirty = new(StringComparer.Ordinal);
    private readonly PriorityQueue<string, DateTimeOffset> _timers = new();
    /// <summary>Services that could not place a task, by cluster: retried when capacity may have appeared there.</summary>
    private readonly Dictionary<string, HashSet<string>> _starved = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _signal = new(0, 1);
    private long _passes;

    private readonly IServiceTargets _targets;
    /// <summary>Tasks deregistered from their target groups and draining, with the reason they stop for once drained.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _leaving = new(StringComparer.Ordinal);

    public ServiceScheduler(EcsState state, TaskLifecycle tasks, TimeProvider time, ILogger<ServiceScheduler> logger, IServiceTargets? targets = null)
    {
        _targets = targets ?? new NoServiceTargets();
        _state = state;
        _tasks = tasks;
        _time = time;
        _logger = logger;
        state.Services.Changed += (id, _, _) => Mark(id);
        state.TaskIndex.Applied += OnTask;
        state.ContainerInstances.Changed += OnInstance;
    }

    /// <summary>Reconcile passes run so far (tests and benchmarks watch it).</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>Placement's source of randomness (tests may fix it).</summary>
    public Random Random { get; init; } = Random.Shared;

    private void OnTask(string id, TaskRecord? old, TaskRecord? now)
    {
        var t = now ?? old!;
        if (t.Group is not { } group || !group.StartsWith("service:", StringComparison.Ordinal))
        {
            if (now?.IsStopped == true && old?.IsStopped != true)
            {
                WakeStarved(t.Cluster);
            }
            return;
        }
        if (old is not null && now is not null && old.LastStatus == now.LastStatus && old.DesiredStatus == now.DesiredStatus
            && ServicePlanner.HealthOf(old) == ServicePlanner.HealthOf(now) && Digests(old) == Digests(now))
        {
            return;
        }
        Mark(EcsState.ScopedId(t.Cluster, group["service:".Length..]));
        if (now?.IsStopped == true && old?.IsStopped != true)
        {
            WakeStarved(t.Cluster);
        }
    }

    /// <summary>How many containers reported an image digest (a first report resolves a deployment's images, see <see cref="VersionConsistency"/>).</summary>
    private static int Digests(TaskRecord t)
    {
        var n = 0;
        foreach (var c in t.Containers)
        {
            n += string.IsNullOrEmpty(c.ImageDigest) ? 0 : 1;
        }
        return n;
    }

    private void OnInstance(string key, InstanceRecord? old, InstanceRecord? now)
    {
        var cluster = key[..key.IndexOf('/', StringComparison.Ordinal)];
        if (old is not null && now is not null && old.Status == now.Status && old.AgentConnected == now.AgentConnected
            && ReferenceEquals(old.Attributes, now.Attributes))
        {
            return;
        }
        WakeStarved(cluster);
        foreach (var daemon in _state.ServiceIndex.DaemonsIn(cluster))
        {
            Mark(daemon);
        }
        if (old?.Status != now?.Status)
        {
            // Draining (or deregistered): the services with tasks there move them.
            foreach (var taskKey in _state.TaskIndex.Get(TaskIndex.ByInstance, cluster, key[(cluster.Length + 1)..]))
            {
                if (_state.Tasks.Find(taskKey) is { Group: { } g } && g.StartsWith("service:", StringComparison.Ordinal))
                {
                    Mark(EcsState.ScopedId(cluster, g["service:".Length..]));
                }
            }
        }
    }

    private void WakeStarved(string cluster)
    {
        lock (_gate)
        {
            if (!_starved.Remove(cluster, out var keys))
            {
                return;
            }
            _dirty.UnionWith(keys);
        }
        Signal();
    }

    /// <summary>Asks for one more look at a service ("{cluster}/{name}").</summary>
    public void Mark(string key)
    {
        lock (_gate)
        {
            _dirty.Add(key);
        }
        Signal();
    }

    private void Signal()
    {
        if (_signal.CurrentCount == 0)
        {
            try
            {
                _signal.Release();
            }
            catch (SemaphoreFullException)
            {
                // Already signalled.
            }
        }
    }

    private void WakeAt(string key, DateTimeOffset at)
    {
        lock (_gate)
        {
            _timers.Enqueue(key, at);
        }
        Signal();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Every service gets one look at start: the loop is level-triggered, so whatever happened while
        // the server was down is caught up here.
        foreach (var s in _state.Services.All)
        {
            if (s.Value.Status != ServiceStates.Inactive)
            {
                Mark(s.Id);
            }
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            HashSet<string> batch;
            TimeSpan wait;
            lock (_gate)
            {
                var now = _time.GetUtcNow();
                while (_timers.TryPeek(out var key, out var at) && at <= now)
                {
                    _timers.Dequeue();
                    _dirty.Add(key);
                }
                batch = _dirty;
                _dirty = new HashSet<string>(StringComparer.Ordinal);
                wait = _timers.TryPeek(out _, out var next) ? next - now : Timeout.InfiniteTimeSpan;
            }
            if (batch.Count == 0)
            {
                try
                {
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    var delay = wait == Timeout.InfiniteTimeSpan ? Task.Delay(Timeout.Infinite, cts.Token) : Task.Delay(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, _time, cts.Token);
                    await Task.WhenAny(_signal.WaitAsync(cts.Token), delay).ConfigureAwait(false);
                    await cts.CancelAsync().ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                continue;
            }
            await Parallel.ForEachAsync(batch, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = stoppingToken }, async (key, ct) =>
            {
                try
                {
                    await ReconcileAsync(key, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                }
                catch (Exception e)
                {
                    LogReconcileFailed(_logger, e, key);
                    WakeAt(key, _time.GetUtcNow() + TimeSpan.FromSeconds(1));
                }
            }).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One look at one service: plan, then act, then record what happened.</summary>
    public async Task ReconcileAsync(string key, CancellationToken ct)
    {
        Interlocked.Increment(ref _passes);
        if (_state.Services.Find(key) is not { } svc || svc.Status == ServiceStates.Inactive)
        {
            return;
        }
        var cluster = svc.Cluster;
        var tasks = new List<TaskRecord>();
        foreach (var id in _state.TaskIndex.Get(TaskIndex.ByGroup, cluster, svc.Group))
        {
            if (_state.Tasks.Find(id) is { } t)
            {
                tasks.Add(t);
            }
        }
        // Software version consistency: what the deployments' first tasks have told of their image digests.
        var resolved = new Dictionary<string, IReadOnlyList<DeploymentImageRecord>>(StringComparer.Ordinal);
        if (svc.Deployments.Count > 0)
        {
            var deployments = svc.Deployments.ToArray();
            for (var i = 0; i < deployments.Length; i++)
            {
                if (_tasks.FindDefinition(deployments[i].TaskDefinition, activeOnlyForFamily: false)?.Definition is { } def
                    && VersionConsistency.Resolve(deployments[i], def, tasks) is { } images)
                {
                    deployments[i] = deployments[i] with { Images = images };
                    resolved[deployments[i].Id] = images;
                }
            }
            if (resolved.Count > 0)
            {
                svc = svc with { Deployments = deployments };
            }
        }
        var events = new List<string>();
        var balancer = svc.LoadBalancers.Count > 0 ? await BalanceAsync(svc, tasks, events, ct).ConfigureAwait(false) : null;
        var inputs = new PlannerInputs
        {
            Now = _time.GetUtcNow(),
            InstanceStatus = id => _state.ContainerInstances.Find(EcsState.ScopedId(cluster, id))?.Status,
            DaemonInstances = svc.SchedulingStrategy == "DAEMON" ? DaemonInstances(svc) : [],
            TargetHealth = balancer is null ? _ => null : balancer.HealthOf,
            Leaving = balancer?.Leaving ?? (IReadOnlySet<string>)new HashSet<string>(),
        };
        var plan = ServicePlanner.Plan(svc, tasks, inputs);
        foreach (var (id, images) in resolved)
        {
            plan.Images[id] = images;
        }
        events.AddRange(plan.Events);
        var starved = false;

        var stops = plan.Stops;
        if (balancer is not null && stops.Count > 0)
        {
            // Behind a load balancer a task leaves its target groups first and stops once drained.
            stops = await balancer.DrainAsync(stops, events, ct).ConfigureAwait(false);
        }
        if (balancer?.Waiting == true)
        {
            plan.WakeNoLaterThan(inputs.Now + TimeSpan.FromSeconds(1));
        }
        if (stops.Count > 0)
        {
            var stopped = await _tasks.StopManyAsync(cluster, stops, ServicePlanner.SchedulerStopCode, ct).ConfigureAwait(false);
            if (stopped.Count > 0)
            {
                events.Add($"(service {svc.Name}) has stopped {ServicePlanner.Count(stopped.Count)} running tasks: {ServicePlanner.TaskList(stopped)}.");
            }
        }
        foreach (var (deployment, count) in plan.Starts)
        {
            var (started, failure) = await LaunchAsync(svc, deployment, count, null, tasks, ct).ConfigureAwait(false);
            AddLaunchEvents(svc, events, started, failure);
            starved |= failure is not null;
        }
        if (plan.DaemonStarts.Count > 0)
        {
            foreach (var group in plan.DaemonStarts.GroupBy(s => s.Deployment.Id))
            {
                var (started, failure) = await LaunchAsync(svc, group.First().Deployment, 0, group.Select(g => g.InstanceId).ToList(), tasks, ct).ConfigureAwait(false);
                AddLaunchEvents(svc, events, started, failure);
            }
        }
        if (starved)
        {
            lock (_gate)
            {
                if (!_starved.TryGetValue(cluster, out var set))
                {
                    _starved[cluster] = set = new HashSet<string>(StringComparer.Ordinal);
                }
                set.Add(key);
            }
            // Capacity may also appear in ways no hook sees (an instance's tasks finishing elsewhere): look again later too.
            WakeAt(key, inputs.Now + TimeSpan.FromSeconds(15));
        }
        if (plan.WakeAt is { } at)
        {
            WakeAt(key, at);
        }
        await RecordAsync(key, plan, events, ct).ConfigureAwait(false);
    }

    private static void AddLaunchEvents(ServiceRecord svc, List<string> events, IReadOnlyList<string> started, string? failure)
    {
        if (started.Count > 0)
        {
            events.Add($"(service {svc.Name}) has started {ServicePlanner.Count(started.Count)} tasks: {ServicePlanner.TaskList(started)}.");
        }
        if (failure is not null)
        {
            events.Add($"(service {svc.Name}) was unable to place a task because no container instance met all of its requirements. {failure} For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.");
        }
    }

    /// <summary>
    /// Keeps a load-balanced service's target groups in step with its tasks (level-triggered, each look):
    /// RUNNING tasks are registered by (ec2InstanceId, host port); tasks that stopped on their own are
    /// deregistered; tasks the planner stops are deregistered first and stopped once the group's
    /// deregistration delay has drained them (<see cref="_leaving"/>).
    /// </summary>
    private async Task<Balancer> BalanceAsync(ServiceRecord svc, List<TaskRecord> tasks, List<string> events, CancellationToken ct)
    {
        var b = new Balancer(this, svc);
        foreach (var lb in svc.LoadBalancers)
        {
            b.Health[lb.TargetGroupArn!] = _targets.Health(lb.TargetGroupArn!);
        }
        var drainedNow = new List<(string TaskId, string Reason)>();
        foreach (var t in tasks)
        {
            var key = EcsState.ScopedId(svc.Cluster, t.Id);
            var endpoints = b.EndpointsOf(t);
            if (_leaving.TryGetValue(key, out var reason))
            {
                // Stop it once no group still lists it (the deregistration delay has passed).
                if (t.IsStopped || t.DesiredStatus == TaskStates.Stopped)
                {
                    _leaving.TryRemove(key, out _);
                }
                else if (endpoints.All(e => !b.Health[e.Group].ContainsKey(e.Target)))
                {
                    _leaving.TryRemove(key, out _);
                    drainedNow.Add((t.Id, reason));
                }
                else
                {
                    b.Leaving.Add(t.Id);
                    b.Waiting = true;
                }
                continue;
            }
            var live = !t.IsStopped && t.DesiredStatus == TaskStates.Running && t.LastStatus == TaskStates.Running;
            foreach (var (group, target) in endpoints)
            {
                var state = b.Health[group].GetValueOrDefault(target);
                if (live && state is null or "draining")
                {
                    b.Register(group, target);
                }
                else if (!live && t.LastStatus != TaskStates.Provisioning && t.LastStatus != TaskStates.Pending && state is not (null or "draining"))
                {
                    b.Deregister(group, target);
                }
                if (live && state is not "healthy")
                {
                    b.Waiting = true;
                }
            }
        }
        await b.FlushAsync(events, ct).ConfigureAwait(false);
        if (drainedNow.Count > 0)
        {
            var stopped = await _tasks.StopManyAsync(svc.Cluster, drainedNow, ServicePlanner.SchedulerStopCode, ct).ConfigureAwait(false);
            if (stopped.Count > 0)
            {
                events.Add($"(service {svc.Name}) has stopped {ServicePlanner.Count(stopped.Count)} running tasks: {ServicePlanner.TaskList(stopped)}.");
            }
        }
        return b;
    }

    private sealed class Balancer(ServiceScheduler scheduler, ServiceRecord svc)
    {
        public Dictionary<string, IReadOnlyDictionary<ServiceTarget, string>> Health { get; } = new(StringComparer.Ordinal);
        public HashSet<string> Leaving { get; } = new(StringComparer.Ordinal);
        public bool Waiting { get; set; }
        private readonly Dictionary<string, List<ServiceTarget>> _register = new(StringComparer.Ordinal);
        private readonly Dictionary<string, List<ServiceTarget>> _deregister = new(StringComparer.Ordinal);

        private readonly Dictionary<TaskRecord, List<(string Group, ServiceTarget Target)>> _endpoints = new(ReferenceEqualityComparer.Instance);

        /// <summary>(target group, target) of each load balancer entry the task serves (its host port for the container port); worked out once per task per look.</summary>
        public List<(string Group, ServiceTarget Target)> EndpointsOf(TaskRecord t)
        {
            if (!_endpoints.TryGetValue(t, out var known))
            {
                _endpoints[t] = known = Endpoints(t);
            }
            return known;
        }

        private List<(string Group, ServiceTarget Target)> Endpoints(TaskRecord t)
        {
            var result = new List<(string, ServiceTarget)>();
            if (t.Awsvpc is not null)
            {
                // awsvpc: the task's own address and the container port (target type ip), once the agent reported it.
                foreach (var lb in svc.LoadBalancers)
                {
                    if (t.PrivateIp is { } ip && lb.ContainerPort is { } port && t.Containers.Any(c => c.Name == lb.ContainerName))
                    {
                        result.Add((lb.TargetGroupArn!, new ServiceTarget(ip, port)));
                    }
                }
                return result;
            }
            if (t.InstanceId is null || scheduler._state.ContainerInstances.Find(EcsState.ScopedId(t.Cluster, t.InstanceId))?.Ec2InstanceId is not { } ec2)
            {
                return result;
            }
            foreach (var lb in svc.LoadBalancers)
            {
                var binding = t.Containers.FirstOrDefault(c => c.Name == lb.ContainerName)?.Bindings?.FirstOrDefault(b => b.ContainerPort == lb.ContainerPort);
                if (binding is not null)
                {
                    result.Add((lb.TargetGroupArn!, new ServiceTarget(ec2, binding.HostPort)));
                }
            }
            return result;
        }

        /// <summary>"healthy" when healthy in every group, "unhealthy" when unhealthy in one, else the first other state.</summary>
        public string? HealthOf(TaskRecord t)
        {
            var endpoints = EndpointsOf(t);
            if (endpoints.Count < svc.LoadBalancers.Count)
            {
                return "initial";
            }
            string? worst = "healthy";
            foreach (var (group, target) in endpoints)
            {
                var state = Health[group].GetValueOrDefault(target) ?? "initial";
                if (state == "unhealthy")
                {
                    return state;
                }
                if (state != "healthy")
                {
                    worst = state;
                }
            }
            return worst;
        }

        public void Register(string group, ServiceTarget target) => Add(_register, group, target);

        public void Deregister(string group, ServiceTarget target) => Add(_deregister, group, target);

        private static void Add(Dictionary<string, List<ServiceTarget>> map, string group, ServiceTarget target)
        {
            if (!map.TryGetValue(group, out var list))
            {
                map[group] = list = [];
            }
            list.Add(target);
        }

        /// <summary>Deregisters the tasks the planner stops; returns those that can stop at once (not registered anywhere).</summary>
        public async Task<List<(string TaskId, string Reason)>> DrainAsync(List<(string TaskId, string Reason)> stops, List<string> events, CancellationToken ct)
        {
            var now = new List<(string, string)>();
            var draining = 0;
            foreach (var (id, reason) in stops)
            {
                var key = EcsState.ScopedId(svc.Cluster, id);
                var registered = scheduler._state.Tasks.Find(key) is { } t
                    ? EndpointsOf(t).Where(e => Health[e.Group].GetValueOrDefault(e.Target) is not (null or "draining")).ToList()
                    : [];
                if (registered.Count == 0)
                {
                    now.Add((id, reason));
                    continue;
                }
                foreach (var (group, target) in registered)
                {
                    Deregister(group, target);
                }
                scheduler._leaving[key] = reason;
                Waiting = true;
                draining++;
            }
            if (draining > 0)
            {
                events.Add($"(service {svc.Name}) has begun draining connections on {ServicePlanner.Count(draining)} tasks.");
            }
            await FlushAsync(events, ct).ConfigureAwait(false);
            return now;
        }

        public async Task FlushAsync(List<string> events, CancellationToken ct)
        {
            foreach (var (group, targets) in _register)
            {
                await scheduler._targets.RegisterAsync(group, targets, ct).ConfigureAwait(false);
                events.Add($"(service {svc.Name}) registered {ServicePlanner.Count(targets.Count)} targets in (target-group {group})");
            }
            foreach (var (group, targets) in _deregister)
            {
                await scheduler._targets.DeregisterAsync(group, targets, ct).ConfigureAwait(false);
                events.Add($"(service {svc.Name}) deregistered {ServicePlanner.Count(targets.Count)} targets in (target-group {group})");
            }
            _register.Clear();
            _deregister.Clear();
        }
    }

    /// <summary>
    /// Instances of the cluster that should run one task of a DAEMON service: ACTIVE, agent connected, constraints met,
    /// and a host policy (and size) that allows the task — an instance whose agent forbids it is left out, as one a
    /// constraint excludes is, rather than given a task the agent would refuse on every pass.
    /// </summary>
    private List<string> DaemonInstances(ServiceRecord svc)
    {
        var constraints = svc.PlacementConstraints.Select(c => new PlacementConstraintSpec(c.Type, c.Value)).ToList();
        HostNeeds? needs = null;
        if (svc.Primary is { } primary && _tasks.FindDefinition(primary.TaskDefinition, activeOnlyForFamily: false)?.Definition is { } definition)
        {
            constraints.AddRange(PlacementRules.OfDefinition(definition));
            needs = HostNeeds.Of(definition);
        }
        var result = new List<string>();
        foreach (var key in _state.Ledger.InCluster(svc.Cluster))
        {
            if (_state.ContainerInstances.Find(key) is not { Status: "ACTIVE", AgentConnected: true } instance)
            {
                continue;
            }
            if (constraints.Count > 0 || needs is not null)
            {
                // The ledger's candidate: attributes, ec2InstanceId, running tasks and task groups, as RunTask's memberOf sees them.
                var known = _state.Ledger.Candidate(key);
                var candidate = known is null
                    ? new InstanceCandidate
                    {
                        Arn = _tasks.Arns.ContainerInstance(svc.Cluster, instance.Id),
                        CpuAvailable = int.MaxValue,
                        MemoryAvailable = long.MaxValue,
                        Attributes = InstanceLedger.AttributeMap(instance),
                    }
                    : known with { CpuAvailable = int.MaxValue, MemoryAvailable = long.MaxValue, Status = "ACTIVE", AgentConnected = true };
                if (needs?.Refuse(candidate) is not null)
                {
                    continue;
                }
                var probe = Scheduler.Place(new PlacementRequest
                {
                    Candidates = [candidate],
                    Tasks = [new TaskReservation(0, 0, [])],
                    Constraints = constraints.Where(c => c.Type == "memberOf").ToList(),
                }, Random);
                if (probe.Placements.Count == 0)
                {
                    continue;
                }
            }
            result.Add(instance.Id);
        }
        return result;
    }

    /// <summary>Starts tasks of a deployment; returns the started task ids and, when some could not be placed, ECS's reason.</summary>
    private async Task<(IReadOnlyList<string> Started, string? Failure)> LaunchAsync(ServiceRecord svc, DeploymentRecord deployment, int count, List<string>? instances,
        IReadOnlyList<TaskRecord> tasks, CancellationToken ct)
    {
        var definition = _tasks.FindDefinition(deployment.TaskDefinition, activeOnlyForFamily: false)?.Definition;
        if (definition is null)
        {
            return ([], $"Reason: the task definition {deployment.TaskDefinition} was not found.");
        }
        // Until the deployment's image digests are known, one task goes first to resolve them (the task's own
        // progress wakes the next look); the rest then start from the digests.
        var allowed = VersionConsistency.Allowed(deployment, definition, tasks, instances?.Count ?? count);
        if (allowed == 0)
        {
            return ([], null);
        }
        if (instances is not null && allowed < instances.Count)
        {
            instances = instances.GetRange(0, allowed);
        }
        else if (instances is null)
        {
            count = allowed;
        }
        var tags = new List<TagRecord>();
        if (svc.PropagateTags == "SERVICE" && svc.Tags is { } st)
        {
            tags.AddRange(st);
        }
        else if (svc.PropagateTags == "TASK_DEFINITION" && _tasks.FindDefinition(deployment.TaskDefinition, false)?.Tags is { } dt)
        {
            tags.AddRange(dt.Select(t => new TagRecord(t.Key ?? "", t.Value ?? "")));
        }
        if (svc.EnableEcsManagedTags)
        {
            tags.Add(new TagRecord("aws:ecs:clusterName", svc.Cluster));
            tags.Add(new TagRecord("aws:ecs:serviceName", svc.Name));
        }
        var request = new LaunchRequest
        {
            Cluster = svc.Cluster,
            Definition = definition,
            Count = instances is null ? count : 1,
            StartedBy = deployment.Id,
            Group = svc.Group,
            Tags = tags.Count > 0 ? tags : null,
            // The service's constraints and the task definition's memberOf constraints, as for RunTask.
            Constraints = svc.PlacementConstraints.Select(c => new PlacementConstraintSpec(c.Type, c.Value)).Concat(PlacementRules.OfDefinition(definition)).ToList(),
            // ECS spreads a service's tasks across availability zones, then instances, unless told otherwise.
            Strategies = svc.PlacementStrategy.Count > 0
                ? svc.PlacementStrategy.Select(s => new PlacementStrategySpec(s.Type, s.Value)).ToList()
                : [new PlacementStrategySpec("spread", "attribute:ecs.availability-zone"), new PlacementStrategySpec("spread", "instanceId")],
            Targets = instances?.Select(i => (i, (string?)EcsState.ScopedId(svc.Cluster, i))).ToList(),
            Awsvpc = svc.Awsvpc,
            ImagePins = VersionConsistency.Pins(deployment),
            Launch = new LaunchKind(svc.LaunchType, svc.PlatformVersion, svc.CapacityProviderStrategy?.Select(s => s.CapacityProvider ?? "").ToList()),
            // The new tasks' providers continue the split of the deployment's live tasks (replacements refill the provider short of its share).
            CapacityProviders = instances is null && svc.CapacityProviderStrategy is { Count: > 0 } strategy
                ? [.. CapacityProviders.Split(CapacityProviders.Items(strategy), count, LiveByProvider(svc, deployment))]
                : null,
        };
        try
        {
            var result = await _tasks.LaunchAsync(request, ct).ConfigureAwait(false);
            var failure = result.Failures.Count == 0 ? null : Describe(result.Failures[0]);
            return (result.Tasks.Select(t => t.Id).ToList(), failure);
        }
        catch (AwsException e) when (e.ErrorType is "InvalidParameterException")
        {
            return ([], "Reason: " + e.Message);
        }
    }

    /// <summary>The deployment's tasks that are to keep running, counted per capacity provider.</summary>
    private Dictionary<string, int> LiveByProvider(ServiceRecord svc, DeploymentRecord deployment)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var id in _state.TaskIndex.Get(TaskIndex.ByGroup, svc.Cluster, svc.Group))
        {
            if (_state.Tasks.Find(id) is { IsStopped: false, DesiredStatus: TaskStates.Running, CapacityProviderName: { } p } t && t.StartedBy == deployment.Id)
            {
                counts[p] = counts.GetValueOrDefault(p) + 1;
            }
        }
        return counts;
    }

    private static string Describe(FailureRecord f)
    {
        var instance = f.Arn is { } arn ? "(container-instance " + Berth.Core.Arns.NameOf(arn) + ")" : "container instance";
        return f.Reason switch
        {
            Scheduler.ReasonCpu => $"The closest matching {instance} has insufficient CPU units available.",
            Scheduler.ReasonMemory => $"The closest matching {instance} has insufficient memory available.",
            Scheduler.ReasonPorts => $"The closest matching {instance} is already using a port required by your task.",
            Scheduler.ReasonAttribute => $"The closest matching {instance} is missing an attribute required by your task.",
            // The host policy (HostNeeds): which attribute, and the detail naming the container and the agent option.
            var r when r.StartsWith(Scheduler.ReasonAttribute + ":", StringComparison.Ordinal)
                => $"The closest matching {instance} is missing an attribute required by your task ({r[(Scheduler.ReasonAttribute.Length + 1)..]}{(f.Detail is { } d ? ": " + d : "")}).",
            Scheduler.ReasonMemberOf or Scheduler.ReasonDistinctInstance => $"The closest matching {instance} encountered error \"{f.Reason}.\"",
            _ => "Reason: " + f.Reason + ".",
        };
    }

    /// <summary>Merges the plan's bookkeeping and the events into the newest version of the service (compare-and-swap).</summary>
    private async Task RecordAsync(string key, ServicePlan plan, List<string> events, CancellationToken ct)
    {
        if (events.Count == 0 && plan.Patched.Count == 0 && plan.Finished.Count == 0 && plan.Rollback is null && plan.Images.Count == 0
            && plan.Steady is null && plan.DaemonDesired is null && !plan.BecomesInactive)
        {
            return;
        }
        // Read and write under the transaction's lock: what UpdateService did meanwhile is in the version merged into.
        await using var tx = await _state.BeginAsync(ct).ConfigureAwait(false);
        if (_state.Services.Find(key) is not { } fresh || fresh.Status == ServiceStates.Inactive)
        {
            return;
        }
        tx.Put(_state.Services, key, Merge(fresh, plan, events, _time.GetUtcNow()));
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    public static ServiceRecord Merge(ServiceRecord fresh, ServicePlan plan, IReadOnlyList<string> events, DateTimeOffset now)
    {
        var deployments = new List<DeploymentRecord>();
        var history = fresh.History.ToList();
        for (var i = 0; i < fresh.Deployments.Count; i++)
        {
            var d = fresh.Deployments[i];
            if (plan.Patched.TryGetValue(d.Id, out var p))
            {
                // Keep what UpdateService may have changed meanwhile; take the scheduler's bookkeeping.
                // An older deployment's count is the scheduler's (it falls as its tasks are replaced).
                d = p with { Status = d.Status, DesiredCount = i == 0 ? d.DesiredCount : p.DesiredCount, Config = d.Config };
            }
            if (plan.Images.TryGetValue(d.Id, out var images) && (d.Images?.Count ?? 0) < images.Count)
            {
                d = d with { Images = images };
            }
            if (i > 0 && plan.Finished.Contains(d.Id))
            {
                history.Insert(0, d with { Status = DeploymentStates.Inactive, UpdatedAt = now, FinishedAt = d.FinishedAt ?? now });
                continue;
            }
            deployments.Add(d);
        }
        var taskDefinition = fresh.TaskDefinition;
        if (plan.Rollback is { } rollback && deployments.Count > 0 && deployments[0].Id == rollback.RollbackOf)
        {
            deployments[0] = deployments[0] with { Status = DeploymentStates.Active };
            deployments.Insert(0, rollback with { DesiredCount = fresh.DesiredCount });
            taskDefinition = rollback.TaskDefinition;
        }
        // A completed rollback settles the deployment it rolled back.
        if (deployments.Count > 0 && deployments[0] is { RollbackOf: { } failedId, RolloutState: DeploymentStates.Completed })
        {
            for (var i = 0; i < history.Count; i++)
            {
                if (history[i].Id == failedId && history[i].DeploymentStatus == "ROLLBACK_IN_PROGRESS")
                {
                    history[i] = history[i] with { DeploymentStatus = "ROLLBACK_SUCCESSFUL", FinishedAt = now };
                }
            }
        }
        if (history.Count > ServiceRules.MaxHistory)
        {
            history.RemoveRange(ServiceRules.MaxHistory, history.Count - ServiceRules.MaxHistory);
        }
        var eventList = fresh.Events.ToList();
        foreach (var message in events)
        {
            // The same message twice in a row (e.g. "unable to place") is written once.
            if (eventList.Count > 0 && eventList[0].Message == message)
            {
                continue;
            }
            eventList.Insert(0, new ServiceEventRecord(Guid.NewGuid().ToString(), now, message));
        }
        if (eventList.Count > ServiceRules.MaxEvents)
        {
            eventList.RemoveRange(ServiceRules.MaxEvents, eventList.Count - ServiceRules.MaxEvents);
        }
        var desired = plan.DaemonDesired ?? fresh.DesiredCount;
        if (plan.DaemonDesired is { } dd && deployments.Count > 0)
        {
            deployments[0] = deployments[0] with { DesiredCount = dd };
        }
        if (plan.BecomesInactive)
        {
            // Deleted before its deployment finished: the service deployment ends STOPPED.
            deployments = deployments.Select(d => d.DeploymentStatus is "IN_PROGRESS" or "PENDING" or "ROLLBACK_IN_PROGRESS"
                ? d with { DeploymentStatus = "STOPPED", DeploymentStatusReason = "The service was deleted.", FinishedAt = now, UpdatedAt = now }
                : d).ToList();
        }
        return fresh with
        {
            Deployments = deployments,
            History = history,
            Events = eventList,
            TaskDefinition = taskDefinition,
            DesiredCount = desired,
            Steady = plan.Steady ?? fresh.Steady,
            Status = plan.BecomesInactive ? ServiceStates.Inactive : fresh.Status,
            DeletedAt = plan.BecomesInactive ? now : fresh.DeletedAt,
            Version = fresh.Version + 1,
        };
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Service scheduler: reconciling {Service} failed; retrying in a second")]
    private static partial void LogReconcileFailed(ILogger logger, Exception e, string service);
}
