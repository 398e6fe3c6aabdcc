using System.Net;
using System.Text.RegularExpressions;
using Berth.Aws.Elbv2;

namespace Berth.LoadBalancer.Api;

/// <summary>Checks listener and rule actions and rule conditions as ALB does, and normalises them for storage.</summary>
internal static partial class ActionValidator
{
    private static readonly HashSet<string> ContentTypes = ["text/plain", "text/css", "text/html", "application/javascript", "application/json"];

    /// <summary>Validated copies of <paramref name="actions"/>; forward actions always carry ForwardConfig.</summary>
    public static List<Elbv2Action> Actions(Elbv2Context ctx, string loadBalancerArn, List<Elbv2Action>? actions, string field)
    {
        if (actions is not { Count: > 0 })
        {
            throw Elbv2Errors.Validation($"{field}: at least one action is required.");
        }
        if (actions.Count > 1)
        {
            throw new Aws.Protocol.AwsException("TooManyActions", $"{field}: Berth supports one action per rule or listener (authentication actions, the only ones that combine, are not supported).");
        }
        var a = actions[0];
        var f = $"{field}.member.1";
        var result = new Elbv2Action { Type = a.Type, Order = a.Order ?? 1 };
        if (a.AuthenticateOidcConfig is not null || a.AuthenticateCognitoConfig is not null || a.JwtValidationConfig is not null
            || a.Type is "authenticate-oidc" or "authenticate-cognito" or "jwt-validation")
        {
            throw Elbv2Errors.Validation($"{f}.Type '{a.Type}': authentication actions are not supported by Berth.");
        }
        switch (a.Type)
        {
            case "forward":
                if (a.FixedResponseConfig is not null || a.RedirectConfig is not null)
                {
                    throw Elbv2Errors.Validation($"{f}: a forward action takes TargetGroupArn or ForwardConfig only.");
                }
                result.ForwardConfig = Forward(ctx, loadBalancerArn, a, f);
                result.TargetGroupArn = result.ForwardConfig.TargetGroups!.Count == 1 ? result.ForwardConfig.TargetGroups[0].TargetGroupArn : null;
                break;
            case "fixed-response":
                if (a.TargetGroupArn is not null || a.ForwardConfig is not null || a.RedirectConfig is not null)
                {
                    throw Elbv2Errors.Validation($"{f}: a fixed-response action takes FixedResponseConfig only.");
                }
                var fr = a.FixedResponseConfig ?? throw Elbv2Errors.Validation($"{f}.FixedResponseConfig is required for a fixed-response action.");
                if (fr.StatusCode is null)
                {
                    throw Elbv2Errors.Validation($"{f}.FixedResponseConfig.StatusCode is required.");
                }
                if (fr.ContentType is { } ctype && !ContentTypes.Contains(ctype))
                {
                    throw Elbv2Errors.Validation($"{f}.FixedResponseConfig.ContentType '{ctype}' must be one of: {string.Join(", ", ContentTypes)}.");
                }
                result.FixedResponseConfig = new FixedResponseActionConfig { StatusCode = fr.StatusCode, ContentType = fr.ContentType, MessageBody = fr.MessageBody };
                break;
            case "redirect":
                if (a.TargetGroupArn is not null || a.ForwardConfig is not null || a.FixedResponseConfig is not null)
                {
                    throw Elbv2Errors.Validation($"{f}: a redirect action takes RedirectConfig only.");
                }
                var rc = a.RedirectConfig ?? throw Elbv2Errors.Validation($"{f}.RedirectConfig is required for a redirect action.");
                if (rc.StatusCode is null)
                {
                    throw Elbv2Errors.Validation($"{f}.RedirectConfig.StatusCode is required.");
                }
                if (rc.Path is { } path && !path.StartsWith('/') && !path.StartsWith("#{path}", StringComparison.Ordinal))
                {
                    throw Elbv2Errors.Validation($"{f}.RedirectConfig.Path '{path}' must begin with '/'.");
                }
                if (rc.Port is { } port && port != "#{port}" && !(int.TryParse(port, out var p) && p is >= 1 and <= 65535))
                {
                    throw Elbv2Errors.Validation($"{f}.RedirectConfig.Port '{port}' must be #{{port}} or a port from 1 to 65535.");
                }
                result.RedirectConfig = new RedirectActionConfig
                {
                    Protocol = rc.Protocol ?? "#{protocol}",
                    Port = rc.Port ?? "#{port}",
                    Host = rc.Host ?? "#{host}",
                    Path = rc.Path ?? "/#{path}",
                    Query = rc.Query ?? "#{query}",
                    StatusCode = rc.StatusCode,
                };
                break;
            default:
                throw Elbv2Errors.Validation($"{f}.Type is required.");
        }
        return [result];
    }

