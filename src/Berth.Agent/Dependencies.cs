using Berth.Agent.Runtime;
using Berth.Core.Agent;

namespace Berth.Agent;

/// <summary>
/// Whether a container's <c>dependsOn</c> conditions let it start now, not yet, or never. Decided from what the
/// runtime shows of the task's containers; pure, so <see cref="TaskEngine"/> can ask on every pass.
/// </summary>
/// <remarks>
/// Conditions as ECS defines them: START, the dependency has been started (running or since exited); COMPLETE, it
/// exited, with any code; SUCCESS, it exited 0; HEALTHY, its Docker health check reports healthy. "Never" when the
/// condition can no longer hold: a SUCCESS dependency exited non-zero, a HEALTHY one exited, a dependency that will
/// itself never start, or one not in the task. An UNHEALTHY dependency is waited for, not given up: Docker may
/// still report it healthy later, and ECS's agent waits too (a service replaces such a task by its health).
/// Reasons follow the ECS agent's wording ("dependency graph: failed to resolve container ordering dependency
/// ..."), prefixed with CannotStartContainerError as ECS shows it on the container.
/// </remarks>
internal static class Dependencies
{
    /// <summary>ECS marks a container stopped for a dependency that cannot hold with 143, as if SIGTERMed.</summary>
    public const int NeverStartedExitCode = 143;

    public enum Gate
    {
        Start,
        Wait,
        Never,
    }

    /// <param name="startedNow">Containers started earlier in this pass (not yet visible in <paramref name="observed"/>).</param>
    /// <param name="gaveUp">Containers of the task that will never start; null when none.</param>
    public static (Gate Gate, string? Reason) Evaluate(TaskSpec spec, Core.Agent.ContainerSpec target, IReadOnlyDictionary<string, RuntimeContainer> observed,
        IReadOnlySet<string> startedNow, IReadOnlyDictionary<string, string>? gaveUp)
    {
        var gate = Gate.Start;
        foreach (var d in target.DependsOn)
        {
            var name = d.ContainerName;
            if (!spec.Containers.Any(c => c.Name == name))
            {
                return (Gate.Never, Failed(name, target.Name, "as it does not exist in the task"));
            }
            if (gaveUp?.ContainsKey(name) == true)
            {
                return (Gate.Never, Failed(name, target.Name, "because dependency will never start"));
            }
            observed.TryGetValue(name, out var dep);
            var started = startedNow.Contains(name) || dep is not null && dep.State != "created";
            var exited = dep is { Exited: true };
            switch (d.Condition)
            {
                case "" or "START":
                    if (!started)
                    {
                        gate = Gate.Wait;
                    }
                    break;
                case "COMPLETE":
                    if (!exited)
                    {
                        gate = Gate.Wait;
                    }
                    break;
                case "SUCCESS":
                    if (exited && dep!.ExitCode != 0)
                    {
                        return (Gate.Never, Failed(name, target.Name, $"as dependency did not exit successfully (exit code {dep.ExitCode})"));
                    }
                    if (!exited)
                    {
                        gate = Gate.Wait;
                    }
                    break;
                case "HEALTHY":
                    if (exited)
                    {
                        return (Gate.Never, Failed(name, target.Name, $"as dependency exited (exit code {dep!.ExitCode}) without becoming healthy"));
                    }
                    if (dep is not { Running: true, Health: "healthy" })
                    {
                        gate = Gate.Wait;
                    }
                    break;
                default:
                    return (Gate.Never, Failed(name, target.Name, $"as condition '{d.Condition}' is not one of START, COMPLETE, SUCCESS, HEALTHY"));
            }
        }
        return (gate, null);
    }

    private static string Failed(string dependency, string target, string why)
        => $"CannotStartContainerError: dependency graph: failed to resolve container ordering dependency [{dependency}] for target [{target}] {why}";
}
