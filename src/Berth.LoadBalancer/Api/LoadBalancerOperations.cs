using System.Globalization;
using Berth.Aws.Elbv2;
using Berth.Aws.Protocol;
using Berth.LoadBalancer.State;
using AlbLoadBalancer = Berth.Aws.Elbv2.LoadBalancer;

namespace Berth.LoadBalancer.Api;

/// <summary>CreateLoadBalancer, DescribeLoadBalancers, DeleteLoadBalancer and the load balancer attributes.</summary>
internal sealed class LoadBalancerOperations(Elbv2Context ctx)
{
    /// <summary>The attributes Berth honours, with ALB's defaults. Each one either works or is refused.</summary>
    internal static readonly IReadOnlyDictionary<string, string> DefaultAttributes = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["idle_timeout.timeout_seconds"] = "60",
        ["deletion_protection.enabled"] = "false",
        ["routing.http2.enabled"] = "true",
        ["routing.http.drop_invalid_header_fields.enabled"] = "false",
        ["routing.http.xff_header_processing.mode"] = "append",
        ["routing.http.preserve_host_header.enabled"] = "false",
        ["access_logs.s3.enabled"] = "false",
    };

    public void Map(AwsQueryService s)
    {
        var j = Elbv2JsonContext.Default;
        s.Map(Elbv2Operations.CreateLoadBalancer, j.CreateLoadBalancerInput, j.CreateLoadBalancerOutput, CreateAsync);
        s.Map(Elbv2Operations.DescribeLoadBalancers, j.DescribeLoadBalancersInput, j.DescribeLoadBalancersOutput, (r, _) => Task.FromResult(Describe(r)));
        s.Map(Elbv2Operations.DeleteLoadBalancer, j.DeleteLoadBalancerInput, j.DeleteLoadBalancerOutput, DeleteAsync);
        s.Map(Elbv2Operations.DescribeLoadBalancerAttributes, j.DescribeLoadBalancerAttributesInput, j.DescribeLoadBalancerAttributesOutput, (r, _) => Task.FromResult(new DescribeLoadBalancerAttributesOutput
        {
            Attributes = Attributes(ctx.RequireLoadBalancer(r.LoadBalancerArn!)),
        }));
        s.Map(Elbv2Operations.ModifyLoadBalancerAttributes, j.ModifyLoadBalancerAttributesInput, j.ModifyLoadBalancerAttributesOutput, ModifyAttributesAsync);
    }

    private static List<LoadBalancerAttribute> Attributes(StoredLoadBalancer lb)
        => DefaultAttributes.Keys.Order(StringComparer.Ordinal)
            .Select(k => new LoadBalancerAttribute { Key = k, Value = lb.Attributes.GetValueOrDefault(k, DefaultAttributes[k]) }).ToList();

    private async Task<CreateLoadBalancerOutput> CreateAsync(CreateLoadBalancerInput r, CancellationToken ct)
    {
        var name = r.Name!;
        Elbv2Context.CheckName(name, "Name", loadBalancer: true);
        if (r.Type is { } type && type != LoadBalancerTypeEnumValues.Application)
        {
            throw Elbv2Errors.Validation($"Type '{type}' is not supported: Berth serves application load balancers only.");
        }
        if (r.IpAddressType is { } ipType && ipType != "ipv4")
        {
            throw Elbv2Errors.Validation($"IpAddressType '{ipType}' is not supported: Berth's listeners are IPv4.");
        }
        if (r.CustomerOwnedIpv4Pool is not null)
        {
            throw Elbv2Errors.Validation("CustomerOwnedIpv4Pool is not supported by application load balancers on Berth.");
        }
        if (r.EnablePrefixForIpv6SourceNat is not null)
        {
            throw Elbv2Errors.Validation("EnablePrefixForIpv6SourceNat applies to network load balancers only.");
        }
        if (r.IpamPools is not null)
        {
            throw Elbv2Errors.Validation("IpamPools is not supported by Berth.");
        }
        if (r.Subnets is { Count: > 0 } && r.SubnetMappings is { Count: > 0 })
        {
            throw Elbv2Errors.Validation("Specify either Subnets or SubnetMappings, not both.");
        }
        var subnets = new List<string>();
        for (var i = 0; i < (r.Subnets?.Count ?? 0); i++)
        {
            subnets.Add(CheckSubnet(r.Subnets![i], $"Subnets.member.{i + 1}"));
        }
        for (var i = 0; i < (r.SubnetMappings?.Count ?? 0); i++)
        {
            var m = r.SubnetMappings![i];
            if (m.AllocationId is not null || m.PrivateIPv4Address is not null || m.IPv6Address is not null || m.SourceNatIpv6Prefix is not null)
            {
                throw Elbv2Errors.Validation($"SubnetMappings.member.{i + 1}: only SubnetId applies to application load balancers.");
            }
            subnets.Add(CheckSubnet(m.SubnetId ?? throw Elbv2Errors.Validation($"SubnetMappings.member.{i + 1}.SubnetId is required."), $"SubnetMappings.member.{i + 1}.SubnetId"));
        }
        if (subnets.Distinct(StringComparer.Ordinal).Count() != subnets.Count)
        {
            throw Elbv2Errors.Validation("Subnets: a subnet is listed more than once.");
        }
        var groups = r.SecurityGroups ?? [];
        for (var i = 0; i < groups.Count; i++)
        {
            if (!Elbv2Context.SecurityGroupPattern().IsMatch(groups[i]))
            {
                throw new AwsException("InvalidSecurityGroup", $"SecurityGroups.member.{i + 1}: '{groups[i]}' is not a security group id (sg- and 8 or 17 hex digits).");
            }
        }
        var scheme = r.Scheme ?? LoadBalancerSchemeEnumValues.Internet_Facing;
        var tags = Elbv2Context.MergeTags([], r.Tags, "Tags");

        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var existing = ctx.State.Index.LoadBalancerNamed(name) is { } named ? ctx.State.LoadBalancers.Get(named) : null;
        if (existing is not null)
        {
            var e = existing.Value.LoadBalancer;
            var sameSubnets = (e.AvailabilityZones ?? []).Select(z => z.SubnetId).Where(x => x is not null).SequenceEqual(subnets);
            if (e.Scheme == scheme && sameSubnets && (e.SecurityGroups ?? []).SequenceEqual(groups))
            {
                return new CreateLoadBalancerOutput { LoadBalancers = [existing.Value.LoadBalancer] };
            }
            throw Elbv2Errors.DuplicateLoadBalancerName(name);
        }
        var id = Elbv2Arns.NewId();
        var number = (ulong.Parse(id, NumberStyles.HexNumber, CultureInfo.InvariantCulture) % 9_000_000_000UL) + 1_000_000_000UL;
        var region = ctx.Arns.Identity.Region;
        var lb = new AlbLoadBalancer
        {
            LoadBalancerArn = ctx.Arns.LoadBalancer(name, id),
            LoadBalancerName = name,
            DNSName = $"{(scheme == LoadBalancerSchemeEnumValues.Internal ? "internal-" : "")}{name}-{number}.{region}.{ctx.Options.DnsSuffix}".ToLowerInvariant(),
            CanonicalHostedZoneId = "Z35SXDOTRQ7X7K",
            CreatedTime = ctx.Time.GetUtcNow(),
            Scheme = scheme,
            VpcId = DefaultVpc(),
            State = new LoadBalancerState { Code = LoadBalancerStateEnumValues.Provisioning },
            Type = LoadBalancerTypeEnumValues.Application,
            IpAddressType = "ipv4",
            SecurityGroups = [.. groups],
            AvailabilityZones = subnets.Count > 0
                // Berth owns no subnets: zones follow the order the subnets are given in (a, b, c, ...).
                ? subnets.Select((s, i) => new AvailabilityZone { SubnetId = s, ZoneName = region + (char)('a' + (i % 6)), LoadBalancerAddresses = [] }).ToList()
                : [new AvailabilityZone { ZoneName = ctx.Options.DefaultAvailabilityZone, LoadBalancerAddresses = [] }],
        };
        var stored = new StoredLoadBalancer { LoadBalancer = lb, Tags = tags };
        tx.Put(ctx.State.LoadBalancers, id, stored, 0);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new CreateLoadBalancerOutput { LoadBalancers = [lb] };
    }

    /// <summary>The default VPC of this account and region, as a stable id.</summary>
    private string DefaultVpc()
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(ctx.Arns.Identity.AccountId + "/" + ctx.Arns.Identity.Region));
        return "vpc-" + Convert.ToHexStringLower(hash)[..17];
    }

    private static string CheckSubnet(string s, string field)
        => Elbv2Context.SubnetPattern().IsMatch(s) ? s : throw new AwsException("InvalidSubnet", $"{field}: '{s}' is not a subnet id (subnet- and 8 or 17 hex digits).");

    private DescribeLoadBalancersOutput Describe(DescribeLoadBalancersInput r)
    {
        if (r.LoadBalancerArns is { Count: > 0 } && r.Names is { Count: > 0 })
        {
            throw Elbv2Errors.Validation("Specify either LoadBalancerArns or Names, not both.");
        }
        List<AlbLoadBalancer> selected;
        if (r.LoadBalancerArns is { Count: > 0 } arns)
        {
            selected = arns.Distinct(StringComparer.Ordinal).Select(a => ctx.RequireLoadBalancer(a).LoadBalancer).ToList();
        }
        else if (r.Names is { Count: > 0 } names)
        {
            selected = names.Distinct(StringComparer.Ordinal).Select(n =>
                (ctx.State.Index.LoadBalancerNamed(n) is { } named ? ctx.State.LoadBalancers.Find(named)?.LoadBalancer : null)
                    ?? throw Elbv2Errors.LoadBalancerNotFound($"Load balancers '[{n}]' not found")).ToList();
        }
        else
        {
            selected = ctx.State.LoadBalancers.All.Select(x => x.Value.LoadBalancer).OrderBy(x => x.CreatedTime).ThenBy(x => x.LoadBalancerArn, StringComparer.Ordinal).ToList();
        }
        var (page, next) = Elbv2Context.Page(selected, r.Marker, r.PageSize);
        return new DescribeLoadBalancersOutput { LoadBalancers = page, NextMarker = next };
    }

    private async Task<DeleteLoadBalancerOutput> DeleteAsync(DeleteLoadBalancerInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var lb = ctx.RequireLoadBalancer(r.LoadBalancerArn!);
        if (lb.Attributes.GetValueOrDefault("deletion_protection.enabled") == "true")
        {
            throw Elbv2Errors.OperationNotPermitted($"Load balancer '{r.LoadBalancerArn}' cannot be deleted because deletion protection is enabled");
        }
        var arn = lb.LoadBalancer.LoadBalancerArn!;
        foreach (var l in ctx.ListenersOf(arn).ToList())
        {
            foreach (var rule in ctx.RulesOf(l.Value.Listener.ListenerArn!).ToList())
            {
                tx.Delete(ctx.State.Rules, rule.Id);
            }
            tx.Delete(ctx.State.Listeners, l.Id);
        }
        tx.Delete(ctx.State.LoadBalancers, Elbv2Context.LastSegment(arn));
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new DeleteLoadBalancerOutput();
    }

    private async Task<ModifyLoadBalancerAttributesOutput> ModifyAttributesAsync(ModifyLoadBalancerAttributesInput r, CancellationToken ct)
    {
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        var current = ctx.RequireLoadBalancer(r.LoadBalancerArn!);
        var lb = ctx.State.LoadBalancers.Clone(current);
        for (var i = 0; i < r.Attributes!.Count; i++)
        {
            var a = r.Attributes[i];
            var field = $"Attributes.member.{i + 1}";
            var key = a.Key ?? throw Elbv2Errors.Validation($"{field}.Key is required.");
            var value = a.Value ?? throw Elbv2Errors.Validation($"{field}.Value is required.");
            lb.Attributes[key] = CheckAttribute(key, value, field);
        }
        tx.Put(ctx.State.LoadBalancers, Elbv2Context.LastSegment(lb.LoadBalancer.LoadBalancerArn!), lb);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new ModifyLoadBalancerAttributesOutput { Attributes = Attributes(lb) };
    }

    internal static string CheckAttribute(string key, string value, string field)
    {
        switch (key)
        {
            case "idle_timeout.timeout_seconds":
                return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s is >= 1 and <= 4000
                    ? s.ToString(CultureInfo.InvariantCulture)
                    : throw Elbv2Errors.Validation($"{field}: idle_timeout.timeout_seconds must be an integer from 1 to 4000, not '{value}'.");
            case "deletion_protection.enabled":
            case "routing.http2.enabled":
            case "routing.http.preserve_host_header.enabled":
                return value is "true" or "false" ? value : throw Elbv2Errors.Validation($"{field}: {key} must be true or false, not '{value}'.");
            case "routing.http.drop_invalid_header_fields.enabled":
            case "access_logs.s3.enabled":
                return value == "false" ? value : throw Elbv2Errors.Validation($"{field}: Berth does not support {key}={value}; only false.");
            case "routing.http.xff_header_processing.mode":
                return value == "append" ? value : throw Elbv2Errors.Validation($"{field}: Berth supports routing.http.xff_header_processing.mode=append only, not '{value}'.");
            default:
                throw Elbv2Errors.Validation($"{field}: load balancer attribute key '{key}' is not recognized.");
        }
    }
}
