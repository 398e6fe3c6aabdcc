using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>A berth server holding one load balancer, listener, two rules and two target groups to corrupt.</summary>
public sealed class BadInputFixture : IAsyncLifetime
{
    public BerthServer Server { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };
    public Dictionary<string, string> Values { get; } = [];

    public async ValueTask InitializeAsync()
    {
        Server = await BerthServer.StartAsync("server");
        var elb = new Elbv2Cli(new AwsCli(Server.Endpoint));
        var (lb, _) = await elb.CreateLoadBalancerAsync("bad-input");
        var tg = await elb.CreateTargetGroupAsync("bad-input-used");
        var free = await elb.CreateTargetGroupAsync("bad-input-free");
        await elb.RunAsync("register-targets", "--target-group-arn", free, "--targets", "Id=10.0.0.1,Port=8080");
        var port = BerthServer.FreePort();
        var listener = await elb.CreateListenerAsync(lb, port, $"Type=forward,TargetGroupArn={tg}");
        var rule1 = await elb.TextAsync("Rules[0].RuleArn", "create-rule", "--listener-arn", listener, "--priority", "1", "--conditions", "Field=path-pattern,Values=/a*", "--actions", $"Type=forward,TargetGroupArn={tg}");
        await elb.RunAsync("create-rule", "--listener-arn", listener, "--priority", "2", "--conditions", "Field=path-pattern,Values=/b*", "--actions", $"Type=forward,TargetGroupArn={tg}");
        var defaultRule = await elb.TextAsync("Rules[?IsDefault].RuleArn | [0]", "describe-rules", "--listener-arn", listener);
        Values["lb"] = lb;
        Values["tg"] = tg;
        Values["free"] = free;
        Values["listener"] = listener;
        Values["port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Values["rule"] = rule1;
        Values["defaultRule"] = defaultRule;
        Values["missingLb"] = lb[..lb.LastIndexOf('/')] + "/0123456789abcdef";
        Values["missingTg"] = tg[..tg.LastIndexOf('/')] + "/0123456789abcdef";
        Values["missingListener"] = listener[..listener.LastIndexOf('/')] + "/0123456789abcdef";
        Values["missingRule"] = rule1[..rule1.LastIndexOf('/')] + "/0123456789abcdef";
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }

    public string Fill(string form) => Regex.Replace(form, "\\{(\\w+)\\}", m => Uri.EscapeDataString(Values[m.Groups[1].Value]));

    public async Task<(int Status, string Body)> PostAsync(string form)
    {
        using var content = new StringContent(form, Encoding.UTF8, "application/x-www-form-urlencoded");
        using var r = await Http.PostAsync(Server.Endpoint + "/", content);
        return ((int)r.StatusCode, await r.Content.ReadAsStringAsync());
    }

    /// <summary>Everything the API can show about the fixture's resources, request ids and health states left out.</summary>
    public async Task<string> SnapshotAsync()
    {
        var sb = new StringBuilder();
        foreach (var form in new[]
        {
            "Action=DescribeLoadBalancers", "Action=DescribeTargetGroups", "Action=DescribeListeners&LoadBalancerArn={lb}",
            "Action=DescribeRules&ListenerArn={listener}", "Action=DescribeLoadBalancerAttributes&LoadBalancerArn={lb}",
            "Action=DescribeTargetGroupAttributes&TargetGroupArn={free}", "Action=DescribeTags&ResourceArns.member.1={lb}&ResourceArns.member.2={tg}",
            "Action=DescribeTargetHealth&TargetGroupArn={free}",
        })
        {
            var (status, body) = await PostAsync(Fill(form) + "&Version=2015-12-01");
            Assert.Equal(200, status);
            sb.AppendLine(Regex.Replace(body, "<RequestId>[^<]*</RequestId>|<TargetHealth>.*?</TargetHealth>", ""));
        }
        return sb.ToString();
    }
}

/// <summary>
/// The ELBv2 bad-input table: each malformed or impossible request answers the model's HTTP status and
/// error code in an &lt;ErrorResponse&gt;, names the offending field, and leaves the state as it was.
/// </summary>
public sealed class Elbv2BadInputTests(BadInputFixture fx) : IClassFixture<BadInputFixture>
{
    // (form without Version unless it tests Version, status, code, text the message must contain)
    public static TheoryData<string, int, string, string> Cases => new()
    {
        { "Version=2015-12-01", 400, "MissingAction", "Action" },
        { "Action=FlyToMoon&Version=2015-12-01", 400, "InvalidAction", "FlyToMoon" },
        { "Action=DescribeLoadBalancers&Version=1999-01-01", 400, "InvalidAction", "1999-01-01" },
        { "Action=DescribeLoadBalancers", 400, "MissingParameter", "Version" },
        { "Action=CreateTrustStore&Version=2015-12-01&Name=x&CaCertificatesBundleS3Bucket=b&CaCertificatesBundleS3Key=k", 400, "UnsupportedOperation", "CreateTrustStore" },
        { "Action=CreateLoadBalancer", 400, "ValidationError", "Name" },
        { "Action=CreateLoadBalancer&Name=-bad", 400, "ValidationError", "Name" },
        { "Action=CreateLoadBalancer&Name=internal-lb", 400, "ValidationError", "internal-" },
        { "Action=CreateLoadBalancer&Name=ok&Type=network", 400, "ValidationError", "Type" },
        { "Action=CreateLoadBalancer&Name=ok&Scheme=public", 400, "ValidationError", "Scheme" },
        { "Action=CreateLoadBalancer&Name=ok&Subnets.member.1=subnet-zz", 400, "InvalidSubnet", "Subnets.member.1" },
        { "Action=CreateLoadBalancer&Name=ok&SecurityGroups.member.1=sg-1", 400, "InvalidSecurityGroup", "SecurityGroups.member.1" },
        { "Action=CreateLoadBalancer&Name=ok&IpAddressType=dualstack", 400, "ValidationError", "IpAddressType" },
        { "Action=CreateLoadBalancer&Name=ok&Bogus=1", 400, "ValidationError", "Bogus" },
        { "Action=CreateLoadBalancer&Name=ok&Tags.member.1.Key=aws:x&Tags.member.1.Value=v", 400, "ValidationError", "aws:" },
        { "Action=CreateLoadBalancer&Name=bad-input&Subnets.member.1=subnet-99999999", 400, "DuplicateLoadBalancerName", "bad-input" },
        { "Action=DescribeLoadBalancers&Names.member.1=nope", 400, "LoadBalancerNotFound", "nope" },
        { "Action=DescribeLoadBalancers&PageSize=0", 400, "ValidationError", "PageSize" },
        { "Action=DescribeLoadBalancers&PageSize=ten", 400, "ValidationError", "PageSize" },
        { "Action=DescribeLoadBalancers&Marker=garbage", 400, "ValidationError", "Marker" },
        { "Action=DescribeLoadBalancers&Names.member.0=x", 400, "ValidationError", "Names.member.N" },
        { "Action=DeleteLoadBalancer&LoadBalancerArn={missingLb}", 400, "LoadBalancerNotFound", "0123456789abcdef" },
        { "Action=ModifyLoadBalancerAttributes&LoadBalancerArn={lb}&Attributes.member.1.Key=idle_timeout.timeout_seconds&Attributes.member.1.Value=0", 400, "ValidationError", "idle_timeout.timeout_seconds" },
        { "Action=ModifyLoadBalancerAttributes&LoadBalancerArn={lb}&Attributes.member.1.Key=no.such.key&Attributes.member.1.Value=1", 400, "ValidationError", "no.such.key" },
        { "Action=CreateTargetGroup&Name=tg-x&Protocol=TCP&Port=80&VpcId=vpc-0a1b2c3d", 400, "ValidationError", "Protocol" },
        { "Action=CreateTargetGroup&Name=tg-x&Protocol=HTTP&Port=80", 400, "ValidationError", "VpcId" },
        { "Action=CreateTargetGroup&Name=tg-x&Protocol=HTTP&Port=80&VpcId=vpc-0a1b2c3d&HealthCheckIntervalSeconds=3", 400, "ValidationError", "HealthCheckIntervalSeconds" },
        { "Action=CreateTargetGroup&Name=tg-x&Protocol=HTTP&Port=80&VpcId=vpc-0a1b2c3d&HealthCheckIntervalSeconds=10&HealthCheckTimeoutSeconds=10", 400, "ValidationError", "HealthCheckTimeoutSeconds" },
        { "Action=CreateTargetGroup&Name=tg-x&Protocol=HTTP&Port=80&VpcId=vpc-0a1b2c3d&Matcher.HttpCode=600", 400, "ValidationError", "Matcher.HttpCode" },
        { "Action=CreateTargetGroup&Name=tg-x&Protocol=HTTP&Port=0&VpcId=vpc-0a1b2c3d", 400, "ValidationError", "Port" },
        { "Action=CreateTargetGroup&Name=bad-input-used&Protocol=HTTP&Port=81&VpcId=vpc-0a1b2c3d", 400, "DuplicateTargetGroupName", "bad-input-used" },
        { "Action=DeleteTargetGroup&TargetGroupArn={tg}", 400, "ResourceInUse", "in use" },
        { "Action=DeleteTargetGroup&TargetGroupArn={missingTg}", 400, "TargetGroupNotFound", "0123456789abcdef" },
        { "Action=RegisterTargets&TargetGroupArn={free}&Targets.member.1.Id=not-an-ip", 400, "InvalidTarget", "not-an-ip" },
        { "Action=RegisterTargets&TargetGroupArn={free}&Targets.member.1.Id=10.0.0.2&Targets.member.1.Port=70000", 400, "ValidationError", "Targets.member.1.Port" },
        { "Action=RegisterTargets&TargetGroupArn={free}", 400, "ValidationError", "Targets" },
        { "Action=DeregisterTargets&TargetGroupArn={free}&Targets.member.1.Id=10.9.9.9", 400, "InvalidTarget", "10.9.9.9" },
        { "Action=ModifyTargetGroupAttributes&TargetGroupArn={free}&Attributes.member.1.Key=deregistration_delay.timeout_seconds&Attributes.member.1.Value=4000", 400, "ValidationError", "deregistration_delay.timeout_seconds" },
        { "Action=ModifyTargetGroupAttributes&TargetGroupArn={free}&Attributes.member.1.Key=stickiness.type&Attributes.member.1.Value=app_cookie", 400, "ValidationError", "stickiness.type" },
        { "Action=ModifyTargetGroupAttributes&TargetGroupArn={free}&Attributes.member.1.Key=slow_start.duration_seconds&Attributes.member.1.Value=10", 400, "ValidationError", "slow_start.duration_seconds" },
        { "Action=ModifyTargetGroupAttributes&TargetGroupArn={free}&Attributes.member.1.Key=slow_start.duration_seconds&Attributes.member.1.Value=30&Attributes.member.2.Key=load_balancing.algorithm.type&Attributes.member.2.Value=least_outstanding_requests", 400, "ValidationError", "least_outstanding_requests" },
        { "Action=CreateListener&LoadBalancerArn={lb}&Protocol=HTTP&Port={port}&DefaultActions.member.1.Type=fixed-response&DefaultActions.member.1.FixedResponseConfig.StatusCode=200", 400, "DuplicateListener", "port" },
        { "Action=CreateListener&LoadBalancerArn={lb}&Protocol=HTTPS&Port=1&DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn={tg}", 400, "ValidationError", "HTTPS" },
        { "Action=CreateListener&LoadBalancerArn={lb}&Protocol=HTTP&Port=2&DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn={missingTg}", 400, "TargetGroupNotFound", "0123456789abcdef" },
        { "Action=CreateListener&LoadBalancerArn={lb}&Protocol=HTTP&Port=3&DefaultActions.member.1.Type=fixed-response&DefaultActions.member.1.FixedResponseConfig.StatusCode=700", 400, "ValidationError", "StatusCode" },
        { "Action=CreateListener&LoadBalancerArn={missingLb}&Protocol=HTTP&Port=4&DefaultActions.member.1.Type=fixed-response&DefaultActions.member.1.FixedResponseConfig.StatusCode=200", 400, "LoadBalancerNotFound", "0123456789abcdef" },
        { "Action=DescribeListeners", 400, "ValidationError", "LoadBalancerArn" },
        { "Action=CreateRule&ListenerArn={listener}&Priority=1&Conditions.member.1.Field=path-pattern&Conditions.member.1.Values.member.1=/z&Actions.member.1.Type=forward&Actions.member.1.TargetGroupArn={tg}", 400, "PriorityInUse", "1" },
        { "Action=CreateRule&ListenerArn={listener}&Priority=0&Conditions.member.1.Field=path-pattern&Conditions.member.1.Values.member.1=/z&Actions.member.1.Type=forward&Actions.member.1.TargetGroupArn={tg}", 400, "ValidationError", "Priority" },
        { "Action=CreateRule&ListenerArn={listener}&Priority=9&Conditions.member.1.Field=cookie&Conditions.member.1.Values.member.1=x&Actions.member.1.Type=forward&Actions.member.1.TargetGroupArn={tg}", 400, "ValidationError", "Conditions.member.1.Field" },
        { "Action=CreateRule&ListenerArn={listener}&Priority=9&Conditions.member.1.Field=path-pattern&Conditions.member.1.Values.member.1=/1&Conditions.member.1.Values.member.2=/2&Conditions.member.1.Values.member.3=/3&Conditions.member.1.Values.member.4=/4&Conditions.member.1.Values.member.5=/5&Conditions.member.1.Values.member.6=/6&Actions.member.1.Type=forward&Actions.member.1.TargetGroupArn={tg}", 400, "ValidationError", "5 condition values" },
        { "Action=CreateRule&ListenerArn={missingListener}&Priority=9&Conditions.member.1.Field=path-pattern&Conditions.member.1.Values.member.1=/z&Actions.member.1.Type=forward&Actions.member.1.TargetGroupArn={tg}", 400, "ListenerNotFound", "0123456789abcdef" },
        { "Action=CreateRule&ListenerArn={listener}&Priority=9&Conditions.member.1.Field=path-pattern&Conditions.member.1.Values.member.1=/z&Actions.member.1.Type=authenticate-oidc", 400, "ValidationError", "authenticate-oidc" },
        { "Action=DeleteRule&RuleArn={defaultRule}", 400, "OperationNotPermitted", "default rule" },
        { "Action=DeleteRule&RuleArn={missingRule}", 400, "RuleNotFound", "0123456789abcdef" },
        { "Action=SetRulePriorities&RulePriorities.member.1.RuleArn={rule}&RulePriorities.member.1.Priority=2", 400, "PriorityInUse", "2" },
        { "Action=AddTags&ResourceArns.member.1={lb}&Tags.member.1.Key=k&Tags.member.2.Key=k", 400, "DuplicateTagKeys", "k" },
        { "Action=DescribeTags&ResourceArns.member.1={missingLb}", 400, "LoadBalancerNotFound", "0123456789abcdef" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadInput_AnswersModelError_AndChangesNothing(string form, int status, string code, string mentions)
    {
        var before = await fx.SnapshotAsync();
        var body = fx.Fill(form);
        if (!body.Contains("Version=", StringComparison.Ordinal) && body.StartsWith("Action=", StringComparison.Ordinal) && !form.Equals("Action=DescribeLoadBalancers", StringComparison.Ordinal))
        {
            body += "&Version=2015-12-01";
        }
        var (actual, xml) = await fx.PostAsync(body);
        Assert.True(actual == status, $"{form}: HTTP {actual}\n{xml}");
        var doc = XDocument.Parse(xml);
        XNamespace ns = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
        var error = doc.Root!.Element(ns + "Error");
        Assert.True(error is not null && doc.Root.Name == ns + "ErrorResponse", xml);
        Assert.Equal("Sender", error.Element(ns + "Type")!.Value);
        Assert.Equal(code, error.Element(ns + "Code")!.Value);
        Assert.Contains(mentions, error.Element(ns + "Message")!.Value, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await fx.SnapshotAsync());
    }

    [Fact]
    public async Task AwsCli_ShowsTheErrorCode()
    {
        var r = await new AwsCli(fx.Server.Endpoint).TryRunAsync("elbv2", "describe-load-balancers", "--names", "no-such-lb");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("(LoadBalancerNotFound)", r.Stderr, StringComparison.Ordinal);
    }
}
