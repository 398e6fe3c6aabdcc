using Berth.Aws.Ecs;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core.Agent;
using Berth.UnitTests.Agents;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.UnitTests.Domain;

public sealed class VersionConsistencyTests
{
    private const string D1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    private const string Image = "127.0.0.1:4566/app:latest";

    private static TaskDefinition Definition(string? sideConsistency = null, string sideImage = "busybox:1") => new()
    {
        Family = "app",
        Revision = 1,
        ContainerDefinitions =
        [
            new ContainerDefinition { Name = "web", Image = Image, Memory = 16 },
            new ContainerDefinition { Name = "side", Image = sideImage, Memory = 16, VersionConsistency = sideConsistency },
        ],
    };

    private static DeploymentRecord Deployment(IReadOnlyList<DeploymentImageRecord>? images = null)
        => new() { Id = "ecs-svc/1000000000000000001", Status = "PRIMARY", TaskDefinition = "app:1", DesiredCount = 3, Images = images };

    private static TaskRecord Task(string status, string? webDigest, string? sideDigest, string startedBy = "ecs-svc/1000000000000000001") => new()
    {
        Id = Guid.NewGuid().ToString("N"),
        Cluster = "default",
        Family = "app",
        Revision = 1,
        InstanceId = "i",
        StartedBy = startedBy,
        LastStatus = status,
        DesiredStatus = "RUNNING",
        Containers =
        [
            new ContainerRecord { Name = "web", Image = Image, ImageDigest = webDigest },
            new ContainerRecord { Name = "side", Image = "busybox:1", ImageDigest = sideDigest },
        ],
    };

    [Theory]
    [InlineData("127.0.0.1:4566/app:latest", "127.0.0.1:4566/app")]
    [InlineData("127.0.0.1:4566/app", "127.0.0.1:4566/app")]
    [InlineData("busybox", "busybox")]
    [InlineData("reg.example:5000/team/app:1.2@sha256:ab", "reg.example:5000/team/app")]
    public void Repository_DropsTagAndDigest_KeepsRegistryPort(string image, string repository)
        => Assert.Equal(repository, VersionConsistency.Repository(image));

    [Fact]
    public void Subjects_SkipDisabledAndDigestReferences()
    {
        Assert.Equal(["web"], VersionConsistency.Subjects(Definition(sideConsistency: "disabled")).Select(c => c.Name));
        Assert.Equal(["web"], VersionConsistency.Subjects(Definition(sideImage: "busybox@" + D1)).Select(c => c.Name));
        Assert.Equal(["web", "side"], VersionConsistency.Subjects(Definition(sideConsistency: "enabled")).Select(c => c.Name));
    }

    [Fact]
    public void Resolve_TakesReportedDigests_AndAnImageWithoutOneOnceRunning()
    {
        var def = Definition();
        // Pending with only web's digest: web resolves, side waits.
        var first = VersionConsistency.Resolve(Deployment(), def, [Task("PENDING", D1, null)]);
        Assert.Equal([new DeploymentImageRecord("web", Image, D1)], first);
        Assert.True(VersionConsistency.Unresolved(Deployment(first), def));

        // RUNNING with no digest for side (a local image): recorded as unresolved, so it runs by tag.
        var second = VersionConsistency.Resolve(Deployment(first), def, [Task("RUNNING", D1, null)]);
        Assert.Equal([new DeploymentImageRecord("web", Image, D1), new DeploymentImageRecord("side", "busybox:1", null)], second);
        Assert.False(VersionConsistency.Unresolved(Deployment(second), def));
        Assert.Null(VersionConsistency.Resolve(Deployment(second), def, [Task("RUNNING", "sha256:other", "sha256:x")]));

        var pins = VersionConsistency.Pins(Deployment(second))!;
        Assert.Equal("127.0.0.1:4566/app@" + D1, Assert.Single(pins).Value);
    }

    [Fact]
    public void Resolve_IgnoresTasksOfOtherDeployments()
        => Assert.Null(VersionConsistency.Resolve(Deployment(), Definition(), [Task("RUNNING", D1, D1, startedBy: "ecs-svc/9")]));

    [Fact]
    public void Allowed_OneFirstThenNoneWhileItResolvesThenAll()
    {
        var def = Definition(sideConsistency: "disabled");
        Assert.Equal(1, VersionConsistency.Allowed(Deployment(), def, [], 3));
        Assert.Equal(0, VersionConsistency.Allowed(Deployment(), def, [Task("PENDING", null, null)], 3));
        // The first one stopped before it told anything: another goes first.
        Assert.Equal(1, VersionConsistency.Allowed(Deployment(), def, [Task("STOPPED", null, null) with { DesiredStatus = "STOPPED" }], 3));
        Assert.Equal(3, VersionConsistency.Allowed(Deployment([new DeploymentImageRecord("web", Image, D1)]), def, [Task("PENDING", null, null)], 3));
        // Nothing to resolve at all: no gate.
        var none = new TaskDefinition { ContainerDefinitions = [new ContainerDefinition { Name = "web", Image = Image, VersionConsistency = "disabled" }] };
        Assert.Equal(3, VersionConsistency.Allowed(Deployment(), none, [], 3));
    }

