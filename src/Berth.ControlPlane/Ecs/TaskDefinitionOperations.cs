using System.Globalization;
using System.Text.RegularExpressions;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>Register/Describe/List/Deregister/Delete task definitions and ListTaskDefinitionFamilies.</summary>
internal sealed partial class TaskDefinitionOperations(EcsState state, Arns arns, TimeProvider time)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.RegisterTaskDefinition, Json.RegisterTaskDefinitionRequest, Json.RegisterTaskDefinitionResponse, RegisterAsync);
        s.Map(EcsOperations.DescribeTaskDefinition, Json.DescribeTaskDefinitionRequest, Json.DescribeTaskDefinitionResponse, (r, _) => Task.FromResult(Describe(r)));
        s.Map(EcsOperations.ListTaskDefinitions, Json.ListTaskDefinitionsRequest, Json.ListTaskDefinitionsResponse, (r, _) => Task.FromResult(List(r)));
        s.Map(EcsOperations.ListTaskDefinitionFamilies, Json.ListTaskDefinitionFamiliesRequest, Json.ListTaskDefinitionFamiliesResponse, (r, _) => Task.FromResult(ListFamilies(r)));
        s.Map(EcsOperations.DeregisterTaskDefinition, Json.DeregisterTaskDefinitionRequest, Json.DeregisterTaskDefinitionResponse, DeregisterAsync);
        s.Map(EcsOperations.DeleteTaskDefinitions, Json.DeleteTaskDefinitionsRequest, Json.DeleteTaskDefinitionsResponse, DeleteAsync);
    }

    private async Task<RegisterTaskDefinitionResponse> RegisterAsync(RegisterTaskDefinitionRequest req, CancellationToken ct)
    {
        Validate(req);
        Tags.Validate(req.Tags);
        PlacementRules.ValidateDefinitionConstraints(req.PlacementConstraints);
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var family = req.Family!;
        var revision = state.Families.MaxRevision(family) + 1;
        foreach (var c in req.ContainerDefinitions!)
        {
            c.Essential ??= true;
            c.PortMappings ??= [];
            c.Environment ??= [];
            c.MountPoints ??= [];
            c.VolumesFrom ??= [];
            c.Cpu ??= 0;
            if (c.HealthCheck is { } hc)
            {
                // ECS echoes its defaults back in DescribeTaskDefinition.
                hc.Interval ??= 30;
                hc.Timeout ??= 5;
                hc.Retries ??= 3;
            }
            foreach (var pm in c.PortMappings)
            {
                pm.Protocol ??= "tcp";
                if (req.NetworkMode is "host" or "awsvpc")
                {
                    pm.HostPort ??= pm.ContainerPort;
                }
            }
        }
        var def = new TaskDefinition
        {
            TaskDefinitionArn = arns.TaskDefinition(family, revision),
            Family = family,
            Revision = revision,
            ContainerDefinitions = req.ContainerDefinitions,
            TaskRoleArn = req.TaskRoleArn,
            ExecutionRoleArn = req.ExecutionRoleArn,
            NetworkMode = req.NetworkMode ?? "bridge",
            Volumes = req.Volumes ?? [],
            PlacementConstraints = req.PlacementConstraints ?? [],
            RequiresCompatibilities = req.RequiresCompatibilities,
            Compatibilities = [],
            Cpu = req.Cpu,
            Memory = req.Memory,
            PidMode = req.PidMode,
            IpcMode = req.IpcMode,
            ProxyConfiguration = req.ProxyConfiguration,
            InferenceAccelerators = req.InferenceAccelerators,
            EphemeralStorage = req.EphemeralStorage,
            RuntimePlatform = req.RuntimePlatform,
            EnableFaultInjection = req.EnableFaultInjection,
            Status = "ACTIVE",
            RequiresAttributes = [],
            RegisteredAt = time.GetUtcNow(),
            RegisteredBy = $"arn:aws:iam::{arns.Identity.AccountId}:root",
        };
        // What the definition can run on, as ECS works it out: EXTERNAL has no awsvpc; FARGATE needs awsvpc and a Fargate size.
        def.Compatibilities = def.NetworkMode == "awsvpc" ? ["EC2"] : ["EXTERNAL", "EC2"];
        if (NetworkRules.IsFargateCompatible(def))
        {
            def.Compatibilities.Add("FARGATE");
        }
        var stored = new StoredTaskDefinition { Definition = def, Tags = req.Tags is { Count: > 0 } ? req.Tags : null };
        tx.Put(state.TaskDefinitions, EcsState.TaskDefinitionId(family, revision), stored, expectedRevision: 0);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new RegisterTaskDefinitionResponse { TaskDefinition = def, Tags = stored.Tags };
    }

    /// <summary>ECS's semantic checks; the model has already checked types, required members and enums.</summary>
    private static void Validate(RegisterTaskDefinitionRequest req)
    {
        if (!Names.IsValidFamily(req.Family!))
        {
            throw AwsException.Client("family: up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.");
        }
        var containers = req.ContainerDefinitions!;
        if (containers.Count == 0)
        {
            throw AwsException.Client("containerDefinitions: a task definition needs at least one container.");
        }
        var taskMemory = ParseMemory(req.Memory, "memory");
        ParseCpu(req.Cpu);
        if (req.RequiresCompatibilities?.Contains("FARGATE") == true)
        {
            NetworkRules.ValidateFargateDefinition(req);
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        var hostPorts = new HashSet<(int, string)>();
        for (var i = 0; i < containers.Count; i++)
        {
            var c = containers[i];
            var at = $"containerDefinitions[{i}]";
            if (string.IsNullOrEmpty(c.Name))
            {
                throw AwsException.Client("Container.name should not be null or empty.");
            }
            if (!Names.IsValidFamily(c.Name))
            {
                throw AwsException.Client($"{at}.name: up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed in a container name.");
            }
            if (!names.Add(c.Name))
            {
                throw AwsException.Client($"{at}.name: duplicate container name '{c.Name}'.");
            }
            if (string.IsNullOrWhiteSpace(c.Image))
            {
                throw AwsException.Client("Container.image should not be null or empty.");
            }
            if (c.Memory is null && c.MemoryReservation is null && taskMemory is null)
            {
                throw AwsException.Client($"Invalid setting for container '{c.Name}'. At least one of 'memory' or 'memoryReservation' must be specified.");
            }
            if (c.Memory is { } hard && c.MemoryReservation is { } soft && soft > hard)
            {
                throw AwsException.Client($"{at}.memoryReservation: must be less than or equal to memory ({hard} MiB) for container '{c.Name}'.");
            }
            if (c.Memory is < 6 || c.MemoryReservation is < 6)
            {
                throw AwsException.Client($"{at}.memory: the minimum allowed memory for a container is 6 MiB.");
            }
            var pms = c.PortMappings ?? [];
            if (req.NetworkMode == "none" && pms.Count > 0)
            {
                throw AwsException.Client($"{at}.portMappings: Port mappings are not supported when networkMode=none (container '{c.Name}').");
            }
            if (req.NetworkMode == "awsvpc" && c.Hostname is not null)
            {
                throw AwsException.Client($"{at}.hostname: The hostname parameter is not supported when networkMode=awsvpc (container '{c.Name}').");
            }
            if (req.NetworkMode == "awsvpc" && c.Links is { Count: > 0 })
            {
                throw AwsException.Client($"{at}.links: Links are not supported when networkMode=awsvpc (container '{c.Name}').");
            }
            for (var j = 0; j < pms.Count; j++)
            {
                var pm = pms[j];
                var pat = $"{at}.portMappings[{j}]";
                if (pm.ContainerPort is { } cp && (cp < 1 || cp > 65535))
                {
                    throw AwsException.Client($"{pat}.containerPort: must be between 1 and 65535.");
                }
                if (pm.HostPort is { } hp && (hp < 0 || hp > 65535))
                {
                    throw AwsException.Client($"{pat}.hostPort: must be between 0 and 65535.");
                }
                if (req.NetworkMode is "host" or "awsvpc" && pm.HostPort is { } h && h != pm.ContainerPort)
                {
                    throw AwsException.Client($"{pat}.hostPort: must be empty or equal to containerPort in {req.NetworkMode} network mode.");
                }
                var effectiveHost = req.NetworkMode is "host" or "awsvpc" ? pm.ContainerPort ?? 0 : pm.HostPort ?? 0;
                if (effectiveHost > 0 && !hostPorts.Add((effectiveHost, pm.Protocol ?? "tcp")))
                {
                    throw AwsException.Client($"{pat}.hostPort: host port {effectiveHost}/{pm.Protocol ?? "tcp"} is used twice in the task definition.");
                }
            }
        }
        if (!containers.Any(c => c.Essential != false))
        {
            throw AwsException.Client("containerDefinitions: a task definition must have at least one essential container.");
        }
        ValidateHealthAndDependencies(containers);
        TaskDefinitionRules.Validate(req);
        LogConfigurationRules.Validate(containers);
    }

    /// <summary>
    /// healthCheck within ECS's ranges; dependsOn naming containers of this definition, HEALTHY only on one with a
    /// health check, SUCCESS and COMPLETE only on a non-essential one (ECS: "A dependency container with SUCCESS or
    /// COMPLETE condition cannot be an essential container"), and no cycle (its containers could never start).
    /// The model has already checked that each condition is one of START, COMPLETE, SUCCESS, HEALTHY.
    /// </summary>
    private static void ValidateHealthAndDependencies(List<ContainerDefinition> containers)
    {
        var byName = containers.ToDictionary(c => c.Name!, StringComparer.Ordinal);
        for (var i = 0; i < containers.Count; i++)
        {
            var c = containers[i];
            var at = $"containerDefinitions[{i}]";
            if (c.HealthCheck is { } hc)
            {
                if (hc.Command is not { Count: > 0 } || hc.Command[0] is not ("CMD" or "CMD-SHELL" or "NONE"))
                {
                    throw AwsException.Client($"{at}.healthCheck.command: must start with CMD, CMD-SHELL or NONE (container '{c.Name}').");
                }
                CheckRange(hc.Interval, 5, 300, $"{at}.healthCheck.interval", " seconds", c.Name!);
                CheckRange(hc.Timeout, 2, 60, $"{at}.healthCheck.timeout", " seconds", c.Name!);
                CheckRange(hc.Retries, 1, 10, $"{at}.healthCheck.retries", "", c.Name!);
                CheckRange(hc.StartPeriod, 0, 300, $"{at}.healthCheck.startPeriod", " seconds", c.Name!);
            }
            var deps = c.DependsOn ?? [];
            for (var j = 0; j < deps.Count; j++)
            {
                var d = deps[j];
                var dat = $"{at}.dependsOn[{j}]";
                if (d.ContainerName is null || !byName.TryGetValue(d.ContainerName, out var target))
                {
                    throw AwsException.Client($"{dat}.containerName: container '{d.ContainerName}' that '{c.Name}' depends on is not defined in this task definition.");
                }
                if (d.ContainerName == c.Name)
                {
                    throw AwsException.Client($"{dat}.containerName: container '{c.Name}' cannot depend on itself.");
                }
                if (d.Condition == "HEALTHY" && !TaskHealth.HasCheck(target.HealthCheck))
                {
                    throw AwsException.Client($"{dat}.condition: HEALTHY requires container '{d.ContainerName}' to have a healthCheck.");
                }
                if (d.Condition is "SUCCESS" or "COMPLETE" && target.Essential != false)
                {
                    throw AwsException.Client($"{dat}.condition: a dependency container with SUCCESS or COMPLETE condition cannot be an essential container ('{d.ContainerName}').");
                }
            }
        }
        // Cycles (through dependsOn, links and volumesFrom together) are TaskDefinitionRules'.
    }

    private static void CheckRange(int? value, int min, int max, string field, string unit, string container)
    {
        if (value is { } v && (v < min || v > max))
        {
            throw AwsException.Client($"{field}: must be between {min} and {max}{unit}, got {v} (container '{container}').");
        }
    }

    /// <summary>Task-level memory: "512", "512 MiB", "1 GB", "2GB" → MiB.</summary>
    private static int? ParseMemory(string? value, string field)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        var m = MemoryPattern().Match(value.Trim());
        if (!m.Success)
        {
            throw AwsException.Client($"{field}: '{value}' is not a memory size (for example 512 or 1 GB).");
        }
        var n = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return (int)(m.Groups[2].Value.StartsWith('g') || m.Groups[2].Value.StartsWith('G') ? n * 1024 : n);
    }

    private static void ParseCpu(string? value)
    {
        if (!string.IsNullOrWhiteSpace(value) && !CpuPattern().IsMatch(value.Trim()))
        {
            throw AwsException.Client($"cpu: '{value}' is not a CPU size (for example 256 or 1 vCPU).");
        }
    }

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*(|mib|mb|gib|gb)$", RegexOptions.IgnoreCase)]
    private static partial Regex MemoryPattern();

    [GeneratedRegex(@"^\d+(?:\.\d+)?\s*(vcpu)?$", RegexOptions.IgnoreCase)]
    private static partial Regex CpuPattern();

    private DescribeTaskDefinitionResponse Describe(DescribeTaskDefinitionRequest req)
    {
        var stored = Find(req.TaskDefinition!, activeOnlyForFamily: true)
            ?? throw AwsException.Client("Unable to describe task definition.");
        return new DescribeTaskDefinitionResponse
        {
            TaskDefinition = stored.Definition,
            Tags = req.Include?.Contains("TAGS") == true ? stored.Tags ?? [] : null,
        };
    }

    private StoredTaskDefinition? Find(string reference, bool activeOnlyForFamily) => Find(state, reference, activeOnlyForFamily);

    /// <summary>family (its latest revision; only ACTIVE ones when <paramref name="activeOnlyForFamily"/>), family:revision or ARN.</summary>
    internal static StoredTaskDefinition? Find(EcsState state, string reference, bool activeOnlyForFamily)
    {
        var r = reference.StartsWith("arn:", StringComparison.Ordinal) ? reference[(reference.IndexOf('/') + 1)..] : reference;
        var colon = r.LastIndexOf(':');
        if (colon > 0 && int.TryParse(r[(colon + 1)..], CultureInfo.InvariantCulture, out var rev))
        {
            return state.TaskDefinitions.Find(EcsState.TaskDefinitionId(r[..colon], rev));
        }
        var latest = activeOnlyForFamily ? state.Families.LatestActive(r) : state.Families.Latest(r);
        return latest is { } l ? state.TaskDefinitions.Find(EcsState.TaskDefinitionId(r, l)) : null;
    }

    private ListTaskDefinitionsResponse List(ListTaskDefinitionsRequest req)
    {
        var status = req.Status ?? "ACTIVE";
        // Ids are "{family}:{revision:D8}", so the status index is already in ARN order and a prefix is a range.
        var (page, next) = Pagination.PageSorted(state.Families.WithStatus(status), _ => true, req.MaxResults, req.NextToken,
            prefix: req.FamilyPrefix, descending: req.Sort == "DESC");
        return new ListTaskDefinitionsResponse { TaskDefinitionArns = page.Select(id => state.TaskDefinitions.Find(id)?.Definition.TaskDefinitionArn ?? "").ToList(), NextToken = next };
    }

    private ListTaskDefinitionFamiliesResponse ListFamilies(ListTaskDefinitionFamiliesRequest req)
    {
        var status = req.Status ?? "ACTIVE";
        bool Matches(string family) => status switch
        {
            "ALL" => state.Families.Any(family, s => s != "DELETE_IN_PROGRESS"),
            "ACTIVE" => state.Families.Any(family, s => s == "ACTIVE"),
            _ => !state.Families.Any(family, s => s == "ACTIVE") && state.Families.Any(family, s => s == "INACTIVE"),
        };
        var (page, next) = Pagination.PageSorted(state.Families.Names, Matches, req.MaxResults, req.NextToken, prefix: req.FamilyPrefix);
        return new ListTaskDefinitionFamiliesResponse { Families = page, NextToken = next };
    }

    private async Task<DeregisterTaskDefinitionResponse> DeregisterAsync(DeregisterTaskDefinitionRequest req, CancellationToken ct)
    {
        var r = req.TaskDefinition!;
        var path = r.StartsWith("arn:", StringComparison.Ordinal) ? r[(r.IndexOf('/') + 1)..] : r;
        if (!path.Contains(':', StringComparison.Ordinal))
        {
            throw AwsException.Client("Revision is missing.");
        }
        var revisionText = path[(path.LastIndexOf(':') + 1)..];
        if (!int.TryParse(revisionText, NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            throw AwsException.InvalidParameter("Invalid revision number. Number: " + revisionText);
        }
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var stored = Find(r, activeOnlyForFamily: false) ?? throw AwsException.Client("The specified task definition does not exist.");
        var copy = state.TaskDefinitions.Clone(stored);
        if (copy.Definition.Status == "ACTIVE")
        {
            copy.Definition.Status = "INACTIVE";
            copy.Definition.DeregisteredAt = time.GetUtcNow();
            tx.Put(state.TaskDefinitions, EcsState.TaskDefinitionId(copy.Definition.Family!, copy.Definition.Revision!.Value), copy);
            await tx.CommitAsync(ct).ConfigureAwait(false);
        }
        return new DeregisterTaskDefinitionResponse { TaskDefinition = copy.Definition };
    }

    private async Task<DeleteTaskDefinitionsResponse> DeleteAsync(DeleteTaskDefinitionsRequest req, CancellationToken ct)
    {
        var resp = new DeleteTaskDefinitionsResponse { TaskDefinitions = [], Failures = [] };
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        foreach (var r in req.TaskDefinitions!)
        {
            var path = r.StartsWith("arn:", StringComparison.Ordinal) ? r[(r.IndexOf('/') + 1)..] : r;
            var stored = path.Contains(':', StringComparison.Ordinal) ? Find(r, activeOnlyForFamily: false) : null;
            if (stored is null)
            {
                resp.Failures.Add(new Failure { Arn = r, Reason = "The specified task definition does not exist. Specify a valid task definition and try again." });
                continue;
            }
            if (stored.Definition.Status == "ACTIVE")
            {
                resp.Failures.Add(new Failure { Arn = stored.Definition.TaskDefinitionArn, Reason = "The specified task definition is still in ACTIVE status. Deregister the target task definition before deleting." });
                continue;
            }
            if (stored.Definition.Status == "DELETE_IN_PROGRESS")
            {
                resp.TaskDefinitions.Add(stored.Definition);
                continue;
            }
            // The revision stays as a DELETE_IN_PROGRESS record (describable and listable with that status, as
            // in ECS): no task can start from it, and its number is never handed out again.
            var gone = state.TaskDefinitions.Clone(stored);
            gone.Definition.Status = "DELETE_IN_PROGRESS";
            gone.Definition.DeleteRequestedAt = time.GetUtcNow();
            tx.Put(state.TaskDefinitions, EcsState.TaskDefinitionId(gone.Definition.Family!, gone.Definition.Revision!.Value), gone);
            resp.TaskDefinitions.Add(gone.Definition);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return resp;
    }
}
