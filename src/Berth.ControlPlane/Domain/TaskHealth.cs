namespace Berth.ControlPlane.Domain;

/// <summary>A task's <c>healthStatus</c> as ECS derives it from its containers' health checks.</summary>
/// <remarks>
/// Only essential containers whose definition has a health check count: ECS ignores non-essential containers, and
/// an essential container without a health check does not hold the task at UNKNOWN (amazon-ecs-agent issue 4094:
/// three essential containers, two with checks and HEALTHY, the task HEALTHY). In ECS's priority order:
/// UNHEALTHY when any counted container is UNHEALTHY; HEALTHY when there is at least one and all are HEALTHY;
/// UNKNOWN otherwise (checks still being evaluated, or no essential container has one). Pure and allocation-free:
/// the service scheduler calls it for every task it weighs.
/// </remarks>
public static class TaskHealth
{
    public const string Healthy = "HEALTHY";
    public const string Unhealthy = "UNHEALTHY";
    public const string Unknown = "UNKNOWN";

    /// <summary>The definition's health check runs a probe (Docker's NONE, or no command, disables it).</summary>
    public static bool HasCheck(Berth.Aws.Ecs.HealthCheck? check) => check is { Command: [var first, ..] } && first != "NONE";

    /// <summary>The task's healthStatus: HEALTHY, UNHEALTHY or UNKNOWN.</summary>
    public static string Of(TaskRecord task) => Checked(task) ?? Unknown;

    /// <summary>
    /// As <see cref="Of"/>, but null when no essential container has a health check, where ECS's UNKNOWN would not
    /// tell "no check" from "checks still running": a scheduler counts such a task healthy once it is RUNNING.
    /// </summary>
    public static string? Checked(TaskRecord task)
    {
        var counted = false;
        var allHealthy = true;
        var containers = task.Containers;
        for (var i = 0; i < containers.Count; i++)
        {
            var c = containers[i];
            // A record stored before hasHealthCheck existed: the agent reports a health status only for containers
            // with a health check, so one that has a status has a check.
            if (!c.Essential || !(c.HasHealthCheck || c.HealthStatus is not null))
            {
                continue;
            }
            counted = true;
            if (c.HealthStatus == Unhealthy)
            {
                return Unhealthy;
            }
            if (c.HealthStatus != Healthy)
            {
                allHealthy = false;
            }
        }
        return !counted ? null : allHealthy ? Healthy : Unknown;
    }
}
