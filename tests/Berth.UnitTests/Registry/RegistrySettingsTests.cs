using Berth.Aws.Ecr;
using Berth.Core;
using Berth.Registry.Ecr;
using Berth.Registry.Metadata;

namespace Berth.UnitTests.Registry;

/// <summary>ECR's registry level in process: scanning rules, scan-on-push marking, the managed KMS key.</summary>
public sealed class RegistrySettingsTests
{
    private static Repository Repo(string name, bool scanOnPush = false)
        => new() { RepositoryName = name, ImageScanningConfiguration = new ImageScanningConfiguration { ScanOnPush = scanOnPush } };

    private static RegistryScanningConfiguration Rules(params (string Frequency, string Filter)[] rules) => new()
    {
        ScanType = "ENHANCED",
        Rules = rules.Select(r => new RegistryScanningRule
        {
            ScanFrequency = r.Frequency,
            RepositoryFilters = [new ScanningRepositoryFilter { Filter = r.Filter, FilterType = "WILDCARD" }],
        }).ToList(),
    };

    [Theory]
    [InlineData("app", false, "MANUAL")]
    [InlineData("app", true, "SCAN_ON_PUSH")]
    public void For_NoRegistryRules_RepositorySettingDecides(string name, bool scanOnPush, string expected)
    {
        Assert.Equal(expected, ScanningRules.For(Repo(name, scanOnPush), null).Frequency);
        Assert.Equal(expected, ScanningRules.For(Repo(name, scanOnPush), new RegistryScanningConfiguration { ScanType = "BASIC", Rules = [] }).Frequency);
    }

    [Fact]
    public void For_RegistryRules_OverrideRepositoryAndPreferContinuous()
    {
        var config = Rules(("SCAN_ON_PUSH", "*"), ("CONTINUOUS_SCAN", "prod/*"));
        var prod = ScanningRules.For(Repo("prod/api"), config);
        Assert.Equal("CONTINUOUS_SCAN", prod.Frequency);
        Assert.Equal("prod/*", Assert.Single(prod.Filters).Filter);
        Assert.Equal("SCAN_ON_PUSH", ScanningRules.For(Repo("dev/api"), config).Frequency);
        // A rule set that matches nothing makes the repository manual even with its own scanOnPush.
        Assert.Equal("MANUAL", ScanningRules.For(Repo("dev/api", scanOnPush: true), Rules(("SCAN_ON_PUSH", "prod*"))).Frequency);
    }

    [Fact]
    public async Task PutImage_ScanOnPushRepository_ImageIsMarkedAsAskedForScan()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "scanned", imageScanningConfiguration = new { scanOnPush = true } });
        await f.CallAsync("CreateRepository", new { repositoryName = "plain" });
        var scanned = await f.PushImageAsync("scanned", "v1", "one");
        var plain = await f.PushImageAsync("plain", "v1", "two");

        Assert.NotNull(f.Registry.FindManifest("scanned", scanned)!.ScanRequestedAt);
        Assert.Null(f.Registry.FindManifest("plain", plain)!.ScanRequestedAt);
        var findings = await f.CallAsync("DescribeImageScanFindings", new { repositoryName = "scanned", imageId = new { imageTag = "v1" } });
        Assert.Equal("UNSUPPORTED_IMAGE", findings.GetProperty("imageScanStatus").GetProperty("status").GetString());
        Assert.False(findings.TryGetProperty("imageScanFindings", out _));
        var e = await f.CallFailsAsync("DescribeImageScanFindings", new { repositoryName = "plain", imageId = new { imageTag = "v1" } });
        Assert.Equal("ScanNotFoundException", e.ErrorType);
    }

    [Fact]
    public void ManagedKmsKey_StablePerRegistry_DiffersAcrossRegions()
    {
        var a = RepositoryOperations.ManagedKmsKey(new BerthIdentity("123456789012", "eu-west-1"));
        Assert.Equal(a, RepositoryOperations.ManagedKmsKey(new BerthIdentity("123456789012", "eu-west-1")));
        Assert.NotEqual(a, RepositoryOperations.ManagedKmsKey(new BerthIdentity("123456789012", "eu-west-2")));
        Assert.Matches("^arn:aws:kms:eu-west-1:123456789012:key/[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", a);
    }
}
