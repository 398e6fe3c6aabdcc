using System.Security.Cryptography;
using System.Text.Json;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core;
using Berth.Scheduling;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>
/// CreateService, UpdateService, DeleteService, DescribeServices, ListServices, ListServiceDeployments,
/// DescribeServiceDeployments, DescribeServiceRevisions: validation and translation only; the records are
/// kept by <see cref="ServiceLifecycle"/> and acted on by <see cref="ServiceScheduler"/>.
/// </summary>
internal sealed class ServiceOperations(ServiceLifecycle services, TaskLifecycle tasks, IServiceTargets targets, Arns arns)
{
    private EcsState State => services.State;

    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.CreateService, Json.CreateServiceRequest, Json.CreateServiceResponse, CreateAsync);
        s.Map(EcsOperations.UpdateService, Json.UpdateServiceRequest, Json.UpdateServiceResponse, UpdateAsync);
        s.Map(EcsOperations.DeleteService, Json.DeleteServiceRequest, Json.DeleteServiceResponse, DeleteAsync);
        s.Map(EcsOperations.DescribeServices, Json.DescribeServicesRequest, Json.DescribeServicesResponse, (r, _) => Task.FromResult(Describe(r)));
        s.Map(EcsOperations.ListServices, Json.ListServicesRequest, Json.ListServicesResponse, (r, _) => Task.FromResult(List(r)));
        s.Map(EcsOperations.ListServiceDeployments, Json.ListServiceDeploymentsRequest, Json.ListServiceDeploymentsResponse, (r, _) => Task.FromResult(ListDeployments(r)));
        s.Map(EcsOperations.DescribeServiceDeployments, Json.DescribeServiceDeploymentsRequest, Json.DescribeServiceDeploymentsResponse, (r, _) => Task.FromResult(DescribeDeployments(r)));
        s.Map(EcsOperations.DescribeServiceRevisions, Json.DescribeServiceRevisionsRequest, Json.DescribeServiceRevisionsResponse, (r, _) => Task.FromResult(DescribeRevisions(r)));
    }

    /// <summary>Request members Berth does not implement: refused by name rather than dropped.</summary>
    private static void RefuseUnsupported(object? capacityProviderStrategy, object? serviceRegistries,
        object? serviceConnect, object? volumes, object? lattice, bool? executeCommand, DeploymentConfiguration? config, string? azRebalancing)
    {
        string? member = capacityProviderStrategy is System.Collections.ICollection { Count: > 0 } ? "capacityProviderStrategy"
            : serviceRegistries is System.Collections.ICollection { Count: > 0 } ? "serviceRegistries"
            : serviceConnect is not null ? "serviceConnectConfiguration"
            : volumes is System.Collections.ICollection { Count: > 0 } ? "volumeConfigurations"
            : lattice is System.Collections.ICollection { Count: > 0 } ? "vpcLatticeConfigurations"
            : executeCommand == true ? "enableExecuteCommand"
            : config?.Alarms is not null ? "deploymentConfiguration.alarms"
            : config?.LifecycleHooks is { Count: > 0 } ? "deploymentConfiguration.lifecycleHooks"
            : config?.Strategy is not (null or "ROLLING") ? "deploymentConfiguration.strategy"
            : config?.CanaryConfiguration is not null ? "deploymentConfiguration.canaryConfiguration"
            : config?.LinearConfiguration is not null ? "deploymentConfiguration.linearConfiguration"
            : config?.BakeTimeInMinutes is not null ? "deploymentConfiguration.bakeTimeInMinutes"
            : azRebalancing == "ENABLED" ? "availabilityZoneRebalancing"
            : null;
        if (member is not null)
        {
            throw AwsException.InvalidParameter($"{member}: not supported by Berth (EC2 and FARGATE launch types, rolling deployments without Availability Zone rebalancing).");
        }
        if (azRebalancing is not (null or "ENABLED" or "DISABLED"))
        {
            throw AwsException.InvalidParameter("availabilityZoneRebalancing: must be ENABLED or DISABLED.");
        }
    }

    /// <summary>The strategy a service runs under (<see cref="CapacityProviders.Effective"/>), checked against the cluster's providers; null for a launch type.</summary>
    private List<CapacityProviderStrategyItem>? CapacityProviderStrategyOf(string cluster, string? launchType, List<CapacityProviderStrategyItem>? given)
    {
        var record = State.Clusters.Find(cluster)!;
        var strategy = CapacityProviders.Effective(record, launchType, given, out var isDefault);
        if (strategy is not null)
        {
            CapacityProviders.Check(strategy, State.CapacityProviders.Find, record.CapacityProviders ?? [], isDefault);
        }
        return strategy;
    }

    private static List<CapacityProviderStrategyRecord>? Records(List<CapacityProviderStrategyItem>? strategy)
        => strategy?.Select(s => new CapacityProviderStrategyRecord(Arns.NameOf(s.CapacityProvider!), s.Weight ?? 0, s.Base ?? 0)).ToList();

    private static DeploymentConfigRecord Config(DeploymentConfiguration? c, DeploymentConfigRecord defaults)
    {
        if (c is null)
        {
            return defaults;
        }
        var min = c.MinimumHealthyPercent ?? defaults.MinimumHealthyPercent;
        var max = c.MaximumPercent ?? defaults.MaximumPercent;
        if (min is < 0 or > 100)
        {
            throw AwsException.InvalidParameter("deploymentConfiguration.minimumHealthyPercent: must be between 0 and 100.");
        }
        if (max is < 100 or > 2000)
        {
            throw AwsException.InvalidParameter("deploymentConfiguration.maximumPercent: must be between 100 and 2000.");
        }
        var breaker = c.DeploymentCircuitBreaker;
        if (breaker is not null && (breaker.Enable is null || breaker.Rollback is null))
        {
            throw AwsException.InvalidParameter("deploymentConfiguration.deploymentCircuitBreaker: enable and rollback are both required.");
        }
        return new DeploymentConfigRecord
        {
            MinimumHealthyPercent = min,
            MaximumPercent = max,
            CircuitBreakerEnable = breaker?.Enable ?? defaults.CircuitBreakerEnable,
            CircuitBreakerRollback = breaker?.Rollback ?? defaults.CircuitBreakerRollback,
        };
    }

    /// <summary>RunTask's placement checks (<see cref="PlacementRules"/>), kept as the service stores them; null when not given.</summary>
    private static List<PlacementRecord>? Constraints(List<PlacementConstraint>? list)
        => list is null ? null : PlacementRules.ValidateConstraints(list).Select(c => new PlacementRecord(c.Type, c.Expression)).ToList();

    private static List<PlacementRecord>? Strategies(List<PlacementStrategy>? list)
        => list is null ? null : PlacementRules.ValidateStrategies(list).Select(c => new PlacementRecord(c.Type, c.Field)).ToList();

    /// <summary>Each entry: a target group that exists, and a container and port of the definition that the task publishes.</summary>
    private List<ServiceLoadBalancerRecord>? LoadBalancers(List<LoadBalancer>? list, string definition)
    {
        if (list is null)
        {
            return null;
        }
        if (list.Count > 5)
        {
            throw AwsException.InvalidParameter("loadBalancers: at most 5 load balancers per service.");
        }
        var def = tasks.FindDefinition(definition, activeOnlyForFamily: false)?.Definition;
        var result = new List<ServiceLoadBalancerRecord>();
        for (var i = 0; i < list.Count; i++)
        {
            var lb = list[i];
            if (lb.LoadBalancerName is not null)
            {
                throw AwsException.InvalidParameter($"loadBalancers[{i}].loadBalancerName: Classic Load Balancers are not available; give targetGroupArn.");
            }
            if (string.IsNullOrEmpty(lb.TargetGroupArn))
            {
                throw AwsException.InvalidParameter($"loadBalancers[{i}].targetGroupArn: must be specified.");
            }
            if (lb.AdvancedConfiguration is not null)
            {
                throw AwsException.InvalidParameter($"loadBalancers[{i}].advancedConfiguration: blue/green deployments are not available.");
            }
            if (string.IsNullOrEmpty(lb.ContainerName) || lb.ContainerPort is null)
            {
                throw AwsException.InvalidParameter($"loadBalancers[{i}]: containerName and containerPort must be specified.");
            }
            var container = def?.ContainerDefinitions?.FirstOrDefault(c => c.Name == lb.ContainerName)
                ?? throw AwsException.InvalidParameter($"loadBalancers[{i}].containerName: the container {lb.ContainerName} does not exist in the task definition.");
            if (container.PortMappings?.Any(m => m.ContainerPort == lb.ContainerPort) != true)
            {
                throw AwsException.InvalidParameter($"loadBalancers[{i}].containerPort: the container {lb.ContainerName} did not have a container port {lb.ContainerPort} defined.");
            }
            // A service's targets are registered in its own region's target groups (each region has its own load balancers).
            if (Arns.TryParse(lb.TargetGroupArn, out var tgArn) && tgArn.Service == "elasticloadbalancing" && tgArn.Region != arns.Identity.Region)
            {
                throw AwsException.InvalidParameter($"loadBalancers[{i}].targetGroupArn: target group {lb.TargetGroupArn} is in region {tgArn.Region}, not in this service's region {arns.Identity.Region}.");
            }
            if (targets.Check(lb.TargetGroupArn) is { } problem)
            {
                throw AwsException.InvalidParameter($"loadBalancers[{i}].targetGroupArn: {problem}");
            }
            // As ECS: awsvpc tasks are registered by address (target type ip), other modes by instance.
            var mode = def?.NetworkMode ?? "bridge";
            if (targets.TargetType(lb.TargetGroupArn) is { } type && (type == "ip") != (mode == "awsvpc"))
            {
                throw AwsException.InvalidParameter($"The provided target group {lb.TargetGroupArn} has target type {type}, which is incompatible with the {mode} network mode specified in the task definition.");
            }
            result.Add(new ServiceLoadBalancerRecord(lb.TargetGroupArn, null, lb.ContainerName, lb.ContainerPort.Value));
        }
        return result;
    }

    /// <summary>"family:revision" of an ACTIVE definition; the errors ECS gives otherwise.</summary>
    private string Definition(string? reference)
    {
        if (string.IsNullOrEmpty(reference))
        {
            throw AwsException.InvalidParameter("taskDefinition: must be specified.");
        }
        var stored = tasks.FindDefinition(reference, activeOnlyForFamily: true)?.Definition
            ?? throw new AwsException("ClientException", "TaskDefinition not found.");
        if (stored.Status != "ACTIVE")
        {
            throw new AwsException("ClientException", "TaskDefinition is inactive");
        }
        return stored.Family + ":" + stored.Revision!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string? PropagateTags(string? value) => value switch
    {
        null => null,
        "TASK_DEFINITION" or "SERVICE" or "NONE" => value,
        _ => throw AwsException.InvalidParameter("propagateTags: must be TASK_DEFINITION, SERVICE or NONE."),
    };

    private static int? Grace(int? seconds) => seconds is < 0
        ? throw AwsException.InvalidParameter("healthCheckGracePeriodSeconds: must be between 0 and 2147483647.")
        : seconds;

    private async Task<CreateServiceResponse> CreateAsync(CreateServiceRequest req, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(req.ServiceName) || !Names.IsValidClusterName(req.ServiceName))
        {
            throw AwsException.InvalidParameter("serviceName: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed.");
        }
        Tags.Validate(req.Tags);
        RefuseUnsupported(null, req.ServiceRegistries, req.ServiceConnectConfiguration,
            req.VolumeConfigurations, req.VpcLatticeConfigurations, req.EnableExecuteCommand, req.DeploymentConfiguration, req.AvailabilityZoneRebalancing);
        NetworkRules.Launch(req.LaunchType, req.CapacityProviderStrategy, req.PlatformVersion, def: null);
        if (req.DeploymentController?.Type is not (null or "ECS"))
        {
            throw AwsException.InvalidParameter($"deploymentController.type: only ECS (rolling update) deployments are available; {req.DeploymentController!.Type} is not.");
        }
        if (req.ClientToken is { Length: 0 or > 36 })
        {
            throw AwsException.InvalidParameter("clientToken: up to 36 ASCII characters.");
        }
        var strategy = req.SchedulingStrategy ?? "REPLICA";
        if (strategy is not ("REPLICA" or "DAEMON"))
        {
            throw AwsException.InvalidParameter("schedulingStrategy: must be REPLICA or DAEMON.");
        }
        if (req.DesiredCount is < 0)
        {
            throw AwsException.InvalidParameter("desiredCount: must be 0 or more.");
        }
        if (strategy == "DAEMON")
        {
            if (req.DesiredCount is not null)
            {
                throw AwsException.InvalidParameter("desiredCount: the DAEMON scheduling strategy does not support a desired count.");
            }
            if (req.PlacementStrategy is { Count: > 0 })
            {
                throw AwsException.InvalidParameter("placementStrategy: placement strategies are not supported with the DAEMON scheduling strategy.");
            }
            if (req.CapacityProviderStrategy is { Count: > 0 })
            {
                throw AwsException.InvalidParameter("capacityProviderStrategy: capacity provider strategies are not supported with the DAEMON scheduling strategy.");
            }
        }
        else if (req.DesiredCount is null)
        {
            throw AwsException.InvalidParameter("desiredCount: required for the REPLICA scheduling strategy.");
        }
        var defaults = strategy == "DAEMON" ? new DeploymentConfigRecord { MinimumHealthyPercent = 0, MaximumPercent = 100 } : new DeploymentConfigRecord();
        var config = Config(req.DeploymentConfiguration, defaults);
        var constraints = Constraints(req.PlacementConstraints) ?? [];
        var strategies = Strategies(req.PlacementStrategy) ?? [];
        var propagate = PropagateTags(req.PropagateTags) ?? "NONE";
        var grace = Grace(req.HealthCheckGracePeriodSeconds);
        var cluster = tasks.ResolveCluster(req.Cluster);
        var definition = Definition(req.TaskDefinition);
        var def = tasks.FindDefinition(definition, activeOnlyForFamily: false)!.Definition;
        // A DAEMON service runs on every instance: the cluster's default strategy does not apply to it.
        var capacity = strategy == "DAEMON" ? null : CapacityProviderStrategyOf(cluster, req.LaunchType, req.CapacityProviderStrategy);
        var launch = NetworkRules.Launch(req.LaunchType, capacity, req.PlatformVersion, def);
        var awsvpc = NetworkRules.Validate(def, req.NetworkConfiguration, launch);
        var balancers = LoadBalancers(req.LoadBalancers, definition) ?? [];

        var token = req.ClientToken;
        req.ClientToken = null;
        var (service, created) = await services.CreateAsync(new CreateServiceCommand
        {
            Cluster = cluster,
            Service = new ServiceRecord
            {
                Name = req.ServiceName,
                Cluster = cluster,
                DesiredCount = req.DesiredCount ?? 0,
                SchedulingStrategy = strategy,
                LaunchType = launch.LaunchType,
                PlatformVersion = launch.PlatformVersion,
                CapacityProviderStrategy = Records(capacity),
                Awsvpc = awsvpc,
                TaskDefinition = definition,
                DeploymentConfiguration = config,
                PlacementConstraints = constraints,
                PlacementStrategy = strategies,
                HealthCheckGracePeriodSeconds = grace ?? (balancers.Count > 0 ? 0 : null),
                LoadBalancers = balancers,
                Tags = req.Tags is { Count: > 0 } ? req.Tags.Select(t => new TagRecord(t.Key ?? "", t.Value ?? "")).ToList() : null,
                PropagateTags = propagate,
                EnableEcsManagedTags = req.EnableECSManagedTags ?? false,
                EnableExecuteCommand = false,
                AvailabilityZoneRebalancing = "DISABLED",
                RoleArn = req.Role,
                CreatedBy = $"arn:aws:iam::{arns.Identity.AccountId}:root",
                ClientToken = token,
                Fingerprint = token is null ? null : Convert.ToHexString(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(req, Json.CreateServiceRequest))),
            },
        }, ct).ConfigureAwait(false);
        // ECS returns the tags a service was created with, and leaves the member out when there are none.
        var wire = ServiceViews.ToWire(arns, State, service, withTags: service.Tags is { Count: > 0 });
        if (created)
        {
            // The service as created: ECS starts its tasks after answering, so the counts are 0 even when
            // the scheduler, woken by the commit, has already placed some.
            wire.RunningCount = 0;
            wire.PendingCount = 0;
            foreach (var d in wire.Deployments ?? [])
            {
                d.RunningCount = 0;
                d.PendingCount = 0;
            }
        }
        return new CreateServiceResponse { Service = wire };
    }

    private async Task<UpdateServiceResponse> UpdateAsync(UpdateServiceRequest req, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(req.Service))
        {
            throw AwsException.InvalidParameter("service: must be specified.");
        }
        RefuseUnsupported(null, req.ServiceRegistries, req.ServiceConnectConfiguration,
            req.VolumeConfigurations, req.VpcLatticeConfigurations, req.EnableExecuteCommand, req.DeploymentConfiguration, req.AvailabilityZoneRebalancing);
        if (req.CapacityProviderStrategy is { Count: > 0 })
        {
            NetworkRules.Launch(null, req.CapacityProviderStrategy, null, def: null);
        }
        if (req.DeploymentController is not null)
        {
            throw AwsException.InvalidParameter("deploymentController: the deployment controller of a service cannot be changed.");
        }
        if (req.DesiredCount is < 0)
        {
            throw AwsException.InvalidParameter("desiredCount: must be 0 or more.");
        }
        var cluster = tasks.ResolveCluster(req.Cluster);
        var existing = services.Find(cluster, req.Service);
        if (existing is null)
        {
            throw new AwsException("ServiceNotFoundException", "Service not found.");
        }
        if (existing.SchedulingStrategy == "DAEMON" && req.PlacementStrategy is { Count: > 0 })
        {
            throw AwsException.InvalidParameter("placementStrategy: placement strategies are not supported with the DAEMON scheduling strategy.");
        }
        List<CapacityProviderStrategyItem>? capacity = null;
        if (req.CapacityProviderStrategy is { Count: > 0 })
        {
            if (existing.SchedulingStrategy == "DAEMON")
            {
                throw AwsException.InvalidParameter("capacityProviderStrategy: capacity provider strategies are not supported with the DAEMON scheduling strategy.");
            }
            capacity = CapacityProviderStrategyOf(cluster, null, req.CapacityProviderStrategy);
            // The tasks keep their kind: Fargate providers replace Fargate, Auto Scaling group providers replace EC2.
            if (NetworkRules.Launch(null, capacity, null, null).LaunchType != existing.LaunchType)
            {
                throw AwsException.InvalidParameter($"capacityProviderStrategy: the service runs {existing.LaunchType} tasks; its strategy can only name {(existing.LaunchType == "FARGATE" ? "the FARGATE and FARGATE_SPOT capacity providers" : "Auto Scaling group capacity providers")}.");
            }
        }
        var config = req.DeploymentConfiguration is null ? null : Config(req.DeploymentConfiguration, existing.DeploymentConfiguration);
        var definition = req.TaskDefinition is null ? null : Definition(req.TaskDefinition);
        // The network configuration holds for the definition the service will run; a FARGATE service's definition must suit Fargate.
        var def = tasks.FindDefinition(definition ?? existing.TaskDefinition, activeOnlyForFamily: false)?.Definition;
        AwsvpcRecord? awsvpc = null;
        string? platformVersion = null;
        if (def is not null && (definition is not null || req.NetworkConfiguration is not null || req.PlatformVersion is not null))
        {
            var launch = NetworkRules.Launch(existing.LaunchType == "EC2" ? null : existing.LaunchType, null,
                req.PlatformVersion ?? (existing.LaunchType == "FARGATE" ? existing.PlatformVersion : null), def);
            awsvpc = NetworkRules.Validate(def, req.NetworkConfiguration ?? existing.Awsvpc?.ToWire(), launch);
            platformVersion = launch.PlatformVersion;
        }
        var updated = await services.UpdateAsync(new UpdateServiceCommand
        {
            Cluster = cluster,
            Service = req.Service,
            DesiredCount = req.DesiredCount,
            TaskDefinition = definition,
            DeploymentConfiguration = config,
            PlacementConstraints = Constraints(req.PlacementConstraints),
            PlacementStrategy = Strategies(req.PlacementStrategy),
            HealthCheckGracePeriodSeconds = Grace(req.HealthCheckGracePeriodSeconds),
            LoadBalancers = LoadBalancers(req.LoadBalancers, definition ?? existing.TaskDefinition),
            PropagateTags = PropagateTags(req.PropagateTags),
            EnableEcsManagedTags = req.EnableECSManagedTags,
            EnableExecuteCommand = req.EnableExecuteCommand,
            AvailabilityZoneRebalancing = req.AvailabilityZoneRebalancing,
            ForceNewDeployment = req.ForceNewDeployment ?? false,
            Awsvpc = awsvpc,
            PlatformVersion = platformVersion,
            CapacityProviderStrategy = Records(capacity),
        }, ct).ConfigureAwait(false);
        return new UpdateServiceResponse { Service = ServiceViews.ToWire(arns, State, updated, withTags: false) };
    }

    private async Task<DeleteServiceResponse> DeleteAsync(DeleteServiceRequest req, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(req.Service))
        {
            throw AwsException.InvalidParameter("service: must be specified.");
        }
        var cluster = tasks.ResolveCluster(req.Cluster);
        var deleted = await services.DeleteAsync(cluster, req.Service, req.Force ?? false, ct).ConfigureAwait(false);
        return new DeleteServiceResponse { Service = ServiceViews.ToWire(arns, State, deleted, withTags: false) };
    }

    private DescribeServicesResponse Describe(DescribeServicesRequest req)
    {
        if (req.Services is not { Count: > 0 and <= 10 })
        {
            throw AwsException.InvalidParameter("services: between 1 and 10 services must be given.");
        }
        if (req.Include is { } include && include.Any(i => i != "TAGS"))
        {
            throw AwsException.InvalidParameter("include: the only value is TAGS.");
        }
        var cluster = tasks.ResolveCluster(req.Cluster);
        var withTags = req.Include?.Contains("TAGS") == true;
        var resp = new DescribeServicesResponse { Services = [], Failures = [] };
        foreach (var reference in req.Services)
        {
            if (services.Find(cluster, reference) is { } s)
            {
                resp.Services.Add(ServiceViews.ToWire(arns, State, s, withTags));
            }
            else
            {
                resp.Failures.Add(new Failure
                {
                    Arn = reference.StartsWith("arn:", StringComparison.Ordinal) ? reference : arns.Service(cluster, reference),
                    Reason = "MISSING",
                });
            }
        }
        return resp;
    }

    private ListServicesResponse List(ListServicesRequest req)
    {
        if (req.LaunchType is not null and not ("EC2" or "FARGATE" or "EXTERNAL"))
        {
            throw AwsException.InvalidParameter("launchType: must be EC2, FARGATE or EXTERNAL.");
        }
        if (req.SchedulingStrategy is not null and not ("REPLICA" or "DAEMON"))
        {
            throw AwsException.InvalidParameter("schedulingStrategy: must be REPLICA or DAEMON.");
        }
        var cluster = tasks.ResolveCluster(req.Cluster);
        // ACTIVE services only: a deleted service (DRAINING, then INACTIVE) stays describable but leaves the
        // list at once, as in ECS (tools wait for a deleted service to drop out of ListServices).
        bool Keep(string key) => State.Services.Find(key) is { } s && s.Status == ServiceStates.Active
            && (req.LaunchType is null || s.LaunchType == req.LaunchType)
            && (req.SchedulingStrategy is null || s.SchedulingStrategy == req.SchedulingStrategy);
        // Without maxResults ECS answers 10 services a page (most List calls answer 100).
        var (page, next) = Pagination.PageSorted(State.ServiceIndex.InCluster(cluster), Keep, req.MaxResults ?? 10, req.NextToken);
        return new ListServicesResponse
        {
            ServiceArns = page.Select(key => arns.Service(cluster, key[(cluster.Length + 1)..])).ToList(),
            NextToken = next,
        };
    }

    private ListServiceDeploymentsResponse ListDeployments(ListServiceDeploymentsRequest req)
    {
        if (string.IsNullOrEmpty(req.Service))
        {
            throw AwsException.InvalidParameter("service: must be specified.");
        }
        var valid = new[] { "PENDING", "SUCCESSFUL", "STOPPED", "STOP_REQUESTED", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED" };
        if (req.Status?.FirstOrDefault(s => !valid.Contains(s)) is { } bad)
        {
            throw AwsException.InvalidParameter($"status: {bad} is not a service deployment status.");
        }
        var cluster = tasks.ResolveCluster(req.Cluster);
        var service = services.Find(cluster, req.Service) ?? throw new AwsException("ServiceNotFoundException", "Service not found.");
        var all = ServiceViews.AllDeployments(service)
            .Where(d => req.Status is not { Count: > 0 } || req.Status.Contains(d.DeploymentStatus))
            .Where(d => req.CreatedAt?.After is not { } after || d.CreatedAt >= after)
            .Where(d => req.CreatedAt?.Before is not { } before || d.CreatedAt <= before)
            .ToList();
        // Without maxResults ECS answers 20 service deployments a page.
        // Newest first, as the service keeps them: page in that order (one position lookup per comparison, not a search).
        var position = all.Select((d, i) => (d.Id, i)).ToDictionary(x => x.Id, x => x.i, StringComparer.Ordinal);
        var (page, next) = Pagination.Page(all.Select(d => d.Id), req.MaxResults ?? 20, req.NextToken, order: Comparer<string>.Create((a, b) => position[a].CompareTo(position[b])));
        var byId = all.ToDictionary(d => d.Id, StringComparer.Ordinal);
        return new ListServiceDeploymentsResponse
        {
            ServiceDeployments = page.Select(id => ServiceViews.Brief(arns, service, byId[id])).ToList(),
            NextToken = next,
        };
    }

    /// <summary>Finds the service and deployment of a service-deployment or service-revision ARN.</summary>
    private (ServiceRecord Service, DeploymentRecord Deployment)? Resolve(string arn, string kind)
    {
        if (!Arns.TryParse(arn, out var parsed) || parsed.ResourceType != kind || parsed.Region != arns.Identity.Region || parsed.Account != arns.Identity.AccountId)
        {
            return null;
        }
        var parts = parsed.Path.Split('/');
        if (parts.Length != 3 || State.Services.Find(EcsState.ScopedId(parts[0], parts[1])) is not { } service)
        {
            return null;
        }
        return ServiceViews.AllDeployments(service).FirstOrDefault(d => d.Digits == parts[2]) is { } d ? (service, d) : null;
    }

    private DescribeServiceDeploymentsResponse DescribeDeployments(DescribeServiceDeploymentsRequest req)
    {
        if (req.ServiceDeploymentArns is not { Count: > 0 and <= 20 })
        {
            throw AwsException.InvalidParameter("serviceDeploymentArns: between 1 and 20 ARNs must be given.");
        }
        var resp = new DescribeServiceDeploymentsResponse { ServiceDeployments = [], Failures = [] };
        foreach (var arn in req.ServiceDeploymentArns)
        {
            if (Resolve(arn, "service-deployment") is var (service, d))
            {
                resp.ServiceDeployments.Add(ServiceViews.Full(arns, State, service, d));
            }
            else
            {
                resp.Failures.Add(new Failure { Arn = arn, Reason = "MISSING" });
            }
        }
        return resp;
    }

    private DescribeServiceRevisionsResponse DescribeRevisions(DescribeServiceRevisionsRequest req)
    {
        if (req.ServiceRevisionArns is not { Count: > 0 and <= 20 })
        {
            throw AwsException.InvalidParameter("serviceRevisionArns: between 1 and 20 ARNs must be given.");
        }
        var resp = new DescribeServiceRevisionsResponse { ServiceRevisions = [], Failures = [] };
        foreach (var arn in req.ServiceRevisionArns)
        {
            if (Resolve(arn, "service-revision") is var (service, d))
            {
                resp.ServiceRevisions.Add(new ServiceRevision
                {
                    ServiceRevisionArn = arn,
                    ServiceArn = arns.Service(service.Cluster, service.Name),
                    ClusterArn = arns.Cluster(service.Cluster),
                    TaskDefinition = ServiceViews.DefinitionArn(arns, d.TaskDefinition),
                    LaunchType = service.LaunchType,
                    LoadBalancers = service.LoadBalancers.Select(l => new LoadBalancer { TargetGroupArn = l.TargetGroupArn, ContainerName = l.ContainerName, ContainerPort = l.ContainerPort }).ToList(),
                    CreatedAt = d.CreatedAt,
                    // The digests the revision resolved its tags to (software version consistency); absent until known.
                    ContainerImages = d.Images?.Select(i => new ContainerImage { ContainerName = i.ContainerName, Image = i.Image, ImageDigest = i.ImageDigest }).ToList(),
                });
            }
            else
            {
                resp.Failures.Add(new Failure { Arn = arn, Reason = "MISSING" });
            }
        }
        return resp;
    }
}
