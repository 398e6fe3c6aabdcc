using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Berth.Aws.Elbv2;
using Berth.LoadBalancer.State;
using Berth.State;

namespace Berth.LoadBalancer.Api;

/// <summary>What every ELBv2 operation class shares: the state, ARNs, options, clock, and the lookups and checks between resources.</summary>
internal sealed partial class Elbv2Context(Elbv2State state, Elbv2Arns arns, LoadBalancerOptions options, TimeProvider time)
{
    public Elbv2State State { get; } = state;
    public Elbv2Arns Arns { get; } = arns;
    public LoadBalancerOptions Options { get; } = options;
    public TimeProvider Time { get; } = time;

    /// <summary>Every region's namespace: listener ports are host-wide, so a port is checked against all of them.</summary>
    public Elbv2Regions? Regions { get; init; }

    public StoredLoadBalancer RequireLoadBalancer(string arn)
        => Arns.IdOf(arn, "loadbalancer/app") is { } id && State.LoadBalancers.Find(id) is { } lb
            ? lb : throw Elbv2Errors.LoadBalancerNotFound($"Load balancer '{arn}' not found");

    public Versioned<StoredTargetGroup> RequireTargetGroup(string arn)
        => Arns.IdOf(arn, "targetgroup") is { } id && State.TargetGroups.Get(id) is { } tg
            ? tg : throw Elbv2Errors.TargetGroupNotFound($"Target group '{arn}' not found");

    public Versioned<StoredListener> RequireListener(string arn)
        => Arns.IdOf(arn, "listener/app") is { } id && State.Listeners.Get(id) is { } l
            ? l : throw Elbv2Errors.ListenerNotFound($"Listener '{arn}' not found");

    public static string LastSegment(string arn) => arn[(arn.LastIndexOf('/') + 1)..];

    /// <summary>The load balancers whose listeners or rules forward to the target group (from the index, not a walk).</summary>
    public IReadOnlyList<string> LoadBalancersUsing(string tgArn) => State.Index.LoadBalancersUsing(tgArn);

    /// <summary>The listener's stored (non-default) rules.</summary>
    public IEnumerable<Versioned<StoredRule>> RulesOf(string listenerArn)
    {
        foreach (var id in State.Index.RulesOf(listenerArn))
        {
            if (State.Rules.Get(id) is { } rule)
            {
                yield return rule;
            }
        }
    }

    /// <summary>The load balancer's listeners.</summary>
    public IEnumerable<Versioned<StoredListener>> ListenersOf(string loadBalancerArn)
    {
        foreach (var id in State.Index.ListenersOf(loadBalancerArn))
        {
            if (State.Listeners.Get(id) is { } listener)
            {
                yield return listener;
            }
        }
    }

    /// <summary>Names follow ALB's rule: up to 32 alphanumerics or hyphens, no hyphen at either end.</summary>
    public static void CheckName(string name, string field, bool loadBalancer)
    {
        if (!NamePattern().IsMatch(name))
        {
            throw Elbv2Errors.Validation($"{field} '{name}' is not valid: it must have 1 to 32 characters, only alphanumerics and hyphens, and must not begin or end with a hyphen.");
        }
        if (loadBalancer && name.StartsWith("internal-", StringComparison.OrdinalIgnoreCase))
        {
            throw Elbv2Errors.Validation($"{field} '{name}' must not begin with 'internal-'.");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
    public static partial Regex SubnetPattern();

    [GeneratedRegex("^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
    public static partial Regex SecurityGroupPattern();

    [GeneratedRegex("^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
    public static partial Regex VpcPattern();

    // Tags -------------------------------------------------------------------------------------------

    public static List<Tag> MergeTags(List<Tag> existing, List<Tag>? added, string field)
    {
        var result = existing.Select(t => new Tag { Key = t.Key, Value = t.Value }).ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < (added?.Count ?? 0); i++)
        {
            var t = added![i];
            if (t.Key is null)
            {
                throw Elbv2Errors.Validation($"{field}.member.{i + 1}.Key is required.");
            }
            if (t.Key.StartsWith("aws:", StringComparison.OrdinalIgnoreCase))
            {
                throw Elbv2Errors.Validation($"{field}.member.{i + 1}.Key '{t.Key}': keys beginning with 'aws:' are reserved.");
            }
            if (!seen.Add(t.Key))
            {
                throw Elbv2Errors.DuplicateTagKeys(t.Key);
            }
            result.RemoveAll(x => x.Key == t.Key);
            result.Add(new Tag { Key = t.Key, Value = t.Value ?? "" });
        }
        if (result.Count > 50)
        {
            throw Elbv2Errors.TooManyTags();
        }
        return result;
    }

    // Paging -----------------------------------------------------------------------------------------

    /// <summary>One page of <paramref name="items"/> (already in a stable order) and the marker of the next.</summary>
    public static (List<T> Page, string? Next) Page<T>(IReadOnlyList<T> items, string? marker, int? pageSize, int defaultSize = 400)
    {
        var start = 0;
        if (!string.IsNullOrEmpty(marker))
        {
            try
            {
                var text = Encoding.UTF8.GetString(Convert.FromBase64String(marker));
                if (!text.StartsWith("berth:", StringComparison.Ordinal) || !int.TryParse(text.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out start))
                {
                    throw new FormatException();
                }
            }
            catch (FormatException)
            {
                throw Elbv2Errors.Validation($"Marker '{marker}' is not a marker Berth issued.");
            }
        }
        var size = pageSize ?? defaultSize;
        var page = items.Skip(start).Take(size).ToList();
        var next = start + size < items.Count
            ? Convert.ToBase64String(Encoding.UTF8.GetBytes("berth:" + (start + size).ToString(CultureInfo.InvariantCulture)))
            : null;
        return (page, next);
    }
}
