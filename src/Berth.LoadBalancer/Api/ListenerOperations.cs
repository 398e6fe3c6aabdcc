using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Berth.Aws.Elbv2;
using Berth.Aws.Protocol;
using Berth.LoadBalancer.State;
using Berth.State;

namespace Berth.LoadBalancer.Api;

/// <summary>Listeners and their rules. Each listener is a port of this host (see the data plane).</summary>
internal sealed class ListenerOperations(Elbv2Context ctx)
{
    public void Map(AwsQueryService s)
    {
        var j = Elbv2JsonContext.Default;
        s.Map(Elbv2Operations.CreateListener, j.CreateListenerInput, j.CreateListenerOutput, CreateAsync);
        s.Map(Elbv2Operations.DescribeListeners, j.DescribeListenersInput, j.DescribeListenersOutput, (r, _) => Task.FromResult(Describe(r)));
        s.Map(Elbv2Operations.ModifyListener, j.ModifyListenerInput, j.ModifyListenerOutput, ModifyAsync);
        s.Map(Elbv2Operations.DeleteListener, j.DeleteListenerInput, j.DeleteListenerOutput, DeleteAsync);
        s.Map(Elbv2Operations.CreateRule, j.CreateRuleInput, j.CreateRuleOutput, CreateRuleAsync);
        s.Map(Elbv2Operations.DescribeRules, j.DescribeRulesInput, j.DescribeRulesOutput, (r, _) => Task.FromResult(DescribeRules(r)));
        s.Map(Elbv2Operations.ModifyRule, j.ModifyRuleInput, j.ModifyRuleOutput, ModifyRuleAsync);
        s.Map(Elbv2Operations.SetRulePriorities, j.SetRulePrioritiesInput, j.SetRulePrioritiesOutput, SetPrioritiesAsync);
        s.Map(Elbv2Operations.DeleteRule, j.DeleteRuleInput, j.DeleteRuleOutput, DeleteRuleAsync);
    }

    private static void CheckHttpOnly(string? protocol, List<Certificate>? certs, string? sslPolicy, List<string>? alpn, MutualAuthenticationAttributes? mtls)
    {
        if (protocol is { } p && p != ProtocolEnumValues.HTTP)
        {
            throw Elbv2Errors.Validation($"Protocol '{p}' is not supported: Berth's listeners speak HTTP.");
        }
        if (certs is { Count: > 0 } || sslPolicy is not null || alpn is { Count: > 0 } || mtls is not null)
        {
            throw Elbv2Errors.Validation("Certificates, SslPolicy, AlpnPolicy and MutualAuthentication apply to HTTPS listeners, which Berth does not support.");
        }
    }

    /// <summary>
    /// A listener port is a port of this host: it must be free, and not another load balancer's listener, in this
    /// region or any other (the data plane serves every region's listeners on this host's ports).
    /// </summary>
    private void CheckPort(int port, string lbArn, string? exceptListenerArn)
    {
        var taken = ctx.Regions is { } regions
            ? regions.ListenerOnPort(port)
            : ctx.State.Index.ListenerOnPort(port) is { } onPort ? ctx.State.Listeners.Get(onPort) : null;
        if (taken is { } l)
        {
            if (l.Value.Listener.ListenerArn != exceptListenerArn)
            {
                throw l.Value.Listener.LoadBalancerArn == lbArn
                    ? Elbv2Errors.DuplicateListener(port)
                    : Elbv2Errors.InvalidConfiguration($"Port {port} is already a listener of load balancer '{l.Value.Listener.LoadBalancerArn}'; on Berth every listener is a port of this host.");
            }
        }
        if (ctx.Options.ReservedPorts.Contains(port))
        {
            throw Elbv2Errors.InvalidConfiguration($"Port {port} is used by Berth itself (the API or the agents' port).");
        }
        try
        {
            using var probe = new TcpListener(ctx.Options.BindAddress, port);
            probe.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            probe.Start();
            probe.Stop();
        }
        catch (SocketException)
        {
            throw Elbv2Errors.InvalidConfiguration($"Port {port} is in use on this host ({ctx.Options.BindAddress}); choose another listener port.");
        }
    }

