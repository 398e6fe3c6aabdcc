using Berth.ControlPlane.Agents;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.Domain;
using Berth.Core.Agent;
using Berth.UnitTests.AgentRuntime;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.UnitTests.Agents;

/// <summary>The gateway's side of awslogs shipping, and RegisterTaskDefinition's checks of logConfiguration.</summary>
public sealed class LogShippingGatewayTests
{
    private static AgentGatewayService Gateway(EcsFixture f, InMemoryLogIngest? ingest)
        => new(f.State, f.Tasks, new InstanceLifecycle(f.State, f.Arns, TimeProvider.System, NullLogger<InstanceLifecycle>.Instance), f.Arns, TimeProvider.System,
            new ControlPlaneOptions { DataDirectory = "/nonexistent" }, new NoRegistryCredentials(), NullLogger<AgentGatewayService>.Instance, logIngest: ingest);

    private static LogBatch Batch(int lines, long firstSequence = 1000, int messageBytes = 5)
    {
        var b = new LogBatch { BatchId = 42, Group = "g", Stream = "s", CreateGroup = true };
        for (var i = 0; i < lines; i++)
        {
            b.Lines.Add(new LogLine { Sequence = firstSequence + i, TimestampMs = 1, Message = new string('x', messageBytes) });
        }
        return b;
    }

    [Fact]
    public async Task IngestOne_Batch_StoredAndAcknowledgedWithTheStreamsHighestSequence()
    {
        await using var f = new EcsFixture();
        var ingest = new InMemoryLogIngest();
        var g = Gateway(f, ingest);
        var ack = await g.IngestOneAsync(Batch(3), CancellationToken.None);
        Assert.Equal("", ack.Error);
        Assert.Equal(42, ack.BatchId);
        Assert.Equal(1002, ack.AcknowledgedSequence);
        // Sent again (its ack was lost): nothing stored twice, same acknowledgement.
        var again = await g.IngestOneAsync(Batch(3), CancellationToken.None);
        Assert.Equal(1002, again.AcknowledgedSequence);
        Assert.Equal(3, ingest.Events("g", "s").Count);
    }

    [Fact]
    public async Task IngestOne_NoStoreRegistered_AcknowledgedWithAnError()
    {
        await using var f = new EcsFixture();
        var ack = await Gateway(f, null).IngestOneAsync(Batch(1), CancellationToken.None);
        Assert.Contains("no CloudWatch Logs store", ack.Error);
        Assert.Equal(0, ack.AcknowledgedSequence);
    }

    [Theory]
    [InlineData(LogBatchLimits.MaxLines + 1, 1, "at most 10000 lines")]
    [InlineData(5, 300_000, "at most 1048576 bytes")]
    public async Task IngestOne_OverPutLogEventsBounds_RefusedAndNothingStored(int lines, int bytes, string error)
    {
        await using var f = new EcsFixture();
        var ingest = new InMemoryLogIngest();
        var ack = await Gateway(f, ingest).IngestOneAsync(Batch(lines, messageBytes: bytes), CancellationToken.None);
        Assert.Contains(error, ack.Error);
        Assert.Equal(0, ingest.Calls);
    }

    [Fact]
    public async Task IngestOne_OutOfOrderOrNamelessBatch_Refused()
    {
        await using var f = new EcsFixture();
        var ingest = new InMemoryLogIngest();
        var g = Gateway(f, ingest);
        var b = Batch(2);
        b.Lines[1].Sequence = b.Lines[0].Sequence;
        Assert.Contains("strictly increasing", (await g.IngestOneAsync(b, CancellationToken.None)).Error);
        var nameless = Batch(1);
        nameless.Stream = "";
        Assert.Contains("log stream", (await g.IngestOneAsync(nameless, CancellationToken.None)).Error);
        Assert.Equal(0, ingest.Calls);
    }

    private static string Def(string logConfiguration)
        => $$"""{"family":"app","containerDefinitions":[{"name":"web","image":"busybox","memory":32},{"name":"side","image":"busybox","memory":32,"logConfiguration":{{logConfiguration}}}]}""";

    [Theory]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-region":"us-east-1"}}""", "containerDefinitions[1].logConfiguration.options: awslogs-group is required")]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"g","awslogs-multiline-pattern":"^x"}}""", "unknown log opt 'awslogs-multiline-pattern'")]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"g","mode":"fast"}}""", "mode must be blocking or non-blocking")]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"g","mode":"non-blocking","max-buffer-size":"lots"}}""", "max-buffer-size 'lots'")]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"g","max-buffer-size":"1m"}}""", "only with mode non-blocking")]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"g","awslogs-create-group":"yes"}}""", "awslogs-create-group must be true or false")]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"bad group!"}}""", "not a valid log group name")]
    [InlineData("""{"logDriver":"awsfirelens","options":{}}""", "containerDefinitions[1].logConfiguration.logDriver: 'awsfirelens' is not supported")]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"g"},"secretOptions":[{"name":"k","valueFrom":"arn:aws:ssm:us-east-1:000000000000:parameter/x"}]}""", "containerDefinitions[1].logConfiguration.secretOptions")]
    public async Task Register_UnusableLogConfiguration_ClientExceptionNamingTheField(string logConfiguration, string message)
    {
        await using var f = new EcsFixture();
        var e = await f.CallFailsAsync("RegisterTaskDefinition", Def(logConfiguration));
        Assert.Equal("ClientException", e.ErrorType);
        Assert.Contains(message, e.Message);
        Assert.Equal(0, f.State.TaskDefinitions.Count);
    }

    [Theory]
    [InlineData("""{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/app","awslogs-region":"eu-west-1","awslogs-stream-prefix":"app","awslogs-create-group":"true","mode":"non-blocking","max-buffer-size":"4m"}}""")]
    [InlineData("""{"logDriver":"json-file","options":{"max-size":"10m"}}""")]
    [InlineData("""{"logDriver":"syslog"}""")]
    public async Task Register_UsableLogConfiguration_Accepted(string logConfiguration)
    {
        await using var f = new EcsFixture();
        var r = await f.CallAsync("RegisterTaskDefinition", Def(logConfiguration));
        Assert.Equal(1, r.GetProperty("taskDefinition").GetProperty("revision").GetInt32());
    }
}
