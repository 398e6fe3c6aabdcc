using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Berth.Agent.Logs;
using Berth.Agent.Runtime;
using Berth.Core;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging;

namespace Berth.Agent;

/// <summary>
/// Drives the container runtime towards the server's desired tasks and reports what it observes.
/// </summary>
/// <remarks>
/// Watch → de-duplicating work queue → idempotent per-task reconcile. A task is reconciled when its desired state
/// changes or one of its containers emits an event (start, die, oom, health_status, ...); each pass re-reads that
/// task's containers from the runtime and decides from what it finds, never from memory alone. A slow full resync
/// (<see cref="AgentOptions.ResyncInterval"/>) and a resync after every reconnect of the event stream heal lost
/// events. An idle agent makes no runtime calls besides that resync. Each task has at most one worker at a time;
/// a slow stop does not hold up other tasks.
/// </remarks>
internal sealed partial class TaskEngine : ITaskEngine
{
    // Not in ECS: ECS has no stop code for "the containers vanished while the agent was away". The task did start
    // (the server recorded it past PENDING), so TaskFailedToStart would be false; its essential containers are no
    // longer running, which is what EssentialContainerExited tells a client (a service replaces such a task). The
    // reason keeps ECS's "Essential container in task exited" prefix, which tools match on, and says why.
    public const string LostStopCode = "EssentialContainerExited";
    public const string LostReason = "Essential container in task exited: its containers are gone from this instance (the task ran here and was lost while the agent was away)";

    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan EventReconnectDelay = TimeSpan.FromSeconds(1);
    private static readonly HashSet<string> EmptySet = [];

    private readonly IContainerRuntime _runtime;
    private readonly string _agentId;
    private readonly Uri _serverUrl;
    private readonly IReadOnlyDictionary<string, string> _extraLabels;
    private readonly TimeSpan _cleanupWait;
    private readonly TimeSpan _resyncInterval;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LogShipper? _logs;
    private readonly HostPolicyCheck? _hostPolicy;
    private readonly ConcurrentDictionary<string, TrackedTask> _tasks = new(StringComparer.Ordinal);
    private readonly ReportBook _book = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Task, byte> _workers = new();
    private Task? _watchLoop;
    private Task? _resyncLoop;
    private volatile bool _snapshotSeen;
    private long _resyncs;

    /// <param name="serverUrl">The control plane's URL; images in its registry are pulled through it (see <see cref="RegistryRouting.PullReference"/>).</param>
    /// <param name="hostPolicy">What the host's operator allows tasks to take from the host; null: not checked (unit tests' engines).</param>
    public TaskEngine(IContainerRuntime runtime, string agentId, Uri serverUrl, IReadOnlyDictionary<string, string> extraLabels,
        TimeSpan cleanupWait, TimeSpan resyncInterval, TimeProvider time, ILogger<TaskEngine> logger, LogShipper? logs = null,
        HostPolicyCheck? hostPolicy = null)
    {
        _logs = logs;
        _hostPolicy = hostPolicy;
        _runtime = runtime;
        _agentId = agentId;
        _serverUrl = serverUrl;
        _extraLabels = extraLabels;
        _cleanupWait = cleanupWait;
        _resyncInterval = resyncInterval;
        _time = time;
        _logger = logger;
    }

    public ChannelReader<TaskStatusReport> Reports => _book.Reader;

    /// <summary>Full resyncs done so far (the periodic one and those after an event-stream reconnect).</summary>
    public long Resyncs => Interlocked.Read(ref _resyncs);

