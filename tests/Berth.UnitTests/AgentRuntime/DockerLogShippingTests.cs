using Berth.Agent;
using Berth.Agent.Logs;
using Berth.Agent.Runtime;
using Berth.Core.Agent;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>The follower over the real Docker logs API (json-file, follow, timestamps, since), into an in-memory store.</summary>
[Trait("Category", "Docker")]
public sealed class DockerLogShippingTests : IAsyncLifetime
{
    private const string Image = "berth-test/busybox:latest";
    private const string TaskArn = "arn:aws:ecs:us-east-1:000000000000:task/default/feedfacefeedfacefeedfacefeedface";
    private readonly string _label = "berth.test-logship=" + Guid.NewGuid().ToString("N")[..12];
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-dlogship-" + Guid.NewGuid().ToString("N"));
    private readonly InMemoryLogIngest _ingest = new();
    private IDockerClient _docker = null!;

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
                Assert.Fail("CI=true but no Docker engine answers.");
            }
            Assert.Skip("No Docker engine.");
        }
        await DockerTaskEngineTests.EnsureImageAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_docker is null)
        {
            return;
        }
        var mine = await _docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [_label] = true } },
        });
        foreach (var c in mine)
        {
            await _docker.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true });
        }
        _docker.Dispose();
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, true);
        }
    }

    private async Task<string> RunAsync(string script, Dictionary<string, string>? logOptions = null)
    {
        var (k, v) = (_label[.._label.IndexOf('=')], _label[(_label.IndexOf('=') + 1)..]);
        var id = (await _docker.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = Image,
            Cmd = ["sh", "-c", script],
            Labels = new Dictionary<string, string> { [k] = v },
            HostConfig = new HostConfig { LogConfig = new LogConfig { Type = "json-file", Config = logOptions ?? [] } },
        })).ID;
        await _docker.Containers.StartContainerAsync(id, new ContainerStartParameters());
        return id;
    }

    private static Berth.Core.Agent.TaskSpec Spec()
    {
        var c = new Berth.Core.Agent.ContainerSpec { Name = "app", Image = Image, LogConfiguration = new Berth.Core.Agent.LogConfiguration { LogDriver = "awslogs" } };
        c.LogConfiguration.Options["awslogs-group"] = "g";
        c.LogConfiguration.Options["awslogs-create-group"] = "true";
        var spec = new Berth.Core.Agent.TaskSpec();
        spec.Containers.Add(c);
        return spec;
    }

    /// <summary>The agent's source: the json-file read directly (fromFile) or, as when it is not readable, the logs API.</summary>
    private ILogSource Source(bool fromFile)
        => fromFile
            ? new JsonFileLogSource(_docker, new DockerLogSource(_docker), localEngine: true, TimeProvider.System, NullLogger.Instance)
            : new JsonFileLogSource(_docker, new DockerLogSource(_docker), localEngine: false, TimeProvider.System, NullLogger.Instance);

    private static RuntimeContainer Container(string id) => new() { Id = id, TaskArn = TaskArn, ContainerName = "app", State = "running" };

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Follow_StdoutAndStderr_EveryLineOnceInOrder(bool fromFile)
    {
        var id = await RunAsync("seq 1 20000; echo to-stderr >&2; echo 'last line with  spaces'");
        var source = (JsonFileLogSource)Source(fromFile);
        await using var shipper = new LogShipper(source, _dir, TimeProvider.System, NullLogger.Instance);
        var server = new FakeLogServer(_ingest, shipper);
        shipper.Attach(server.Send);
        shipper.Observe(TaskArn, Spec(), [Container(id)]);
        await shipper.WhenDrainedAsync(id).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        var events = _ingest.Events("g", id);
        Assert.Equal(20002, events.Count);
        // Docker copies stdout and stderr on their own pipes: each keeps its order, their interleaving is Docker's.
        var stdout = events.Where(e => e.Message != "to-stderr").Select(e => e.Message).ToList();
        Assert.Equal(Enumerable.Range(1, 20000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append("last line with  spaces"), stdout);
        Assert.Single(events, e => e.Message == "to-stderr");
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.Sequence < p.Second.Sequence));
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        Assert.InRange(events[0].TimestampMs, now - 60_000, now);
        Assert.Equal(fromFile ? (1L, 0L) : (0L, 1L), (source.FileReads, source.ApiReads));
    }

    [Fact]
    public async Task FromFile_RotatedByTheDriverWhileFollowed_EveryLineOnceInOrder()
    {
        // max-size 512k / max-file 3: about 6,500 entries of ~80 bytes a file, so 30,000 lines rotate four times while
        // being read; two rotated files (13,000 lines, over half a second of this output) give the reader its slack.
        var id = await RunAsync("i=0; while [ $i -lt 30 ]; do seq $((i*1000+1)) $((i*1000+1000)); usleep 50000; i=$((i+1)); done",
            new Dictionary<string, string> { ["max-size"] = "512k", ["max-file"] = "3" });
        var source = (JsonFileLogSource)Source(fromFile: true);
        await using var shipper = new LogShipper(source, _dir, TimeProvider.System, NullLogger.Instance);
        var server = new FakeLogServer(_ingest, shipper);
        shipper.Attach(server.Send);
        shipper.Observe(TaskArn, Spec(), [Container(id)]);
        await shipper.WhenDrainedAsync(id).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        var inspect = await _docker.Containers.InspectContainerAsync(id, TestContext.Current.CancellationToken);
        Assert.True(File.Exists(inspect.LogPath + ".1"), "the driver rotated the file");
        Assert.Equal(Enumerable.Range(1, 30000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), _ingest.Events("g", id).Select(e => e.Message));
        Assert.Equal((1L, 0L), (source.FileReads, source.ApiReads));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Restart_MidStream_ResumesFromTheAcknowledgedCursorWithoutLossOrDuplicate(bool fromFile)
    {
        var id = await RunAsync("i=0; while [ $i -lt 40 ]; do seq $((i*500+1)) $((i*500+500)); usleep 25000; i=$((i+1)); done");
        var first = new LogShipper(Source(fromFile), _dir, TimeProvider.System, NullLogger.Instance);
        var server1 = new FakeLogServer(_ingest, first);
        server1.LoseAckOf = n => n >= 3; // the third batch onwards is stored but never acknowledged: then the agent dies
        first.Attach(server1.Send);
        first.Observe(TaskArn, Spec(), [Container(id)]);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Volatile.Read(ref server1.Batches) < 3 || _ingest.Calls < 3)
        {
            Assert.True(DateTime.UtcNow < deadline, "three batches in time");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
        first.Detach();
        await first.DisposeAsync();
        var before = _ingest.Events("g", id).Count;
        Assert.InRange(before, 1, 19_999);

        await using var second = new LogShipper(Source(fromFile), _dir, TimeProvider.System, NullLogger.Instance);
        var server2 = new FakeLogServer(_ingest, second);
        second.Attach(server2.Send);
        second.Observe(TaskArn, Spec(), [Container(id)]);
        await second.WhenDrainedAsync(id).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(Enumerable.Range(1, 20000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), _ingest.Events("g", id).Select(e => e.Message));
    }
}
