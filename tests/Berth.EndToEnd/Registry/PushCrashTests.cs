using System.Net;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>kill -9 of berth in the middle of a large docker push: nothing half-written survives, and a new push works.</summary>
public sealed class PushCrashTests() : RegistryServerTest()
{
    private const long BigLayerBytes = 200L * 1024 * 1024;

    /// <summary>Sizes of the files under uploads/ right now.</summary>
    private Dictionary<string, long> UploadSizes()
    {
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var f in RegistryApi.UploadFiles())
        {
            try
            {
                sizes[f] = new FileInfo(f).Length;
            }
            catch (IOException)
            {
            }
        }
        return sizes;
    }

    [Fact]
    public async Task Kill9DuringLargePush_LeavesNoTagNoHalfBlob_ThenPushAndPullSucceed()
    {
        var run = Server.RunId[..12];
        var local = Images.LocalName("big");
        await Images.BuildAsync(local, $"""
            FROM berth-test/busybox:latest
            RUN head -c {BigLayerBytes} /dev/urandom > /big && md5sum /big > /big.md5
            CMD ["sh", "-c", "md5sum -c /big.md5 >/dev/null && wc -c < /big"]
            """);
        var repo = $"crash/app-{run}";
        var image = $"{RegistryApi.Host}/{repo}:1";
        await Images.TagAsync(local, image);

        await using (var push = BackgroundProcess.Start("docker", ["push", image]))
        {
            // Wait until the big layer is streaming in: a file under uploads/ that keeps growing.
            await Wait.ForAsync(async () =>
            {
                var first = UploadSizes();
                await Task.Delay(100);
                var second = UploadSizes();
                // Past 8 MiB it can only be the big layer (busybox's is about 1 MiB).
                return second.Any(kv => kv.Value > 8 * 1024 * 1024 && first.TryGetValue(kv.Key, out var before) && kv.Value > before) ? second : null;
            }, TimeSpan.FromSeconds(120), "a growing upload under DATA/registry/uploads:\n" + push.Output);
            Assert.False(push.HasExited, "the push ended before berth was killed:\n" + push.Output);

            await Server.KillAsync();
            // Stop the client too, so the engine does not retry the push into the restarted berth.
            await push.KillAsync();
        }
        // What the killed berth left behind: the big layer, half uploaded.
        var partial = UploadSizes().Values.Max();
        Assert.InRange(partial, 8L * 1024 * 1024, BigLayerBytes + (BigLayerBytes / 10));

        await Server.RestartAsync();

        // No tag, no manifest; uploads/ is empty and every blob on disk is whole (hashes to its name).
        var tags = await RegistryApi.TagsAsync(repo);
        Assert.True(tags is null || tags.Count == 0, "tags after the interrupted push: " + string.Join(",", tags ?? []));
        using (var manifest = await RegistryApi.GetManifestAsync(repo, "1"))
        {
            Assert.Equal(HttpStatusCode.NotFound, manifest.StatusCode);
        }
        Assert.Empty(RegistryApi.UploadFiles());
        RegistryApi.AssertBlobsHashToTheirNames();
        foreach (var blob in RegistryApi.BlobFiles())
        {
            var path = Path.Combine(RegistryApi.BlobsDirectory, "sha256", blob[7..9], blob[7..]);
            Assert.True(new FileInfo(path).Length < BigLayerBytes / 2, $"{blob} is as large as the interrupted layer");
        }

        // The same push again, to the end; then pull it back and run it.
        var again = await Processes.RunAsync("docker", ["push", image], timeout: TimeSpan.FromMinutes(5));
        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        Assert.Equal(["1"], await RegistryApi.TagsAsync(repo));
        Assert.Empty(RegistryApi.UploadFiles());
        RegistryApi.AssertBlobsHashToTheirNames();

        Assert.Equal(0, (await DockerCli.RunAsync("rmi", image)).ExitCode);
        Assert.Equal(0, (await DockerCli.RunAsync("rmi", local)).ExitCode);
        var pull = await Processes.RunAsync("docker", ["pull", image], timeout: TimeSpan.FromMinutes(5));
        Assert.True(pull.ExitCode == 0, pull.Stdout + pull.Stderr);
        var output = await DockerCli.RunAsync("run", "--rm", "--network", "none", "--label", Server.Label, image);
        Assert.True(output.ExitCode == 0, output.Stdout + output.Stderr);
        Assert.Equal(BigLayerBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), output.Stdout.Trim());
    }
}
