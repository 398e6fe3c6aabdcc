using Berth.Agent;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// The variables a task role gives a container: the full credentials URI on 169.254.170.2 ending with the container's
/// metadata token and an authorization token of its own (also in a label); none without a role or without the
/// credentials endpoint; a definition's own credentials variables replaced, not left to outrank the agent's.
/// </summary>
public sealed class TaskRoleEnvironmentTests : IAsyncLifetime
{
    private readonly FakeContainerRuntime _runtime = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 28, 2, 0, 0, TimeSpan.Zero));
    private TaskEngine _engine = null!;

    public async ValueTask InitializeAsync()
    {
        _engine = new TaskEngine(_runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string>(),
            TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60), _time, NullLogger<TaskEngine>.Instance)
        {
            MetadataBaseUri = new Uri("http://172.17.0.1:40000/"),
            CredentialsBaseUri = new Uri("http://169.254.170.2:40000/"),
        };
        await _engine.StartAsync(CancellationToken.None);
        await _runtime.WaitUntilWatchedAsync(TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync() => await _engine.DisposeAsync();

    private Dictionary<string, string> EnvOf(string container)
        => _runtime.Created.Single(p => p.Labels[ContainerLabels.ContainerName] == container).Env!
            .Select(e => e.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);

    [Fact]
    public async Task TaskWithRole_EachContainerGetsTheFullUriAndItsOwnToken()
    {
        var d = Desired("role", containers: ["a", "b"]);
        d.Spec.TaskRoleArn = "arn:aws:iam::000000000000:role/app";
        d.Spec.Containers[0].Environment.Add(new KeyValue { Name = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", Value = "/v2/credentials/mine" });
        d.Spec.Containers[0].Environment.Add(new KeyValue { Name = "AWS_CONTAINER_AUTHORIZATION_TOKEN", Value = "mine" });
        _engine.Apply(Snapshot(1, d));
        await ReadUntilAsync(_engine.Reports, Arn("role"), "RUNNING");

        var a = EnvOf("a");
        var b = EnvOf("b");
        var labelsA = _runtime.Created.Single(p => p.Labels[ContainerLabels.ContainerName] == "a").Labels;
        Assert.Equal($"http://169.254.170.2:40000/v2/credentials/{labelsA[ContainerLabels.MetadataToken]}", a["AWS_CONTAINER_CREDENTIALS_FULL_URI"]);
        Assert.Equal(labelsA[ContainerLabels.CredentialsToken], a["AWS_CONTAINER_AUTHORIZATION_TOKEN"]);
        Assert.Matches("^[0-9a-f]{32}$", a["AWS_CONTAINER_AUTHORIZATION_TOKEN"]);
        Assert.False(a.ContainsKey("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
        Assert.NotEqual(a["AWS_CONTAINER_AUTHORIZATION_TOKEN"], b["AWS_CONTAINER_AUTHORIZATION_TOKEN"]);
        Assert.NotEqual(a["AWS_CONTAINER_CREDENTIALS_FULL_URI"], b["AWS_CONTAINER_CREDENTIALS_FULL_URI"]);
    }

    [Fact]
    public async Task TaskWithoutRole_NoCredentialsVariables_ItsOwnKept()
    {
        var d = Desired("plain", containers: ["a"]);
        d.Spec.Containers[0].Environment.Add(new KeyValue { Name = "AWS_CONTAINER_CREDENTIALS_FULL_URI", Value = "http://127.0.0.1:9/x" });
        _engine.Apply(Snapshot(1, d));
        await ReadUntilAsync(_engine.Reports, Arn("plain"), "RUNNING");

        var a = EnvOf("a");
        Assert.Equal("http://127.0.0.1:9/x", a["AWS_CONTAINER_CREDENTIALS_FULL_URI"]);
        Assert.False(a.ContainsKey("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
        Assert.False(_runtime.Created.Single().Labels.ContainsKey(ContainerLabels.CredentialsToken));
        Assert.True(a.ContainsKey("ECS_CONTAINER_METADATA_URI_V4"));
    }
}
