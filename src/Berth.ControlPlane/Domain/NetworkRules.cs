using System.Globalization;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.Scheduling;

namespace Berth.ControlPlane.Domain;

/// <summary>A task's or service's awsvpcConfiguration as stored (subnets and security groups are EC2 ids Berth reports back, never owns).</summary>
public sealed record AwsvpcRecord
{
    [JsonPropertyName("subnets")] public IReadOnlyList<string> Subnets { get; init; } = [];
    [JsonPropertyName("securityGroups")] public IReadOnlyList<string>? SecurityGroups { get; init; }
    [JsonPropertyName("assignPublicIp")] public string AssignPublicIp { get; init; } = "DISABLED";

    public NetworkConfiguration ToWire() => new()
    {
        AwsvpcConfiguration = new AwsVpcConfiguration { Subnets = [.. Subnets], SecurityGroups = SecurityGroups?.ToList() ?? [], AssignPublicIp = AssignPublicIp },
    };
}

/// <summary>What a RunTask/StartTask/CreateService launch type or capacity provider strategy comes to.</summary>
public sealed record LaunchKind(string LaunchType, string? PlatformVersion, IReadOnlyList<string>? CapacityProviders)
{
    public static readonly LaunchKind Ec2 = new("EC2", null, null);

    public bool IsFargate => LaunchType == "FARGATE";
}

/// <summary>
/// ECS's rules for network configuration, network modes and Fargate, with ECS's words. Subnets and security groups
/// are EC2's: Berth checks that the ids are well formed and reports them back (as the load balancer does with VPCs).
/// </summary>
public static partial class NetworkRules
{
    public const int MaxSubnets = 16;
    public const int MaxSecurityGroups = 5;

    /// <summary>The Fargate platform version LATEST resolves to (Linux).</summary>
    public const string LatestPlatformVersion = "1.4.0";

    private static readonly HashSet<string> PlatformVersions = new(StringComparer.Ordinal) { "LATEST", "1.4.0", "1.3.0" };

    /// <summary>
    /// Checks <paramref name="nc"/> against the task definition's network mode; the stored form for awsvpc, null otherwise.
    /// </summary>
    public static AwsvpcRecord? Validate(TaskDefinition def, NetworkConfiguration? nc, LaunchKind launch)
    {
        var awsvpc = def.NetworkMode == "awsvpc";
        if (nc?.AwsvpcConfiguration is not { } c)
        {
            if (awsvpc)
            {
                throw AwsException.InvalidParameter("Network Configuration must be provided when networkMode 'awsvpc' is specified.");
            }
            return null;
        }
        if (!awsvpc)
        {
            throw AwsException.InvalidParameter("Network Configuration is not valid for the given networkMode of this task definition.");
        }
        return ValidateAwsvpc(c, launch);
    }

    /// <summary>The awsvpcConfiguration on its own (UpdateService checks it before it knows the definition).</summary>
    public static AwsvpcRecord ValidateAwsvpc(AwsVpcConfiguration c, LaunchKind launch)
    {
        var subnets = c.Subnets ?? [];
        if (subnets.Count == 0)
        {
            throw AwsException.InvalidParameter("subnets can not be empty.");
        }
        if (subnets.Count > MaxSubnets)
        {
            throw AwsException.InvalidParameter($"subnets can have at most {MaxSubnets} items.");
        }
        foreach (var s in subnets)
        {
            if (!SubnetId().IsMatch(s ?? ""))
            {
                throw AwsException.InvalidParameter($"Error retrieving subnet information for [{s}]: The subnet ID '{s}' is malformed (networkConfiguration.awsvpcConfiguration.subnets: expected subnet- followed by 8 or 17 hexadecimal digits).");
            }
        }
        var groups = c.SecurityGroups;
        if (groups is { Count: > MaxSecurityGroups })
        {
            throw AwsException.InvalidParameter($"securityGroups can have at most {MaxSecurityGroups} items.");
        }
        foreach (var g in groups ?? [])
        {
            if (!SecurityGroupId().IsMatch(g ?? ""))
            {
                throw AwsException.InvalidParameter($"Error retrieving security group information for [{g}]: The security group ID '{g}' is malformed (networkConfiguration.awsvpcConfiguration.securityGroups: expected sg- followed by 8 or 17 hexadecimal digits).");
            }
        }
        var assign = c.AssignPublicIp ?? "DISABLED";
        if (assign == "ENABLED" && !launch.IsFargate)
        {
            throw AwsException.InvalidParameter("Assign public IP is not supported for this launch type.");
        }
        return new AwsvpcRecord
        {
            Subnets = subnets.Distinct(StringComparer.Ordinal).ToList(),
            SecurityGroups = groups is { Count: > 0 } ? groups.Distinct(StringComparer.Ordinal).ToList() : null,
            AssignPublicIp = assign,
        };
    }

