using Berth.ControlPlane.Ecs;
using Berth.ControlPlane.Hosting;

namespace Berth.UnitTests.Agents;

/// <summary>The agent-facing ECS calls (<see cref="AgentOperations"/>) over an in-memory control plane with one registered agent.</summary>
public sealed class AgentOperationsTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    private static EcsFixture NewFixture(ManualClock clock)
    {
        var f = new EcsFixture(time: clock);
        new AgentOperations(f.Tasks, new ControlPlaneOptions { DataDirectory = "/nonexistent", AgentPort = 4999 }, clock).Map(f.Api);
        return f;
    }

    /// <summary>Registers one agent in the default cluster and runs one task of "web" on it; returns the task's ARN.</summary>
    private static async Task<string> PlaceAsync(EcsFixture f)
    {
        await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        await f.AddTaskDefinitionAsync("web", 1, EcsFixture.Web());
        var run = await f.CallAsync("RunTask", """{"taskDefinition":"web"}""");
        return run.GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
    }

    [Fact]
    public async Task DiscoverPollEndpoint_AnswersTheAgentPortAndNoServiceConnect()
    {
        await using var f = NewFixture(new ManualClock(Start));
        await PlaceAsync(f);

        var r = await f.CallAsync("DiscoverPollEndpoint", "{}");

        Assert.Equal("http://127.0.0.1:4999/", r.GetProperty("endpoint").GetString());
        Assert.Equal("http://127.0.0.1:4999/", r.GetProperty("telemetryEndpoint").GetString());
        Assert.False(r.TryGetProperty("serviceConnectEndpoint", out _));
        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("DiscoverPollEndpoint", """{"containerInstance":"0123456789abcdef0123456789abcdef"}""")).ErrorType);
    }

    [Fact]
    public async Task SubmitTaskStateChange_RunningThenStopped_AppliedInOrderAndNeverBack()
    {
        var clock = new ManualClock(Start);
        await using var f = NewFixture(clock);
        var task = await PlaceAsync(f);
        clock.Advance(TimeSpan.FromSeconds(5));

        var ack = await f.CallAsync("SubmitTaskStateChange", $$"""{"task":"{{task}}","status":"RUNNING","containers":[{"containerName":"web","status":"RUNNING","runtimeId":"c1"}]}""");
        Assert.Equal("ACK", ack.GetProperty("acknowledgment").GetString());
        var t = (await f.CallAsync("DescribeTasks", $$"""{"tasks":["{{task}}"]}""")).GetProperty("tasks")[0];
        Assert.Equal("RUNNING", t.GetProperty("lastStatus").GetString());
        Assert.Equal("c1", t.GetProperty("containers")[0].GetProperty("runtimeId").GetString());
        Assert.Equal(Start.AddSeconds(5).ToUnixTimeSeconds(), (long)t.GetProperty("startedAt").GetDouble());

        var back = await f.CallFailsAsync("SubmitTaskStateChange", $$"""{"task":"{{task}}","status":"PENDING"}""");
        Assert.Equal("InvalidParameterException", back.ErrorType);
        Assert.Equal("status: a task cannot go back from RUNNING to PENDING.", back.Message);

        await f.CallAsync("SubmitTaskStateChange", $$"""{"task":"{{task}}","status":"STOPPED","reason":"done"}""");
        t = (await f.CallAsync("DescribeTasks", $$"""{"tasks":["{{task}}"]}""")).GetProperty("tasks")[0];
        Assert.Equal("STOPPED", t.GetProperty("lastStatus").GetString());
        Assert.Equal("STOPPED", t.GetProperty("desiredStatus").GetString());
        Assert.Equal("done", t.GetProperty("stoppedReason").GetString());
        Assert.Contains("already STOPPED", (await f.CallFailsAsync("SubmitTaskStateChange", $$"""{"task":"{{task}}","status":"RUNNING"}""")).Message);
    }

    [Fact]
    public async Task SubmitContainerStateChange_BadInput_EcsErrorsAndNothingChanges()
    {
        await using var f = NewFixture(new ManualClock(Start));
        var task = await PlaceAsync(f);
        var before = f.State.Tasks.All.Single().Value;

        Assert.Equal("ClusterNotFoundException", (await f.CallFailsAsync("SubmitContainerStateChange", $$"""{"cluster":"nope","task":"{{task}}","containerName":"web","status":"RUNNING"}""")).ErrorType);
        Assert.Equal("The referenced task was not found.", (await f.CallFailsAsync("SubmitContainerStateChange", """{"task":"0123456789abcdef0123456789abcdef","containerName":"web","status":"RUNNING"}""")).Message);
        Assert.StartsWith("containerName:", (await f.CallFailsAsync("SubmitContainerStateChange", $$"""{"task":"{{task}}","containerName":"ghost","status":"RUNNING"}""")).Message, StringComparison.Ordinal);
        Assert.StartsWith("status:", (await f.CallFailsAsync("SubmitContainerStateChange", $$"""{"task":"{{task}}","containerName":"web","status":"NAPPING"}""")).Message, StringComparison.Ordinal);
        Assert.Equal(before, f.State.Tasks.All.Single().Value);

        await f.CallAsync("SubmitContainerStateChange", $$"""{"task":"{{task}}","containerName":"web","status":"STOPPED","exitCode":137}""");
        var c = (await f.CallAsync("DescribeTasks", $$"""{"tasks":["{{task}}"]}""")).GetProperty("tasks")[0].GetProperty("containers")[0];
        Assert.Equal("STOPPED", c.GetProperty("lastStatus").GetString());
        Assert.Equal(137, c.GetProperty("exitCode").GetInt32());
        Assert.Equal("InvalidParameterException", (await f.CallFailsAsync("SubmitContainerStateChange", $$"""{"task":"{{task}}","containerName":"web","status":"RUNNING"}""")).ErrorType);
    }

    [Fact]
    public async Task SubmitAttachmentStateChanges_UnknownAttachment_InvalidParameter()
    {
        await using var f = NewFixture(new ManualClock(Start));
        await PlaceAsync(f);

        var e = await f.CallFailsAsync("SubmitAttachmentStateChanges", """{"attachments":[{"attachmentArn":"arn:aws:ecs:us-east-1:000000000000:attachment/nope","status":"ATTACHED"}]}""");

        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.StartsWith("attachments[0].attachmentArn:", e.Message, StringComparison.Ordinal);
    }
}
