using System.Net;
using Berth.Aws.Elbv2;
using Berth.LoadBalancer.DataPlane;
using Microsoft.AspNetCore.Http;

namespace Berth.UnitTests.LoadBalancer;

public sealed class RuleMatcherTests
{
    private static HttpRequest Request(string path = "/", string host = "example.com", string method = "GET", string query = "", params (string, string)[] headers)
    {
        var ctx = new DefaultHttpContext();
        ctx.Request.Path = path;
        ctx.Request.Host = new HostString(host);
        ctx.Request.Method = method;
        ctx.Request.QueryString = new QueryString(query);
        foreach (var (k, v) in headers)
        {
            ctx.Request.Headers[k] = v;
        }
        return ctx.Request;
    }

    private static bool Match(RuleCondition c, HttpRequest r, string ip = "10.1.2.3") => RuleMatcher.Compile([c])(new HttpRuleInput(r, IPAddress.Parse(ip)));

    [Theory]
    [InlineData("/api/*", "/api/users", true)]
    [InlineData("/api/*", "/api", false)]
    [InlineData("/img/?.png", "/img/a.png", true)]
    [InlineData("/img/?.png", "/img/ab.png", false)]
    [InlineData("/API/*", "/api/x", false)]
    [InlineData("*", "/", true)]
    public void PathPattern_Wildcards_CaseSensitive(string pattern, string path, bool expected)
        => Assert.Equal(expected, Match(new RuleCondition { Field = "path-pattern", Values = [pattern] }, Request(path)));

    [Theory]
    [InlineData("*.example.com", "API.Example.com", true)]
    [InlineData("*.example.com", "example.com", false)]
    [InlineData("api.example.com", "api.example.com:8080", true)]
    public void HostHeader_Wildcards_CaseInsensitive_PortIgnored(string pattern, string host, bool expected)
        => Assert.Equal(expected, Match(new RuleCondition { Field = "host-header", HostHeaderConfig = new HostHeaderConditionConfig { Values = [pattern] } }, Request(host: host)));

    [Fact]
    public void HttpHeader_MatchesAnyValueCaseInsensitively()
    {
        var c = new RuleCondition { Field = "http-header", HttpHeaderConfig = new HttpHeaderConditionConfig { HttpHeaderName = "User-Agent", Values = ["*mobile*"] } };
        Assert.True(Match(c, Request(headers: ("user-agent", "Some Mobile Browser"))));
        Assert.False(Match(c, Request(headers: ("user-agent", "desktop"))));
        Assert.False(Match(c, Request()));
    }

    [Fact]
    public void Method_IsExactAndCaseSensitive()
    {
        var c = new RuleCondition { Field = "http-request-method", HttpRequestMethodConfig = new HttpRequestMethodConditionConfig { Values = ["POST"] } };
        Assert.True(Match(c, Request(method: "POST")));
        Assert.False(Match(c, Request(method: "GET")));
    }

    [Theory]
    [InlineData("?version=v2", true)]
    [InlineData("?Version=V2&x=1", true)]
    [InlineData("?version=v1", false)]
    [InlineData("", false)]
    public void QueryString_KeyAndValue(string query, bool expected)
    {
        var c = new RuleCondition { Field = "query-string", QueryStringConfig = new QueryStringConditionConfig { Values = [new QueryStringKeyValuePair { Key = "version", Value = "v2" }] } };
        Assert.Equal(expected, Match(c, Request(query: query)));
    }

    [Fact]
    public void QueryString_WithoutKey_MatchesAnyParameterValue()
    {
        var c = new RuleCondition { Field = "query-string", QueryStringConfig = new QueryStringConditionConfig { Values = [new QueryStringKeyValuePair { Value = "blue*" }] } };
        Assert.True(Match(c, Request(query: "?color=bluegreen")));
    }

    [Theory]
    [InlineData("10.0.0.0/8", "10.1.2.3", true)]
    [InlineData("192.168.0.0/16", "10.1.2.3", false)]
    [InlineData("127.0.0.1/32", "::ffff:127.0.0.1", true)]
    public void SourceIp_Cidr(string cidr, string ip, bool expected)
        => Assert.Equal(expected, Match(new RuleCondition { Field = "source-ip", SourceIpConfig = new SourceIpConditionConfig { Values = [cidr] } }, Request(), ip));

