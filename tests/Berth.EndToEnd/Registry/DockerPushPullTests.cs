using System.Net;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>The docker CLI against Berth's registry: build, push, rmi, pull, run; a second push deduplicates.</summary>
public sealed class DockerPushPullTests() : RegistryServerTest()
{

    [Fact]
    public async Task MultiLayerImage_PushRmiPullRun_ThenSecondRepositoryMountsEveryLayer()
    {
        var run = Server.RunId[..12];
        var local = Images.LocalName("app");
        await Images.BuildAsync(local, $"""
            FROM berth-test/busybox:latest
            RUN echo "first layer {run}" > /one.txt
            COPY two.txt /two.txt
            RUN echo "third layer" > /three.txt && cat /one.txt /two.txt /three.txt > /all.txt
            CMD ["cat", "/all.txt"]
            """, new Dictionary<string, string> { ["two.txt"] = "second layer\n" });

        var repo = $"team/app-{run}";
        var image = Images.Track($"{RegistryApi.Host}/{repo}:1");
        await Images.TagAsync(local, image);
        var push = await DockerCli.RunAsync("push", image);
        Assert.True(push.ExitCode == 0, push.Stdout + push.Stderr);
        Assert.Contains("1: digest: sha256:", push.Stdout, StringComparison.Ordinal);

        // What the registry now holds: a Docker schema 2 manifest of four layers (busybox + three).
        using var m = await RegistryApi.GetManifestAsync(repo, "1");
        Assert.Equal(HttpStatusCode.OK, m.StatusCode);
        Assert.Equal(RegistryClient.DockerManifest, m.Content.Headers.ContentType!.MediaType);
        var manifestBytes = await m.Content.ReadAsByteArrayAsync();
        var manifestDigest = RegistryClient.Sha256(manifestBytes);
        Assert.Equal(manifestDigest, RegistryClient.Header(m, "Docker-Content-Digest"));
        var manifest = JsonNode.Parse(manifestBytes)!;
        var layers = manifest["layers"]!.AsArray().Select(l => l!["digest"]!.GetValue<string>()).ToList();
        Assert.Equal(4, layers.Count);
        var config = manifest["config"]!["digest"]!.GetValue<string>();
        Assert.Equal(["1"], await RegistryApi.TagsAsync(repo));

        // rmi every local name of the image, so the pull below really downloads its layers.
        Assert.Equal(0, (await DockerCli.RunAsync("rmi", image)).ExitCode);
        Assert.Equal(0, (await DockerCli.RunAsync("rmi", local)).ExitCode);
        Assert.NotEqual(0, (await DockerCli.RunAsync("image", "inspect", image)).ExitCode);

        var pull = await DockerCli.RunAsync("pull", image);
        Assert.True(pull.ExitCode == 0, pull.Stdout + pull.Stderr);
        Assert.Contains("Digest: " + manifestDigest, pull.Stdout, StringComparison.Ordinal);
        Assert.Contains("Pull complete", pull.Stdout, StringComparison.Ordinal);

        var output = await DockerCli.RunAsync("run", "--rm", "--network", "none", "--label", Server.Label, image);
        Assert.True(output.ExitCode == 0, output.Stderr);
        Assert.Equal($"first layer {run}\nsecond layer\nthird layer\n", output.Stdout);

        // The same image into a second repository: docker mounts (or finds) every layer, uploads nothing again.
        var blobsBefore = RegistryApi.BlobFiles();
        var second = Images.Track($"{RegistryApi.Host}/other/app-{run}:1");
        await Images.TagAsync(image, second);
        var push2 = await DockerCli.RunAsync("push", second);
        Assert.True(push2.ExitCode == 0, push2.Stdout + push2.Stderr);
        // docker names layers by their uncompressed ids here; each of the four ends mounted or found, none pushed.
        var outcomes = push2.Stdout.Split('\n', StringSplitOptions.TrimEntries)
            .Select(l => System.Text.RegularExpressions.Regex.Match(l, "^([0-9a-f]{12}): (Mounted from .+|Layer already exists|Pushed)$"))
            .Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        Assert.Equal(layers.Count, outcomes.Count);
        Assert.All(outcomes.Values, o => Assert.True(o == $"Mounted from {repo}" || o == "Layer already exists", $"a layer was uploaded again:\n{push2.Stdout}"));
        Assert.DoesNotContain("Pushed", push2.Stdout, StringComparison.Ordinal);
        Assert.Contains($"1: digest: {manifestDigest}", push2.Stdout, StringComparison.Ordinal);

        // On disk: exactly one file per digest, shared by both repositories; the second push added none.
        var files = RegistryApi.BlobFiles();
        Assert.Equal(blobsBefore, files);
        Assert.Equal(new SortedSet<string>([.. layers, config, manifestDigest], StringComparer.Ordinal), files);
        RegistryApi.AssertBlobsHashToTheirNames();
        Assert.Equal([$"other/app-{run}", repo], (await RegistryApi.CatalogAsync()).Order(StringComparer.Ordinal).ToList());

        // Both repositories serve every layer.
        foreach (var r in new[] { repo, $"other/app-{run}" })
        {
            foreach (var layer in layers)
            {
                using var head = await RegistryApi.SendAsync(HttpMethod.Head, $"/v2/{r}/blobs/{layer}");
                Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            }
        }
    }
}
