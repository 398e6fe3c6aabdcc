using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry;
using Berth.Registry.Hosting;
using Berth.State;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.UnitTests.Registry;

/// <summary>The registry as the server wires it (in-memory store, blobs in a temp directory), driven through the ECR API.</summary>
internal sealed class RegistryFixture : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "berth-registry-" + Guid.NewGuid().ToString("N"));

    public RegistryFixture(TimeProvider? time = null, IStateStore? store = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(store ?? SqliteStateStore.Open(":memory:"));
        services.AddSingleton(new BerthIdentity());
        services.AddSingleton<Arns>();
        if (time is not null)
        {
            services.AddSingleton(time);
        }
        services.AddBerthRegistry(new RegistryOptions { DataDirectory = _directory });
        _services = services.BuildServiceProvider();
        Registry = _services.GetRequiredService<RegistryService>();
        Api = _services.GetRequiredService<AwsJsonService>();
        Maintenance = _services.GetServices<IRegistryMaintenance>().ToList();
        Regions = _services.GetRequiredService<RegistryRegions>();
    }

    /// <summary>Every region's registry (the fixture's calls go to the published one, us-east-1).</summary>
    public RegistryRegions Regions { get; }

    /// <summary>The replication worker, driven step by step (its loop is not started here).</summary>
    public Berth.Registry.Replication.ReplicationWorker Replication => _services.GetRequiredService<Berth.Registry.Replication.ReplicationWorker>();

    public Berth.Registry.Replication.ReplicationQueue ReplicationQueue => _services.GetRequiredService<Berth.Registry.Replication.ReplicationQueue>();

    /// <summary>Calls an operation of another region's ECR API (what a request signed for that region reaches).</summary>
    public async Task<JsonElement> CallInAsync(string region, string operation, object request)
    {
        var api = (await Regions.GetAsync(region)).Ecr;
        var handler = api.Find(operation) ?? throw new InvalidOperationException(operation);
        using var doc = JsonDocument.Parse(request is string s ? s : JsonSerializer.Serialize(request));
        var bytes = await handler(doc.RootElement.Clone(), CancellationToken.None);
        return JsonDocument.Parse(bytes).RootElement.Clone();
    }

    public RegistryService Registry { get; }
    public AwsJsonService Api { get; }
    public IReadOnlyList<IRegistryMaintenance> Maintenance { get; }

    public async Task<JsonElement> CallAsync(string operation, string json)
    {
        var handler = Api.Find(operation) ?? throw new InvalidOperationException(operation);
        using var doc = JsonDocument.Parse(json);
        var bytes = await handler(doc.RootElement.Clone(), CancellationToken.None);
        return JsonDocument.Parse(bytes).RootElement.Clone();
    }

    public Task<JsonElement> CallAsync(string operation, object request)
        => CallAsync(operation, JsonSerializer.Serialize(request));

    /// <summary>Calls an operation that must fail and returns the error's type and message.</summary>
    public async Task<AwsException> CallFailsAsync(string operation, object request)
        => await Assert.ThrowsAsync<AwsException>(() => CallAsync(operation, request is string s ? s : JsonSerializer.Serialize(request)));

    /// <summary>Uploads a layer through InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload.</summary>
    public async Task<string> PushBlobAsync(string repository, byte[] content)
    {
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));
        var upload = (await CallAsync("InitiateLayerUpload", new { repositoryName = repository })).GetProperty("uploadId").GetString()!;
        await CallAsync("UploadLayerPart", new { repositoryName = repository, uploadId = upload, partFirstByte = 0, partLastByte = content.Length - 1, layerPartBlob = Convert.ToBase64String(content) });
        await CallAsync("CompleteLayerUpload", new { repositoryName = repository, uploadId = upload, layerDigests = new[] { digest } });
        return digest;
    }

    /// <summary>Pushes a one-layer OCI image whose config carries <paramref name="marker"/> (so each marker is a distinct image); returns its digest.</summary>
    public async Task<string> PushImageAsync(string repository, string? tag, string marker)
    {
        var manifest = await ManifestAsync(repository, marker);
        var put = await CallAsync("PutImage", tag is null
            ? new { repositoryName = repository, imageManifest = manifest }
            : (object)new { repositoryName = repository, imageManifest = manifest, imageTag = tag });
        return put.GetProperty("image").GetProperty("imageId").GetProperty("imageDigest").GetString()!;
    }

    /// <summary>An OCI image manifest whose blobs are pushed (and already in the repository).</summary>
    public async Task<string> ManifestAsync(string repository, string marker)
    {
        var layer = Encoding.UTF8.GetBytes("layer of " + marker);
        var config = Encoding.UTF8.GetBytes($$$"""{"architecture":"amd64","os":"linux","config":{"Labels":{"marker":"{{{marker}}}"}},"rootfs":{"type":"layers","diff_ids":[]}}""");
        var layerDigest = await BlobDigestAsync(repository, layer);
        var configDigest = await BlobDigestAsync(repository, config);
        return $$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{{configDigest}}","size":{{config.Length}}},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{{layerDigest}}","size":{{layer.Length}}}]}""";
    }

    private async Task<string> BlobDigestAsync(string repository, byte[] content)
    {
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));
        var check = await CallAsync("BatchCheckLayerAvailability", new { repositoryName = repository, layerDigests = new[] { digest } });
        return check.GetProperty("layers")[0].GetProperty("layerAvailability").GetString() == "AVAILABLE" ? digest : await PushBlobAsync(repository, content);
    }

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
