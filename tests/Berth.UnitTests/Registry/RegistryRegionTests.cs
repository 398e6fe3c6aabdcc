using System.Text.Json;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry;
using Berth.Registry.Hosting;
using Berth.Registry.Metadata;
using Berth.Registry.Replication;
using Berth.Registry.Storage;
using Berth.State;

namespace Berth.UnitTests.Registry;

/// <summary>One registry per region: separate repositories, ARNs and URIs of the region, /v2/ paths, the store migration, replication.</summary>
public sealed class RegistryRegionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("us-east-1", "web", "web")]
    [InlineData("us-west-2", "web", "us-west-2/web")]
    [InlineData("us-west-2", "team/web", "us-west-2/team/web")]
    // A published-region name whose first component looks like a region is written with the region, so it stays reachable.
    [InlineData("us-east-1", "eu-west-1/web", "us-east-1/eu-west-1/web")]
    [InlineData("us-east-1", "eu-west-1", "eu-west-1")]
    // Only AWS's region shape is a region: an ordinary namespace ending in a number stays a name.
    [InlineData("us-east-1", "team-app-1/web", "team-app-1/web")]
    [InlineData("us-east-1", "us-gov-west-1/web", "us-east-1/us-gov-west-1/web")]
    public void PathOf_PrefixesOtherRegionsAndAmbiguousNames(string region, string name, string expected)
        => Assert.Equal(expected, RegistryRoutes.PathOf(region, "us-east-1", name));

    [Theory]
    [InlineData("web/manifests/1", null, "web/manifests/1")]
    [InlineData("us-west-2/web/manifests/1", "us-west-2", "web/manifests/1")]
    [InlineData("us-west-2/_catalog", "us-west-2", "_catalog")]
    [InlineData("team/web/blobs/uploads/", null, "team/web/blobs/uploads/")]
    [InlineData("us-west-2/", null, "us-west-2/")]
    [InlineData("team-app-1/web/manifests/1", null, "team-app-1/web/manifests/1")]
    [InlineData("ap-southeast-2/web/tags/list", "ap-southeast-2", "web/tags/list")]
    [InlineData("_catalog", null, "_catalog")]
    [InlineData("", null, "")]
    public void Split_ReadsARegionPrefix(string rest, string? region, string remainder)
        => Assert.Equal((region, remainder), RegistryRoutes.Split(rest));

    [Fact]
    public async Task SameRepositoryNameInTwoRegions_HoldsDifferentImagesWithTheRegionsArnsAndUris()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("CreateRepository", new { repositoryName = "web" });
        var east = await f.PushImageAsync("web", "1", "east");
        var westRepo = (await f.CallInAsync("us-west-2", "CreateRepository", new { repositoryName = "web" })).GetProperty("repository");
        Assert.Equal("arn:aws:ecr:us-west-2:000000000000:repository/web", westRepo.GetProperty("repositoryArn").GetString());
        Assert.Equal("localhost:4566/us-west-2/web", westRepo.GetProperty("repositoryUri").GetString());
        var eastRepo = (await f.CallAsync("DescribeRepositories", new { repositoryNames = new[] { "web" } })).GetProperty("repositories")[0];
        Assert.Equal("arn:aws:ecr:us-east-1:000000000000:repository/web", eastRepo.GetProperty("repositoryArn").GetString());
        Assert.Equal("localhost:4566/web", eastRepo.GetProperty("repositoryUri").GetString());

        // An image pushed through us-west-2's API, blobs and all, is us-west-2's only.
        var west = (await f.Regions.GetAsync("us-west-2", Ct)).Service;
        var layer = "west layer"u8.ToArray();
        var session = west.Blobs.StartUpload(west.UploadKey("web"));
        await west.Blobs.AppendAsync(session, new MemoryStream(layer), null, Ct);
        var layerDigest = Digest.Sha256(layer);
        await west.Blobs.CompleteAsync(session, layerDigest, Ct);
        await west.LinkAsync("web", layerDigest, layer.Length, Ct);
        Assert.Null(f.Registry.StatBlob("web", layerDigest));
        Assert.NotNull(west.StatBlob("web", layerDigest));

        Assert.Equal([east], Digests(await f.CallAsync("ListImages", new { repositoryName = "web" })));
        Assert.Empty(Digests(await f.CallInAsync("us-west-2", "ListImages", new { repositoryName = "web" })));
        var e = await Assert.ThrowsAsync<AwsException>(() => f.CallInAsync("eu-central-1", "DescribeImages", new { repositoryName = "web" }));
        Assert.Equal("RepositoryNotFoundException", e.ErrorType);
        Assert.Equal(["eu-central-1", "us-east-1", "us-west-2"], f.Regions.Open.Select(r => r.Region));

        // proxyEndpoint: the host, with the path prefix of a region other than the published one.
        Assert.Equal("http://localhost:4566", (await f.CallAsync("GetAuthorizationToken", "{}")).GetProperty("authorizationData")[0].GetProperty("proxyEndpoint").GetString());
        Assert.Equal("http://localhost:4566/us-west-2", (await f.CallInAsync("us-west-2", "GetAuthorizationToken", "{}")).GetProperty("authorizationData")[0].GetProperty("proxyEndpoint").GetString());
    }

    [Fact]
    public async Task StoreWithoutRegions_IsMovedUnderThePublishedRegionOnce()
    {
        var store = SqliteStateStore.Open(":memory:");
        var dir = Path.Combine(Path.GetTempPath(), "berth-registry-" + Guid.NewGuid().ToString("N"));
        try
        {
            // The layout before regions: documents directly under registry/.
            var old = new RegistryState(store);
            await old.LoadAsync(Ct);
            var service = new RegistryService(old, new BlobStore(dir, TimeProvider.System), new RegistryOptions { DataDirectory = dir }, new Arns(new BerthIdentity()), TimeProvider.System);
            await service.CreateRepositoryAsync(new StoredRepository { Repository = service.NewRepository("legacy") }, Ct);
            await service.UpdateSettingsAsync(s => s.PolicyText = "{}", Ct);

            await using var f = new RegistryFixture(store: store);
            Assert.Equal("legacy", (await f.CallAsync("DescribeRepositories", "{}")).GetProperty("repositories")[0].GetProperty("repositoryName").GetString());
            Assert.Equal("{}", f.Registry.State.RegistrySettings.PolicyText);
            Assert.Empty(await store.ListAsync("registry/repos/", Ct));
            Assert.Single(await store.ListAsync("registry/us-east-1/repos/", Ct));
            Assert.Single(await store.ListAsync("registry/regions/", Ct));
            // Once: running it again finds nothing to move.
            var revision = store.Revision;
            await RegistryRegions.MigrateAsync(store, "us-east-1", Ct);
            Assert.Equal(revision, store.Revision);
        }
        finally
        {
            await store.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Replication_CopiesMatchingPushesToTheDestinationRegionAndReportsEachDestination()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("PutReplicationConfiguration", """
            {"replicationConfiguration":{"rules":[{"destinations":[{"region":"us-west-2","registryId":"000000000000"},{"region":"eu-west-1","registryId":"111111111111"}],
              "repositoryFilters":[{"filter":"app","filterType":"PREFIX_MATCH"}]}]}}
            """);
        await f.CallAsync("CreateRepository", new { repositoryName = "app/web" });
        await f.CallAsync("CreateRepository", new { repositoryName = "other" });
        var replicated = await f.PushImageAsync("app/web", "v1", "replicated");
        var other = await f.PushImageAsync("other", "v1", "kept-home");

        // Desired state first: IN_PROGRESS until the worker ran; nothing in us-west-2 yet.
        var before = await f.CallAsync("DescribeImageReplicationStatus", new { repositoryName = "app/web", imageId = new { imageTag = "v1" } });
        Assert.Equal(["us-west-2:IN_PROGRESS", "eu-west-1:FAILED"], Statuses(before));
        Assert.Equal(1, f.ReplicationQueue.Count);
        await DrainAsync(f);

        var after = await f.CallAsync("DescribeImageReplicationStatus", new { repositoryName = "app/web", imageId = new { imageDigest = replicated } });
        Assert.Equal(["us-west-2:COMPLETE", "eu-west-1:FAILED"], Statuses(after));
        Assert.Equal(ReplicationRules.CrossAccountUnsupported, after.GetProperty("replicationStatuses")[1].GetProperty("failureCode").GetString());
        var westImages = await f.CallInAsync("us-west-2", "DescribeImages", new { repositoryName = "app/web" });
        var image = Assert.Single(westImages.GetProperty("imageDetails").EnumerateArray());
        Assert.Equal(replicated, image.GetProperty("imageDigest").GetString());
        Assert.Equal("v1", image.GetProperty("imageTags")[0].GetString());
        // The replica's repository was created in us-west-2, with its ARN; its blobs are readable there.
        var west = (await f.Regions.GetAsync("us-west-2", Ct)).Service;
        Assert.Equal("arn:aws:ecr:us-west-2:000000000000:repository/app/web", west.RequireRepository("app/web").Repository.RepositoryArn);
        var manifest = west.FindManifest("app/web", "v1")!;
        Assert.All(manifest.Blobs, b => Assert.NotNull(west.StatBlob("app/web", Digest.TryParse(b, out var d) ? d.Value : default)));
        // A replica is not replicated onwards, and a repository no rule matches stays home.
        Assert.Null(manifest.Replication);
        Assert.Null(west.FindRepository("other"));
        Assert.Empty(Statuses(await f.CallAsync("DescribeImageReplicationStatus", new { repositoryName = "other", imageId = new { imageDigest = other } })));

        // A destination tag that is immutable and names another image: FAILED, not retried.
        await west.UpdateRepositoryAsync("app/web", r => r.Repository.ImageTagMutability = "IMMUTABLE", Ct);
        await f.PushImageAsync("app/web", "v1", "moved");
        await DrainAsync(f);
        var moved = await f.CallAsync("DescribeImageReplicationStatus", new { repositoryName = "app/web", imageId = new { imageTag = "v1" } });
        Assert.Equal(["us-west-2:FAILED", "eu-west-1:FAILED"], Statuses(moved));
        Assert.Equal("IMAGE_TAG_IMMUTABLE", moved.GetProperty("replicationStatuses")[0].GetProperty("failureCode").GetString());
        Assert.Equal(replicated, west.FindManifest("app/web", "v1")!.Digest);

        // Errors as ECR's: a missing image, a missing repository.
        Assert.Equal("ImageNotFoundException", (await f.CallFailsAsync("DescribeImageReplicationStatus", new { repositoryName = "app/web", imageId = new { imageTag = "nope" } })).ErrorType);
        Assert.Equal("RepositoryNotFoundException", (await f.CallFailsAsync("DescribeImageReplicationStatus", new { repositoryName = "nope", imageId = new { imageTag = "v1" } })).ErrorType);
    }

    [Fact]
    public async Task Replication_InProgressEntriesAreFoundAgainAfterTheQueueIsLost()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("PutReplicationConfiguration", """{"replicationConfiguration":{"rules":[{"destinations":[{"region":"us-west-2","registryId":"000000000000"}]}]}}""");
        await f.CallAsync("CreateRepository", new { repositoryName = "any" });
        var digest = await f.PushImageAsync("any", "v1", "x");
        // Lose the announcement (as a crash between the push and the copy would).
        Assert.NotNull(await f.ReplicationQueue.TakeAsync(Ct));
        Assert.Equal(0, f.ReplicationQueue.Count);
        f.Replication.EnqueuePending();
        await DrainAsync(f);
        Assert.Equal(digest, (await f.Regions.GetAsync("us-west-2", Ct)).Service.FindManifest("any", "v1")!.Digest);
    }

    [Fact]
    public async Task GarbageCollection_KeepsABlobAnyRegionStillNames()
    {
        var time = new ManualTime(DateTimeOffset.UtcNow);
        await using var f = new RegistryFixture(time);
        await f.CallAsync("PutReplicationConfiguration", """{"replicationConfiguration":{"rules":[{"destinations":[{"region":"us-west-2","registryId":"000000000000"}]}]}}""");
        await f.CallAsync("CreateRepository", new { repositoryName = "app" });
        var digest = await f.PushImageAsync("app", "v1", "shared");
        await DrainAsync(f);
        var west = (await f.Regions.GetAsync("us-west-2", Ct)).Service;
        var blobs = west.FindManifest("app", "v1")!.Blobs.Append(digest).Select(b => Digest.TryParse(b, out var d) ? d.Value : default).ToList();

        // Gone from us-east-1, every blob old: us-west-2's replica still names them, so they stay.
        await f.CallAsync("BatchDeleteImage", new { repositoryName = "app", imageIds = new[] { new { imageDigest = digest } } });
        foreach (var (d, _) in f.Registry.Blobs.EnumerateBlobs().ToList())
        {
            File.SetLastWriteTimeUtc(f.Registry.Blobs.PathOf(d), time.GetUtcNow().UtcDateTime - TimeSpan.FromHours(2));
        }
        var everyRegion = f.Regions.Open.Select(r => r.Service).ToList();
        Assert.Equal(0, (await f.Registry.CollectGarbageAsync(everyRegion, Ct)).BlobsDeleted);
        Assert.All(blobs, d => Assert.True(f.Registry.Blobs.Exists(d), d.ToString()));

        // Gone from us-west-2 too: now they go.
        await f.CallInAsync("us-west-2", "BatchDeleteImage", new { repositoryName = "app", imageIds = new[] { new { imageDigest = digest } } });
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(blobs.Count, (await f.Registry.CollectGarbageAsync(everyRegion, Ct)).BlobsDeleted);
        Assert.All(blobs, d => Assert.False(f.Registry.Blobs.Exists(d), d.ToString()));
    }

    [Fact]
    public async Task Replication_OfAnIndex_CopiesItsChildrenFirst()
    {
        await using var f = new RegistryFixture();
        await f.CallAsync("PutReplicationConfiguration", """{"replicationConfiguration":{"rules":[{"destinations":[{"region":"us-west-2","registryId":"000000000000"}]}]}}""");
        await f.CallAsync("CreateRepository", new { repositoryName = "multi" });
        var child = await f.ManifestAsync("multi", "arm64");
        var childDigest = (await f.CallAsync("PutImage", new { repositoryName = "multi", imageManifest = child })).GetProperty("image").GetProperty("imageId").GetProperty("imageDigest").GetString()!;
        var index = $$$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{{{childDigest}}}","size":{{{System.Text.Encoding.UTF8.GetByteCount(child)}}},"platform":{"architecture":"arm64","os":"linux"}}]}""";
        var indexDigest = (await f.CallAsync("PutImage", new { repositoryName = "multi", imageManifest = index, imageTag = "v1" })).GetProperty("image").GetProperty("imageId").GetProperty("imageDigest").GetString()!;
        // Only the index is announced after the child's own replication: drop the child's key, so the index must bring it.
        var first = await f.ReplicationQueue.TakeAsync(Ct);
        Assert.Equal(childDigest, first!.Value.Digest);
        await DrainAsync(f);

        var west = (await f.Regions.GetAsync("us-west-2", Ct)).Service;
        Assert.Equal(indexDigest, west.FindManifest("multi", "v1")!.Digest);
        Assert.Equal([childDigest], west.FindManifest("multi", "v1")!.Children);
        Assert.NotNull(west.FindManifest("multi", childDigest));
        Assert.Equal(["us-west-2:COMPLETE"], Statuses(await f.CallAsync("DescribeImageReplicationStatus", new { repositoryName = "multi", imageId = new { imageTag = "v1" } })));
    }

    private static async Task DrainAsync(RegistryFixture f)
    {
        for (var i = 0; i < 100 && f.ReplicationQueue.Count > 0; i++)
        {
            var key = await f.ReplicationQueue.TakeAsync(Ct);
            await f.Replication.ReconcileAsync(key!.Value, Ct);
        }
        Assert.Equal(0, f.ReplicationQueue.Count);
    }

    private static List<string> Digests(JsonElement listImages)
        => [.. listImages.GetProperty("imageIds").EnumerateArray().Select(i => i.GetProperty("imageDigest").GetString()!)];

    private static List<string> Statuses(JsonElement response)
        => [.. response.GetProperty("replicationStatuses").EnumerateArray().Select(s => s.GetProperty("region").GetString() + ":" + s.GetProperty("status").GetString())];
}
