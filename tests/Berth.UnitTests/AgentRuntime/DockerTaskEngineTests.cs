using System.Diagnostics;
using Berth.Agent;
using Berth.Agent.Runtime;
using Berth.Core.Agent;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// <see cref="TaskEngine"/> over the real <see cref="DockerRuntime"/>: Docker's event stream, not the resync
/// (set to an hour here), must carry a container's exit and health to a report.
/// </summary>
[Trait("Category", "Docker")]
public sealed class DockerTaskEngineTests : IAsyncLifetime
{
    private const string Image = "berth-test/busybox:latest";
    private readonly string _agentId = "test-" + Guid.NewGuid().ToString("N")[..12];
    private IDockerClient _docker = null!;
    private TaskEngine _engine = null!;

    public async ValueTask InitializeAsync()
    {
        _docker = AgentHosting.CreateDockerClient();
        try
        {
            await _docker.System.PingAsync();
        }
        catch (Exception e) when (e is HttpRequestException or IOException or System.Net.Sockets.SocketException or DockerApiException or TimeoutException)
        {
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                Assert.Fail("CI=true but no Docker engine answers: ./test.sh should have started dockerd.");
            }
            Assert.Skip("No Docker engine.");
        }
        await EnsureImageAsync();
        _engine = new TaskEngine(new DockerRuntime(_docker, _agentId, NullLogger<DockerRuntime>.Instance), _agentId, new Uri("http://127.0.0.1:4566"),
            new Dictionary<string, string>(), TimeSpan.FromMinutes(10), TimeSpan.FromHours(1), TimeProvider.System, NullLogger<TaskEngine>.Instance);
        await _engine.StartAsync(CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        if (_engine is not null)
        {
            await _engine.DisposeAsync();
        }
        var mine = await _docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"berth.agent-id={_agentId}"] = true } },
        });
        foreach (var c in mine)
        {
            await _docker.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true });
        }
        _docker.Dispose();
    }

    internal static async Task EnsureImageAsync()
    {
        // tests/fixtures/build-test-image.sh builds it from Debian's static busybox (no registry needed).
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "tests", "fixtures", "build-test-image.sh")))
        {
            dir = dir.Parent;
        }
        Assert.NotNull(dir);
        using var p = Process.Start(new ProcessStartInfo("bash", [Path.Combine(dir.FullName, "tests", "fixtures", "build-test-image.sh"), Image]) { RedirectStandardOutput = true })!;
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(0, p.ExitCode);
    }

    private static DesiredTask Sleeper(string id, HealthCheck? health = null)
    {
        var d = Desired(id);
        var c = d.Spec.Containers[0];
        c.Image = Image;
        c.Command.AddRange(["sleep", "300"]);
        c.StopTimeoutSeconds = 1;
        c.HealthCheck = health;
        return d;
    }

    [Fact]
    public async Task ContainerKilled_ReachesAReportThroughTheEventStream()
    {
        _engine.Apply(Snapshot(1, Sleeper("kill")));
        var running = (await ReadUntilAsync(_engine.Reports, Arn("kill"), "RUNNING"))[^1];
        var id = running.Containers.Single().RuntimeId;
        Assert.NotEmpty(id);

        var sw = Stopwatch.StartNew();
        await _docker.Containers.KillContainerAsync(id, new ContainerKillParameters { Signal = "KILL" });
        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("kill"), "STOPPED"))[^1];
        sw.Stop();

        Assert.Equal("EssentialContainerExited", stopped.StopCode);
        Assert.Equal(137, stopped.Containers.Single().ExitCode);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"the exit took {sw.ElapsedMilliseconds} ms to reach a report");
    }

    [Fact]
    public async Task HealthCheck_HealthStatusEventUpdatesTheReport()
    {
        var health = new HealthCheck { IntervalSeconds = 1, TimeoutSeconds = 1, Retries = 1 };
        health.Command.AddRange(["CMD-SHELL", "true"]);
        _engine.Apply(Snapshot(1, Sleeper("healthy", health)));

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        TaskStatusReport r;
        do
        {
            r = await _engine.Reports.ReadAsync(cts.Token);
        }
        while (r.Containers.Single().HealthStatus != "HEALTHY");
        Assert.Equal("RUNNING", r.LastStatus);
    }

    [Fact]
    public async Task Restart_AdoptsRunningContainersAndDoesNotRelaunchThem()
    {
        _engine.Apply(Snapshot(1, Sleeper("adopt")));
        var first = (await ReadUntilAsync(_engine.Reports, Arn("adopt"), "RUNNING"))[^1];
        await _engine.DisposeAsync();

        // A new agent process: it finds the container by its labels and waits for the snapshot.
        _engine = new TaskEngine(new DockerRuntime(_docker, _agentId, NullLogger<DockerRuntime>.Instance), _agentId, new Uri("http://127.0.0.1:4566"),
            new Dictionary<string, string>(), TimeSpan.FromMinutes(10), TimeSpan.FromHours(1), TimeProvider.System, NullLogger<TaskEngine>.Instance);
        await _engine.StartAsync(CancellationToken.None);
        Assert.Equal([Arn("adopt")], _engine.KnownTaskArns());

        var listed = Sleeper("adopt");
        listed.LastStatus = "RUNNING";
        listed.LastSequence = first.Sequence;
        _engine.Apply(Snapshot(2, listed));
        var again = (await ReadUntilAsync(_engine.Reports, Arn("adopt"), "RUNNING"))[^1];

        Assert.Equal(first.Sequence + 1, again.Sequence);
        Assert.Equal(first.Containers.Single().RuntimeId, again.Containers.Single().RuntimeId);
    }
}
