using Berth.Agent.Runtime;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>Which images a cleanup cycle removes (ECS_IMAGE_MINIMUM_CLEANUP_AGE, ECS_NUM_IMAGES_DELETE_PER_CYCLE), on a fake clock.</summary>
public sealed class ImageCleanupTests
{
    private static readonly TimeSpan MinAge = TimeSpan.FromHours(1);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));

    private PulledImage Pulled(string image, TimeSpan ago) => new(image, _time.GetUtcNow() - ago);

    [Fact]
    public void Choose_UnusedAndOldEnough_OldestPullFirst_AtMostThePerCycleCount()
    {
        var tracked = new[]
        {
            Pulled("web:2", TimeSpan.FromHours(2)),
            Pulled("web:1", TimeSpan.FromHours(5)),
            Pulled("db:1", TimeSpan.FromHours(3)),
            Pulled("cache:1", TimeSpan.FromHours(4)),
        };

        var chosen = ImageCleaner.Choose(tracked, _ => false, _time.GetUtcNow(), MinAge, diskPressure: false, max: 3);

        Assert.Equal(["web:1", "cache:1", "db:1"], chosen.Select(p => p.Image));
    }

    [Fact]
    public void Choose_ImageAContainerUses_IsKept()
    {
        var tracked = new[] { Pulled("web:1", TimeSpan.FromHours(5)), Pulled("db:1", TimeSpan.FromHours(5)) };

        var chosen = ImageCleaner.Choose(tracked, image => image == "web:1", _time.GetUtcNow(), MinAge, diskPressure: false, max: 5);

        Assert.Equal(["db:1"], chosen.Select(p => p.Image));
    }

    [Fact]
    public void Choose_PulledLessThanTheMinimumAgeAgo_IsKept_UntilTheClockPassesIt()
    {
        var tracked = new[] { Pulled("web:1", TimeSpan.FromMinutes(59)) };

        Assert.Empty(ImageCleaner.Choose(tracked, _ => false, _time.GetUtcNow(), MinAge, diskPressure: false, max: 5));
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Single(ImageCleaner.Choose(tracked, _ => false, _time.GetUtcNow(), MinAge, diskPressure: false, max: 5));
    }

    [Fact]
    public void Choose_UnderDiskPressure_TheMinimumAgeNoLongerProtects_ButUseStillDoes()
    {
        var tracked = new[] { Pulled("fresh:1", TimeSpan.FromMinutes(1)), Pulled("used:1", TimeSpan.FromMinutes(1)) };

        var chosen = ImageCleaner.Choose(tracked, image => image == "used:1", _time.GetUtcNow(), MinAge, diskPressure: true, max: 5);

        Assert.Equal(["fresh:1"], chosen.Select(p => p.Image));
    }

    [Fact]
    public void PulledImages_SurvivesAReload_AndForgetsRemovedOnes()
    {
        var file = Path.Combine(Path.GetTempPath(), "berth-pulled-" + Guid.NewGuid().ToString("N"), "pulled-images.json");
        try
        {
            var a = new PulledImages(file);
            a.Add("web:1", _time.GetUtcNow());
            a.Add("db:1", _time.GetUtcNow());
            a.Remove("web:1");

            var b = new PulledImages(file);

            Assert.Equal([new PulledImage("db:1", _time.GetUtcNow())], b.All());
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
        }
    }
}
