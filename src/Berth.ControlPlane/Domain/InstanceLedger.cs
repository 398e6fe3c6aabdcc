using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using Berth.Aws.Ecs;
using Berth.Core;
using Berth.Scheduling;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Per container instance: what its live tasks (every task not yet STOPPED) hold — CPU, memory, TCP and
/// UDP host ports, how many there are of each task group and how many are RUNNING — and the scheduler's view of it (<see cref="InstanceCandidate"/>), rebuilt only when
/// that instance or one of its tasks changes. RunTask reads a cluster's candidates without looking at
/// a single task. Updated from the tables' change hooks under the state's write lock.
/// </summary>
public sealed class InstanceLedger(Arns arns)
{
    private static readonly int[] EcsReservedPorts = [22, 2375, 2376, 51678, 51679];
    private static readonly Dictionary<string, int> NoGroups = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ImmutableSortedSet<string>> _byCluster = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _byAgent = new(StringComparer.Ordinal);
    // Per cluster, the candidates of its instances that are not INACTIVE, updated in place when one changes.
    // Written by the change hooks and read by placement, both under the state's write lock.
    private readonly Dictionary<string, ClusterCandidates> _candidates = new(StringComparer.Ordinal);
    private readonly SortedSet<(DateTimeOffset At, string Key)> _deregistered = new();
    // Per cluster and task group, the live tasks per instance key ("{cluster}/{id}"): placement reads one group's
    // instances without looking the group up in every candidate. Written and read under the state's write lock.
    private readonly Dictionary<(string Cluster, string Group), Dictionary<string, int>> _groups = [];
    // Per cluster and capacity provider (the instance's ecs.capacity-provider attribute), the same candidates again:
    // a strategy's placement reads only its provider's instances. Written and read under the state's write lock.
    private readonly Dictionary<(string Cluster, string Provider), ClusterCandidates> _byProvider = [];

    /// <summary>Up to <paramref name="max"/> keys of instances deregistered at or before <paramref name="cutoff"/>.</summary>
    public List<string> DeregisteredBefore(DateTimeOffset cutoff, int max)
    {
        lock (_deregistered)
        {
            return _deregistered.TakeWhile(d => d.At <= cutoff).Take(max).Select(d => d.Key).ToList();
        }
    }

    public void Clear()
    {
        lock (_deregistered)
        {
            _deregistered.Clear();
        }
        _entries.Clear();
        _byCluster.Clear();
        _byAgent.Clear();
        _candidates.Clear();
        _groups.Clear();
        _byProvider.Clear();
    }

    /// <summary>
    /// The live tasks of <paramref name="group"/> as (index in <see cref="Candidates"/>, count), for the instances
    /// that run any: what <see cref="PlacementRequest.GroupTasks"/> takes. Costs the group's instances, not the
    /// cluster's. Call under the state's write lock only, together with Candidates.
    /// </summary>
    public IReadOnlyList<KeyValuePair<int, int>> GroupTasks(string cluster, string group)
        => _candidates.TryGetValue(cluster, out var c) ? GroupTasksIn(c, cluster, group) : [];

    /// <summary><see cref="GroupTasks(string, string)"/> as indexes in <see cref="Candidates(string, string)"/> of one capacity provider.</summary>
    public IReadOnlyList<KeyValuePair<int, int>> GroupTasks(string cluster, string group, string provider)
        => _byProvider.TryGetValue((cluster, provider), out var c) ? GroupTasksIn(c, cluster, group) : [];

    private List<KeyValuePair<int, int>> GroupTasksIn(ClusterCandidates c, string cluster, string group)
    {
        if (!_groups.TryGetValue((cluster, group), out var byInstance))
        {
            return [];
        }
        var result = new List<KeyValuePair<int, int>>(byInstance.Count);
        foreach (var (key, count) in byInstance)
        {
            if (c.Position.TryGetValue(key, out var at))
            {
                result.Add(new(at, count));
            }
        }
        return result;
    }

    private void CountGroup(string cluster, string key, string? group, int sign)
    {
        if (group is null)
        {
            return;
        }
        if (!_groups.TryGetValue((cluster, group), out var byInstance))
        {
            if (sign < 0)
            {
                return;
            }
            _groups[(cluster, group)] = byInstance = new Dictionary<string, int>(StringComparer.Ordinal);
        }
        var n = byInstance.GetValueOrDefault(key) + sign;
        if (n > 0)
        {
            byInstance[key] = n;
        }
        else
        {
            byInstance.Remove(key);
            if (byInstance.Count == 0)
            {
                _groups.Remove((cluster, group));
            }
        }
    }

