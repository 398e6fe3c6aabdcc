using Berth.ControlPlane.Domain;

namespace Berth.UnitTests.Domain;

public sealed class TaskHealthTests
{
    private static ContainerRecord C(string name, string? health, bool essential = true, bool check = true)
        => new() { Name = name, HealthStatus = health, Essential = essential, HasHealthCheck = check };

    private static TaskRecord Task(params ContainerRecord[] containers) => new()
    {
        Id = "t",
        Cluster = "default",
        Family = "web",
        Revision = 1,
        DesiredStatus = TaskStates.Running,
        LastStatus = TaskStates.Running,
        Containers = containers,
    };

    [Fact]
    public void Of_AllEssentialChecksHealthy_IsHealthy()
        => Assert.Equal("HEALTHY", TaskHealth.Of(Task(C("a", "HEALTHY"), C("b", "HEALTHY"))));

    [Fact]
    public void Of_OneEssentialUnhealthy_IsUnhealthyEvenWhenAnotherIsStillUnknown()
        => Assert.Equal("UNHEALTHY", TaskHealth.Of(Task(C("a", "UNKNOWN"), C("b", "UNHEALTHY"), C("c", "HEALTHY"))));

    [Fact]
    public void Of_EssentialCheckStillEvaluating_IsUnknown()
        => Assert.Equal("UNKNOWN", TaskHealth.Of(Task(C("a", "HEALTHY"), C("b", "UNKNOWN"))));

    [Fact]
    public void Of_EssentialCheckNotYetReported_IsUnknown()
        => Assert.Equal("UNKNOWN", TaskHealth.Of(Task(C("a", "HEALTHY"), C("b", null))));

    [Fact]
    public void Of_NoHealthChecks_IsUnknown()
        => Assert.Equal("UNKNOWN", TaskHealth.Of(Task(C("a", null, check: false), C("b", null, essential: false, check: false))));

    [Fact]
    public void Of_NoContainers_IsUnknown() => Assert.Equal("UNKNOWN", TaskHealth.Of(Task()));

    [Fact]
    public void Of_NonEssentialUnhealthy_DoesNotCount()
        => Assert.Equal("HEALTHY", TaskHealth.Of(Task(C("a", "HEALTHY"), C("side", "UNHEALTHY", essential: false))));

    [Fact]
    public void Of_OnlyNonEssentialHasACheck_IsUnknown()
        => Assert.Equal("UNKNOWN", TaskHealth.Of(Task(C("a", null, check: false), C("side", "HEALTHY", essential: false))));

    [Fact]
    public void Of_EssentialWithoutCheck_DoesNotHoldTheTaskAtUnknown()
        => Assert.Equal("HEALTHY", TaskHealth.Of(Task(C("a", "HEALTHY"), C("plain", null, check: false))));

    [Fact]
    public void Of_RecordStoredBeforeHasHealthCheck_CountsAContainerWithAReportedStatus()
        => Assert.Equal("UNHEALTHY", TaskHealth.Of(Task(C("a", "UNHEALTHY", check: false))));

    [Fact]
    public void Checked_NoEssentialCheck_IsNullWhileOfSaysUnknown()
    {
        var t = Task(C("a", null, check: false), C("side", "UNHEALTHY", essential: false));
        Assert.Null(TaskHealth.Checked(t));
        Assert.Equal("UNKNOWN", TaskHealth.Of(t));
        Assert.Equal("UNKNOWN", TaskHealth.Checked(Task(C("a", "UNKNOWN"))));
        Assert.Equal("HEALTHY", TaskHealth.Checked(Task(C("a", "HEALTHY"))));
    }

    [Fact]
    public void TaskRecord_StoredWithoutEssential_ReadsItsContainersAsEssentialAndRoundTrips()
    {
        const string json = """{"id":"t","cluster":"c","family":"f","revision":1,"desired":"RUNNING","last":"RUNNING","containers":[{"name":"a","health":"HEALTHY"}]}""";
        var t = System.Text.Json.JsonSerializer.Deserialize(json, Berth.ControlPlane.State.StateJsonContext.Default.TaskRecord)!;
        Assert.True(t.Containers[0].Essential);
        Assert.False(t.Containers[0].HasHealthCheck);

        var written = System.Text.Json.JsonSerializer.Serialize(t with { Containers = [C("a", null, essential: false, check: true)] }, Berth.ControlPlane.State.StateJsonContext.Default.TaskRecord);
        var back = System.Text.Json.JsonSerializer.Deserialize(written, Berth.ControlPlane.State.StateJsonContext.Default.TaskRecord)!;
        Assert.False(back.Containers[0].Essential);
        Assert.True(back.Containers[0].HasHealthCheck);
    }
}
