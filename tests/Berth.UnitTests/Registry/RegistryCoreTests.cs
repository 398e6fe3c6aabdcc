using System.Security.Cryptography;
using System.Text;
using Berth.Core;
using Berth.Registry;
using Berth.Registry.Distribution;
using Berth.Registry.Hosting;
using Berth.Registry.Metadata;
using Berth.Registry.Storage;
using Berth.State;

namespace Berth.UnitTests.Registry;

public sealed class RegistryCoreTests : IAsyncDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-unit-registry-" + Guid.NewGuid().ToString("N"));
    private readonly IStateStore _store = SqliteStateStore.Open(":memory:");
    private readonly ManualTime _time = new(DateTimeOffset.UtcNow);
    private readonly RegistryService _registry;

    public RegistryCoreTests()
    {
        var options = new RegistryOptions { DataDirectory = _dir, GcGracePeriod = TimeSpan.FromMinutes(10) };
        var state = new RegistryState(_store);
        _registry = new RegistryService(state, new BlobStore(_dir, _time), options, new Arns(new BerthIdentity()), _time);
    }

    public async ValueTask DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true)]
    [InlineData("sha512:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true)]
    [InlineData("sha256:" + "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", false)]
    [InlineData("sha256:abc", false)]
    [InlineData("md5:" + "0123456789abcdef0123456789abcdef", false)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false)]
    [InlineData("", false)]
    public void Digest_TryParse_AcceptsOnlySha256AndSha512LowercaseHex(string value, bool valid)
        => Assert.Equal(valid, Digest.TryParse(value, out _));

    [Theory]
    [InlineData("bytes=0-9", 100, 0, 10)]
    [InlineData("bytes=90-", 100, 90, 10)]
    [InlineData("bytes=-5", 100, 95, 5)]
    [InlineData("bytes=50-500", 100, 50, 50)]
    public void TryParseRange_SatisfiableRanges(string header, long size, long offset, long length)
    {
        Assert.True(DistributionApi.TryParseRange(header, size, out var o, out var l));
        Assert.Equal((offset, length), (o, l));
    }

    [Theory]
    [InlineData("bytes=100-", 100)]
    [InlineData("bytes=5-2", 100)]
    [InlineData("bytes=0-1,4-5", 100)]
    [InlineData("items=0-1", 100)]
    [InlineData("bytes=-0", 100)]
    public void TryParseRange_UnsatisfiableRanges(string header, long size)
        => Assert.False(DistributionApi.TryParseRange(header, size, out _, out _));

    [Theory]
    [InlineData("0-99", true, 0, 99)]
    [InlineData("bytes 100-199/*", true, 100, 199)]
    [InlineData("5-2", false, 0, 0)]
    [InlineData("abc", false, 0, 0)]
    public void TryParseChunkRange_ReadsTheSpecsForm(string value, bool ok, long start, long end)
    {
        Assert.Equal(ok, DistributionApi.TryParseChunkRange(value, out var s, out var e));
        if (ok)
        {
            Assert.Equal((start, end), (s, e));
        }
    }

    [Fact]
    public async Task Upload_DigestMismatch_StoresNothing()
    {
        var session = _registry.Blobs.StartUpload("team/app");
        Assert.True(await _registry.Blobs.AppendAsync(session, new MemoryStream("hello"u8.ToArray()), 0, Ct));
        var wrong = Digest.Sha256("other"u8);
        Assert.Null(await _registry.Blobs.CompleteAsync(session, wrong, Ct));
        Assert.False(_registry.Blobs.Exists(wrong));
        Assert.False(_registry.Blobs.Exists(Digest.Sha256("hello"u8)));
        Assert.Empty(_registry.Blobs.EnumerateBlobs());
        Assert.Null(_registry.Blobs.FindUpload(session.Id));
    }

    [Fact]
    public async Task Upload_InChunks_HashesAcrossChunksAndRejectsAGap()
    {
        var data = RandomNumberGenerator.GetBytes(3000);
        var session = _registry.Blobs.StartUpload("team/app");
        Assert.True(await _registry.Blobs.AppendAsync(session, new MemoryStream(data, 0, 1000), 0, Ct));
        Assert.False(await _registry.Blobs.AppendAsync(session, new MemoryStream(data, 1000, 1000), 1500, Ct));
        Assert.Equal(1000, session.Length);
        Assert.True(await _registry.Blobs.AppendAsync(session, new MemoryStream(data, 1000, 2000), 1000, Ct));
        var digest = Digest.Sha256(data);
        Assert.Equal(3000, await _registry.Blobs.CompleteAsync(session, digest, Ct));
        await using var read = _registry.Blobs.OpenRead(digest)!;
        Assert.Equal(digest, Digest.Sha256(ReadAll(read)));
    }

    [Fact]
    public async Task Upload_Sha512Digest_IsVerifiedFromTheFile()
    {
        var data = Encoding.UTF8.GetBytes("sha512 content");
        var session = _registry.Blobs.StartUpload("team/app");
        await _registry.Blobs.AppendAsync(session, new MemoryStream(data), null, Ct);
        var digest = Digest.FromHash("sha512", SHA512.HashData(data));
        Assert.Equal(data.Length, await _registry.Blobs.CompleteAsync(session, digest, Ct));
        Assert.True(_registry.Blobs.Exists(digest));
    }

    [Fact]
    public void ManifestParser_ReadsADockerManifest()
    {
        var config = Digest.Sha256("c"u8);
        var layer = Digest.Sha256("l"u8);
        var m = ManifestParser.Parse(Encoding.UTF8.GetBytes(DockerManifest(config, 1, layer, 1)), MediaTypes.DockerManifest);
        Assert.Equal(MediaTypes.DockerManifest, m.MediaType);
        Assert.Equal([config.ToString(), layer.ToString()], m.Blobs.Select(b => b.Digest));
        Assert.False(m.IsIndex);
    }

    [Theory]
    [InlineData("not json", null)]
    [InlineData("[]", null)]
    [InlineData("{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"y\",\"fsLayers\":[]}", null)]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"a\",\"digest\":\"sha256:zz\",\"size\":1},\"layers\":[]}", null)]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"layers\":[]}", null)]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}", "application/vnd.oci.image.manifest.v1+json")]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\"}", null)]
    public void ManifestParser_RejectsInvalidManifests(string json, string? contentType)
    {
        var e = Assert.Throws<RegistryException>(() => ManifestParser.Parse(Encoding.UTF8.GetBytes(json), contentType));
        Assert.Equal("MANIFEST_INVALID", e.Code);
    }

    [Fact]
    public async Task PutManifest_MissingBlob_IsManifestBlobUnknownAndStoresNoMetadata()
    {
        var config = await PutBlobAsync("team/app", "config"u8.ToArray());
        var missing = Digest.Sha256("never uploaded"u8);
        var e = await Assert.ThrowsAsync<RegistryException>(() => _registry.PutManifestAsync("team/app", "1",
            Encoding.UTF8.GetBytes(DockerManifest(config, 6, missing, 14)), MediaTypes.DockerManifest, Ct));
        Assert.Equal("MANIFEST_BLOB_UNKNOWN", e.Code);
        Assert.Equal(0, _registry.State.Manifests.Count);
        Assert.Equal(0, _registry.State.Tags.Count);
    }

    [Fact]
    public async Task PutManifest_ImmutableRepository_RefusesToMoveATagButAcceptsTheSameContent()
    {
        var (m1, m2) = (await PushImageAsync("team/app", "a"), await PushImageAsync("team/app", "b"));
        await _registry.PutManifestAsync("team/app", "v1", m1, MediaTypes.DockerManifest, Ct);
        await _registry.UpdateRepositoryAsync("team/app", r => r.Repository.ImageTagMutability = "IMMUTABLE", Ct);
        await _registry.PutManifestAsync("team/app", "v1", m1, MediaTypes.DockerManifest, Ct);
        var e = await Assert.ThrowsAsync<RegistryException>(() => _registry.PutManifestAsync("team/app", "v1", m2, MediaTypes.DockerManifest, Ct));
        Assert.Equal("TAG_INVALID", e.Code);
        Assert.Equal(Digest.Sha256(m1).ToString(), _registry.FindManifest("team/app", "v1")!.Digest);
    }

    [Fact]
    public async Task DeleteManifest_RemovesItsTags()
    {
        var m = await PushImageAsync("team/app", "a");
        var stored = await _registry.PutManifestAsync("team/app", "v1", m, MediaTypes.DockerManifest, Ct);
        await _registry.PutManifestAsync("team/app", "latest", m, MediaTypes.DockerManifest, Ct);
        await _registry.DeleteManifestAsync("team/app", stored.Digest, Ct);
        Assert.Null(_registry.FindManifest("team/app", "v1"));
        Assert.Empty(_registry.State.TagsOf("team/app"));
    }

    [Fact]
    public async Task GarbageCollection_KeepsReferencedAndYoungBlobs_RemovesOldOrphans()
    {
        var m = await PushImageAsync("team/app", "kept");
        var manifest = await _registry.PutManifestAsync("team/app", "v1", m, MediaTypes.DockerManifest, Ct);
        var orphan = await PutBlobAsync("team/app", "orphan"u8.ToArray());

        // Young: nothing goes yet.
        var first = await _registry.CollectGarbageAsync(Ct);
        Assert.Equal(0, first.BlobsDeleted);
        Assert.True(_registry.Blobs.Exists(orphan));

        // Past the grace period the orphan (and its link) go; the image's blobs and manifest stay.
        BackdateAllBlobs(TimeSpan.FromHours(2));
        _time.Advance(TimeSpan.FromHours(1));
        var second = await _registry.CollectGarbageAsync(Ct);
        Assert.Equal(1, second.BlobsDeleted);
        Assert.False(_registry.Blobs.Exists(orphan));
        Assert.Null(_registry.StatBlob("team/app", orphan));
        foreach (var b in manifest.Blobs.Append(manifest.Digest))
        {
            Assert.True(_registry.Blobs.Exists(Digest.TryParse(b, out var d) ? d.Value : default), b);
        }

        // Once the manifest is deleted its blobs become orphans too.
        await _registry.DeleteManifestAsync("team/app", manifest.Digest, Ct);
        var third = await _registry.CollectGarbageAsync(Ct);
        Assert.Equal(manifest.Blobs.Count + 1, third.BlobsDeleted);
        Assert.Empty(_registry.Blobs.EnumerateBlobs());
    }

    [Fact]
    public async Task GarbageCollection_NeverDeletesABlobAnUploadJustRepublished()
    {
        var data = "re-uploaded"u8.ToArray();
        await PutBlobAsync("team/app", data);
        BackdateAllBlobs(TimeSpan.FromHours(2));
        _time.Advance(TimeSpan.FromHours(1));
        // The same bytes uploaded again touch the stored file, so the sweep sees a young blob.
        await PutBlobAsync("team/other", data);
        await _registry.CollectGarbageAsync(Ct);
        Assert.True(_registry.Blobs.Exists(Digest.Sha256(data)));
    }

    private void BackdateAllBlobs(TimeSpan by)
    {
        foreach (var (d, written) in _registry.Blobs.EnumerateBlobs().ToList())
        {
            File.SetLastWriteTimeUtc(_registry.Blobs.PathOf(d), written - by);
        }
    }

    private async Task<Digest> PutBlobAsync(string repo, byte[] data)
    {
        await _registry.RepositoryForPushAsync(repo, Ct);
        var session = _registry.Blobs.StartUpload(repo);
        await _registry.Blobs.AppendAsync(session, new MemoryStream(data), null, Ct);
        var digest = Digest.Sha256(data);
        Assert.Equal(data.Length, await _registry.Blobs.CompleteAsync(session, digest, Ct));
        await _registry.LinkAsync(repo, digest, data.Length, Ct);
        return digest;
    }

    private async Task<byte[]> PushImageAsync(string repo, string seed)
    {
        var config = Encoding.UTF8.GetBytes("{\"seed\":\"" + seed + "\"}");
        var layer = Encoding.UTF8.GetBytes("layer " + seed);
        var c = await PutBlobAsync(repo, config);
        var l = await PutBlobAsync(repo, layer);
        return Encoding.UTF8.GetBytes(DockerManifest(c, config.Length, l, layer.Length));
    }

    private static string DockerManifest(Digest config, long configSize, Digest layer, long layerSize) =>
        "{\"schemaVersion\":2,\"mediaType\":\"" + MediaTypes.DockerManifest + "\",\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":" + configSize
        + ",\"digest\":\"" + config + "\"},\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":" + layerSize + ",\"digest\":\"" + layer + "\"}]}";

    private static byte[] ReadAll(Stream s)
    {
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }
}
