using System.Globalization;
using Berth.EndToEnd.Harness;
using static Berth.EndToEnd.Api.ServiceSteps;

namespace Berth.EndToEnd.Api;

/// <summary>
/// ephemeralStorage on real Docker through the aws CLI: the agent reports the size of its Docker data root
/// (berth.ephemeral-storage-gib), placement keeps to instances at least that large, and the agent starts a task only
/// when the data root has the GiB the task asks for free — else TaskFailedToStart naming ephemeralStorage.
/// </summary>
public sealed class EphemeralStorageTests : LocalServerTest
{
    private static async Task<(long TotalGib, long FreeGib, string Root)> DockerRootAsync()
    {
        var info = await DockerCli.RunAsync("info", "-f", "{{.DockerRootDir}}");
        Assert.Equal(0, info.ExitCode);
        var root = info.Stdout.Trim();
        var drive = new DriveInfo(root);
        return (drive.TotalSize >> 30, drive.AvailableFreeSpace >> 30, root);
    }

    private async Task<System.Text.Json.Nodes.JsonNode> RunAsync(string family, int gib)
    {
        await EcsScenario.RegisterAsync(Aws, family, """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["true"]}]""",
            "--ephemeral-storage", $"sizeInGiB={gib.ToString(CultureInfo.InvariantCulture)}");
        return await Aws.RunAsync("ecs", "run-task", "--cluster", Cluster, "--task-definition", family);
    }

    [Fact]
    public async Task Agent_ReportsItsDockerDataRootSize()
    {
        var (total, _, _) = await DockerRootAsync();
        var arns = await Aws.RunAsync("ecs", "list-container-instances", "--cluster", Cluster);
        var described = await Aws.RunAsync("ecs", "describe-container-instances", "--cluster", Cluster, "--container-instances", arns["containerInstanceArns"]![0]!.GetValue<string>());
        var attribute = described["containerInstances"]![0]!["attributes"]!.AsArray().Single(a => a!.Str("name") == "berth.ephemeral-storage-gib")!;
        Assert.Equal(total.ToString(CultureInfo.InvariantCulture), attribute.Str("value"));
    }

    [Theory]
    [InlineData(21)]
    [InlineData(200)]
    public async Task RunTask_StartsOnlyWhenTheDataRootHasTheSpaceFree(int gib)
    {
        var (total, free, root) = await DockerRootAsync();
        var run = await RunAsync("eph-" + gib.ToString(CultureInfo.InvariantCulture), gib);
        if (total < gib)
        {
            // This machine's data root is smaller than the task asks: placement says so.
            Assert.Empty(run["tasks"]!.AsArray());
            Assert.Equal("ATTRIBUTE:berth.ephemeral-storage-gib", run["failures"]![0]!.Str("reason"));
            return;
        }
        var arn = run["tasks"]![0]!.Str("taskArn");
        var stopped = await EcsScenario.WaitForStatusAsync(Aws, Cluster, arn, "STOPPED");
        if (free >= gib + 1)
        {
            Assert.Equal("EssentialContainerExited", stopped.Str("stopCode"));
            Assert.Equal(0, stopped["containers"]![0]!["exitCode"]!.GetValue<int>());
        }
        else if (free < gib)
        {
            Assert.Equal("TaskFailedToStart", stopped.Str("stopCode"));
            Assert.StartsWith($"ResourceInitializationError: ephemeralStorage: the task asks for {gib} GiB and Docker's data root {root} has ", stopped.Str("stoppedReason"), StringComparison.Ordinal);
            Assert.Null(stopped["containers"]![0]!["runtimeId"]);
        }
    }
}
