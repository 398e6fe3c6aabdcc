using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Ecr;

/// <summary>
/// The ECR API through the real aws CLI: repositories, images pushed through the ECR API itself
/// (layer uploads and PutImage with hand-built manifests) and read back through ECR and /v2/,
/// tag immutability, repository policies and tags, lifecycle policies applied by the registry sweeper.
/// </summary>
public sealed class EcrCliTests
{
    private static string[] Values(JsonNode? array, string property)
        => array!.AsArray().Select(n => n![property]?.GetValue<string>() ?? "-").ToArray();

    /// <summary>A timestamp as the CLI prints it: epoch seconds as received (CLI v1) or ISO 8601 (CLI v2).</summary>
    private static DateTimeOffset Time(JsonNode? n)
        => n!.GetValueKind() == System.Text.Json.JsonValueKind.Number
            ? DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(n.GetValue<double>() * 1000))
            : DateTimeOffset.Parse(n.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);

    private static void AssertFails(CommandResult r, string errorType)
    {
        Assert.True(r.ExitCode != 0, $"expected {errorType}, but the command succeeded: {r.Stdout}");
        Assert.Contains($"({errorType})", r.Stderr, StringComparison.Ordinal);
    }

    private static async Task<string> CurlAsync(string url, params string[] extra)
    {
        var r = await Processes.RunAsync("curl", ["-sS", "--max-time", "20", .. extra, url]);
        Assert.True(r.ExitCode == 0, $"curl {url} failed: {r.Stderr}");
        return r.Stdout;
    }

    [Fact]
    public async Task Repositories_CreateDescribeDuplicateNotEmptyAndForceDelete()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        using var pusher = new EcrPusher(aws);

        var created = (await aws.RunAsync("ecr", "create-repository", "--repository-name", "team/web",
            "--image-scanning-configuration", "scanOnPush=true", "--encryption-configuration", "encryptionType=AES256",
            "--image-tag-mutability", "MUTABLE", "--tags", "Key=team,Value=web"))["repository"]!;
        Assert.Equal("arn:aws:ecr:us-east-1:000000000000:repository/team/web", created["repositoryArn"]!.GetValue<string>());
        Assert.EndsWith("/team/web", created["repositoryUri"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("000000000000", created["registryId"]!.GetValue<string>());
        Assert.True(created["imageScanningConfiguration"]!["scanOnPush"]!.GetValue<bool>());
        await aws.RunAsync("ecr", "create-repository", "--repository-name", "team/api");

        AssertFails(await aws.TryRunAsync("ecr", "create-repository", "--repository-name", "team/web"), "RepositoryAlreadyExistsException");

        var described = await aws.RunAsync("ecr", "describe-repositories");
        Assert.Equal(["team/api", "team/web"], Values(described["repositories"], "repositoryName"));
        var one = await aws.RunAsync("ecr", "describe-repositories", "--repository-names", "team/web");
        Assert.Equal("AES256", one["repositories"]![0]!["encryptionConfiguration"]!["encryptionType"]!.GetValue<string>());
        // The CLI paginates with maxResults 1 and follows nextToken to the end.
        var paged = await aws.RunAsync("ecr", "describe-repositories", "--page-size", "1");
        Assert.Equal(2, paged["repositories"]!.AsArray().Count);
        AssertFails(await aws.TryRunAsync("ecr", "describe-repositories", "--repository-names", "team/web", "team/nope"), "RepositoryNotFoundException");

        await pusher.PushAsync("team/web", EcrPusherImages.One, "v1");
        AssertFails(await aws.TryRunAsync("ecr", "delete-repository", "--repository-name", "team/web"), "RepositoryNotEmptyException");
        Assert.Single((await aws.RunAsync("ecr", "list-images", "--repository-name", "team/web"))["imageIds"]!.AsArray());

        var deleted = await aws.RunAsync("ecr", "delete-repository", "--repository-name", "team/web", "--force");
        Assert.Equal("team/web", deleted["repository"]!["repositoryName"]!.GetValue<string>());
        AssertFails(await aws.TryRunAsync("ecr", "describe-repositories", "--repository-names", "team/web"), "RepositoryNotFoundException");
        AssertFails(await aws.TryRunAsync("ecr", "list-images", "--repository-name", "team/web"), "RepositoryNotFoundException");
        Assert.Contains("NAME_UNKNOWN", await CurlAsync($"{server.Endpoint}/v2/team/web/tags/list"), StringComparison.Ordinal);
        await aws.RunAsync("ecr", "delete-repository", "--repository-name", "team/api");
        Assert.Empty((await aws.RunAsync("ecr", "describe-repositories"))["repositories"]!.AsArray());

        var registry = await aws.RunAsync("ecr", "describe-registry");
        Assert.Equal("000000000000", registry["registryId"]!.GetValue<string>());
    }

    [Fact]
    public async Task Images_PushedThroughEcrApi_ReadBackThroughEcrAndV2_ThenDeleted()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        using var pusher = new EcrPusher(aws);
        await aws.RunAsync("ecr", "create-repository", "--repository-name", "shop");
        var image = EcrPusherImages.Big;

        // The layer goes up in three parts; PutImage names both blobs.
        var put = await pusher.PushAsync("shop", image, "v1", layerParts: 3);
        Assert.Equal(image.Digest, put["image"]!["imageId"]!["imageDigest"]!.GetValue<string>());
        Assert.Equal(TestImage.DockerManifest, put["image"]!["imageManifestMediaType"]!.GetValue<string>());
        await pusher.PutAsync("shop", image, "latest");
        AssertFails(await pusher.TryPutAsync("shop", image, "v1"), "ImageAlreadyExistsException");
        var other = EcrPusherImages.Two;
        await pusher.PushAsync("shop", other, null);

        var layers = await aws.RunAsync("ecr", "batch-check-layer-availability", "--repository-name", "shop", "--layer-digests", image.LayerDigest, "sha256:" + new string('0', 64));
        Assert.Equal(["AVAILABLE", "UNAVAILABLE"], Values(layers["layers"], "layerAvailability"));
        Assert.Equal(image.Layer.Length, layers["layers"]![0]!["layerSize"]!.GetValue<long>());

        var listed = await aws.RunAsync("ecr", "list-images", "--repository-name", "shop");
        Assert.Equal(3, listed["imageIds"]!.AsArray().Count);
        Assert.Equal(["latest", "v1"], Values((await aws.RunAsync("ecr", "list-images", "--repository-name", "shop", "--filter", "tagStatus=TAGGED"))["imageIds"], "imageTag").Order());
        Assert.Equal([other.Digest], Values((await aws.RunAsync("ecr", "list-images", "--repository-name", "shop", "--filter", "tagStatus=UNTAGGED"))["imageIds"], "imageDigest"));

        var detail = (await aws.RunAsync("ecr", "describe-images", "--repository-name", "shop", "--image-ids", "imageTag=v1"))["imageDetails"]![0]!;
        Assert.Equal(image.Digest, detail["imageDigest"]!.GetValue<string>());
        Assert.Equal(["latest", "v1"], detail["imageTags"]!.AsArray().Select(t => t!.GetValue<string>()).Order());
        Assert.Equal(image.Config.Length + image.Layer.Length, detail["imageSizeInBytes"]!.GetValue<long>());
        Assert.Equal(TestImage.DockerManifest, detail["imageManifestMediaType"]!.GetValue<string>());
        Assert.Equal(TestImage.DockerConfig, detail["artifactMediaType"]!.GetValue<string>());
        Assert.Equal("shop", detail["repositoryName"]!.GetValue<string>());
        Assert.Equal("000000000000", detail["registryId"]!.GetValue<string>());
        Assert.NotNull(detail["imagePushedAt"]);
        Assert.Null(detail["lastRecordedPullTime"]);
        AssertFails(await aws.TryRunAsync("ecr", "describe-images", "--repository-name", "shop", "--image-ids", "imageTag=nope"), "ImageNotFoundException");

        var got = await aws.RunAsync("ecr", "batch-get-image", "--repository-name", "shop", "--image-ids", "imageTag=v1", "imageTag=missing",
            "--accepted-media-types", TestImage.DockerManifest);
        Assert.Equal(image.Manifest, got["images"]![0]!["imageManifest"]!.GetValue<string>());
        Assert.Equal(["ImageNotFound"], Values(got["failures"], "failureCode"));
        Assert.NotNull((await aws.RunAsync("ecr", "describe-images", "--repository-name", "shop", "--image-ids", "imageTag=v1"))["imageDetails"]![0]!["lastRecordedPullTime"]);

        // The same image through /v2/, and the layer through GetDownloadUrlForLayer.
        var tags = JsonNode.Parse(await CurlAsync($"{server.Endpoint}/v2/shop/tags/list"))!;
        Assert.Equal(["latest", "v1"], tags["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        var headers = await CurlAsync($"{server.Endpoint}/v2/shop/manifests/v1", "-I", "-H", "Accept: " + TestImage.DockerManifest);
        Assert.Contains("Docker-Content-Digest: " + image.Digest, headers, StringComparison.OrdinalIgnoreCase);
        var url = (await aws.RunAsync("ecr", "get-download-url-for-layer", "--repository-name", "shop", "--layer-digest", image.LayerDigest))["downloadUrl"]!.GetValue<string>();
        Assert.EndsWith($"/v2/shop/blobs/{image.LayerDigest}", url, StringComparison.Ordinal);
        var download = Path.GetTempFileName();
        try
        {
            await CurlAsync(url, "-o", download, "--connect-to", $"::127.0.0.1:{server.Port}");
            Assert.Equal(image.Layer, await File.ReadAllBytesAsync(download));
        }
        finally
        {
            File.Delete(download);
        }

        // By tag: only the tag goes while another remains; by digest: the image and its last tag.
        var byTag = await aws.RunAsync("ecr", "batch-delete-image", "--repository-name", "shop", "--image-ids", "imageTag=v1");
        Assert.Equal(["v1"], Values(byTag["imageIds"], "imageTag"));
        Assert.Empty(byTag["failures"]!.AsArray());
        Assert.Equal(["latest"], JsonNode.Parse(await CurlAsync($"{server.Endpoint}/v2/shop/tags/list"))!["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        var byDigest = await aws.RunAsync("ecr", "batch-delete-image", "--repository-name", "shop", "--image-ids", $"imageDigest={image.Digest}", "imageTag=ghost");
        Assert.Equal(["latest"], Values(byDigest["imageIds"], "imageTag"));
        Assert.Equal(["ImageNotFound"], Values(byDigest["failures"], "failureCode"));
        Assert.Equal([other.Digest], Values((await aws.RunAsync("ecr", "list-images", "--repository-name", "shop"))["imageIds"], "imageDigest"));
        Assert.Contains("MANIFEST_UNKNOWN", await CurlAsync($"{server.Endpoint}/v2/shop/manifests/{image.Digest}"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ImmutableTags_PutImageMovingATag_ImageTagAlreadyExists()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        using var pusher = new EcrPusher(aws);
        await aws.RunAsync("ecr", "create-repository", "--repository-name", "frozen");
        await pusher.PushAsync("frozen", EcrPusherImages.One, "release");
        await pusher.PushAsync("frozen", EcrPusherImages.Two, "latest");

        var set = await aws.RunAsync("ecr", "put-image-tag-mutability", "--repository-name", "frozen", "--image-tag-mutability", "IMMUTABLE");
        Assert.Equal("IMMUTABLE", set["imageTagMutability"]!.GetValue<string>());
        Assert.Equal("IMMUTABLE", (await aws.RunAsync("ecr", "describe-repositories", "--repository-names", "frozen"))["repositories"]![0]!["imageTagMutability"]!.GetValue<string>());

        AssertFails(await pusher.TryPutAsync("frozen", EcrPusherImages.Two, "release"), "ImageTagAlreadyExistsException");
        var release = (await aws.RunAsync("ecr", "describe-images", "--repository-name", "frozen", "--image-ids", "imageTag=release"))["imageDetails"]![0]!;
        Assert.Equal(EcrPusherImages.One.Digest, release["imageDigest"]!.GetValue<string>());
        // A new tag on an existing image is no move.
        await pusher.PutAsync("frozen", EcrPusherImages.Two, "v2");

        // With an exclusion filter, latest* may move again while release stays fixed.
        await aws.RunAsync("ecr", "put-image-tag-mutability", "--repository-name", "frozen", "--image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION",
            "--image-tag-mutability-exclusion-filters", "filterType=WILDCARD,filter=latest*");
        await pusher.PutAsync("frozen", EcrPusherImages.One, "latest");
        AssertFails(await pusher.TryPutAsync("frozen", EcrPusherImages.Two, "release"), "ImageTagAlreadyExistsException");
        Assert.Equal(EcrPusherImages.One.Digest, (await aws.RunAsync("ecr", "describe-images", "--repository-name", "frozen", "--image-ids", "imageTag=latest"))["imageDetails"]![0]!["imageDigest"]!.GetValue<string>());
    }

    [Fact]
    public async Task LifecyclePolicy_KeepNewestThree_PreviewAndSweeperAgree()
    {
        await using var server = await BerthServer.StartAsync("server", "--registry-sweep-interval", "1");
        var aws = new AwsCli(server.Endpoint);
        using var pusher = new EcrPusher(aws);
        await aws.RunAsync("ecr", "create-repository", "--repository-name", "builds");
        var digests = new List<string>();
        for (var i = 1; i <= 5; i++)
        {
            var image = TestImage.Build($"build {i}", 1024);
            await pusher.PushAsync("builds", image, $"v{i}");
            digests.Add(image.Digest);
        }
        var pushed = (await aws.RunAsync("ecr", "describe-images", "--repository-name", "builds"))["imageDetails"]!.AsArray()
            .OrderBy(d => Time(d!["imagePushedAt"])).Select(d => d!["imageDigest"]!.GetValue<string>());
        Assert.Equal(digests, pushed);

        const string Policy = """{"rules":[{"rulePriority":1,"description":"keep the newest 3","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}]}""";
        AssertFails(await aws.TryRunAsync("ecr", "get-lifecycle-policy-preview", "--repository-name", "builds"), "LifecyclePolicyPreviewNotFoundException");
        var started = await aws.RunAsync("ecr", "start-lifecycle-policy-preview", "--repository-name", "builds", "--lifecycle-policy-text", Policy);
        Assert.Equal(Policy, started["lifecyclePolicyText"]!.GetValue<string>());
        var preview = await aws.RunAsync("ecr", "get-lifecycle-policy-preview", "--repository-name", "builds");
        Assert.Equal("COMPLETE", preview["status"]!.GetValue<string>());
        Assert.Equal(2, preview["summary"]!["expiringImageTotalCount"]!.GetValue<int>());
        var results = preview["previewResults"]!.AsArray();
        Assert.Equal(digests[..2], Values(results, "imageDigest"));
        Assert.Equal(["v1", "v2"], results.Select(r => r!["imageTags"]![0]!.GetValue<string>()));
        Assert.All(results, r => Assert.Equal(("EXPIRE", 1), (r!["action"]!["type"]!.GetValue<string>(), r["appliedRulePriority"]!.GetValue<int>())));
        // Only a preview so far: nothing expired.
        Assert.Equal(5, (await aws.RunAsync("ecr", "list-images", "--repository-name", "builds"))["imageIds"]!.AsArray().Count);

        await aws.RunAsync("ecr", "put-lifecycle-policy", "--repository-name", "builds", "--lifecycle-policy-text", Policy);
        var left = await Wait.ForAsync(async () =>
        {
            var ids = (await aws.RunAsync("ecr", "list-images", "--repository-name", "builds"))["imageIds"]!.AsArray();
            return ids.Count <= 3 ? ids : null;
        }, TimeSpan.FromSeconds(60), "the sweeper to apply the lifecycle policy");
        Assert.Equal(["v3", "v4", "v5"], Values(left, "imageTag").Order());
        Assert.Equal(digests[2..].Order(), Values(left, "imageDigest").Order());
        Assert.Equal(["v3", "v4", "v5"], JsonNode.Parse(await CurlAsync($"{server.Endpoint}/v2/builds/tags/list"))!["tags"]!.AsArray().Select(t => t!.GetValue<string>()));

        var policy = await aws.RunAsync("ecr", "get-lifecycle-policy", "--repository-name", "builds");
        Assert.Equal(Policy, policy["lifecyclePolicyText"]!.GetValue<string>());
        Assert.True(Time(policy["lastEvaluatedAt"]) > DateTimeOffset.UtcNow.AddMinutes(-5));
        await aws.RunAsync("ecr", "delete-lifecycle-policy", "--repository-name", "builds");
        AssertFails(await aws.TryRunAsync("ecr", "get-lifecycle-policy", "--repository-name", "builds"), "LifecyclePolicyNotFoundException");
    }

    [Fact]
    public async Task RepositoryPolicyTagsAndScanning_RoundTrip()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecr", "create-repository", "--repository-name", "shared");
        const string PolicyText = """{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}""";

        AssertFails(await aws.TryRunAsync("ecr", "get-repository-policy", "--repository-name", "shared"), "RepositoryPolicyNotFoundException");
        await aws.RunAsync("ecr", "set-repository-policy", "--repository-name", "shared", "--policy-text", PolicyText);
        Assert.Equal(PolicyText, (await aws.RunAsync("ecr", "get-repository-policy", "--repository-name", "shared"))["policyText"]!.GetValue<string>());
        AssertFails(await aws.TryRunAsync("ecr", "set-repository-policy", "--repository-name", "shared", "--policy-text", "{\"Statement\":"), "InvalidParameterException");
        Assert.Equal(PolicyText, (await aws.RunAsync("ecr", "delete-repository-policy", "--repository-name", "shared"))["policyText"]!.GetValue<string>());
        AssertFails(await aws.TryRunAsync("ecr", "delete-repository-policy", "--repository-name", "shared"), "RepositoryPolicyNotFoundException");

        var arn = "arn:aws:ecr:us-east-1:000000000000:repository/shared";
        await aws.RunAsync("ecr", "tag-resource", "--resource-arn", arn, "--tags", "Key=env,Value=prod", "Key=team,Value=core");
        await aws.RunAsync("ecr", "untag-resource", "--resource-arn", arn, "--tag-keys", "env");
        var tags = (await aws.RunAsync("ecr", "list-tags-for-resource", "--resource-arn", arn))["tags"]!.AsArray();
        Assert.Equal(["team=core"], tags.Select(t => t!["Key"]!.GetValue<string>() + "=" + t["Value"]!.GetValue<string>()));
        AssertFails(await aws.TryRunAsync("ecr", "list-tags-for-resource", "--resource-arn", "arn:aws:ecr:us-east-1:000000000000:repository/nope"), "RepositoryNotFoundException");
        AssertFails(await aws.TryRunAsync("ecr", "tag-resource", "--resource-arn", "not-an-arn", "--tags", "Key=a,Value=b"), "InvalidParameterException");

        var scan = await aws.RunAsync("ecr", "put-image-scanning-configuration", "--repository-name", "shared", "--image-scanning-configuration", "scanOnPush=true");
        Assert.True(scan["imageScanningConfiguration"]!["scanOnPush"]!.GetValue<bool>());
        Assert.True((await aws.RunAsync("ecr", "describe-repositories", "--repository-names", "shared"))["repositories"]![0]!["imageScanningConfiguration"]!["scanOnPush"]!.GetValue<bool>());
    }

    [Fact]
    public async Task GetLoginPassword_ReturnsATokenTheRegistryAccepts()
    {
        await using var server = await BerthServer.StartAsync("server", "--registry-auth");
        var aws = new AwsCli(server.Endpoint);
        var r = await aws.TryRunAsync("ecr", "get-login-password");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var password = r.Stdout.Trim();
        Assert.False(string.IsNullOrEmpty(password));

        Assert.Contains("UNAUTHORIZED", await CurlAsync($"{server.Endpoint}/v2/"), StringComparison.Ordinal);
        Assert.Equal("{}", await CurlAsync($"{server.Endpoint}/v2/", "-u", "AWS:" + password));
        var token = (await aws.RunAsync("ecr", "get-authorization-token"))["authorizationData"]![0]!;
        var decoded = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(token["authorizationToken"]!.GetValue<string>()));
        Assert.StartsWith("AWS:", decoded, StringComparison.Ordinal);
    }
}

/// <summary>The images the CLI tests push (built once per test run).</summary>
internal static class EcrPusherImages
{
    public static readonly TestImage One = TestImage.Build("one");
    public static readonly TestImage Two = TestImage.Build("two");
    public static readonly TestImage Big = TestImage.Build("big", 300 * 1024);
}