    private async Task<CreateListenerOutput> CreateAsync(CreateListenerInput r, CancellationToken ct)
    {
        CheckHttpOnly(r.Protocol, r.Certificates, r.SslPolicy, r.AlpnPolicy, r.MutualAuthentication);
        if (r.Protocol is null)
        {
            throw Elbv2Errors.Validation("Protocol is required for application load balancer listeners.");
        }
        var port = r.Port ?? throw Elbv2Errors.Validation("Port is required for application load balancer listeners.");
        var tags = Elbv2Context.MergeTags([], r.Tags, "Tags");
        using var portClaim = await PortClaimAsync(ct).ConfigureAwait(false);
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var lb = ctx.RequireLoadBalancer(r.LoadBalancerArn!);
        var lbArn = lb.LoadBalancer.LoadBalancerArn!;
        var actions = ActionValidator.Actions(ctx, lbArn, r.DefaultActions, "DefaultActions");
        // Same port, same actions on the same load balancer: CreateListener is idempotent.
        var same = ctx.ListenersOf(lbArn).FirstOrDefault(l => l.Value.Listener.Port == port);
        if (same is not null && SameActions(same.Value.Listener.DefaultActions, actions))
        {
            return new CreateListenerOutput { Listeners = [same.Value.Listener] };
        }
        CheckPort(port, lbArn, null);
        var id = Elbv2Arns.NewId();
        var lbId = Elbv2Context.LastSegment(lbArn);
        var listener = new Listener
        {
            ListenerArn = ctx.Arns.Listener(lb.LoadBalancer.LoadBalancerName!, lbId, id),
            LoadBalancerArn = lbArn,
            Port = port,
            Protocol = ProtocolEnumValues.HTTP,
            DefaultActions = actions,
        };
        tx.Put(ctx.State.Listeners, id, new StoredListener { Listener = listener, Tags = tags }, 0);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new CreateListenerOutput { Listeners = [listener] };
    }

    /// <summary>
    /// Held from a port's check until its listener is committed: regions write under locks of their own, so without
    /// this two regions could both take one free port. Taken before the region's write lock, always in that order.
    /// </summary>
    private async Task<IDisposable?> PortClaimAsync(CancellationToken ct)
    {
        if (ctx.Regions is not { } regions)
        {
            return null;
        }
        await regions.PortGate.WaitAsync(ct).ConfigureAwait(false);
        return new PortClaim(regions.PortGate);
    }