    /// <summary>
    /// RunTask/StartTask/CreateService: launchType, capacityProviderStrategy and platformVersion as ECS takes them.
    /// FARGATE and FARGATE_SPOT run on Berth's own agents as awsvpc tasks; Auto Scaling group capacity providers
    /// (whose existence <see cref="CapacityProviders.Check"/> checks) run EC2 tasks on their own instances.
    /// </summary>
    public static LaunchKind Launch(string? launchType, List<CapacityProviderStrategyItem>? strategy, string? platformVersion, TaskDefinition? def,
        string member = "capacityProviderStrategy")
    {
        if (launchType is not null && strategy is { Count: > 0 })
        {
            throw AwsException.InvalidParameter("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.");
        }
        LaunchKind kind;
        if (strategy is { Count: > 0 })
        {
            if (strategy.Count > 20)
            {
                throw AwsException.InvalidParameter($"{member}: at most 20 capacity providers.");
            }
            var names = new List<string>();
            for (var i = 0; i < strategy.Count; i++)
            {
                var item = strategy[i];
                if (string.IsNullOrEmpty(item.CapacityProvider))
                {
                    throw AwsException.InvalidParameter($"{member}[{i}].capacityProvider: must be specified.");
                }
                if (item.Weight is < 0 or > 1000)
                {
                    throw AwsException.InvalidParameter($"{member}[{i}].weight: must be between 0 and 1000.");
                }
                if (item.Base is < 0 or > 100000)
                {
                    throw AwsException.InvalidParameter($"{member}[{i}].base: must be between 0 and 100000.");
                }
                var name = Berth.Core.Arns.NameOf(item.CapacityProvider);
                if (names.Contains(name))
                {
                    throw AwsException.InvalidParameter($"{member}[{i}].capacityProvider: '{item.CapacityProvider}' is given twice.");
                }
                names.Add(name);
            }
            if (strategy.Count(s => s.Base is > 0) > 1)
            {
                throw AwsException.InvalidParameter($"{member}: a base value can be set for only one capacity provider.");
            }
            if (strategy.All(s => (s.Weight ?? 0) == 0) && strategy.All(s => (s.Base ?? 0) == 0) && strategy.Count > 1)
            {
                throw AwsException.InvalidParameter($"{member}: at least one capacity provider must have a weight greater than 0.");
            }
            // FARGATE and FARGATE_SPOT run as Fargate tasks; Auto Scaling group providers (CapacityProviders.Check
            // says whether they exist) run as EC2 tasks on their own container instances. A strategy is one or the other.
            var fargate = names.Count(CapacityProviders.IsBuiltIn);
            if (fargate > 0 && fargate < names.Count)
            {
                var first = names.FindIndex(n => CapacityProviders.IsBuiltIn(n) != CapacityProviders.IsBuiltIn(names[0]));
                throw AwsException.InvalidParameter($"{member}[{first}].capacityProvider: {CapacityProviders.MixMessage}");
            }
            kind = new LaunchKind(fargate > 0 ? "FARGATE" : "EC2", null, names);
        }
        else
        {
            kind = launchType switch
            {
                null or "EC2" => LaunchKind.Ec2,
                "FARGATE" => new LaunchKind("FARGATE", null, null),
                _ => throw AwsException.InvalidParameter($"launchType: Berth runs the EC2 and FARGATE launch types; {launchType} is not available."),
            };
        }
        if (platformVersion is not null)
        {
            if (!kind.IsFargate)
            {
                throw AwsException.InvalidParameter("The platform version must be null when specifying an EC2 launch type.");
            }
            if (!PlatformVersions.Contains(platformVersion))
            {
                throw AwsException.InvalidParameter($"platformVersion: '{platformVersion}' is not a Fargate Linux platform version (LATEST, 1.4.0 or 1.3.0).");
            }
        }
        if (kind.IsFargate)
        {
            kind = kind with { PlatformVersion = platformVersion is null or "LATEST" ? LatestPlatformVersion : platformVersion };
            if (def is not null && !IsFargateCompatible(def))
            {
                throw AwsException.InvalidParameter("Task definition does not support launch_type FARGATE.");
            }
        }
        return kind;
    }

