using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>Shared steps of the end-to-end scenarios, all through the real aws CLI.</summary>
public static class EcsScenario
{
    public const string Image = "berth-test/busybox:latest";

    public static async Task<string> RegisterAsync(AwsCli aws, string family, string containers, params string[] extra)
    {
        var td = await aws.RunAsync(["ecs", "register-task-definition", "--family", family, "--container-definitions", containers, .. extra]);
        return td["taskDefinition"]!["taskDefinitionArn"]!.GetValue<string>();
    }

    public static async Task<JsonNode> RunOneAsync(AwsCli aws, string cluster, string taskDefinition)
    {
        var run = await aws.RunAsync("ecs", "run-task", "--cluster", cluster, "--task-definition", taskDefinition);
        Assert.True(run["failures"]!.AsArray().Count == 0, "failures: " + run["failures"]!.ToJsonString());
        return run["tasks"]![0]!;
    }

    public static Task<JsonNode> DescribeAsync(AwsCli aws, string cluster, string taskArn)
        => aws.RunAsync("ecs", "describe-tasks", "--cluster", cluster, "--tasks", taskArn).ContinueWith(t => t.Result["tasks"]![0]!, TaskScheduler.Default);

    /// <summary>Polls describe-tasks until lastStatus is <paramref name="status"/>.</summary>
    public static Task<JsonNode> WaitForStatusAsync(AwsCli aws, string cluster, string taskArn, string status, int seconds = 60)
        => Wait.ForAsync(async () =>
        {
            var t = await DescribeAsync(aws, cluster, taskArn);
            var last = t["lastStatus"]!.GetValue<string>();
            if (last == "STOPPED" && status != "STOPPED")
            {
                throw new InvalidOperationException($"task stopped while waiting for {status}: {t.ToJsonString()}");
            }
            return last == status ? t : null;
        }, TimeSpan.FromSeconds(seconds), $"task {taskArn} to be {status}");

    public static int HostPort(JsonNode task, string container = "web")
    {
        var c = task["containers"]!.AsArray().First(x => x!["name"]!.GetValue<string>() == container)!;
        return c["networkBindings"]![0]!["hostPort"]!.GetValue<int>();
    }
}
