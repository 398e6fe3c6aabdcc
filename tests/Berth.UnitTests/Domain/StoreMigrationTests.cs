using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.State;

namespace Berth.UnitTests.Domain;

public sealed class StoreMigrationTests
{
    [Fact]
    public async Task Open_FormatOneStore_MovesDocumentsUnderAccountAndRegionAndConvertsTasks()
    {
        var path = Path.Combine(Path.GetTempPath(), "berth-migrate-" + Guid.NewGuid().ToString("N"), "state.db");
        try
        {
            // A store as format 1 wrote it: no account or region in the keys, tasks in the wire shape.
            await using (var store = SqliteStateStore.Open(path))
            {
                var def = new StoredTaskDefinition
                {
                    Definition = new TaskDefinition
                    {
                        Family = "web", Revision = 3, Status = "ACTIVE", TaskDefinitionArn = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3",
                        ContainerDefinitions = [new ContainerDefinition { Name = "web", Image = "busybox", Memory = 64, PortMappings = [new PortMapping { ContainerPort = 80, HostPort = 8080 }] }],
                    },
                };
                var task = new EcsTask
                {
                    TaskArn = "arn:aws:ecs:us-east-1:000000000000:task/default/abc",
                    ClusterArn = "arn:aws:ecs:us-east-1:000000000000:cluster/default",
                    TaskDefinitionArn = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3",
                    ContainerInstanceArn = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/inst1",
                    DesiredStatus = "RUNNING", LastStatus = "RUNNING", Memory = "64", Version = 4,
                    Containers = [new Container { Name = "web", ContainerArn = "arn:aws:ecs:us-east-1:000000000000:container/default/abc/uuid-1", LastStatus = "RUNNING", NetworkBindings = [new NetworkBinding { ContainerPort = 80, HostPort = 8080, BindIP = "0.0.0.0", Protocol = "tcp" }] }],
                };
                await store.CommitAsync(
                [
                    new StoreWrite("ecs/clusters/default", JsonSerializer.SerializeToUtf8Bytes(WireCluster("default"), EcsJsonContext.Default.Cluster)),
                    new StoreWrite("ecs/instances/default/inst1", JsonSerializer.SerializeToUtf8Bytes(WireInstance("default", "inst1"), StateJsonContext.Default.StoredContainerInstance)),
                    new StoreWrite("ecs/taskdefs/web:00000003", JsonSerializer.SerializeToUtf8Bytes(def, StateJsonContext.Default.StoredTaskDefinition)),
                    new StoreWrite("ecs/tasks/default/abc", JsonSerializer.SerializeToUtf8Bytes(task, EcsJsonContext.Default.EcsTask)),
                ]);
            }

            await using (var store = SqliteStateStore.Open(path))
            {
                var state = new EcsState(store);
                await state.LoadAsync();

                Assert.Empty(await store.ListAsync("ecs/tasks/"));
                Assert.NotNull(await store.GetAsync("ecs/000000000000/us-east-1/tasks/default/abc"));
                var t = state.Tasks.Find("default/abc")!;
                Assert.Equal(("web", 3, "inst1", "RUNNING", 4L), (t.Family, t.Revision, t.InstanceId, t.LastStatus, t.Version));
                Assert.Equal([8080], t.StaticPorts!);
                Assert.Equal("uuid-1", t.Containers.Single().Uuid);
                Assert.Equal(8080, t.Containers.Single().Bindings!.Single().HostPort);
                AssertCluster(state.Clusters.Find("default")!, "default");
                AssertInstance(state.ContainerInstances.Find("default/inst1")!, "default", "inst1");
                Assert.Empty(await store.ListAsync("ecs/instances/"));
                // The ledger's view of the converted instance: registered resources minus the running task.
                var candidate = state.Ledger.Candidate("default/inst1")!;
                Assert.Equal(("arn:aws:ecs:us-east-1:000000000000:container-instance/default/inst1", 1024, 2048L - 64, 1), (candidate.Arn, candidate.CpuAvailable, candidate.MemoryAvailable, candidate.TaskCount));
                Assert.Contains(8080, candidate.UsedPorts);
                Assert.Contains(22, candidate.UsedPorts);
                Assert.Equal("blue", candidate.Attributes["team"]);
                Assert.Equal(3, state.Families.MaxRevision("web"));
                Assert.Equal(["default/abc"], state.TaskIndex.Get("instance", "default", "inst1"));
                Assert.Equal(3, await FormatOfAsync(store));
            }
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public async Task Open_FormatTwoStore_ConvertsClustersAndInstancesInPlaceInEveryRegion()
    {
        var path = Path.Combine(Path.GetTempPath(), "berth-migrate-" + Guid.NewGuid().ToString("N"), "state.db");
        const string root = "ecs/000000000000/us-east-1/";
        const string other = "ecs/111111111111/eu-west-1/";
        try
        {
            // A store as format 2 wrote it: account and region in the keys, tasks as records, clusters and instances in the wire shapes.
            // One cluster is already a record, as after a migration interrupted part way.
            var task = new TaskRecord { Id = "t1", Cluster = "prod", Family = "web", Revision = 1, InstanceId = "i2", DesiredStatus = "RUNNING", LastStatus = "RUNNING", Cpu = "256", Memory = "128" };
            var already = new ClusterRecord { Name = "done", Tags = [new ResourceTagRecord("k", null)] };
            await using (var store = SqliteStateStore.Open(path))
            {
                await store.CommitAsync(
                [
                    new StoreWrite("berth/format", """{"version":2}"""u8.ToArray()),
                    new StoreWrite(root + "clusters/prod", JsonSerializer.SerializeToUtf8Bytes(WireCluster("prod"), EcsJsonContext.Default.Cluster)),
                    new StoreWrite(root + "clusters/done", JsonSerializer.SerializeToUtf8Bytes(already, StateJsonContext.Default.ClusterRecord)),
                    new StoreWrite(root + "instances/prod/i2", JsonSerializer.SerializeToUtf8Bytes(WireInstance("prod", "i2"), StateJsonContext.Default.StoredContainerInstance)),
                    new StoreWrite(root + "tasks/prod/t1", JsonSerializer.SerializeToUtf8Bytes(task, StateJsonContext.Default.TaskRecord)),
                    new StoreWrite(other + "clusters/far", JsonSerializer.SerializeToUtf8Bytes(WireCluster("far"), EcsJsonContext.Default.Cluster)),
                ]);
            }

            await using (var store = SqliteStateStore.Open(path))
            {
                var state = new EcsState(store);
                await state.LoadAsync();

                Assert.Equal(3, await FormatOfAsync(store));
                AssertCluster(state.Clusters.Find("prod")!, "prod");
                Assert.Equal(already, state.Clusters.Find("done")! with { Tags = already.Tags });
                Assert.Equal(new ResourceTagRecord("k", null), state.Clusters.Find("done")!.Tags!.Single());
                AssertInstance(state.ContainerInstances.Find("prod/i2")!, "prod", "i2");
                Assert.Equal("RUNNING", state.Tasks.Find("prod/t1")!.LastStatus);
                var candidate = state.Ledger.Candidate("prod/i2")!;
                Assert.Equal((1024 - 256, 2048L - 128), (candidate.CpuAvailable, candidate.MemoryAvailable));
                Assert.Equal(["prod/i2"], state.Ledger.InCluster("prod"));
                Assert.Equal("prod/i2", state.Ledger.ByAgent("prod", "agent-1"));

                // The other account and region, which this state does not serve, was converted too.
                var far = JsonSerializer.Deserialize((await store.GetAsync(other + "clusters/far"))!.Value, StateJsonContext.Default.ClusterRecord)!;
                AssertCluster(far, "far");
            }

            // Opening again finds format 3 and changes nothing.
            await using (var store = SqliteStateStore.Open(path))
            {
                var before = (await store.ListAsync("ecs/")).Select(e => (e.Key, Convert.ToBase64String(e.Value))).ToList();
                var state = new EcsState(store);
                await state.LoadAsync();
                Assert.Equal(before, (await store.ListAsync("ecs/")).Select(e => (e.Key, Convert.ToBase64String(e.Value))).ToList());
            }
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    private static async Task<int> FormatOfAsync(IStateStore store)
        => JsonSerializer.Deserialize<JsonElement>((await store.GetAsync("berth/format"))!.Value).GetProperty("version").GetInt32();

    private static Cluster WireCluster(string name) => new()
    {
        ClusterName = name,
        ClusterArn = "arn:aws:ecs:us-east-1:000000000000:cluster/" + name,
        Status = "ACTIVE",
        Tags = [new Tag { Key = "team", Value = "blue" }, new Tag { Key = "bare" }],
        Settings = [new ClusterSetting { Name = "containerInsights", Value = "enabled" }],
        Configuration = new ClusterConfiguration { ExecuteCommandConfiguration = new ExecuteCommandConfiguration { Logging = "OVERRIDE", LogConfiguration = new ExecuteCommandLogConfiguration { S3BucketName = "logs", S3EncryptionEnabled = true } } },
        CapacityProviders = [],
        DefaultCapacityProviderStrategy = [new CapacityProviderStrategyItem { CapacityProvider = "cp", Weight = 2 }],
        ServiceConnectDefaults = new ClusterServiceConnectDefaults { Namespace = "arn:aws:servicediscovery:us-east-1:000000000000:namespace/ns-1" },
    };

    private static void AssertCluster(ClusterRecord c, string name)
    {
        Assert.Equal((name, "ACTIVE"), (c.Name, c.Status));
        Assert.Equal([new ResourceTagRecord("team", "blue"), new ResourceTagRecord("bare", null)], c.Tags!);
        Assert.Equal([new ClusterSettingRecord("containerInsights", "enabled")], c.Settings!);
        Assert.Equal(("OVERRIDE", "logs", true), (c.Configuration!.ExecuteCommand!.Logging, c.Configuration.ExecuteCommand.Log!.S3BucketName, c.Configuration.ExecuteCommand.Log.S3EncryptionEnabled));
        Assert.Null(c.Configuration.ManagedStorage);
        Assert.Empty(c.CapacityProviders!);
        Assert.Equal([new CapacityProviderStrategyRecord("cp", 2, null)], c.DefaultCapacityProviderStrategy!);
        Assert.Equal("arn:aws:servicediscovery:us-east-1:000000000000:namespace/ns-1", c.ServiceConnectNamespace);
    }

    private static StoredContainerInstance WireInstance(string cluster, string id) => new()
    {
        Cluster = cluster,
        AgentId = "agent-1",
        AgentSecretHash = "ABCD",
        Instance = new ContainerInstance
        {
            ContainerInstanceArn = $"arn:aws:ecs:us-east-1:000000000000:container-instance/{cluster}/{id}",
            Ec2InstanceId = "host-1",
            Status = "DRAINING",
            AgentConnected = true,
            RegisteredAt = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero),
            Version = 7,
            VersionInfo = new VersionInfo { AgentVersion = "1.0", DockerVersion = "DockerVersion: 27.0" },
            RegisteredResources =
            [
                new Resource { Name = "CPU", Type = "INTEGER", IntegerValue = 1024 },
                new Resource { Name = "MEMORY", Type = "INTEGER", IntegerValue = 2048 },
                new Resource { Name = "PORTS", Type = "STRINGSET", StringSetValue = ["22", "8080"] },
                new Resource { Name = "PORTS_UDP", Type = "STRINGSET", StringSetValue = ["5353"] },
            ],
            Attributes = [new EcsAttribute { Name = "team", Value = "blue" }, new EcsAttribute { Name = "ecs.os-type", Value = "linux" }],
            Tags = [new Tag { Key = "owner", Value = "ops" }],
            Attachments = [],
        },
    };

    private static void AssertInstance(InstanceRecord i, string cluster, string id)
    {
        Assert.Equal((id, cluster, "host-1", "DRAINING", true, 7L), (i.Id, i.Cluster, i.Ec2InstanceId, i.Status, i.AgentConnected, i.Version));
        Assert.Equal(new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero), i.RegisteredAt);
        Assert.Equal(new VersionInfoRecord { AgentVersion = "1.0", DockerVersion = "DockerVersion: 27.0" }, i.VersionInfo);
        Assert.Equal((1024, 2048), (i.Cpu, i.Memory));
        Assert.Equal(["22", "8080"], i.Ports);
        Assert.Equal(["5353"], i.UdpPorts);
        Assert.Equal([new AttributeRecord { Name = "team", Value = "blue" }, new AttributeRecord { Name = "ecs.os-type", Value = "linux" }], i.Attributes);
        Assert.Equal([new ResourceTagRecord("owner", "ops")], i.Tags!);
        Assert.Equal(("agent-1", "ABCD", (DateTimeOffset?)null), (i.AgentId, i.AgentSecretHash, i.DeregisteredAt));
    }
}
