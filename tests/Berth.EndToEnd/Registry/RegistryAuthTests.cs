using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>
/// berth with --registry-auth: /v2/ wants Basic credentials from GetAuthorizationToken; docker login with
/// `aws ecr get-login-password`, then push and pull, all in a temporary DOCKER_CONFIG.
/// </summary>
public sealed class RegistryAuthTests() : RegistryServerTest("--registry-auth")
{
    private readonly List<string> _configs = [];

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        foreach (var c in _configs)
        {
            Directory.Delete(c, recursive: true);
        }
    }

    private string NewDockerConfig()
    {
        var dir = Directory.CreateTempSubdirectory("berth-e2e-docker-config-").FullName;
        _configs.Add(dir);
        return dir;
    }

    private Dictionary<string, string> Env(string dockerConfig)
        => new(new AwsCli(Server.Endpoint).Environment) { ["DOCKER_CONFIG"] = dockerConfig };

    /// <summary>`PASSWORD-COMMAND | docker login --username AWS --password-stdin HOST`, through sh as a user types it.</summary>
    private Task<CommandResult> LoginAsync(string dockerConfig, string passwordCommand)
        => Processes.RunAsync("sh", ["-c", $"{passwordCommand} | docker login --username AWS --password-stdin {RegistryApi.Host}"], Env(dockerConfig));

    private static AuthenticationHeaderValue Basic(string user, string password)
        => new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password)));

    [Fact]
    public async Task WithoutCredentials_401WithBasicChallengeAndUnauthorized()
    {
        foreach (var path in new[] { "/v2/", "/v2/_catalog", "/v2/team/app/tags/list", "/v2/team/app/manifests/1" })
        {
            using var r = await RegistryApi.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            var challenge = Assert.Single(r.Headers.WwwAuthenticate);
            Assert.Equal("Basic", challenge.Scheme);
            Assert.StartsWith("realm=", challenge.Parameter, StringComparison.Ordinal);
            Assert.Equal("UNAUTHORIZED", await RegistryClient.ErrorCodeAsync(r));
            Assert.Equal("registry/2.0", RegistryClient.Header(r, "Docker-Distribution-API-Version"));
        }
        using var post = await RegistryApi.SendAsync(HttpMethod.Post, "/v2/team/app/blobs/uploads/");
        Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
        Assert.Empty(RegistryApi.UploadFiles());

        // Wrong user, wrong password, a token that is not ours, garbage: all refused.
        var password = (await new AwsCli(Server.Endpoint).TryRunAsync("ecr", "get-login-password")).Stdout.Trim();
        Assert.NotEmpty(password);
        foreach (var auth in new[] { Basic("AWS", "wrong"), Basic("admin", password), Basic("AWS", password + "x"), new AuthenticationHeaderValue("Basic", "!!!"), new AuthenticationHeaderValue("Bearer", password) })
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, "/v2/");
            req.Headers.Authorization = auth;
            using var r = await RegistryApi.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }
        using var ok = new HttpRequestMessage(HttpMethod.Get, "/v2/");
        ok.Headers.Authorization = Basic("AWS", password);
        using var okResponse = await RegistryApi.Http.SendAsync(ok);
        Assert.Equal(HttpStatusCode.OK, okResponse.StatusCode);

        // The health endpoint stays open.
        using var health = await RegistryApi.Http.GetAsync("/_berth/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task DockerLoginWithEcrPassword_PushAndPullWork_WrongPasswordFails()
    {
        await DockerCli.RequireAsync();
        var run = Server.RunId[..12];

        var wrong = NewDockerConfig();
        var bad = await LoginAsync(wrong, "echo not-a-token");
        Assert.True(bad.ExitCode != 0, "login with a wrong password succeeded:\n" + bad.Stdout + bad.Stderr);
        Assert.False(File.Exists(Path.Combine(wrong, "config.json")) && File.ReadAllText(Path.Combine(wrong, "config.json")).Contains(RegistryApi.Host, StringComparison.Ordinal));

        var image = $"{RegistryApi.Host}/auth/app-{run}:1";
        await Images.TagAsync("berth-test/busybox:latest", image);

        // Without logging in, the push is refused.
        var anonymous = await Processes.RunAsync("docker", ["push", image], new Dictionary<string, string> { ["DOCKER_CONFIG"] = NewDockerConfig() });
        Assert.NotEqual(0, anonymous.ExitCode);
        Assert.Empty(RegistryApi.BlobFiles());

        var config = NewDockerConfig();
        var login = await LoginAsync(config, "aws ecr get-login-password");
        Assert.True(login.ExitCode == 0, login.Stdout + login.Stderr);
        Assert.Contains("Login Succeeded", login.Stdout, StringComparison.Ordinal);
        Assert.Contains(RegistryApi.Host, await File.ReadAllTextAsync(Path.Combine(config, "config.json")), StringComparison.Ordinal);

        var push = await Processes.RunAsync("docker", ["push", image], new Dictionary<string, string> { ["DOCKER_CONFIG"] = config });
        Assert.True(push.ExitCode == 0, push.Stdout + push.Stderr);
        Assert.Contains("1: digest: sha256:", push.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await DockerCli.RunAsync("rmi", image)).ExitCode);
        var pull = await Processes.RunAsync("docker", ["pull", image], new Dictionary<string, string> { ["DOCKER_CONFIG"] = config });
        Assert.True(pull.ExitCode == 0, pull.Stdout + pull.Stderr);
        var output = await DockerCli.RunAsync("run", "--rm", "--network", "none", "--label", Server.Label, image, "cat", "/www/index.html");
        Assert.Equal("berth test image\n", output.Stdout);

        // Pulling with no credentials is refused too.
        Assert.Equal(0, (await DockerCli.RunAsync("rmi", image)).ExitCode);
        var anonymousPull = await Processes.RunAsync("docker", ["pull", image], new Dictionary<string, string> { ["DOCKER_CONFIG"] = NewDockerConfig() });
        Assert.NotEqual(0, anonymousPull.ExitCode);
    }
}
