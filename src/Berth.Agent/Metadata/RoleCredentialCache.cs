using System.Collections.Concurrent;
using Berth.Core.Agent;

namespace Berth.Agent.Metadata;

/// <summary>
/// The role credentials of this agent's tasks (taskRoleArn), as the control plane last issued them: filled from
/// each DesiredTask and from the answers to the agent's refresh requests, read by the credentials endpoint.
/// </summary>
/// <remarks>
/// Refresh: a task's credentials are asked for again once less than half their lifetime is left (ECS issues
/// 6 hours; the agent refreshes well before expiry), at most once per <see cref="RetryAfter"/> per task. A
/// container asking for credentials the agent does not hold yet triggers a request at once (<see cref="GetAsync"/>).
/// </remarks>
internal sealed class RoleCredentialCache(TimeProvider time)
{
    internal static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(10);
    private readonly ConcurrentDictionary<string, Entry> _byTask = new(StringComparer.Ordinal);
    private readonly Lock _sendLock = new();
    private Func<AgentMessage, bool>? _send;
    private TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private sealed record Entry(RoleCredentials? Credentials, DateTimeOffset IssuedAt, DateTimeOffset AskedAt);

    /// <summary>Where requests go while a stream to the server is up (null: none is).</summary>
    public void Attach(Func<AgentMessage, bool>? send)
    {
        lock (_sendLock)
        {
            _send = send;
        }
    }

    /// <summary>Keeps <paramref name="c"/> unless a fresher one of the same task is held.</summary>
    public void Put(RoleCredentials c)
    {
        if (c.TaskArn.Length == 0)
        {
            return;
        }
        var now = time.GetUtcNow();
        _byTask.AddOrUpdate(c.TaskArn, _ => new Entry(c, now, DateTimeOffset.MinValue),
            (_, old) => old.Credentials is { } o && o.ExpirationMs > c.ExpirationMs ? old : new Entry(c, now, old.AskedAt));
        TaskCompletionSource arrived;
        lock (_sendLock)
        {
            arrived = _arrived;
            _arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        arrived.TrySetResult();
    }

    /// <summary>The task's credentials while they are valid; null otherwise.</summary>
    public RoleCredentials? Get(string taskArn)
        => _byTask.TryGetValue(taskArn, out var e) && e.Credentials is { } c && c.ExpirationMs > time.GetUtcNow().ToUnixTimeMilliseconds() ? c : null;

    /// <summary>
    /// The task's valid credentials, asking the server and waiting up to <paramref name="wait"/> when none are held.
    /// </summary>
    public async Task<RoleCredentials?> GetAsync(string taskArn, TimeSpan wait, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + wait;
        while (true)
        {
            Task arrived;
            lock (_sendLock)
            {
                arrived = _arrived.Task;
            }
            if (Get(taskArn) is { } c)
            {
                return c;
            }
            Ask([taskArn], force: false);
            var left = deadline - time.GetUtcNow();
            if (left <= TimeSpan.Zero)
            {
                return null;
            }
            try
            {
                await arrived.WaitAsync(left, time, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return Get(taskArn);
            }
        }
    }

    /// <summary>Asks for fresh credentials of the tasks whose credentials are past half their lifetime (called on heartbeats).</summary>
    public void RefreshDue()
    {
        var now = time.GetUtcNow();
        var due = new List<string>();
        foreach (var (arn, e) in _byTask)
        {
            if (e.Credentials is not { } c)
            {
                if (now - e.AskedAt > TimeSpan.FromHours(1))
                {
                    _byTask.TryRemove(new KeyValuePair<string, Entry>(arn, e)); // asked for, never issued: no role or stopped
                }
                continue;
            }
            var expiry = DateTimeOffset.FromUnixTimeMilliseconds(c.ExpirationMs);
            if (expiry <= now - TimeSpan.FromHours(1))
            {
                // Long expired and never renewed: the task stopped; forget it.
                _byTask.TryRemove(new KeyValuePair<string, Entry>(arn, e));
                continue;
            }
            if (now >= e.IssuedAt + (expiry - e.IssuedAt) / 2 && expiry > now)
            {
                due.Add(arn);
            }
        }
        if (due.Count > 0)
        {
            Ask(due, force: false);
        }
    }

    /// <summary>Forgets a task (it was removed from this agent).</summary>
    public void Forget(string taskArn) => _byTask.TryRemove(taskArn, out _);

    private void Ask(IReadOnlyList<string> taskArns, bool force)
    {
        var now = time.GetUtcNow();
        var request = new RoleCredentialsRequest();
        foreach (var arn in taskArns)
        {
            var asked = false;
            _byTask.AddOrUpdate(arn, _ =>
            {
                asked = true;
                return new Entry(null, DateTimeOffset.MinValue, now);
            }, (_, old) =>
            {
                if (!force && now - old.AskedAt < RetryAfter)
                {
                    asked = false;
                    return old;
                }
                asked = true;
                return old with { AskedAt = now };
            });
            if (asked)
            {
                request.TaskArns.Add(arn);
            }
        }
        if (request.TaskArns.Count == 0)
        {
            return;
        }
        Func<AgentMessage, bool>? send;
        lock (_sendLock)
        {
            send = _send;
        }
        send?.Invoke(new AgentMessage { RoleCredentialsRequest = request });
    }
}
