using System.Globalization;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>
/// ALB's health check rules on top of YARP's prober: a target is healthy after one passing check when new,
/// after the healthy threshold when it was unhealthy, and unhealthy after the unhealthy threshold of failures.
/// Success means a status the target group's matcher accepts.
/// </summary>
internal sealed partial class AlbHealthCheckPolicy(TargetHealthBook book, IDestinationHealthUpdater updater, ILogger<AlbHealthCheckPolicy> logger) : IActiveHealthCheckPolicy
{
    public const string PolicyName = "BerthAlb";
    public const string HealthyThreshold = "berth.healthy";
    public const string UnhealthyThreshold = "berth.unhealthy";
    public const string Matcher = "berth.matcher";

    public string Name => PolicyName;

    public void ProbingCompleted(ClusterState cluster, IReadOnlyList<DestinationProbingResult> probingResults)
    {
        var meta = cluster.Model.Config.Metadata;
        var healthy = int.Parse(meta?.GetValueOrDefault(HealthyThreshold) ?? "5", CultureInfo.InvariantCulture);
        var unhealthy = int.Parse(meta?.GetValueOrDefault(UnhealthyThreshold) ?? "2", CultureInfo.InvariantCulture);
        var slowStart = (meta?.GetValueOrDefault(SlowStartRoundRobinPolicy.DurationKey) ?? "0") != "0";
        var matcher = HttpCodeMatcher.TryParse(meta?.GetValueOrDefault(Matcher) ?? "200") ?? HttpCodeMatcher.TryParse("200")!;
        var updates = new List<NewActiveDestinationHealth>(probingResults.Count);
        foreach (var result in probingResults)
        {
            var (passed, reason, description) = Judge(result, matcher);
            var state = book.RecordProbe(cluster.ClusterId, result.Destination.DestinationId, passed, reason, description, healthy, unhealthy, slowStart);
            var health = state switch
            {
                TargetHealthStates.Healthy => DestinationHealth.Healthy,
                TargetHealthStates.Unhealthy => DestinationHealth.Unhealthy,
                _ => DestinationHealth.Unknown,
            };
            if (result.Destination.Health.Active != health)
            {
                LogTransition(logger, cluster.ClusterId, result.Destination.DestinationId, state, reason ?? "");
            }
            updates.Add(new NewActiveDestinationHealth(result.Destination, health));
        }
        updater.SetActive(cluster, updates);
    }

    internal static (bool Passed, string? Reason, string? Description) Judge(DestinationProbingResult result, HttpCodeMatcher matcher)
    {
        if (result.Response is { } response)
        {
            var code = (int)response.StatusCode;
            return matcher.Matches(code)
                ? (true, null, null)
                : (false, TargetHealthStates.ResponseCodeMismatch, $"Health checks failed with these codes: [{code}]");
        }
        return result.Exception is OperationCanceledException or TimeoutException
            ? (false, TargetHealthStates.Timeout, "Request timed out")
            : (false, TargetHealthStates.FailedHealthChecks, "Health checks failed");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Target group {TargetGroup}: target {Target} is now {State} {Reason}")]
    private static partial void LogTransition(ILogger logger, string targetGroup, string target, string state, string reason);
}

/// <summary>
/// Healthy targets only; when none is healthy, every registered target (ALB fails open). "Healthy" is the book's verdict,
/// not YARP's own destination state, so a verdict restored after a restart counts before the first probe.
/// </summary>
internal sealed class FailOpenDestinationsPolicy(TargetHealthBook book) : IAvailableDestinationsPolicy
{
    public const string PolicyName = "BerthFailOpen";

    public string Name => PolicyName;

    public IReadOnlyList<DestinationState> GetAvailalableDestinations(ClusterConfig config, IReadOnlyList<DestinationState> allDestinations)
    {
        var healthy = allDestinations.Where(d => book.IsHealthy(config.ClusterId, d.DestinationId)).ToList();
        return healthy.Count > 0 ? healthy : allDestinations;
    }
}
