using Berth.Core;

namespace Berth.UnitTests.Protocol;

public sealed class ArnsTests
{
    private readonly Arns _arns = new(new BerthIdentity("123456789012", "eu-west-1"));

    [Fact]
    public void Task_BuildsLongFormatArn() =>
        Assert.Equal("arn:aws:ecs:eu-west-1:123456789012:task/web/abc", _arns.Task("web", "abc"));

    [Fact]
    public void TryParse_TaskDefinitionArn_SplitsTypeAndPath()
    {
        Assert.True(Arns.TryParse(_arns.TaskDefinition("fam", 3), out var p));
        Assert.Equal(("ecs", "task-definition", "fam:3", "123456789012"), (p.Service, p.ResourceType, p.Path, p.Account));
    }

    [Theory]
    [InlineData("web")]
    [InlineData("arn:aws:ecs:eu-west-1:123456789012:cluster/web")]
    public void NameOf_NameOrArn_ReturnsName(string reference) => Assert.Equal("web", Arns.NameOf(reference));

    [Theory]
    [InlineData("arn:aws:ecs")]
    [InlineData("arn:aws:ecs:r:a:cluster")]
    [InlineData("arn:aws:ecs:r:a:cluster/")]
    [InlineData("not-an-arn")]
    public void TryParse_Malformed_ReturnsFalse(string arn) => Assert.False(Arns.TryParse(arn, out _));
}