    /// <summary>Ids ("{cluster}/{id}") of the instances of a cluster, every status, in ARN order.</summary>
    public ImmutableSortedSet<string> InCluster(string cluster)
        => _byCluster.TryGetValue(cluster, out var s) ? s : ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>The instance id ("{cluster}/{id}") an agent registered, if any.</summary>
    public string? ByAgent(string cluster, string agentId) => _byAgent.TryGetValue(cluster + "/" + agentId, out var id) ? id : null;

    public int LiveTaskCount(string instanceKey) => _entries.TryGetValue(instanceKey, out var e) ? e.Candidate?.TaskCount ?? 0 : 0;

    /// <summary>Keys ("{cluster}/{taskId}") of the instance's live tasks (a copy).</summary>
    public IReadOnlyCollection<string> LiveTasks(string instanceKey)
    {
        if (!_entries.TryGetValue(instanceKey, out var e))
        {
            return [];
        }
        lock (e.Live)
        {
            return [.. e.Live];
        }
    }

    public InstanceCandidate? Candidate(string instanceKey) => _entries.TryGetValue(instanceKey, out var e) ? e.Candidate : null;

    /// <summary>
    /// The scheduler's view of every instance of the cluster that is not INACTIVE. Kept up to date slot by slot as
    /// instances and tasks change, so a RunTask costs no rebuild. Call under the state's write lock only.
    /// </summary>
    public IReadOnlyList<InstanceCandidate> Candidates(string cluster)
        => _candidates.TryGetValue(cluster, out var c) ? c.List : [];

    /// <summary>
    /// The candidates of the cluster's instances in one capacity provider (ecs.capacity-provider = <paramref name="provider"/>),
    /// kept beside the cluster's list, so a strategy's placement costs that provider's instances. Under the write lock only.
    /// </summary>
    public IReadOnlyList<InstanceCandidate> Candidates(string cluster, string provider)
        => _byProvider.TryGetValue((cluster, provider), out var c) ? c.List : [];

    /// <summary>Puts the instance's current candidate in its cluster's list (or takes it out when it has none or is INACTIVE).</summary>
    private void Publish(string key, Entry e)
    {
        var cluster = key[..key.IndexOf('/', StringComparison.Ordinal)];
        if (!_candidates.TryGetValue(cluster, out var c))
        {
            _candidates[cluster] = c = new ClusterCandidates();
        }
        var keep = e.Candidate is not null && e.Instance?.Status != "INACTIVE";
        Place(c, key, keep ? e.Candidate : null);
        var provider = keep ? CapacityProviders.Of(e.Candidate!.Attributes) : null;
        if (e.Provider is { } was && was != provider && _byProvider.TryGetValue((cluster, was), out var old))
        {
            Place(old, key, null);
            if (old.List.Count == 0)
            {
                _byProvider.Remove((cluster, was));
            }
        }
        if (provider is not null)
        {
            if (!_byProvider.TryGetValue((cluster, provider), out var p))
            {
                _byProvider[(cluster, provider)] = p = new ClusterCandidates();
            }
            Place(p, key, e.Candidate);
        }
        e.Provider = provider;
    }

    /// <summary>Sets the instance's slot in one list of candidates, or removes it when <paramref name="candidate"/> is null.</summary>
    private static void Place(ClusterCandidates c, string key, InstanceCandidate? candidate)
    {
        var keep = candidate is not null;
        if (c.Position.TryGetValue(key, out var at))
        {
            if (keep)
            {
                c.List[at] = candidate!;
                return;
            }
            // Swap-remove: the last one takes the freed slot.
            var last = c.List.Count - 1;
            c.List[at] = c.List[last];
            c.Keys[at] = c.Keys[last];
            c.Position[c.Keys[at]] = at;
            c.List.RemoveAt(last);
            c.Keys.RemoveAt(last);
            c.Position.Remove(key);
        }
        else if (keep)
        {
            c.Position[key] = c.List.Count;
            c.List.Add(candidate!);
            c.Keys.Add(key);
        }
    }

    private sealed class ClusterCandidates
    {
        public readonly List<InstanceCandidate> List = [];
        public readonly List<string> Keys = [];
        public readonly Dictionary<string, int> Position = new(StringComparer.Ordinal);
    }

