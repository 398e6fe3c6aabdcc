using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using Berth.Scheduling;

namespace Berth.ControlPlane.Ecs;

/// <summary>Read helpers shared by the task and container-instance operations and the agent gateway.</summary>
internal static class TaskQueries
{
    public static readonly string[] EcsReservedPorts = ["22", "2375", "2376", "51678", "51679"];

    /// <summary>Name of an existing ACTIVE cluster; ClusterNotFoundException otherwise.</summary>
    public static string ResolveCluster(EcsState state, string? nameOrArn)
    {
        var name = string.IsNullOrEmpty(nameOrArn) ? "default" : Arns.NameOf(nameOrArn);
        if (state.Clusters.Find(name) is not { Status: "ACTIVE" })
        {
            throw new AwsException("ClusterNotFoundException", "Cluster not found.");
        }
        return name;
    }

    /// <summary>family, family:revision or ARN; a bare family means its latest ACTIVE revision.</summary>
    public static TaskDefinition ResolveTaskDefinition(EcsState state, string? reference)
    {
        if (string.IsNullOrEmpty(reference))
        {
            throw AwsException.InvalidParameter("taskDefinition: must be specified.");
        }
        var found = TaskDefinitionOperations.Find(state, reference, activeOnlyForFamily: true)?.Definition;
        if (found is null)
        {
            throw new AwsException("ClientException", "Unable to describe task definition.");
        }
        if (found.Status != "ACTIVE")
        {
            throw new AwsException("ClientException", "TaskDefinition is inactive");
        }
        return found;
    }

    public static TaskDefinition? DefinitionOf(EcsState state, EcsTask task)
    {
        if (task.TaskDefinitionArn is null)
        {
            return null;
        }
        var r = task.TaskDefinitionArn[(task.TaskDefinitionArn.IndexOf('/') + 1)..];
        var colon = r.LastIndexOf(':');
        return colon > 0 && int.TryParse(r[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var rev)
            ? state.TaskDefinitions.Find(EcsState.TaskDefinitionId(r[..colon], rev))?.Definition
            : null;
    }

    /// <summary>Tasks on an instance that still hold its resources (everything not yet STOPPED).</summary>
    public static IEnumerable<EcsTask> LiveTasksOn(EcsState state, string instanceArn)
        => state.Tasks.All.Select(v => v.Value).Where(t => t.ContainerInstanceArn == instanceArn && t.LastStatus != "STOPPED");

    public static TaskReservation ReservationOf(EcsState state, EcsTask task)
    {
        var def = DefinitionOf(state, task);
        if (def is null)
        {
            return new TaskReservation(0, 0, []);
        }
        var r = Reservations.For(def, task.Overrides);
        // The task's own cpu/memory strings were fixed at launch; they win over the definition.
        return r with
        {
            Cpu = Reservations.ParseUnits(task.Cpu) ?? r.Cpu,
            Memory = Reservations.ParseUnits(task.Memory) ?? r.Memory,
        };
    }

    public static int RegisteredInt(ContainerInstance i, string name)
        => i.RegisteredResources?.FirstOrDefault(r => r.Name == name)?.IntegerValue ?? 0;

    public static List<string> RegisteredSet(ContainerInstance i, string name)
        => i.RegisteredResources?.FirstOrDefault(r => r.Name == name)?.StringSetValue ?? [];

    public static InstanceCandidate Candidate(EcsState state, ContainerInstance i)
    {
        var live = LiveTasksOn(state, i.ContainerInstanceArn!).ToList();
        var reservations = live.Select(t => ReservationOf(state, t)).ToList();
        var ports = new HashSet<int>();
        foreach (var p in RegisteredSet(i, "PORTS"))
        {
            if (int.TryParse(p, System.Globalization.CultureInfo.InvariantCulture, out var n))
            {
                ports.Add(n);
            }
        }
        foreach (var r in reservations)
        {
            ports.UnionWith(r.StaticPorts);
        }
        return new InstanceCandidate
        {
            Arn = i.ContainerInstanceArn!,
            Status = i.Status ?? "ACTIVE",
            AgentConnected = i.AgentConnected ?? false,
            CpuAvailable = RegisteredInt(i, "CPU") - reservations.Sum(r => r.Cpu),
            MemoryAvailable = RegisteredInt(i, "MEMORY") - reservations.Sum(r => r.Memory),
            UsedPorts = ports,
            Attributes = AttributeMap(i),
            TaskCount = live.Count,
        };
    }

    public static Dictionary<string, string> AttributeMap(ContainerInstance i)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var a in i.Attributes ?? [])
        {
            if (a.Name is not null)
            {
                map[a.Name] = a.Value ?? "";
            }
        }
        return map;
    }

    /// <summary>Registered resources minus what live tasks hold; PORTS gains their static host ports.</summary>
    public static List<Resource> Remaining(EcsState state, ContainerInstance i)
    {
        var c = Candidate(state, i);
        var result = new List<Resource>();
        foreach (var r in i.RegisteredResources ?? [])
        {
            result.Add(r.Name switch
            {
                "CPU" => new Resource { Name = "CPU", Type = "INTEGER", IntegerValue = c.CpuAvailable, DoubleValue = 0, LongValue = 0 },
                "MEMORY" => new Resource { Name = "MEMORY", Type = "INTEGER", IntegerValue = (int)c.MemoryAvailable, DoubleValue = 0, LongValue = 0 },
                "PORTS" => new Resource { Name = "PORTS", Type = "STRINGSET", StringSetValue = c.UsedPorts.Order().Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList(), DoubleValue = 0, LongValue = 0, IntegerValue = 0 },
                _ => r,
            });
        }
        return result;
    }

    /// <summary>"{cluster}/{id}" key of a task or instance ARN (or a bare id within <paramref name="cluster"/>).</summary>
    public static string ScopedIdOf(string cluster, string arnOrId)
    {
        if (Arns.TryParse(arnOrId, out var parsed))
        {
            var slash = parsed.Path.IndexOf('/');
            return slash > 0 ? EcsState.ScopedId(parsed.Path[..slash], parsed.Path[(slash + 1)..]) : EcsState.ScopedId(cluster, parsed.Path);
        }
        return EcsState.ScopedId(cluster, arnOrId);
    }
}
