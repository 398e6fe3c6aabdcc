using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

public sealed class Boto3Tests
{
    [Fact]
    public async Task Boto3_ClusterAndTaskDefinition_RoundTrip()
    {
        await using var server = await BerthServer.StartAsync("server");
        var r = await Boto3.RunAsync("cluster_and_taskdef.py", server.Endpoint);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("boto", o["cluster"]!.GetValue<string>());
        Assert.Equal("core", o["tags"]![0]!["value"]!.GetValue<string>());
        Assert.Equal("MISSING", o["failures"]![0]!.GetValue<string>());
        Assert.Equal("[1,2]", o["revisions"]!.ToJsonString());
        Assert.Equal(32, o["latestMemory"]!.GetValue<int>());
        Assert.Equal(2, o["pages"]!.AsArray().Count);
        Assert.Equal("ClusterNotFoundException", o["error"]!.GetValue<string>());
    }
}
