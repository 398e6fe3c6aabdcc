using Berth.Agent;
using Berth.Agent.Runtime;
using Berth.Core.Agent;
using Docker.DotNet.Models;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>An in-memory container engine: containers, their states and an event stream, with a log of every call.</summary>
internal sealed class FakeContainerRuntime : IContainerRuntime
{
    private readonly Dictionary<string, Container> _containers = new(StringComparer.Ordinal);
    private readonly List<string> _calls = [];
    private Action<RuntimeEvent>? _watcher;
    private TaskCompletionSource? _watch;
    private int _nextId;
    private int _watches;

    /// <summary>Every call as "verb:argument" (list:* for a full list, list:ARN for one task's), in order.</summary>
    public IReadOnlyList<string> Calls
    {
        get
        {
            lock (_containers)
            {
                return [.. _calls];
            }
        }
    }

    public int Watches => Volatile.Read(ref _watches);

    /// <summary>Completes once an event watcher is subscribed (the engine subscribes on its own thread after StartAsync).</summary>
    public async Task WaitUntilWatchedAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            lock (_containers)
            {
                if (_watcher is not null)
                {
                    return;
                }
            }
            await Task.Delay(1, cts.Token); // waits for the engine's thread, not for time to pass
        }
    }

    public List<CreateContainerParameters> Created { get; } = [];

    /// <summary>When set, an exit or stop records the container's FinishedAt from it, as Docker does.</summary>
    public TimeProvider? Time { get; set; }

    public void ClearCalls()
    {
        lock (_containers)
        {
            _calls.Clear();
        }
    }

    /// <summary>A container that was there before the agent started (adopted by its labels).</summary>
    public string Add(string taskArn, string name, string state = "running", int exitCode = 0, DateTimeOffset? finishedAt = null)
    {
        lock (_containers)
        {
            var id = $"c{++_nextId}";
            _containers[id] = new Container(id, taskArn, name) { State = state, ExitCode = exitCode, FinishedAt = finishedAt };
            return id;
        }
    }

    public IReadOnlyList<(string TaskArn, string Name, string State)> Containers()
    {
        lock (_containers)
        {
            return [.. _containers.Values.Select(c => (c.TaskArn, c.Name, c.State))];
        }
    }

    public string IdOf(string taskArn, string name)
    {
        lock (_containers)
        {
            return _containers.Values.Single(x => x.TaskArn == taskArn && x.Name == name).Id;
        }
    }

    /// <summary>Removed behind the agent's back (docker rm -f), with Docker's "destroy" event.</summary>
    public void RemoveBehindBack(string taskArn, string name)
    {
        Container c;
        lock (_containers)
        {
            c = _containers.Values.Single(x => x.TaskArn == taskArn && x.Name == name);
            _containers.Remove(c.Id);
        }
        Emit(c, "die");
        Emit(c, "destroy");
    }

    /// <summary>The container's process exits with <paramref name="exitCode"/>, and Docker says "die".</summary>
    public void Exit(string taskArn, string name, int exitCode)
    {
        Container c;
        lock (_containers)
        {
            c = _containers.Values.Single(x => x.TaskArn == taskArn && x.Name == name);
            c.State = "exited";
            c.ExitCode = exitCode;
            c.FinishedAt = Time?.GetUtcNow();
        }
        Emit(c, "die");
    }

    /// <summary>The container's health check gives a verdict (starting, healthy, unhealthy), and Docker says "health_status".</summary>
    public void SetHealth(string taskArn, string name, string health)
    {
        Container c;
        lock (_containers)
        {
            c = _containers.Values.Single(x => x.TaskArn == taskArn && x.Name == name);
            c.Health = health;
        }
        Emit(c, "health_status");
    }

    /// <summary>The event stream breaks, as when dockerd restarts.</summary>
    public void BreakEventStream()
    {
        TaskCompletionSource? watch;
        lock (_containers)
        {
            watch = _watch;
            _watch = null;
            _watcher = null;
        }
        watch?.TrySetException(new IOException("events stream reset"));
    }

    private void Emit(Container c, string action)
    {
        Action<RuntimeEvent>? watcher;
        lock (_containers)
        {
            watcher = _watcher;
        }
        watcher?.Invoke(new RuntimeEvent(c.Id, c.TaskArn, action));
    }

    private void Log(string call)
    {
        lock (_containers)
        {
            _calls.Add(call);
        }
    }

    public Task<string> VersionAsync(CancellationToken ct) => Task.FromResult("27.0.0-fake");

    public Task<IReadOnlyList<RuntimeContainer>> ListAsync(string? taskArn, CancellationToken ct)
    {
        Log($"list:{taskArn ?? "*"}");
        lock (_containers)
        {
            return Task.FromResult<IReadOnlyList<RuntimeContainer>>(
                [.. _containers.Values.Where(c => taskArn is null || c.TaskArn == taskArn).Select(c => c.Snapshot())]);
        }
    }

    public Task<RuntimeContainer?> InspectAsync(string id, CancellationToken ct)
    {
        Log($"inspect:{id}");
        lock (_containers)
        {
            return Task.FromResult(_containers.TryGetValue(id, out var c) ? c.Snapshot() : null);
        }
    }

    public Task EnsureImageAsync(string image, RegistryAuth? auth, CancellationToken ct)
    {
        Log($"pull:{image}");
        return image.Contains("missing", StringComparison.Ordinal)
            ? Task.FromException(new RuntimeException($"pull access denied for {image}"))
            : Task.CompletedTask;
    }

    public Task EnsureAwsvpcAsync(CancellationToken ct)
    {
        Log("awsvpc");
        return Task.CompletedTask;
    }

    public Task<string> CreateAsync(CreateContainerParameters parameters, CancellationToken ct)
    {
        var name = parameters.Labels[ContainerLabels.ContainerName];
        Log($"create:{name}");
        lock (_containers)
        {
            Created.Add(parameters);
            var id = $"c{++_nextId}";
            _containers[id] = new Container(id, parameters.Labels[ContainerLabels.TaskArn], name) { State = "created" };
            return Task.FromResult(id);
        }
    }

    /// <summary>Containers (by name in the task) whose start the engine refuses, as Docker refuses a missing device.</summary>
    public HashSet<string> FailStartOf { get; } = new(StringComparer.Ordinal);

    public Task StartAsync(string id, CancellationToken ct)
    {
        Log($"start:{id}");
        Container c;
        lock (_containers)
        {
            c = _containers[id];
            if (FailStartOf.Contains(c.Name))
            {
                return Task.FromException(new RuntimeException($"error gathering device information while adding custom device \"/dev/nope\" ({c.Name})"));
            }
            c.State = "running";
        }
        Emit(c, "start");
        return Task.CompletedTask;
    }

    /// <summary>The timeout of every stop, by container id (the last one asked for).</summary>
    public Dictionary<string, int> StopTimeouts { get; } = [];

    public Task StopAsync(string id, int timeoutSeconds, CancellationToken ct)
    {
        Log($"stop:{id}");
        lock (_containers)
        {
            StopTimeouts[id] = timeoutSeconds;
        }
        Container c;
        lock (_containers)
        {
            c = _containers[id];
            if (c.State != "running")
            {
                return Task.CompletedTask;
            }
            c.State = "exited";
            c.ExitCode = 143; // SIGTERM
            c.FinishedAt = Time?.GetUtcNow();
        }
        Emit(c, "die");
        Emit(c, "stop");
        return Task.CompletedTask;
    }

    public Task RemoveAsync(string id, CancellationToken ct)
    {
        Log($"remove:{id}");
        Container? c;
        lock (_containers)
        {
            _containers.Remove(id, out c);
        }
        if (c is not null)
        {
            Emit(c, "destroy");
        }
        return Task.CompletedTask;
    }

    public Task RemoveTaskVolumesAsync(string taskId, CancellationToken ct)
    {
        Log($"volumes:{taskId}");
        return Task.CompletedTask;
    }

    public Task WatchAsync(Action<RuntimeEvent> onEvent, CancellationToken ct)
    {
        Log("watch");
        Interlocked.Increment(ref _watches);
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_containers)
        {
            _watcher = onEvent;
            _watch = tcs;
        }
        ct.Register(() => tcs.TrySetCanceled(ct));
        return tcs.Task;
    }

    public const string PauseIp = "172.20.0.9";
    public const string PauseMac = "02:42:ac:14:00:09";

    private sealed class Container(string id, string taskArn, string name)
    {
        public string Id { get; } = id;
        public string TaskArn { get; } = taskArn;
        public string Name { get; } = name;
        public string State { get; set; } = "created";
        public long ExitCode { get; set; }
        public string? Health { get; set; }
        public DateTimeOffset? FinishedAt { get; set; }

        public RuntimeContainer Snapshot() => new()
        {
            Health = Health,
            Id = Id,
            TaskArn = TaskArn,
            ContainerName = Name,
            State = State,
            ExitCode = ExitCode,
            FinishedAt = FinishedAt,
            Ports = State == "running" && !AwsvpcNetwork.IsPause(Name) ? [new Berth.Core.Agent.PortBinding { BindIp = "0.0.0.0", ContainerPort = 80, HostPort = 32768, Protocol = "tcp" }] : [],
            // A running pause container has the task's address on the awsvpc network, as Docker shows it.
            IpAddress = State == "running" && AwsvpcNetwork.IsPause(Name) ? PauseIp : "",
            MacAddress = State == "running" && AwsvpcNetwork.IsPause(Name) ? PauseMac : "",
        };
    }
}
