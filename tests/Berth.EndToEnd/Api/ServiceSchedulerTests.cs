using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;
using static Berth.EndToEnd.Api.ServiceSteps;

namespace Berth.EndToEnd.Api;

/// <summary>
/// The service scheduler on one <c>berth up</c> with its local agent on real Docker, driven by the aws CLI:
/// scaling, the circuit breaker and its rollback, container health checks.
/// </summary>
public sealed class ServiceSchedulerTests : LocalServerTest
{
    [Fact]
    public async Task Scale_0To10To3_CountsFollowAndEventsUseEcsWording()
    {
        await EcsScenario.RegisterAsync(Aws, "scale", Containers());
        var created = await Aws.RunAsync("ecs", "create-service", "--cluster", Cluster, "--service-name", "scale", "--task-definition", "scale", "--desired-count", "0");
        Assert.Equal(0, created["service"]!["desiredCount"]!.GetValue<int>());
        await UntilStableAsync(Http, Cluster, "scale");

        await Aws.RunAsync("ecs", "update-service", "--cluster", Cluster, "--service", "scale", "--desired-count", "10");
        var most = 0;
        await UntilServiceAsync(Http, Cluster, "scale", s =>
        {
            most = Math.Max(most, s["runningCount"]!.GetValue<int>() + s["pendingCount"]!.GetValue<int>());
            return s["runningCount"]!.GetValue<int>() == 10;
        }, "10 running tasks");
        Assert.True(most <= 10, $"running + pending reached {most} while scaling out to 10");

        await Aws.RunAsync("ecs", "update-service", "--cluster", Cluster, "--service", "scale", "--desired-count", "3");
        // Three live tasks (lastStatus other than STOPPED), the seven others STOPPED by the scheduler.
        var tasks = await UntilAsync(() => TasksAsync(Http, Cluster, "scale"),
            ts => ts.Count(IsLive) == 3 && ts.Count(t => !IsLive(t)) == 7, "3 live and 7 stopped tasks");
        foreach (var t in tasks.Where(t => !IsLive(t)))
        {
            Assert.Equal("ServiceSchedulerInitiated", t.Str("stopCode"));
            Assert.StartsWith("Scaling activity initiated by (deployment ecs-svc/", t.Str("stoppedReason"), StringComparison.Ordinal);
        }
        Assert.All(tasks.Where(IsLive), t => Assert.Equal("RUNNING", t.Str("lastStatus")));
        var service = await UntilServiceAsync(Http, Cluster, "scale",
            s => IsStable(s) && Events(s).First() == "(service scale) has reached a steady state.", "the steady state after scaling in");
        Assert.Equal(3, service["runningCount"]!.GetValue<int>());

        // The CLI sees the same: list-tasks by service name, and the services-stable waiter returns.
        var listed = await Aws.RunAsync("ecs", "list-tasks", "--cluster", Cluster, "--service-name", "scale");
        Assert.Equal(tasks.Where(IsLive).Select(t => t.Str("taskArn")).Order(), listed["taskArns"]!.AsArray().Select(a => a!.GetValue<string>()).Order());
        await Aws.RunAsync("ecs", "wait", "services-stable", "--cluster", Cluster, "--services", "scale");

        var described = (await Aws.RunAsync("ecs", "describe-services", "--cluster", Cluster, "--services", "scale"))["services"]![0]!;
        var events = Events(described).ToList();
        Assert.Equal(10, Sum(events, Started()));
        Assert.Equal(7, Sum(events, Stopped()));
        // Steady at 0, again at 3 (and possibly at 10 in between).
        Assert.True(events.Count(e => e == "(service scale) has reached a steady state.") >= 2, string.Join("\n", events));
        // Newest first: the last steady state comes after the last stop.
        Assert.True(events.FindIndex(e => e.Contains("has reached a steady state.", StringComparison.Ordinal))
            < events.FindIndex(e => Stopped().IsMatch(e)), string.Join("\n", events));
        Assert.DoesNotContain(events, e => e.Contains("unable", StringComparison.Ordinal));
        Assert.Equal(3, (await DockerCli.ContainersAsync(Server!.Label, all: false)).Length);
    }