    /// <summary>Re-adopts this agent's containers from the runtime, then starts watching its events.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        foreach (var c in await _runtime.ListAsync(null, ct).ConfigureAwait(false))
        {
            _tasks.GetOrAdd(c.TaskArn, a => new TrackedTask(a) { HasContainers = true, ListNeeded = true });
        }
        LogAdopted(_logger, _tasks.Count);
        _watchLoop = Task.Run(() => WatchLoopAsync(_stop.Token), CancellationToken.None);
        _resyncLoop = Task.Run(() => ResyncLoopAsync(_stop.Token), CancellationToken.None);
    }

    public IReadOnlyCollection<string> KnownTaskArns() => [.. _tasks.Keys];

    public void Apply(DesiredState desired)
    {
        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in desired.Tasks)
        {
            listed.Add(d.TaskArn);
            var t = _tasks.GetOrAdd(d.TaskArn, a => new TrackedTask(a));
            lock (t)
            {
                t.Desired = d;
                t.Orphan = false;
            }
            _book.Learn(d.TaskArn, d.LastSequence, desired.Full);
        }
        foreach (var arn in desired.RemovedTaskArns)
        {
            if (!listed.Contains(arn) && _tasks.TryGetValue(arn, out var t))
            {
                t.Orphan = true;
            }
        }
        if (desired.Full)
        {
            _snapshotSeen = true;
            foreach (var t in _tasks.Values)
            {
                if (!listed.Contains(t.Arn))
                {
                    t.Orphan = true; // unknown to the server: stop and forget
                }
            }
            foreach (var t in _tasks.Values)
            {
                Enqueue(t);
            }
            return;
        }
        foreach (var arn in listed.Concat(desired.RemovedTaskArns))
        {
            if (_tasks.TryGetValue(arn, out var t))
            {
                Enqueue(t);
            }
        }
    }

    private void OnEvent(RuntimeEvent e)
    {
        LogEvent(_logger, e.Action, e.TaskArn);
        if (_tasks.TryGetValue(e.TaskArn, out var t))
        {
            Enqueue(t);
        }
        else if (e.Action != "destroy" && _snapshotSeen)
        {
            // A container of ours the server does not know (left over, or made behind our back): reap it.
            Enqueue(_tasks.GetOrAdd(e.TaskArn, a => new TrackedTask(a) { Orphan = true, HasContainers = true, ListNeeded = true }));
        }
    }

    private async Task WatchLoopAsync(CancellationToken ct)
    {
        var reconnect = false;
        while (!ct.IsCancellationRequested)
        {
            var watch = _runtime.WatchAsync(OnEvent, ct);
            if (reconnect)
            {
                // Events may have been lost while the stream was down.
                await ResyncAsync(ct).ConfigureAwait(false);
            }
            try
            {
                await watch.ConfigureAwait(false);
                LogEventStreamLost(_logger, "the stream ended");
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogEventStreamLost(_logger, e.GetBaseException().Message);
            }
            reconnect = true;
            try
            {
                await Task.Delay(EventReconnectDelay, _time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ResyncLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_resyncInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                await ResyncAsync(ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>The safety net: every container of this agent and every tracked task gets a reconcile pass.</summary>
    private async Task ResyncAsync(CancellationToken ct)
    {
        Interlocked.Increment(ref _resyncs);
        try
        {
            foreach (var c in await _runtime.ListAsync(null, ct).ConfigureAwait(false))
            {
                if (!_tasks.ContainsKey(c.TaskArn))
                {
                    // Before the first snapshot it may still be the server's; after it, it is a leftover to reap.
                    _tasks.GetOrAdd(c.TaskArn, a => new TrackedTask(a) { Orphan = _snapshotSeen, HasContainers = true, ListNeeded = true });
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e)
        {
            LogResyncFailed(_logger, e.GetBaseException().Message);
        }
        foreach (var t in _tasks.Values)
        {
            t.ListNeeded = true; // the safety net reads each task's containers by label, not by the ids it knows
            Enqueue(t);
        }
    }

    /// <summary>Schedules a reconcile of <paramref name="t"/>; requests while one is pending or running fold into one more pass.</summary>
    private void Enqueue(TrackedTask t)
    {
        if (Interlocked.Exchange(ref t.Dirty, 1) == 1)
        {
            return;
        }
        lock (t)
        {
            if (t.WorkerRunning)
            {
                return;
            }
            t.WorkerRunning = true;
        }
        var ct = _stop.Token;
        var worker = Task.Run(() => WorkAsync(t, ct), CancellationToken.None);
        _workers.TryAdd(worker, 0);
        worker.ContinueWith(w => _workers.TryRemove(w, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task WorkAsync(TrackedTask t, CancellationToken ct)
    {
        while (true)
        {
            Interlocked.Exchange(ref t.Dirty, 0);
            try
            {
                await ReconcileAsync(t, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                t.ListNeeded = true; // a call may have half succeeded (a create whose answer was lost): list next time
                LogReconcileFailed(_logger, e, t.Arn);
                _ = RetryLaterAsync(t, ct);
            }
            lock (t)
            {
                if (Volatile.Read(ref t.Dirty) == 0)
                {
                    t.WorkerRunning = false;
                    return;
                }
            }
        }
    }

    private async Task RemoveContainerAsync(string id, CancellationToken ct)
    {
        await _runtime.RemoveAsync(id, ct).ConfigureAwait(false);
        _logs?.Removed(id);
    }

    private async Task RetryLaterAsync(TrackedTask t, CancellationToken ct)
    {
        try
        {
            await Task.Delay(RetryDelay, _time, ct).ConfigureAwait(false);
            Enqueue(t);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReconcileAsync(TrackedTask t, CancellationToken ct)
    {
        if (!_tasks.TryGetValue(t.Arn, out var current) || !ReferenceEquals(current, t))
        {
            return; // forgotten by an earlier pass (an event of its own removal asked for this one)
        }
        DesiredTask? desired;
        bool orphan;
        lock (t)
        {
            desired = t.Desired;
            orphan = t.Orphan;
        }
        if (t.Ids.Count == 0 && !t.Launching && desired is not null && PastPending(desired.LastStatus))
        {
            // The server saw it started and this process knows no container of it: look by label before taking it
            // for lost (only a task the server has as PENDING is known to have none without asking).
            t.ListNeeded = true;
        }
        var observed = await ObserveAsync(t, ct).ConfigureAwait(false);
        lock (t)
        {
            desired = t.Desired;
            orphan = t.Orphan;
        }

        if (orphan && !t.Stopped)
        {
            if (_cleanupWait > TimeSpan.Zero && observed.Values.Any(c => c.Exited) && !observed.Values.Any(c => c.Running))
            {
                // A task that stopped and that the server has forgotten since (its record's retention is shorter than
                // the cleanup wait, or it went while the agent was away): its exited containers are kept for the
                // wait like any stopped task's, counted from when they exited. Nothing is reported.
                t.Stopped = true;
            }
            else
            {
                // The server does not know the task (any more) and it still runs here: stop and forget, and tell it nothing.
                await StopAllAsync(desired?.Spec, observed, ct).ConfigureAwait(false);
                foreach (var c in observed.Values)
                {
                    await RemoveContainerAsync(c.Id, ct).ConfigureAwait(false);
                }
                await _runtime.RemoveTaskVolumesAsync(TaskId(t.Arn), ct).ConfigureAwait(false);
                Forget(t);
                LogForgotten(_logger, t.Arn);
                return;
            }
        }

        if (t.Stopped)
        {
            // Kept for the cleanup wait (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION), so `docker logs` still works; then
            // the containers and the task's volumes go. A one-shot timer brings the pass that removes them.
            var at = t.CleanupAt ??= CleanupDeadline(t, observed);
            if (_time.GetUtcNow() < at)
            {
                ScheduleCleanup(t, at);
                return;
            }
            if (_logs is not null && observed.Values.Any(c => !_logs.IsDrained(c.Id)))
            {
                // awslogs output not yet all acknowledged: the json-file is its only copy, keep the container.
                _ = RetryLaterAsync(t, ct);
                return;
            }
            foreach (var c in observed.Values)
            {
                await RemoveContainerAsync(c.Id, ct).ConfigureAwait(false);
            }
            await _runtime.RemoveTaskVolumesAsync(TaskId(t.Arn), ct).ConfigureAwait(false);
            Forget(t);
            LogCleanedUp(_logger, t.Arn, observed.Count);
            return;
        }

        if (desired is null)
        {
            // Adopted from the runtime, not yet listed by the server: wait for the snapshot, change nothing.
            return;
        }
        var spec = desired.Spec ?? new TaskSpec();

        if (desired.DesiredStatus == "STOPPED")
        {
            if (desired.LastStatus == "STOPPED" && !observed.Values.Any(c => c.Running))
            {
                // The server has it STOPPED and nothing of it runs here (containers kept from before an agent restart,
                // or none): there is nothing new to say. What is left is removed when the cleanup wait ends.
                t.Stopped = true;
                t.StoppedSeenAt ??= _time.GetUtcNow();
                ScheduleCleanup(t, t.CleanupAt ??= CleanupDeadline(t, observed));
                return;
            }
            // Never started here once the server wants it stopped, whatever its last status.
            if (observed.Values.Any(c => c.Running))
            {
                Report(t, spec, "DEPROVISIONING", observed);
                await StopAllAsync(spec, observed, ct).ConfigureAwait(false);
                observed = await ObserveAsync(t, ct).ConfigureAwait(false);
            }
            MarkStopped(t, spec, observed, null, null);
            return;
        }

        // Desired RUNNING. A container not started yet is one to launch, or one waiting for its dependsOn, or one
        // whose dependency can never hold. The last kind is found from what Docker shows before anything else, so
        // that after an agent restart (GaveUp is not persisted) such a container is not taken for a lost one.
        GiveUpImpossible(t, spec, observed);
        if (spec.Containers.Any(c => NotStarted(t, c, observed)))
        {
            var ranHere = t.StartedAt != 0;
            if (ranHere || !t.Launching && PastPending(desired.LastStatus))
            {
                // It ran before and (some of) its containers are gone: never launch it afresh.
                if (observed.Values.Any(c => c.Running))
                {
                    await StopAllAsync(spec, observed, ct).ConfigureAwait(false);
                    observed = await ObserveAsync(t, ct).ConfigureAwait(false);
                }
                if (!ranHere)
                {
                    LogLost(_logger, t.Arn, desired.LastStatus);
                }
                MarkStopped(t, spec, observed, LostStopCode, ranHere ? "Essential container in task exited" : LostReason);
                return;
            }
            t.Launching = true;
            if (!await LaunchAsync(t, desired, observed, ct).ConfigureAwait(false))
            {
                return;
            }
            observed = await ObserveAsync(t, ct).ConfigureAwait(false);
        }

        // An essential container that will never start (a dependency that cannot hold) counts as exited, as in ECS.
        var exitedEssential = spec.Containers.FirstOrDefault(c => c.Essential
            && (observed.TryGetValue(c.Name, out var o) && o.Exited || t.GaveUp?.ContainsKey(c.Name) == true));
        if (exitedEssential is not null)
        {
            if (observed.Values.Any(c => c.Running))
            {
                Report(t, spec, "DEPROVISIONING", observed);
                await StopAllAsync(spec, observed, ct).ConfigureAwait(false);
                observed = await ObserveAsync(t, ct).ConfigureAwait(false);
            }
            MarkStopped(t, spec, observed, "EssentialContainerExited", "Essential container in task exited");
            return;
        }
        if (spec.Containers.Any(c => NotStarted(t, c, observed)))
        {
            // Some container waits for a dependency (a SUCCESS init container still running, a HEALTHY one not yet
            // healthy): the task stays PENDING; the dependency's next event (die, health_status) brings another pass.
            Report(t, spec, "PENDING", observed);
            return;
        }
        if (t.StartedAt == 0)
        {
            t.StartedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        }
        Report(t, spec, "RUNNING", observed);
    }

    /// <summary>Gives up every container not started whose dependencies can never hold (transitively).</summary>
    private void GiveUpImpossible(TrackedTask t, TaskSpec spec, Dictionary<string, RuntimeContainer> observed)
    {
        bool changed;
        do
        {
            changed = false;
            foreach (var c in spec.Containers)
            {
                if (c.DependsOn.Count > 0 && NotStarted(t, c, observed)
                    && Dependencies.Evaluate(spec, c, observed, EmptySet, t.GaveUp) is (Dependencies.Gate.Never, { } why))
                {
                    (t.GaveUp ??= new(StringComparer.Ordinal))[c.Name] = why;
                    LogDependencyNever(_logger, t.Arn, c.Name, why);
                    changed = true;
                }
            }
        }
        while (changed);
    }

    /// <summary>Neither started (absent, or created and never started) nor given up for a dependency that cannot hold.</summary>
    private static bool NotStarted(TrackedTask t, Core.Agent.ContainerSpec c, Dictionary<string, RuntimeContainer> observed)
        => (!observed.TryGetValue(c.Name, out var o) || o.State == "created") && t.GaveUp?.ContainsKey(c.Name) != true;

    /// <summary>ECS's order: a task the server saw at RUNNING or later has been started before.</summary>
    private static bool PastPending(string lastStatus)
        => lastStatus is "ACTIVATING" or "RUNNING" or "DEACTIVATING" or "STOPPING" or "DEPROVISIONING" or "STOPPED";

    /// <summary>
    /// The task's containers as the runtime shows them now. Listed by label when the engine cannot vouch for its
    /// ids (adopted, after a resync or a failed pass); otherwise each known container is inspected by id (a gone
    /// one drops out), which saves dockerd a list per pass; a task this process never created containers for
    /// (and did not adopt) has none, and costs no call at all.
    /// </summary>
    private async Task<Dictionary<string, RuntimeContainer>> ObserveAsync(TrackedTask t, CancellationToken ct)
    {
        var result = new Dictionary<string, RuntimeContainer>(StringComparer.Ordinal);
        if (t.ListNeeded)
        {
            t.ListNeeded = false; // before the list: a resync asking again meanwhile keeps it set
            var listed = await _runtime.ListAsync(t.Arn, ct).ConfigureAwait(false);
            t.Ids.Clear();
            foreach (var c in listed)
            {
                result[c.ContainerName] = c;
                t.Ids[c.ContainerName] = c.Id;
            }
        }
        else if (t.Ids.Count > 0)
        {
            var known = t.Ids.ToList();
            var inspected = await Task.WhenAll(known.Select(kv => _runtime.InspectAsync(kv.Value, ct))).ConfigureAwait(false);
            for (var i = 0; i < known.Count; i++)
            {
                if (inspected[i] is { } c)
                {
                    result[known[i].Key] = c;
                }
                else
                {
                    t.Ids.Remove(known[i].Key); // removed behind our back: the same as a list not showing it
                }
            }
        }
        if (result.Count > 0)
        {
            t.HasContainers = true;
            DesiredTask? desired;
            lock (t)
            {
                desired = t.Desired;
            }
            _logs?.Observe(t.Arn, desired?.Spec, result.Values);
        }
        return result;
    }

    /// <summary>Why a task asking for <paramref name="gib"/> GiB of ephemeral storage cannot start here; null when Docker's data root has that much free.</summary>
    private async Task<string?> EphemeralStorageShortfallAsync(int gib, CancellationToken ct)
    {
        var root = await _runtime.DataRootAsync(ct).ConfigureAwait(false);
        if (root is null || EphemeralSpace.Measure(root) is not { } space)
        {
            return $"ephemeralStorage: the task asks for {gib} GiB and this agent cannot measure the free space of its Docker data root{(root is null ? "" : " " + root)}";
        }
        return space.FreeGib >= gib ? null : $"ephemeralStorage: the task asks for {gib} GiB and Docker's data root {root} has {space.FreeGib} GiB free";
    }

    /// <summary>
    /// Pulls the images (once per task), then creates and starts every container whose <c>dependsOn</c> conditions
    /// hold, in definition order, repeating while a start lets another one go (START). Containers still waiting are
    /// left for a later pass; one whose dependency can never hold is given up (<see cref="TrackedTask.GaveUp"/>).
    /// False when the task failed to start (already reported STOPPED).
    /// </summary>
    private async Task<bool> LaunchAsync(TrackedTask t, DesiredTask desired, Dictionary<string, RuntimeContainer> observed, CancellationToken ct)
    {
        var spec = desired.Spec;
        Report(t, spec, "PENDING", observed);
        var taskId = TaskId(t.Arn);
        // The host policy judges the whole task before anything of it is pulled or created; each container is
        // judged again just before it is created (below), which also covers a task adopted after a restart.
        if (_hostPolicy is not null && !spec.Containers.Any(c => observed.ContainsKey(c.Name)) && _hostPolicy.Refusal(spec) is { } refused)
        {
            LogFailedToStart(_logger, t.Arn, refused);
            MarkStopped(t, spec, observed, "TaskFailedToStart", "CannotStartContainerError: " + refused);
            return false;
        }
        if (spec.EphemeralStorageGib > 0 && !spec.Containers.Any(c => observed.ContainsKey(c.Name))
            && await EphemeralStorageShortfallAsync(spec.EphemeralStorageGib, ct).ConfigureAwait(false) is { } shortfall)
        {
            LogFailedToStart(_logger, t.Arn, shortfall);
            MarkStopped(t, spec, observed, "TaskFailedToStart", "ResourceInitializationError: " + shortfall);
            return false;
        }
        if (!t.ImagesReady)
        {
            if (t.PullStartedAt == 0)
            {
                t.PullStartedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
            }
            foreach (var image in spec.Containers.Select(c => c.Image).Distinct(StringComparer.Ordinal))
            {
                var pull = RegistryRouting.PullReference(image, _serverUrl);
                try
                {
                    await _runtime.EnsureImageAsync(pull, RegistryRouting.FindAuth(desired.RegistryAuth, image), ct).ConfigureAwait(false);
                }
                catch (RuntimeException e)
                {
                    t.PullStoppedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
                    var from = pull == image ? "" : $" (from {pull})";
                    var error = e.Message;
                    if (error.Contains("server gave HTTP response to HTTPS client", StringComparison.Ordinal) && ImageReference.RegistryHost(pull) is { } registry)
                    {
                        // Docker speaks plain HTTP only to loopback registries unless told otherwise.
                        error += $" (list {registry} in insecure-registries of this host's Docker engine, /etc/docker/daemon.json)";
                    }
                    MarkStopped(t, spec, observed, "TaskFailedToStart", $"CannotPullContainerError: pull image {image}{from}: {error}");
                    return false;
                }
            }
            if (t.PullStoppedAt == 0)
            {
                t.PullStoppedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
            }
            t.ImagesReady = true;
            Report(t, spec, "PENDING", observed);
        }

        var labels = new Dictionary<string, string>(_extraLabels, StringComparer.Ordinal)
        {
            [ContainerLabels.TaskArn] = t.Arn,
            [ContainerLabels.Cluster] = spec.ClusterArn,
            [ContainerLabels.Family] = spec.Family,
            [ContainerLabels.Version] = spec.Revision.ToString(CultureInfo.InvariantCulture),
            [ContainerLabels.AgentId] = _agentId,
        };
        t.LaunchBeganAt ??= _time.GetUtcNow();
        string? pauseId = null;
        if (spec.NetworkMode == "awsvpc")
        {
            pauseId = await EnsurePauseAsync(t, spec, taskId, labels, observed, ct).ConfigureAwait(false);
            if (pauseId is null)
            {
                return false;
            }
        }
        var startedNow = new HashSet<string>(StringComparer.Ordinal);
        bool progress;
        do
        {
            progress = false;
            foreach (var c in spec.Containers)
            {
                if (!NotStarted(t, c, observed) || startedNow.Contains(c.Name))
                {
                    continue;
                }
                var (gate, why) = Dependencies.Evaluate(spec, c, observed, startedNow, t.GaveUp);
                if (gate == Dependencies.Gate.Never)
                {
                    (t.GaveUp ??= new(StringComparer.Ordinal))[c.Name] = why!;
                    LogDependencyNever(_logger, t.Arn, c.Name, why!);
                    progress = true; // what depends on it may now be given up too
                    continue;
                }
                if (gate == Dependencies.Gate.Start)
                {
                    (gate, why) = Prerequisites(spec, c, observed, startedNow, t.GaveUp);
                    if (gate == Dependencies.Gate.Never)
                    {
                        (t.GaveUp ??= new(StringComparer.Ordinal))[c.Name] = why!;
                        LogDependencyNever(_logger, t.Arn, c.Name, why!);
                        progress = true;
                        continue;
                    }
                }
                if (gate == Dependencies.Gate.Wait)
                {
                    if (StartTimedOut(t, spec, c, observed, startedNow) is { } timedOut)
                    {
                        (t.GaveUp ??= new(StringComparer.Ordinal))[c.Name] = timedOut;
                        LogDependencyNever(_logger, t.Arn, c.Name, timedOut);
                        progress = true;
                    }
                    continue;
                }
                string id;
                if (observed.TryGetValue(c.Name, out var existing))
                {
                    id = existing.Id;
                }
                else
                {
                    Docker.DotNet.Models.CreateContainerParameters create;
                    IReadOnlyDictionary<string, string>? hostPaths = null;
                    if (_hostPolicy is not null && _hostPolicy.Refusal(spec, c, out hostPaths) is { } refusedHere)
                    {
                        await FailToStartAsync(t, spec, observed, "CannotStartContainerError: " + refusedHere, ct).ConfigureAwait(false);
                        return false;
                    }
                    try
                    {
                        create = ContainerSpec.Build(spec, c, taskId, new Dictionary<string, string>(labels, StringComparer.Ordinal) { [ContainerLabels.ContainerName] = c.Name }, hostPaths);
                    }
                    catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or OverflowException)
                    {
                        // A spec this agent cannot turn into a container will not get better on the next pass.
                        await FailToStartAsync(t, spec, observed, $"CannotCreateContainerError: container {c.Name}: {e.Message}", ct).ConfigureAwait(false);
                        return false;
                    }
                    create.Image = RegistryRouting.PullReference(create.Image, _serverUrl);
                    if (pauseId is not null)
                    {
                        AwsvpcNetwork.Join(create, pauseId);
                    }
                    AddMetadataEndpoint(create, taskId, spec.TaskRoleArn);
                    try
                    {
                        try
                        {
                            id = await _runtime.CreateAsync(create, ct).ConfigureAwait(false);
                        }
                        catch (RuntimeException e) when (e.ImageMissing)
                        {
                            // The image went away since it was seen (the runtime trusts a recent look): pull it again.
                            await _runtime.EnsureImageAsync(create.Image, RegistryRouting.FindAuth(desired.RegistryAuth, c.Image), ct).ConfigureAwait(false);
                            id = await _runtime.CreateAsync(create, ct).ConfigureAwait(false);
                        }
                        t.HasContainers = true;
                        t.Ids[c.Name] = id;
                    }
                    catch (RuntimeException e)
                    {
                        t.ListNeeded = true;
                        await FailToStartAsync(t, spec, observed, $"CannotCreateContainerError: {e.Message}", ct).ConfigureAwait(false);
                        return false;
                    }
                }
                try
                {
                    await _runtime.StartAsync(id, ct).ConfigureAwait(false);
                }
                catch (RuntimeException e)
                {
                    await FailToStartAsync(t, spec, observed, $"CannotStartContainerError: {e.Message}", ct).ConfigureAwait(false);
                    return false;
                }
                startedNow.Add(c.Name);
                (t.StartedTimes ??= new(StringComparer.Ordinal))[c.Name] = _time.GetUtcNow();
                progress = true;
            }
        }
        while (progress);
        return true;
    }

    /// <summary>
    /// awsvpc: the task's pause container, running (created and started when missing), whose network namespace the
    /// task's containers join. Null when it cannot be set up (the task is then reported STOPPED).
    /// </summary>
    private async Task<string?> EnsurePauseAsync(TrackedTask t, TaskSpec spec, string taskId, Dictionary<string, string> labels,
        Dictionary<string, RuntimeContainer> observed, CancellationToken ct)
    {
        try
        {
            string id;
            if (observed.TryGetValue(AwsvpcNetwork.PauseContainerName, out var pause))
            {
                if (pause.Running)
                {
                    return pause.Id;
                }
                id = pause.Id;
            }
            else
            {
                await _runtime.EnsureAwsvpcAsync(ct).ConfigureAwait(false);
                var name = ContainerSpec.ContainerName(spec, new Core.Agent.ContainerSpec { Name = "internalecspause" }, taskId);
                id = await _runtime.CreateAsync(AwsvpcNetwork.PauseContainer(name, labels), ct).ConfigureAwait(false);
                t.HasContainers = true;
                t.Ids[AwsvpcNetwork.PauseContainerName] = id;
            }
            await _runtime.StartAsync(id, ct).ConfigureAwait(false);
            return id;
        }
        catch (RuntimeException e)
        {
            t.ListNeeded = true;
            MarkStopped(t, spec, observed, "TaskFailedToStart", $"ResourceInitializationError: failed to set up the awsvpc network namespace: {e.Message}");
            return null;
        }
    }

    /// <summary>
    /// A task that cannot start: the containers already started in it are stopped (so nothing of it keeps running),
    /// and it is reported STOPPED with <c>TaskFailedToStart</c>; it is never retried.
    /// </summary>
    private async Task FailToStartAsync(TrackedTask t, TaskSpec spec, Dictionary<string, RuntimeContainer> observed, string reason, CancellationToken ct)
    {
        LogFailedToStart(_logger, t.Arn, reason);
        t.ListNeeded = true;
        var now = await ObserveAsync(t, ct).ConfigureAwait(false);
        if (now.Values.Any(c => c.Running))
        {
            await StopAllAsync(spec, now, ct).ConfigureAwait(false);
            now = await ObserveAsync(t, ct).ConfigureAwait(false);
        }
        foreach (var kv in now)
        {
            observed[kv.Key] = kv.Value;
        }
        MarkStopped(t, spec, observed, "TaskFailedToStart", reason);
    }

    /// <summary>
    /// Whether the volumesFrom sources and the pid/ipc namespace holder of <paramref name="c"/> are there
    /// (<see cref="ContainerSpec.Prerequisites"/>): Start, Wait, or Never when one will never be.
    /// </summary>
    private static (Dependencies.Gate Gate, string? Reason) Prerequisites(TaskSpec spec, Core.Agent.ContainerSpec c,
        Dictionary<string, RuntimeContainer> observed, HashSet<string> startedNow, Dictionary<string, string>? gaveUp)
    {
        var gate = Dependencies.Gate.Start;
        foreach (var (name, mustRun) in ContainerSpec.Prerequisites(spec, c))
        {
            if (!spec.Containers.Any(x => x.Name == name))
            {
                return (Dependencies.Gate.Never, $"CannotStartContainerError: container [{c.Name}]: [{name}], which it takes volumes from or links to, is not in the task");
            }
            observed.TryGetValue(name, out var o);
            if (gaveUp?.ContainsKey(name) == true || mustRun && o is { Exited: true })
            {
                var what = mustRun ? "a container it links to or shares pid/ipc namespaces with" : "the source of its volumesFrom";
                return (Dependencies.Gate.Never, $"CannotStartContainerError: container [{c.Name}]: {what}, [{name}], {(o is { Exited: true } ? "has exited" : "will never start")}");
            }
            var ready = startedNow.Contains(name) || o is not null && (!mustRun || o.Running);
            if (!ready)
            {
                gate = Dependencies.Gate.Wait;
            }
        }
        return (gate, null);
    }

    /// <summary>
    /// ECS's startTimeout: a container waiting on a dependency whose definition has a startTimeout gives up when the
    /// dependency has not met the condition that long after it started (or, not started, after the launch began).
    /// Null while it may still wait; a later pass is scheduled for the nearest deadline. The clock is this process's:
    /// an agent restart begins it again.
    /// </summary>
    private string? StartTimedOut(TrackedTask t, TaskSpec spec, Core.Agent.ContainerSpec c, Dictionary<string, RuntimeContainer> observed, HashSet<string> startedNow)
    {
        var now = _time.GetUtcNow();
        DateTimeOffset? next = null;
        foreach (var d in c.DependsOn)
        {
            var dep = spec.Containers.FirstOrDefault(x => x.Name == d.ContainerName);
            if (dep is not { StartTimeoutSeconds: > 0 })
            {
                continue;
            }
            var single = new Core.Agent.ContainerSpec { Name = c.Name };
            single.DependsOn.Add(d);
            if (Dependencies.Evaluate(spec, single, observed, startedNow, t.GaveUp).Gate != Dependencies.Gate.Wait)
            {
                continue;
            }
            var since = t.StartedTimes?.GetValueOrDefault(dep.Name) is { } startedAt && startedAt != default ? startedAt : t.LaunchBeganAt ?? now;
            var deadline = since + TimeSpan.FromSeconds(dep.StartTimeoutSeconds);
            if (now >= deadline)
            {
                return $"CannotStartContainerError: dependency graph: failed to resolve container ordering dependency [{dep.Name}] for target [{c.Name}] as dependency did not reach {(d.Condition is { Length: > 0 } cond ? cond : "START")} within its startTimeout of {dep.StartTimeoutSeconds.ToString(CultureInfo.InvariantCulture)}s";
            }
            next = next is { } n && n < deadline ? n : deadline;
        }
        if (next is { } wake && (t.WakeAt is not { } scheduled || scheduled > wake || scheduled <= now))
        {
            t.WakeAt = wake;
            _ = WakeAtAsync(t, wake - now, _stop.Token);
        }
        return null;
    }

    private async Task WakeAtAsync(TrackedTask t, TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
            Enqueue(t);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Stops the running containers in reverse dependency order, as ECS does: a container stops once nothing still
    /// running depends on it; containers of one round stop together.
    /// </summary>
    private async Task StopAllAsync(TaskSpec? spec, Dictionary<string, RuntimeContainer> observed, CancellationToken ct)
    {
        // An awsvpc task's pause container goes last (its namespace outlives the containers in it), at once: it
        // ignores SIGTERM.
        var running = observed.Where(kv => kv.Value.Running && !AwsvpcNetwork.IsPause(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        while (running.Count > 0)
        {
            var dependedOn = (spec?.Containers ?? []).Where(c => running.ContainsKey(c.Name))
                .SelectMany(c => c.DependsOn).Select(d => d.ContainerName).ToHashSet(StringComparer.Ordinal);
            var round = running.Keys.Where(n => !dependedOn.Contains(n)).ToList();
            if (round.Count == 0)
            {
                round = [.. running.Keys]; // a cycle (the server refuses them): stop everything at once
            }
            await Task.WhenAll(round.Select(name =>
            {
                var timeout = spec?.Containers.FirstOrDefault(c => c.Name == name)?.StopTimeoutSeconds is { } s and > 0 ? s : 30;
                return _runtime.StopAsync(running[name].Id, timeout, ct);
            })).ConfigureAwait(false);
            foreach (var name in round)
            {
                running.Remove(name);
            }
        }
        if (observed.TryGetValue(AwsvpcNetwork.PauseContainerName, out var pause) && pause.Running)
        {
            await _runtime.StopAsync(pause.Id, 0, ct).ConfigureAwait(false);
        }
    }

    private void MarkStopped(TrackedTask t, TaskSpec spec, Dictionary<string, RuntimeContainer> observed, string? stopCode, string? reason)
    {
        t.Stopped = true;
        t.StoppedSeenAt = _time.GetUtcNow();
        ScheduleCleanup(t, t.CleanupAt ??= t.StoppedSeenAt.Value + _cleanupWait);
        t.StopCode ??= stopCode;
        t.StoppedReason ??= reason;
        t.ExecutionStoppedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        Report(t, spec, "STOPPED", observed);
    }

    private void Forget(TrackedTask t)
    {
        _tasks.TryRemove(t.Arn, out _);
        _book.Forget(t.Arn);
        lock (t)
        {
            t.CleanupTimer?.Dispose();
            t.CleanupTimer = null;
        }
    }

    private static string TaskId(string taskArn) => taskArn[(taskArn.LastIndexOf('/') + 1)..];

    /// <summary>
    /// When a stopped task's containers go: the cleanup wait after the last of them exited (Docker's FinishedAt, so
    /// an agent restart does not restart the clock), or after this process saw the task stop when none exited.
    /// </summary>
    private DateTimeOffset CleanupDeadline(TrackedTask t, Dictionary<string, RuntimeContainer> observed)
    {
        var finished = observed.Values.Select(c => c.FinishedAt).Where(f => f is not null).Max();
        return (finished ?? t.StoppedSeenAt ?? _time.GetUtcNow()) + _cleanupWait;
    }

    /// <summary>One one-shot timer per stopped task (the deadline queue is the TimeProvider's): no periodic scan.</summary>
    private void ScheduleCleanup(TrackedTask t, DateTimeOffset at)
    {
        lock (t)
        {
            if (t.CleanupTimer is not null && t.CleanupTimerAt == at)
            {
                return;
            }
            t.CleanupTimer?.Dispose();
            t.CleanupTimerAt = at;
            var due = at - _time.GetUtcNow();
            t.CleanupTimer = _time.CreateTimer(_ =>
            {
                if (!_stop.IsCancellationRequested && _tasks.TryGetValue(t.Arn, out var current) && ReferenceEquals(current, t))
                {
                    t.ListNeeded = true; // remove whatever of it Docker has, not only the ids this process knows
                    Enqueue(t);
                }
            }, null, due > TimeSpan.Zero ? due : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// The task metadata endpoint's base URI (<c>http://ADDR:PORT/</c>), set by the host once the endpoint listens;
    /// null when there is none. Every container created afterwards gets ECS_CONTAINER_METADATA_URI_V4 (and the v3
    /// ECS_CONTAINER_METADATA_URI) with a token of its own, also kept in a label so it survives an agent restart.
    /// </summary>
    internal Uri? MetadataBaseUri { get; set; }

    /// <summary>
    /// The task role credentials endpoint's base URI (<c>http://169.254.170.2:PORT/</c>), set by the host when the
    /// endpoint listens there; null when it does not (then tasks with a taskRoleArn get no credentials variables).
    /// </summary>
    internal Uri? CredentialsBaseUri { get; set; }

    private void AddMetadataEndpoint(Docker.DotNet.Models.CreateContainerParameters create, string taskId, string taskRoleArn)
    {
        if (MetadataBaseUri is not { } baseUri)
        {
            return;
        }
        var token = $"{taskId}-{System.Security.Cryptography.RandomNumberGenerator.GetHexString(16, lowercase: true)}";
        create.Labels[ContainerLabels.MetadataToken] = token;
        // The agent's values win over a definition's own, as ECS's agent sets them last.
        var withCredentials = taskRoleArn.Length > 0 && CredentialsBaseUri is not null;
        string[] ours = withCredentials
            ? [MetadataEnvV4, MetadataEnvV3, CredentialsFullUriEnv, CredentialsTokenEnv, CredentialsRelativeUriEnv]
            : [MetadataEnvV4, MetadataEnvV3];
        var env = create.Env?.Where(e => !ours.Any(o => e.StartsWith(o + "=", StringComparison.Ordinal))).ToList() ?? [];
        env.Add($"{MetadataEnvV4}={new Uri(baseUri, "v4/" + token)}");
        env.Add($"{MetadataEnvV3}={new Uri(baseUri, "v3/" + token)}");
        if (withCredentials && CredentialsBaseUri is { } credentials)
        {
            // The full-URI form with a token per container (the SDKs accept it for 169.254.170.2 on any port), not
            // the relative form: that one means port 80, which several agents on one host cannot all have.
            var secret = System.Security.Cryptography.RandomNumberGenerator.GetHexString(32, lowercase: true);
            create.Labels[ContainerLabels.CredentialsToken] = secret;
            env.Add($"{CredentialsFullUriEnv}={new Uri(credentials, "v2/credentials/" + token)}");
            env.Add($"{CredentialsTokenEnv}={secret}");
        }
        create.Env = env;
    }

    internal const string CredentialsFullUriEnv = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    internal const string CredentialsRelativeUriEnv = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    internal const string CredentialsTokenEnv = "AWS_CONTAINER_AUTHORIZATION_TOKEN";

    internal const string MetadataEnvV4 = "ECS_CONTAINER_METADATA_URI_V4";
    internal const string MetadataEnvV3 = "ECS_CONTAINER_METADATA_URI";

    /// <summary>What the engine knows of a task for the metadata endpoint; null when it tracks no such task.</summary>
    internal TaskMetadataView? MetadataOf(string taskArn)
    {
        if (!_tasks.TryGetValue(taskArn, out var t))
        {
            return null;
        }
        lock (t)
        {
            return new TaskMetadataView(t.Desired, t.KnownStatus ?? t.Desired?.LastStatus, t.PullStartedAt, t.PullStoppedAt, t.ExecutionStoppedAt);
        }
    }

    private void Report(TrackedTask t, TaskSpec spec, string status, Dictionary<string, RuntimeContainer> observed)
    {
        t.KnownStatus = status;
        var r = new TaskStatusReport
        {
            TaskArn = t.Arn,
            LastStatus = status,
            PullStartedAt = t.PullStartedAt,
            PullStoppedAt = t.PullStoppedAt,
            StartedAt = t.StartedAt,
            ExecutionStoppedAt = status == "STOPPED" ? t.ExecutionStoppedAt : 0,
            StopCode = t.StopCode ?? "",
            StoppedReason = t.StoppedReason ?? "",
        };
        if (observed.TryGetValue(AwsvpcNetwork.PauseContainerName, out var pause) && pause.IpAddress.Length > 0)
        {
            r.PrivateIpv4Address = pause.IpAddress;
            r.MacAddress = pause.MacAddress;
        }
        foreach (var c in spec.Containers)
        {
            var cs = new ContainerStatus { Name = c.Name, LastStatus = status == "STOPPED" ? "STOPPED" : "PENDING" };
            if (t.GaveUp?.GetValueOrDefault(c.Name) is { } gaveUp && !observed.ContainsKey(c.Name))
            {
                // ECS stops a container whose dependency can never hold with exit code 143 (as if SIGTERMed) and the
                // dependency error as its reason.
                cs.LastStatus = "STOPPED";
                cs.HasExitCode = true;
                cs.ExitCode = Dependencies.NeverStartedExitCode;
                cs.Reason = gaveUp;
            }
            if (observed.TryGetValue(c.Name, out var o))
            {
                cs.RuntimeId = o.Id;
                cs.LastStatus = o.Running ? "RUNNING" : o.Exited ? "STOPPED" : cs.LastStatus;
                if (o.Exited)
                {
                    cs.HasExitCode = true;
                    cs.ExitCode = (int)o.ExitCode;
                    if (o.OomKilled)
                    {
                        cs.Reason = "OutOfMemoryError: Container killed due to memory usage";
                    }
                }
                cs.NetworkBindings.AddRange(o.Ports);
                if (spec.NetworkMode == "host" && o.Running && o.Ports.Count == 0)
                {
                    // Docker publishes nothing on the host network; ECS reports each mapping at its own port.
                    cs.NetworkBindings.AddRange(c.PortMappings.Select(pm => new PortBinding
                    {
                        BindIp = "0.0.0.0",
                        ContainerPort = pm.ContainerPort,
                        HostPort = pm.HostPort > 0 ? pm.HostPort : pm.ContainerPort,
                        Protocol = pm.Protocol is { Length: > 0 } p ? p : "tcp",
                    }));
                }
                cs.ImageDigest = o.ImageDigest;
            }
            if (c.HealthCheck is { Command.Count: > 0 })
            {
                // ECS shows a stopped container's health as UNKNOWN (Docker leaves the last probe's verdict).
                cs.HealthStatus = o is { Running: true } ? o.Health switch { "healthy" => "HEALTHY", "unhealthy" => "UNHEALTHY", _ => "UNKNOWN" } : "UNKNOWN";
            }
            r.Containers.Add(cs);
        }
        if (_book.Publish(r))
        {
            LogReported(_logger, t.Arn, status);
        }
    }

    /// <summary>Completes when no reconcile is running or queued (for tests: a phase barrier instead of a sleep).</summary>
    internal async Task WhenIdleAsync()
    {
        while (!_workers.IsEmpty)
        {
            await Task.WhenAll(_workers.Keys).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await Task.Yield();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var t in _tasks.Values)
        {
            lock (t)
            {
                t.CleanupTimer?.Dispose();
            }
        }
        foreach (var loop in new[] { _watchLoop, _resyncLoop }.OfType<Task>().Concat(_workers.Keys))
        {
            await loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _stop.Dispose();
    }

    private sealed class TrackedTask(string arn)
    {
        public string Arn { get; } = arn;
        public DesiredTask? Desired { get; set; }
        public volatile bool Orphan;
        /// <summary>Containers of it were seen or created by this process (adopted ones included).</summary>
        public bool HasContainers { get; set; }
        /// <summary>This process began launching it, so missing containers are ones still to create.</summary>
        public bool Launching { get; set; }
        public bool Stopped { get; set; }
        public DateTimeOffset? StoppedSeenAt { get; set; }
        /// <summary>When its kept containers are removed; set once the task is stopped.</summary>
        public DateTimeOffset? CleanupAt { get; set; }
        public ITimer? CleanupTimer { get; set; }
        public DateTimeOffset CleanupTimerAt { get; set; }
        /// <summary>The status this process last reported (the metadata endpoint's KnownStatus).</summary>
        public string? KnownStatus { get; set; }
        public long PullStartedAt { get; set; }
        public long PullStoppedAt { get; set; }
        public long StartedAt { get; set; }
        public long ExecutionStoppedAt { get; set; }
        public string? StopCode { get; set; }
        public string? StoppedReason { get; set; }
        /// <summary>The task's images are present (pulled once per task, not on every pass while containers wait).</summary>
        public bool ImagesReady { get; set; }
        /// <summary>Containers that will never start because a dependency cannot hold, with the reason; null when none.</summary>
        public Dictionary<string, string>? GaveUp { get; set; }
        /// <summary>When this process began launching the task, and started each container (startTimeout's clocks).</summary>
        public DateTimeOffset? LaunchBeganAt { get; set; }
        public Dictionary<string, DateTimeOffset>? StartedTimes { get; set; }
        /// <summary>The pass already scheduled for a startTimeout deadline, if any.</summary>
        public DateTimeOffset? WakeAt { get; set; }
        public int Dirty;
        public bool WorkerRunning;
        /// <summary>
        /// The next observation lists the task's containers by label instead of inspecting <see cref="Ids"/>: set for
        /// adopted tasks, by every resync and after a failed pass. Only this task's worker clears it.
        /// </summary>
        public volatile bool ListNeeded;
        /// <summary>Container name → id of every container of the task this process listed or created (worker only).</summary>
        public Dictionary<string, string> Ids { get; } = new(StringComparer.Ordinal);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{TaskArn} failed to start: {Reason}")]
    private static partial void LogFailedToStart(ILogger logger, string taskArn, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Re-adopted containers of {Count} task(s) from the container runtime")]
    private static partial void LogAdopted(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reconciling {TaskArn} failed; retrying shortly")]
    private static partial void LogReconcileFailed(ILogger logger, Exception e, string taskArn);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{TaskArn} is {Status}")]
    private static partial void LogReported(ILogger logger, string taskArn, string status);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Container event {Action} for {TaskArn}")]
    private static partial void LogEvent(ILogger logger, string action, string taskArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Docker event stream lost ({Reason}); reconnecting, then resyncing")]
    private static partial void LogEventStreamLost(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Resync failed: {Reason}")]
    private static partial void LogResyncFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cleanup wait over for {TaskArn}: removed its {Count} container(s) and its task volumes")]
    private static partial void LogCleanedUp(ILogger logger, string taskArn, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopped and forgot {TaskArn}: the server does not know it")]
    private static partial void LogForgotten(ILogger logger, string taskArn);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{TaskArn}: container {Container} will never start: {Reason}")]
    private static partial void LogDependencyNever(ILogger logger, string taskArn, string container, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{TaskArn} was {LastStatus} on the server but has no containers here: reporting it STOPPED instead of launching it again")]
    private static partial void LogLost(ILogger logger, string taskArn, string lastStatus);
}

/// <summary>A task as the engine knows it, for the task metadata endpoint (times in Unix milliseconds, 0 when unset).</summary>
internal sealed record TaskMetadataView(DesiredTask? Desired, string? KnownStatus, long PullStartedAt, long PullStoppedAt, long ExecutionStoppedAt);
