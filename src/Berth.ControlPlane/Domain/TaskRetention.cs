using Berth.ControlPlane.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// ECS keeps a STOPPED task describable for at least an hour after it stops, then forgets it. This sweep
/// removes tasks whose stoppedAt is older than the retention window, oldest first, from the stopped-task
/// index (never a scan of the table), so the store holds what is live plus one window of history.
/// </summary>
internal sealed partial class TaskRetention(TaskLifecycle tasks, ServiceLifecycle services, ControlPlaneOptions options, TimeProvider time, ILogger<TaskRetention> logger) : BackgroundService
{
    private const int BatchSize = 1000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await SweepAsync(stoppingToken).ConfigureAwait(false);
                await Task.Delay(options.RetentionSweepInterval, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogSweepFailed(logger, e);
                await Task.Delay(options.RetentionSweepInterval, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>One pass: purges in batches until nothing is older than the window.</summary>
    public async Task<int> SweepAsync(CancellationToken ct)
    {
        var cutoff = time.GetUtcNow() - options.TaskRetention;
        var total = 0;
        int n;
        do
        {
            n = await tasks.PurgeAsync(cutoff, BatchSize, ct).ConfigureAwait(false);
            total += n;
        }
        while (n == BatchSize);
        // Deregistered (INACTIVE) container instances stay describable for the same window once no task names them.
        total += await tasks.PurgeInstancesAsync(cutoff, BatchSize, ct).ConfigureAwait(false);
        // Deleted (INACTIVE) services too.
        total += await services.PurgeAsync(cutoff, BatchSize, ct).ConfigureAwait(false);
        if (total > 0)
        {
            LogPurged(logger, total);
        }
        return total;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Retention: removed {Count} stopped task(s), deregistered instance(s) and deleted service(s) past the retention window")]
    private static partial void LogPurged(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Retention sweep failed; retrying at the next interval")]
    private static partial void LogSweepFailed(ILogger logger, Exception e);
}