    [Fact]
    public async Task CircuitBreaker_CrashingRevision_FailsAndRollsBackToThePreviousRevision()
    {
        await EcsScenario.RegisterAsync(Aws, "cb", Containers(rev: "1"));
        await EcsScenario.RegisterAsync(Aws, "cb", Containers(rev: "2", command: ["sh", "-c", "exit 1"]));
        await Aws.RunAsync("ecs", "create-service", "--cluster", Cluster, "--service-name", "cb", "--task-definition", "cb:1", "--desired-count", "2",
            "--deployment-configuration", """{"deploymentCircuitBreaker":{"enable":true,"rollback":true},"maximumPercent":200,"minimumHealthyPercent":100}""");
        var stable = await UntilStableAsync(Http, Cluster, "cb");
        var first = stable["deployments"]![0]!.Str("id");

        var updated = await Aws.RunAsync("ecs", "update-service", "--cluster", Cluster, "--service", "cb", "--task-definition", "cb:2");
        var failing = updated["service"]!["deployments"]![0]!.Str("id");
        Assert.NotEqual(first, failing);
        Assert.Equal("IN_PROGRESS", updated["service"]!["deployments"]![0]!.Str("rolloutState"));

        // Watch the deployments as the breaker trips: the failed one leaves the list once its last task stopped.
        var seen = new List<JsonNode>();
        var rolledBack = await UntilServiceAsync(Http, Cluster, "cb", s =>
        {
            seen.AddRange(s["deployments"]!.AsArray().Where(d => d!.Str("id") == failing).Select(d => d!.DeepClone()));
            var d0 = s["deployments"]![0]!;
            return IsStable(s) && d0.Str("id") != first && d0.Str("id") != failing;
        }, "the rollback deployment to complete", 120);

        var primary = rolledBack["deployments"]![0]!;
        Assert.EndsWith("task-definition/cb:1", primary.Str("taskDefinition"), StringComparison.Ordinal);
        Assert.EndsWith("task-definition/cb:1", rolledBack.Str("taskDefinition"), StringComparison.Ordinal);
        Assert.Equal($"ECS deployment {primary.Str("id")} completed.", primary.Str("rolloutStateReason"));
        Assert.Equal(2, rolledBack["runningCount"]!.GetValue<int>());
        var live = (await TasksAsync(Http, Cluster, "cb")).Where(IsLive).ToList();
        Assert.Equal(2, live.Count);
        Assert.All(live, t => Assert.EndsWith("task-definition/cb:1", t.Str("taskDefinitionArn"), StringComparison.Ordinal));
        Assert.All(live, t => Assert.Equal(primary.Str("id"), t.Str("startedBy")));
        // Whatever the poller caught of the failed deployment in the list said FAILED only with ECS's reason.
        foreach (var d in seen.Where(d => d.Str("rolloutState") == "FAILED"))
        {
            Assert.Equal("ECS deployment circuit breaker: tasks failed to start.", d.Str("rolloutStateReason"));
            Assert.True(d["failedTasks"]!.GetValue<int>() >= 3, d.ToJsonString());
        }

        // The failed deployment, as the service deployment API keeps it.
        var list = await Aws.RunAsync("ecs", "list-service-deployments", "--cluster", Cluster, "--service", "cb");
        var arns = list["serviceDeployments"]!.AsArray().Select(d => d!.Str("serviceDeploymentArn")).ToArray();
        var all = (await Aws.RunAsync(["ecs", "describe-service-deployments", "--service-deployment-arns", .. arns]))["serviceDeployments"]!.AsArray();
        var failed = all.Single(d => d!.Str("serviceDeploymentArn").EndsWith(failing["ecs-svc/".Length..], StringComparison.Ordinal))!;
        Assert.Equal("ROLLBACK_SUCCESSFUL", failed.Str("status"));
        Assert.Equal("ECS deployment circuit breaker: tasks failed to start.", failed.Str("statusReason"));
        Assert.Equal("TRIGGERED", failed["deploymentCircuitBreaker"]!.Str("status"));
        Assert.True(failed["deploymentCircuitBreaker"]!["failureCount"]!.GetValue<int>() >= 3, failed.ToJsonString());
        Assert.Equal(3, failed["deploymentCircuitBreaker"]!["threshold"]!.GetValue<int>());
        Assert.Equal("ECS deployment circuit breaker: tasks failed to start.", failed["rollback"]!.Str("reason"));
        Assert.Equal(arns.Single(a => a.EndsWith(primary.Str("id")["ecs-svc/".Length..], StringComparison.Ordinal)).Replace(":service-deployment/", ":service-revision/", StringComparison.Ordinal),
            failed["rollback"]!.Str("serviceRevisionArn"));

        // The crashing revision has no task left: at least threshold many exited on their own (failures).
        var crashedTasks = (await TasksAsync(Http, Cluster, "cb")).Where(t => t.Str("startedBy") == failing).ToList();
        Assert.All(crashedTasks, t => Assert.Equal("STOPPED", t.Str("lastStatus")));
        Assert.True(crashedTasks.Count(t => t.Str("stopCode") == "EssentialContainerExited") >= 3, new System.Text.Json.Nodes.JsonArray([.. crashedTasks.Select(t => t.DeepClone())]).ToJsonString());
        Assert.All(crashedTasks, t => Assert.Contains(t.Str("stopCode"), new[] { "EssentialContainerExited", "ServiceSchedulerInitiated" }));

        var events = Events(await ServiceAsync(Http, Cluster, "cb")).ToList();
        Assert.Contains($"(service cb) (deployment {failing}) deployment failed: tasks failed to start.", events);
        Assert.Contains($"(service cb) rolling back to deployment {first}.", events);
        Assert.Equal("(service cb) has reached a steady state.", events[0]);
    }

