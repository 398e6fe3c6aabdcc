using Berth.ControlPlane.Domain;

namespace Berth.UnitTests.Domain;

/// <summary>
/// The planner alone, against a small simulated world: tasks move PROVISIONING → PENDING → RUNNING at
/// random speeds, stopped tasks take a while to reach STOPPED, and after every step the deployment
/// invariants are checked.
/// </summary>
public sealed class ServicePlannerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    private sealed class World(Random random)
    {
        public List<TaskRecord> Tasks { get; } = [];
        public DateTimeOffset Now { get; set; } = T0;
        public Func<string, bool> Crashes { get; set; } = _ => false;
        private int _next;

        public void Start(ServiceRecord svc, DeploymentRecord d, int count)
        {
            for (var i = 0; i < count; i++)
            {
                var (family, revision) = Split(d.TaskDefinition);
                Tasks.Add(new TaskRecord
                {
                    Id = "t" + (_next++).ToString("D4", System.Globalization.CultureInfo.InvariantCulture),
                    Cluster = svc.Cluster,
                    Family = family,
                    Revision = revision,
                    InstanceId = "i" + random.Next(3),
                    DesiredStatus = TaskStates.Running,
                    LastStatus = TaskStates.Provisioning,
                    CreatedAt = Now,
                    StartedBy = d.Id,
                    Group = svc.Group,
                });
            }
        }

        public void Stop(string id, string reason)
        {
            var i = Tasks.FindIndex(t => t.Id == id);
            Tasks[i] = Tasks[i] with { DesiredStatus = TaskStates.Stopped, StoppedReason = reason, StopCode = ServicePlanner.SchedulerStopCode };
        }

        /// <summary>Every task may move one state forward.</summary>
        public void Progress()
        {
            Now += TimeSpan.FromSeconds(1);
            for (var i = 0; i < Tasks.Count; i++)
            {
                var t = Tasks[i];
                if (t.IsStopped || random.Next(3) == 0)
                {
                    continue;
                }
                if (t.DesiredStatus == TaskStates.Stopped)
                {
                    Tasks[i] = t with { LastStatus = TaskStates.Stopped, StoppedAt = Now };
                }
                else if (t.LastStatus == TaskStates.Provisioning)
                {
                    Tasks[i] = t with { LastStatus = TaskStates.Pending };
                }
                else if (t.LastStatus == TaskStates.Pending)
                {
                    Tasks[i] = Crashes($"{t.Family}:{t.Revision}")
                        ? t with { LastStatus = TaskStates.Stopped, DesiredStatus = TaskStates.Stopped, StopCode = "EssentialContainerExited", StoppedAt = Now }
                        : t with { LastStatus = TaskStates.Running, StartedAt = Now };
                }
            }
        }

        /// <summary>One reconcile: plan, act, merge the bookkeeping into the record.</summary>
        public ServiceRecord Step(ServiceRecord svc)
        {
            var plan = ServicePlanner.Plan(svc, Tasks, new PlannerInputs { Now = Now, InstanceStatus = _ => "ACTIVE" });
            foreach (var (id, reason) in plan.Stops)
            {
                Stop(id, reason);
            }
            foreach (var (d, n) in plan.Starts)
            {
                Start(svc, d, n);
            }
            return ServiceScheduler.Merge(svc, plan, plan.Events, Now);
        }

        public int Healthy() => Tasks.Count(t => t.DesiredStatus == TaskStates.Running && t.LastStatus == TaskStates.Running);

        public int Existing() => Tasks.Count(t => !t.IsStopped);
    }

    private static (string, int) Split(string familyRevision)
    {
        var colon = familyRevision.LastIndexOf(':');
        return (familyRevision[..colon], int.Parse(familyRevision[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static ServiceRecord NewService(int desired, int min, int max, bool breaker = false) => new()
    {
        Name = "web",
        Cluster = "default",
        DesiredCount = desired,
        TaskDefinition = "web:1",
        DeploymentConfiguration = new DeploymentConfigRecord { MinimumHealthyPercent = min, MaximumPercent = max, CircuitBreakerEnable = breaker, CircuitBreakerRollback = breaker },
        Deployments = [new DeploymentRecord { Id = "ecs-svc/1000000000000000001", Status = DeploymentStates.Primary, TaskDefinition = "web:1", DesiredCount = desired, CreatedAt = T0, UpdatedAt = T0 }],
    };

    private static ServiceRecord Deploy(ServiceRecord svc, string definition, string id)
    {
        var deployments = svc.Deployments.Select(d => d with { Status = DeploymentStates.Active }).ToList();
        deployments.Insert(0, new DeploymentRecord { Id = id, Status = DeploymentStates.Primary, TaskDefinition = definition, DesiredCount = svc.DesiredCount, CreatedAt = T0, UpdatedAt = T0, Config = svc.DeploymentConfiguration });
        return svc with { TaskDefinition = definition, Deployments = deployments };
    }

    private static ServiceRecord Settle(World world, ServiceRecord svc, int maxSteps = 200)
    {
        for (var i = 0; i < maxSteps && !(svc.Steady && svc.Deployments.Count == 1); i++)
        {
            svc = world.Step(svc);
            world.Progress();
        }
        return svc;
    }

    [Theory]
    [InlineData(4, 100, 200)]
    [InlineData(4, 50, 100)]
    [InlineData(3, 50, 100)]
    [InlineData(5, 0, 100)]
    [InlineData(6, 50, 150)]
    [InlineData(1, 0, 100)]
    [InlineData(10, 90, 110)]
    public void RollingDeployment_NeverBreaksMinimumHealthyOrMaximum(int desired, int min, int max)
    {
        for (var seed = 0; seed < 40; seed++)
        {
            var world = new World(new Random(seed));
            var svc = Settle(world, NewService(desired, min, max));
            Assert.True(svc.Steady, $"seed {seed}: the first deployment never settled");
            Assert.Equal(desired, world.Healthy());

            svc = Deploy(svc, "web:2", "ecs-svc/2000000000000000002");
            var floor = (int)Math.Ceiling(desired * min / 100.0);
            var ceiling = (int)Math.Floor(desired * max / 100.0);
            for (var step = 0; step < 300 && !(svc.Steady && svc.Deployments.Count == 1); step++)
            {
                svc = world.Step(svc);
                Assert.True(world.Existing() <= ceiling, $"seed {seed} step {step}: {world.Existing()} tasks exist, maximum {ceiling}");
                world.Progress();
                Assert.True(world.Healthy() >= floor, $"seed {seed} step {step}: {world.Healthy()} healthy, minimum {floor}");
            }
            Assert.True(svc.Steady, $"seed {seed}: the deployment never completed");
            Assert.Single(svc.Deployments);
            Assert.Equal(DeploymentStates.Completed, svc.Deployments[0].RolloutState);
            Assert.All(world.Tasks.Where(t => !t.IsStopped), t => Assert.Equal(2, t.Revision));
            Assert.Equal(desired, world.Tasks.Count(t => !t.IsStopped));
        }
    }

    [Fact]
    public void CircuitBreaker_FailsTheDeploymentAndRollsBackToTheLastCompleted()
    {
        var world = new World(new Random(7));
        var svc = Settle(world, NewService(4, 100, 200, breaker: true));
        world.Crashes = td => td == "web:2";
        svc = Deploy(svc, "web:2", "ecs-svc/2000000000000000002");
        svc = Settle(world, svc, 400);

        Assert.True(svc.Steady);
        Assert.Equal("web:1", svc.TaskDefinition);
        var failed = svc.History.Single(d => d.Id == "ecs-svc/2000000000000000002");
        Assert.Equal(DeploymentStates.Failed, failed.RolloutState);
        Assert.Equal("ECS deployment circuit breaker: tasks failed to start.", failed.RolloutStateReason);
        Assert.Equal("ROLLBACK_SUCCESSFUL", failed.DeploymentStatus);
        Assert.InRange(failed.FailedTasks, ServiceRules.FailureThreshold(4), 10);
        Assert.Equal("ecs-svc/2000000000000000002", svc.Deployments[0].RollbackOf);
        Assert.Contains(svc.Events, e => e.Message == "(service web) rolling back to deployment ecs-svc/1000000000000000001.");
        Assert.Contains(svc.Events, e => e.Message.Contains("deployment failed: tasks failed to start.", StringComparison.Ordinal));
        Assert.All(world.Tasks.Where(t => !t.IsStopped), t => Assert.Equal(1, t.Revision));
    }

    [Fact]
    public void CrashingTasks_AreRetriedWithBackoff_NotInAHotLoop()
    {
        var world = new World(new Random(3)) { Crashes = _ => true };
        var svc = NewService(2, 100, 200);
        for (var i = 0; i < 120; i++)
        {
            svc = world.Step(svc);
            world.Progress();
        }
        // 120 simulated seconds: without backoff about 40 tasks would have been started; with it, a handful.
        Assert.InRange(world.Tasks.Count, 3, 16);
        Assert.NotNull(svc.Primary!.BackoffUntil);
        Assert.Contains(svc.Events, e => e.Message.Contains("is unable to consistently start tasks successfully", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(6, 3)]
    [InlineData(7, 4)]
    [InlineData(100, 50)]
    [InlineData(1000, 200)]
    public void FailureThreshold_IsHalfTheDesiredCount_BetweenThreeAndTwoHundred(int desired, int threshold)
        => Assert.Equal(threshold, ServiceRules.FailureThreshold(desired));

    [Fact]
    public void UnhealthyTask_IsReplaced_OnlyAfterTheGracePeriod()
    {
        var world = new World(new Random(1));
        var svc = Settle(world, NewService(1, 100, 200)) with { HealthCheckGracePeriodSeconds = 30 };
        var i = world.Tasks.FindIndex(t => !t.IsStopped);
        world.Tasks[i] = world.Tasks[i] with { StartedAt = world.Now, Containers = [new ContainerRecord { Name = "web", HealthStatus = "UNHEALTHY" }] };

        var plan = ServicePlanner.Plan(svc, world.Tasks, new PlannerInputs { Now = world.Now + TimeSpan.FromSeconds(10), InstanceStatus = _ => "ACTIVE" });
        Assert.Empty(plan.Stops);
        Assert.Equal(world.Now + TimeSpan.FromSeconds(30), plan.WakeAt);

        plan = ServicePlanner.Plan(svc, world.Tasks, new PlannerInputs { Now = world.Now + TimeSpan.FromSeconds(31), InstanceStatus = _ => "ACTIVE" });
        Assert.Equal("Task failed container health checks", Assert.Single(plan.Stops).Reason);
        Assert.Contains(plan.Events, e => e.EndsWith("failed container health checks.", StringComparison.Ordinal));
        Assert.Single(plan.Starts);
    }

    [Fact]
    public void TasksOnADrainingInstance_AreReplacedBeforeTheyStop()
    {
        var world = new World(new Random(2));
        var svc = Settle(world, NewService(3, 100, 200));
        var drained = world.Tasks.First(t => !t.IsStopped).InstanceId!;
        var onIt = world.Tasks.Count(t => !t.IsStopped && t.InstanceId == drained);

        var plan = ServicePlanner.Plan(svc, world.Tasks, new PlannerInputs { Now = world.Now, InstanceStatus = i => i == drained ? "DRAINING" : "ACTIVE" });

        // minimumHealthyPercent 100: nothing healthy stops until its replacement runs.
        Assert.Empty(plan.Stops);
        Assert.Equal(onIt, plan.Starts.Sum(s => s.Count));
    }

    [Fact]
    public void Daemon_OneTaskPerEligibleInstance_AndNoneOnOthers()
    {
        var svc = NewService(0, 0, 100) with { SchedulingStrategy = "DAEMON" };
        var world = new World(new Random(4));
        world.Tasks.Add(new TaskRecord
        {
            Id = "old", Cluster = "default", Family = "web", Revision = 1, InstanceId = "gone", DesiredStatus = TaskStates.Running,
            LastStatus = TaskStates.Running, StartedBy = svc.Primary!.Id, Group = svc.Group,
        });
        var plan = ServicePlanner.Plan(svc, world.Tasks, new PlannerInputs { Now = T0, InstanceStatus = _ => "ACTIVE", DaemonInstances = ["a", "b"] });

        Assert.Equal(["a", "b"], plan.DaemonStarts.Select(s => s.InstanceId).Order().ToArray());
        Assert.Equal("old", Assert.Single(plan.Stops).TaskId);
        Assert.Equal(2, plan.DaemonDesired);
    }
}