    private static ForwardActionConfig Forward(Elbv2Context ctx, string loadBalancerArn, Elbv2Action a, string f)
    {
        var tuples = a.ForwardConfig?.TargetGroups;
        if (a.TargetGroupArn is { } single)
        {
            if (tuples is { Count: > 0 } && (tuples.Count != 1 || tuples[0].TargetGroupArn != single))
            {
                throw Elbv2Errors.Validation($"{f}: TargetGroupArn and ForwardConfig.TargetGroups name different target groups.");
            }
            tuples = [new TargetGroupTuple { TargetGroupArn = single, Weight = tuples is { Count: 1 } ? tuples[0].Weight : 1 }];
        }
        if (tuples is not { Count: > 0 })
        {
            throw Elbv2Errors.Validation($"{f}: a forward action needs TargetGroupArn or ForwardConfig.TargetGroups.");
        }
        if (tuples.Count > 5)
        {
            throw Elbv2Errors.Validation($"{f}.ForwardConfig.TargetGroups: at most 5 target groups.");
        }
        var result = new List<TargetGroupTuple>();
        for (var i = 0; i < tuples.Count; i++)
        {
            var t = tuples[i];
            var tf = $"{f}.ForwardConfig.TargetGroups.member.{i + 1}";
            var arn = t.TargetGroupArn ?? throw Elbv2Errors.Validation($"{tf}.TargetGroupArn is required.");
            ctx.RequireTargetGroup(arn);
            if (result.Any(x => x.TargetGroupArn == arn))
            {
                throw Elbv2Errors.Validation($"{tf}: target group '{arn}' is listed twice.");
            }
            if (t.Weight is { } w && w is < 0 or > 999)
            {
                throw Elbv2Errors.Validation($"{tf}.Weight must be from 0 to 999, not {w}.");
            }
            if (ctx.LoadBalancersUsing(arn).Any(lb => lb != loadBalancerArn))
            {
                throw Elbv2Errors.TargetGroupAssociationLimit(arn);
            }
            result.Add(new TargetGroupTuple { TargetGroupArn = arn, Weight = t.Weight ?? 1 });
        }
        var sticky = a.ForwardConfig?.TargetGroupStickinessConfig;
        if (sticky is { Enabled: true } && sticky.DurationSeconds is not (>= 1 and <= 604800))
        {
            throw Elbv2Errors.Validation($"{f}.ForwardConfig.TargetGroupStickinessConfig.DurationSeconds must be from 1 to 604800 when stickiness is enabled.");
        }
        return new ForwardActionConfig
        {
            TargetGroups = result,
            TargetGroupStickinessConfig = new TargetGroupStickinessConfig { Enabled = sticky?.Enabled ?? false, DurationSeconds = sticky?.Enabled == true ? sticky.DurationSeconds : null },
        };
    }

