using System.Diagnostics.CodeAnalysis;

namespace Berth.Core;

/// <summary>Builds and parses the ARNs of every resource Berth serves, in one place.</summary>
public sealed class Arns(BerthIdentity identity)
{
    public BerthIdentity Identity { get; } = identity;

    private string Prefix(string service) => $"arn:aws:{service}:{Identity.Region}:{Identity.AccountId}:";

    public string Cluster(string name) => Prefix("ecs") + "cluster/" + name;
    public string TaskDefinition(string family, int revision) => Prefix("ecs") + $"task-definition/{family}:{revision}";
    public string Task(string cluster, string id) => Prefix("ecs") + $"task/{cluster}/{id}";
    public string Service(string cluster, string name) => Prefix("ecs") + $"service/{cluster}/{name}";
    public string ServiceDeployment(string cluster, string service, string id) => Prefix("ecs") + $"service-deployment/{cluster}/{service}/{id}";
    public string ServiceRevision(string cluster, string service, string id) => Prefix("ecs") + $"service-revision/{cluster}/{service}/{id}";
    public string ContainerInstance(string cluster, string id) => Prefix("ecs") + $"container-instance/{cluster}/{id}";
    public string CapacityProvider(string name) => Prefix("ecs") + "capacity-provider/" + name;
    public string EcrRepository(string name) => Prefix("ecr") + "repository/" + name;

    /// <summary>Splits an ECS ARN into its resource type and the path after it; null when it is not one of ours.</summary>
    public static bool TryParse(string arn, [NotNullWhen(true)] out ParsedArn? parsed)
    {
        parsed = null;
        // arn:aws:SERVICE:REGION:ACCOUNT:TYPE/PATH
        var parts = arn.Split(':', 6);
        if (parts.Length != 6 || parts[0] != "arn" || parts[1].Length == 0 || parts[2].Length == 0)
        {
            return false;
        }
        var resource = parts[5];
        var slash = resource.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == resource.Length - 1)
        {
            return false;
        }
        parsed = new ParsedArn(parts[2], parts[3], parts[4], resource[..slash], resource[(slash + 1)..]);
        return true;
    }

    /// <summary>The last path segment of a name-or-ARN reference ("web" for both "web" and ".../cluster/web").</summary>
    public static string NameOf(string nameOrArn)
    {
        if (!nameOrArn.StartsWith("arn:", StringComparison.Ordinal))
        {
            return nameOrArn;
        }
        var slash = nameOrArn.LastIndexOf('/');
        return slash < 0 ? nameOrArn : nameOrArn[(slash + 1)..];
    }
}

public sealed record ParsedArn(string Service, string Region, string Account, string ResourceType, string Path);
