using System.Net;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>kill -9 of berth in the middle of a large docker push: nothing half-written survives, and a new push works.</summary>
public sealed class PushCrashTests : IAsyncLifetime
{
    private const long BigLayerBytes = 200L * 1024 * 1024;
    private BerthServer? _server;
    private RegistryClient? _registry;
    private LocalImages? _images;

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        _server = await BerthServer.StartAsync("server");
        _registry = new RegistryClient(_server);
        _images = new LocalImages(_server.RunId);
    }

    public async ValueTask DisposeAsync()
    {
        if (_images is not null)
        {
            await _images.DisposeAsync();
        }
        _registry?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    /// <summary>Sizes of the files under uploads/ right now.</summary>
    private Dictionary<string, long> UploadSizes()
    {
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var f in _registry!.UploadFiles())
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
        var run = _server!.RunId[..12];
        var local = _images!.LocalName("big");
        await _images.BuildAsync(local, $"""
            FROM berth-test/busybox:latest
            RUN head -c {BigLayerBytes} /dev/urandom > /big && md5sum /big > /big.md5
            CMD ["sh", "-c", "md5sum -c /big.md5 >/dev/null && wc -c < /big"]
            """);
        var repo = $"crash/app-{run}";
        var image = $"{_registry!.Host}/{repo}:1";
        await _images.TagAsync(local, image);

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

            await _server.KillAsync();
            // Stop the client too, so the engine does not retry the push into the restarted berth.
            await push.KillAsync();
        }
        // What the killed berth left behind: the big layer, half uploaded.
        var partial = UploadSizes().Values.Max();
        Assert.InRange(partial, 8L * 1024 * 1024, BigLayerBytes + (BigLayerBytes / 10));

        await _server.RestartAsync();

        // No tag, no manifest; uploads/ is empty and every blob on disk is whole (hashes to its name).
        var tags = await _registry.TagsAsync(repo);
        Assert.True(tags is null || tags.Count == 0, "tags after the interrupted push: " + string.Join(",", tags ?? []));
        using (var manifest = await _registry.GetManifestAsync(repo, "1"))
        {
            Assert.Equal(HttpStatusCode.NotFound, manifest.StatusCode);
        }
        Assert.Empty(_registry.UploadFiles());
        _registry.AssertBlobsHashToTheirNames();
        foreach (var blob in _registry.BlobFiles())
        {
            var path = Path.Combine(_registry.BlobsDirectory, "sha256", blob[7..9], blob[7..]);
            Assert.True(new FileInfo(path).Length < BigLayerBytes / 2, $"{blob} is as large as the interrupted layer");
        }

        // The same push again, to the end; then pull it back and run it.
        var again = await Processes.RunAsync("docker", ["push", image], timeout: TimeSpan.FromMinutes(5));
        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        Assert.Equal(["1"], await _registry.TagsAsync(repo));
        Assert.Empty(_registry.UploadFiles());
        _registry.AssertBlobsHashToTheirNames();

        Assert.Equal(0, (await DockerCli.RunAsync("rmi", image)).ExitCode);
        Assert.Equal(0, (await DockerCli.RunAsync("rmi", local)).ExitCode);
        var pull = await Processes.RunAsync("docker", ["pull", image], timeout: TimeSpan.FromMinutes(5));
        Assert.True(pull.ExitCode == 0, pull.Stdout + pull.Stderr);
        var output = await DockerCli.RunAsync("run", "--rm", "--network", "none", "--label", _server.Label, image);
        Assert.True(output.ExitCode == 0, output.Stdout + output.Stderr);
        Assert.Equal(BigLayerBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), output.Stdout.Trim());
    }
}