    /// <summary>The capacity provider of each of <paramref name="count"/> tasks under a strategy (<see cref="CapacityProviders.Split"/>); nulls without one.</summary>
    public static IReadOnlyList<string?> Spread(LaunchKind kind, List<CapacityProviderStrategyItem>? strategy, int count)
        => kind.CapacityProviders is null || strategy is not { Count: > 0 }
            ? Enumerable.Repeat<string?>(null, count).ToList()
            : [.. CapacityProviders.Split(strategy, count)];

    /// <summary>A definition Fargate can run: awsvpc, task-level cpu and memory in one of Fargate's combinations.</summary>
    public static bool IsFargateCompatible(TaskDefinition def)
        => def.NetworkMode == "awsvpc" && FargateSizeError(def.Cpu, def.Memory) is null
        && !(def.Volumes ?? []).Any(v => v.Host?.SourcePath is not null);

    /// <summary>RegisterTaskDefinition with requiresCompatibilities FARGATE: ECS's checks and words (ClientException).</summary>
    public static void ValidateFargateDefinition(RegisterTaskDefinitionRequest req)
    {
        if ((req.NetworkMode ?? "bridge") != "awsvpc")
        {
            throw AwsException.Client("Fargate only supports network mode ‘awsvpc’.");
        }
        if (string.IsNullOrWhiteSpace(req.Cpu))
        {
            throw AwsException.Client("Fargate requires that 'cpu' be defined at the task level.");
        }
        if (string.IsNullOrWhiteSpace(req.Memory))
        {
            throw AwsException.Client("Fargate requires that 'memory' be defined at the task level.");
        }
        if (FargateSizeError(req.Cpu, req.Memory) is { } error)
        {
            throw AwsException.Client(error);
        }
        var volumes = req.Volumes ?? [];
        for (var i = 0; i < volumes.Count; i++)
        {
            if (volumes[i].Host?.SourcePath is not null)
            {
                throw AwsException.Client($"volumes[{i}].host.sourcePath: Fargate compatible task definitions do not support sourcePath (volume '{volumes[i].Name}').");
            }
        }
        var containers = req.ContainerDefinitions ?? [];
        for (var i = 0; i < containers.Count; i++)
        {
            if (containers[i].Links is { Count: > 0 })
            {
                throw AwsException.Client($"containerDefinitions[{i}].links: links are not supported when networkMode=awsvpc.");
            }
        }
    }

    /// <summary>Null when cpu/memory are one of Fargate's Linux combinations; ECS's message otherwise.</summary>
    public static string? FargateSizeError(string? cpuText, string? memoryText)
    {
        var cpu = Reservations.ParseUnits(cpuText);
        var memory = Reservations.ParseUnits(memoryText);
        if (cpu is null || memory is null)
        {
            return $"No Fargate configuration exists for given values: {cpuText} CPU, {memoryText} memory. See the Amazon ECS documentation for the valid values.";
        }
        var (min, max, step) = cpu.Value switch
        {
            256 => (512, 2048, 512), // 512, 1024, 2048: 1536 is not offered
            512 => (1024, 4096, 1024),
            1024 => (2048, 8192, 1024),
            2048 => (4096, 16384, 1024),
            4096 => (8192, 30720, 1024),
            8192 => (16384, 61440, 4096),
            16384 => (32768, 122880, 8192),
            _ => (0, -1, 1),
        };
        var ok = memory >= min && memory <= max && (memory - min) % step == 0 && !(cpu == 256 && memory == 1536);
        return ok ? null : string.Create(CultureInfo.InvariantCulture,
            $"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid values.");
    }

    /// <summary>The attachment id of an awsvpc task's ENI: derived from the task id, so nothing to store.</summary>
    public static string AttachmentId(string taskId) => TaskViews.ContainerUuid(taskId, "~eni");

    /// <summary>An ENI id for the task, <c>eni-</c> and 17 hex digits as EC2's, derived from the task id.</summary>
    public static string NetworkInterfaceId(string taskId)
        => "eni-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(taskId + "/eni")))[..17];

    /// <summary>EC2's private DNS name for an address: ip-10-0-0-1.ec2.internal in us-east-1, ip-....REGION.compute.internal elsewhere.</summary>
    public static string PrivateDnsName(string ip, string region)
        => "ip-" + ip.Replace('.', '-') + (region == "us-east-1" ? ".ec2.internal" : $".{region}.compute.internal");

    [GeneratedRegex("^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")]
    private static partial Regex SubnetId();

    [GeneratedRegex("^sg-([0-9a-f]{8}|[0-9a-f]{17})$")]
    private static partial Regex SecurityGroupId();
}
