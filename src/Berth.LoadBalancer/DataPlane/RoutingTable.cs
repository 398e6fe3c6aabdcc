using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Berth.Aws.Elbv2;
using Berth.LoadBalancer.State;
using Microsoft.AspNetCore.Http;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>
/// An immutable snapshot of every listener's rules, compiled for the request path. The data plane swaps
/// in a new table after each state change; requests read whichever table was current when they arrived.
/// </summary>
public sealed class RoutingTable
{
    public static readonly RoutingTable Empty = new(FrozenDictionary<int, ListenerRoute>.Empty);

    private RoutingTable(FrozenDictionary<int, ListenerRoute> byPort)
    {
        ByPort = byPort;
    }

    public FrozenDictionary<int, ListenerRoute> ByPort { get; }

    /// <summary>The listeners of every region: one port of this host holds at most one listener of all of them.</summary>
    public static RoutingTable Build(IEnumerable<Elbv2State> states)
    {
        var byPort = new Dictionary<int, ListenerRoute>();
        foreach (var state in states)
        {
            AddListeners(state, byPort);
        }
        return new RoutingTable(byPort.ToFrozenDictionary());
    }

    private static void AddListeners(Elbv2State state, Dictionary<int, ListenerRoute> byPort)
    {
        foreach (var l in state.Listeners.All)
        {
            var listener = l.Value.Listener;
            if (state.LoadBalancers.Find(LastSegment(listener.LoadBalancerArn!)) is not { } lb)
            {
                continue;
            }
            var idle = int.Parse(lb.Attributes.GetValueOrDefault("idle_timeout.timeout_seconds", "60"), CultureInfo.InvariantCulture);
            var rules = state.Index.RulesOf(listener.ListenerArn!)
                .Select(id => state.Rules.Find(id)?.Rule).OfType<Rule>()
                .OrderBy(r => int.Parse(r.Priority!, CultureInfo.InvariantCulture))
                .Select(r => new CompiledRule(r.Priority!, RuleMatcher.Compile(r.Conditions ?? []), r.Actions![0]))
                .Append(new CompiledRule("default", RuleMatcher.Always, listener.DefaultActions![0]))
                .ToArray();
            byPort[listener.Port!.Value] = new ListenerRoute(listener.ListenerArn!, lb.LoadBalancer.LoadBalancerArn!, listener.Port.Value, TimeSpan.FromSeconds(idle), rules);
        }
    }

    internal static string LastSegment(string arn) => arn[(arn.LastIndexOf('/') + 1)..];
}

/// <summary>One listener: its port and its rules in evaluation order (priority, then the default rule).</summary>
public sealed record ListenerRoute(string ListenerArn, string LoadBalancerArn, int Port, TimeSpan IdleTimeout, IReadOnlyList<CompiledRule> Rules)
{
    /// <summary>The first rule whose conditions all hold, as ALB evaluates them (the default rule always does).</summary>
    public CompiledRule Match(HttpRequest request, IPAddress? remote)
    {
        if (Rules.Count == 1)
        {
            return Rules[0]; // only the default rule: nothing to evaluate
        }
        foreach (var rule in Rules)
        {
            if (rule.Matches(request, remote))
            {
                return rule;
            }
        }
        return Rules[^1];
    }
}

public sealed record CompiledRule(string Priority, Func<HttpRequest, IPAddress?, bool> Matches, Elbv2Action Action);

/// <summary>Turns ALB rule conditions into one predicate: every condition must hold; within one, any value.</summary>
public static class RuleMatcher
{
    public static readonly Func<HttpRequest, IPAddress?, bool> Always = (_, _) => true;

    public static Func<HttpRequest, IPAddress?, bool> Compile(IReadOnlyList<RuleCondition> conditions)
    {
        var checks = conditions.Select(CompileOne).ToArray();
        return (req, ip) =>
        {
            foreach (var c in checks)
            {
                if (!c(req, ip))
                {
                    return false;
                }
            }
            return true;
        };
    }

    private static Func<HttpRequest, IPAddress?, bool> CompileOne(RuleCondition c)
    {
        switch (c.Field)
        {
            case "path-pattern":
                {
                    // Path patterns are case-sensitive and apply to the path only, not the query.
                    var patterns = (c.PathPatternConfig?.Values ?? c.Values ?? []).Select(v => Wildcard(v, ignoreCase: false)).ToArray();
                    return (req, _) =>
                    {
                        var path = req.PathBase.Add(req.Path).ToUriComponent();
                        return patterns.Any(p => p.IsMatch(path.Length == 0 ? "/" : path));
                    };
                }
            case "host-header":
                {
                    var patterns = (c.HostHeaderConfig?.Values ?? c.Values ?? []).Select(v => Wildcard(v, ignoreCase: true)).ToArray();
                    return (req, _) => patterns.Any(p => p.IsMatch(req.Host.Host));
                }
            case "http-header":
                {
                    var name = c.HttpHeaderConfig!.HttpHeaderName!;
                    var patterns = c.HttpHeaderConfig.Values!.Select(v => Wildcard(v, ignoreCase: true)).ToArray();
                    return (req, _) => req.Headers.TryGetValue(name, out var values) && values.Any(v => v is not null && patterns.Any(p => p.IsMatch(v)));
                }
            case "http-request-method":
                {
                    var methods = c.HttpRequestMethodConfig!.Values!.ToFrozenSet(StringComparer.Ordinal);
                    return (req, _) => methods.Contains(req.Method);
                }
            case "query-string":
                {
                    var pairs = c.QueryStringConfig!.Values!
                        .Select(v => (Key: v.Key is null ? null : Wildcard(v.Key, ignoreCase: true), Value: Wildcard(v.Value!, ignoreCase: true))).ToArray();
                    return (req, _) => pairs.Any(p => req.Query.Any(q =>
                        (p.Key is null || p.Key.IsMatch(q.Key)) && q.Value.Any(v => v is not null && p.Value.IsMatch(v))));
                }
            case "source-ip":
                {
                    var networks = c.SourceIpConfig!.Values!.Select(v => IPNetwork.Parse(v)).ToArray();
                    return (_, ip) => ip is not null && networks.Any(n => n.Contains(ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip));
                }
            default:
                return (_, _) => false;
        }
    }

    /// <summary>ALB wildcards: * is any run of characters (also none), ? exactly one.</summary>
    public static Regex Wildcard(string pattern, bool ignoreCase)
    {
        var body = Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal);
        return new Regex("^" + body + "$", RegexOptions.CultureInvariant | RegexOptions.Singleline | (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None), TimeSpan.FromMilliseconds(50));
    }
}
