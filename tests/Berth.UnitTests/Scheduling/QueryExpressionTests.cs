using Berth.Scheduling;

namespace Berth.UnitTests.Scheduling;

public sealed class QueryExpressionTests
{
    private static readonly Dictionary<string, string> Attrs = new() { ["ecs.os-type"] = "linux", ["zone"] = "a" };

    [Theory]
    [InlineData("attribute:ecs.os-type == linux", true)]
    [InlineData("attribute:ecs.os-type != linux", false)]
    [InlineData("attribute:ecs.os-type == windows", false)]
    [InlineData("attribute:missing != x", true)]
    [InlineData("attribute:zone exists", true)]
    [InlineData("attribute:ecs.os-type == linux and attribute:zone == b", false)]
    [InlineData("attribute:ecs.os-type == 'linux' and attribute:zone == a", true)]
    public void Matches_Expression_Evaluates(string text, bool expected)
        => Assert.Equal(expected, QueryExpression.Parse(text).Matches(Attrs));

    [Theory]
    [InlineData("ecs.os-type == linux")]
    [InlineData("attribute:x ~= y")]
    public void TryParse_Unsupported_ReturnsError(string text)
    {
        Assert.False(QueryExpression.TryParse(text, out _, out var error));
        Assert.NotNull(error);
    }
}
