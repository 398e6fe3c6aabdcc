using System.Net;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>
/// With --auth sigv4 the registry wants a token, and the token carries its credential's permissions:
/// docker login with a read-only key's token pulls but cannot push; an admin's token pushes.
/// </summary>
public sealed class SigV4RegistryTests(SigV4Fixture f) : IClassFixture<SigV4Fixture>, IAsyncDisposable
{
    private readonly List<string> _configs = [];
    private readonly List<string> _images = [];

    public async ValueTask DisposeAsync()
    {
        foreach (var i in _images)
        {
            await DockerCli.RunAsync("rmi", "-f", i);
        }
        foreach (var c in _configs)
        {
            Directory.Delete(c, recursive: true);
        }
    }

    private async Task<Dictionary<string, string>> LoginAsync((string Key, string Secret) credential)
    {
        var config = Directory.CreateTempSubdirectory("berth-e2e-docker-config-").FullName;
        _configs.Add(config);
        var env = new Dictionary<string, string>(f.Cli(credential.Key, credential.Secret).Environment) { ["DOCKER_CONFIG"] = config };
        var login = await Processes.RunAsync("sh", ["-c", $"aws ecr get-login-password | docker login --username AWS --password-stdin 127.0.0.1:{f.Server.Port}"], env);
        Assert.True(login.ExitCode == 0, login.Stdout + login.Stderr);
        return new Dictionary<string, string> { ["DOCKER_CONFIG"] = config };
    }

    [Fact]
    public async Task ReadOnlyToken_PullsButCannotPush_AdminTokenPushes_NoTokenNothing()
    {
        await DockerCli.RequireAsync();
        using (var http = new HttpClient())
        {
            using var anonymous = await http.GetAsync($"{f.Server.Endpoint}/v2/");
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }
        var unsignedToken = await f.Cli("test", "test").TryRunAsync("ecr", "get-login-password");
        Assert.Contains("(UnrecognizedClientException)", unsignedToken.Stderr, StringComparison.Ordinal);

        var image = $"127.0.0.1:{f.Server.Port}/auth/ro-{Guid.NewGuid().ToString("N")[..8]}:1";
        _images.Add(image);
        Assert.Equal(0, (await DockerCli.RunAsync("tag", "berth-test/busybox:latest", image)).ExitCode);

        var viewer = await LoginAsync(f.ReadOnly);
        var denied = await Processes.RunAsync("docker", ["push", image], viewer);
        Assert.NotEqual(0, denied.ExitCode);
        Assert.Contains("denied", denied.Stdout + denied.Stderr, StringComparison.Ordinal);

        var admin = await LoginAsync(f.Admin);
        var push = await Processes.RunAsync("docker", ["push", image], admin);
        Assert.True(push.ExitCode == 0, push.Stdout + push.Stderr);

        Assert.Equal(0, (await DockerCli.RunAsync("rmi", image)).ExitCode);
        var pull = await Processes.RunAsync("docker", ["pull", image], viewer);
        Assert.True(pull.ExitCode == 0, pull.Stdout + pull.Stderr);

        // And the read-only token cannot delete what it pulled (the distribution spec's DENIED, 403).
        var config = await File.ReadAllTextAsync(Path.Combine(viewer["DOCKER_CONFIG"], "config.json"));
        var auth = System.Text.Json.Nodes.JsonNode.Parse(config)!["auths"]![$"127.0.0.1:{f.Server.Port}"]!["auth"]!.GetValue<string>();
        using var client = new HttpClient();
        using var del = new HttpRequestMessage(HttpMethod.Delete, $"{f.Server.Endpoint}/v2/{image.Split('/', 2)[1].Split(':')[0]}/manifests/1");
        del.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic", auth);
        using var d = await client.SendAsync(del);
        Assert.Equal(HttpStatusCode.Forbidden, d.StatusCode);
        Assert.Contains("DENIED", await d.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
