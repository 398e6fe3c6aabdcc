using System.Text;
using System.Text.Json;

namespace Berth.UnitTests.Registry;

/// <summary>ECR semantics over the shared registry core, in process (the aws CLI versions are in Berth.EndToEnd).</summary>
public sealed class EcrApiTests
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static string[] Strings(JsonElement array, string property)
        => array.EnumerateArray().Select(e => e.TryGetProperty(property, out var v) ? v.GetString()! : "-").ToArray();

    [Fact]
    public async Task BatchDeleteImage_ByTagRemovesTheTag_TheImageGoesWithItsLastTag()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var digest = await f.PushImageAsync("app", "v1", "one");
        await f.PushImageAsync("app", "latest", "one");

        var first = await f.CallAsync("BatchDeleteImage", new { repositoryName = "app", imageIds = new[] { new { imageTag = "v1" } } });
        Assert.Equal(["v1"], Strings(first.GetProperty("imageIds"), "imageTag"));
        Assert.Equal(["latest"], Strings((await f.CallAsync("ListImages", new { repositoryName = "app" })).GetProperty("imageIds"), "imageTag"));

        await f.CallAsync("BatchDeleteImage", new { repositoryName = "app", imageIds = new[] { new { imageTag = "latest" } } });
        Assert.Empty((await f.CallAsync("ListImages", new { repositoryName = "app" })).GetProperty("imageIds").EnumerateArray());
        Assert.Null(f.Registry.FindManifest("app", digest));
    }

    [Fact]
    public async Task BatchDeleteImage_ByDigestRemovesImageAndTags_FailuresListedPerId()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var digest = await f.PushImageAsync("app", "v1", "one");
        await f.PushImageAsync("app", "v2", "one");
        var missing = "sha256:" + new string('0', 64);

        var r = await f.CallAsync("BatchDeleteImage", JsonSerializer.Serialize(new
        {
            repositoryName = "app",
            imageIds = new object[] { new { imageDigest = digest }, new { imageDigest = missing }, new { imageDigest = "sha256:abc" }, new { imageTag = "nope" }, new { } },
        }));
        Assert.Equal(["v1", "v2"], Strings(r.GetProperty("imageIds"), "imageTag"));
        Assert.Equal(["ImageNotFound", "InvalidImageDigest", "ImageNotFound", "MissingDigestAndTag"], Strings(r.GetProperty("failures"), "failureCode"));
        Assert.Empty(f.Registry.ImagesOf("app"));
    }

    [Fact]
    public async Task BatchGetImage_ReturnsManifestText_AndFailureCodes()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var digest = await f.PushImageAsync("app", "v1", "one");
        var other = await f.PushImageAsync("app", "v2", "two");

        var r = await f.CallAsync("BatchGetImage", JsonSerializer.Serialize(new
        {
            repositoryName = "app",
            imageIds = new object[] { new { imageTag = "v1" }, new { imageTag = "v1", imageDigest = other }, new { imageTag = "gone" } },
        }));
        var image = r.GetProperty("images")[0];
        Assert.Equal(digest, image.GetProperty("imageId").GetProperty("imageDigest").GetString());
        Assert.Equal("application/vnd.oci.image.manifest.v1+json", image.GetProperty("imageManifestMediaType").GetString());
        Assert.Contains("\"schemaVersion\":2", image.GetProperty("imageManifest").GetString(), StringComparison.Ordinal);
        Assert.Equal(["ImageTagDoesNotMatchDigest", "ImageNotFound"], Strings(r.GetProperty("failures"), "failureCode"));

        var refused = await f.CallAsync("BatchGetImage", new { repositoryName = "app", imageIds = new[] { new { imageTag = "v1" } }, acceptedMediaTypes = new[] { "application/vnd.docker.distribution.manifest.v2+json" } });
        Assert.Empty(refused.GetProperty("images").EnumerateArray());
        Assert.Equal(["ImageNotFound"], Strings(refused.GetProperty("failures"), "failureCode"));
        // The pull was recorded.
        Assert.NotNull(f.Registry.FindManifest("app", digest)!.LastPulledAt);
    }

    [Fact]
    public async Task PutImage_SameManifestAndTagAgain_ImageAlreadyExists_NewTagIsFine()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var manifest = await f.ManifestAsync("app", "one");
        await f.CallAsync("PutImage", new { repositoryName = "app", imageManifest = manifest, imageTag = "v1" });
        Assert.Equal("ImageAlreadyExistsException", (await f.CallFailsAsync("PutImage", new { repositoryName = "app", imageManifest = manifest, imageTag = "v1" })).ErrorType);
        await f.CallAsync("PutImage", new { repositoryName = "app", imageManifest = manifest, imageTag = "v2" });
        Assert.Equal("ImageAlreadyExistsException", (await f.CallFailsAsync("PutImage", new { repositoryName = "app", imageManifest = manifest })).ErrorType);
        Assert.Equal(["v1", "v2"], f.Registry.ImagesOf("app").Single().Tags);
    }

    [Fact]
    public async Task PutImage_Immutable_RefusesToMoveATag_ExclusionFiltersLetMatchingTagsMove()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app", imageTagMutability = "IMMUTABLE_WITH_EXCLUSION", imageTagMutabilityExclusionFilters = new[] { new { filterType = "WILDCARD", filter = "latest*" } } });
        await f.PushImageAsync("app", "v1", "one");
        await f.PushImageAsync("app", "latest", "one");
        var moved = await f.CallFailsAsync("PutImage", new { repositoryName = "app", imageManifest = await f.ManifestAsync("app", "two"), imageTag = "v1" });
        Assert.Equal("ImageTagAlreadyExistsException", moved.ErrorType);
        await f.PushImageAsync("app", "latest", "two");
        Assert.Equal(2, f.Registry.ImagesOf("app").Count);
    }

    [Fact]
    public async Task PutImage_MissingLayer_LayersNotFound_WrongDigest_DigestDoesNotMatch()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var manifest = await f.ManifestAsync("app", "one");
        await f.CallAsync("CreateRepository", new { repositoryName = "other" });
        Assert.Equal("LayersNotFoundException", (await f.CallFailsAsync("PutImage", new { repositoryName = "other", imageManifest = manifest, imageTag = "v1" })).ErrorType);
        Assert.Equal("ImageDigestDoesNotMatchException", (await f.CallFailsAsync("PutImage", new { repositoryName = "app", imageManifest = manifest, imageDigest = "sha256:" + new string('1', 64) })).ErrorType);
        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("PutImage", new { repositoryName = "app", imageManifest = "{\"schemaVersion\":1}" })).ErrorType);
        Assert.Equal("RepositoryNotFoundException", (await f.CallFailsAsync("PutImage", new { repositoryName = "nope", imageManifest = manifest })).ErrorType);
        Assert.Empty(f.Registry.ImagesOf("app"));
        Assert.Null(f.Registry.FindRepository("nope"));
    }

    [Fact]
    public async Task LayerUpload_PartsMustContinueTheUpload_CompleteChecksTheDigest()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var content = Encoding.UTF8.GetBytes("hello, layer");
        var upload = (await f.CallAsync("InitiateLayerUpload", new { repositoryName = "app" })).GetProperty("uploadId").GetString()!;
        object Part(int first, int last, byte[] bytes) => new { repositoryName = "app", uploadId = upload, partFirstByte = first, partLastByte = last, layerPartBlob = Convert.ToBase64String(bytes) };

        Assert.Equal(4, (await f.CallAsync("UploadLayerPart", Part(0, 4, content[..5]))).GetProperty("lastByteReceived").GetInt64());
        Assert.Equal("InvalidLayerPartException", (await f.CallFailsAsync("UploadLayerPart", Part(3, 9, content[3..10]))).ErrorType);
        Assert.Equal("InvalidLayerPartException", (await f.CallFailsAsync("UploadLayerPart", Part(5, 20, content[5..]))).ErrorType);
        await f.CallAsync("UploadLayerPart", Part(5, content.Length - 1, content[5..]));

        var wrong = "sha256:" + new string('2', 64);
        Assert.Equal("InvalidLayerException", (await f.CallFailsAsync("CompleteLayerUpload", new { repositoryName = "app", uploadId = upload, layerDigests = new[] { wrong } })).ErrorType);
        // The upload is over after a mismatch.
        Assert.Equal("UploadNotFoundException", (await f.CallFailsAsync("UploadLayerPart", Part(12, 12, [1]))).ErrorType);

        var digest = await f.PushBlobAsync("app", content);
        var again = (await f.CallAsync("InitiateLayerUpload", new { repositoryName = "app" })).GetProperty("uploadId").GetString()!;
        await f.CallAsync("UploadLayerPart", new { repositoryName = "app", uploadId = again, partFirstByte = 0, partLastByte = content.Length - 1, layerPartBlob = Convert.ToBase64String(content) });
        Assert.Equal("LayerAlreadyExistsException", (await f.CallFailsAsync("CompleteLayerUpload", new { repositoryName = "app", uploadId = again, layerDigests = new[] { digest } })).ErrorType);

        var url = await f.CallAsync("GetDownloadUrlForLayer", new { repositoryName = "app", layerDigest = digest });
        Assert.Equal($"http://localhost:4566/v2/app/blobs/{digest}", url.GetProperty("downloadUrl").GetString());
        var empty = (await f.CallAsync("InitiateLayerUpload", new { repositoryName = "app" })).GetProperty("uploadId").GetString()!;
        Assert.Equal("EmptyUploadException", (await f.CallFailsAsync("CompleteLayerUpload", new { repositoryName = "app", uploadId = empty, layerDigests = new[] { digest } })).ErrorType);
    }

    [Fact]
    public async Task UploadLayerPart_UpToTwentyMiBPerPart()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var upload = (await f.CallAsync("InitiateLayerUpload", new { repositoryName = "app" })).GetProperty("uploadId").GetString()!;
        var part = new byte[20 * 1024 * 1024];
        var ok = await f.CallAsync("UploadLayerPart", new { repositoryName = "app", uploadId = upload, partFirstByte = 0, partLastByte = part.Length - 1, layerPartBlob = Convert.ToBase64String(part) });
        Assert.Equal(part.Length - 1, ok.GetProperty("lastByteReceived").GetInt64());
        var tooBig = new byte[part.Length + 1];
        var refused = await f.CallFailsAsync("UploadLayerPart", new { repositoryName = "app", uploadId = upload, partFirstByte = part.Length, partLastByte = part.Length + tooBig.Length - 1, layerPartBlob = Convert.ToBase64String(tooBig) });
        Assert.Equal("InvalidParameterException", refused.ErrorType);
        Assert.Contains("layerPartBlob", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LifecycleRunner_ExpiresPerPolicyWithTheInjectedClock_AndStampsLastEvaluatedAt()
    {
        var time = new ManualTime(Start);
        await using var f = new RegistryFixture(time);
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var digests = new List<string>();
        for (var i = 1; i <= 5; i++)
        {
            time.Advance(TimeSpan.FromDays(1));
            digests.Add(await f.PushImageAsync("app", $"v{i}", $"image {i}"));
        }
        time.Advance(TimeSpan.FromDays(1));
        var untagged = await f.PushImageAsync("app", null, "untagged");
        await f.CallAsync("PutLifecyclePolicy", new
        {
            repositoryName = "app",
            lifecyclePolicyText = """{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":2},"action":{"type":"expire"}}]}""",
        });

        await f.CallAsync("StartLifecyclePolicyPreview", new { repositoryName = "app" });
        var preview = await f.CallAsync("GetLifecyclePolicyPreview", new { repositoryName = "app" });
        Assert.Equal("COMPLETE", preview.GetProperty("status").GetString());
        Assert.Equal(2, preview.GetProperty("summary").GetProperty("expiringImageTotalCount").GetInt32());
        Assert.Equal(digests[..2], Strings(preview.GetProperty("previewResults"), "imageDigest"));

        foreach (var step in f.Maintenance)
        {
            await step.RunAsync(CancellationToken.None);
        }
        Assert.Equal([.. digests[2..], untagged], f.Registry.ImagesOf("app").OrderBy(i => i.Manifest.PushedAt).Select(i => i.Manifest.Digest));
        var policy = await f.CallAsync("GetLifecyclePolicy", new { repositoryName = "app" });
        Assert.Equal(time.GetUtcNow().ToUnixTimeSeconds(), (long)policy.GetProperty("lastEvaluatedAt").GetDouble());

        // Three days on, the untagged image is older than two days and goes too.
        time.Advance(TimeSpan.FromDays(3));
        foreach (var step in f.Maintenance)
        {
            await step.RunAsync(CancellationToken.None);
        }
        Assert.DoesNotContain(untagged, f.Registry.ImagesOf("app").Select(i => i.Manifest.Digest));
        Assert.Equal(3, f.Registry.ImagesOf("app").Count);
    }

    [Fact]
    public async Task ManifestList_ProtectsItsImages_UntilTheListIsGone()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "multi" });
        var children = new List<(string Digest, int Size)>();
        foreach (var arch in new[] { "amd64", "arm64" })
        {
            var manifest = await f.ManifestAsync("multi", arch);
            var put = await f.CallAsync("PutImage", new { repositoryName = "multi", imageManifest = manifest });
            children.Add((put.GetProperty("image").GetProperty("imageId").GetProperty("imageDigest").GetString()!, Encoding.UTF8.GetByteCount(manifest)));
        }
        string Index(IEnumerable<(string Digest, int Size)> items) => JsonSerializer.Serialize(new
        {
            schemaVersion = 2,
            mediaType = "application/vnd.oci.image.index.v1+json",
            manifests = items.Select(c => new { mediaType = "application/vnd.oci.image.manifest.v1+json", digest = c.Digest, size = c.Size }),
        });
        var missing = (Digest: "sha256:" + new string('3', 64), Size: 10);
        Assert.Equal("ReferencedImagesNotFoundException", (await f.CallFailsAsync("PutImage", new { repositoryName = "multi", imageManifest = Index([children[0], missing]), imageTag = "latest" })).ErrorType);
        await f.CallAsync("PutImage", new { repositoryName = "multi", imageManifest = Index(children), imageTag = "latest" });

        var refused = await f.CallAsync("BatchDeleteImage", new { repositoryName = "multi", imageIds = new[] { new { imageDigest = children[0].Digest } } });
        Assert.Equal(["ImageReferencedByManifestList"], Strings(refused.GetProperty("failures"), "failureCode"));
        // A lifecycle rule for untagged images leaves the list's images alone.
        await f.CallAsync("PutLifecyclePolicy", new
        {
            repositoryName = "multi",
            lifecyclePolicyText = """{"rules":[{"rulePriority":1,"description":"no untagged images","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}""",
        });
        foreach (var step in f.Maintenance)
        {
            await step.RunAsync(CancellationToken.None);
        }
        Assert.Equal(3, f.Registry.ImagesOf("multi").Count);

        // Without the list, they are ordinary untagged images: the next sweep keeps one.
        await f.CallAsync("BatchDeleteImage", new { repositoryName = "multi", imageIds = new[] { new { imageTag = "latest" } } });
        foreach (var step in f.Maintenance)
        {
            await step.RunAsync(CancellationToken.None);
        }
        Assert.Single(f.Registry.ImagesOf("multi"));
    }

    [Fact]
    public async Task Repositories_CreateDescribePaginateDelete()
    {
        await using var f = new RegistryFixture();
        foreach (var n in new[] { "a/one", "b-two", "c.three" })
        {
            await f.CallAsync("CreateRepository", new { repositoryName = n, tags = new[] { new { Key = "team", Value = "x" } } });
        }
        Assert.Equal("RepositoryAlreadyExistsException", (await f.CallFailsAsync("CreateRepository", new { repositoryName = "b-two" })).ErrorType);
        var page1 = await f.CallAsync("DescribeRepositories", new { maxResults = 2 });
        var page2 = await f.CallAsync("DescribeRepositories", new { maxResults = 2, nextToken = page1.GetProperty("nextToken").GetString() });
        Assert.Equal(["a/one", "b-two", "c.three"], Strings(page1.GetProperty("repositories"), "repositoryName").Concat(Strings(page2.GetProperty("repositories"), "repositoryName")));
        Assert.False(page2.TryGetProperty("nextToken", out _));
        Assert.Equal("RepositoryNotFoundException", (await f.CallFailsAsync("DescribeRepositories", new { repositoryNames = new[] { "a/one", "zzz" } })).ErrorType);

        await f.PushImageAsync("a/one", "v1", "x");
        Assert.Equal("RepositoryNotEmptyException", (await f.CallFailsAsync("DeleteRepository", new { repositoryName = "a/one" })).ErrorType);
        await f.CallAsync("DeleteRepository", new { repositoryName = "a/one", force = true });
        Assert.Null(f.Registry.FindRepository("a/one"));
        Assert.Empty(f.Registry.State.TagsOf("a/one"));

        var arn = "arn:aws:ecr:us-east-1:000000000000:repository/b-two";
        await f.CallAsync("TagResource", new { resourceArn = arn, tags = new[] { new { Key = "env", Value = "prod" }, new { Key = "team", Value = "y" } } });
        await f.CallAsync("UntagResource", new { resourceArn = arn, tagKeys = new[] { "env" } });
        var tags = (await f.CallAsync("ListTagsForResource", new { resourceArn = arn })).GetProperty("tags");
        Assert.Equal(["team=y"], tags.EnumerateArray().Select(t => t.GetProperty("Key").GetString() + "=" + t.GetProperty("Value").GetString()));
        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("ListTagsForResource", new { resourceArn = "arn:aws:ecs:us-east-1:000000000000:cluster/b-two" })).ErrorType);
        Assert.Equal("RepositoryNotFoundException", (await f.CallFailsAsync("ListTagsForResource", new { resourceArn = "arn:aws:ecr:us-east-1:000000000000:repository/zzz" })).ErrorType);
    }
}
