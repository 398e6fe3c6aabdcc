using Berth.Scheduling;

namespace Berth.UnitTests.Scheduling;

public sealed class QueryExpressionTests
{
    private static readonly InstanceCandidate Instance = new()
    {
        Arn = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/abc",
        CpuAvailable = 1024,
        MemoryAvailable = 1024,
        Attributes = new Dictionary<string, string>
        {
            ["ecs.os-type"] = "linux",
            ["ecs.instance-type"] = "t2.small",
            ["ecs.availability-zone"] = "us-east-1a",
            ["zone"] = "a",
            ["disk"] = "120",
        },
        Ec2InstanceId = "i-abcd1234",
        AgentConnected = true,
        AgentVersion = "1.14.5",
        RegisteredAt = new DateTimeOffset(2018, 6, 18, 22, 28, 28, TimeSpan.Zero),
        RunningTasksCount = 3,
        TaskCount = 4,
        GroupCounts = new Dictionary<string, int> { ["service:production"] = 2, ["family:web"] = 1 },
    };

    [Theory]
    // attributes: every operator
    [InlineData("attribute:ecs.os-type == linux", true)]
    [InlineData("attribute:ecs.os-type equals linux", true)]
    [InlineData("attribute:ecs.os-type != linux", false)]
    [InlineData("attribute:ecs.os-type not_equals windows", true)]
    [InlineData("attribute:missing != x", true)]
    [InlineData("attribute:missing == x", false)]
    [InlineData("attribute:zone exists", true)]
    [InlineData("attribute:missing exists", false)]
    [InlineData("attribute:missing !exists", true)]
    [InlineData("attribute:zone not_exists", false)]
    [InlineData("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]", true)]
    [InlineData("attribute:ecs.availability-zone in ['us-east-1b', 'us-east-1c']", false)]
    [InlineData("attribute:ecs.availability-zone !in [us-east-1b]", true)]
    [InlineData("attribute:ecs.availability-zone not_in [us-east-1a]", false)]
    [InlineData("attribute:ecs.instance-type =~ t2.*", true)]
    [InlineData("attribute:ecs.instance-type matches g2.*", false)]
    [InlineData("attribute:ecs.instance-type =~ t2", false)] // whole-value match, as Java's Pattern.matches
    [InlineData("attribute:ecs.instance-type !~ g2.*", true)]
    [InlineData("attribute:ecs.instance-type not_matches t2.*", false)]
    [InlineData("attribute:disk > 100", true)] // numbers compare as numbers: "120" > "100" and also > "99"
    [InlineData("attribute:disk > 99", true)]
    [InlineData("attribute:disk <= 120", true)]
    [InlineData("attribute:disk less_than 120", false)]
    [InlineData("attribute:zone >= a", true)]
    // the other subjects
    [InlineData("ec2InstanceId == i-abcd1234", true)]
    [InlineData("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']", true)]
    [InlineData("ec2InstanceId !in [i-wxyx7890]", true)]
    [InlineData("ec2InstanceId =~ i-abcd.*", true)]
    [InlineData("agentConnected == true", true)]
    [InlineData("agentConnected != true", false)]
    [InlineData("agentConnected in [false]", false)]
    [InlineData("agentVersion >= 1.14.5", true)]
    [InlineData("agentVersion < 1.14.10", true)] // numerically, not as text
    [InlineData("agentVersion == 1.14", false)]
    [InlineData("registeredAt < 2018-06-19", true)]
    [InlineData("registeredAt == 2018-06-18", true)] // a date alone compares by day
    [InlineData("registeredAt > 2018-06-18", false)]
    [InlineData("registeredAt > 2018-06-18T22:00:00Z", true)]
    [InlineData("registeredAt >= 2018-06-18T22:28:28+00:00", true)]
    [InlineData("registeredAt less_than 2018-06-18T22:28:28", false)]
    [InlineData("runningTasksCount == 3", true)]
    [InlineData("runningTasksCount > 3", false)]
    [InlineData("runningTasksCount <= 3", true)]
    [InlineData("runningTasksCount != 0", true)]
    [InlineData("task:group == service:production", true)]
    [InlineData("task:group == database", false)]
    [InlineData("task:group != database", true)]
    [InlineData("task:group != service:production", false)]
    [InlineData("not(task:group == database)", true)]
    [InlineData("task:group in [database, family:web]", true)]
    [InlineData("task:group =~ service:.*", true)]
    [InlineData("task:group !~ family:.*", false)]
    // compound expressions
    [InlineData("attribute:ecs.os-type == linux and attribute:zone == b", false)]
    [InlineData("attribute:ecs.os-type == 'linux' and attribute:zone == a", true)]
    [InlineData("attribute:ecs.os-type == linux && attribute:zone == b || runningTasksCount == 3", true)]
    [InlineData("attribute:ecs.os-type == linux && (attribute:zone == b || runningTasksCount == 0)", false)]
    [InlineData("(attribute:zone == b or attribute:zone == a) and not attribute:missing exists", true)]
    [InlineData("!(attribute:zone == a)", false)]
    [InlineData("! attribute:zone == b", true)]
    [InlineData("attribute:zone==a&&attribute:ecs.os-type==linux", true)]
    [InlineData("attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone != us-east-1d", true)]
    [InlineData("attribute:ecs.instance-type == \"t2.small\" OR attribute:zone == z", true)]
    public void Matches_Expression_Evaluates(string text, bool expected)
        => Assert.Equal(expected, QueryExpression.Parse(text).Matches(Instance));

