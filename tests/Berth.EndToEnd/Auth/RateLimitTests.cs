using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>
/// <c>berth server --rate-limits FILE</c> with the aws CLI: a credential over its bucket gets ThrottlingException
/// ("Rate exceeded", HTTP 400) as from ECS, another credential keeps its own bucket, and a server given a bad file
/// refuses to start and says what is wrong with it.
/// </summary>
public sealed partial class RateLimitTests
{
    [Fact]
    public async Task CredentialOverItsBucket_GetsThrottlingException_OtherCredentialDoesNot()
    {
        var data = Path.Combine(Path.GetTempPath(), "berth-e2e-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(data);
        var limits = Path.Combine(data, "limits.json");
        await File.WriteAllTextAsync(limits, """
            { "buckets": [ { "name": "Cluster read actions", "burst": 3, "perSecond": 0.01, "actions": ["ecs:DescribeClusters", "ecs:ListClusters"] } ] }
            """);
        var a = await CreateAsync(data, "first");
        var b = await CreateAsync(data, "second");
        await using var server = await BerthServer.StartWithDataAsync(data, "server", "--auth", "sigv4", "--rate-limits", limits);
        var first = Cli(server, a);
        for (var i = 0; i < 3; i++)
        {
            await first.RunAsync("ecs", i % 2 == 0 ? "list-clusters" : "describe-clusters");
        }
        var throttled = await first.TryRunAsync("ecs", "list-clusters");
        Assert.NotEqual(0, throttled.ExitCode);
        Assert.Contains("An error occurred (ThrottlingException) when calling the ListClusters operation", throttled.Stderr, StringComparison.Ordinal);
        Assert.Contains("Rate exceeded", throttled.Stderr, StringComparison.Ordinal);
        // Actions outside every bucket are not limited; the other credential has a full bucket of its own.
        await first.RunAsync("ecs", "list-task-definitions");
        await Cli(server, b).RunAsync("ecs", "list-clusters");
    }

    [Fact]
    public async Task BadRateLimitFile_ServerRefusesToStart_NamingTheField()
    {
        var data = Path.Combine(Path.GetTempPath(), "berth-e2e-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(data);
        try
        {
            var limits = Path.Combine(data, "limits.json");
            await File.WriteAllTextAsync(limits, """{ "buckets": [ { "burst": 3, "perSecond": 1, "actions": ["ListClusters"] } ] }""");
            var r = await BerthServer.RunCliAsync("server", "--listen", $"127.0.0.1:{BerthServer.FreePort()}", "--agent-listen", $"127.0.0.1:{BerthServer.FreePort()}",
                "--data", data, "--rate-limits", limits);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("buckets[0].actions: 'ListClusters' is not SERVICE:Action", r.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task<(string Key, string Secret)> CreateAsync(string data, string name)
    {
        var r = await BerthServer.RunCliAsync(["credentials", "create", "--data", data, "--name", name]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        return (KeyLine().Match(r.Stdout).Groups[1].Value, SecretLine().Match(r.Stdout).Groups[1].Value);
    }

    private static AwsCli Cli(BerthServer server, (string Key, string Secret) c)
    {
        var cli = new AwsCli(server.Endpoint);
        cli.Environment["AWS_ACCESS_KEY_ID"] = c.Key;
        cli.Environment["AWS_SECRET_ACCESS_KEY"] = c.Secret;
        return cli;
    }

    [GeneratedRegex(@"AccessKeyId:\s+(AKIA[A-Z2-7]{16})")]
    private static partial Regex KeyLine();

    [GeneratedRegex(@"SecretAccessKey:\s+(\S{40})")]
    private static partial Regex SecretLine();
}
