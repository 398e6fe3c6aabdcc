using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Registry.Hosting;

/// <summary>One step of the registry's periodic maintenance (lifecycle policies run before garbage collection).</summary>
public interface IRegistryMaintenance
{
    Task RunAsync(CancellationToken ct);
}

/// <summary>Runs the maintenance steps, then the garbage collector, every <see cref="RegistryOptions.SweepInterval"/>.</summary>
internal sealed partial class RegistrySweeper(RegistryRegions regions, IEnumerable<IRegistryMaintenance> steps, TimeProvider time, ILogger<RegistrySweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var registry = regions.Default.Service;
        using var timer = new PeriodicTimer(registry.Options.SweepInterval, time);
        do
        {
            try
            {
                foreach (var step in steps)
                {
                    await step.RunAsync(stoppingToken).ConfigureAwait(false);
                }
                var result = await registry.CollectGarbageAsync([.. regions.Open.Select(r => r.Service)], stoppingToken).ConfigureAwait(false);
                if (result.BlobsDeleted + result.LinksDropped + result.UploadsExpired > 0)
                {
                    LogSwept(logger, result.BlobsDeleted, result.BytesFreed, result.LinksDropped, result.UploadsExpired);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogSweepFailed(logger, e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Registry sweep: {Blobs} blob(s) deleted ({Bytes} bytes), {Links} stale link(s), {Uploads} idle upload(s)")]
    private static partial void LogSwept(ILogger logger, int blobs, long bytes, int links, int uploads);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Registry sweep failed; retrying at the next interval")]
    private static partial void LogSweepFailed(ILogger logger, Exception e);
}
