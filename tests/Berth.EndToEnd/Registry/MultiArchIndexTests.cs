using System.Net;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>A multi-architecture OCI index, written by hand as an OCI layout and pushed with skopeo copy --all.</summary>
public sealed class MultiArchIndexTests : IAsyncLifetime
{
    private BerthServer? _server;
    private RegistryClient? _registry;
    private string _dir = "";

    public async ValueTask InitializeAsync()
    {
        await SkopeoCli.RequireAsync();
        _server = await BerthServer.StartAsync("server");
        _registry = new RegistryClient(_server);
        _dir = Directory.CreateTempSubdirectory("berth-e2e-oci-").FullName;
    }

    public async ValueTask DisposeAsync()
    {
        _registry?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        if (_dir.Length > 0)
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public async Task OciIndexOfTwoPlatforms_SkopeoCopyAll_IndexAndChildrenServedByDigest()
    {
        var layout = new OciLayout(_dir);
        var amd64 = layout.AddImage("linux", "amd64");
        var arm64 = layout.AddImage("linux", "arm64");
        var index = layout.Add(RegistryClient.OciIndex, RegistryClient.Utf8($$"""
            {"schemaVersion":2,"mediaType":"{{RegistryClient.OciIndex}}","manifests":[
              {{amd64.Manifest.Descriptor(""","platform":{"architecture":"amd64","os":"linux"}""")}},
              {{arm64.Manifest.Descriptor(""","platform":{"architecture":"arm64","os":"linux"}""")}}]}
            """));
        layout.WriteIndex(index, "1");

        await SkopeoCli.RunAsync("copy", "--all", "--dest-tls-verify=false", $"oci:{_dir}:1", $"docker://{_registry!.Host}/multi:1");

        // The index by digest, asked for as an OCI index: the very bytes of the layout.
        using var r = await _registry.GetManifestAsync("multi", index.Digest, RegistryClient.OciIndex);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal(RegistryClient.OciIndex, r.Content.Headers.ContentType!.MediaType);
        Assert.Equal(index.Digest, RegistryClient.Header(r, "Docker-Content-Digest"));
        var body = await r.Content.ReadAsByteArrayAsync();
        Assert.Equal(index.Bytes, body);
        Assert.Equal(index.Bytes.Length, r.Content.Headers.ContentLength);

        // The tag resolves to the same index, and so does HEAD.
        using var head = await _registry.SendAsync(HttpMethod.Head, "/v2/multi/manifests/1", null, null, ("Accept", RegistryClient.OciIndex));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(index.Digest, RegistryClient.Header(head, "Docker-Content-Digest"));
        Assert.Equal(index.Bytes.Length, head.Content.Headers.ContentLength);

        // Each child manifest by digest, with its config and layer.
        var children = JsonNode.Parse(body)!["manifests"]!.AsArray();
        Assert.Equal(2, children.Count);
        foreach (var (image, arch) in new[] { (amd64, "amd64"), (arm64, "arm64") })
        {
            var child = children.Single(c => c!["platform"]!["architecture"]!.GetValue<string>() == arch)!;
            Assert.Equal(image.Manifest.Digest, child["digest"]!.GetValue<string>());
            using var m = await _registry.GetManifestAsync("multi", image.Manifest.Digest, RegistryClient.OciManifest);
            Assert.Equal(HttpStatusCode.OK, m.StatusCode);
            Assert.Equal(RegistryClient.OciManifest, m.Content.Headers.ContentType!.MediaType);
            Assert.Equal(image.Manifest.Digest, RegistryClient.Header(m, "Docker-Content-Digest"));
            Assert.Equal(image.Manifest.Bytes, await m.Content.ReadAsByteArrayAsync());
            foreach (var blob in new[] { image.Config, image.Layer })
            {
                using var b = await _registry.SendAsync(HttpMethod.Get, $"/v2/multi/blobs/{blob.Digest}");
                Assert.Equal(HttpStatusCode.OK, b.StatusCode);
                Assert.Equal(blob.Bytes, await b.Content.ReadAsByteArrayAsync());
            }
        }

        // skopeo reads the same index back, and picks each platform's image from it.
        var raw = await SkopeoCli.RunAsync("inspect", "--raw", "--tls-verify=false", $"docker://{_registry.Host}/multi:1");
        Assert.Equal(index.Bytes, RegistryClient.Utf8(raw));
        foreach (var arch in new[] { "amd64", "arm64" })
        {
            var inspect = JsonNode.Parse(await SkopeoCli.RunAsync("--override-arch", arch, "--override-os", "linux", "inspect", "--tls-verify=false", $"docker://{_registry.Host}/multi:1"))!;
            Assert.Equal(arch, inspect["Architecture"]!.GetValue<string>());
            // skopeo reports the digest of what the tag names: the index.
            Assert.Equal(index.Digest, inspect["Digest"]!.GetValue<string>());
            Assert.Equal((arch == "amd64" ? amd64 : arm64).Layer.Digest, inspect["Layers"]![0]!.GetValue<string>());
        }
        _registry.AssertBlobsHashToTheirNames();
    }
}
