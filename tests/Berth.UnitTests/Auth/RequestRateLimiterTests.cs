using Berth.Aws.Auth;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Auth;

/// <summary>The token buckets against the example in ECS's "Request throttling" page, on a fake clock.</summary>
public sealed class RequestRateLimiterTests
{
    private static string ExampleFile()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Berth.slnx")))
        {
            dir = dir.Parent;
        }
        return Path.Combine(dir!.FullName, "docs", "examples", "rate-limits-ecs.json");
    }

    [Fact]
    public void TryAcquire_EcsExampleClusterReads_FiftyAtOnceThenTwentyASecond()
    {
        var time = new FakeTimeProvider();
        var limiter = new RequestRateLimiter(RateLimitPolicy.Load(ExampleFile()), time);
        // DescribeClusters and ListClusters share the 50-token bucket: 25 + 25 pass, the 51st is refused.
        for (var i = 0; i < 25; i++)
        {
            Assert.True(limiter.TryAcquire("AKIA1", "ecs", "DescribeClusters"));
            Assert.True(limiter.TryAcquire("AKIA1", "ecs", "ListClusters"));
        }
        Assert.False(limiter.TryAcquire("AKIA1", "ecs", "ListClusters"));
        // Another credential has its own buckets; another category of the same credential too.
        Assert.True(limiter.TryAcquire("AKIA2", "ecs", "ListClusters"));
        Assert.True(limiter.TryAcquire("AKIA1", "ecs", "DescribeTasks"));
        // 20 tokens a second: after 1 s exactly 20 more, after 2.5 s the bucket is full again (50).
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(20, Drain(limiter, "AKIA1", "DescribeClusters"));
        time.Advance(TimeSpan.FromSeconds(2.5));
        Assert.Equal(50, Drain(limiter, "AKIA1", "DescribeClusters"));
        time.Advance(TimeSpan.FromMilliseconds(50));
        Assert.Equal(1, Drain(limiter, "AKIA1", "DescribeClusters"));
    }

    [Fact]
    public void TryAcquire_ActionInNoBucket_UnlimitedWithoutDefault_LimitedWithOne()
    {
        var time = new FakeTimeProvider();
        var open = new RequestRateLimiter(new RateLimitPolicy { Buckets = [new RateLimitBucket { Burst = 1, PerSecond = 1, Actions = ["ecs:RunTask"] }] }, time);
        Assert.Equal(1000, Drain(open, "k", "ListClusters", max: 1000));
        var withDefault = new RequestRateLimiter(new RateLimitPolicy { Default = new RateLimitBucket { Burst = 3, PerSecond = 1 } }, time);
        Assert.Equal(3, Drain(withDefault, "k", "ListClusters"));
        Assert.False(withDefault.TryAcquire("k", "ecr", "DescribeRepositories")); // one default bucket for every unnamed action
    }

    [Fact]
    public void TryAcquire_ServiceWildcard_CoversEveryActionOfThatService()
    {
        var limiter = new RequestRateLimiter(new RateLimitPolicy { Buckets = [new RateLimitBucket { Burst = 2, PerSecond = 1, Actions = ["ecr:*"] }] }, new FakeTimeProvider());
        Assert.True(limiter.TryAcquire("k", "ecr", "DescribeRepositories"));
        Assert.True(limiter.TryAcquire("k", "ecr", "PutImage"));
        Assert.False(limiter.TryAcquire("k", "ecr", "BatchGetImage"));
        Assert.True(limiter.TryAcquire("k", "ecs", "ListClusters"));
    }

    [Theory]
    [InlineData("""{"buckets":[{"burst":0,"perSecond":1,"actions":["ecs:RunTask"]}]}""", "buckets[0] needs burst >= 1")]
    [InlineData("""{"buckets":[{"burst":5,"perSecond":1,"actions":["RunTask"]}]}""", "'RunTask' is not SERVICE:Action")]
    [InlineData("""{"buckets":[{"burst":5,"perSecond":1,"actions":[]}]}""", "buckets[0].actions names no action")]
    [InlineData("""{"buckets":[{"burst":5,"perSecond":1,"actions":["ecs:RunTask"]},{"burst":5,"perSecond":1,"actions":["ecs:RunTask"]}]}""", "'ecs:RunTask' is in two buckets")]
    [InlineData("""{"bucket":[]}""", "not a rate-limit file")]
    [InlineData("""{"default":{"burst":5,"perSecond":-1}}""", "default needs burst >= 1 and perSecond > 0")]
    public void Load_BadFile_MessageNamesTheField(string json, string expected)
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, json);
            var e = Assert.Throws<InvalidDataException>(() => RateLimitPolicy.Load(path));
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static int Drain(RequestRateLimiter limiter, string caller, string operation, int max = 10_000)
    {
        var n = 0;
        while (n < max && limiter.TryAcquire(caller, "ecs", operation))
        {
            n++;
        }
        return n;
    }
}