    private sealed class PortClaim(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    private static bool SameActions(List<Elbv2Action>? a, List<Elbv2Action> b)
        => System.Text.Json.JsonSerializer.Serialize(a ?? [], Elbv2JsonContext.Default.ListElbv2Action) == System.Text.Json.JsonSerializer.Serialize(b, Elbv2JsonContext.Default.ListElbv2Action);

    private DescribeListenersOutput Describe(DescribeListenersInput r)
    {
        if (r.LoadBalancerArn is null && r.ListenerArns is not { Count: > 0 })
        {
            throw Elbv2Errors.Validation("Specify either LoadBalancerArn or ListenerArns.");
        }
        if (r.LoadBalancerArn is not null && r.ListenerArns is { Count: > 0 })
        {
            throw Elbv2Errors.Validation("Specify either LoadBalancerArn or ListenerArns, not both.");
        }
        List<Listener> selected;
        if (r.ListenerArns is { Count: > 0 } arns)
        {
            selected = arns.Distinct(StringComparer.Ordinal).Select(a => ctx.RequireListener(a).Value.Listener).ToList();
        }
        else
        {
            ctx.RequireLoadBalancer(r.LoadBalancerArn!);
            selected = ctx.ListenersOf(r.LoadBalancerArn!).Select(l => l.Value.Listener).OrderBy(l => l.Port).ToList();
        }
        var (page, next) = Elbv2Context.Page(selected, r.Marker, r.PageSize);
        return new DescribeListenersOutput { Listeners = page, NextMarker = next };
    }

    private async Task<ModifyListenerOutput> ModifyAsync(ModifyListenerInput r, CancellationToken ct)
    {
        CheckHttpOnly(r.Protocol, r.Certificates, r.SslPolicy, r.AlpnPolicy, r.MutualAuthentication);
        using var portClaim = r.Port is null ? null : await PortClaimAsync(ct).ConfigureAwait(false);
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireListener(r.ListenerArn!);
        var stored = ctx.State.Listeners.Clone(current.Value);
        var l = stored.Listener;
        if (r.Port is { } port && port != l.Port)
        {
            CheckPort(port, l.LoadBalancerArn!, l.ListenerArn);
            l.Port = port;
        }
        if (r.DefaultActions is { Count: > 0 })
        {
            l.DefaultActions = ActionValidator.Actions(ctx, l.LoadBalancerArn!, r.DefaultActions, "DefaultActions");
        }
        tx.Put(ctx.State.Listeners, current.Id, stored, current.Revision);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new ModifyListenerOutput { Listeners = [l] };
    }

    private async Task<DeleteListenerOutput> DeleteAsync(DeleteListenerInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireListener(r.ListenerArn!);
        foreach (var rule in ctx.RulesOf(current.Value.Listener.ListenerArn!).ToList())
        {
            tx.Delete(ctx.State.Rules, rule.Id);
        }
        tx.Delete(ctx.State.Listeners, current.Id);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new DeleteListenerOutput();
    }

    // Rules ------------------------------------------------------------------------------------------

    /// <summary>The default rule ALB shows for every listener: no conditions, the listener's default actions.</summary>
    internal Rule DefaultRule(Listener l)
    {
        var parts = l.ListenerArn!.Split('/');
        var lbName = parts[^3];
        var lbId = parts[^2];
        var listenerId = parts[^1];
        return new Rule
        {
            RuleArn = ctx.Arns.Rule(lbName, lbId, listenerId, Elbv2Arns.DefaultRuleId(listenerId)),
            Priority = "default",
            Conditions = [],
            Actions = l.DefaultActions,
            IsDefault = true,
        };
    }

    private (Rule Rule, StoredListener Listener, Versioned<StoredRule>? Stored) RequireRule(string arn)
    {
        if (ctx.Arns.IdOf(arn, "listener-rule/app") is { } id)
        {
            if (ctx.State.Rules.Get(id) is { } stored && ctx.State.Listeners.Find(Elbv2Context.LastSegment(stored.Value.ListenerArn)) is { } owner)
            {
                return (stored.Value.Rule, owner, stored);
            }
            var parts = arn.Split('/');
            if (parts.Length >= 5 && ctx.State.Listeners.Find(parts[^2]) is { } l && Elbv2Arns.DefaultRuleId(parts[^2]) == id)
            {
                return (DefaultRule(l.Listener), l, null);
            }
        }
        throw Elbv2Errors.RuleNotFound($"Rule '{arn}' not found");
    }

    private async Task<CreateRuleOutput> CreateRuleAsync(CreateRuleInput r, CancellationToken ct)
    {
        if (r.Transforms is { Count: > 0 })
        {
            throw Elbv2Errors.Validation("Transforms are not supported by Berth.");
        }
        var priority = r.Priority!.Value;
        if (priority is < 1 or > 50000)
        {
            throw Elbv2Errors.Validation($"Priority must be from 1 to 50000, not {priority}.");
        }
        var conditions = ActionValidator.Conditions(r.Conditions, "Conditions");
        var tags = Elbv2Context.MergeTags([], r.Tags, "Tags");
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var listener = ctx.RequireListener(r.ListenerArn!).Value.Listener;
        var actions = ActionValidator.Actions(ctx, listener.LoadBalancerArn!, r.Actions, "Actions");
        if (ctx.RulesOf(listener.ListenerArn!).Any(x => x.Value.Rule.Priority == priority.ToString(CultureInfo.InvariantCulture)))
        {
            throw Elbv2Errors.PriorityInUse(priority);
        }
        if (ctx.State.Index.RulesOf(listener.ListenerArn!).Count >= 100)
        {
            throw new AwsException("TooManyRules", "A listener can have at most 100 rules besides the default rule");
        }
        var parts = listener.ListenerArn!.Split('/');
        var id = Elbv2Arns.NewId();
        var rule = new Rule
        {
            RuleArn = ctx.Arns.Rule(parts[^3], parts[^2], parts[^1], id),
            Priority = priority.ToString(CultureInfo.InvariantCulture),
            Conditions = conditions,
            Actions = actions,
            IsDefault = false,
        };
        tx.Put(ctx.State.Rules, id, new StoredRule { ListenerArn = listener.ListenerArn, Rule = rule, Tags = tags }, 0);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new CreateRuleOutput { Rules = [rule] };
    }

    private DescribeRulesOutput DescribeRules(DescribeRulesInput r)
    {
        if ((r.ListenerArn is null) == (r.RuleArns is not { Count: > 0 }))
        {
            throw Elbv2Errors.Validation("Specify either ListenerArn or RuleArns.");
        }
        List<Rule> selected;
        if (r.RuleArns is { Count: > 0 } arns)
        {
            selected = arns.Distinct(StringComparer.Ordinal).Select(a => RequireRule(a).Rule).ToList();
        }
        else
        {
            var listener = ctx.RequireListener(r.ListenerArn!).Value.Listener;
            selected = ctx.RulesOf(listener.ListenerArn!).Select(x => x.Value.Rule)
                .OrderBy(x => int.Parse(x.Priority!, CultureInfo.InvariantCulture)).Append(DefaultRule(listener)).ToList();
        }
        var (page, next) = Elbv2Context.Page(selected, r.Marker, r.PageSize);
        return new DescribeRulesOutput { Rules = page, NextMarker = next };
    }

    private async Task<ModifyRuleOutput> ModifyRuleAsync(ModifyRuleInput r, CancellationToken ct)
    {
        if (r.Transforms is { Count: > 0 } || r.ResetTransforms is true)
        {
            throw Elbv2Errors.Validation("Transforms are not supported by Berth.");
        }
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var (_, listener, stored) = RequireRule(r.RuleArn!);
        if (stored is null)
        {
            if (r.Conditions is { Count: > 0 })
            {
                throw Elbv2Errors.OperationNotPermitted("The default rule has no conditions; change its actions here or with ModifyListener.");
            }
            if (r.Actions is { Count: > 0 })
            {
                var current = ctx.State.Listeners.Get(Elbv2Context.LastSegment(listener.Listener.ListenerArn!))!;
                var copy = ctx.State.Listeners.Clone(current.Value);
                copy.Listener.DefaultActions = ActionValidator.Actions(ctx, copy.Listener.LoadBalancerArn!, r.Actions, "Actions");
                tx.Put(ctx.State.Listeners, current.Id, copy, current.Revision);
                await tx.CommitAsync(ct).ConfigureAwait(false);
                return new ModifyRuleOutput { Rules = [DefaultRule(copy.Listener)] };
            }
            return new ModifyRuleOutput { Rules = [DefaultRule(listener.Listener)] };
        }
        var rule = ctx.State.Rules.Clone(stored.Value);
        if (r.Conditions is { Count: > 0 })
        {
            rule.Rule.Conditions = ActionValidator.Conditions(r.Conditions, "Conditions");
        }
        if (r.Actions is { Count: > 0 })
        {
            rule.Rule.Actions = ActionValidator.Actions(ctx, listener.Listener.LoadBalancerArn!, r.Actions, "Actions");
        }
        tx.Put(ctx.State.Rules, stored.Id, rule, stored.Revision);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new ModifyRuleOutput { Rules = [rule.Rule] };
    }

    private async Task<SetRulePrioritiesOutput> SetPrioritiesAsync(SetRulePrioritiesInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var changes = new Dictionary<string, (Versioned<StoredRule> Stored, int Priority)>(StringComparer.Ordinal);
        for (var i = 0; i < r.RulePriorities!.Count; i++)
        {
            var p = r.RulePriorities[i];
            var f = $"RulePriorities.member.{i + 1}";
            var arn = p.RuleArn ?? throw Elbv2Errors.Validation($"{f}.RuleArn is required.");
            var priority = p.Priority ?? throw Elbv2Errors.Validation($"{f}.Priority is required.");
            if (priority is < 1 or > 50000)
            {
                throw Elbv2Errors.Validation($"{f}.Priority must be from 1 to 50000, not {priority}.");
            }
            var (_, _, stored) = RequireRule(arn);
            if (stored is null)
            {
                throw Elbv2Errors.OperationNotPermitted("The priority of the default rule cannot be changed.");
            }
            if (!changes.TryAdd(stored.Id, (stored, priority)))
            {
                throw Elbv2Errors.Validation($"{f}: rule '{arn}' is listed twice.");
            }
        }
        // The priorities after the change must be unique within each listener (only the listeners changed can clash).
        foreach (var group in changes.Values.Select(c => c.Stored.Value.ListenerArn).Distinct(StringComparer.Ordinal).Select(ctx.RulesOf))
        {
            var seen = new HashSet<int>();
            foreach (var rule in group)
            {
                var priority = changes.TryGetValue(rule.Id, out var c) ? c.Priority : int.Parse(rule.Value.Rule.Priority!, CultureInfo.InvariantCulture);
                if (!seen.Add(priority))
                {
                    throw Elbv2Errors.PriorityInUse(priority);
                }
            }
        }
        var result = new List<Rule>();
        foreach (var (id, (stored, priority)) in changes)
        {
            var copy = ctx.State.Rules.Clone(stored.Value);
            copy.Rule.Priority = priority.ToString(CultureInfo.InvariantCulture);
            tx.Put(ctx.State.Rules, id, copy, stored.Revision);
            result.Add(copy.Rule);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new SetRulePrioritiesOutput { Rules = result };
    }

    private async Task<DeleteRuleOutput> DeleteRuleAsync(DeleteRuleInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var (_, _, stored) = RequireRule(r.RuleArn!);
        if (stored is null)
        {
            throw Elbv2Errors.OperationNotPermitted("The default rule cannot be deleted.");
        }
        tx.Delete(ctx.State.Rules, stored.Id);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new DeleteRuleOutput();
    }
}