    [Fact]
    public void Merge_RecordsResolvedImages()
    {
        var svc = new ServiceRecord
        {
            Name = "app", Cluster = "default", TaskDefinition = "app:1", DesiredCount = 3,
            DeploymentConfiguration = new DeploymentConfigRecord(),
            Deployments = [Deployment()],
        };
        var plan = new ServicePlan();
        plan.Images[svc.Deployments[0].Id] = [new DeploymentImageRecord("web", Image, D1)];
        var merged = ServiceScheduler.Merge(svc, plan, [], DateTimeOffset.UnixEpoch);
        Assert.Equal(D1, Assert.Single(merged.Deployments[0].Images!).ImageDigest);
    }

    /// <summary>The scheduler end to end over the in-memory control plane: one task first, its digest recorded, the rest pinned.</summary>
    [Fact]
    public async Task Scheduler_FirstTaskResolvesDigest_LaterTasksRunIt()
    {
        var store = Berth.State.SqliteStateStore.Open(":memory:");
        await using var f = new EcsFixture(store: store);
        var instanceKey = (await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None)).Key;
        var def = new TaskDefinition { NetworkMode = "bridge", ContainerDefinitions = [new ContainerDefinition { Name = "web", Image = Image, Memory = 16, Essential = true }] };
        await f.AddTaskDefinitionAsync("app", 1, def);
        var deployment = Deployment() with { DesiredCount = 3 };
        var key = EcsState.ScopedId("default", "app");
        await using (var tx = await f.State.BeginAsync())
        {
            tx.Put(f.State.Services, key, new ServiceRecord
            {
                Name = "app", Cluster = "default", TaskDefinition = "app:1", DesiredCount = 3,
                DeploymentConfiguration = new DeploymentConfigRecord(), Deployments = [deployment],
            });
            await tx.CommitAsync();
        }
        var scheduler = new ServiceScheduler(f.State, f.Tasks, TimeProvider.System, NullLogger<ServiceScheduler>.Instance);
        List<TaskRecord> Tasks() => [.. f.State.TaskIndex.Get(TaskIndex.ByGroup, "default", "service:app").Select(id => f.State.Tasks.Find(id)!)];

        await scheduler.ReconcileAsync(key, CancellationToken.None);
        var first = Assert.Single(Tasks());
        Assert.Null(first.Containers[0].PinnedImage);
        await scheduler.ReconcileAsync(key, CancellationToken.None);
        Assert.Single(Tasks()); // still resolving

        var report = new TaskStatusReport { TaskArn = f.Arns.Task("default", first.Id), LastStatus = "PENDING", Sequence = 1 };
        report.Containers.Add(new ContainerStatus { Name = "web", LastStatus = "PENDING", RuntimeId = "c1", ImageDigest = D1 });
        Assert.Null(await f.Tasks.ApplyReportAsync(instanceKey, report, CancellationToken.None));
        await scheduler.ReconcileAsync(key, CancellationToken.None);

        Assert.Equal(D1, Assert.Single(f.State.Services.Find(key)!.Deployments[0].Images!).ImageDigest);
        var tasks = Tasks();
        Assert.Equal(3, tasks.Count);
        var later = tasks.Where(t => t.Id != first.Id).ToList();
        Assert.All(later, t => Assert.Equal("127.0.0.1:4566/app@" + D1, t.Containers[0].PinnedImage));
        // What the agent is told to run, while DescribeTasks keeps the definition's image.
        Assert.Equal("127.0.0.1:4566/app@" + D1, TaskSpecs.Build(later[0], def, "arn").Containers[0].Image);
        Assert.Equal(Image, TaskSpecs.Build(first, def, "arn").Containers[0].Image);
        Assert.Equal(Image, later[0].Containers[0].Image);

        // Stored with the service and its tasks: a restarted server reads the same digest and pins.
        var reloaded = new EcsState(store);
        await reloaded.LoadAsync();
        Assert.Equal(D1, Assert.Single(reloaded.Services.Find(key)!.Deployments[0].Images!).ImageDigest);
        Assert.Equal("127.0.0.1:4566/app@" + D1, reloaded.Tasks.Find(EcsState.ScopedId("default", later[0].Id))!.Containers[0].PinnedImage);
    }
}
