using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>
/// The README's "Running Berth across machines, securely" section, its four shell blocks run as written: a
/// credential, `berth server --listen 0.0.0.0:4566`, `berth join-token`, `berth agent --server https://10.0.0.5:4566
/// --join ...`, and the aws CLI with the credential. They run in a network namespace of the test's own whose
/// loopback also carries 10.0.0.5 (so the server's "every address" is that namespace's and nothing else), with
/// the UPPER-CASE placeholders filled from what the earlier blocks printed and /var/lib/berth* moved to a
/// temporary directory. Needs root (ip netns), as CI has.
/// </summary>
public sealed partial class ReadmeSecureSetupTests
{
    private const string Section = "### Running Berth across machines, securely";

    [Fact]
    public async Task SecureSection_PastedAsWritten_AgentJoinsOverTls_AwsCliUsesTheCredential()
    {
        await DockerCli.RequireAsync();
        var blocks = ShellBlocks(await File.ReadAllTextAsync(Path.Combine(BerthServer.RepoRoot, "README.md")));
        Assert.True(blocks.Count >= 4, $"the README's secure section has {blocks.Count} bash blocks; the test expects its four steps");

        var temp = Directory.CreateTempSubdirectory("berth-readme-").FullName;
        var ns = "berth-readme-" + Guid.NewGuid().ToString("N")[..8];
        var background = new List<Process>();
        var output = new StringBuilder();
        try
        {
            // `berth` on PATH as ./run.sh puts it there.
            var bin = Directory.CreateDirectory(Path.Combine(temp, "bin")).FullName;
            var launcher = Path.Combine(bin, "berth");
            await File.WriteAllTextAsync(launcher, $"#!/bin/sh\nexec dotnet \"{BerthServer.BerthDll}\" \"$@\"\n");
            Assert.Equal(0, (await Processes.RunAsync("chmod", ["755", launcher])).ExitCode);
            var path = bin + ":" + Environment.GetEnvironmentVariable("PATH");

            foreach (var cmd in new[] { $"ip netns add {ns}", $"ip netns exec {ns} ip link set lo up", $"ip netns exec {ns} ip addr add 10.0.0.5/32 dev lo" })
            {
                var r = await Processes.RunAsync("sh", ["-c", cmd]);
                Assert.True(r.ExitCode == 0, $"{cmd} failed ({r.ExitCode}): {r.Stderr} (the test needs root for network namespaces)");
            }

            string Fill(string block, IReadOnlyDictionary<string, string> values)
            {
                var text = block.Replace("/var/lib/berth-agent", Path.Combine(temp, "agent"), StringComparison.Ordinal)
                    .Replace("/var/lib/berth", Path.Combine(temp, "server"), StringComparison.Ordinal);
                foreach (var (k, v) in values)
                {
                    text = text.Replace(k, v, StringComparison.Ordinal);
                }
                return text;
            }

            // Runs a block's lines in the namespace, in order: `berth server` and `berth agent` (which run until stopped)
            // in the background, the lines between them in one bash -e each; returns what those printed.
            async Task<string> RunBlockAsync(string block)
            {
                var printed = new StringBuilder();
                var foreground = new StringBuilder();
                async Task FlushAsync()
                {
                    if (foreground.ToString().Split('\n').All(l => l.Trim().Length == 0 || l.TrimStart().StartsWith('#')))
                    {
                        foreground.Clear();
                        return;
                    }
                    var r = await Processes.RunAsync("ip", ["netns", "exec", ns, "bash", "-c", "set -e\n" + foreground],
                        new Dictionary<string, string> { ["PATH"] = path }, TimeSpan.FromSeconds(90));
                    Assert.True(r.ExitCode == 0, $"README block failed ({r.ExitCode}):\n{block}\nstdout: {r.Stdout}\nstderr: {r.Stderr}\nbackground: {output}");
                    printed.Append(r.Stdout);
                    foreground.Clear();
                }
                foreach (var line in block.Split('\n'))
                {
                    if (line.StartsWith("berth server ", StringComparison.Ordinal) || line.StartsWith("berth agent ", StringComparison.Ordinal))
                    {
                        await FlushAsync();
                        background.Add(StartInNamespace(ns, line, path, output));
                    }
                    else
                    {
                        foreground.Append(line).Append('\n');
                    }
                }
                await FlushAsync();
                return printed.ToString();
            }

            // 1. A credential, then the server on every address of the namespace.
            var created = await RunBlockAsync(Fill(blocks[0], new Dictionary<string, string>()));
            var keyId = KeyIdLine().Match(created).Groups[1].Value;
            var secret = SecretLine().Match(created).Groups[1].Value;
            Assert.False(string.IsNullOrEmpty(keyId), "credentials create printed no AccessKeyId: " + created);
            Assert.False(string.IsNullOrEmpty(secret), "credentials create printed no SecretAccessKey: " + created);
            string? health = null;
            try
            {
                await Wait.ForAsync(async () =>
                {
                    var r = await Processes.RunAsync("ip", ["netns", "exec", ns, "curl", "-s", "http://10.0.0.5:4566/_berth/health"]);
                    health = $"({r.ExitCode}) {r.Stdout}";
                    return r.ExitCode == 0 && r.Stdout.Contains("\"sigv4\"", StringComparison.Ordinal) ? r.Stdout : null;
                }, TimeSpan.FromSeconds(90), "the README's server to answer on 10.0.0.5:4566 with auth sigv4");
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException($"{e.Message}; last answer: {health}; server output:\n{output}", e);
            }

            // 2. The join token.
            var token = JoinToken().Match(await RunBlockAsync(Fill(blocks[1], new Dictionary<string, string>()))).Value;
            Assert.False(string.IsNullOrEmpty(token), "berth join-token printed no token");

            // 3. The agent joins with it (TLS: the server listens off loopback).
            await RunBlockAsync(Fill(blocks[2], new Dictionary<string, string> { ["JOIN-TOKEN"] = token }));

            // 4. The aws CLI with the credential sees the agent's instance, ACTIVE and connected.
            var step4 = Fill(blocks[3], new Dictionary<string, string> { ["ACCESS-KEY-ID"] = keyId, ["SECRET-ACCESS-KEY"] = secret });
            string? last = null;
            string shown;
            try
            {
                shown = await Wait.ForAsync(async () =>
                {
                    var r = await Processes.RunAsync("ip", ["netns", "exec", ns, "bash", "-c", step4],
                        new Dictionary<string, string> { ["PATH"] = path }, TimeSpan.FromSeconds(90));
                    last = $"({r.ExitCode}) {r.Stdout} {r.Stderr}";
                    // Both commands' answers: the listing (JSON) and the instance ACTIVE and connected (text).
                    return r.ExitCode == 0 && r.Stdout.Contains("containerInstanceArns", StringComparison.Ordinal) && ActiveConnected().IsMatch(r.Stdout) ? r.Stdout : null;
                }, TimeSpan.FromSeconds(90), "the joined agent's instance to show ACTIVE and connected through the aws CLI");
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException($"{e.Message}; last answer: {last}; server and agent output:\n{output}", e);
            }
            Assert.Contains("container-instance/default/", shown, StringComparison.Ordinal);

            // The agent really joined: it holds a client certificate from the server's CA and no plaintext fallback.
            Assert.True(File.Exists(Path.Combine(temp, "agent", "agent", "tls", "agent.crt")), "the agent keeps its client certificate in DATA/agent/tls: " + output);

            // And the credential is required: the same call unsigned is refused.
            var unsigned = await Processes.RunAsync("ip", ["netns", "exec", ns, "aws", "ecs", "list-clusters", "--no-sign-request", "--endpoint-url", "http://10.0.0.5:4566", "--region", "us-east-1"]);
            Assert.NotEqual(0, unsigned.ExitCode);
            Assert.Contains("MissingAuthenticationToken", unsigned.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var p in background)
            {
                try
                {
                    p.Kill(entireProcessTree: true);
                    await p.WaitForExitAsync();
                }
                catch (InvalidOperationException)
                {
                }
                p.Dispose();
            }
            await Processes.RunAsync("ip", ["netns", "del", ns]);
            Directory.Delete(temp, recursive: true);
        }
    }

