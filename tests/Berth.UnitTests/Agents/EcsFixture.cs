using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Agents;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Ecs;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.Core.Agent;
using Berth.State;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.UnitTests.Agents;

/// <summary>An in-memory control plane: state, the task and instance operations, and the agent gateway.</summary>
internal sealed class EcsFixture : IAsyncDisposable
{
    private readonly IStateStore _store;

    public EcsFixture(TimeSpan? agentTimeout = null, IRegistryCredentialProvider? credentials = null, TimeProvider? time = null, IStateStore? store = null)
    {
        _store = store ?? SqliteStateStore.Open(":memory:");
        var clock = time ?? TimeProvider.System;
        State = new EcsState(_store);
        State.LoadAsync().GetAwaiter().GetResult();
        Arns = new Arns(new BerthIdentity());
        Api = new AwsJsonService(ServiceModel.Load("Ecs"));
        Tasks = new TaskLifecycle(State, Arns, clock, new Random(7));
        new TaskOperations(Tasks).Map(Api);
        new TaskDefinitionOperations(State, Arns, clock).Map(Api);
        new ContainerInstanceOperations(State, Arns, clock).Map(Api);
        Gateway = new AgentGatewayService(State, Tasks, new InstanceLifecycle(State, Arns, clock, NullLogger<InstanceLifecycle>.Instance), Arns, clock, new ControlPlaneOptions { DataDirectory = "/nonexistent", AgentTimeout = agentTimeout ?? TimeSpan.FromSeconds(30) },
            credentials ?? new NoRegistryCredentials(), NullLogger<AgentGatewayService>.Instance);
    }

    public EcsState State { get; }
    public TaskLifecycle Tasks { get; }
    public Arns Arns { get; }
    public AwsJsonService Api { get; }
    public AgentGatewayService Gateway { get; }

    public async Task<JsonElement> CallAsync(string operation, string json)
    {
        var handler = Api.Find(operation) ?? throw new InvalidOperationException(operation);
        using var doc = JsonDocument.Parse(json);
        var bytes = await handler(doc.RootElement.Clone(), CancellationToken.None);
        return JsonDocument.Parse(bytes).RootElement.Clone();
    }

    public async Task<AwsException> CallFailsAsync(string operation, string json)
        => await Assert.ThrowsAsync<AwsException>(() => CallAsync(operation, json));

    public async Task AddTaskDefinitionAsync(string family, int revision, TaskDefinition def, string status = "ACTIVE")
    {
        def.Family = family;
        def.Revision = revision;
        def.Status = status;
        def.TaskDefinitionArn = Arns.TaskDefinition(family, revision);
        await using var tx = await State.BeginAsync();
        tx.Put(State.TaskDefinitions, EcsState.TaskDefinitionId(family, revision), new StoredTaskDefinition { Definition = def });
        await tx.CommitAsync();
    }

    public static TaskDefinition Web(int memory = 128, int hostPort = 0) => new()
    {
        NetworkMode = "bridge",
        ContainerDefinitions =
        [
            new ContainerDefinition
            {
                Name = "web", Image = "busybox", Cpu = 128, Memory = memory, Essential = true,
                PortMappings = [new Berth.Aws.Ecs.PortMapping { ContainerPort = 80, HostPort = hostPort, Protocol = "tcp" }],
            },
        ],
    };

    public static Register Registration(string agentId = "agent-1", int cpu = 2048, long memory = 1024, string cluster = "")
    {
        var r = new Register
        {
            Cluster = cluster, AgentId = agentId, CpuUnits = cpu, MemoryMib = memory, Hostname = "host-1",
            AgentVersion = "1.0.0", AgentHash = "abc", DockerVersion = "20.10.24",
        };
        r.ReservedPorts.Add(8000);
        r.Attributes["ecs.os-type"] = "linux";
        return r;
    }

    public async ValueTask DisposeAsync() => await _store.DisposeAsync();
}

/// <summary>A clock that moves only when told to.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Now += by;
}
