using System.Text.Json;
using Berth.Aws.Ecs;
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
                    new StoreWrite("ecs/clusters/default", JsonSerializer.SerializeToUtf8Bytes(new Cluster { ClusterName = "default", ClusterArn = "arn:aws:ecs:us-east-1:000000000000:cluster/default", Status = "ACTIVE" }, EcsJsonContext.Default.Cluster)),
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
                Assert.Equal("ACTIVE", state.Clusters.Find("default")!.Status);
                Assert.Equal(3, state.Families.MaxRevision("web"));
                Assert.Equal(["default/abc"], state.TaskIndex.Get("instance", "default", "inst1"));
                Assert.NotNull(await store.GetAsync("berth/format"));
            }
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }
}
