using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>skopeo between Berth and dir:/oci: layouts, both ways; skopeo inspect and list-tags read what Berth stores.</summary>
public sealed class SkopeoCopyTests : RegistryServerTest
{
    private readonly List<string> _dirs = [];

    protected override async Task RequireToolsAsync()
    {
        await DockerCli.RequireAsync();
        await SkopeoCli.RequireAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        foreach (var d in _dirs)
        {
            Directory.Delete(d, recursive: true);
        }
    }

    private string TempDir()
    {
        var d = Directory.CreateTempSubdirectory("berth-e2e-skopeo-").FullName;
        _dirs.Add(d);
        return d;
    }

    private async Task<JsonNode> InspectAsync(string repoAndTag, bool raw = false)
        => JsonNode.Parse(await SkopeoCli.RunAsync(["inspect", .. (raw ? new[] { "--raw" } : []), "--tls-verify=false", $"docker://{RegistryApi.Host}/{repoAndTag}"]))!;

    private static List<string> LayerDigests(JsonNode manifest) => manifest["layers"]!.AsArray().Select(l => l!["digest"]!.GetValue<string>()).ToList();

    [Fact]
    public async Task CopyToDirAndOciLayouts_AndBackToOtherRepositories_KeepsDigestsAndLayers()
    {
        var host = RegistryApi.Host;
        await SkopeoCli.RunAsync("copy", "--dest-tls-verify=false", "docker-daemon:berth-test/busybox:latest", $"docker://{host}/source/busybox:1");
        await SkopeoCli.RunAsync("copy", "--src-tls-verify=false", "--dest-tls-verify=false", $"docker://{host}/source/busybox:1", $"docker://{host}/source/busybox:2");

        var source = await InspectAsync("source/busybox:1");
        var digest = source["Digest"]!.GetValue<string>();
        Assert.StartsWith("sha256:", digest, StringComparison.Ordinal);
        Assert.Equal(["1", "2"], source["RepoTags"]!.AsArray().Select(t => t!.GetValue<string>()).Order(StringComparer.Ordinal).ToList());
        Assert.Equal("linux", source["Os"]!.GetValue<string>());
        var sourceManifest = await InspectAsync("source/busybox:1", raw: true);
        var layers = LayerDigests(sourceManifest);
        Assert.Single(layers);

        var tags = JsonNode.Parse(await SkopeoCli.RunAsync("list-tags", "--tls-verify=false", $"docker://{host}/source/busybox"))!;
        Assert.Equal("source/busybox", tags["Repository"]!.GetValue<string>().Split('/', 2)[1]);
        Assert.Equal(["1", "2"], tags["Tags"]!.AsArray().Select(t => t!.GetValue<string>()).ToList());

        // dir: keeps the manifest byte for byte; back to Berth it has the same digest.
        var dir = TempDir();
        await SkopeoCli.RunAsync("copy", "--src-tls-verify=false", $"docker://{host}/source/busybox:1", $"dir:{dir}");
        Assert.Equal(digest, RegistryClient.Sha256(await File.ReadAllBytesAsync(Path.Combine(dir, "manifest.json"))));
        Assert.True(File.Exists(Path.Combine(dir, layers[0]["sha256:".Length..])));
        await SkopeoCli.RunAsync("copy", "--dest-tls-verify=false", $"dir:{dir}", $"docker://{host}/copies/from-dir:1");
        var fromDir = await InspectAsync("copies/from-dir:1");
        Assert.Equal(digest, fromDir["Digest"]!.GetValue<string>());
        Assert.Equal(["1"], fromDir["RepoTags"]!.AsArray().Select(t => t!.GetValue<string>()).ToList());

        // oci: converts to an OCI manifest (new digest) over the same compressed layer; Berth stores that as sent.
        var oci = TempDir();
        await SkopeoCli.RunAsync("copy", "--src-tls-verify=false", $"docker://{host}/source/busybox:1", $"oci:{oci}:1");
        await SkopeoCli.RunAsync("copy", "--dest-tls-verify=false", $"oci:{oci}:1", $"docker://{host}/copies/from-oci:1");
        var fromOciRaw = await InspectAsync("copies/from-oci:1", raw: true);
        Assert.Equal(RegistryClient.OciManifest, fromOciRaw["mediaType"]!.GetValue<string>());
        Assert.Equal(layers, LayerDigests(fromOciRaw));
        var fromOci = await InspectAsync("copies/from-oci:1");
        Assert.NotEqual(digest, fromOci["Digest"]!.GetValue<string>());
        using (var m = await RegistryApi.GetManifestAsync("copies/from-oci", fromOci["Digest"]!.GetValue<string>()))
        {
            Assert.Equal(RegistryClient.OciManifest, m.Content.Headers.ContentType!.MediaType);
            Assert.Equal(fromOci["Digest"]!.GetValue<string>(), RegistryClient.Sha256(await m.Content.ReadAsByteArrayAsync()));
        }

        // And back out of Berth again: the OCI copy runs through dir: unchanged.
        var again = TempDir();
        await SkopeoCli.RunAsync("copy", "--src-tls-verify=false", $"docker://{host}/copies/from-oci:1", $"dir:{again}");
        Assert.Equal(fromOci["Digest"]!.GetValue<string>(), RegistryClient.Sha256(await File.ReadAllBytesAsync(Path.Combine(again, "manifest.json"))));

        Assert.Equal(["copies/from-dir", "copies/from-oci", "source/busybox"], (await RegistryApi.CatalogAsync()).Order(StringComparer.Ordinal).ToList());
        RegistryApi.AssertBlobsHashToTheirNames();
    }
}
