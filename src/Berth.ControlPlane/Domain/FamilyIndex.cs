using System.Collections.Concurrent;
using System.Collections.Immutable;
using Berth.ControlPlane.State;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Task definition revisions by family: the highest revision ever registered (the next one is +1, even
/// after deletes) and the latest ACTIVE one (what a bare family name resolves to). Kept in step with the
/// task definitions table, so neither RegisterTaskDefinition nor RunTask looks at other families.
/// </summary>
public sealed class FamilyIndex
{
    private readonly ConcurrentDictionary<string, Family> _families = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ImmutableSortedSet<string>> _byStatus = new(StringComparer.Ordinal);
    private ImmutableSortedSet<string> _names = ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    public void Clear()
    {
        _families.Clear();
        _byStatus.Clear();
        _names = ImmutableSortedSet.Create<string>(StringComparer.Ordinal);
    }

    /// <summary>Task definition ids ("{family}:{revision:D8}") with the given status, in ListTaskDefinitions order.</summary>
    public ImmutableSortedSet<string> WithStatus(string status)
        => _byStatus.TryGetValue(status, out var s) ? s : ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>Every family name, sorted.</summary>
    public ImmutableSortedSet<string> Names => Volatile.Read(ref _names);

    /// <summary>True when some revision of the family has a status <paramref name="match"/> accepts.</summary>
    public bool Any(string family, Func<string, bool> match)
    {
        if (!_families.TryGetValue(family, out var f))
        {
            return false;
        }
        lock (f)
        {
            return f.Status.Values.Any(match);
        }
    }

    public void Apply(string id, StoredTaskDefinition? old, StoredTaskDefinition? now)
    {
        var oldStatus = old?.Definition.Status;
        var newStatus = now?.Definition.Status;
        if (oldStatus != newStatus || now is null)
        {
            if (oldStatus is not null)
            {
                _byStatus.AddOrUpdate(oldStatus, _ => ImmutableSortedSet.Create<string>(StringComparer.Ordinal), (_, s) => s.Remove(id));
            }
            if (newStatus is not null && now is not null)
            {
                _byStatus.AddOrUpdate(newStatus, _ => ImmutableSortedSet.Create(StringComparer.Ordinal, id), (_, s) => s.Add(id));
            }
        }
        var def = (now ?? old)!.Definition;
        if (!_names.Contains(def.Family!))
        {
            _names = _names.Add(def.Family!);
        }
        var family = _families.GetOrAdd(def.Family!, _ => new Family());
        lock (family)
        {
            var rev = def.Revision ?? 0;
            if (now is null)
            {
                family.Status.Remove(rev);
            }
            else
            {
                family.Status[rev] = now.Definition.Status ?? "ACTIVE";
                family.Max = Math.Max(family.Max, rev);
            }
            family.LatestActive = family.Status.Where(kv => kv.Value == "ACTIVE").Select(kv => kv.Key).DefaultIfEmpty(0).Max();
        }
    }

    /// <summary>The highest revision the family ever had (0 for a new family).</summary>
    public int MaxRevision(string family) => _families.TryGetValue(family, out var f) ? Volatile.Read(ref f.Max) : 0;

    /// <summary>The latest ACTIVE revision, or null when the family has none.</summary>
    public int? LatestActive(string family) => _families.TryGetValue(family, out var f) && Volatile.Read(ref f.LatestActive) is > 0 and var r ? r : null;

    /// <summary>The latest revision whatever its status, or null for an unknown family.</summary>
    public int? Latest(string family)
    {
        if (!_families.TryGetValue(family, out var f))
        {
            return null;
        }
        lock (f)
        {
            return f.Status.Count == 0 ? null : f.Status.Keys.Max();
        }
    }

    private sealed class Family
    {
        // A family has few revisions next to the number of tasks; its own small map is fine.
        public readonly SortedDictionary<int, string> Status = [];
        public int Max;
        public int LatestActive;
    }
}
