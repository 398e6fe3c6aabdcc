using System.Text.Json.Serialization;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.Core;

namespace Berth.ControlPlane.Domain;

// Capacity providers as Berth maps them: an Auto Scaling group capacity provider names a group of container
// instances, the ones whose agents carry the attribute ecs.capacity-provider = NAME (`berth agent
// --capacity-provider NAME`). The Auto Scaling group ARN and the managed scaling, termination protection and
// draining settings are stored and reported as ECS does, for the auto scaling work to come; nothing acts on them yet.

/// <summary>One capacity provider, as stored under ecs/{account}/{region}/capacity-providers/{name}.</summary>
public sealed record CapacityProviderRecord
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    /// <summary>ACTIVE, or INACTIVE once deleted (kept describable by name, as ECS does).</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = "ACTIVE";
    [JsonPropertyName("autoScalingGroupArn")] public required string AutoScalingGroupArn { get; init; }
    [JsonPropertyName("managedScaling")] public ManagedScalingRecord ManagedScaling { get; init; } = new();
    [JsonPropertyName("managedTerminationProtection")] public string ManagedTerminationProtection { get; init; } = "DISABLED";
    [JsonPropertyName("managedDraining")] public string ManagedDraining { get; init; } = "ENABLED";
    [JsonPropertyName("updateStatus")] public string? UpdateStatus { get; init; }
    [JsonPropertyName("updateStatusReason")] public string? UpdateStatusReason { get; init; }
    [JsonPropertyName("tags")] public IReadOnlyList<ResourceTagRecord>? Tags { get; init; }
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>An Auto Scaling group capacity provider's managedScaling, with ECS's defaults filled in.</summary>
public sealed record ManagedScalingRecord
{
    [JsonPropertyName("status")] public string Status { get; init; } = "DISABLED";
    [JsonPropertyName("targetCapacity")] public int TargetCapacity { get; init; } = 100;
    [JsonPropertyName("minimumScalingStepSize")] public int MinimumScalingStepSize { get; init; } = 1;
    [JsonPropertyName("maximumScalingStepSize")] public int MaximumScalingStepSize { get; init; } = 10000;
    [JsonPropertyName("instanceWarmupPeriod")] public int InstanceWarmupPeriod { get; init; } = 300;
}

/// <summary>
/// ECS's rules for capacity providers and capacity provider strategies, with ECS's words, and the split of a
/// launch's tasks over the providers of a strategy.
/// </summary>
public static class CapacityProviders
{
    /// <summary>The instance attribute that puts a container instance in a capacity provider (set by `berth agent --capacity-provider`).</summary>
    public const string Attribute = "ecs.capacity-provider";

    public const string Fargate = "FARGATE";
    public const string FargateSpot = "FARGATE_SPOT";

    /// <summary>ECS's limit of capacity providers associated with one cluster.</summary>
    public const int MaxPerCluster = 20;

    public const string NotFoundMessage = "The specified capacity provider does not exist. Specify a valid name or ARN and try again.";
    public const string NotAssociatedMessage = "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.";
    public const string InUseMessage = "The specified capacity provider is in use and cannot be removed.";
    public const string MixMessage = "A capacity provider strategy cannot contain a mix of capacity providers using Auto Scaling groups and Fargate providers. Specify one or the other and try again.";

    public static bool IsBuiltIn(string name) => name is Fargate or FargateSpot;

    /// <summary>ClientException as ECS gives it for a capacity provider that does not exist.</summary>
    public static AwsException NotFound() => AwsException.Client(NotFoundMessage);

    /// <summary>The updateStatusReason of a DeleteCapacityProvider refused because a cluster still has the provider.</summary>
    public static string DeleteFailedReason(string cluster)
        => $"The capacity provider cannot be deleted because it is associated with cluster: {cluster}. Remove the capacity provider from the cluster and try again.";

    /// <summary>
    /// The strategy a RunTask or CreateService runs under: the one given; with neither a launch type nor a strategy,
    /// the cluster's default capacity provider strategy (as ECS does); null for a launch type.
    /// </summary>
    public static List<CapacityProviderStrategyItem>? Effective(ClusterRecord cluster, string? launchType, List<CapacityProviderStrategyItem>? strategy, out bool isDefault)
    {
        isDefault = false;
        if (strategy is { Count: > 0 })
        {
            return strategy;
        }
        if (launchType is null && cluster.DefaultCapacityProviderStrategy is { Count: > 0 } d)
        {
            isDefault = true;
            return d.Select(s => new CapacityProviderStrategyItem { CapacityProvider = s.CapacityProvider, Weight = s.Weight, Base = s.Base }).ToList();
        }
        return null;
    }

