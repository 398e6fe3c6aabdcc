using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.Scheduling;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// The one check of placementConstraints / placementStrategy request members (RunTask, CreateService,
/// UpdateService) and of a task definition's placementConstraints: ECS's types, the fields each type takes,
/// its limits (10 constraints including the task definition's, 5 strategies), and memberOf expressions that
/// parse in the cluster query language. Bad input is an InvalidParameterException naming the member.
/// </summary>
public static class PlacementRules
{
    public const int MaxConstraints = 10;
    public const int MaxStrategies = 5;
    public const int MaxExpressionLength = 2000;
    public const int MaxFieldLength = 255;

    /// <param name="memberPrefix">Prepended to member names in messages, e.g. "" for a request's own members.</param>
    /// <param name="inheritedConstraints">Constraints that also count towards the limit (the task definition's, at RunTask).</param>
    public static (IReadOnlyList<PlacementConstraintSpec> Constraints, IReadOnlyList<PlacementStrategySpec> Strategies) Validate(
        IEnumerable<PlacementConstraint>? constraints, IEnumerable<PlacementStrategy>? strategies, string memberPrefix = "", int inheritedConstraints = 0)
        => (ValidateConstraints(constraints, memberPrefix, inheritedConstraints), ValidateStrategies(strategies, memberPrefix));

    public static IReadOnlyList<PlacementConstraintSpec> ValidateConstraints(IEnumerable<PlacementConstraint>? constraints, string memberPrefix = "", int inheritedConstraints = 0)
    {
        var list = constraints?.ToList() ?? [];
        if (list.Count + inheritedConstraints > MaxConstraints)
        {
            throw AwsException.InvalidParameter(inheritedConstraints > 0
                ? $"{memberPrefix}placementConstraints: at most {MaxConstraints} constraints per task, including the {inheritedConstraints} of the task definition; {list.Count} were given."
                : $"{memberPrefix}placementConstraints: at most {MaxConstraints} constraints; {list.Count} were given.");
        }
        var specs = new List<PlacementConstraintSpec>(list.Count);
        for (var i = 0; i < list.Count; i++)
        {
            var member = $"{memberPrefix}placementConstraints[{i}]";
            var c = list[i] ?? throw AwsException.InvalidParameter($"{member}: must not be null.");
            switch (c.Type)
            {
                case PlacementConstraintTypeValues.DistinctInstance:
                    if (!string.IsNullOrEmpty(c.Expression))
                    {
                        throw AwsException.InvalidParameter($"{member}.expression: an expression cannot be specified for the distinctInstance constraint type.");
                    }
                    specs.Add(new PlacementConstraintSpec(c.Type, null));
                    break;
                case PlacementConstraintTypeValues.MemberOf:
                    specs.Add(new PlacementConstraintSpec(c.Type, CheckExpression(c.Expression, member)));
                    break;
                default:
                    throw AwsException.InvalidParameter(c.Type is null
                        ? $"{member}.type: must be specified (distinctInstance or memberOf)."
                        : $"{member}.type: '{c.Type}' is not a placement constraint type (distinctInstance or memberOf).");
            }
        }
        return specs;
    }

