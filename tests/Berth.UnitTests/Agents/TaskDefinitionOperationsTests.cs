using System.Text.Json;

namespace Berth.UnitTests.Agents;

public sealed class TaskDefinitionOperationsTests
{
    private const string Containers = """[{"name":"web","image":"busybox","memory":32}]""";

    private static async Task<int> RegisterAsync(EcsFixture f, string family)
    {
        var r = await f.CallAsync("RegisterTaskDefinition", $$"""{"family":"{{family}}","containerDefinitions":{{Containers}}}""");
        return r.GetProperty("taskDefinition").GetProperty("revision").GetInt32();
    }

    private static async Task<List<string>> ListAsync(EcsFixture f, string op, string body, string property)
        => (await f.CallAsync(op, body)).GetProperty(property).EnumerateArray().Select(e => e.GetString()!).ToList();

    [Fact]
    public async Task DeleteTaskDefinitions_LatestRevision_NumberIsNeverReused()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        Assert.Equal(1, await RegisterAsync(f, "app"));
        Assert.Equal(2, await RegisterAsync(f, "app"));

        await f.CallAsync("DeregisterTaskDefinition", """{"taskDefinition":"app:2"}""");
        var deleted = await f.CallAsync("DeleteTaskDefinitions", """{"taskDefinitions":["app:2"]}""");
        Assert.Equal("DELETE_IN_PROGRESS", deleted.GetProperty("taskDefinitions")[0].GetProperty("status").GetString());
        Assert.Equal(0, deleted.GetProperty("failures").GetArrayLength());

        Assert.Equal(3, await RegisterAsync(f, "app"));

        // The deleted revision is still describable with its status, listed only under DELETE_IN_PROGRESS,
        // and nothing can run from it.
        var d = await f.CallAsync("DescribeTaskDefinition", """{"taskDefinition":"app:2"}""");
        Assert.Equal("DELETE_IN_PROGRESS", d.GetProperty("taskDefinition").GetProperty("status").GetString());
        Assert.Equal([f.Arns.TaskDefinition("app", 2)], await ListAsync(f, "ListTaskDefinitions", """{"status":"DELETE_IN_PROGRESS"}""", "taskDefinitionArns"));
        Assert.Equal([f.Arns.TaskDefinition("app", 1), f.Arns.TaskDefinition("app", 3)], await ListAsync(f, "ListTaskDefinitions", "{}", "taskDefinitionArns"));
        Assert.Empty(await ListAsync(f, "ListTaskDefinitions", """{"status":"INACTIVE"}""", "taskDefinitionArns"));
        var refused = await f.CallFailsAsync("RunTask", """{"taskDefinition":"app:2"}""");
        Assert.Equal("ClientException", refused.ErrorType);
        Assert.Contains("inactive", refused.Message);
        Assert.Equal(0, f.State.Tasks.Count);
    }

    [Fact]
    public async Task DeleteTaskDefinitions_ActiveMissingAndRepeated_AnswerAsEcs()
    {
        await using var f = new EcsFixture();
        await RegisterAsync(f, "app");

        var r = await f.CallAsync("DeleteTaskDefinitions", """{"taskDefinitions":["app:1","app:9","app"]}""");
        Assert.Equal(0, r.GetProperty("taskDefinitions").GetArrayLength());
        var reasons = r.GetProperty("failures").EnumerateArray().Select(x => x.GetProperty("reason").GetString()).ToList();
        Assert.Equal(3, reasons.Count);
        Assert.Contains("ACTIVE", reasons[0]);
        Assert.Contains("does not exist", reasons[1]);
        Assert.Contains("does not exist", reasons[2]);

        await f.CallAsync("DeregisterTaskDefinition", """{"taskDefinition":"app:1"}""");
        var first = await f.CallAsync("DeleteTaskDefinitions", """{"taskDefinitions":["app:1"]}""");
        var again = await f.CallAsync("DeleteTaskDefinitions", """{"taskDefinitions":["app:1"]}""");
        Assert.Equal(
            first.GetProperty("taskDefinitions")[0].GetProperty("deleteRequestedAt").GetDouble(),
            again.GetProperty("taskDefinitions")[0].GetProperty("deleteRequestedAt").GetDouble());

        // A family whose every revision is deleted is in no family list.
        Assert.Empty(await ListAsync(f, "ListTaskDefinitionFamilies", """{"status":"ALL"}""", "families"));
        Assert.Empty(await ListAsync(f, "ListTaskDefinitionFamilies", """{"status":"INACTIVE"}""", "families"));
    }

    [Theory]
    [InlineData("host", "none", "net.core.somaxconn", "network namespace systemControls such as net.core.somaxconn aren't supported for tasks that use the host network mode")]
    [InlineData("bridge", "host", "kernel.shmmax", "IPC namespace systemControls such as kernel.shmmax aren't supported for tasks that use the host IPC mode")]
    [InlineData("bridge", "host", "kernel.msgmnb", "IPC namespace systemControls such as kernel.msgmnb")]
    [InlineData("bridge", "host", "kernel.sem", "IPC namespace systemControls such as kernel.sem")]
    [InlineData("bridge", "host", "fs.mqueue.msg_max", "IPC namespace systemControls such as fs.mqueue.msg_max")]
    public async Task RegisterTaskDefinition_HostNamespaceSysctl_RefusedNamingTheField(string network, string ipc, string sysctl, string message)
    {
        await using var f = new EcsFixture();
        var ipcMode = ipc == "none" ? "" : $$""","ipcMode":"{{ipc}}" """;
        var e = await f.CallFailsAsync("RegisterTaskDefinition",
            $$"""{"family":"s","networkMode":"{{network}}"{{ipcMode}},"containerDefinitions":[{"name":"web","image":"busybox","memory":32,"systemControls":[{"namespace":"{{sysctl}}","value":"1"}]}]}""");
        Assert.Equal("ClientException", e.ErrorType);
        Assert.StartsWith("containerDefinitions[0].systemControls[0].namespace: " + message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bridge", "task", "kernel.shmmax")] // the task's own IPC namespace
    [InlineData("bridge", "host", "net.core.somaxconn")] // host IPC, own network namespace
    public async Task RegisterTaskDefinition_SysctlOfANamespaceTheTaskOwns_Accepted(string network, string ipc, string sysctl)
    {
        await using var f = new EcsFixture();
        var r = await f.CallAsync("RegisterTaskDefinition",
            $$"""{"family":"s","networkMode":"{{network}}","ipcMode":"{{ipc}}","containerDefinitions":[{"name":"web","image":"busybox","memory":32,"systemControls":[{"namespace":"{{sysctl}}","value":"1"}]}]}""");
        Assert.Equal(1, r.GetProperty("taskDefinition").GetProperty("revision").GetInt32());
    }
}
