using System.Text.Json;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Ecr;

/// <summary>One Berth for all rows of <see cref="EcrFidelityTests"/>, sweeping every second so lifecycle policies get evaluated.</summary>
public sealed class EcrFidelityServer : IAsyncLifetime
{
    public BerthServer Server { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Server = await BerthServer.StartAsync("server", "--registry-sweep-interval", "1");

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// ECR wire fidelity, data-driven: each scenario of Python/ecr_fidelity.json is a list of boto3 calls with
/// the members ECR returns or leaves out and the error type and message it answers; ecr_fidelity.py runs one
/// scenario against Berth and reports every check that differs.
/// </summary>
public sealed class EcrFidelityTests(EcrFidelityServer fixture) : IClassFixture<EcrFidelityServer>
{
    private static string CasesFile => Path.Combine(AppContext.BaseDirectory, "Python", "ecr_fidelity.json");

    public static TheoryData<string> Scenarios()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(CasesFile));
        var data = new TheoryData<string>();
        foreach (var p in doc.RootElement.EnumerateObject().Where(p => !p.Name.StartsWith("persist-", StringComparison.Ordinal)))
        {
            data.Add(p.Name);
        }
        return data;
    }

    internal static async Task RunScenarioAsync(BerthServer server, string scenario)
    {
        var r = await Boto3.RunAsync("ecr_fidelity.py", server.Endpoint, CasesFile, scenario);
        Assert.True(r.ExitCode == 0, $"{scenario}:\n{r.Stdout}\n{r.Stderr}");
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(0, doc.RootElement.GetProperty("failures").GetArrayLength());
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public Task Scenario_AnswersAsEcrDoes(string scenario) => RunScenarioAsync(fixture.Server, scenario);

    [Fact]
    public async Task RegistrySettings_SurviveRestart()
    {
        await using var server = await BerthServer.StartAsync("server");
        await RunScenarioAsync(server, "persist-put");
        await server.KillAsync(); // kill -9: what was answered must already be in the store
        await server.RestartAsync();
        await RunScenarioAsync(server, "persist-check");
    }
}
