using Berth.Aws.Protocol;
using Berth.Core.Logs;
using Berth.Logs.Api;
using Berth.Logs.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Logs.Hosting;

public static class LogsHosting
{
    /// <summary>Registers the CloudWatch Logs store, its API on the front door, <see cref="ILogIngest"/> and the retention sweeper. Needs a BerthIdentity.</summary>
    public static IServiceCollection AddBerthLogs(this IServiceCollection services, LogStoreOptions options)
    {
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        // Each region its own store under DATA/logs/{region}/ (the request's SigV4 region, or awslogs-region, selects it).
        services.AddSingleton<LogRegions>();
        services.AddSingleton(sp => sp.GetRequiredService<LogRegions>().Default.Store);
        services.AddSingleton<ILogIngest>(sp => sp.GetRequiredService<LogRegions>());
        services.AddSingleton(sp => sp.GetRequiredService<LogRegions>().Default.Api);
        services.AddHostedService<RetentionSweeper>();
        return services;
    }
}

/// <summary>Applies every region's groups' retention policies every <see cref="LogStoreOptions.RetentionSweepInterval"/>: whole expired segments are deleted.</summary>
internal sealed partial class RetentionSweeper(LogRegions regions, LogStoreOptions options, TimeProvider time, ILogger<RetentionSweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.RetentionSweepInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    var dropped = 0;
                    foreach (var region in regions.All)
                    {
                        dropped += await region.Store.ApplyRetentionAsync(stoppingToken).ConfigureAwait(false);
                    }
                    if (dropped > 0)
                    {
                        LogDropped(logger, dropped);
                    }
                }
                catch (IOException e)
                {
                    LogFailed(logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Log retention removed {Segments} expired segments")]
    private static partial void LogDropped(ILogger logger, int segments);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Log retention sweep failed")]
    private static partial void LogFailed(ILogger logger, Exception e);
}
