using System.Diagnostics;
using Berth.EndToEnd.Api;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Logs;

/// <summary>
/// The README's "why did my task stop?" read with AWS CLI v2's `aws logs tail` (which polls FilterLogEvents), once and
/// with --follow: a failing task's lines in order, under its ECS stream name, and a line written later showing up.
/// </summary>
public sealed class LogsTailTests
{
    [Fact]
    public async Task FailingTask_AwsLogsTail_ShowsItsLinesInOrder_AndFollowSeesNewOnes()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync();
        var aws = new AwsCli(server.Endpoint);
        var v2 = new AwsCliV2(server.Endpoint);
        await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
        var group = "/ecs/migrate-" + server.RunId[..8];
        await EcsScenario.RegisterAsync(aws, "migrate", $$"""
            [{"name": "migrate", "image": "{{EcsScenario.Image}}", "memory": 64,
              "command": ["sh", "-c", "echo connecting to db; echo applying 0042_add_index; echo ERROR: relation orders does not exist >&2; exit 3"],
              "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "{{group}}", "awslogs-stream-prefix": "ecs", "awslogs-create-group": "true"} } }]
            """);
        var arn = (await EcsScenario.RunOneAsync(aws, "default", "migrate"))["taskArn"]!.GetValue<string>();
        var stopped = await EcsScenario.WaitForStatusAsync(aws, "default", arn, "STOPPED");
        Assert.Equal(3, stopped["containers"]![0]!["exitCode"]!.GetValue<int>());
        var stream = $"ecs/migrate/{arn[(arn.LastIndexOf('/') + 1)..]}";

        string[] expected = ["connecting to db", "applying 0042_add_index", "ERROR: relation orders does not exist"];
        var tail = await Wait.ForAsync(async () =>
        {
            var r = await v2.RunAsync("logs", "tail", group, "--since", "1h");
            Assert.True(r.ExitCode == 0, $"aws logs tail failed ({r.ExitCode}): {r.Stderr}");
            var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return lines.Length >= expected.Length ? lines : null;
        }, TimeSpan.FromSeconds(30), "aws logs tail to show the task's three lines");
        Assert.Equal(expected.Length, tail.Length);
        // "TIMESTAMP STREAM MESSAGE", as `aws logs tail` prints each event. stdout's two lines keep their order; the
        // stderr line comes through another pipe, which Docker may stamp before them (same millisecond), as on ECS.
        var printed = tail.Select(l => l.Split(' ', 3)).ToList();
        Assert.All(printed, p => Assert.Equal(stream, p[1]));
        var messages = printed.Select(p => p[2]).ToList();
        Assert.Equal(expected.Order(StringComparer.Ordinal), messages.Order(StringComparer.Ordinal));
        Assert.True(messages.IndexOf(expected[0]) < messages.IndexOf(expected[1]), "stdout's lines out of order: " + string.Join(" | ", messages));
        var times = printed.Select(p => DateTimeOffset.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(times.Order(), times);
        var errors = await v2.RunAsync("logs", "tail", group, "--since", "1h", "--format", "short", "--filter-pattern", "ERROR");
        Assert.Equal("ERROR: relation orders does not exist", Assert.Single(errors.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Split(' ', 2)[1]);

        // --follow keeps polling: a line put into the stream afterwards is printed.
        var psi = new ProcessStartInfo(AwsCliV2.Path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--endpoint-url", server.Endpoint, "logs", "tail", group, "--since", "1h", "--follow", "--format", "short" })
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = "test", ["AWS_SECRET_ACCESS_KEY"] = "test", ["AWS_DEFAULT_REGION"] = "us-east-1", ["AWS_PAGER"] = "" })
        {
            psi.Environment[k] = v;
        }
        using var follow = Process.Start(psi)!;
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        follow.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } d)
            {
                seen.Enqueue(d);
            }
        };
        follow.BeginOutputReadLine();
        follow.BeginErrorReadLine();
        try
        {
            await Wait.ForAsync(() => Task.FromResult(seen.Count >= 3 ? "old lines" : null), TimeSpan.FromSeconds(30), "tail --follow to print the old lines");
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await aws.RunAsync("logs", "put-log-events", "--log-group-name", group, "--log-stream-name", stream,
                "--log-events", $"[{{\"timestamp\":{now},\"message\":\"rollback done\"}}]");
            await Wait.ForAsync(() => Task.FromResult(seen.Any(l => l.EndsWith(" rollback done", StringComparison.Ordinal)) ? "new line" : null),
                TimeSpan.FromSeconds(30), "tail --follow to print the line put afterwards");
            Assert.Equal(4, seen.Count);
        }
        finally
        {
            follow.Kill(entireProcessTree: true);
            await follow.WaitForExitAsync();
        }
    }
}
