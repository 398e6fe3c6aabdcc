using System.Collections.Concurrent;
using System.Collections.Immutable;
using Berth.Aws.Elbv2;

namespace Berth.LoadBalancer.State;

/// <summary>
/// Secondary indexes over the ELBv2 tables, kept current by the tables' <c>Changed</c> events (called under
/// the state's write lock, so there is one writer; readers see immutable sets swapped atomically). They turn
/// the lookups every call makes — a name, a load balancer's listeners, a listener's rules, the load balancers
/// a target group serves — into dictionary reads instead of walks over every listener and rule.
/// </summary>
public sealed class Elbv2Index
{
    private readonly ConcurrentDictionary<string, string> _loadBalancerByName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _targetGroupByName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ImmutableSortedSet<string>> _listenersByLoadBalancer = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ImmutableSortedSet<string>> _rulesByListener = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<int, string> _listenerByPort = new();

    /// <summary>Target group ARN → the listeners and rules forwarding to it ("listener/ID" or "rule/ID") with their load balancer's ARN.</summary>
    private readonly ConcurrentDictionary<string, ImmutableDictionary<string, string>> _usage = new(StringComparer.Ordinal);

    public void Clear()
    {
        _loadBalancerByName.Clear();
        _targetGroupByName.Clear();
        _listenersByLoadBalancer.Clear();
        _rulesByListener.Clear();
        _listenerByPort.Clear();
        _usage.Clear();
    }

    /// <summary>Id of the load balancer with this name, or null.</summary>
    public string? LoadBalancerNamed(string name) => _loadBalancerByName.GetValueOrDefault(name);

    /// <summary>Id of the target group with this name, or null.</summary>
    public string? TargetGroupNamed(string name) => _targetGroupByName.GetValueOrDefault(name);

    /// <summary>Ids of the load balancer's listeners.</summary>
    public ImmutableSortedSet<string> ListenersOf(string loadBalancerArn)
        => _listenersByLoadBalancer.GetValueOrDefault(loadBalancerArn) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>Ids of the listener's non-default rules.</summary>
    public ImmutableSortedSet<string> RulesOf(string listenerArn)
        => _rulesByListener.GetValueOrDefault(listenerArn) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>Id of the listener on this port (every listener is a port of this host), or null.</summary>
    public string? ListenerOnPort(int port) => _listenerByPort.GetValueOrDefault(port);

    /// <summary>The load balancers whose listeners or rules forward to the target group, sorted.</summary>
    public IReadOnlyList<string> LoadBalancersUsing(string targetGroupArn)
        => _usage.TryGetValue(targetGroupArn, out var users) ? users.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList() : [];

    public bool InUse(string targetGroupArn) => _usage.TryGetValue(targetGroupArn, out var users) && !users.IsEmpty;

    internal void ApplyLoadBalancer(string id, StoredLoadBalancer? old, StoredLoadBalancer? now)
    {
        if (old?.LoadBalancer.LoadBalancerName is { } oldName)
        {
            _loadBalancerByName.TryRemove(KeyValuePair.Create(oldName, id));
        }
        if (now?.LoadBalancer.LoadBalancerName is { } name)
        {
            _loadBalancerByName[name] = id;
        }
    }

    internal void ApplyTargetGroup(string id, StoredTargetGroup? old, StoredTargetGroup? now)
    {
        if (old?.TargetGroup.TargetGroupName is { } oldName)
        {
            _targetGroupByName.TryRemove(KeyValuePair.Create(oldName, id));
        }
        if (now?.TargetGroup.TargetGroupName is { } name)
        {
            _targetGroupByName[name] = id;
        }
    }

    internal void ApplyListener(string id, StoredListener? old, StoredListener? now)
    {
        if (old is not null)
        {
            Remove(_listenersByLoadBalancer, old.Listener.LoadBalancerArn!, id);
            if (old.Listener.Port is { } p)
            {
                _listenerByPort.TryRemove(KeyValuePair.Create(p, id));
            }
            SetUsage("listener/" + id, old.Listener.LoadBalancerArn!, old.Listener.DefaultActions, null);
        }
        if (now is not null)
        {
            Add(_listenersByLoadBalancer, now.Listener.LoadBalancerArn!, id);
            if (now.Listener.Port is { } p)
            {
                _listenerByPort[p] = id;
            }
            SetUsage("listener/" + id, now.Listener.LoadBalancerArn!, null, now.Listener.DefaultActions);
        }
    }

    internal void ApplyRule(string id, StoredRule? old, StoredRule? now)
    {
        if (old is not null)
        {
            Remove(_rulesByListener, old.ListenerArn, id);
            SetUsage("rule/" + id, LoadBalancerOfListener(old.ListenerArn), old.Rule.Actions, null);
        }
        if (now is not null)
        {
            Add(_rulesByListener, now.ListenerArn, id);
            SetUsage("rule/" + id, LoadBalancerOfListener(now.ListenerArn), null, now.Rule.Actions);
        }
    }

    /// <summary>
    /// A listener ARN is "arn:...:listener/app/NAME/LBID/ID" and its load balancer's "arn:...:loadbalancer/app/NAME/LBID":
    /// the load balancer is read off the ARN, so a rule loaded before its listener is still indexed right.
    /// </summary>
    public static string LoadBalancerOfListener(string listenerArn)
    {
        var cut = listenerArn.LastIndexOf('/');
        var head = cut > 0 ? listenerArn[..cut] : listenerArn;
        const string marker = ":listener/app/";
        var at = head.IndexOf(marker, StringComparison.Ordinal);
        return at < 0 ? head : head[..at] + ":loadbalancer/app/" + head[(at + marker.Length)..];
    }

    private void SetUsage(string source, string loadBalancerArn, IEnumerable<Elbv2Action>? removed, IEnumerable<Elbv2Action>? added)
    {
        foreach (var tg in ForwardTargets(removed))
        {
            if (_usage.TryGetValue(tg, out var users))
            {
                var left = users.Remove(source);
                if (left.IsEmpty)
                {
                    _usage.TryRemove(tg, out _);
                }
                else
                {
                    _usage[tg] = left;
                }
            }
        }
        foreach (var tg in ForwardTargets(added))
        {
            _usage[tg] = (_usage.GetValueOrDefault(tg) ?? ImmutableDictionary.Create<string, string>(StringComparer.Ordinal)).SetItem(source, loadBalancerArn);
        }
    }

    private static void Add(ConcurrentDictionary<string, ImmutableSortedSet<string>> map, string key, string id)
        => map[key] = (map.GetValueOrDefault(key) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(id);

    private static void Remove(ConcurrentDictionary<string, ImmutableSortedSet<string>> map, string key, string id)
    {
        if (map.TryGetValue(key, out var set))
        {
            var left = set.Remove(id);
            if (left.IsEmpty)
            {
                map.TryRemove(key, out _);
            }
            else
            {
                map[key] = left;
            }
        }
    }

    /// <summary>Target group ARNs a list of actions forwards to (each once).</summary>
    public static IEnumerable<string> ForwardTargets(IEnumerable<Elbv2Action>? actions)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var a in actions ?? [])
        {
            if (a.Type != "forward")
            {
                continue;
            }
            if (a.TargetGroupArn is { } single && seen.Add(single))
            {
                yield return single;
            }
            foreach (var t in a.ForwardConfig?.TargetGroups ?? [])
            {
                if (t.TargetGroupArn is { } arn && seen.Add(arn))
                {
                    yield return arn;
                }
            }
        }
    }
}
