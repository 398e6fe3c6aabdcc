using Berth.Aws.Ecs;

namespace Berth.ControlPlane.Domain;

/// <summary>
/// Software version consistency, as ECS defines it for services: each deployment resolves the image tag of every
/// container (whose <c>versionConsistency</c> is not <c>disabled</c> and whose image is not already a digest
/// reference) to an image digest once, and every task of the deployment runs that digest, so moving the tag
/// mid-deployment cannot mix versions. A new deployment (new definition, <c>forceNewDeployment</c>) resolves again;
/// a circuit-breaker rollback reuses the digests of the deployment it returns to. Standalone RunTask/StartTask
/// tasks are not affected.
/// <para>
/// The digest comes from the first task of the deployment: while a container is unresolved the scheduler keeps at
/// most one task of the deployment alive (as ECS does when it "schedules a single task from the service first to
/// retrieve the container image digest"); the digest that task's agent reports (<c>containers[].imageDigest</c>,
/// the image's repository digest) becomes the deployment's. An image with no repository digest (built or loaded on
/// the host, never pulled from a registry) cannot be pinned: once that task is RUNNING without one, the container
/// is recorded as unresolved and runs by its tag.
/// </para>
/// </summary>
public static class VersionConsistency
{
    /// <summary>The containers whose tag a deployment of <paramref name="def"/> resolves.</summary>
    public static IEnumerable<ContainerDefinition> Subjects(TaskDefinition def)
        => (def.ContainerDefinitions ?? []).Where(c => c.Name is not null && c.Image is { Length: > 0 } image
            && !string.Equals(c.VersionConsistency, "disabled", StringComparison.Ordinal) && !IsDigestReference(image));

    /// <summary>True when the image names a digest (<c>repo@sha256:…</c>): nothing to resolve.</summary>
    public static bool IsDigestReference(string image) => image.Contains('@', StringComparison.Ordinal);

    /// <summary>The image without its tag: <c>host:5000/app:1</c> is <c>host:5000/app</c>.</summary>
    public static string Repository(string image) => Berth.Core.ImageReference.Parse(image).Repository;

    /// <summary>The reference a pinned container is created from.</summary>
    public static string Pin(string image, string digest) => Repository(image) + "@" + digest;

    /// <summary>True when some container of <paramref name="def"/> still waits for its digest in <paramref name="d"/>.</summary>
    public static bool Unresolved(DeploymentRecord d, TaskDefinition def)
    {
        foreach (var c in Subjects(def))
        {
            if (d.Images?.Any(i => i.ContainerName == c.Name) != true)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The deployment's images with what <paramref name="tasks"/> (the service's tasks) now tell: a container's
    /// digest from the first task of this deployment that reported one; a container of a RUNNING task that reported
    /// none is recorded as unresolved (its image has no repository digest). Null when nothing new is learnt.
    /// </summary>
    public static IReadOnlyList<DeploymentImageRecord>? Resolve(DeploymentRecord d, TaskDefinition def, IEnumerable<TaskRecord> tasks)
    {
        var pending = Subjects(def).Where(c => d.Images?.Any(i => i.ContainerName == c.Name) != true).ToList();
        if (pending.Count == 0)
        {
            return null;
        }
        var learnt = new List<DeploymentImageRecord>();
        foreach (var t in tasks)
        {
            if (t.StartedBy != d.Id)
            {
                continue;
            }
            for (var i = pending.Count - 1; i >= 0; i--)
            {
                var c = pending[i];
                var reported = t.Containers.FirstOrDefault(x => x.Name == c.Name);
                if (reported?.ImageDigest is { Length: > 0 } digest)
                {
                    learnt.Add(new DeploymentImageRecord(c.Name!, c.Image!, digest));
                    pending.RemoveAt(i);
                }
                else if (t.LastStatus == TaskStates.Running && reported is not null)
                {
                    learnt.Add(new DeploymentImageRecord(c.Name!, c.Image!, null));
                    pending.RemoveAt(i);
                }
            }
            if (pending.Count == 0)
            {
                break;
            }
        }
        return learnt.Count == 0 ? null : [.. d.Images ?? [], .. learnt.OrderBy(l => l.ContainerName, StringComparer.Ordinal)];
    }

    /// <summary>Container name → the reference its tasks are created from, for the resolved containers of <paramref name="d"/>; null when none.</summary>
    public static IReadOnlyDictionary<string, string>? Pins(DeploymentRecord d)
    {
        if (d.Images is not { Count: > 0 } images)
        {
            return null;
        }
        var pins = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var i in images)
        {
            if (i.ImageDigest is { Length: > 0 } digest)
            {
                pins[i.ContainerName] = Pin(i.Image, digest);
            }
        }
        return pins.Count > 0 ? pins : null;
    }

    /// <summary>
    /// How many tasks of <paramref name="d"/> may start now when it wants <paramref name="wanted"/>: all of them once
    /// its images are resolved, else one while none of its tasks is alive, else none (the first one is still resolving).
    /// </summary>
    public static int Allowed(DeploymentRecord d, TaskDefinition? def, IEnumerable<TaskRecord> tasks, int wanted)
    {
        if (def is null || wanted <= 0 || !Unresolved(d, def))
        {
            return wanted;
        }
        return tasks.Any(t => t.StartedBy == d.Id && !t.IsStopped && t.DesiredStatus == TaskStates.Running) ? 0 : 1;
    }
}
