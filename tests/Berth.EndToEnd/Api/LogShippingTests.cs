using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// awslogs shipping (issue 11): containers' output shipped by the agent to Berth's CloudWatch Logs store, read back
/// with the real aws CLI (get-log-events following tokens, filter-log-events) and with <c>berth logs</c>. Real server, a real
/// agent process (killed with -9 mid-stream), real Docker.
/// </summary>
public sealed class LogShippingTests
{
    private const int Lines = 100_000;

    private static string AwsLogs(string group, string? prefix)
    {
        var options = new JsonObject { ["awslogs-group"] = group, ["awslogs-region"] = "us-east-1", ["awslogs-create-group"] = "true" };
        if (prefix is not null)
        {
            options["awslogs-stream-prefix"] = prefix;
        }
        return new JsonObject { ["logDriver"] = "awslogs", ["options"] = options }.ToJsonString();
    }

    /// <summary>Every event of a stream, oldest first, with get-log-events from the head following nextForwardToken until it repeats.</summary>
    private static async Task<List<string>> ReadStreamAsync(AwsCli aws, string group, string stream)
    {
        var messages = new List<string>();
        string? token = null;
        for (var calls = 0; calls < 200; calls++)
        {
            string[] args = ["logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream, "--start-from-head", .. token is null ? [] : new[] { "--next-token", token }];
            var page = await aws.RunAsync(args);
            messages.AddRange(page["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));
            var next = page["nextForwardToken"]!.GetValue<string>();
            if (next == token)
            {
                return messages;
            }
            token = next;
        }
        throw new InvalidOperationException("get-log-events never returned the same token twice");
    }

    private static async Task<List<string>> WaitForCountAsync(AwsCli aws, string group, string stream, int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var r = await aws.TryRunAsync("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream, "--limit", "1");
            if (r.ExitCode == 0)
            {
                var all = await ReadStreamAsync(aws, group, stream);
                if (all.Count >= count || DateTime.UtcNow > deadline)
                {
                    return all;
                }
            }
            Assert.True(DateTime.UtcNow < deadline, $"stream {group}/{stream} did not reach {count} events in time");
            await Task.Delay(1000);
        }
    }

    private static void AssertOneToN(List<string> messages, int n)
    {
        Assert.Equal(n, messages.Count);
        var firstWrong = Enumerable.Range(0, n).FirstOrDefault(i => messages[i] != (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), -1);
        Assert.True(firstWrong < 0, firstWrong < 0 ? "" : $"event {firstWrong} is '{messages[firstWrong]}', expected {firstWrong + 1}");
    }

    [Fact]
    public async Task TaskWrites100000LinesThenExits_ReadBackWholeAndInOrder_WithGetLogEventsAndFilterLogEvents()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        var group = "/berth/e2e/" + server.RunId[..8];
        var def = await EcsScenario.RegisterAsync(aws, "burst",
            $$"""[{"name":"app","image":"{{EcsScenario.Image}}","memory":32,"command":["seq","1","{{Lines}}"],"logConfiguration":{{AwsLogs(group, "burst")}}}]""");
        var task = await EcsScenario.RunOneAsync(aws, "default", def);
        var taskArn = task["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(aws, "default", taskArn, "STOPPED", 120);
        var stream = $"burst/app/{taskArn[(taskArn.LastIndexOf('/') + 1)..]}";

        AssertOneToN(await WaitForCountAsync(aws, group, stream, Lines, TimeSpan.FromSeconds(60)), Lines);
        // Docker's own copy is there too (json-file): docker logs works on the container.
        var container = (await DockerCli.ContainersAsync("com.amazonaws.ecs.task-arn=" + taskArn)).Single();
        var dockerLogs = await DockerCli.RunAsync("logs", "--tail", "1", container);
        Assert.Equal(Lines.ToString(System.Globalization.CultureInfo.InvariantCulture), dockerLogs.Stdout.Trim());

        // `aws logs tail` is AWS CLI v2 only (this machine has v1): filter-log-events, the call tail makes, paginated by the CLI.
        var filtered = await Processes.RunAsync("aws", ["logs", "filter-log-events", "--log-group-name", group, "--log-stream-names", stream, "--output", "json"],
            aws.Environment, TimeSpan.FromMinutes(5));
        Assert.True(filtered.ExitCode == 0, filtered.Stderr);
        var tailed = filtered.Json["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()).ToList();
        AssertOneToN(tailed, Lines);
    }

    [Fact]
    public async Task AgentKilledMidStream_Restarted_NoLineLostNoneDuplicated()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        server.StartAgent();
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        var group = "/berth/e2e/" + server.RunId[..8];
        // 200 chunks of 500 lines, 100 ms apart: about 20 s of output, so the agent is killed while the container writes.
        const string script = "i=0; while [ $i -lt 200 ]; do seq $((i*500+1)) $((i*500+500)); usleep 100000; i=$((i+1)); done";
        var def = await EcsScenario.RegisterAsync(aws, "killed",
            $$"""[{"name":"app","image":"{{EcsScenario.Image}}","memory":32,"command":["sh","-c","{{script}}"],"logConfiguration":{{AwsLogs(group, "k")}}}]""");
        var task = await EcsScenario.RunOneAsync(aws, "default", def);
        var taskArn = task["taskArn"]!.GetValue<string>();
        var stream = $"k/app/{taskArn[(taskArn.LastIndexOf('/') + 1)..]}";

        // kill -9 as soon as some lines are stored (polled over raw HTTP: the aws CLI takes a second a call).
        using var http = new EcsHttp(server.Endpoint);
        var probe = new JsonObject { ["logGroupName"] = group, ["logStreamName"] = stream, ["limit"] = 1 }.ToJsonString();
        await Wait.ForAsync(async () =>
        {
            var (status, body, _) = await http.SendAsync("Logs_20140328.GetLogEvents", probe);
            return status == 200 && body!["events"]!.AsArray().Count > 0 ? body : null;
        }, TimeSpan.FromSeconds(60), "the first lines to be shipped");
        await server.KillAgentAsync();
        var container = (await DockerCli.ContainersAsync("com.amazonaws.ecs.task-arn=" + taskArn, all: false)).Single(); // still writing
        var atKill = (await ReadStreamAsync(aws, group, stream)).Count;
        Assert.InRange(atKill, 1, Lines - 1);

        server.StartAgent();
        await EcsScenario.WaitForStatusAsync(aws, "default", taskArn, "STOPPED", 120);
        AssertOneToN(await WaitForCountAsync(aws, group, stream, Lines, TimeSpan.FromSeconds(60)), Lines);
        // Settled: nothing more arrives later (a duplicate resend would show up here).
        await Task.Delay(2000);
        Assert.Equal(Lines, (await ReadStreamAsync(aws, group, stream)).Count);
        Assert.NotEmpty(container);
    }

    [Fact]
    public async Task ServerKilledMidStream_Restarted_NoLineLostNoneDuplicated()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        server.StartAgent();
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        var group = "/berth/e2e/" + server.RunId[..8];
        const string script = "i=0; while [ $i -lt 100 ]; do seq $((i*500+1)) $((i*500+500)); usleep 100000; i=$((i+1)); done";
        var def = await EcsScenario.RegisterAsync(aws, "srvkill",
            $$"""[{"name":"app","image":"{{EcsScenario.Image}}","memory":32,"command":["sh","-c","{{script}}"],"logConfiguration":{{AwsLogs(group, "s")}}}]""");
        var taskArn = (await EcsScenario.RunOneAsync(aws, "default", def))["taskArn"]!.GetValue<string>();
        var stream = $"s/app/{taskArn[(taskArn.LastIndexOf('/') + 1)..]}";
        using (var http = new EcsHttp(server.Endpoint))
        {
            var probe = new JsonObject { ["logGroupName"] = group, ["logStreamName"] = stream, ["limit"] = 1 }.ToJsonString();
            await Wait.ForAsync(async () =>
            {
                var (status, body, _) = await http.SendAsync("Logs_20140328.GetLogEvents", probe);
                return status == 200 && body!["events"]!.AsArray().Count > 0 ? body : null;
            }, TimeSpan.FromSeconds(60), "the first lines to be shipped");
        }
        // kill -9 of the server only; the agent keeps its stream's unacknowledged batch and sends it again.
        var kill = await Processes.RunAsync("kill", ["-9", server.Pid!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Equal(0, kill.ExitCode);
        Assert.Single(await DockerCli.ContainersAsync("com.amazonaws.ecs.task-arn=" + taskArn, all: false)); // still writing
        await server.RestartAsync();

        await EcsScenario.WaitForStatusAsync(aws, "default", taskArn, "STOPPED", 120);
        AssertOneToN(await WaitForCountAsync(aws, group, stream, 50_000, TimeSpan.FromSeconds(60)), 50_000);
    }

    [Fact]
    public async Task FailedTask_ItsLinesReadable_WithBerthLogsAndTheAwsCli()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        var group = "/berth/e2e/" + server.RunId[..8];
        // No stream prefix: ECS names the stream after the container's id. The side container keeps json-file.
        var def = await EcsScenario.RegisterAsync(aws, "failing",
            $$"""
            [{"name":"app","image":"{{EcsScenario.Image}}","memory":32,"command":["sh","-c","echo starting; usleep 200000; echo 'config file missing' >&2; exit 3"],"logConfiguration":{{AwsLogs(group, null)}}},
             {"name":"side","image":"{{EcsScenario.Image}}","memory":16,"essential":false,"command":["sleep","600"],"stopTimeout":1}]
            """);
        var task = await EcsScenario.RunOneAsync(aws, "default", def);
        var taskArn = task["taskArn"]!.GetValue<string>();
        var stopped = await EcsScenario.WaitForStatusAsync(aws, "default", taskArn, "STOPPED", 120);
        var app = stopped["containers"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "app")!;
        Assert.Equal(3, app["exitCode"]!.GetValue<int>());
        var stream = app["runtimeId"]!.GetValue<string>();

        var events = await WaitForCountAsync(aws, group, stream, 2, TimeSpan.FromSeconds(30));
        Assert.Equal(["starting", "config file missing"], events);
        var filtered = await aws.RunAsync("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "missing");
        Assert.Equal(["config file missing"], filtered["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()));

        var logs = await Processes.RunAsync("dotnet", [BerthServer.BerthDll, "logs", taskArn[(taskArn.LastIndexOf('/') + 1)..], "--endpoint", server.Endpoint]);
        Assert.True(logs.ExitCode == 0, logs.Stderr);
        Assert.Equal(["app | starting", "app | config file missing"], logs.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd()));
        Assert.Contains("container side does not use awslogs", logs.Stderr, StringComparison.Ordinal);

        var follow = await Processes.RunAsync("dotnet", [BerthServer.BerthDll, "logs", taskArn, "--follow", "--endpoint", server.Endpoint], timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(0, follow.ExitCode);
        Assert.Contains("app | config file missing", follow.Stdout, StringComparison.Ordinal);

        var missing = await Processes.RunAsync("dotnet", [BerthServer.BerthDll, "logs", "0123456789abcdef0123456789abcdef", "--endpoint", server.Endpoint]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("not found", missing.Stderr, StringComparison.Ordinal);
    }
}
