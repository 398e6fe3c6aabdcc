using System.Collections.Concurrent;
using System.Collections.Immutable;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Secondary indexes over the tasks table, kept in step with every commit through the table's
/// Changed hook (so they are updated under the state's write lock, in commit order). Readers take
/// immutable snapshots without locking. Nothing here scans the whole table: each operation touches
/// the entries of the one task that changed.
/// </summary>
/// <remarks>
/// Sets hold task document ids ("{cluster}/{taskId}") in ordinal order, which is also the order ListTasks
/// pages in. Keys: (cluster, desiredStatus), (cluster, instance), (cluster, family), (cluster, startedBy),
/// (cluster, group). Stopped tasks are also kept ordered by stoppedAt for the retention sweep.
/// </remarks>
public sealed class TaskIndex
{
    private readonly ConcurrentDictionary<(string Kind, string Cluster, string Value), ImmutableSortedSet<string>> _sets = new();
    private readonly ConcurrentDictionary<string, ClusterCounts> _counts = new(StringComparer.Ordinal);
    private readonly SortedSet<(DateTimeOffset StoppedAt, string Id)> _stopped = new();
    private readonly object _stoppedGate = new();

    public const string ByDesired = "desired";
    public const string ByInstance = "instance";
    public const string ByFamily = "family";
    public const string ByStartedBy = "startedBy";
    public const string ByGroup = "group";

    /// <summary>Raised after a task's entry changed: (id, old, new); the reservation ledger and notifiers hook here.</summary>
    public event Action<string, TaskRecord?, TaskRecord?>? Applied;

    public void Clear()
    {
        _sets.Clear();
        _counts.Clear();
        lock (_stoppedGate)
        {
            _stopped.Clear();
        }
    }

    public void Apply(string id, TaskRecord? old, TaskRecord? now)
    {
        var oldKeys = old is null ? [] : Keys(old);
        var newKeys = now is null ? [] : Keys(now);
        foreach (var k in oldKeys)
        {
            if (!newKeys.Contains(k))
            {
                Remove(k, id);
            }
        }
        foreach (var k in newKeys)
        {
            if (!oldKeys.Contains(k))
            {
                _sets.AddOrUpdate(k, _ => ImmutableSortedSet.Create(StringComparer.Ordinal, id), (_, s) => s.Add(id));
            }
        }
        if (old is not null)
        {
            Count(old, -1);
            if (old.StoppedAt is { } at && old.IsStopped)
            {
                lock (_stoppedGate)
                {
                    _stopped.Remove((at, id));
                }
            }
        }
        if (now is not null)
        {
            Count(now, +1);
            if (now.StoppedAt is { } at && now.IsStopped)
            {
                lock (_stoppedGate)
                {
                    _stopped.Add((at, id));
                }
            }
        }
        Applied?.Invoke(id, old, now);
    }

    private void Remove((string, string, string) key, string id)
    {
        while (_sets.TryGetValue(key, out var set))
        {
            var next = set.Remove(id);
            if (next.Count == 0 ? _sets.TryRemove(new KeyValuePair<(string, string, string), ImmutableSortedSet<string>>(key, set)) : _sets.TryUpdate(key, next, set))
            {
                return;
            }
        }
    }

    private static List<(string, string, string)> Keys(TaskRecord t)
    {
        var keys = new List<(string, string, string)>(5) { (ByDesired, t.Cluster, t.DesiredStatus), (ByFamily, t.Cluster, t.Family) };
        if (t.InstanceId is not null)
        {
            keys.Add((ByInstance, t.Cluster, t.InstanceId));
        }
        if (t.StartedBy is not null)
        {
            keys.Add((ByStartedBy, t.Cluster, t.StartedBy));
        }
        if (t.Group is not null)
        {
            keys.Add((ByGroup, t.Cluster, t.Group));
        }
        return keys;
    }

    private void Count(TaskRecord t, int delta)
    {
        var c = _counts.GetOrAdd(t.Cluster, _ => new ClusterCounts());
        switch (t.LastStatus)
        {
            case TaskStates.Running:
                Interlocked.Add(ref c.Running, delta);
                break;
            case TaskStates.Provisioning or TaskStates.Pending or TaskStates.Activating:
                Interlocked.Add(ref c.Pending, delta);
                break;
        }
        if (!t.IsStopped)
        {
            Interlocked.Add(ref c.Live, delta);
        }
    }

    /// <summary>Ids of the tasks under one index key, in ListTasks order.</summary>
    public ImmutableSortedSet<string> Get(string kind, string cluster, string value)
        => _sets.TryGetValue((kind, cluster, value), out var s) ? s : ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    public (int Running, int Pending, int Live) CountsOf(string cluster)
        => _counts.TryGetValue(cluster, out var c) ? (Volatile.Read(ref c.Running), Volatile.Read(ref c.Pending), Volatile.Read(ref c.Live)) : (0, 0, 0);

    /// <summary>Up to <paramref name="max"/> ids of tasks that stopped at or before <paramref name="cutoff"/>, oldest first.</summary>
    public List<string> StoppedBefore(DateTimeOffset cutoff, int max)
    {
        var ids = new List<string>();
        lock (_stoppedGate)
        {
            foreach (var (at, id) in _stopped)
            {
                if (at > cutoff || ids.Count >= max)
                {
                    break;
                }
                ids.Add(id);
            }
        }
        return ids;
    }

    /// <summary>Every index entry, for property tests that compare with a recomputation from the table.</summary>
    public IReadOnlyDictionary<(string Kind, string Cluster, string Value), ImmutableSortedSet<string>> Snapshot() => new Dictionary<(string, string, string), ImmutableSortedSet<string>>(_sets);

    private sealed class ClusterCounts
    {
        public int Running;
        public int Pending;
        public int Live;
    }
}
