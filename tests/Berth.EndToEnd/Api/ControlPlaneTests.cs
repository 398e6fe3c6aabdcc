using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>The control plane's guarantees of issue 8, through real processes, real Docker and real clients.</summary>
public sealed class ControlPlaneTests
{
    [Fact]
    public async Task AgentReturning_AfterItsTasksWereStoppedOrLost_StartsNoneOfThem()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "away");
        server.StartAgent("away");
        await aws.WaitForContainerInstanceAsync("away", TimeSpan.FromSeconds(60));
        await EcsScenario.RegisterAsync(aws, "batch", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","600"],"stopTimeout":1}]""");
        var stopped = (await EcsScenario.RunOneAsync(aws, "away", "batch"))["taskArn"]!.GetValue<string>();
        var lost = (await EcsScenario.RunOneAsync(aws, "away", "batch"))["taskArn"]!.GetValue<string>();
        var stoppedContainer = (await EcsScenario.WaitForStatusAsync(aws, "away", stopped, "RUNNING"))["containers"]![0]!["runtimeId"]!.GetValue<string>();
        var lostContainer = (await EcsScenario.WaitForStatusAsync(aws, "away", lost, "RUNNING"))["containers"]![0]!["runtimeId"]!.GetValue<string>();

        await server.KillAgentAsync();
        // While the agent is away: one task is stopped through the API and its container exits on its own;
        // the other task's container disappears from the host (as after a reboot with cleanup).
        await aws.RunAsync("ecs", "stop-task", "--cluster", "away", "--task", stopped, "--reason", "stopped while away");
        await DockerCli.RunAsync("stop", "-t", "1", stoppedContainer);
        await DockerCli.RunAsync("rm", "-f", lostContainer);

        server.StartAgent("away");
        var a = await EcsScenario.WaitForStatusAsync(aws, "away", stopped, "STOPPED", 90);
        var b = await EcsScenario.WaitForStatusAsync(aws, "away", lost, "STOPPED", 90);

        Assert.Equal("stopped while away", a["stoppedReason"]!.GetValue<string>());
        Assert.Contains("gone", b["stoppedReason"]!.GetValue<string>(), StringComparison.Ordinal);
        // Nothing was started again: no container runs, and the lost task got no new container.
        Assert.Empty(await DockerCli.ContainersAsync(server.Label, all: false));
        var forLost = await DockerCli.RunAsync("ps", "-aq", "--filter", "label=com.amazonaws.ecs.task-arn=" + lost);
        Assert.Equal("", forLost.Stdout.Trim());
        var inspect = await DockerCli.RunAsync("inspect", "-f", "{{.State.Running}} {{.RestartCount}}", stoppedContainer);
        Assert.StartsWith("false", inspect.Stdout.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunTask_RetriedWithTheSameClientToken_ThroughBoto3_StartsOneTask()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        await EcsScenario.RegisterAsync(aws, "idem", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","600"],"stopTimeout":1}]""");

        var r = await Boto3.RunAsync("client_token.py", server.Endpoint, "idem");

        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = r.Json;
        var first = j["first"]!.AsArray().Single()!.GetValue<string>();
        Assert.Equal(first, j["second"]!.AsArray().Single()!.GetValue<string>());
        Assert.Equal("InvalidParameterException", j["error"]!["code"]!.GetValue<string>());
        Assert.Contains("clientToken", j["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal([first], j["listed"]!.AsArray().Select(x => x!.GetValue<string>()));
    }

    [Fact]
    public async Task StoppedTask_SurvivesARestart_ThenGoesAfterTheRetentionWindow()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("up", "--task-retention", "20", "--retention-sweep-interval", "1");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        await EcsScenario.RegisterAsync(aws, "brief", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["true"]}]""");
        var arn = (await EcsScenario.RunOneAsync(aws, "default", "brief"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(aws, "default", arn, "STOPPED");

        await server.KillAsync();
        await server.RestartAsync("--task-retention", "20", "--retention-sweep-interval", "1");
        var after = await aws.RunAsync("ecs", "describe-tasks", "--tasks", arn);
        Assert.Equal("STOPPED", after["tasks"]![0]!["lastStatus"]!.GetValue<string>());

        var gone = await Wait.ForAsync(async () =>
        {
            var d = await aws.RunAsync("ecs", "describe-tasks", "--tasks", arn);
            return d["failures"]!.AsArray().Count == 1 ? d : null;
        }, TimeSpan.FromSeconds(60), "the stopped task to be purged");
        Assert.Equal("MISSING", gone["failures"]![0]!["reason"]!.GetValue<string>());
        Assert.Empty((await aws.RunAsync("ecs", "list-tasks", "--desired-status", "STOPPED"))["taskArns"]!.AsArray());
    }

    [Fact]
    public async Task OldStoreFile_OpensAndIsMigrated()
    {
        var data = Path.Combine(Path.GetTempPath(), "berth-e2e-old-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(data);
        // A state.db as Berth's store format 1 wrote it: keys without account and region, the task in the wire shape.
        const string script = """
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, rev INTEGER NOT NULL)")
db.execute("CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), rev INTEGER NOT NULL)")
db.execute("INSERT INTO meta VALUES (1, 3)")
p = "arn:aws:ecs:us-east-1:000000000000:"
docs = {
  "ecs/clusters/legacy": {"clusterArn": p + "cluster/legacy", "clusterName": "legacy", "status": "ACTIVE"},
  "ecs/taskdefs/old:00000002": {"taskDefinition": {"taskDefinitionArn": p + "task-definition/old:2", "family": "old", "revision": 2, "status": "ACTIVE",
      "containerDefinitions": [{"name": "main", "image": "berth-test/busybox:latest", "memory": 16}]}},
  "ecs/tasks/legacy/0123456789abcdef0123456789abcdef": {"taskArn": p + "task/legacy/0123456789abcdef0123456789abcdef", "clusterArn": p + "cluster/legacy",
      "taskDefinitionArn": p + "task-definition/old:2", "lastStatus": "STOPPED", "desiredStatus": "STOPPED", "stopCode": "UserInitiated",
      "stoppedReason": "from the old days", "createdAt": 1795000000.0, "stoppedAt": 4102444800.0, "version": 5,
      "containers": [{"name": "main", "containerArn": p + "container/legacy/0123456789abcdef0123456789abcdef/u-1", "lastStatus": "STOPPED", "exitCode": 0}]},
}
for i, (k, v) in enumerate(docs.items()):
    db.execute("INSERT INTO kv VALUES (?, ?, ?)", (k, json.dumps(v).encode(), i + 1))