    public void ApplyInstance(string key, InstanceRecord? old, InstanceRecord? now)
    {
        var cluster = key[..key.IndexOf('/', StringComparison.Ordinal)];
        lock (_deregistered)
        {
            if (old?.DeregisteredAt is { } was)
            {
                _deregistered.Remove((was, key));
            }
            if (now?.DeregisteredAt is { } at && now.Status == "INACTIVE")
            {
                _deregistered.Add((at, key));
            }
        }
        if (old?.AgentId is { } oldAgent)
        {
            _byAgent.TryRemove(new KeyValuePair<string, string>(cluster + "/" + oldAgent, key));
        }
        if (now is null)
        {
            if (_entries.TryRemove(key, out var gone))
            {
                gone.Candidate = null;
                Publish(key, gone);
            }
            Update(_byCluster, cluster, s => s.Remove(key));
        }
        else
        {
            var e = _entries.GetOrAdd(key, _ => new Entry());
            e.Instance = now;
            if (now.AgentId is { } agent && now.Status != "INACTIVE")
            {
                _byAgent[cluster + "/" + agent] = key;
            }
            Update(_byCluster, cluster, s => s.Add(key));
            Rebuild(e);
            Publish(key, e);
        }
    }

    /// <param name="id">The task's table key ("{cluster}/{taskId}"), kept as is so the live sets share its string.</param>
    public void ApplyTask(string id, TaskRecord? old, TaskRecord? now)
    {
        // Most changes are status reports of a task that stays live on its instance: nothing it holds changes,
        // only, once in its life each way, whether it counts as RUNNING.
        if (old is not null && now is not null && !old.IsStopped && !now.IsStopped && old.InstanceId == now.InstanceId
            && old.Cpu == now.Cpu && old.Memory == now.Memory && ReferenceEquals(old.StaticPorts, now.StaticPorts) && ReferenceEquals(old.StaticUdpPorts, now.StaticUdpPorts)
            && string.Equals(old.Group, now.Group, StringComparison.Ordinal))
        {
            var change = Running(now) - Running(old);
            if (change != 0 && now.InstanceId is { } on && _entries.TryGetValue(now.Cluster + "/" + on, out var entry))
            {
                bool live;
                lock (entry.Live)
                {
                    live = entry.Live.Contains(id);
                }
                if (live)
                {
                    entry.Running += change;
                    if (entry.Candidate is { } c)
                    {
                        // A shallow copy: ports, attributes and group counts are shared, not rebuilt.
                        entry.Candidate = c with { RunningTasksCount = entry.Running };
                        Publish(now.Cluster + "/" + on, entry);
                    }
                }
            }
            return;
        }
        if (old is { InstanceId: { } oldInstance } && !old.IsStopped)
        {
            var key = old.Cluster + "/" + oldInstance;
            var e = _entries.GetOrAdd(key, _ => new Entry());
            bool removed;
            lock (e.Live)
            {
                removed = e.Live.Remove(id);
            }
            if (removed)
            {
                e.Add(old, -1);
                CountGroup(old.Cluster, key, old.Group, -1);
            }
            if (now is null || now.IsStopped || now.InstanceId != oldInstance)
            {
                Rebuild(e);
                Publish(key, e);
            }
        }
        if (now is { InstanceId: { } instance } && !now.IsStopped)
        {
            var key = now.Cluster + "/" + instance;
            var e = _entries.GetOrAdd(key, _ => new Entry());
            bool added;
            lock (e.Live)
            {
                added = e.Live.Add(id);
            }
            if (added)
            {
                e.Add(now, +1);
                CountGroup(now.Cluster, key, now.Group, +1);
            }
            Rebuild(e);
            Publish(key, e);
        }
    }

    private static int Running(TaskRecord t) => t.LastStatus == TaskStates.Running ? 1 : 0;

    /// <summary>What one task reserves, from what was fixed when it was placed.</summary>
    public static TaskReservation ReservationOf(TaskRecord t)
        => new(Reservations.ParseUnits(t.Cpu) ?? 0, Reservations.ParseUnits(t.Memory) ?? 0, t.StaticPorts ?? []);

    /// <summary>Registered resources minus what live tasks hold; PORTS and PORTS_UDP gain their static host ports.</summary>
    public List<Resource> Remaining(string key, InstanceRecord i)
    {
        _entries.TryGetValue(key, out var e);
        return
        [
            new Resource { Name = "CPU", Type = "INTEGER", IntegerValue = i.Cpu - (e?.Cpu ?? 0), DoubleValue = 0, LongValue = 0 },
            new Resource { Name = "MEMORY", Type = "INTEGER", IntegerValue = (int)(i.Memory - (e?.Memory ?? 0)), DoubleValue = 0, LongValue = 0 },
            Ports("PORTS", i.Ports, e?.TcpPorts),
            Ports("PORTS_UDP", i.UdpPorts, e?.UdpPorts),
        ];
    }

