using System.Net;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Auth;

/// <summary>Secure by default: off loopback berth wants SigV4 and a credential; on loopback it stays open and says so.</summary>
public sealed class AuthStartupTests
{
    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("HOST_IP")]
    public async Task NonLoopbackListen_WithoutCredentials_RefusesToStartAndSaysHow(string host)
    {
        if (host == "HOST_IP")
        {
            // The machine's own non-loopback address, when it has one (hostname -I).
            var ips = await Processes.RunAsync("hostname", ["-I"]);
            var ip = ips.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(a => IPAddress.TryParse(a, out var x) && !IPAddress.IsLoopback(x) && x.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
            if (ip is null)
            {
                return; // the decision itself is unit-tested (SigV4Tests.Decide_*)
            }
            host = ip;
        }
        var data = Directory.CreateTempSubdirectory("berth-e2e-").FullName;
        try
        {
            var r = await BerthServer.RunCliAsync("server", "--listen", $"{host}:{BerthServer.FreePort()}", "--data", data);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains($"berth credentials create --name admin --data {data}", r.Stderr, StringComparison.Ordinal);
            Assert.Contains("not a loopback address", r.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task Loopback_DefaultsToNone_HealthSaysSo_TestKeysWork()
    {
        await using var server = await BerthServer.StartAsync("server");
        using var http = new HttpClient();
        var health = JsonNode.Parse(await http.GetStringAsync($"{server.Endpoint}/_berth/health"))!;
        Assert.Equal("none", health["auth"]!.GetValue<string>());
        Assert.Contains("Authentication: none", server.Log, StringComparison.Ordinal);
        await new AwsCli(server.Endpoint).RunAsync("ecs", "list-clusters");
    }
}