db.commit()
""";
        var py = await Processes.RunAsync("python3", ["-c", script, Path.Combine(data, "state.db")]);
        Assert.True(py.ExitCode == 0, py.Stderr);
        await using var server = await BerthServer.StartWithDataAsync(data, "server");
        var aws = new AwsCli(server.Endpoint);

        var t = (await aws.RunAsync("ecs", "describe-tasks", "--cluster", "legacy", "--tasks", "0123456789abcdef0123456789abcdef"))["tasks"]![0]!;
        Assert.Equal("from the old days", t["stoppedReason"]!.GetValue<string>());
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:task-definition/old:2", t["taskDefinitionArn"]!.GetValue<string>());
        Assert.Equal(0, t["containers"]![0]!["exitCode"]!.GetValue<int>());
        var next = await aws.RunAsync("ecs", "register-task-definition", "--family", "old", "--container-definitions", """[{"name":"main","image":"x","memory":16}]""");
        Assert.Equal(3, next["taskDefinition"]!["revision"]!.GetValue<int>());
    }

    [Fact]
    public async Task Kill9_DuringARunTaskBurst_LosesNoAcknowledgedTask_AndLeavesNoOrphanContainer()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        await EcsScenario.RegisterAsync(aws, "burst", """[{"name":"main","image":"berth-test/busybox:latest","memory":8,"command":["sleep","600"],"stopTimeout":1}]""");

        var acknowledged = new ConcurrentBag<string>();
        using var http = new EcsHttp(server.Endpoint);
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested && acknowledged.Count < 120)
            {
                try
                {
                    var (status, body, _) = await http.SendAsync(EcsHttp.Prefix + "RunTask", """{"taskDefinition":"burst","count":2}""");
                    if (status == 200)
                    {
                        foreach (var t in body!["tasks"]!.AsArray())
                        {
                            acknowledged.Add(t!["taskArn"]!.GetValue<string>());
                        }
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    return; // the server is gone
                }
            }
        })).ToArray();
        await Wait.ForAsync(() => Task.FromResult(acknowledged.Count >= 30 ? "" : null), TimeSpan.FromSeconds(60), "30 acknowledged tasks");
        await server.KillAsync();
        await stop.CancelAsync();
        await Task.WhenAll(clients);
        var acked = acknowledged.Distinct().ToList();

        await server.RestartAsync();
        // Every acknowledged task is there.
        foreach (var batch in acked.Chunk(100))
        {
            var d = await aws.RunAsync(["ecs", "describe-tasks", "--tasks", .. batch]);
            Assert.Empty(d["failures"]!.AsArray());
        }
        // Every container on the host belongs to a task the store knows (none was started for a lost write).
        var known = new HashSet<string>(StringComparer.Ordinal);
        foreach (var status in new[] { "RUNNING", "STOPPED" })
        {
            string? token = null;
            do
            {
                var args = new List<string> { "ecs", "list-tasks", "--desired-status", status, "--max-items", "1000" };
                if (token is not null)
                {
                    args.AddRange(["--starting-token", token]);
                }
                var page = await aws.RunAsync([.. args]);
                foreach (var a in page["taskArns"]!.AsArray())
                {
                    known.Add(a!.GetValue<string>());
                }
                token = page["NextToken"]?.GetValue<string>();
            }
            while (token is not null);
        }
        Assert.Superset(acked.ToHashSet(), known);
        var labels = await DockerCli.RunAsync("ps", "-a", "--filter", "label=" + server.Label, "--format", "{{.Label \"com.amazonaws.ecs.task-arn\"}}");
        foreach (var arn in labels.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            Assert.True(known.Contains(arn), $"container of {arn} has no task record");
        }
    }
}
