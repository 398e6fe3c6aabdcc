using System.Security.Cryptography;
using System.Text;
using Berth.Registry.Lifecycle;

namespace Berth.UnitTests.Registry;

/// <summary>Lifecycle rule evaluation, including the worked examples of ECR's user guide.</summary>
public sealed class LifecycleEvaluatorTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static LifecycleImage Image(string name, double daysAgo, params string[] tags)
        => new("sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name))), tags, Now - TimeSpan.FromDays(daysAgo));

    private static string Rule(int priority, string tagStatus, string count, string? tagList = null)
        => $$$"""{"rulePriority":{{{priority}}},"selection":{"tagStatus":"{{{tagStatus}}}"{{{(tagList is null ? "" : "," + tagList)}}},{{{count}}}},"action":{"type":"expire"}}""";

    private static string Policy(params string[] rules) => $$"""{"rules":[{{string.Join(",", rules)}}]}""";

    private const string KeepOne = "\"countType\":\"imageCountMoreThan\",\"countNumber\":1";

    private static string[] Expired(IEnumerable<LifecycleImage> images, string policy, string[] names, LifecycleImage[] all)
    {
        var byDigest = names.Zip(all).ToDictionary(x => x.Second.Digest, x => x.First);
        return LifecycleEvaluator.Evaluate(images, LifecyclePolicy.Parse(policy), Now).Select(e => byDigest[e.Image.Digest]).Order().ToArray();
    }

    private static string[] Run(string policy, params (string Name, LifecycleImage Image)[] images)
        => Expired(images.Select(i => i.Image), policy, images.Select(i => i.Name).ToArray(), images.Select(i => i.Image).ToArray());

    [Fact]
    public void ImageCountMoreThan_KeepsNewestN()
    {
        var images = Enumerable.Range(1, 5).Select(i => ($"v{i}", Image($"v{i}", 10 - i, $"v{i}"))).ToArray();
        var policy = Policy(Rule(1, "any", "\"countType\":\"imageCountMoreThan\",\"countNumber\":3"));
        Assert.Equal(["v1", "v2"], Run(policy, images));
    }

    [Fact]
    public void ImageCountMoreThan_FewerImagesThanCount_ExpiresNothing()
        => Assert.Empty(Run(Policy(Rule(1, "any", "\"countType\":\"imageCountMoreThan\",\"countNumber\":3")), ("a", Image("a", 2, "a")), ("b", Image("b", 1))));

    [Fact]
    public void MultipleRules_GuideExampleA_HigherPriorityRuleProtectsWhatItIdentified()
    {
        // User guide, "Filtering on multiple rules", example A: result is image A only.
        var policy = Policy(Rule(1, "tagged", KeepOne, "\"tagPatternList\":[\"prod*\"]"), Rule(2, "tagged", KeepOne, "\"tagPatternList\":[\"beta*\"]"));
        Assert.Equal(["A"], Run(policy,
            ("A", Image("A", 10, "beta-1", "prod-1")), ("B", Image("B", 9, "beta-2", "prod-2")), ("C", Image("C", 8, "beta-3"))));
    }

    [Fact]
    public void MultipleRules_GuideExampleB_PriorityOrderChangesTheOutcome()
    {
        var policy = Policy(Rule(1, "tagged", KeepOne, "\"tagPrefixList\":[\"beta\"]"), Rule(2, "tagged", KeepOne, "\"tagPrefixList\":[\"prod\"]"));
        Assert.Equal(["A", "B"], Run(policy,
            ("A", Image("A", 10, "beta-1", "prod-1")), ("B", Image("B", 9, "beta-2", "prod-2")), ("C", Image("C", 8, "beta-3"))));
    }

    [Fact]
    public void TagPatternList_ImageMustMatchEveryPattern()
    {
        // User guide, "Filtering on multiple tags in a single rule", example A: only C and F carry both; C is older than 5 days.
        var policy = Policy(Rule(1, "tagged", "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":5", "\"tagPatternList\":[\"alpha*\",\"beta*\"]"));
        Assert.Equal(["C"], Run(policy,
            ("A", Image("A", 12, "alpha-1")), ("B", Image("B", 11, "beta-1")), ("C", Image("C", 10, "alpha-2", "beta-2")),
            ("D", Image("D", 4, "alpha-3")), ("E", Image("E", 3, "beta-3")), ("F", Image("F", 2, "alpha-4", "beta-4"))));
    }

    [Fact]
    public void TagPrefixList_ImageMustCarryAPrefixMatchForEachEntry()
    {
        var policy = Policy(Rule(1, "tagged", KeepOne, "\"tagPrefixList\":[\"alpha\",\"beta\"]"));
        Assert.Equal(["A", "B"], Run(policy,
            ("A", Image("A", 10, "alpha-1", "beta-1", "gamma-1")), ("B", Image("B", 9, "alpha-2", "beta-2")), ("C", Image("C", 8, "alpha-3", "beta-3", "gamma-2")),
            ("D", Image("D", 1, "alpha-4"))));
    }

    [Fact]
    public void TagPatternList_WildcardInTheMiddleAndPrefixesAreCaseSensitive()
    {
        var policy = Policy(Rule(1, "tagged", "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":1", "\"tagPatternList\":[\"*prod*\"]"));
        Assert.Equal(["repo-production", "team-prod"], Run(policy,
            ("repo-production", Image("p1", 3, "repo-production")), ("team-prod", Image("p2", 3, "team-prod")), ("PROD", Image("p3", 3, "PROD")), ("fresh", Image("p4", 0.5, "prod"))));
    }

    [Fact]
    public void AllRuleTypes_GuideExample_AnyRuleOnlyMarksWhatNoEarlierRuleIdentified()
    {
        // User guide, "Filtering on all images", example B: images A, B and D are expired.
        var policy = Policy(
            Rule(1, "tagged", KeepOne, "\"tagPatternList\":[\"alpha*\"]"),
            Rule(2, "untagged", "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":1"),
            Rule(3, "any", KeepOne));
        Assert.Equal(["A", "B", "D"], Run(policy,
            ("A", Image("A", 4, "alpha-1", "beta-1")), ("B", Image("B", 3)), ("C", Image("C", 2, "alpha-2")),
            ("D", Image("D", 1.0, "git hash")), ("E", Image("E", 0.9))));
    }

    [Fact]
    public void Untagged_KeepOne_LeavesTaggedImagesAlone()
    {
        var policy = Policy(Rule(1, "untagged", KeepOne));
        Assert.Equal(["u1", "u2"], Run(policy,
            ("u1", Image("u1", 5)), ("u2", Image("u2", 4)), ("u3", Image("u3", 3)), ("t", Image("t", 9, "latest"))));
    }

    [Fact]
    public void SinceImagePushed_UsesTheGivenClock_StrictlyOlderThanTheLimit()
    {
        var policy = LifecyclePolicy.Parse(Policy(Rule(1, "any", "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":7")));
        var old = Image("old", 8);
        var edge = new LifecycleImage("sha256:" + new string('e', 64), [], Now - TimeSpan.FromDays(7));
        var young = Image("young", 6);
        Assert.Equal([old.Digest], LifecycleEvaluator.Evaluate([old, edge, young], policy, Now).Select(e => e.Image.Digest));
        // A day later the edge image and, two days later, the young one too.
        Assert.Equal(2, LifecycleEvaluator.Evaluate([old, edge, young], policy, Now + TimeSpan.FromDays(1)).Count);
        Assert.Equal(3, LifecycleEvaluator.Evaluate([old, edge, young], policy, Now + TimeSpan.FromDays(2)).Count);
    }

    [Fact]
    public void ImagesListedByAnIndex_AreNeverExpired()
    {
        var child = Image("child", 30) with { ReferencedByIndex = true };
        var lone = Image("lone", 30);
        var policy = LifecyclePolicy.Parse(Policy(Rule(1, "untagged", "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":1")));
        Assert.Equal([lone.Digest], LifecycleEvaluator.Evaluate([child, lone], policy, Now).Select(e => e.Image.Digest));
    }

    [Fact]
    public void Expiry_ReportsTheRuleThatAppliedAndIsOrderedOldestFirst()
    {
        var policy = LifecyclePolicy.Parse(Policy(
            Rule(5, "tagged", KeepOne, "\"tagPrefixList\":[\"rc\"]"),
            Rule(9, "untagged", KeepOne)));
        var images = new[] { Image("rc1", 3, "rc1"), Image("u1", 5), Image("rc2", 2, "rc2"), Image("u2", 1) };
        var result = LifecycleEvaluator.Evaluate(images, policy, Now);
        Assert.Equal([(images[1].Digest, 9), (images[0].Digest, 5)], result.Select(e => (e.Image.Digest, e.Rule.Priority)));
    }

    [Fact]
    public void Rules_AreAppliedByPriorityNotByPosition()
    {
        // Written out of order: priority 1 (keep one 'a*') must still run first and protect a2 from the 'any' rule.
        var policy = Policy(Rule(10, "any", KeepOne), Rule(1, "tagged", KeepOne, "\"tagPrefixList\":[\"a\"]"));
        Assert.Equal(["a1", "b1"], Run(policy, ("a1", Image("a1", 4, "a1")), ("b1", Image("b1", 3, "b1")), ("a2", Image("a2", 2, "a2")), ("b2", Image("b2", 1, "b2"))));
    }

    [Theory]
    [InlineData("prod*", "production", true)]
    [InlineData("prod*", "prod", true)]
    [InlineData("*prod*", "repo-production", true)]
    [InlineData("*test*1*2*3", "a-test-1-2-3", true)]
    [InlineData("v*.*", "v1.2", true)]
    [InlineData("v*.*", "v12", false)]
    [InlineData("prod", "prod1", false)]
    [InlineData("*", "anything", true)]
    public void Glob_MatchesEcrWildcards(string pattern, string tag, bool expected) => Assert.Equal(expected, Glob.IsMatch(pattern, tag));
}
