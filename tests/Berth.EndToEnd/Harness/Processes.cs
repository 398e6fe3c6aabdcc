using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Berth.EndToEnd.Harness;

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public JsonNode Json => JsonNode.Parse(Stdout) ?? throw new InvalidOperationException("empty output");
}

internal static class Processes
{
    public static async Task<CommandResult> RunAsync(string file, IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        var stdout = p.StandardOutput.ReadToEndAsync(cts.Token);
        var stderr = p.StandardError.ReadToEndAsync(cts.Token);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in time");
        }
        return new CommandResult(p.ExitCode, await stdout, await stderr);
    }
}

/// <summary>
/// AWS CLI v2 (Debian's awscli package, /usr/bin/aws; ./test.sh installs it): for what only v2 has, `aws logs tail`.
/// Debian's 2.9 predates AWS_ENDPOINT_URL, so the endpoint goes on the command line.
/// </summary>
public sealed class AwsCliV2(string endpoint)
{
    public const string Path = "/usr/bin/aws";

    public Task<CommandResult> RunAsync(params string[] args)
    {
        Assert.True(File.Exists(Path), $"{Path} (AWS CLI v2, Debian's awscli package) is missing: ./test.sh installs it");
        return Processes.RunAsync(Path, ["--endpoint-url", endpoint, .. args], new Dictionary<string, string>
        {
            ["AWS_ACCESS_KEY_ID"] = "test",
            ["AWS_SECRET_ACCESS_KEY"] = "test",
            ["AWS_DEFAULT_REGION"] = "us-east-1",
            ["AWS_PAGER"] = "",
        });
    }
}

/// <summary>The real AWS CLI, pointed at a Berth endpoint the way AWS tooling expects a custom endpoint.</summary>
public sealed class AwsCli(string endpoint)
{
    public Dictionary<string, string> Environment { get; } = new()
    {
        ["AWS_ENDPOINT_URL"] = endpoint,
        ["AWS_ACCESS_KEY_ID"] = "test",
        ["AWS_SECRET_ACCESS_KEY"] = "test",
        ["AWS_DEFAULT_REGION"] = "us-east-1",
        ["AWS_PAGER"] = "",
        ["AWS_MAX_ATTEMPTS"] = "1",
    };

    public Task<CommandResult> TryRunAsync(params string[] args) => Processes.RunAsync("aws", [.. args, "--output", "json"], Environment);

    /// <summary>Runs a command that must succeed and returns its JSON output.</summary>
    public async Task<JsonNode> RunAsync(params string[] args)
    {
        var r = await TryRunAsync(args);
        Assert.True(r.ExitCode == 0, $"aws {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stderr}");
        return r.Stdout.Trim().Length == 0 ? new JsonObject() : r.Json;
    }

    /// <summary>Waits until an agent has registered in <paramref name="cluster"/> and returns the first instance's ARN.</summary>
    public async Task<string> WaitForContainerInstanceAsync(string cluster, TimeSpan timeout)
    {
        var list = await Wait.ForAsync(async () =>
        {
            // Under `berth server` the cluster comes into being with the first agent's registration: until then
            // the answer is ClusterNotFoundException, which means "not yet", not a failure.
            var r = await TryRunAsync("ecs", "list-container-instances", "--cluster", cluster);
            if (r.ExitCode != 0 && r.Stderr.Contains("ClusterNotFoundException", StringComparison.Ordinal))
            {
                return null;
            }
            Assert.True(r.ExitCode == 0, $"aws ecs list-container-instances --cluster {cluster} failed ({r.ExitCode}): {r.Stderr}");
            var l = r.Json;
            return l["containerInstanceArns"]!.AsArray().Count > 0 ? l : null;
        }, timeout, $"an agent to register in cluster {cluster}");
        return list["containerInstanceArns"]![0]!.GetValue<string>();
    }
}

/// <summary>boto3 scripts under Python/, run with the endpoint in BERTH_ENDPOINT.</summary>
public static class Boto3
{
    public static Task<CommandResult> RunAsync(string script, string endpoint, params string[] args)
        => RunWithEnvAsync(script, endpoint, new Dictionary<string, string>(), args);

    /// <summary>As <see cref="RunAsync"/>, with <paramref name="env"/> added (and overriding the test/test keys).</summary>
    public static Task<CommandResult> RunWithEnvAsync(string script, string endpoint, IReadOnlyDictionary<string, string> env, params string[] args)
    {
        var all = new Dictionary<string, string>
        {
            ["BERTH_ENDPOINT"] = endpoint,
            ["AWS_ACCESS_KEY_ID"] = "test",
            ["AWS_SECRET_ACCESS_KEY"] = "test",
            ["AWS_DEFAULT_REGION"] = "us-east-1",
        };
        foreach (var (k, v) in env)
        {
            all[k] = v;
        }
        return Processes.RunAsync("python3", [Path.Combine(AppContext.BaseDirectory, "Python", script), .. args], all);
    }
}

public static class DockerCli
{
    private static readonly Lazy<Task<bool>> Available = new(async () =>
    {
        try
        {
            return (await Processes.RunAsync("docker", ["info", "--format", "{{.ServerVersion}}"], timeout: TimeSpan.FromSeconds(20))).ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    /// <summary>Skips the test when no engine answers, except under CI=true, where that is a failure.</summary>
    public static async Task RequireAsync()
    {
        if (await Available.Value)
        {
            return;
        }
        if (string.Equals(System.Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail("CI=true but no Docker engine answers `docker info`: ./test.sh should have started dockerd.");
        }
        Assert.Skip("No Docker engine (docker info failed).");
    }

    public static Task<CommandResult> RunAsync(params string[] args) => Processes.RunAsync("docker", args);

    public static async Task<string[]> ContainersAsync(string label, bool all = true)
    {
        var r = await RunAsync(["ps", "-q", .. (all ? new[] { "-a" } : []), "--filter", "label=" + label]);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public static async Task RemoveByLabelAsync(string label)
    {
        try
        {
            var ids = await ContainersAsync(label);
            if (ids.Length > 0)
            {
                await RunAsync(["rm", "-f", .. ids]);
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // no docker CLI: nothing could have been created
        }
    }
}

public static class Wait
{
    /// <summary>Polls <paramref name="probe"/> until it returns non-null or the deadline passes.</summary>
    public static async Task<T> ForAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what) where T : class
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var v = await probe();
            if (v is not null)
            {
                return v;
            }
            if (sw.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:F0} s waiting for {what}");
            }
            await Task.Delay(200);
        }
    }
}