    [Fact]
    public async Task HealthCheck_AlwaysFailing_TasksAreReplaced()
    {
        var check = new JsonObject
        {
            ["command"] = new JsonArray("CMD-SHELL", "exit 1"),
            ["interval"] = 5,
            ["timeout"] = 2,
            ["retries"] = 1,
            ["startPeriod"] = 0,
        };
        await EcsScenario.RegisterAsync(Aws, "sick", Containers(healthCheck: check));
        await Aws.RunAsync("ecs", "create-service", "--cluster", Cluster, "--service-name", "sick", "--task-definition", "sick", "--desired-count", "1");

        var service = await UntilServiceAsync(Http, Cluster, "sick",
            s => Events(s).Any(e => e.EndsWith(") failed container health checks.", StringComparison.Ordinal)), "a failed health check event", 60);
        var message = Events(service).First(e => e.EndsWith(") failed container health checks.", StringComparison.Ordinal));
        var match = System.Text.RegularExpressions.Regex.Match(message, @"^\(service sick\) \(task ([0-9a-f]+)\) failed container health checks\.$");
        Assert.True(match.Success, message);
        var sickId = match.Groups[1].Value;

        // The unhealthy task is stopped with ECS's reason, and another task takes its place.
        var tasks = await UntilAsync(() => TasksAsync(Http, Cluster, "sick"),
            ts => ts.Any(t => t.Str("taskArn").EndsWith(sickId, StringComparison.Ordinal) && !IsLive(t)) && ts.Any(t => IsLive(t) && !t.Str("taskArn").EndsWith(sickId, StringComparison.Ordinal)),
            "the unhealthy task stopped and a replacement started", 60);
        var sick = tasks.Single(t => t.Str("taskArn").EndsWith(sickId, StringComparison.Ordinal));
        Assert.Equal("Task failed container health checks", sick.Str("stoppedReason"));
        Assert.Equal("ServiceSchedulerInitiated", sick.Str("stopCode"));
        Assert.Equal(1, tasks.Count(IsLive));

        var events = Events(await ServiceAsync(Http, Cluster, "sick")).ToList();
        Assert.True(Sum(events, Started()) >= 2, string.Join("\n", events));
        Assert.True(Sum(events, Stopped()) >= 1, string.Join("\n", events));
        Assert.DoesNotContain("(service sick) has reached a steady state.", events);
    }
}