    private static Process StartInNamespace(string ns, string line, string path, StringBuilder output)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, "bash", "-c", "exec " + line })
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["PATH"] = path;
        var p = Process.Start(psi)!;
        void Collect(object? _, DataReceivedEventArgs e)
        {
            if (e.Data is { } d)
            {
                lock (output)
                {
                    output.Append(d).Append('\n');
                }
            }
        }
        p.OutputDataReceived += Collect;
        p.ErrorDataReceived += Collect;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>The ```bash blocks of the secure section, in order, with comment lines and line continuations kept.</summary>
    internal static List<string> ShellBlocks(string readme)
    {
        var start = readme.IndexOf(Section, StringComparison.Ordinal);
        Assert.True(start >= 0, $"README.md has no '{Section}'");
        var end = readme.IndexOf("\n### ", start + Section.Length, StringComparison.Ordinal);
        var section = end < 0 ? readme[start..] : readme[start..end];
        return BashBlock().Matches(section).Select(m => m.Groups[1].Value).ToList();
    }

    [GeneratedRegex("```bash\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex BashBlock();

    [GeneratedRegex(@"AccessKeyId:\s+(\S+)")]
    private static partial Regex KeyIdLine();

    [GeneratedRegex(@"SecretAccessKey:\s+(\S+)")]
    private static partial Regex SecretLine();

    [GeneratedRegex(@"berth-join\.[0-9a-f]+\.[0-9a-f]+")]
    private static partial Regex JoinToken();

    [GeneratedRegex(@"ACTIVE\s+True")]
    private static partial Regex ActiveConnected();
}
