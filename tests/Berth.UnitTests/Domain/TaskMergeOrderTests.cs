using Berth.ControlPlane.Domain;
using Berth.Core.Agent;

namespace Berth.UnitTests.Domain;

/// <summary>Reports from two sources (the agent, a SubmitContainerStateChange caller) merge in ECS's state order.</summary>
public sealed class TaskMergeOrderTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 28, 1, 0, 0, TimeSpan.Zero);

    private static TaskStatusReport Report(string task, string container, long sequence)
    {
        var r = new TaskStatusReport { TaskArn = "x", LastStatus = task, Sequence = sequence };
        r.Containers.Add(new ContainerStatus { Name = "app", LastStatus = container });
        return r;
    }

    [Fact]
    public void ContainerStatus_NeverMovesBackwards_ButMovesForward()
    {
        var t = new TaskRecord
        {
            Id = "0123456789abcdef0123456789abcdef",
            Cluster = "default",
            Family = "web",
            Revision = 1,
            InstanceId = "i1",
            DesiredStatus = TaskStates.Running,
            LastStatus = TaskStates.Pending,
            Containers = [new ContainerRecord { Name = "app" }],
        };
        t = TaskLifecycle.Merge(t, Report("RUNNING", "RUNNING", 1), Now);
        Assert.Equal((TaskStates.Running, TaskStates.Running), (t.LastStatus, t.Containers[0].LastStatus));

        // A late report that still says PENDING changes neither.
        t = TaskLifecycle.Merge(t, Report("PENDING", "PENDING", 2), Now);
        Assert.Equal((TaskStates.Running, TaskStates.Running), (t.LastStatus, t.Containers[0].LastStatus));

        t = TaskLifecycle.Merge(t, Report("STOPPED", "STOPPED", 3), Now);
        Assert.Equal((TaskStates.Stopped, TaskStates.Stopped), (t.LastStatus, t.Containers[0].LastStatus));
        t = TaskLifecycle.Merge(t, Report("RUNNING", "RUNNING", 4), Now);
        Assert.Equal(TaskStates.Stopped, t.Containers[0].LastStatus);
    }
}
