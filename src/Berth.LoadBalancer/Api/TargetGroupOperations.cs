using System.Globalization;
using System.Net;
using Berth.Aws.Elbv2;
using Berth.Aws.Protocol;
using Berth.LoadBalancer.DataPlane;
using Berth.LoadBalancer.State;

namespace Berth.LoadBalancer.Api;

/// <summary>Target groups, their attributes, and the targets registered in them.</summary>
internal sealed class TargetGroupOperations(Elbv2Context ctx, TargetHealthBook health, IInstanceAddressResolver instances) : ITargetRegistration
{
    internal static readonly IReadOnlyDictionary<string, string> DefaultAttributes = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["deregistration_delay.timeout_seconds"] = "300",
        ["slow_start.duration_seconds"] = "0",
        ["stickiness.enabled"] = "false",
        ["stickiness.type"] = "lb_cookie",
        ["stickiness.lb_cookie.duration_seconds"] = "86400",
        ["load_balancing.algorithm.type"] = "round_robin",
    };

    public void Map(AwsQueryService s)
    {
        var j = Elbv2JsonContext.Default;
        s.Map(Elbv2Operations.CreateTargetGroup, j.CreateTargetGroupInput, j.CreateTargetGroupOutput, CreateAsync);
        s.Map(Elbv2Operations.DescribeTargetGroups, j.DescribeTargetGroupsInput, j.DescribeTargetGroupsOutput, (r, _) => Task.FromResult(Describe(r)));
        s.Map(Elbv2Operations.ModifyTargetGroup, j.ModifyTargetGroupInput, j.ModifyTargetGroupOutput, ModifyAsync);
        s.Map(Elbv2Operations.DeleteTargetGroup, j.DeleteTargetGroupInput, j.DeleteTargetGroupOutput, DeleteAsync);
        s.Map(Elbv2Operations.DescribeTargetGroupAttributes, j.DescribeTargetGroupAttributesInput, j.DescribeTargetGroupAttributesOutput, (r, _) => Task.FromResult(new DescribeTargetGroupAttributesOutput
        {
            Attributes = Attributes(ctx.RequireTargetGroup(r.TargetGroupArn!).Value),
        }));
        s.Map(Elbv2Operations.ModifyTargetGroupAttributes, j.ModifyTargetGroupAttributesInput, j.ModifyTargetGroupAttributesOutput, ModifyAttributesAsync);
        s.Map(Elbv2Operations.RegisterTargets, j.RegisterTargetsInput, j.RegisterTargetsOutput, async (r, ct) =>
        {
            await RegisterAsync(r.TargetGroupArn!, r.Targets!, ct).ConfigureAwait(false);
            return new RegisterTargetsOutput();
        });
        s.Map(Elbv2Operations.DeregisterTargets, j.DeregisterTargetsInput, j.DeregisterTargetsOutput, async (r, ct) =>
        {
            await DeregisterAsync(r.TargetGroupArn!, r.Targets!, ct).ConfigureAwait(false);
            return new DeregisterTargetsOutput();
        });
        s.Map(Elbv2Operations.DescribeTargetHealth, j.DescribeTargetHealthInput, j.DescribeTargetHealthOutput, (r, _) => Task.FromResult(DescribeHealth(r)));
    }

    internal static List<TargetGroupAttribute> Attributes(StoredTargetGroup tg)
        => DefaultAttributes.Keys.Order(StringComparer.Ordinal)
            .Select(k => new TargetGroupAttribute { Key = k, Value = tg.Attributes.GetValueOrDefault(k, DefaultAttributes[k]) }).ToList();

    private TargetGroup WithUsage(TargetGroup tg)
    {
        var copy = ctx.State.TargetGroups.Clone(new StoredTargetGroup { TargetGroup = tg }).TargetGroup;
        copy.LoadBalancerArns = [.. ctx.LoadBalancersUsing(tg.TargetGroupArn!)];
        return copy;
    }

    private async Task<CreateTargetGroupOutput> CreateAsync(CreateTargetGroupInput r, CancellationToken ct)
    {
        var name = r.Name!;
        Elbv2Context.CheckName(name, "Name", loadBalancer: false);
        var targetType = r.TargetType ?? TargetTypeEnumValues.Instance;
        if (targetType is not (TargetTypeEnumValues.Instance or TargetTypeEnumValues.Ip))
        {
            throw Elbv2Errors.Validation($"TargetType '{targetType}' is not supported: Berth's target groups hold instance or ip targets.");
        }
        var protocol = r.Protocol ?? throw Elbv2Errors.Validation("Protocol is required for target groups of type instance or ip.");
        if (protocol != ProtocolEnumValues.HTTP)
        {
            throw Elbv2Errors.Validation($"Protocol '{protocol}' is not supported: application load balancer target groups on Berth use HTTP.");
        }
        var port = r.Port ?? throw Elbv2Errors.Validation("Port is required for target groups of type instance or ip.");
        var vpc = r.VpcId ?? throw Elbv2Errors.Validation("VpcId is required for target groups of type instance or ip.");
        if (!Elbv2Context.VpcPattern().IsMatch(vpc))
        {
            throw Elbv2Errors.Validation($"VpcId '{vpc}' is not a VPC id (vpc- and 8 or 17 hex digits).");
        }
        if (r.ProtocolVersion is { } pv && pv != "HTTP1")
        {
            throw Elbv2Errors.Validation($"ProtocolVersion '{pv}' is not supported: Berth speaks HTTP/1.1 to targets.");
        }
        if (r.IpAddressType is { } ip && ip != "ipv4")
        {
            throw Elbv2Errors.Validation($"IpAddressType '{ip}' is not supported: targets are IPv4.");
        }
        if (r.TargetControlPort is not null)
        {
            throw Elbv2Errors.Validation("TargetControlPort is not supported by application load balancer target groups.");
        }
        var tg = new TargetGroup
        {
            TargetGroupName = name,
            Protocol = protocol,
            ProtocolVersion = "HTTP1",
            Port = port,
            VpcId = vpc,
            TargetType = targetType,
            IpAddressType = "ipv4",
            HealthCheckProtocol = "HTTP",
            HealthCheckPort = "traffic-port",
            HealthCheckEnabled = true,
            HealthCheckPath = "/",
            HealthCheckIntervalSeconds = 30,
            HealthCheckTimeoutSeconds = 5,
            HealthyThresholdCount = 5,
            UnhealthyThresholdCount = 2,
            Matcher = new Matcher { HttpCode = "200" },
            LoadBalancerArns = [],
        };
        ApplyHealthCheck(tg, r.HealthCheckProtocol, r.HealthCheckPort, r.HealthCheckEnabled, r.HealthCheckPath, r.HealthCheckIntervalSeconds,
            r.HealthCheckTimeoutSeconds, r.HealthyThresholdCount, r.UnhealthyThresholdCount, r.Matcher);
        var tags = Elbv2Context.MergeTags([], r.Tags, "Tags");

        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var existing = ctx.State.Index.TargetGroupNamed(name) is { } named ? ctx.State.TargetGroups.Get(named) : null;
        if (existing is not null)
        {
            var e = existing.Value.TargetGroup;
            if (e.Protocol == tg.Protocol && e.Port == tg.Port && e.VpcId == tg.VpcId && e.TargetType == tg.TargetType
                && e.HealthCheckPath == tg.HealthCheckPath && e.HealthCheckPort == tg.HealthCheckPort
                && e.HealthCheckIntervalSeconds == tg.HealthCheckIntervalSeconds && e.HealthCheckTimeoutSeconds == tg.HealthCheckTimeoutSeconds
                && e.HealthyThresholdCount == tg.HealthyThresholdCount && e.UnhealthyThresholdCount == tg.UnhealthyThresholdCount
                && e.Matcher?.HttpCode == tg.Matcher?.HttpCode)
            {
                return new CreateTargetGroupOutput { TargetGroups = [WithUsage(e)] };
            }
            throw Elbv2Errors.DuplicateTargetGroupName(name);
        }
        var id = Elbv2Arns.NewId();
        tg.TargetGroupArn = ctx.Arns.TargetGroup(name, id);
        tx.Put(ctx.State.TargetGroups, id, new StoredTargetGroup { TargetGroup = tg, Tags = tags }, 0);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new CreateTargetGroupOutput { TargetGroups = [tg] };
    }

    /// <summary>Applies the health check fields given and checks the combination.</summary>
    private static void ApplyHealthCheck(TargetGroup tg, string? protocol, string? port, bool? enabled, string? path, int? interval, int? timeout, int? healthy, int? unhealthy, Matcher? matcher)
    {
        if (protocol is not null)
        {
            tg.HealthCheckProtocol = protocol == "HTTP" ? protocol : throw Elbv2Errors.Validation($"HealthCheckProtocol '{protocol}' is not supported: Berth checks targets over HTTP.");
        }
        if (port is not null)
        {
            tg.HealthCheckPort = port == "traffic-port" || (int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is >= 1 and <= 65535)
                ? port : throw Elbv2Errors.Validation($"HealthCheckPort '{port}' must be 'traffic-port' or a port from 1 to 65535.");
        }
        if (enabled is false)
        {
            throw Elbv2Errors.Validation("HealthCheckEnabled: health checks cannot be disabled for target groups of type instance or ip.");
        }
        if (path is not null)
        {
            tg.HealthCheckPath = path.StartsWith('/') ? path : throw Elbv2Errors.Validation($"HealthCheckPath '{path}' must begin with '/'.");
        }
        tg.HealthCheckIntervalSeconds = interval ?? tg.HealthCheckIntervalSeconds;
        tg.HealthCheckTimeoutSeconds = timeout ?? tg.HealthCheckTimeoutSeconds;
        tg.HealthyThresholdCount = healthy ?? tg.HealthyThresholdCount;
        tg.UnhealthyThresholdCount = unhealthy ?? tg.UnhealthyThresholdCount;
        if (tg.HealthCheckTimeoutSeconds >= tg.HealthCheckIntervalSeconds)
        {
            throw Elbv2Errors.Validation($"HealthCheckTimeoutSeconds ({tg.HealthCheckTimeoutSeconds}) must be smaller than HealthCheckIntervalSeconds ({tg.HealthCheckIntervalSeconds}).");
        }
        if (matcher is not null)
        {
            if (matcher.GrpcCode is not null)
            {
                throw Elbv2Errors.Validation("Matcher.GrpcCode applies to gRPC target groups, which Berth does not support.");
            }
            var code = matcher.HttpCode ?? throw Elbv2Errors.Validation("Matcher.HttpCode is required.");
            if (HttpCodeMatcher.TryParse(code) is null)
            {
                throw Elbv2Errors.Validation($"Matcher.HttpCode '{code}' is not valid: use codes from 200 to 499 as '200', '200,202' or '200-299'.");
            }
            tg.Matcher = new Matcher { HttpCode = code };
        }
    }

    private DescribeTargetGroupsOutput Describe(DescribeTargetGroupsInput r)
    {
        var filters = (r.LoadBalancerArn is null ? 0 : 1) + (r.TargetGroupArns is { Count: > 0 } ? 1 : 0) + (r.Names is { Count: > 0 } ? 1 : 0);
        if (filters > 1)
        {
            throw Elbv2Errors.Validation("Specify at most one of LoadBalancerArn, TargetGroupArns and Names.");
        }
        List<TargetGroup> selected;
        if (r.TargetGroupArns is { Count: > 0 } arns)
        {
            selected = arns.Distinct(StringComparer.Ordinal).Select(a => ctx.RequireTargetGroup(a).Value.TargetGroup).ToList();
        }
        else if (r.Names is { Count: > 0 } names)
        {
            selected = names.Distinct(StringComparer.Ordinal).Select(n =>
                (ctx.State.Index.TargetGroupNamed(n) is { } named ? ctx.State.TargetGroups.Find(named)?.TargetGroup : null)
                    ?? throw Elbv2Errors.TargetGroupNotFound($"Target groups '[{n}]' not found")).ToList();
        }
        else
        {
            IEnumerable<TargetGroup> all;
            if (r.LoadBalancerArn is { } lbArn)
            {
                // The groups the load balancer's listeners and rules forward to: a walk over that load balancer only.
                ctx.RequireLoadBalancer(lbArn);
                var used = new HashSet<string>(StringComparer.Ordinal);
                foreach (var l in ctx.ListenersOf(lbArn))
                {
                    used.UnionWith(Elbv2Index.ForwardTargets(l.Value.Listener.DefaultActions));
                    foreach (var rule in ctx.RulesOf(l.Value.Listener.ListenerArn!))
                    {
                        used.UnionWith(Elbv2Index.ForwardTargets(rule.Value.Rule.Actions));
                    }
                }
                all = used.Select(a => ctx.Arns.IdOf(a, "targetgroup") is { } id ? ctx.State.TargetGroups.Find(id)?.TargetGroup : null).OfType<TargetGroup>();
            }
            else
            {
                all = ctx.State.TargetGroups.All.Select(x => x.Value.TargetGroup);
            }
            selected = all.OrderBy(x => x.TargetGroupName, StringComparer.Ordinal).ToList();
        }
        var (page, next) = Elbv2Context.Page(selected, r.Marker, r.PageSize);
        return new DescribeTargetGroupsOutput { TargetGroups = page.Select(WithUsage).ToList(), NextMarker = next };
    }

    private async Task<ModifyTargetGroupOutput> ModifyAsync(ModifyTargetGroupInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireTargetGroup(r.TargetGroupArn!);
        var tg = ctx.State.TargetGroups.Clone(current.Value);
        ApplyHealthCheck(tg.TargetGroup, r.HealthCheckProtocol, r.HealthCheckPort, r.HealthCheckEnabled, r.HealthCheckPath, r.HealthCheckIntervalSeconds,
            r.HealthCheckTimeoutSeconds, r.HealthyThresholdCount, r.UnhealthyThresholdCount, r.Matcher);
        tx.Put(ctx.State.TargetGroups, current.Id, tg, current.Revision);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new ModifyTargetGroupOutput { TargetGroups = [WithUsage(tg.TargetGroup)] };
    }

    private async Task<DeleteTargetGroupOutput> DeleteAsync(DeleteTargetGroupInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireTargetGroup(r.TargetGroupArn!);
        if (ctx.State.Index.InUse(r.TargetGroupArn!))
        {
            throw Elbv2Errors.ResourceInUse($"Target group '{r.TargetGroupArn}' is currently in use by a listener or a rule");
        }
        tx.Delete(ctx.State.TargetGroups, current.Id);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        health.ForgetGroup(current.Id);
        return new DeleteTargetGroupOutput();
    }

    private async Task<ModifyTargetGroupAttributesOutput> ModifyAttributesAsync(ModifyTargetGroupAttributesInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireTargetGroup(r.TargetGroupArn!);
        var tg = ctx.State.TargetGroups.Clone(current.Value);
        for (var i = 0; i < r.Attributes!.Count; i++)
        {
            var a = r.Attributes[i];
            var field = $"Attributes.member.{i + 1}";
            var key = a.Key ?? throw Elbv2Errors.Validation($"{field}.Key is required.");
            var value = a.Value ?? throw Elbv2Errors.Validation($"{field}.Value is required.");
            tg.Attributes[key] = CheckAttribute(key, value, field);
        }
        if (tg.Attributes.GetValueOrDefault("slow_start.duration_seconds", "0") != "0" && tg.Attributes.GetValueOrDefault("load_balancing.algorithm.type") == "least_outstanding_requests")
        {
            throw Elbv2Errors.Validation("Attributes: slow_start.duration_seconds cannot be combined with load_balancing.algorithm.type least_outstanding_requests.");
        }
        tx.Put(ctx.State.TargetGroups, current.Id, tg, current.Revision);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new ModifyTargetGroupAttributesOutput { Attributes = Attributes(tg) };
    }

    internal static string CheckAttribute(string key, string value, string field)
    {
        int Int(int min, int max) => int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max
            ? v : throw Elbv2Errors.Validation($"{field}: {key} must be an integer from {min} to {max}, not '{value}'.");
        switch (key)
        {
            case "deregistration_delay.timeout_seconds":
                return Int(0, 3600).ToString(CultureInfo.InvariantCulture);
            case "slow_start.duration_seconds":
                return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var slow) && (slow == 0 || slow is >= 30 and <= 900)
                    ? slow.ToString(CultureInfo.InvariantCulture)
                    : throw Elbv2Errors.Validation($"{field}: slow_start.duration_seconds must be 0 or from 30 to 900, not '{value}'.");
            case "stickiness.enabled":
                return value is "true" or "false" ? value : throw Elbv2Errors.Validation($"{field}: stickiness.enabled must be true or false, not '{value}'.");
            case "stickiness.type":
                return value == "lb_cookie" ? value : throw Elbv2Errors.Validation($"{field}: Berth supports stickiness.type lb_cookie only, not '{value}'.");
            case "stickiness.lb_cookie.duration_seconds":
                return Int(1, 604800).ToString(CultureInfo.InvariantCulture);
            case "load_balancing.algorithm.type":
                return value is "round_robin" or "least_outstanding_requests" ? value
                    : throw Elbv2Errors.Validation($"{field}: load_balancing.algorithm.type must be round_robin or least_outstanding_requests on Berth, not '{value}'.");
            default:
                throw Elbv2Errors.Validation($"{field}: target group attribute key '{key}' is not recognized.");
        }
    }

    // Targets ----------------------------------------------------------------------------------------

    private List<TargetDescription> Normalize(StoredTargetGroup tg, IReadOnlyList<TargetDescription> targets, bool registering)
    {
        var result = new List<TargetDescription>();
        for (var i = 0; i < targets.Count; i++)
        {
            var t = targets[i];
            var field = $"Targets.member.{i + 1}";
            var id = t.Id ?? throw Elbv2Errors.Validation($"{field}.Id is required.");
            if (t.QuicServerId is not null)
            {
                throw Elbv2Errors.Validation($"{field}.QuicServerId applies to QUIC target groups only.");
            }
            if (registering)
            {
                if (tg.TargetGroup.TargetType == TargetTypeEnumValues.Ip)
                {
                    if (!IPAddress.TryParse(id, out var addr) || addr.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || id.Count(c => c == '.') != 3)
                    {
                        throw Elbv2Errors.InvalidTarget($"The IP address '{id}' is not a valid IPv4 address");
                    }
                }
                else if (instances.Resolve(ctx.Arns.Identity.Region, id) is null)
                {
                    throw Elbv2Errors.InvalidTarget($"The following targets are not valid instances: '{id}'");
                }
            }
            result.Add(new TargetDescription { Id = id, Port = t.Port ?? tg.TargetGroup.Port, AvailabilityZone = t.AvailabilityZone });
        }
        return result;
    }

    public Task RegisterTargetsAsync(string targetGroupArn, IReadOnlyList<TargetEndpoint> targets, CancellationToken ct = default)
        => RegisterAsync(targetGroupArn, targets.Select(t => new TargetDescription { Id = t.Id, Port = t.Port }).ToList(), ct);

    public Task DeregisterTargetsAsync(string targetGroupArn, IReadOnlyList<TargetEndpoint> targets, CancellationToken ct = default)
        => DeregisterAsync(targetGroupArn, targets.Select(t => new TargetDescription { Id = t.Id, Port = t.Port }).ToList(), ct);

    public IReadOnlyList<TargetHealthReport> DescribeTargetHealth(string targetGroupArn)
        => DescribeHealth(new DescribeTargetHealthInput { TargetGroupArn = targetGroupArn }).TargetHealthDescriptions!
            .Select(d => new TargetHealthReport(new TargetEndpoint(d.Target!.Id!, d.Target.Port ?? 0), d.TargetHealth!.State!, d.TargetHealth.Reason, d.TargetHealth.Description)).ToList();

    public string TargetType(string targetGroupArn)
        => ctx.RequireTargetGroup(targetGroupArn).Value.TargetGroup.TargetType ?? TargetTypeEnumValues.Instance;

    public bool IsAttached(string targetGroupArn)
        => ctx.State.Index.InUse(ctx.RequireTargetGroup(targetGroupArn).Value.TargetGroup.TargetGroupArn!);

    private async Task RegisterAsync(string arn, IReadOnlyList<TargetDescription> targets, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireTargetGroup(arn);
        var wanted = Normalize(current.Value, targets, registering: true);
        if (current.Value.Targets.Count + wanted.Count > 1000)
        {
            throw new AwsException("TooManyTargets", "A target group can have at most 1000 targets");
        }
        var tg = ctx.State.TargetGroups.Clone(current.Value);
        foreach (var t in wanted)
        {
            if (!tg.Targets.Any(x => x.Id == t.Id && x.Port == t.Port))
            {
                tg.Targets.Add(t);
            }
        }
        tx.Put(ctx.State.TargetGroups, current.Id, tg, current.Revision);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        foreach (var t in wanted)
        {
            health.Registered(current.Id, TargetHealthBook.Key(t.Id!, t.Port!.Value));
        }
    }

    private async Task DeregisterAsync(string arn, IReadOnlyList<TargetDescription> targets, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireTargetGroup(arn);
        var wanted = Normalize(current.Value, targets, registering: false);
        var missing = wanted.Where(t => !current.Value.Targets.Any(x => x.Id == t.Id && x.Port == t.Port)).ToList();
        if (missing.Count > 0)
        {
            throw Elbv2Errors.InvalidTarget($"The following targets are not registered in target group '{arn}': {string.Join(", ", missing.Select(m => $"'{m.Id}:{m.Port}'"))}");
        }
        var tg = ctx.State.TargetGroups.Clone(current.Value);
        tg.Targets.RemoveAll(x => wanted.Any(t => t.Id == x.Id && t.Port == x.Port));
        tx.Put(ctx.State.TargetGroups, current.Id, tg, current.Revision);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        var delay = TimeSpan.FromSeconds(int.Parse(tg.Attributes.GetValueOrDefault("deregistration_delay.timeout_seconds", "300"), CultureInfo.InvariantCulture));
        var inUse = ctx.State.Index.InUse(arn);
        foreach (var t in wanted)
        {
            var key = TargetHealthBook.Key(t.Id!, t.Port!.Value);
            if (inUse && delay > TimeSpan.Zero)
            {
                health.Deregistered(current.Id, key, delay);
            }
            else
            {
                health.Forget(current.Id, key);
            }
        }
    }

    private DescribeTargetHealthOutput DescribeHealth(DescribeTargetHealthInput r)
    {
        var current = ctx.RequireTargetGroup(r.TargetGroupArn!);
        var tg = current.Value;
        var inUse = ctx.State.Index.InUse(tg.TargetGroup.TargetGroupArn!);
        // Registered targets by "id:port": one pass, so the answer costs O(targets), not O(targets²).
        var byKey = new Dictionary<string, TargetDescription>(StringComparer.Ordinal);
        foreach (var x in tg.Targets)
        {
            byKey.TryAdd(TargetHealthBook.Key(x.Id!, x.Port!.Value), x);
        }
        List<TargetDescription> subjects;
        if (r.Targets is { Count: > 0 })
        {
            subjects = Normalize(tg, r.Targets, registering: false);
        }
        else
        {
            subjects = [.. tg.Targets];
            foreach (var (key, _) in health.Draining(current.Id))
            {
                if (!byKey.ContainsKey(key))
                {
                    var colon = key.LastIndexOf(':');
                    subjects.Add(new TargetDescription { Id = key[..colon], Port = int.Parse(key[(colon + 1)..], CultureInfo.InvariantCulture) });
                }
            }
        }
        var result = new List<TargetHealthDescription>();
        foreach (var t in subjects)
        {
            var key = TargetHealthBook.Key(t.Id!, t.Port!.Value);
            var registered = byKey.TryGetValue(key, out var registeredTarget);
            var view = health.Find(current.Id, key, inUse);
            if (view is null || (!registered && view.State != TargetHealthStates.Draining))
            {
                view = registered
                    ? (inUse
                        ? new TargetHealthView(TargetHealthStates.Initial, TargetHealthStates.InitialHealthChecking, "Initial health checking in progress")
                        : new TargetHealthView(TargetHealthStates.Unused, TargetHealthStates.NotInUse, "Target group is not configured to receive traffic from the load balancer"))
                    : new TargetHealthView(TargetHealthStates.Unused, TargetHealthStates.NotRegistered, "Target is not registered to the target group");
            }
            var hcPort = tg.TargetGroup.HealthCheckPort == "traffic-port" ? t.Port!.Value.ToString(CultureInfo.InvariantCulture) : tg.TargetGroup.HealthCheckPort;
            var registeredAz = registeredTarget?.AvailabilityZone;
            result.Add(new TargetHealthDescription
            {
                Target = new TargetDescription { Id = t.Id, Port = t.Port, AvailabilityZone = registeredAz },
                HealthCheckPort = hcPort,
                TargetHealth = new TargetHealth { State = view.State, Reason = view.Reason, Description = view.Description },
            });
        }
        return new DescribeTargetHealthOutput { TargetHealthDescriptions = result };
    }
}
