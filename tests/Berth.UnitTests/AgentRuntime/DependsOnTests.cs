using System.Threading.Channels;
using Berth.Agent;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static Berth.UnitTests.AgentRuntime.TaskEngineTests;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>
/// <see cref="TaskEngine"/> gating container starts on <c>dependsOn</c> (START, COMPLETE, SUCCESS, HEALTHY) over the
/// fake runtime: a container is not created until its conditions hold, the dependency's event (die, health_status)
/// starts it, and a condition that can never hold stops the container (and the task, when it is essential).
/// </summary>
public sealed class DependsOnTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly FakeContainerRuntime _runtime = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private TaskEngine _engine = null!;

    public async ValueTask InitializeAsync()
    {
        _engine = new TaskEngine(_runtime, "agent-1", new Uri("http://127.0.0.1:4566"), new Dictionary<string, string>(),
            TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60), _time, NullLogger<TaskEngine>.Instance);
        await _engine.StartAsync(CancellationToken.None);
        // Events emitted before the watcher subscribed would wait for the resync (the fake clock never gets there).
        await _runtime.WaitUntilWatchedAsync(Timeout);
    }

    public async ValueTask DisposeAsync() => await _engine.DisposeAsync();

    /// <summary>A task of the named containers; <paramref name="configure"/> sets essential flags, dependencies, checks.</summary>
    private static DesiredTask Task(string id, string[] containers, Action<Dictionary<string, Core.Agent.ContainerSpec>> configure)
    {
        var d = Desired(id, containers: containers);
        configure(d.Spec.Containers.ToDictionary(c => c.Name));
        return d;
    }

    private static void DependsOn(Core.Agent.ContainerSpec c, string on, string condition)
        => c.DependsOn.Add(new ContainerDependency { ContainerName = on, Condition = condition });

    private static HealthCheck Check()
    {
        var h = new HealthCheck { IntervalSeconds = 5, TimeoutSeconds = 2, Retries = 1 };
        h.Command.AddRange(["CMD-SHELL", "exit 0"]);
        return h;
    }

    private static List<TaskStatusReport> Drain(ChannelReader<TaskStatusReport> reports)
    {
        var list = new List<TaskStatusReport>();
        while (reports.TryRead(out var r))
        {
            list.Add(r);
        }
        return list;
    }

    private List<string> Created() => [.. _runtime.Calls.Where(c => c.StartsWith("create:", StringComparison.Ordinal)).Select(c => c["create:".Length..])];

    [Fact]
    public async Task Success_DependentWaitsUntilTheDependencyExitsZero_ThenStarts()
    {
        _engine.Apply(Snapshot(1, Task("s", ["init", "app"], c =>
        {
            c["init"].Essential = false;
            DependsOn(c["app"], "init", "SUCCESS");
        })));
        await _engine.WhenIdleAsync();

        Assert.Equal(["init"], Created());
        var waiting = Drain(_engine.Reports)[^1];
        Assert.Equal("PENDING", waiting.LastStatus);
        Assert.Equal("PENDING", waiting.Containers.Single(c => c.Name == "app").LastStatus);
        Assert.Equal("RUNNING", waiting.Containers.Single(c => c.Name == "init").LastStatus);

        _runtime.Exit(Arn("s"), "init", 0);
        var running = (await ReadUntilAsync(_engine.Reports, Arn("s"), "RUNNING"))[^1];

        Assert.Equal(["init", "app"], Created());
        Assert.Equal("RUNNING", running.Containers.Single(c => c.Name == "app").LastStatus);
        var init = running.Containers.Single(c => c.Name == "init");
        Assert.Equal("STOPPED", init.LastStatus);
        Assert.Equal(0, init.ExitCode);
        Assert.True(running.StartedAt > 0);
    }

    [Fact]
    public async Task Success_DependencyExitsNonZero_DependentNeverStartsAndTheTaskStops()
    {
        _engine.Apply(Snapshot(1, Task("f", ["init", "app"], c =>
        {
            c["init"].Essential = false;
            DependsOn(c["app"], "init", "SUCCESS");
        })));
        await _engine.WhenIdleAsync();

        _runtime.Exit(Arn("f"), "init", 1);
        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("f"), "STOPPED"))[^1];
        await _engine.WhenIdleAsync();

        Assert.Equal(["init"], Created());
        Assert.Equal("EssentialContainerExited", stopped.StopCode);
        Assert.Equal("Essential container in task exited", stopped.StoppedReason);
        var app = stopped.Containers.Single(c => c.Name == "app");
        Assert.Equal("STOPPED", app.LastStatus);
        Assert.Equal(143, app.ExitCode);
        Assert.StartsWith("CannotStartContainerError: dependency graph: failed to resolve container ordering dependency [init] for target [app]", app.Reason, StringComparison.Ordinal);
        Assert.Contains("did not exit successfully (exit code 1)", app.Reason, StringComparison.Ordinal);
        Assert.Equal(1, stopped.Containers.Single(c => c.Name == "init").ExitCode);
    }

    [Fact]
    public async Task Healthy_DependentStartsOnlyOnceTheDependencyReportsHealthy()
    {
        _engine.Apply(Snapshot(1, Task("h", ["db", "app"], c =>
        {
            c["db"].HealthCheck = Check();
            DependsOn(c["app"], "db", "HEALTHY");
        })));
        await _engine.WhenIdleAsync();
        Assert.Equal(["db"], Created());

        _runtime.SetHealth(Arn("h"), "db", "starting");
        await _engine.WhenIdleAsync();
        Assert.Equal(["db"], Created());
        Assert.Equal("PENDING", Drain(_engine.Reports)[^1].LastStatus);

        _runtime.SetHealth(Arn("h"), "db", "unhealthy");
        await _engine.WhenIdleAsync();
        Assert.Equal(["db"], Created()); // UNHEALTHY is waited on: Docker may still call it healthy

        _runtime.SetHealth(Arn("h"), "db", "healthy");
        var running = (await ReadUntilAsync(_engine.Reports, Arn("h"), "RUNNING"))[^1];
        Assert.Equal(["db", "app"], Created());
        Assert.Equal("HEALTHY", running.Containers.Single(c => c.Name == "db").HealthStatus);
        Assert.Equal("RUNNING", running.Containers.Single(c => c.Name == "app").LastStatus);
    }

    [Fact]
    public async Task Healthy_DependencyExitsBeforeBecomingHealthy_TheEssentialDependentIsGivenUpAndTheTaskStops()
    {
        _engine.Apply(Snapshot(1, Task("x", ["db", "app"], c =>
        {
            c["db"].Essential = false;
            c["db"].HealthCheck = Check();
            DependsOn(c["app"], "db", "HEALTHY");
        })));
        await _engine.WhenIdleAsync();

        _runtime.Exit(Arn("x"), "db", 0);
        var stopped = (await ReadUntilAsync(_engine.Reports, Arn("x"), "STOPPED"))[^1];

        Assert.Equal(["db"], Created());
        Assert.Equal("Essential container in task exited", stopped.StoppedReason);
        Assert.Contains("without becoming healthy", stopped.Containers.Single(c => c.Name == "app").Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Complete_AnyExitCodeLetsTheDependentStart()
    {
        _engine.Apply(Snapshot(1, Task("c", ["prep", "app"], c =>
        {
            c["prep"].Essential = false;
            DependsOn(c["app"], "prep", "COMPLETE");
        })));
        await _engine.WhenIdleAsync();
        Assert.Equal(["prep"], Created());

        _runtime.Exit(Arn("c"), "prep", 3);
        var running = (await ReadUntilAsync(_engine.Reports, Arn("c"), "RUNNING"))[^1];
        Assert.Equal(["prep", "app"], Created());
        Assert.Equal(3, running.Containers.Single(c => c.Name == "prep").ExitCode);
    }

    [Fact]
    public async Task Start_ChainStartsInDependencyOrderInOnePass()
    {
        // Definition order a, b, c; a needs b started, b needs c started.
        _engine.Apply(Snapshot(1, Task("chain", ["a", "b", "c"], c =>
        {
            DependsOn(c["a"], "b", "START");
            DependsOn(c["b"], "c", "START");
        })));
        await ReadUntilAsync(_engine.Reports, Arn("chain"), "RUNNING");

        Assert.Equal(["c", "b", "a"], Created());
    }

    [Fact]
    public async Task NonEssentialDependentGivenUp_TheTaskRunsWithoutIt()
    {
        _engine.Apply(Snapshot(1, Task("side", ["app", "init", "sidecar"], c =>
        {
            c["init"].Essential = false;
            c["sidecar"].Essential = false;
            DependsOn(c["sidecar"], "init", "SUCCESS");
        })));
        await _engine.WhenIdleAsync();
        Assert.Equal(["app", "init"], Created());
        Assert.Equal("PENDING", Drain(_engine.Reports)[^1].LastStatus);

        _runtime.Exit(Arn("side"), "init", 2);
        var running = (await ReadUntilAsync(_engine.Reports, Arn("side"), "RUNNING"))[^1];

        Assert.Equal(["app", "init"], Created());
        var sidecar = running.Containers.Single(c => c.Name == "sidecar");
        Assert.Equal("STOPPED", sidecar.LastStatus);
        Assert.Equal(143, sidecar.ExitCode);
        Assert.Equal("RUNNING", running.Containers.Single(c => c.Name == "app").LastStatus);
    }

    [Fact]
    public async Task GivenUpDependency_PropagatesToWhatDependsOnIt()
    {
        _engine.Apply(Snapshot(1, Task("prop", ["app", "init", "mid", "last"], c =>
        {
            foreach (var n in new[] { "init", "mid", "last" })
            {
                c[n].Essential = false;
            }
            DependsOn(c["mid"], "init", "SUCCESS");
            DependsOn(c["last"], "mid", "START");
        })));
        await _engine.WhenIdleAsync();

        _runtime.Exit(Arn("prop"), "init", 1);
        var running = (await ReadUntilAsync(_engine.Reports, Arn("prop"), "RUNNING"))[^1];

        Assert.Equal(["app", "init"], Created());
        Assert.Contains("because dependency will never start", running.Containers.Single(c => c.Name == "last").Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stop_DependentsStopBeforeWhatTheyDependOn()
    {
        // proxy needs app started, app needs db started: db, app, proxy start; proxy, app, db stop.
        _engine.Apply(Snapshot(1, Task("order", ["proxy", "app", "db"], c =>
        {
            DependsOn(c["proxy"], "app", "START");
            DependsOn(c["app"], "db", "START");
        })));
        await ReadUntilAsync(_engine.Reports, Arn("order"), "RUNNING");
        await _engine.WhenIdleAsync();
        var ids = _runtime.Calls.Where(c => c.StartsWith("create:", StringComparison.Ordinal)).Select(c => c["create:".Length..]).ToList();
        Assert.Equal(["db", "app", "proxy"], ids);
        _runtime.ClearCalls();

        var stopping = Desired("order", desired: "STOPPED", containers: ["proxy", "app", "db"]);
        stopping.Spec = Task("order", ["proxy", "app", "db"], c =>
        {
            DependsOn(c["proxy"], "app", "START");
            DependsOn(c["app"], "db", "START");
        }).Spec;
        _engine.Apply(Delta(2, [stopping]));
        await ReadUntilAsync(_engine.Reports, Arn("order"), "STOPPED");

        // The fake numbers containers in creation order: c1 db, c2 app, c3 proxy.
        Assert.Equal(["stop:c3", "stop:c2", "stop:c1"], _runtime.Calls.Where(c => c.StartsWith("stop:", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task AfterAgentRestart_AContainerGivenUpBeforeIsNotTakenForALostOne()
    {
        // What a restarted agent finds: the task RUNNING on the server, app running, init exited 2, and no sidecar
        // container (it was given up for its SUCCESS dependency, which this process never saw happen).
        _runtime.Add(Arn("back"), "app");
        _runtime.Add(Arn("back"), "init", "exited", exitCode: 2);
        var d = Task("back", ["app", "init", "sidecar"], c =>
        {
            c["init"].Essential = false;
            c["sidecar"].Essential = false;
            DependsOn(c["sidecar"], "init", "SUCCESS");
        });
        d.LastStatus = "RUNNING";
        d.LastSequence = 7;
        _runtime.ClearCalls();

        _engine.Apply(Snapshot(1, d));
        var r = (await ReadUntilAsync(_engine.Reports, Arn("back"), "RUNNING"))[^1];
        await _engine.WhenIdleAsync();

        Assert.Empty(Created());
        Assert.DoesNotContain(_runtime.Calls, c => c.StartsWith("stop:", StringComparison.Ordinal));
        Assert.Equal(143, r.Containers.Single(c => c.Name == "sidecar").ExitCode);
        Assert.DoesNotContain(Drain(_engine.Reports), x => x.LastStatus == "STOPPED");
    }
}
