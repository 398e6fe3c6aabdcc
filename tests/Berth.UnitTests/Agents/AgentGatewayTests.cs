using Berth.Aws.Ecs;
using Berth.ControlPlane.State;
using Berth.ControlPlane.Domain;
using Berth.State;
using Berth.Core.Agent;

namespace Berth.UnitTests.Agents;

public sealed class AgentGatewayTests
{
    [Fact]
    public async Task Register_NoDefaultCluster_CreatesItAndAnActiveInstance()
    {
        await using var f = new EcsFixture();

        var (stored, key, secret, rejection) = await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        var id = key["default/".Length..];

        Assert.Null(rejection);
        Assert.False(string.IsNullOrEmpty(secret)); // issued at first registration
        Assert.Equal("ACTIVE", f.State.Clusters.Find("default")?.Status);
        var i = stored!;
        Assert.Equal(f.Arns.ContainerInstance("default", id), InstanceViews.Arn(f.Arns, i));
        Assert.True(i.AgentConnected);
        Assert.Equal("DockerVersion: 20.10.24", i.VersionInfo.DockerVersion);
        Assert.Equal(2048, i.Cpu);
        Assert.Contains("8000", i.Ports);
        Assert.Contains("51678", i.Ports);
        Assert.Contains(i.Attributes, a => a is { Name: "ecs.os-type", Value: "linux" });
    }

    [Fact]
    public async Task Register_UnknownCluster_IsRejected()
    {
        await using var f = new EcsFixture();
        var (stored, _, _, rejection) = await f.Gateway.RegisterAsync(EcsFixture.Registration(cluster: "nope"), CancellationToken.None);
        Assert.Null(stored);
        Assert.StartsWith("Cluster nope not found", rejection, StringComparison.Ordinal);
        Assert.Equal(0, f.State.ContainerInstances.Count);
    }

    [Fact]
    public async Task Register_SameAgentAgain_ReusesInstanceAndKeepsCustomAttributes()
    {
        await using var f = new EcsFixture();
        var (first, id, secret, _) = await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        await using (var tx = await f.State.BeginAsync())
        {
            tx.Put(f.State.ContainerInstances, id, first! with { Attributes = [.. first.Attributes, new AttributeRecord { Name = "team", Value = "blue" }] });
            await tx.CommitAsync();
        }

        var again = EcsFixture.Registration();
        again.AgentSecret = secret!;
        var (second, id2, secret2, rejection) = await f.Gateway.RegisterAsync(again, CancellationToken.None);

        Assert.Null(rejection);
        Assert.Equal(id, id2);
        Assert.Null(secret2); // the agent's own secret was accepted: no new one
        Assert.Equal(1, f.State.ContainerInstances.Count);
        Assert.Contains(second!.Attributes, a => a is { Name: "team", Value: "blue" });
    }

    [Fact]
    public async Task Register_SameAgentOnly_AnotherAgentIdWithTheRightArnAndSecret_IsRejected()
    {
        await using var f = new EcsFixture();
        var (first, id, secret, _) = await f.Gateway.RegisterAsync(EcsFixture.Registration("agent-a"), CancellationToken.None);
        var replay = EcsFixture.Registration("agent-b");
        replay.ContainerInstanceArn = InstanceViews.Arn(f.Arns, first!);
        replay.AgentSecret = secret!;

        // With TLS (certified agent ids) the secret alone does not hand an instance to another agent...
        var (stored, _, _, rejection) = await f.Gateway.RegisterAsync(replay, CancellationToken.None, sameAgentOnly: true);
        Assert.Null(stored);
        Assert.Contains("belongs to agent agent-a, not to agent agent-b", rejection, StringComparison.Ordinal);
        Assert.Equal("agent-a", f.State.ContainerInstances.Find(id)!.AgentId);

        // ...while the owner still registers again.
        var again = EcsFixture.Registration("agent-a");
        again.AgentSecret = secret!;
        Assert.Null((await f.Gateway.RegisterAsync(again, CancellationToken.None, sameAgentOnly: true)).Rejection);
    }

    [Fact]
    public async Task ApplyStatus_RunningThenEssentialExit_RecordsLifecycle()
    {
        await using var f = new EcsFixture();
        var instanceKey = (await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None)).Key;
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        var taskArn = run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        var key = EcsState.ScopedId("default", taskArn[(taskArn.LastIndexOf('/') + 1)..]);

        var running = new TaskStatusReport { TaskArn = taskArn, LastStatus = "RUNNING", StartedAt = 1_700_000_000_000 };
        running.Containers.Add(new ContainerStatus { Name = "web", RuntimeId = "c1", LastStatus = "RUNNING", NetworkBindings = { new PortBinding { BindIp = "0.0.0.0", ContainerPort = 80, HostPort = 32768, Protocol = "tcp" } } });
        await f.Tasks.ApplyReportAsync(instanceKey, running, CancellationToken.None);

        var t = f.State.Tasks.Find(key)!;
        Assert.Equal("RUNNING", t.LastStatus);
        Assert.NotNull(t.ConnectivityAt);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000), t.StartedAt);
        Assert.Equal(32768, t.Containers.Single().Bindings!.Single().HostPort);
        Assert.Equal(2, t.Version);

        var exited = new TaskStatusReport { TaskArn = taskArn, LastStatus = "STOPPED", StopCode = "EssentialContainerExited", StoppedReason = "Essential container in task exited" };
        exited.Containers.Add(new ContainerStatus { Name = "web", LastStatus = "STOPPED", HasExitCode = true, ExitCode = 3 });
        await f.Tasks.ApplyReportAsync(instanceKey, exited, CancellationToken.None);

        t = f.State.Tasks.Find(key)!;
        Assert.Equal("STOPPED", t.LastStatus);
        Assert.Equal("STOPPED", t.DesiredStatus);
        Assert.Equal("EssentialContainerExited", t.StopCode);
        Assert.Equal(3, t.Containers.Single().ExitCode);
        Assert.NotNull(t.StoppedAt);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000), t.StartedAt); // 0 keeps the earlier value

        // A late report after STOPPED changes nothing.
        await f.Tasks.ApplyReportAsync(instanceKey, running, CancellationToken.None);
        Assert.Equal("STOPPED", f.State.Tasks.Find(key)!.LastStatus);
    }
}

public sealed class AgentIdentityTests
{
    [Fact]
    public async Task Register_ExistingInstanceWithoutItsSecret_IsRefusedAndNothingChanges()
    {
        await using var f = new EcsFixture();
        var (first, key, secret, _) = await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);

        // Another process presents the same ARN (and even the same agent id) without the secret, or with a wrong one.
        // The wrong secret differs from the real one in its first character whatever the real one is.
        var altered = (secret![0] == '0' ? "1" : "0") + secret[1..];
        foreach (var wrong in new[] { "", altered })
        {
            var impostor = EcsFixture.Registration();
            impostor.ContainerInstanceArn = InstanceViews.Arn(f.Arns, first!);
            impostor.AgentSecret = wrong;
            impostor.CpuUnits = 99;
            var (stored, k2, s2, rejection) = await f.Gateway.RegisterAsync(impostor, CancellationToken.None);
            Assert.True(stored is null, $"wrong='{wrong}' key={key} k2={k2} s2={s2} arn={impostor.ContainerInstanceArn}");
            Assert.Contains("belongs to another agent", rejection, StringComparison.Ordinal);
        }
        Assert.Equal(2048, f.State.ContainerInstances.Find(key)!.Cpu);
    }
}
