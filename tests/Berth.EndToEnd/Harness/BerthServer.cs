using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Berth.EndToEnd.Harness;

/// <summary>
/// The real <c>berth</c> binary as a child process on free loopback ports with a data directory of its
/// own. Every container its agent creates carries <c>berth.test-run=&lt;RunId&gt;</c>; disposing kills the
/// process and removes those containers, so tests run in parallel and beside a developer's berth.
/// </summary>
public sealed class BerthServer : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private readonly Dictionary<string, Process> _agents = new(StringComparer.Ordinal);
    private Process? _process;

    private BerthServer(string mode, int port, int agentPort, string dataDir, string runId)
    {
        Mode = mode;
        Port = port;
        AgentPort = agentPort;
        DataDirectory = dataDir;
        RunId = runId;
    }

    public string Mode { get; }
    public int Port { get; private set; }
    public int AgentPort { get; private set; }
    public string DataDirectory { get; }
    public string RunId { get; }
    public string Endpoint => $"http://127.0.0.1:{Port}";
    public string Label => $"berth.test-run={RunId}";
    public string Log { get { lock (_log) { return _log.ToString(); } } }
    private IReadOnlyDictionary<string, string>? _environment;

    public int? Pid => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>Starts <c>berth up</c> (or <c>berth server</c> when <paramref name="mode"/> is "server").</summary>
    public static Task<BerthServer> StartAsync(string mode = "up", params string[] extraArgs)
        => StartWithDataAsync(Path.Combine(Path.GetTempPath(), "berth-e2e-" + Guid.NewGuid().ToString("N")), mode, extraArgs);

    /// <summary>Starts berth with extra environment variables for its process (and its restarts).</summary>
    public static Task<BerthServer> StartWithEnvAsync(IReadOnlyDictionary<string, string> environment, string mode = "up", params string[] extraArgs)
        => StartWithDataAsync(Path.Combine(Path.GetTempPath(), "berth-e2e-" + Guid.NewGuid().ToString("N")), mode, extraArgs, environment);

    /// <summary>Starts berth on a data directory that already holds state (it is removed on dispose).</summary>
    public static Task<BerthServer> StartWithDataAsync(string dataDirectory, string mode = "up", params string[] extraArgs)
        => StartWithDataAsync(dataDirectory, mode, extraArgs, null);

    private static async Task<BerthServer> StartWithDataAsync(string dataDirectory, string mode, string[] extraArgs, IReadOnlyDictionary<string, string>? environment)
    {
        var server = new BerthServer(mode, FreePort(), FreePort(), dataDirectory, Guid.NewGuid().ToString("N")) { _environment = environment };
        Directory.CreateDirectory(server.DataDirectory);
        // A port found free can be taken by another process before berth binds it; on that race (and only
        // on it) the first start moves to fresh ports. Restarts keep their ports: tests rely on them.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await server.RestartAsync(extraArgs);
                return server;
            }
            catch (InvalidOperationException) when (attempt < 5 && server.Log.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                lock (server._log)
                {
                    server._log.Clear();
                }
                server.Port = FreePort();
                server.AgentPort = FreePort();
            }
        }
    }

    /// <summary>(Re)starts the process on the same ports and data directory.</summary>
    public async Task RestartAsync(params string[] extraArgs)
    {
        _process = Spawn([Mode, "--log-level", "Warning", "--listen", $"127.0.0.1:{Port}", "--agent-listen", $"127.0.0.1:{AgentPort}",
            "--data", DataDirectory, .. (Mode == "up" ? new[] { "--container-label", Label, "--memory", "2048", "--cpu", "2048" } : []), .. extraArgs], "server");
        await WaitHealthyAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>
    /// Starts a separate <c>berth agent</c> process dialling this server. Each <paramref name="name"/> is its own
    /// container instance (its identity lives in DATA/NAME/agent/agent.json); starting a name again after
    /// <see cref="KillAgentAsync"/> brings the same instance back.
    /// </summary>
    public void StartAgent(string cluster = "default", string name = DefaultAgent, params string[] extraArgs)
    {
        // 2048 MiB and 2048 CPU units unless extraArgs give the agent its own budget.
        string[] budget = [.. extraArgs.Contains("--memory") ? [] : new[] { "--memory", "2048" }, .. extraArgs.Contains("--cpu") ? [] : new[] { "--cpu", "2048" }];
        var p = Spawn(["agent", "--server", Endpoint, "--data", Path.Combine(DataDirectory, name), "--cluster", cluster,
            "--container-label", Label, .. budget, "--log-level", "Warning", .. extraArgs], name == DefaultAgent ? "agent" : name);
        lock (_agents)
        {
            _agents[name] = p;
        }
    }

    public const string DefaultAgent = "agent-proc";

    /// <summary>The URL a TLS agent is given (the API port; the agent discovers the agent port and dials it with TLS).</summary>
    public string TlsEndpoint => $"https://127.0.0.1:{Port}";

    /// <summary>
    /// Starts a separate <c>berth agent --server https://...</c> process for a server started with --agent-tls, with
    /// <c>--join</c> when <paramref name="joinToken"/> is given. Logs at Information so that joins show in <see cref="Log"/>.
    /// </summary>
    public void StartTlsAgent(string cluster, string name, string? joinToken, params string[] extraArgs)
    {
        var p = Spawn(["agent", "--server", TlsEndpoint, .. joinToken is null ? [] : new[] { "--join", joinToken }, "--data", Path.Combine(DataDirectory, name),
            "--cluster", cluster, "--container-label", Label, "--memory", "2048", "--cpu", "2048", "--log-level", "Information", .. extraArgs], name);
        lock (_agents)
        {
            _agents[name] = p;
        }
    }

    /// <summary>The named agent's own data directory (agent.json, tls/).</summary>
    public string AgentDataDirectory(string name = DefaultAgent) => Path.Combine(DataDirectory, name, "agent");

    /// <summary>Waits for the named agent process to exit and returns its exit code.</summary>
    public async Task<int> WaitForAgentExitAsync(string name, TimeSpan timeout)
    {
        Process? a;
        lock (_agents)
        {
            _agents.TryGetValue(name, out a);
        }
        if (a is null)
        {
            throw new InvalidOperationException($"agent {name} was never started");
        }
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await a.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"agent {name} still runs after {timeout.TotalSeconds:F0} s:\n{Log}");
        }
        return a.ExitCode;
    }

    /// <summary>Runs <c>berth join-token --data DATA</c> (with --rotate when asked) and returns the token it prints.</summary>
    public async Task<string> JoinTokenAsync(bool rotate = false)
    {
        var r = await Processes.RunAsync("dotnet", [BerthDll, "join-token", "--data", DataDirectory, .. rotate ? new[] { "--rotate" } : []]);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"berth join-token failed ({r.ExitCode}): {r.Stderr}");
        }
        return r.Stdout.Trim();
    }

    /// <summary>The agent id and container instance ARN (null before it registered) the named agent keeps in its identity file.</summary>
    public (string AgentId, string? ContainerInstanceArn) AgentIdentity(string name = DefaultAgent)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(DataDirectory, name, "agent", "agent.json")))!;
        return (json["agentId"]!.GetValue<string>(), json["containerInstanceArn"]?.GetValue<string>());
    }

    /// <summary>kill -9 of one separate agent process only; the server and other agents keep running.</summary>
    public async Task KillAgentAsync(string name = DefaultAgent)
    {
        Process? a;
        lock (_agents)
        {
            _agents.TryGetValue(name, out a);
        }
        if (a is { HasExited: false })
        {
            a.Kill(entireProcessTree: true);
            await a.WaitForExitAsync();
        }
    }

    /// <summary>Sends a signal (STOP to freeze it, CONT to thaw it) to one separate agent process.</summary>
    public async Task SignalAgentAsync(string name, string signal)
    {
        Process? a;
        lock (_agents)
        {
            _agents.TryGetValue(name, out a);
        }
        if (a is not { HasExited: false })
        {
            throw new InvalidOperationException($"agent {name} is not running");
        }
        var r = await Processes.RunAsync("kill", ["-" + signal, a.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {a.Id}: {r.Stderr}");
        }
    }

    /// <summary>kill -9 of the server process (and of the separate agents when there are some).</summary>
    public async Task KillAsync()
    {
        Process[] agents;
        lock (_agents)
        {
            agents = [.. _agents.Values];
        }
        foreach (var p in new[] { _process }.Concat(agents))
        {
            if (p is { HasExited: false })
            {
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync();
            }
        }
    }

    private Process Spawn(string[] args, string tag)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (key, value) in _environment ?? new Dictionary<string, string>())
        {
            psi.Environment[key] = value;
        }
        psi.ArgumentList.Add(BerthDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start berth");
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_log) { _log.Append('[').Append(tag).Append("] ").AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_log) { _log.Append('[').Append(tag).Append("] ").AppendLine(e.Data); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private async Task WaitHealthyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (_process is { HasExited: true })
            {
                throw new InvalidOperationException($"berth exited with {_process.ExitCode}:\n{Log}");
            }
            try
            {
                using var r = await http.GetAsync($"{Endpoint}/_berth/health");
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"berth did not become healthy in {timeout}:\n{Log}");
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        await DockerCli.RemoveByLabelAsync(Label);
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// A loopback port that is free now, chosen below the kernel's ephemeral range (32768+) so that the
    /// outgoing connections of parallel tests cannot be handed the same port before the server binds it.
    /// </summary>
    public static int FreePort()
    {
        for (var i = 0; i < 200; i++)
        {
            var port = Random.Shared.Next(20000, 32000);
            try
            {
                using var l = new TcpListener(IPAddress.Loopback, port);
                l.Start();
                return port;
            }
            catch (SocketException)
            {
            }
        }
        using var any = new TcpListener(IPAddress.Loopback, 0);
        any.Start();
        return ((IPEndPoint)any.LocalEndpoint).Port;
    }

    /// <summary>Runs a one-shot berth command (for example <c>credentials create</c>) and returns what it printed.</summary>
    public static Task<CommandResult> RunCliAsync(params string[] args) => Processes.RunAsync("dotnet", [BerthDll, .. args]);

    /// <summary>The checkout this test assembly was built from (the directory holding Berth.slnx).</summary>
    internal static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Berth.slnx")))
            {
                dir = dir.Parent;
            }
            return dir?.FullName ?? throw new InvalidOperationException("Berth.slnx not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The berth.dll built with the same configuration as this test assembly.</summary>
    internal static string BerthDll
    {
        get
        {
#if DEBUG
            const string config = "Debug";
#else
            const string config = "Release";
#endif
            var dll = Path.Combine(RepoRoot, "src", "Berth.Cli", "bin", config, "net10.0", "berth.dll");
            return File.Exists(dll) ? dll : throw new InvalidOperationException($"{dll} is missing: build src/Berth.Cli -c {config} first");
        }
    }
}
