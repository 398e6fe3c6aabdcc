using System.Text;
using System.Text.Json;
using Berth.ControlPlane.Agents;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.Regions;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.State;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.UnitTests.Regions;

/// <summary>Several regions over one store: each its own namespace, all found again on reopen.</summary>
public sealed class RegionDirectoryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-regions-").FullName;
    private string StorePath => Path.Combine(_dir, "state.db");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ServiceProvider Root() => new ServiceCollection()
        .AddLogging()
        .AddSingleton(TimeProvider.System)
        .AddSingleton(new ControlPlaneOptions { DataDirectory = "/nonexistent" })
        .AddSingleton<IRegistryCredentialProvider, NoRegistryCredentials>()
        .AddSingleton<IServiceTargets, NoServiceTargets>()
        .BuildServiceProvider();

    private static async Task<RegionDirectory> OpenAsync(IServiceProvider root, IStateStore store, string region = "us-east-1")
    {
        var state = new EcsState(store, new BerthIdentity(Region: region));
        await state.LoadAsync();
        return await RegionDirectory.OpenAsync(root, state, NullLogger<RegionDirectory>.Instance);
    }

    private static async Task<JsonElement> CallAsync(RegionScope scope, string operation, string json)
    {
        var handler = scope.Ecs.Find(operation) ?? throw new InvalidOperationException(operation);
        using var doc = JsonDocument.Parse(json);
        var bytes = await handler(doc.RootElement.Clone(), CancellationToken.None);
        return JsonDocument.Parse(bytes).RootElement.Clone();
    }

    private const string TaskDef = """{"family":"web","containerDefinitions":[{"name":"web","image":"busybox","memory":64}]}""";

    [Fact]
    public async Task TwoRegions_SameNames_SeparateNamespacesRevisionsAndArns()
    {
        using var root = Root();
        await using var store = SqliteStateStore.Open(StorePath);
        var regions = await OpenAsync(root, store);
        var east = regions.Default;
        var west = await regions.GetAsync("us-west-2");

        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:cluster/web", (await CallAsync(east, "CreateCluster", """{"clusterName":"web"}"""))
            .GetProperty("cluster").GetProperty("clusterArn").GetString());
        Assert.Equal("arn:aws:ecs:us-west-2:000000000000:cluster/web", (await CallAsync(west, "CreateCluster", """{"clusterName":"web"}"""))
            .GetProperty("cluster").GetProperty("clusterArn").GetString());
        await CallAsync(west, "CreateCluster", """{"clusterName":"west-only"}""");

        // Each region counts its own revisions.
        Assert.Equal(1, (await CallAsync(west, "RegisterTaskDefinition", TaskDef)).GetProperty("taskDefinition").GetProperty("revision").GetInt32());
        Assert.Equal(2, (await CallAsync(west, "RegisterTaskDefinition", TaskDef)).GetProperty("taskDefinition").GetProperty("revision").GetInt32());
        var eastDef = (await CallAsync(east, "RegisterTaskDefinition", TaskDef)).GetProperty("taskDefinition");
        Assert.Equal(1, eastDef.GetProperty("revision").GetInt32());
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:task-definition/web:1", eastDef.GetProperty("taskDefinitionArn").GetString());

        Assert.Equal(1, east.State.Clusters.Count);
        Assert.Equal(2, west.State.Clusters.Count);
        Assert.Equal(["us-east-1", "us-west-2"], regions.Regions);
        // The same scope for every later lookup.
        Assert.Same(west, await regions.GetAsync("us-west-2"));
    }

    [Fact]
    public async Task GetAsync_RacingCallersForANewRegion_OneScope()
    {
        using var root = Root();
        await using var store = SqliteStateStore.Open(StorePath);
        var regions = await OpenAsync(root, store);
        var scopes = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => regions.GetAsync("eu-west-1").AsTask()));
        Assert.All(scopes, s => Assert.Same(scopes[0], s));
        Assert.Equal("eu-west-1", scopes[0].Arns.Identity.Region);
    }

    [Fact]
    public async Task Reopen_RegionsOpenedBefore_AreOpenAtStartWithTheirState()
    {
        using var root = Root();
        await using (var store = SqliteStateStore.Open(StorePath))
        {
            var regions = await OpenAsync(root, store);
            await CallAsync(await regions.GetAsync("us-west-2"), "RegisterTaskDefinition", TaskDef);
            await regions.GetAsync("eu-west-1"); // opened by a read only: still remembered
        }
        await using (var store = SqliteStateStore.Open(StorePath))
        {
            var regions = await OpenAsync(root, store);
            Assert.Equal(["eu-west-1", "us-east-1", "us-west-2"], regions.Regions);
            var west = await regions.GetAsync("us-west-2");
            Assert.NotNull(west.State.TaskDefinitions.Find(EcsState.TaskDefinitionId("web", 1)));
            Assert.Equal(0, regions.Default.State.TaskDefinitions.Count);
            // The next revision in us-west-2 continues from the stored one.
            Assert.Equal(2, (await CallAsync(west, "RegisterTaskDefinition", TaskDef)).GetProperty("taskDefinition").GetProperty("revision").GetInt32());
        }
    }

    [Fact]
    public async Task Open_StoreFromBeforeRegionRecords_FindsRegionsByTheirKeys()
    {
        using var root = Root();
        await using var store = SqliteStateStore.Open(StorePath);
        // A current-format store served once under --region eu-north-1, with no berth/regions records.
        await store.CommitAsync([
            new StoreWrite("berth/format", Encoding.UTF8.GetBytes("""{"version":3}""")),
            new StoreWrite("ecs/000000000000/eu-north-1/clusters/old", JsonSerializer.SerializeToUtf8Bytes(Clusters.New("old"), StateJsonContext.Default.ClusterRecord)),
        ]);
        var regions = await OpenAsync(root, store);
        Assert.Equal(["eu-north-1", "us-east-1"], regions.Regions);
        Assert.NotNull((await regions.GetAsync("eu-north-1")).State.Clusters.Find("old"));
    }

    [Fact]
    public async Task GetAsync_NotARegionName_InvalidParameter()
    {
        using var root = Root();
        await using var store = SqliteStateStore.Open(StorePath);
        var regions = await OpenAsync(root, store);
        var e = await Assert.ThrowsAsync<Berth.Aws.Protocol.AwsException>(() => regions.GetAsync("not/a/region").AsTask());
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Equal(["us-east-1"], regions.Regions);
    }
}
