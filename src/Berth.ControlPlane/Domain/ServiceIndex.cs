using System.Collections.Concurrent;
using System.Collections.Immutable;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Secondary indexes over services, kept in step with each commit like <see cref="TaskIndex"/>: the
/// services of each cluster by name (ListServices pages from it, DeleteCluster and activeServicesCount
/// read it), the DAEMON services of each cluster (an instance change wakes only those), and per
/// deployment the count of its tasks that are running and pending (DescribeServices reads them, never
/// walking the tasks).
/// </summary>
public sealed class ServiceIndex
{
    private readonly ConcurrentDictionary<string, ImmutableSortedSet<string>> _byCluster = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ImmutableSortedSet<string>> _daemons = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _active = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Counts> _deployments = new(StringComparer.Ordinal);
    private readonly SortedSet<(DateTimeOffset DeletedAt, string Id)> _inactive = new();

    public void Clear()
    {
        _byCluster.Clear();
        _daemons.Clear();
        _active.Clear();
        _deployments.Clear();
        lock (_inactive)
        {
            _inactive.Clear();
        }
    }

    /// <summary>INACTIVE services deleted before <paramref name="cutoff"/>, oldest first (the retention sweep removes them).</summary>
    public List<string> InactiveBefore(DateTimeOffset cutoff, int max)
    {
        lock (_inactive)
        {
            return _inactive.TakeWhile(e => e.DeletedAt < cutoff).Take(max).Select(e => e.Id).ToList();
        }
    }

    /// <summary>Service document ids ("{cluster}/{name}") of a cluster, in name order, whatever their status.</summary>
    public ImmutableSortedSet<string> InCluster(string cluster)
        => _byCluster.TryGetValue(cluster, out var s) ? s : ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>DAEMON services (ACTIVE or DRAINING) of a cluster.</summary>
    public ImmutableSortedSet<string> DaemonsIn(string cluster)
        => _daemons.TryGetValue(cluster, out var s) ? s : ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>ACTIVE services of a cluster (the cluster's activeServicesCount).</summary>
    public int ActiveCount(string cluster) => _active.GetValueOrDefault(cluster);

    /// <summary>Running and pending tasks started for one deployment (startedBy = its id).</summary>
    public (int Running, int Pending) CountsOf(string cluster, string deploymentId)
        => _deployments.TryGetValue(cluster + "/" + deploymentId, out var c) ? (c.Running, c.Pending) : (0, 0);

    public void ApplyService(string id, ServiceRecord? old, ServiceRecord? now)
    {
        var cluster = (now ?? old)!.Cluster;
        if (old is null && now is not null)
        {
            _byCluster.AddOrUpdate(cluster, _ => ImmutableSortedSet.Create(StringComparer.Ordinal, id), (_, s) => s.Add(id));
        }
        else if (now is null)
        {
            _byCluster.AddOrUpdate(cluster, _ => ImmutableSortedSet.Create<string>(StringComparer.Ordinal), (_, s) => s.Remove(id));
        }
        lock (_inactive)
        {
            if (old is { Status: ServiceStates.Inactive, DeletedAt: { } was })
            {
                _inactive.Remove((was, id));
            }
            if (now is { Status: ServiceStates.Inactive, DeletedAt: { } at })
            {
                _inactive.Add((at, id));
            }
        }
        var wasActive = old?.Status == ServiceStates.Active;
        var isActive = now?.Status == ServiceStates.Active;
        if (wasActive != isActive)
        {
            _active.AddOrUpdate(cluster, isActive ? 1 : 0, (_, n) => n + (isActive ? 1 : -1));
        }
        var wasDaemon = old is { SchedulingStrategy: "DAEMON", Status: not ServiceStates.Inactive };
        var isDaemon = now is { SchedulingStrategy: "DAEMON", Status: not ServiceStates.Inactive };
        if (wasDaemon != isDaemon)
        {
            _daemons.AddOrUpdate(cluster,
                _ => isDaemon ? ImmutableSortedSet.Create(StringComparer.Ordinal, id) : ImmutableSortedSet.Create<string>(StringComparer.Ordinal),
                (_, s) => isDaemon ? s.Add(id) : s.Remove(id));
        }
    }

    public void ApplyTask(string id, TaskRecord? old, TaskRecord? now)
    {
        _ = id;
        Count(old, -1);
        Count(now, +1);
    }

    private void Count(TaskRecord? t, int sign)
    {
        if (t?.StartedBy is not { } by || !by.StartsWith("ecs-svc/", StringComparison.Ordinal))
        {
            return;
        }
        var running = t.LastStatus == TaskStates.Running ? sign : 0;
        var pending = t.LastStatus is TaskStates.Provisioning or TaskStates.Pending or TaskStates.Activating ? sign : 0;
        if (running == 0 && pending == 0)
        {
            return;
        }
        var key = t.Cluster + "/" + by;
        var c = _deployments.GetOrAdd(key, _ => new Counts());
        lock (c)
        {
            c.Running += running;
            c.Pending += pending;
            if (c.Running == 0 && c.Pending == 0)
            {
                _deployments.TryRemove(key, out _);
            }
        }
    }

    private sealed class Counts
    {
        public int Running;
        public int Pending;
    }
}
