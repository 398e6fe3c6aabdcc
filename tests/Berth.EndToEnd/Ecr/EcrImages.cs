using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Ecr;

/// <summary>A hand-built image: its manifest text and digest, and the two blobs it names.</summary>
public sealed record TestImage(string Manifest, string Digest, byte[] Config, byte[] Layer)
{
    public string ConfigDigest => Sha256(Config);
    public string LayerDigest => Sha256(Layer);

    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";

    public static string Sha256(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>A Docker schema 2 manifest for one config and one layer (the bytes of the manifest are what PutImage stores).</summary>
    public static TestImage Build(string marker, int layerBytes = 64 * 1024)
    {
        var layer = new byte[layerBytes];
        new Random(marker.GetHashCode(StringComparison.Ordinal)).NextBytes(layer);
        var config = ConfigFor(marker);
        var manifest = $$$"""
            {"schemaVersion":2,"mediaType":"{{{DockerManifest}}}","config":{"mediaType":"{{{DockerConfig}}}","size":{{{config.Length}}},"digest":"{{{Sha256(config)}}}"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{{{layer.Length}}},"digest":"{{{Sha256(layer)}}}"}]}
            """;
        return new TestImage(manifest, Sha256(Encoding.UTF8.GetBytes(manifest)), config, layer);
    }

    public static byte[] ConfigFor(string marker) => Encoding.UTF8.GetBytes(
        $$$"""{"architecture":"amd64","os":"linux","config":{"Labels":{"marker":"{{{marker}}}"}},"rootfs":{"type":"layers","diff_ids":[]}}""");
}

/// <summary>Pushes hand-built images through the ECR API with the real aws CLI (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, PutImage).</summary>
public sealed class EcrPusher(AwsCli aws) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-ecr-e2e-").FullName;

    public AwsCli Aws => aws;

    /// <summary>Uploads a blob in <paramref name="parts"/> consecutive parts unless the repository has it already; returns its digest.</summary>
    public async Task<string> PushBlobAsync(string repository, byte[] content, int parts = 1)
    {
        var digest = TestImage.Sha256(content);
        var check = await aws.RunAsync("ecr", "batch-check-layer-availability", "--repository-name", repository, "--layer-digests", digest);
        if (check["layers"]![0]!["layerAvailability"]!.GetValue<string>() == "AVAILABLE")
        {
            return digest;
        }
        var upload = (await aws.RunAsync("ecr", "initiate-layer-upload", "--repository-name", repository))["uploadId"]!.GetValue<string>();
        var partSize = (content.Length + parts - 1) / parts;
        for (var first = 0; first < content.Length; first += partSize)
        {
            var last = Math.Min(content.Length, first + partSize) - 1;
            var file = Path.Combine(_dir, Guid.NewGuid().ToString("N"));
            await File.WriteAllBytesAsync(file, content[first..(last + 1)]);
            var part = await aws.RunAsync("ecr", "upload-layer-part", "--repository-name", repository, "--upload-id", upload,
                "--part-first-byte", first.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--part-last-byte", last.ToString(System.Globalization.CultureInfo.InvariantCulture), "--layer-part-blob", "fileb://" + file);
            Assert.Equal(last, part["lastByteReceived"]!.GetValue<long>());
        }
        var done = await aws.RunAsync("ecr", "complete-layer-upload", "--repository-name", repository, "--upload-id", upload, "--layer-digests", digest);
        Assert.Equal(digest, done["layerDigest"]!.GetValue<string>());
        return digest;
    }

    /// <summary>Uploads the image's blobs, then PutImage under <paramref name="tag"/>; returns the PutImage response.</summary>
    public async Task<JsonNode> PushAsync(string repository, TestImage image, string? tag, int layerParts = 1)
    {
        await PushBlobAsync(repository, image.Config);
        await PushBlobAsync(repository, image.Layer, layerParts);
        return await PutAsync(repository, image, tag);
    }

    public Task<JsonNode> PutAsync(string repository, TestImage image, string? tag)
        => aws.RunAsync(["ecr", "put-image", "--repository-name", repository, "--image-manifest", image.Manifest, .. tag is null ? Array.Empty<string>() : ["--image-tag", tag]]);

    public Task<CommandResult> TryPutAsync(string repository, TestImage image, string tag)
        => aws.TryRunAsync("ecr", "put-image", "--repository-name", repository, "--image-manifest", image.Manifest, "--image-tag", tag);

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
