using Berth.Registry.Metadata;

namespace Berth.UnitTests.Registry;

public sealed class RegistryNamesTests
{
    [Theory]
    [InlineData("app", true)]
    [InlineData("team/app", true)]
    [InlineData("team/my-app.v2_x", true)]
    [InlineData("a--b", true)]
    [InlineData("a__b", true)]
    [InlineData("a/b/c/d", true)]
    [InlineData("a", false)]
    [InlineData("App", false)]
    [InlineData("/app", false)]
    [InlineData("app/", false)]
    [InlineData("team//app", false)]
    [InlineData("a___b", false)]
    [InlineData("a._b", false)]
    [InlineData("app-", false)]
    [InlineData("-app", false)]
    public void IsValidRepository_FollowsEcrsPattern(string name, bool valid)
        => Assert.Equal(valid, RegistryNames.IsValidRepository(name));

    [Fact]
    public void IsValidRepository_LimitsLengthTo256()
    {
        Assert.True(RegistryNames.IsValidRepository(new string('a', 256)));
        Assert.False(RegistryNames.IsValidRepository(new string('a', 257)));
    }
}
