using Berth.Aws.Elbv2;
using Berth.LoadBalancer.State;

namespace Berth.UnitTests.LoadBalancer;

public sealed class Elbv2IndexTests
{
    private const string Lb1 = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/00000000000000a1";
    private const string Lb2 = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/api/00000000000000a2";
    private const string L1 = "arn:aws:elasticloadbalancing:us-east-1:000000000000:listener/app/web/00000000000000a1/00000000000000b1";
    private const string L2 = "arn:aws:elasticloadbalancing:us-east-1:000000000000:listener/app/api/00000000000000a2/00000000000000b2";
    private const string Tg1 = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/one/00000000000000c1";
    private const string Tg2 = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/two/00000000000000c2";

    private static Elbv2Action Forward(params string[] tgs) => tgs.Length == 1
        ? new Elbv2Action { Type = "forward", TargetGroupArn = tgs[0] }
        : new Elbv2Action { Type = "forward", ForwardConfig = new ForwardActionConfig { TargetGroups = tgs.Select(t => new TargetGroupTuple { TargetGroupArn = t }).ToList() } };

    private static StoredListener Listener(string arn, string lb, int port, params Elbv2Action[] actions)
        => new() { Listener = new Listener { ListenerArn = arn, LoadBalancerArn = lb, Port = port, DefaultActions = [.. actions] } };

    private static StoredRule Rule(string listenerArn, string priority, params Elbv2Action[] actions)
        => new() { ListenerArn = listenerArn, Rule = new Rule { Priority = priority, Actions = [.. actions] } };

    [Fact]
    public void LoadBalancerOfListener_ReadsTheArn()
        => Assert.Equal(Lb1, Elbv2Index.LoadBalancerOfListener(L1));

    [Fact]
    public void Usage_FollowsListenersAndRules_ThroughUpdatesAndDeletes()
    {
        var index = new Elbv2Index();
        index.ApplyListener("b1", null, Listener(L1, Lb1, 8080, Forward(Tg1)));
        Assert.Equal([Lb1], index.LoadBalancersUsing(Tg1));
        Assert.False(index.InUse(Tg2));

        // A rule on another load balancer's listener, loaded before that listener: still attributed by the ARN.
        index.ApplyRule("r1", null, Rule(L2, "10", Forward(Tg1, Tg2)));
        Assert.Equal([Lb2, Lb1], index.LoadBalancersUsing(Tg1));
        Assert.Equal([Lb2], index.LoadBalancersUsing(Tg2));
        Assert.Equal(["r1"], index.RulesOf(L2));

        // The listener's default action moves to Tg2: Tg1 is now used through the rule only.
        index.ApplyListener("b1", Listener(L1, Lb1, 8080, Forward(Tg1)), Listener(L1, Lb1, 8080, Forward(Tg2)));
        Assert.Equal([Lb2], index.LoadBalancersUsing(Tg1));
        Assert.Equal([Lb2, Lb1], index.LoadBalancersUsing(Tg2));

        index.ApplyRule("r1", Rule(L2, "10", Forward(Tg1, Tg2)), null);
        Assert.False(index.InUse(Tg1));
        Assert.Empty(index.RulesOf(L2));
        Assert.Equal([Lb1], index.LoadBalancersUsing(Tg2));

        index.ApplyListener("b1", Listener(L1, Lb1, 8080, Forward(Tg2)), null);
        Assert.False(index.InUse(Tg2));
        Assert.Empty(index.ListenersOf(Lb1));
        Assert.Null(index.ListenerOnPort(8080));
    }

    [Fact]
    public void TwoSourcesOnOneGroup_KeepItInUseUntilBothGo()
    {
        var index = new Elbv2Index();
        index.ApplyListener("b1", null, Listener(L1, Lb1, 8080, Forward(Tg1)));
        index.ApplyRule("r1", null, Rule(L1, "1", Forward(Tg1)));
        Assert.Equal([Lb1], index.LoadBalancersUsing(Tg1));
        index.ApplyListener("b1", Listener(L1, Lb1, 8080, Forward(Tg1)), null);
        Assert.True(index.InUse(Tg1));
        index.ApplyRule("r1", Rule(L1, "1", Forward(Tg1)), null);
        Assert.False(index.InUse(Tg1));
    }

    [Fact]
    public void Names_And_Ports_FollowRenamesAndDeletes()
    {
        var index = new Elbv2Index();
        var one = new StoredTargetGroup { TargetGroup = new TargetGroup { TargetGroupName = "one", TargetGroupArn = Tg1 } };
        index.ApplyTargetGroup("c1", null, one);
        Assert.Equal("c1", index.TargetGroupNamed("one"));
        index.ApplyTargetGroup("c1", one, null);
        Assert.Null(index.TargetGroupNamed("one"));

        var lb = new StoredLoadBalancer { LoadBalancer = new Berth.Aws.Elbv2.LoadBalancer { LoadBalancerName = "web", LoadBalancerArn = Lb1 } };
        index.ApplyLoadBalancer("a1", null, lb);
        Assert.Equal("a1", index.LoadBalancerNamed("web"));

        index.ApplyListener("b1", null, Listener(L1, Lb1, 8080, Forward(Tg1)));
        index.ApplyListener("b1", Listener(L1, Lb1, 8080, Forward(Tg1)), Listener(L1, Lb1, 9090, Forward(Tg1)));
        Assert.Null(index.ListenerOnPort(8080));
        Assert.Equal("b1", index.ListenerOnPort(9090));
        Assert.Equal(["b1"], index.ListenersOf(Lb1));
    }
}
