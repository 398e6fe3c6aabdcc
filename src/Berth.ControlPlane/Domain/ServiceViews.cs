using Berth.Aws.Ecs;
using Berth.ControlPlane.State;
using Berth.Core;

namespace Berth.ControlPlane.Domain;

/// <summary>Builds the wire shapes of services, their deployments and service deployments from the stored records.</summary>
public static class ServiceViews
{
    public static Service ToWire(Arns arns, EcsState state, ServiceRecord s, bool withTags)
    {
        var deployments = s.Deployments.Select(d => ToWire(arns, state, s, d)).ToList();
        var service = new Service
        {
            ServiceArn = arns.Service(s.Cluster, s.Name),
            ServiceName = s.Name,
            ClusterArn = arns.Cluster(s.Cluster),
            LoadBalancers = s.LoadBalancers.Select(l => new LoadBalancer
            {
                TargetGroupArn = l.TargetGroupArn,
                LoadBalancerName = l.LoadBalancerName,
                ContainerName = l.ContainerName,
                ContainerPort = l.ContainerPort,
            }).ToList(),
            ServiceRegistries = [],
            Status = s.Status,
            DesiredCount = s.DesiredCount,
            RunningCount = deployments.Sum(d => d.RunningCount ?? 0),
            PendingCount = deployments.Sum(d => d.PendingCount ?? 0),
            LaunchType = s.LaunchType,
            PlatformVersion = s.PlatformVersion,
            PlatformFamily = s.LaunchType == "FARGATE" ? "Linux" : null,
            NetworkConfiguration = s.Awsvpc?.ToWire(),
            TaskDefinition = DefinitionArn(arns, s.TaskDefinition),
            DeploymentConfiguration = ToWire(s.DeploymentConfiguration),
            Deployments = deployments,
            RoleArn = s.RoleArn,
            Events = s.Events.Select(e => new ServiceEvent { Id = e.Id, CreatedAt = e.CreatedAt, Message = e.Message }).ToList(),
            CreatedAt = s.CreatedAt,
            CurrentServiceDeployment = s.Primary is { } p ? arns.ServiceDeployment(s.Cluster, s.Name, p.Digits) : null,
            PlacementConstraints = s.PlacementConstraints.Select(c => new PlacementConstraint { Type = c.Type, Expression = c.Value }).ToList(),
            PlacementStrategy = s.PlacementStrategy.Select(c => new PlacementStrategy { Type = c.Type, Field = c.Value }).ToList(),
            HealthCheckGracePeriodSeconds = s.HealthCheckGracePeriodSeconds,
            SchedulingStrategy = s.SchedulingStrategy,
            DeploymentController = new DeploymentController { Type = "ECS" },
            CreatedBy = s.CreatedBy,
            EnableECSManagedTags = s.EnableEcsManagedTags,
            PropagateTags = s.PropagateTags,
            EnableExecuteCommand = s.EnableExecuteCommand,
            AvailabilityZoneRebalancing = s.AvailabilityZoneRebalancing,
        };
        if (withTags)
        {
            service.Tags = (s.Tags ?? []).Select(t => new Tag { Key = t.Key, Value = t.Value }).ToList();
        }
        if (s.CapacityProviderStrategy is { Count: > 0 } strategy)
        {
            // ECS reports the strategy instead of a launch type, on the service and on each deployment.
            service.CapacityProviderStrategy = strategy.Select(c => new CapacityProviderStrategyItem { CapacityProvider = c.CapacityProvider, Weight = c.Weight ?? 0, Base = c.Base ?? 0 }).ToList();
            service.LaunchType = null;
            foreach (var d in service.Deployments ?? [])
            {
                d.CapacityProviderStrategy = service.CapacityProviderStrategy;
                d.LaunchType = null;
            }
        }
        return service;
    }

