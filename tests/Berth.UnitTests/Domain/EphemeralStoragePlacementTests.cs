using Berth.Aws.Ecs;
using Berth.Core.Agent;
using Berth.UnitTests.Agents;

namespace Berth.UnitTests.Domain;

/// <summary>
/// ephemeralStorage.sizeInGiB places a task only on an instance whose agent reported a Docker data root at least that
/// large (berth.ephemeral-storage-gib); when none is left the failure names the attribute, as the host policy's do.
/// </summary>
public sealed class EphemeralStoragePlacementTests
{
    private static Register Host(string agentId, string? gib)
    {
        var r = EcsFixture.Registration(agentId: agentId);
        if (gib is not null)
        {
            r.Attributes[EphemeralSpace.Attribute] = gib;
        }
        return r;
    }

    private static TaskDefinition Asking(int gib)
    {
        var def = EcsFixture.Web();
        def.EphemeralStorage = new EphemeralStorage { SizeInGiB = gib };
        return def;
    }

    [Fact]
    public async Task RunTask_OnlyInstanceTooSmall_FailureNamesTheAttributeAndSizes()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(Host("agent-1", "40"), CancellationToken.None);
        await f.AddTaskDefinitionAsync("big", 1, Asking(50));

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"big"}""");

        Assert.Equal(0, run.GetProperty("tasks").GetArrayLength());
        var failure = run.GetProperty("failures")[0];
        Assert.Equal("ATTRIBUTE:berth.ephemeral-storage-gib", failure.GetProperty("reason").GetString());
        Assert.Equal("ephemeralStorage.sizeInGiB 50: the container instance's Docker data root holds 40 GiB (berth.ephemeral-storage-gib=40)", failure.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task RunTask_InstanceReportingNoSize_IsNotTrustedWithTheSpace()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(Host("agent-1", null), CancellationToken.None);
        await f.AddTaskDefinitionAsync("big", 1, Asking(21));

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"big"}""");

        Assert.Equal("ATTRIBUTE:berth.ephemeral-storage-gib", run.GetProperty("failures")[0].GetProperty("reason").GetString());
        Assert.Contains("reports no berth.ephemeral-storage-gib", run.GetProperty("failures")[0].GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunTask_LargeEnoughInstanceChosen_AndTheSizeReachesTheAgent()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(Host("agent-1", "30"), CancellationToken.None);
        var big = (await f.Gateway.RegisterAsync(Host("agent-2", "100"), CancellationToken.None)).Key;
        await f.AddTaskDefinitionAsync("big", 1, Asking(60));

        for (var i = 0; i < 4; i++)
        {
            var run = await f.CallAsync("RunTask", """{"taskDefinition":"big"}""");
            var arn = run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
            var task = f.State.Tasks.Find("default/" + arn[(arn.LastIndexOf('/') + 1)..])!;
            Assert.Equal(big, "default/" + task.InstanceId);
            var def = f.Tasks.DefinitionOf(task)!;
            Assert.Equal(60, Berth.ControlPlane.Domain.TaskSpecs.Build(task, def, "arn").EphemeralStorageGib);
        }
    }

    [Fact]
    public async Task PutAttributes_CannotForgeTheMeasuredSize()
    {
        await using var f = new EcsFixture();
        new Berth.ControlPlane.Ecs.AttributeOperations(f.State, f.Arns).Map(f.Api);
        var key = (await f.Gateway.RegisterAsync(Host("agent-1", "30"), CancellationToken.None)).Key;
        var id = key[(key.IndexOf('/', StringComparison.Ordinal) + 1)..];
        var e = await f.CallFailsAsync("PutAttributes", $$"""{"attributes":[{"name":"berth.ephemeral-storage-gib","value":"500","targetId":"{{id}}"}]}""");
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Contains("attributes[0].name", e.Message, StringComparison.Ordinal);
    }
}