    [Fact]
    public void Matches_MissingFields_OnlyNegativeOperatorsHold()
    {
        var bare = new InstanceCandidate { Arn = "x", CpuAvailable = 0, MemoryAvailable = 0 };
        Assert.False(QueryExpression.Parse("ec2InstanceId == i-1").Matches(bare));
        Assert.True(QueryExpression.Parse("ec2InstanceId != i-1").Matches(bare));
        Assert.False(QueryExpression.Parse("registeredAt < 2030-01-01").Matches(bare));
        Assert.False(QueryExpression.Parse("agentVersion > 0.0.1").Matches(bare));
        Assert.False(QueryExpression.Parse("task:group =~ .*").Matches(bare));
        Assert.True(QueryExpression.Parse("task:group != anything").Matches(bare));
    }

    [Theory]
    [InlineData("ecs.os-type == linux", "unknown subject 'ecs.os-type'")]
    [InlineData("attribute:x ~= y", "operator is missing")]
    [InlineData("attribute:x == ", "value is missing")]
    [InlineData("attribute:x == a and", "missing at the end")]
    [InlineData("(attribute:x == a", "')' is missing")]
    [InlineData("attribute:x == a)", "unexpected ')'")]
    [InlineData("attribute:x == a b", "unexpected 'b'")]
    [InlineData("attribute:x in a, b", "needs a list")]
    [InlineData("attribute:x in [a, b", "']' is missing")]
    [InlineData("attribute:x == 'a", "closing ' is missing")]
    [InlineData("attribute:x =~ [unclosed", "not a valid regular expression")]
    [InlineData("runningTasksCount > many", "whole number")]
    [InlineData("runningTasksCount in [1, 2]", "'in' cannot be used with runningTasksCount")]
    [InlineData("runningTasksCount exists", "'exists' cannot be used with runningTasksCount")]
    [InlineData("ec2InstanceId > i-1", "'>' cannot be used with ec2InstanceId")]
    [InlineData("task:group < a", "'<' cannot be used with task:group")]
    [InlineData("agentVersion > latest", "needs a version")]
    [InlineData("registeredAt < yesterday", "needs a date")]
    [InlineData("attribute: == a", "unknown subject 'attribute:'")]
    [InlineData("", "missing")]
    public void TryParse_Invalid_ReturnsAnErrorNamingTheExpression(string text, string expected)
    {
        Assert.False(QueryExpression.TryParse(text, out var e, out var error));
        Assert.Null(e);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.StartsWith($"'{text}'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryParse_DeepNesting_IsRefusedNotAStackOverflow()
    {
        var text = new string('(', 5000) + "attribute:x == a" + new string(')', 5000);
        Assert.False(QueryExpression.TryParse(text, out _, out var error));
        Assert.Contains("too deeply nested", error, StringComparison.Ordinal);
        var nots = string.Concat(Enumerable.Repeat("not ", 5000)) + "attribute:x == a";
        Assert.False(QueryExpression.TryParse(nots, out _, out _));
    }

    [Fact]
    public void UsesTaskGroups_OnlyWhenATermReadsTaskGroup()
    {
        Assert.True(QueryExpression.Parse("attribute:x == a or task:group == g").UsesTaskGroups);
        Assert.False(QueryExpression.Parse("attribute:x == a").UsesTaskGroups);
    }
}
