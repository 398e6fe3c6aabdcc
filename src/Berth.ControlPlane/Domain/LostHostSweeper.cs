using System.Globalization;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.State;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Lost hosts: when an instance's agent has been disconnected for <see cref="ControlPlaneOptions.AgentGrace"/>,
/// its live tasks are marked STOPPED (<see cref="TaskLifecycle.StopLostAsync"/>) so services replace them.
/// </summary>
/// <remarks>
/// Driven by a deadline queue, never by a scan: the container-instance table's change hook schedules an
/// instance (deadline = disconnect time + grace) when its agentConnected turns false and cancels it when it
/// turns true again; the loop sleeps until the earliest deadline. A cancelled entry stays in the heap and is
/// skipped when it surfaces (the dictionary holds each instance's live deadline). The only pass over the
/// instances is the one at start, for instances that were already disconnected when the state was loaded:
/// their grace starts again then, since the moment they went away was not stored.
/// </remarks>
internal sealed partial class LostHostSweeper : BackgroundService
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxSleep = TimeSpan.FromDays(1);

    private readonly TaskLifecycle _tasks;
    private readonly TimeProvider _time;
    private readonly TimeSpan _grace;
    private readonly ILogger<LostHostSweeper> _logger;
    private readonly object _gate = new();
    private readonly PriorityQueue<string, DateTimeOffset> _heap = new();
    private readonly Dictionary<string, DateTimeOffset> _due = new(StringComparer.Ordinal);
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LostHostSweeper(TaskLifecycle tasks, ControlPlaneOptions options, TimeProvider time, ILogger<LostHostSweeper> logger)
    {
        _tasks = tasks;
        _time = time;
        _grace = options.AgentGrace;
        _logger = logger;
        var state = tasks.State;
        state.ContainerInstances.Changed += OnInstanceChanged;
        foreach (var v in state.ContainerInstances.All)
        {
            OnInstanceChanged(v.Id, null, v.Value);
        }
    }

    /// <summary>Raised after an instance's grace ran out: (instance key, tasks stopped).</summary>
    public event Action<string, int>? Expired;

    /// <summary>Instances waiting for their grace to run out.</summary>
    public int Pending
    {
        get
        {
            lock (_gate)
            {
                return _due.Count;
            }
        }
    }

    /// <summary>When the instance's grace runs out, or null when it is not waiting for one.</summary>
    public DateTimeOffset? DueAt(string instanceKey)
    {
        lock (_gate)
        {
            return _due.TryGetValue(instanceKey, out var d) ? d : null;
        }
    }

    /// <summary>The stoppedReason given to the tasks of a lost host.</summary>
    public static string Reason(string instanceId, TimeSpan grace)
        => $"Task stopped because the agent of container instance {instanceId} has been disconnected for {grace.TotalSeconds.ToString(CultureInfo.InvariantCulture)} seconds";

    // Called under the state's write lock, in commit order (and for every instance on a reload): keep it cheap.
    private void OnInstanceChanged(string key, InstanceRecord? old, InstanceRecord? now)
    {
        if (now is null || now.AgentConnected || now.AgentId is null || now.Status == "INACTIVE")
        {
            // Back, gone, deregistered, or never had an agent of ours (registered through the API).
            Cancel(key);
            return;
        }
        // Disconnected: from the moment it went (a transition), or from load time when already so (old null).
        if (old is null || old.AgentConnected || old.Status == "INACTIVE")
        {
            Schedule(key, _time.GetUtcNow() + _grace, keepEarlier: old is null);
        }
    }

    private void Schedule(string key, DateTimeOffset due, bool keepEarlier)
    {
        lock (_gate)
        {
            if (keepEarlier && _due.ContainsKey(key))
            {
                return;
            }
            _due[key] = due;
            _heap.Enqueue(key, due);
            _wake.TrySetResult();
        }
    }

    private void Cancel(string key)
    {
        lock (_gate)
        {
            _due.Remove(key);
        }
    }

    /// <summary>Stops the tasks of every instance whose grace has run out by now; returns how many tasks it stopped.</summary>
    public async Task<int> ExpireDueAsync(CancellationToken ct)
    {
        var total = 0;
        while (TakeDue() is { } key)
        {
            var instanceId = key[(key.IndexOf('/', StringComparison.Ordinal) + 1)..];
            int n;
            try
            {
                n = await _tasks.StopLostAsync(key, Reason(instanceId, _grace), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The store failed: try again shortly unless the agent comes back meanwhile.
                LogStopFailed(_logger, e, key);
                Schedule(key, _time.GetUtcNow() + RetryDelay, keepEarlier: true);
                continue;
            }
            if (n > 0)
            {
                LogLost(_logger, key, _grace.TotalSeconds, n);
            }
            total += n;
            Expired?.Invoke(key, n);
        }
        return total;
    }

    private string? TakeDue()
    {
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            while (_heap.TryPeek(out var key, out var due) && due <= now)
            {
                _heap.Dequeue();
                if (_due.TryGetValue(key, out var live) && live == due)
                {
                    _due.Remove(key);
                    return key;
                }
                // Cancelled or rescheduled: a stale heap entry.
            }
            return null;
        }
    }

    /// <summary>The earliest live deadline (dropping stale heap entries) and the signal a new one will raise.</summary>
    private (DateTimeOffset? Next, Task Wake) Peek()
    {
        lock (_gate)
        {
            if (_wake.Task.IsCompleted)
            {
                _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            while (_heap.TryPeek(out var key, out var due))
            {
                if (_due.TryGetValue(key, out var live) && live == due)
                {
                    return (due, _wake.Task);
                }
                _heap.Dequeue();
            }
            return (null, _wake.Task);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var (next, wake) = Peek();
                await ExpireDueAsync(stoppingToken).ConfigureAwait(false);
                if (next is null)
                {
                    await wake.WaitAsync(stoppingToken).ConfigureAwait(false);
                    continue;
                }
                // Task.Delay takes at most about 49 days; a longer grace is simply waited for in steps.
                var delay = TimeSpan.FromTicks(Math.Min((next.Value - _time.GetUtcNow()).Ticks, MaxSleep.Ticks));
                if (delay > TimeSpan.Zero)
                {
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    var timer = Task.Delay(delay, _time, cts.Token);
                    // The clock may have passed the deadline between reading it and arming the timer.
                    if (_time.GetUtcNow() < next.Value)
                    {
                        await Task.WhenAny(wake, timer).ConfigureAwait(false);
                    }
                    await cts.CancelAsync().ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Never let the host stop over this loop; a deadline missed now is taken on the next pass.
                LogLoopFailed(_logger, e);
                await Task.Delay(RetryDelay, _time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    public override void Dispose()
    {
        _tasks.State.ContainerInstances.Changed -= OnInstanceChanged;
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Container instance {InstanceKey}: agent disconnected for {Seconds} s; {Count} task(s) marked STOPPED")]
    private static partial void LogLost(ILogger logger, string instanceKey, double seconds, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Lost-host sweep failed; retrying shortly")]
    private static partial void LogLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not stop the tasks of lost container instance {InstanceKey}; retrying")]
    private static partial void LogStopFailed(ILogger logger, Exception exception, string instanceKey);
}