    private static Resource Ports(string name, IReadOnlyList<string> registered, Dictionary<int, int>? used)
    {
        var set = new SortedSet<int>(InstanceViews.PortNumbers(registered));
        if (used is not null)
        {
            set.UnionWith(used.Keys);
        }
        return new Resource { Name = name, Type = "STRINGSET", StringSetValue = set.Select(p => p.ToString(CultureInfo.InvariantCulture)).ToList(), DoubleValue = 0, LongValue = 0, IntegerValue = 0 };
    }

    public static Dictionary<string, string> AttributeMap(InstanceRecord i)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var a in i.Attributes)
        {
            if (a.Name is not null)
            {
                map[a.Name] = a.Value ?? "";
            }
        }
        return map;
    }

    /// <summary>ECS's reserved ports (22, 2375, 2376, 51678, 51679) followed by <paramref name="extra"/>, without repeats.</summary>
    public static IEnumerable<string> ReservedPortStrings(IEnumerable<int> extra)
        => ReservedPortStrings(extra.Select(p => p.ToString(CultureInfo.InvariantCulture)));

    /// <summary>The same for ports given as strings (RegisterContainerInstance echoes them as the client sent them).</summary>
    public static IEnumerable<string> ReservedPortStrings(IEnumerable<string> extra)
        => EcsReservedPorts.Select(p => p.ToString(CultureInfo.InvariantCulture)).Concat(extra).Distinct();

    private void Rebuild(Entry e)
    {
        if (e.Instance is not { } i)
        {
            e.Candidate = null;
            return;
        }
        var ports = new HashSet<int>(e.TcpPorts.Keys);
        ports.UnionWith(InstanceViews.PortNumbers(i.Ports));
        e.Candidate = new InstanceCandidate
        {
            Arn = e.Arn ??= InstanceViews.Arn(arns, i),
            Status = i.Status,
            AgentConnected = i.AgentConnected,
            CpuAvailable = i.Cpu - e.Cpu,
            MemoryAvailable = i.Memory - e.Memory,
            UsedPorts = ports,
            Attributes = e.Attributes is { } a && ReferenceEquals(e.AttributesOf, i.Attributes) ? a : (e.Attributes = AttributeMap(i)),
            TaskCount = e.Live.Count,
            // A copy: the candidate is read outside the write lock (DescribeContainerInstances, ListContainerInstances' filter).
            GroupCounts = e.Groups.Count == 0 ? NoGroups : new Dictionary<string, int>(e.Groups, StringComparer.Ordinal),
            RunningTasksCount = e.Running,
            Ec2InstanceId = i.Ec2InstanceId,
            AgentVersion = i.VersionInfo.AgentVersion,
            RegisteredAt = i.RegisteredAt,
        };
        e.AttributesOf = i.Attributes;
    }

    private static void Update(ConcurrentDictionary<string, ImmutableSortedSet<string>> map, string key, Func<ImmutableSortedSet<string>, ImmutableSortedSet<string>> change)
        => map.AddOrUpdate(key, _ => change(ImmutableSortedSet.Create<string>(StringComparer.Ordinal)), (_, s) => change(s));

    private sealed class Entry
    {
        public InstanceRecord? Instance;
        public string? Arn;
        public readonly HashSet<string> Live = new(StringComparer.Ordinal);
        public int Cpu;
        public long Memory;
        public readonly Dictionary<int, int> TcpPorts = [];
        public readonly Dictionary<int, int> UdpPorts = [];
        /// <summary>Live tasks per group (a group leaves when its last task does).</summary>
        public readonly Dictionary<string, int> Groups = new(StringComparer.Ordinal);
        public int Running;
        public InstanceCandidate? Candidate;
        /// <summary>The capacity provider whose list holds this instance's candidate; null: none.</summary>
        public string? Provider;
        public Dictionary<string, string>? Attributes;
        public IReadOnlyList<AttributeRecord>? AttributesOf;

        public void Add(TaskRecord t, int sign)
        {
            var r = ReservationOf(t);
            Cpu += sign * r.Cpu;
            Memory += sign * r.Memory;
            Count(TcpPorts, t.StaticPorts, sign);
            Count(UdpPorts, t.StaticUdpPorts, sign);
            Running += sign * InstanceLedger.Running(t);
            if (t.Group is { } g)
            {
                var n = Groups.GetValueOrDefault(g) + sign;
                if (n <= 0)
                {
                    Groups.Remove(g);
                }
                else
                {
                    Groups[g] = n;
                }
            }
        }

        private static void Count(Dictionary<int, int> ports, IReadOnlyList<int>? list, int sign)
        {
            foreach (var p in list ?? [])
            {
                var n = ports.GetValueOrDefault(p) + sign;
                if (n <= 0)
                {
                    ports.Remove(p);
                }
                else
                {
                    ports[p] = n;
                }
            }
        }
    }
}