    /// <summary>
    /// A strategy against what exists: every provider FARGATE, FARGATE_SPOT or an ACTIVE capacity provider of the
    /// account (ClientException otherwise), an Auto Scaling group provider associated with the cluster, no mix of
    /// the two kinds, and, with several providers, one with a weight above zero. Returns the names (ARNs resolved).
    /// </summary>
    /// <param name="find">The stored capacity provider of a name; null when there is none.</param>
    /// <param name="associated">The cluster's capacityProviders (null: not checked, as for CreateCluster's own list).</param>
    public static List<string> Check(IReadOnlyList<CapacityProviderStrategyItem> strategy, Func<string, CapacityProviderRecord?> find,
        IReadOnlyCollection<string>? associated, bool isDefault, string member = "capacityProviderStrategy")
    {
        var names = new List<string>(strategy.Count);
        for (var i = 0; i < strategy.Count; i++)
        {
            var item = strategy[i];
            if (string.IsNullOrEmpty(item.CapacityProvider))
            {
                throw AwsException.InvalidParameter($"{member}[{i}].capacityProvider: must be specified.");
            }
            var name = Arns.NameOf(item.CapacityProvider);
            names.Add(name);
            if (IsBuiltIn(name))
            {
                // Berth runs FARGATE and FARGATE_SPOT on any agent of the cluster, associated or not.
                continue;
            }
            if (find(name) is not { Status: "ACTIVE" })
            {
                throw NotFound();
            }
            if (associated is not null && !associated.Contains(name))
            {
                throw AwsException.InvalidParameter(NotAssociatedMessage);
            }
        }
        if (names.Any(IsBuiltIn) && !names.All(IsBuiltIn))
        {
            throw AwsException.InvalidParameter(MixMessage);
        }
        if (strategy.Count > 1 && strategy.All(s => (s.Weight ?? 0) == 0))
        {
            throw AwsException.InvalidParameter(isDefault
                ? "There are no capacity providers with a weight value greater than zero defined in the default capacity provider strategy. At least one capacity provider must have a weight value greater than zero specified. Update the cluster's default capacity provider strategy or specify a valid capacity provider strategy and try again."
                : "There are no capacity providers with a weight value greater than zero defined in the capacity provider strategy. At least one capacity provider must have a weight value greater than zero specified. Specify a valid capacity provider strategy and try again.");
        }
        return names;
    }

    /// <summary>
    /// The capacity provider of each of <paramref name="count"/> new tasks, given the tasks each provider already
    /// runs (a service's live tasks; nothing for RunTask), as ECS splits them: the provider with a base gets tasks
    /// until it runs its base; after that every task goes by weight. Tasks counted against the base do not count
    /// towards the weights. Each next weighted task goes to the provider with the highest weight / (tasks + 1)
    /// (ties: the higher weight, then the earlier in the strategy), so after every round of the weights' sum the
    /// tasks are in exactly the weights' proportion, and in between no provider is more than one task off it.
    /// A provider of weight 0 takes no weighted task; with no weight at all (a single provider of weight 0), that
    /// provider takes every task.
    /// </summary>
    public static IReadOnlyList<string> Split(IReadOnlyList<CapacityProviderStrategyItem> strategy, int count, IReadOnlyDictionary<string, int>? running = null)
    {
        var n = strategy.Count;
        var names = new string[n];
        var weights = new int[n];
        var taken = new int[n];
        var baseAt = -1;
        var baseLeft = 0;
        for (var i = 0; i < n; i++)
        {
            names[i] = Arns.NameOf(strategy[i].CapacityProvider ?? "");
            weights[i] = Math.Max(0, strategy[i].Weight ?? 0);
            var already = running?.GetValueOrDefault(names[i]) ?? 0;
            if (strategy[i].Base is > 0 && baseAt < 0)
            {
                baseAt = i;
                var inBase = Math.Min(already, strategy[i].Base!.Value);
                baseLeft = strategy[i].Base!.Value - inBase;
                already -= inBase;
            }
            taken[i] = already;
        }
        var anyWeight = weights.Any(w => w > 0);
        var result = new List<string>(count);
        for (var t = 0; t < count; t++)
        {
            if (baseLeft > 0)
            {
                result.Add(names[baseAt]);
                baseLeft--;
                continue;
            }
            if (!anyWeight)
            {
                result.Add(names[baseAt >= 0 ? baseAt : 0]);
                continue;
            }
            var best = -1;
            for (var i = 0; i < n; i++)
            {
                if (weights[i] == 0)
                {
                    continue;
                }
                if (best < 0)
                {
                    best = i;
                    continue;
                }
                // weights[i] / (taken[i] + 1) against weights[best] / (taken[best] + 1), in integers.
                var lhs = (long)weights[i] * (taken[best] + 1);
                var rhs = (long)weights[best] * (taken[i] + 1);
                if (lhs > rhs || (lhs == rhs && weights[i] > weights[best]))
                {
                    best = i;
                }
            }
            result.Add(names[best]);
            taken[best]++;
        }
        return result;
    }

    /// <summary>A stored strategy in the wire shape <see cref="Split"/> and <see cref="Check"/> take.</summary>
    public static List<CapacityProviderStrategyItem> Items(IEnumerable<CapacityProviderStrategyRecord> records)
        => records.Select(r => new CapacityProviderStrategyItem { CapacityProvider = r.CapacityProvider, Weight = r.Weight, Base = r.Base }).ToList();

    /// <summary>The capacity provider an instance belongs to (its ecs.capacity-provider attribute); null for none.</summary>
    public static string? Of(IReadOnlyDictionary<string, string> attributes)
        => attributes.TryGetValue(Attribute, out var v) && !string.IsNullOrEmpty(v) ? v : null;
}