    public static IReadOnlyList<PlacementStrategySpec> ValidateStrategies(IEnumerable<PlacementStrategy>? strategies, string memberPrefix = "")
    {
        var list = strategies?.ToList() ?? [];
        if (list.Count > MaxStrategies)
        {
            throw AwsException.InvalidParameter($"{memberPrefix}placementStrategy: at most {MaxStrategies} strategies; {list.Count} were given.");
        }
        var specs = new List<PlacementStrategySpec>(list.Count);
        for (var i = 0; i < list.Count; i++)
        {
            var member = $"{memberPrefix}placementStrategy[{i}]";
            var s = list[i] ?? throw AwsException.InvalidParameter($"{member}: must not be null.");
            if (s.Field is { Length: > MaxFieldLength })
            {
                throw AwsException.InvalidParameter($"{member}.field: at most {MaxFieldLength} characters.");
            }
            switch (s.Type)
            {
                case PlacementStrategyTypeValues.Binpack:
                    if (s.Field is not ("cpu" or "memory"))
                    {
                        throw AwsException.InvalidParameter(s.Field is null
                            ? $"{member}.field: must be specified for the binpack strategy (cpu or memory)."
                            : $"{member}.field: '{s.Field}' is not valid for the binpack strategy (cpu or memory).");
                    }
                    specs.Add(new PlacementStrategySpec(s.Type, s.Field));
                    break;
                case PlacementStrategyTypeValues.Spread:
                    if (s.Field is null || !(s.Field is "instanceId" or "host"
                        || (s.Field.StartsWith("attribute:", StringComparison.Ordinal) && s.Field.Length > "attribute:".Length)))
                    {
                        throw AwsException.InvalidParameter(s.Field is null
                            ? $"{member}.field: must be specified for the spread strategy (instanceId, host or attribute:NAME)."
                            : $"{member}.field: '{s.Field}' is not valid for the spread strategy (instanceId, host or attribute:NAME).");
                    }
                    specs.Add(new PlacementStrategySpec(s.Type, s.Field));
                    break;
                case PlacementStrategyTypeValues.Random:
                    // ECS ignores a field given with random; so does Berth (and echoes it, as ECS does for services).
                    specs.Add(new PlacementStrategySpec(s.Type, s.Field));
                    break;
                default:
                    throw AwsException.InvalidParameter(s.Type is null
                        ? $"{member}.type: must be specified (random, spread or binpack)."
                        : $"{member}.type: '{s.Type}' is not a placement strategy type (random, spread or binpack).");
            }
        }
        return specs;
    }

    /// <summary>RegisterTaskDefinition's placementConstraints: memberOf only, at most 10.</summary>
    public static void ValidateDefinitionConstraints(IEnumerable<TaskDefinitionPlacementConstraint>? constraints, string memberPrefix = "")
    {
        var list = constraints?.ToList() ?? [];
        if (list.Count > MaxConstraints)
        {
            throw AwsException.InvalidParameter($"{memberPrefix}placementConstraints: at most {MaxConstraints} constraints; {list.Count} were given.");
        }
        for (var i = 0; i < list.Count; i++)
        {
            var member = $"{memberPrefix}placementConstraints[{i}]";
            var c = list[i] ?? throw AwsException.InvalidParameter($"{member}: must not be null.");
            if (c.Type != TaskDefinitionPlacementConstraintTypeValues.MemberOf)
            {
                throw AwsException.InvalidParameter($"{member}.type: a task definition only takes memberOf constraints{(c.Type is null ? "" : $", not '{c.Type}'")}.");
            }
            CheckExpression(c.Expression, member);
        }
    }

    /// <summary>The task definition's memberOf constraints, which apply to every task of it as well as the request's own.</summary>
    /// <remarks>A runtimePlatform.cpuArchitecture adds one more, as in ECS: only instances of that architecture.</remarks>
    public static IReadOnlyList<PlacementConstraintSpec> OfDefinition(TaskDefinition definition)
    {
        var list = definition.PlacementConstraints is { Count: > 0 } own
            ? own.Where(c => c.Type == TaskDefinitionPlacementConstraintTypeValues.MemberOf && !string.IsNullOrWhiteSpace(c.Expression))
                .Select(c => new PlacementConstraintSpec(PlacementConstraintTypeValues.MemberOf, c.Expression)).ToList()
            : [];
        if (definition.RuntimePlatform?.CpuArchitecture is { Length: > 0 } arch)
        {
            // The agents report ecs.cpu-architecture as x86_64 or arm64.
            list.Add(new PlacementConstraintSpec(PlacementConstraintTypeValues.MemberOf,
                $"attribute:ecs.cpu-architecture == {(arch == "ARM64" ? "arm64" : "x86_64")}"));
        }
        return list;
    }

    private static string CheckExpression(string? expression, string member)
    {
        if (string.IsNullOrWhiteSpace(expression))
        {
            throw AwsException.InvalidParameter($"{member}.expression: must be specified for the memberOf constraint type.");
        }
        if (expression.Length > MaxExpressionLength)
        {
            throw AwsException.InvalidParameter($"{member}.expression: at most {MaxExpressionLength} characters.");
        }
        if (!QueryExpression.TryParse(expression, out _, out var error))
        {
            throw AwsException.InvalidParameter($"{member}.expression: {error}");
        }
        return expression;
    }
}
