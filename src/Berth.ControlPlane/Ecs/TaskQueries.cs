using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.State;
using Berth.Core;

namespace Berth.ControlPlane.Ecs;

/// <summary>Read helpers shared by the cluster, container-instance and attribute operations; all answered from indexes.</summary>
internal static class TaskQueries
{
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

    /// <summary>Tasks on an instance that still hold its resources (everything not yet STOPPED).</summary>
    public static IEnumerable<TaskRecord> LiveTasksOn(EcsState state, string instanceKey)
        => state.Ledger.LiveTasks(instanceKey).ToList().Select(id => state.Tasks.Find(id)).OfType<TaskRecord>().Where(t => !t.IsStopped);

    public static Dictionary<string, string> AttributeMap(InstanceRecord i) => InstanceLedger.AttributeMap(i);

    /// <summary>Registered resources minus what live tasks hold.</summary>
    public static List<Resource> Remaining(EcsState state, string instanceKey, InstanceRecord i) => state.Ledger.Remaining(instanceKey, i);

    /// <summary>"{cluster}/{id}" key of a task or instance ARN (or a bare id within <paramref name="cluster"/>); one that matches nothing for an ARN of another account or region.</summary>
    public static string ScopedIdOf(EcsState state, string cluster, string arnOrId) => state.KeyOf(cluster, arnOrId) ?? "\0foreign/";
}