    /// <summary>Validated, normalised copies of a rule's conditions.</summary>
    public static List<RuleCondition> Conditions(List<RuleCondition>? conditions, string field)
    {
        if (conditions is not { Count: > 0 })
        {
            throw Elbv2Errors.Validation($"{field}: a rule needs at least one condition.");
        }
        var result = new List<RuleCondition>();
        var once = new HashSet<string>(StringComparer.Ordinal);
        var totalValues = 0;
        for (var i = 0; i < conditions.Count; i++)
        {
            var c = conditions[i];
            var f = $"{field}.member.{i + 1}";
            if (c.RegexValues is not null || c.HostHeaderConfig?.RegexValues is not null || c.PathPatternConfig?.RegexValues is not null || c.HttpHeaderConfig?.RegexValues is not null)
            {
                throw Elbv2Errors.Validation($"{f}: RegexValues are not supported by Berth; use Values with * and ? wildcards.");
            }
            var fieldName = c.Field ?? throw Elbv2Errors.Validation($"{f}.Field is required.");
            if (fieldName is "host-header" or "path-pattern" or "http-request-method" or "source-ip" && !once.Add(fieldName))
            {
                throw Elbv2Errors.Validation($"{f}: a rule can have only one {fieldName} condition.");
            }
            var configs = (c.HostHeaderConfig is null ? 0 : 1) + (c.PathPatternConfig is null ? 0 : 1) + (c.HttpHeaderConfig is null ? 0 : 1)
                + (c.HttpRequestMethodConfig is null ? 0 : 1) + (c.QueryStringConfig is null ? 0 : 1) + (c.SourceIpConfig is null ? 0 : 1);
            if (configs > 1)
            {
                throw Elbv2Errors.Validation($"{f}: a condition takes the one configuration its Field names.");
            }
            List<string> Plain(List<string>? config, string configName, int maxLength, Regex allowed)
            {
                if (c.Values is { Count: > 0 } && config is not null)
                {
                    throw Elbv2Errors.Validation($"{f}: specify Values or {configName}.Values, not both.");
                }
                var values = config ?? c.Values;
                if (values is not { Count: > 0 })
                {
                    throw Elbv2Errors.Validation($"{f}: {configName}.Values needs at least one value.");
                }
                foreach (var v in values)
                {
                    if (v.Length is 0 || v.Length > maxLength || !allowed.IsMatch(v))
                    {
                        throw Elbv2Errors.Validation($"{f}: '{v}' is not a valid {fieldName} value.");
                    }
                }
                return [.. values];
            }
            void NoPlainValues(string configName)
            {
                if (c.Values is { Count: > 0 })
                {
                    throw Elbv2Errors.Validation($"{f}: a {fieldName} condition takes {configName}, not Values.");
                }
            }
            var rc = new RuleCondition { Field = fieldName };
            switch (fieldName)
            {
                case "host-header":
                    if (c.HostHeaderConfig is null && configs > 0) { throw Elbv2Errors.Validation($"{f}: a host-header condition takes HostHeaderConfig."); }
                    rc.Values = Plain(c.HostHeaderConfig?.Values, "HostHeaderConfig", 128, HostChars());
                    rc.HostHeaderConfig = new HostHeaderConditionConfig { Values = [.. rc.Values] };
                    totalValues += rc.Values.Count;
                    break;
                case "path-pattern":
                    if (c.PathPatternConfig is null && configs > 0) { throw Elbv2Errors.Validation($"{f}: a path-pattern condition takes PathPatternConfig."); }
                    rc.Values = Plain(c.PathPatternConfig?.Values, "PathPatternConfig", 128, PathChars());
                    rc.PathPatternConfig = new PathPatternConditionConfig { Values = [.. rc.Values] };
                    totalValues += rc.Values.Count;
                    break;
                case "http-header":
                    {
                        NoPlainValues("HttpHeaderConfig");
                        var h = c.HttpHeaderConfig ?? throw Elbv2Errors.Validation($"{f}.HttpHeaderConfig is required for an http-header condition.");
                        var name = h.HttpHeaderName ?? throw Elbv2Errors.Validation($"{f}.HttpHeaderConfig.HttpHeaderName is required.");
                        if (name.Length > 40 || !TokenChars().IsMatch(name))
                        {
                            throw Elbv2Errors.Validation($"{f}.HttpHeaderConfig.HttpHeaderName '{name}' is not a valid header name.");
                        }
                        if (h.Values is not { Count: > 0 } || h.Values.Any(v => v.Length is 0 or > 128))
                        {
                            throw Elbv2Errors.Validation($"{f}.HttpHeaderConfig.Values needs 1 or more values of 1 to 128 characters.");
                        }
                        rc.HttpHeaderConfig = new HttpHeaderConditionConfig { HttpHeaderName = name, Values = [.. h.Values] };
                        totalValues += h.Values.Count;
                        break;
                    }
                case "http-request-method":
                    {
                        NoPlainValues("HttpRequestMethodConfig");
                        var m = c.HttpRequestMethodConfig ?? throw Elbv2Errors.Validation($"{f}.HttpRequestMethodConfig is required for an http-request-method condition.");
                        if (m.Values is not { Count: > 0 } || m.Values.Any(v => v.Length > 40 || !MethodChars().IsMatch(v)))
                        {
                            throw Elbv2Errors.Validation($"{f}.HttpRequestMethodConfig.Values must be method names of A-Z, '_' and '-' (up to 40 characters).");
                        }
                        rc.HttpRequestMethodConfig = new HttpRequestMethodConditionConfig { Values = [.. m.Values] };
                        totalValues += m.Values.Count;
                        break;
                    }
                case "query-string":
                    {
                        NoPlainValues("QueryStringConfig");
                        var q = c.QueryStringConfig ?? throw Elbv2Errors.Validation($"{f}.QueryStringConfig is required for a query-string condition.");
                        if (q.Values is not { Count: > 0 })
                        {
                            throw Elbv2Errors.Validation($"{f}.QueryStringConfig.Values needs at least one key/value pair.");
                        }
                        for (var k = 0; k < q.Values.Count; k++)
                        {
                            if (q.Values[k].Value is not { Length: > 0 and <= 128 } || q.Values[k].Key is { Length: > 128 })
                            {
                                throw Elbv2Errors.Validation($"{f}.QueryStringConfig.Values.member.{k + 1}.Value is required (1 to 128 characters).");
                            }
                        }
                        rc.QueryStringConfig = new QueryStringConditionConfig { Values = q.Values.Select(v => new QueryStringKeyValuePair { Key = v.Key, Value = v.Value }).ToList() };
                        totalValues += q.Values.Count;
                        break;
                    }
                case "source-ip":
                    {
                        NoPlainValues("SourceIpConfig");
                        var s = c.SourceIpConfig ?? throw Elbv2Errors.Validation($"{f}.SourceIpConfig is required for a source-ip condition.");
                        if (s.Values is not { Count: > 0 } || s.Values.Any(v => !IPNetwork.TryParse(v, out _)))
                        {
                            throw Elbv2Errors.Validation($"{f}.SourceIpConfig.Values must be CIDR blocks such as 10.0.0.0/8.");
                        }
                        rc.SourceIpConfig = new SourceIpConditionConfig { Values = [.. s.Values] };
                        totalValues += s.Values.Count;
                        break;
                    }
                default:
                    throw Elbv2Errors.Validation($"{f}.Field '{fieldName}' must be one of host-header, path-pattern, http-header, http-request-method, query-string, source-ip.");
            }
            result.Add(rc);
        }
        if (totalValues > 5)
        {
            throw Elbv2Errors.Validation($"{field}: a rule can have at most 5 condition values in all, not {totalValues}.");
        }
        return result;
    }

    [GeneratedRegex("^[A-Za-z0-9.*?-]+$")]
    private static partial Regex HostChars();

    [GeneratedRegex("^[A-Za-z0-9_\\-.$/~\"'@:+&*?]+$")]
    private static partial Regex PathChars();

    [GeneratedRegex("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")]
    private static partial Regex TokenChars();

    [GeneratedRegex("^[A-Z_-]+$")]
    private static partial Regex MethodChars();
}
