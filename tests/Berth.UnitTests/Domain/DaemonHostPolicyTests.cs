using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.UnitTests.Agents;
using Microsoft.Extensions.Logging.Abstractions;
using HostPolicy = Berth.Core.Agent.HostPolicy;
using Register = Berth.Core.Agent.Register;

namespace Berth.UnitTests.Domain;

/// <summary>
/// A DAEMON service runs one task on every instance whose host policy allows it: an instance whose agent forbids
/// what the task needs is left out, as one a constraint excludes, instead of being handed a task on every pass.
/// </summary>
public sealed class DaemonHostPolicyTests
{
    private static Register Agent(string agentId, bool allowPrivileged)
    {
        var r = EcsFixture.Registration(agentId: agentId);
        foreach (var (k, v) in HostPolicy.Default.Attributes())
        {
            r.Attributes[k] = v;
        }
        if (allowPrivileged)
        {
            r.Attributes[HostPolicy.PrivilegedAttribute] = HostPolicy.Allowed;
        }
        return r;
    }

    [Theory]
    [InlineData(true, 1)]   // privileged: only the instance that allows it
    [InlineData(false, 2)]  // nothing the policy governs: every instance
    public async Task Daemon_SkipsInstancesWhosePolicyForbidsTheTask(bool privileged, int expected)
    {
        await using var f = new EcsFixture();
        var strict = (await f.Gateway.RegisterAsync(Agent("agent-1", allowPrivileged: false), CancellationToken.None)).Key;
        var open = (await f.Gateway.RegisterAsync(Agent("agent-2", allowPrivileged: true), CancellationToken.None)).Key;
        var def = EcsFixture.Web();
        def.ContainerDefinitions![0].Privileged = privileged;
        def.ContainerDefinitions[0].VersionConsistency = "disabled"; // no one-task-first digest resolution: every instance at once
        await f.AddTaskDefinitionAsync("node", 1, def);
        var key = EcsState.ScopedId("default", "node");
        await using (var tx = await f.State.BeginAsync())
        {
            tx.Put(f.State.Services, key, new ServiceRecord
            {
                Name = "node", Cluster = "default", TaskDefinition = "node:1", SchedulingStrategy = "DAEMON",
                DeploymentConfiguration = new DeploymentConfigRecord(),
                Deployments = [new DeploymentRecord { Id = "ecs-svc/1000000000000000001", Status = "PRIMARY", TaskDefinition = "node:1" }],
            });
            await tx.CommitAsync();
        }
        var scheduler = new ServiceScheduler(f.State, f.Tasks, TimeProvider.System, NullLogger<ServiceScheduler>.Instance);

        // Twice: a second pass must neither add a task on the forbidding instance nor stop the allowed one's.
        await scheduler.ReconcileAsync(key, CancellationToken.None);
        await scheduler.ReconcileAsync(key, CancellationToken.None);

        var tasks = f.State.TaskIndex.Get(TaskIndex.ByGroup, "default", "service:node").Select(id => f.State.Tasks.Find(id)!).ToList();
        Assert.Equal(expected, tasks.Count);
        Assert.Contains(tasks, t => "default/" + t.InstanceId == open);
        Assert.Equal(privileged, tasks.All(t => "default/" + t.InstanceId != strict));
        // Left out, not tried and refused: no placement failure recorded for the forbidding instance.
        var events = f.State.Services.Find(key)!.Events.Select(e => e.Message).ToList();
        Assert.DoesNotContain(events, m => m.Contains("unable to place", StringComparison.Ordinal) || m.Contains("berth.policy", StringComparison.Ordinal));
    }
}