    public static string DefinitionArn(Arns arns, string familyRevision)
    {
        var colon = familyRevision.LastIndexOf(':');
        return arns.TaskDefinition(familyRevision[..colon], int.Parse(familyRevision[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    public static DeploymentConfiguration ToWire(DeploymentConfigRecord c) => new()
    {
        DeploymentCircuitBreaker = new DeploymentCircuitBreaker { Enable = c.CircuitBreakerEnable, Rollback = c.CircuitBreakerRollback },
        MaximumPercent = c.MaximumPercent,
        MinimumHealthyPercent = c.MinimumHealthyPercent,
        Strategy = "ROLLING",
    };

    private static Deployment ToWire(Arns arns, EcsState state, ServiceRecord s, DeploymentRecord d)
    {
        var (running, pending) = state.ServiceIndex.CountsOf(s.Cluster, d.Id);
        return new Deployment
        {
            Id = d.Id,
            Status = d.Status,
            TaskDefinition = DefinitionArn(arns, d.TaskDefinition),
            DesiredCount = d.DesiredCount,
            PendingCount = pending,
            RunningCount = running,
            FailedTasks = d.FailedTasks,
            CreatedAt = d.CreatedAt,
            UpdatedAt = d.UpdatedAt,
            LaunchType = s.LaunchType,
            PlatformVersion = s.PlatformVersion,
            PlatformFamily = s.LaunchType == "FARGATE" ? "Linux" : null,
            NetworkConfiguration = s.Awsvpc?.ToWire(),
            RolloutState = d.RolloutState,
            RolloutStateReason = d.RolloutStateReason,
        };
    }

    /// <summary>Every deployment of the service, newest first: the current ones, then the finished ones.</summary>
    public static IEnumerable<DeploymentRecord> AllDeployments(ServiceRecord s) => s.Deployments.Concat(s.History);

    public static ServiceDeploymentBrief Brief(Arns arns, ServiceRecord s, DeploymentRecord d) => new()
    {
        ServiceDeploymentArn = arns.ServiceDeployment(s.Cluster, s.Name, d.Digits),
        ServiceArn = arns.Service(s.Cluster, s.Name),
        ClusterArn = arns.Cluster(s.Cluster),
        CreatedAt = d.CreatedAt,
        StartedAt = d.CreatedAt,
        FinishedAt = d.FinishedAt,
        TargetServiceRevisionArn = arns.ServiceRevision(s.Cluster, s.Name, d.Digits),
        Status = d.DeploymentStatus,
        StatusReason = d.DeploymentStatusReason,
    };

    public static ServiceDeployment Full(Arns arns, EcsState state, ServiceRecord s, DeploymentRecord d)
    {
        var (running, pending) = state.ServiceIndex.CountsOf(s.Cluster, d.Id);
        var sources = d.Replaced is { } r && AllDeployments(s).FirstOrDefault(x => x.Id == r) is { } source
            ? new List<ServiceRevisionSummary>
            {
                Summary(arns, state, s, source),
            }
            : [];
        var config = d.Config ?? s.DeploymentConfiguration;
        var deployment = new ServiceDeployment
        {
            ServiceDeploymentArn = arns.ServiceDeployment(s.Cluster, s.Name, d.Digits),
            ServiceArn = arns.Service(s.Cluster, s.Name),
            ClusterArn = arns.Cluster(s.Cluster),
            CreatedAt = d.CreatedAt,
            StartedAt = d.CreatedAt,
            FinishedAt = d.FinishedAt,
            UpdatedAt = d.UpdatedAt,
            SourceServiceRevisions = sources,
            TargetServiceRevision = new ServiceRevisionSummary
            {
                Arn = arns.ServiceRevision(s.Cluster, s.Name, d.Digits),
                RequestedTaskCount = d.DesiredCount,
                RunningTaskCount = running,
                PendingTaskCount = pending,
            },
            Status = d.DeploymentStatus,
            StatusReason = d.DeploymentStatusReason,
            DeploymentConfiguration = ToWire(config),
            DeploymentCircuitBreaker = config.CircuitBreakerEnable
                ? new ServiceDeploymentCircuitBreaker
                {
                    Status = d.RolloutState == DeploymentStates.Failed ? "TRIGGERED" : "MONITORING",
                    FailureCount = d.FailedTasks,
                    Threshold = ServiceRules.FailureThreshold(d.DesiredCount),
                }
                : null,
        };
        if (AllDeployments(s).FirstOrDefault(x => x.RollbackOf == d.Id) is { } rollback)
        {
            deployment.Rollback = new Rollback
            {
                // Why the rollback happened: the failed deployment's reason stays put, while the rollback
                // deployment's rolloutStateReason becomes "ECS deployment ... completed." once it completes.
                Reason = d.DeploymentStatusReason ?? rollback.RolloutStateReason,
                StartedAt = rollback.CreatedAt,
                ServiceRevisionArn = arns.ServiceRevision(s.Cluster, s.Name, rollback.Digits),
            };
        }
        return deployment;
    }

    private static ServiceRevisionSummary Summary(Arns arns, EcsState state, ServiceRecord s, DeploymentRecord d)
    {
        var (running, pending) = state.ServiceIndex.CountsOf(s.Cluster, d.Id);
        return new ServiceRevisionSummary
        {
            Arn = arns.ServiceRevision(s.Cluster, s.Name, d.Digits),
            RequestedTaskCount = d.Status == DeploymentStates.Inactive ? 0 : d.DesiredCount,
            RunningTaskCount = running,
            PendingTaskCount = pending,
        };
    }
}