    [Fact]
    public void Conditions_AllMustHold()
    {
        var match = RuleMatcher.Compile([
            new RuleCondition { Field = "path-pattern", Values = ["/api/*"] },
            new RuleCondition { Field = "host-header", Values = ["api.*"] },
        ]);
        Assert.True(match(new HttpRuleInput(Request("/api/x", "api.local"), null)));
        Assert.False(match(new HttpRuleInput(Request("/api/x", "www.local"), null)));
    }

    [Fact]
    public void ListenerRoute_Match_TakesFirstByPriorityElseDefault()
    {
        var forward = new Elbv2Action { Type = "fixed-response" };
        var route = new ListenerRoute("l", "lb", 80, TimeSpan.FromSeconds(60), [
            new CompiledRule("1", RuleMatcher.Compile([new RuleCondition { Field = "path-pattern", Values = ["/a*"] }]), forward, new HashSet<string> { "path-pattern" }),
            new CompiledRule("2", RuleMatcher.Compile([new RuleCondition { Field = "path-pattern", Values = ["/ab*"] }]), forward, new HashSet<string> { "path-pattern" }),
            new CompiledRule("default", RuleMatcher.Always, forward, new HashSet<string>()),
        ]);
        Assert.Equal("1", route.Match(Request("/abc"), null).Priority);
        Assert.Equal("default", route.Match(Request("/x"), null).Priority);
    }
}

public sealed class HttpCodeMatcherTests
{
    [Theory]
    [InlineData("200", 200, true)]
    [InlineData("200", 201, false)]
    [InlineData("200,202", 202, true)]
    [InlineData("200-299", 250, true)]
    [InlineData("200-299", 301, false)]
    public void Matches(string spec, int code, bool expected) => Assert.Equal(expected, HttpCodeMatcher.TryParse(spec)!.Matches(code));

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("100")]
    [InlineData("299-200")]
    [InlineData("200-500")]
    public void TryParse_Invalid_ReturnsNull(string spec) => Assert.Null(HttpCodeMatcher.TryParse(spec));
}

public sealed class TargetHealthBookTests
{
    private readonly Registry.ManualTime _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public void NewTarget_OnePassingCheck_IsHealthy()
    {
        var book = new TargetHealthBook(_time);
        book.Registered("tg", "10.0.0.1:80");
        Assert.Equal(TargetHealthStates.Initial, book.Find("tg", "10.0.0.1:80", inUse: true)!.State);
        Assert.Equal(TargetHealthStates.InitialHealthChecking, book.Find("tg", "10.0.0.1:80", inUse: true)!.Reason);
        Assert.Equal(TargetHealthStates.Healthy, book.RecordProbe("tg", "10.0.0.1:80", true, null, null, 5, 2));
    }

    [Fact]
    public void HealthyTarget_UnhealthyAfterThreshold_BackAfterHealthyThreshold()
    {
        var book = new TargetHealthBook(_time);
        book.Registered("tg", "t");
        book.RecordProbe("tg", "t", true, null, null, 3, 2);
        Assert.Equal(TargetHealthStates.Healthy, book.RecordProbe("tg", "t", false, TargetHealthStates.ResponseCodeMismatch, "codes: [500]", 3, 2));
        Assert.Equal(TargetHealthStates.Unhealthy, book.RecordProbe("tg", "t", false, TargetHealthStates.ResponseCodeMismatch, "codes: [500]", 3, 2));
        Assert.Equal(TargetHealthStates.ResponseCodeMismatch, book.Find("tg", "t", true)!.Reason);
        Assert.Equal(TargetHealthStates.Unhealthy, book.RecordProbe("tg", "t", true, null, null, 3, 2));
        Assert.Equal(TargetHealthStates.Unhealthy, book.RecordProbe("tg", "t", true, null, null, 3, 2));
        Assert.Equal(TargetHealthStates.Healthy, book.RecordProbe("tg", "t", true, null, null, 3, 2));
    }

    [Fact]
    public void NotInUse_ReportsUnusedNotInUse()
    {
        var book = new TargetHealthBook(_time);
        book.Registered("tg", "t");
        Assert.Equal((TargetHealthStates.Unused, TargetHealthStates.NotInUse), (book.Find("tg", "t", false)!.State, book.Find("tg", "t", false)!.Reason));
    }

