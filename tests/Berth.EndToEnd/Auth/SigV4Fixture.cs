using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>One <c>berth server --auth sigv4</c> with three credentials made by <c>berth credentials create</c>: admin, read-only, and one with a session token.</summary>
public sealed partial class SigV4Fixture : IAsyncLifetime
{
    public BerthServer Server { get; private set; } = null!;
    public (string Key, string Secret) Admin { get; private set; }
    public (string Key, string Secret) ReadOnly { get; private set; }
    public (string Key, string Secret, string Token) Session { get; private set; }

    public async ValueTask InitializeAsync()
    {
        var data = Path.Combine(Path.GetTempPath(), "berth-e2e-" + Guid.NewGuid().ToString("N"));
        Admin = Parse(await CreateAsync(data, "--name", "admin"));
        ReadOnly = Parse(await CreateAsync(data, "--name", "viewer", "--permissions", "read-only"));
        var s = await CreateAsync(data, "--name", "temporary", "--session-token");
        var (k, sec) = Parse(s);
        Session = (k, sec, TokenLine().Match(s.Stdout).Groups[1].Value);
        Server = await BerthServer.StartWithDataAsync(data, "server", "--auth", "sigv4");
    }

    private static async Task<CommandResult> CreateAsync(string data, params string[] args)
    {
        var r = await BerthServer.RunCliAsync(["credentials", "create", "--data", data, .. args]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        return r;
    }

    private static (string, string) Parse(CommandResult r)
        => (KeyLine().Match(r.Stdout).Groups[1].Value, SecretLine().Match(r.Stdout).Groups[1].Value);

    /// <summary>The AWS CLI signing with <paramref name="key"/>.</summary>
    public AwsCli Cli(string key, string secret, string? token = null)
    {
        var cli = new AwsCli(Server.Endpoint);
        cli.Environment["AWS_ACCESS_KEY_ID"] = key;
        cli.Environment["AWS_SECRET_ACCESS_KEY"] = secret;
        if (token is not null)
        {
            cli.Environment["AWS_SESSION_TOKEN"] = token;
        }
        return cli;
    }

    public async ValueTask DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }

    [GeneratedRegex(@"AccessKeyId:\s+(AKIA[A-Z2-7]{16}|ASIA[A-Z2-7]{16})")]
    private static partial Regex KeyLine();

    [GeneratedRegex(@"SecretAccessKey:\s+(\S{40})")]
    private static partial Regex SecretLine();

    [GeneratedRegex(@"SessionToken:\s+(\S+)")]
    private static partial Regex TokenLine();
}
