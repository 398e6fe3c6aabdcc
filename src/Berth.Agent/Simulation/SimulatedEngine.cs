using System.Globalization;
using System.Threading.Channels;
using Berth.Core.Agent;

namespace Berth.Agent.Simulation;

/// <summary>
/// Plays a host's task life cycle without Docker: PENDING (pull) → PENDING (pulled) → RUNNING (started, dynamic
/// host ports from a per-instance counter) → on desired STOPPED: DEPROVISIONING → STOPPED (exit code 0), each step
/// after its configured delay. Same reporting rules as <see cref="TaskEngine"/> (sequences, no report before the
/// server lists a task, never relaunching a task that already ran), so the server sees an ordinary agent.
/// </summary>
/// <remarks>
/// Costs nothing while idle: no thread, no timer of its own; a pending step is one one-shot delay on the shared
/// <see cref="TimeProvider"/>. All state is guarded by one lock per instance, never held across an await.
/// </remarks>
internal sealed class SimulatedEngine(SimulationTimings timings, TimeProvider time, Func<string?> instanceArn, Action<SimulatedDesiredChange>? observer)
    : ITaskEngine
{
    // Docker's default ephemeral range (net.ipv4.ip_local_port_range), as ECS shows for dynamic host ports.
    private const int FirstDynamicPort = 32768;
    private const int LastDynamicPort = 60999;

    private readonly Dictionary<string, SimTask> _tasks = new(StringComparer.Ordinal);
    private readonly ReportBook _book = new();
    private readonly CancellationTokenSource _stop = new();
    private int _nextPort = FirstDynamicPort;

    public ChannelReader<TaskStatusReport> Reports => _book.Reader;

    public Task StartAsync(CancellationToken ct) => Task.CompletedTask;

    public IReadOnlyCollection<string> KnownTaskArns()
    {
        lock (_tasks)
        {
            return [.. _tasks.Keys];
        }
    }

    /// <summary>Tasks by simulated status, for tests and the fleet's summary.</summary>
    public int Count(string status)
    {
        lock (_tasks)
        {
            return _tasks.Values.Count(t => t.Status == status);
        }
    }

    public void Apply(DesiredState desired)
    {
        var receivedAt = time.GetTimestamp();
        List<SimulatedDesiredChange>? changes = null;
        lock (_tasks)
        {
            var listed = new HashSet<string>(StringComparer.Ordinal);
            foreach (var d in desired.Tasks)
            {
                listed.Add(d.TaskArn);
                if (!_tasks.TryGetValue(d.TaskArn, out var t))
                {
                    t = new SimTask(d.TaskArn);
                    _tasks[d.TaskArn] = t;
                }
                if (t.Desired?.DesiredStatus != d.DesiredStatus && observer is not null)
                {
                    (changes ??= []).Add(new SimulatedDesiredChange(instanceArn() ?? "", d.TaskArn, d.DesiredStatus, receivedAt));
                }
                t.Desired = d;
                _book.Learn(d.TaskArn, d.LastSequence, desired.Full);
                Drive(t);
            }
            foreach (var arn in desired.RemovedTaskArns)
            {
                if (!listed.Contains(arn))
                {
                    Forget(arn);
                }
            }
            if (desired.Full)
            {
                foreach (var arn in _tasks.Keys.Where(a => !listed.Contains(a)).ToList())
                {
                    Forget(arn);
                }
            }
        }
        if (changes is not null)
        {
            foreach (var c in changes)
            {
                observer!(c);
            }
        }
    }

    private void Forget(string arn)
    {
        if (_tasks.Remove(arn, out var t))
        {
            t.Phase++; // cancels its pending step
            _book.Forget(arn);
        }
    }

    /// <summary>Moves one task towards its desired status; called under the lock.</summary>
    private void Drive(SimTask t)
    {
        var d = t.Desired!;
        if (t.Status == "STOPPED")
        {
            return;
        }
        if (d.DesiredStatus == "STOPPED")
        {
            switch (t.Status)
            {
                case "":
                    if (d.LastStatus == "STOPPED")
                    {
                        t.Status = "STOPPED"; // nothing ran here and the server knows it stopped
                        return;
                    }
                    Stop(t, null, null);
                    return;
                case "PENDING":
                    Stop(t, null, null); // never started: nothing to wait for
                    return;
                case "RUNNING":
                    t.Status = "DEPROVISIONING";
                    Publish(t);
                    After(t, timings.StopDelay, () => Stop(t, null, null));
                    return;
                default:
                    return; // DEPROVISIONING: the stop is under way
            }
        }
        if (t.Status != "")
        {
            return;
        }
        if (d.LastStatus is "ACTIVATING" or "RUNNING" or "DEACTIVATING" or "STOPPING" or "DEPROVISIONING" or "STOPPED")
        {
            // The server saw it run; this host has nothing of it (a simulator keeps no containers across restarts).
            Stop(t, TaskEngine.LostStopCode, TaskEngine.LostReason);
            return;
        }
        t.Status = "PENDING";
        t.PullStartedAt = Now();
        Publish(t);
        After(t, timings.PullDelay, () =>
        {
            t.PullStoppedAt = Now();
            Publish(t);
            After(t, timings.StartDelay, () =>
            {
                t.Status = "RUNNING";
                t.StartedAt = Now();
                t.Ports = AssignPorts(t.Desired!.Spec);
                Publish(t);
            });
        });
    }

    private void Stop(SimTask t, string? stopCode, string? reason)
    {
        t.Phase++;
        t.ExitedNormally = t.Status is "RUNNING" or "DEPROVISIONING";
        t.Status = "STOPPED";
        t.ExecutionStoppedAt = Now();
        t.StopCode = stopCode ?? "";
        t.StoppedReason = reason ?? "";
        Publish(t);
    }

    /// <summary>Runs <paramref name="step"/> under the lock after <paramref name="delay"/>, unless the task moved on meanwhile.</summary>
    private void After(SimTask t, TimeSpan delay, Action step)
    {
        var phase = ++t.Phase;
        _ = RunAfterAsync();

        async Task RunAfterAsync()
        {
            try
            {
                await Task.Delay(delay, time, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            lock (_tasks)
            {
                if (t.Phase == phase && _tasks.TryGetValue(t.Arn, out var current) && ReferenceEquals(current, t))
                {
                    step();
                }
            }
        }
    }

    private Dictionary<string, List<PortBinding>> AssignPorts(TaskSpec? spec)
    {
        var result = new Dictionary<string, List<PortBinding>>(StringComparer.Ordinal);
        foreach (var c in spec?.Containers ?? [])
        {
            var list = new List<PortBinding>();
            foreach (var pm in c.PortMappings)
            {
                var host = pm.HostPort > 0 ? pm.HostPort : spec!.NetworkMode == "host" ? pm.ContainerPort : NextPort();
                list.Add(new PortBinding { BindIp = "0.0.0.0", ContainerPort = pm.ContainerPort, HostPort = host, Protocol = pm.Protocol is { Length: > 0 } p ? p : "tcp" });
            }
            result[c.Name] = list;
        }
        return result;
    }

    private int NextPort()
    {
        var port = _nextPort;
        _nextPort = port >= LastDynamicPort ? FirstDynamicPort : port + 1;
        return port;
    }

    private void Publish(SimTask t)
    {
        var r = new TaskStatusReport
        {
            TaskArn = t.Arn,
            LastStatus = t.Status,
            PullStartedAt = t.PullStartedAt,
            PullStoppedAt = t.PullStoppedAt,
            StartedAt = t.StartedAt,
            ExecutionStoppedAt = t.Status == "STOPPED" ? t.ExecutionStoppedAt : 0,
            StopCode = t.StopCode,
            StoppedReason = t.StoppedReason,
        };
        var taskId = t.Arn[(t.Arn.LastIndexOf('/') + 1)..];
        foreach (var c in t.Desired?.Spec?.Containers ?? [])
        {
            var cs = new ContainerStatus { Name = c.Name };
            var started = t.StartedAt != 0;
            cs.LastStatus = t.Status switch
            {
                "RUNNING" or "DEPROVISIONING" => "RUNNING",
                "STOPPED" => "STOPPED",
                _ => "PENDING",
            };
            if (started)
            {
                cs.RuntimeId = string.Create(CultureInfo.InvariantCulture, $"sim-{taskId}-{c.Name}");
                if (t.Ports.TryGetValue(c.Name, out var ports))
                {
                    cs.NetworkBindings.AddRange(ports);
                }
            }
            if (t.Status == "STOPPED" && t.ExitedNormally)
            {
                cs.HasExitCode = true;
                cs.ExitCode = 0;
            }
            if (c.HealthCheck is { Command.Count: > 0 })
            {
                cs.HealthStatus = cs.LastStatus == "RUNNING" ? "HEALTHY" : "UNKNOWN";
            }
            r.Containers.Add(cs);
        }
        _book.Publish(r);
    }

    private long Now() => time.GetUtcNow().ToUnixTimeMilliseconds();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private sealed class SimTask(string arn)
    {
        public string Arn { get; } = arn;
        public DesiredTask? Desired { get; set; }
        public string Status { get; set; } = "";
        public int Phase { get; set; }
        public long PullStartedAt { get; set; }
        public long PullStoppedAt { get; set; }
        public long StartedAt { get; set; }
        public long ExecutionStoppedAt { get; set; }
        public string StopCode { get; set; } = "";
        public string StoppedReason { get; set; } = "";
        public bool ExitedNormally { get; set; }
        public Dictionary<string, List<PortBinding>> Ports { get; set; } = new(StringComparer.Ordinal);
    }
}

/// <summary>How long each simulated step takes.</summary>
internal sealed record SimulationTimings(TimeSpan PullDelay, TimeSpan StartDelay, TimeSpan StopDelay);