    [Fact]
    public void Deregistered_DrainsUntilTheDelay_AndIgnoresProbes()
    {
        var book = new TargetHealthBook(_time);
        book.Registered("tg", "t");
        book.Deregistered("tg", "t", TimeSpan.FromSeconds(30));
        Assert.Equal(TargetHealthStates.Draining, book.RecordProbe("tg", "t", true, null, null, 5, 2));
        var (key, until) = Assert.Single(book.Draining("tg"));
        Assert.Equal(("t", _time.GetUtcNow() + TimeSpan.FromSeconds(30)), (key, until));
        book.Registered("tg", "t");
        Assert.Equal(TargetHealthStates.Initial, book.Find("tg", "t", true)!.State);
    }
}

public sealed class RedirectTests
{
    [Fact]
    public void RedirectLocation_FillsPlaceholders_AndDropsDefaultPort()
    {
        var ctx = new DefaultHttpContext();
        ctx.Request.Path = "/a/b";
        ctx.Request.Host = new HostString("shop.localhost", 8080);
        ctx.Request.QueryString = new QueryString("?x=1");
        var https = new RedirectActionConfig { Protocol = "HTTPS", Port = "443", Host = "#{host}", Path = "/#{path}", Query = "#{query}", StatusCode = "HTTP_301" };
        Assert.Equal("https://shop.localhost/a/b?x=1", RuleMiddleware.RedirectLocation(ctx.Request, https, 8080));
        var samePort = new RedirectActionConfig { Protocol = "#{protocol}", Port = "#{port}", Host = "new.localhost", Path = "/new/#{path}", Query = "", StatusCode = "HTTP_302" };
        Assert.Equal("http://new.localhost:8080/new/a/b", RuleMiddleware.RedirectLocation(ctx.Request, samePort, 8080));
    }
}

public sealed class AlbHealthCheckPolicyTests
{
    private static readonly HttpCodeMatcher Ok = HttpCodeMatcher.TryParse("200-299")!;
    private static readonly Yarp.ReverseProxy.Model.DestinationState Destination = new("10.0.0.1:80");

    [Fact]
    public void Judge_MatchingStatus_Passes()
    {
        using var response = new HttpResponseMessage(System.Net.HttpStatusCode.NoContent);
        Assert.True(AlbHealthCheckPolicy.Judge(new Yarp.ReverseProxy.Health.DestinationProbingResult(Destination, response, null), Ok).Passed);
    }

    [Fact]
    public void Judge_OtherStatus_IsResponseCodeMismatchNamingTheCode()
    {
        using var response = new HttpResponseMessage(System.Net.HttpStatusCode.InternalServerError);
        var (passed, reason, description) = AlbHealthCheckPolicy.Judge(new Yarp.ReverseProxy.Health.DestinationProbingResult(Destination, response, null), Ok);
        Assert.Equal((false, TargetHealthStates.ResponseCodeMismatch), (passed, reason));
        Assert.Contains("[500]", description, StringComparison.Ordinal);
    }

    [Fact]
    public void Judge_Timeout_IsTargetTimeout_ConnectionFailure_IsFailedHealthChecks()
    {
        Assert.Equal(TargetHealthStates.Timeout, AlbHealthCheckPolicy.Judge(new Yarp.ReverseProxy.Health.DestinationProbingResult(Destination, null, new TaskCanceledException()), Ok).Reason);
        Assert.Equal(TargetHealthStates.FailedHealthChecks, AlbHealthCheckPolicy.Judge(new Yarp.ReverseProxy.Health.DestinationProbingResult(Destination, null, new HttpRequestException("refused")), Ok).Reason);
    }
}

public sealed class SlowStartTests
{
    private readonly Registry.ManualTime _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Weights_NewlyHealthyTarget_GrowsLinearlyToFull()
    {
        var book = new TargetHealthBook(_time);
        book.Registered("tg", "old");
        book.RecordProbe("tg", "old", true, null, null, 5, 2);
        _time.Advance(TimeSpan.FromMinutes(10));
        book.Registered("tg", "new");
        book.RecordProbe("tg", "new", true, null, null, 5, 2, slowStart: true);
        var policy = new SlowStartRoundRobinPolicy(book, _time, new Random(1));
        Yarp.ReverseProxy.Model.DestinationState[] dests = [new("old"), new("new")];

        _time.Advance(TimeSpan.FromSeconds(15));
        Assert.Equal([1.0, 0.25], policy.Weights("tg", dests, TimeSpan.FromSeconds(60))!);
        _time.Advance(TimeSpan.FromSeconds(45));
        Assert.Null(policy.Weights("tg", dests, TimeSpan.FromSeconds(60)));
        Assert.Null(policy.Weights("tg", dests, TimeSpan.Zero));
    }
}
