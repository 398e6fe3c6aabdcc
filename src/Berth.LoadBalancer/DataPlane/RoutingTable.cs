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
                .Select(r => new CompiledRule(r.Priority!, RuleMatcher.Compile(r.Conditions ?? []), r.Actions![0], (r.Conditions ?? []).Select(c => c.Field ?? "").ToHashSet(StringComparer.Ordinal)))
                .Append(new CompiledRule("default", RuleMatcher.Always, listener.DefaultActions![0], new HashSet<string>()))
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
        => Rules.Count == 1 ? Rules[0] : Match(new HttpRuleInput(request, remote));

    /// <summary>The first rule whose conditions all hold for <paramref name="input"/>.</summary>
    public CompiledRule Match(IRuleInput input)
    {
        if (Rules.Count == 1)
        {
            return Rules[0]; // only the default rule: nothing to evaluate
        }
        foreach (var rule in Rules)
        {
            if (rule.Matches(input))
            {
                return rule;
            }
        }
        return Rules[^1];
    }

    /// <summary>Some rule tests the query string (decoded as Kestrel decodes it: the fast path leaves such listeners to Kestrel).</summary>
    public bool TestsQuery { get; } = Rules.Any(r => r.Fields.Contains("query-string"));
}

/// <summary>What rule conditions read from a request.</summary>
public interface IRuleInput
{
    string Method { get; }

    /// <summary>The path without the query ("/" when empty), escaped as sent.</summary>
    string Path { get; }

    /// <summary>The Host header without its port.</summary>
    string Host { get; }

    IPAddress? Remote { get; }

    /// <summary>The values of every header line called <paramref name="name"/>.</summary>
    IEnumerable<string> Header(string name);

    /// <summary>The query's decoded key/value pairs.</summary>
    IEnumerable<KeyValuePair<string, string>> Query();
}

/// <summary>A Kestrel request as rule input.</summary>
internal sealed class HttpRuleInput(HttpRequest request, IPAddress? remote) : IRuleInput
{
    public string Method => request.Method;

    public string Path
    {
        get
        {
            var path = request.PathBase.Add(request.Path).ToUriComponent();
            return path.Length == 0 ? "/" : path;
        }
    }

    public string Host => request.Host.Host;

    public IPAddress? Remote => remote;

    public IEnumerable<string> Header(string name)
        => request.Headers.TryGetValue(name, out var values) ? values.OfType<string>() : [];

    public IEnumerable<KeyValuePair<string, string>> Query()
        => request.Query.SelectMany(q => q.Value.OfType<string>().Select(v => KeyValuePair.Create(q.Key, v)));
}

public sealed record CompiledRule(string Priority, Func<IRuleInput, bool> Matches, Elbv2Action Action, IReadOnlySet<string> Fields);

/// <summary>Turns ALB rule conditions into one predicate: every condition must hold; within one, any value.</summary>
public static class RuleMatcher
{
    public static readonly Func<IRuleInput, bool> Always = _ => true;

    public static Func<IRuleInput, bool> Compile(IReadOnlyList<RuleCondition> conditions)
    {
        var checks = conditions.Select(CompileOne).ToArray();
        return req =>
        {
            foreach (var c in checks)
            {
                if (!c(req))
                {
                    return false;
                }
            }
            return true;
        };
    }

    private static Func<IRuleInput, bool> CompileOne(RuleCondition c)
    {
        switch (c.Field)
        {
            case "path-pattern":
                {
                    // Path patterns are case-sensitive and apply to the path only, not the query.
                    var patterns = (c.PathPatternConfig?.Values ?? c.Values ?? []).Select(v => Wildcard(v, ignoreCase: false)).ToArray();
                    return req =>
                    {
                        var path = req.Path;
                        return patterns.Any(p => p.IsMatch(path));
                    };
                }
            case "host-header":
                {
                    var patterns = (c.HostHeaderConfig?.Values ?? c.Values ?? []).Select(v => Wildcard(v, ignoreCase: true)).ToArray();
                    return req => patterns.Any(p => p.IsMatch(req.Host));
                }
            case "http-header":
                {
                    var name = c.HttpHeaderConfig!.HttpHeaderName!;
                    var patterns = c.HttpHeaderConfig.Values!.Select(v => Wildcard(v, ignoreCase: true)).ToArray();
                    return req => req.Header(name).Any(v => patterns.Any(p => p.IsMatch(v)));
                }
            case "http-request-method":
                {
                    var methods = c.HttpRequestMethodConfig!.Values!.ToFrozenSet(StringComparer.Ordinal);
                    return req => methods.Contains(req.Method);
                }
            case "query-string":
                {
                    var pairs = c.QueryStringConfig!.Values!
                        .Select(v => (Key: v.Key is null ? null : Wildcard(v.Key, ignoreCase: true), Value: Wildcard(v.Value!, ignoreCase: true))).ToArray();
                    return req => pairs.Any(p => req.Query().Any(q =>
                        (p.Key is null || p.Key.IsMatch(q.Key)) && p.Value.IsMatch(q.Value)));
                }
            case "source-ip":
                {
                    var networks = c.SourceIpConfig!.Values!.Select(v => IPNetwork.Parse(v)).ToArray();
                    return req => req.Remote is { } ip && networks.Any(n => n.Contains(ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip));
                }
            default:
                return _ => false;
        }
    }

    /// <summary>ALB wildcards: * is any run of characters (also none), ? exactly one.</summary>
    public static Regex Wildcard(string pattern, bool ignoreCase)
    {
        var body = Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal);
        return new Regex("^" + body + "$", RegexOptions.CultureInvariant | RegexOptions.Singleline | (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None), TimeSpan.FromMilliseconds(50));
    }
}
