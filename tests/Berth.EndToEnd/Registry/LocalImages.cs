using System.Diagnostics;
using System.Text;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>
/// Images a test builds or tags in the local Docker engine, every one of them removed again on dispose.
/// Names carry the run id, so parallel runs (and a developer's own images) never collide.
/// </summary>
public sealed class LocalImages(string runId) : IAsyncDisposable
{
    private readonly List<string> _tags = [];

    /// <summary>"berth-e2e-&lt;run&gt;/NAME:TAG" — a local name nobody else uses.</summary>
    public string LocalName(string name, string tag = "1") => $"berth-e2e-{runId[..12]}/{name}:{tag}";

    /// <summary>Remembers <paramref name="tag"/> for removal at the end.</summary>
    public string Track(string tag)
    {
        lock (_tags)
        {
            _tags.Add(tag);
        }
        return tag;
    }

    /// <summary><c>docker build</c> of a Dockerfile and context files (offline: --network none).</summary>
    public async Task BuildAsync(string tag, string dockerfile, IReadOnlyDictionary<string, string>? files = null)
    {
        Track(tag);
        var context = Directory.CreateTempSubdirectory("berth-e2e-build-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(context, "Dockerfile"), dockerfile);
            foreach (var (name, content) in files ?? new Dictionary<string, string>())
            {
                await File.WriteAllTextAsync(Path.Combine(context, name), content);
            }
            var r = await Processes.RunAsync("docker", ["build", "--network", "none", "--force-rm", "-t", tag, context], timeout: TimeSpan.FromMinutes(5));
            Assert.True(r.ExitCode == 0, $"docker build failed:\n{r.Stdout}\n{r.Stderr}");
        }
        finally
        {
            Directory.Delete(context, recursive: true);
        }
    }

    public async Task TagAsync(string source, string target)
    {
        Track(target);
        var r = await DockerCli.RunAsync("tag", source, target);
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    public async ValueTask DisposeAsync()
    {
        string[] tags;
        lock (_tags)
        {
            tags = [.. _tags.Distinct()];
        }
        foreach (var tag in tags.Reverse())
        {
            await DockerCli.RunAsync("rmi", "-f", tag);
        }
    }
}

/// <summary>A child process that runs in the background while the test acts (e.g. a push to interrupt).</summary>
public sealed class BackgroundProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private BackgroundProcess(Process process) => _process = process;

    public static BackgroundProcess Start(string file, IEnumerable<string> args, IDictionary<string, string>? env = null)
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
        var p = Process.Start(psi)!;
        var bp = new BackgroundProcess(p);
        p.OutputDataReceived += (_, e) => bp.Append(e.Data);
        p.ErrorDataReceived += (_, e) => bp.Append(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return bp;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    public string Output { get { lock (_output) { return _output.ToString(); } } }

    public bool HasExited => _process.HasExited;

    public async Task<int> WaitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
