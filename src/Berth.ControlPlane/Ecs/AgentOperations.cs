using Berth.Core.Agent;
using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.State;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>
/// The agent-facing ECS calls: DiscoverPollEndpoint, SubmitTaskStateChange, SubmitContainerStateChange,
/// SubmitAttachmentStateChanges. A state change is turned into the same report a berth agent sends on its stream
/// and applied by <see cref="TaskLifecycle.ApplyReportAsync"/>, so both paths obey one set of rules.
/// </summary>
/// <remarks>
/// Who may report: ECS checks that the caller is the instance's agent (its IAM role). Berth has no IAM principals,
/// so the checks are ECS's others: the cluster, a task of that cluster placed on an instance, legal status values,
/// and no going back in ECS's state order (never out of STOPPED). A berth agent that runs the task keeps reporting;
/// its reports and these merge in that same order (a task reported STOPPED here is stopped by its agent).
/// </remarks>
internal sealed class AgentOperations(TaskLifecycle tasks, ControlPlaneOptions options, TimeProvider time)
{
    private const string Ack = "ACK";

    private EcsState State => tasks.State;

    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.DiscoverPollEndpoint, Json.DiscoverPollEndpointRequest, Json.DiscoverPollEndpointResponse, (r, _) => Task.FromResult(Discover(r)));
        s.Map(EcsOperations.SubmitTaskStateChange, Json.SubmitTaskStateChangeRequest, Json.SubmitTaskStateChangeResponse, SubmitTaskAsync);
        s.Map(EcsOperations.SubmitContainerStateChange, Json.SubmitContainerStateChangeRequest, Json.SubmitContainerStateChangeResponse, SubmitContainerAsync);
        s.Map(EcsOperations.SubmitAttachmentStateChanges, Json.SubmitAttachmentStateChangesRequest, Json.SubmitAttachmentStateChangesResponse, (r, _) => Task.FromResult(SubmitAttachments(r)));
    }

    /// <summary>
    /// Berth's agent endpoint (the HTTP/2 port berth agents dial, https when it speaks TLS) for both endpoint and
    /// telemetryEndpoint: one stream carries the berth agent's desired state, reports and heartbeats. It speaks
    /// Berth's gRPC protocol, not ECS's ACS/TCS websockets. No serviceConnectEndpoint: there is no Service Connect.
    /// </summary>
    private DiscoverPollEndpointResponse Discover(DiscoverPollEndpointRequest req)
    {
        if (req.ContainerInstance is { } reference)
        {
            var cluster = tasks.ResolveCluster(req.Cluster);
            if (State.KeyIn(cluster, reference) is not { } key || State.ContainerInstances.Find(key) is not { Status: not "INACTIVE" })
            {
                throw AwsException.InvalidParameter($"containerInstance: '{reference}' is not a registered container instance of cluster '{cluster}'.");
            }
        }
        var host = Uri.TryCreate(options.PublicEndpoint, UriKind.Absolute, out var u) ? u.Host : "127.0.0.1";
        var url = new UriBuilder(options.AgentTls ? "https" : "http", host, options.AgentPort).Uri.ToString();
        return new DiscoverPollEndpointResponse { Endpoint = url, TelemetryEndpoint = url };
    }

    /// <summary>The task named by a state change: in the cluster and placed on one of its instances.</summary>
    private (string Cluster, TaskRecord Task) Owned(string? clusterReference, string? taskReference)
    {
        var cluster = tasks.ResolveCluster(clusterReference);
        if (string.IsNullOrEmpty(taskReference))
        {
            throw AwsException.InvalidParameter("task: must be specified.");
        }
        var task = tasks.Find(cluster, taskReference) ?? throw AwsException.InvalidParameter("The referenced task was not found.");
        if (task.InstanceId is null)
        {
            throw AwsException.InvalidParameter($"task: '{taskReference}' is not placed on a container instance, so there is no state to report.");
        }
        return (cluster, task);
    }

    private static void CheckStatus(string? status, string field)
    {
        if (status is not null && TaskStates.Rank(status) < 0)
        {
            throw AwsException.InvalidParameter($"{field}: '{status}' is not one of PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED.");
        }
    }

    private static long Ms(DateTimeOffset? at) => at?.ToUnixTimeMilliseconds() ?? 0;

    private async Task<string> ApplyAsync(string cluster, TaskRecord task, TaskStatusReport report, CancellationToken ct)
    {
        report.TaskArn = tasks.Arns.Task(cluster, task.Id);
        if (await tasks.ApplyReportAsync(EcsState.ScopedId(cluster, task.InstanceId!), report, ct).ConfigureAwait(false) is { } ignored)
        {
            // A race with another report (the task stopped meanwhile): the change was not applied.
            throw AwsException.InvalidParameter($"The state change was not applied: {ignored}.");
        }
        return Ack;
    }

    private async Task<SubmitTaskStateChangeResponse> SubmitTaskAsync(SubmitTaskStateChangeRequest req, CancellationToken ct)
    {
        CheckStatus(req.Status, "status");
        var (cluster, task) = Owned(req.Cluster, req.Task);
        if (task.IsStopped)
        {
            throw AwsException.InvalidParameter("task: the task is already STOPPED; its state cannot change any more.");
        }
        if (req.Status is { } status && TaskStates.Rank(status) < TaskStates.Rank(task.LastStatus))
        {
            throw AwsException.InvalidParameter($"status: a task cannot go back from {task.LastStatus} to {status}.");
        }
        var containers = req.Containers ?? [];
        var report = new TaskStatusReport
        {
            LastStatus = req.Status ?? "",
            StoppedReason = req.Reason ?? "",
            PullStartedAt = Ms(req.PullStartedAt),
            PullStoppedAt = Ms(req.PullStoppedAt),
            ExecutionStoppedAt = Ms(req.ExecutionStoppedAt),
            // ECS stamps startedAt when the task reaches RUNNING.
            StartedAt = req.Status == TaskStates.Running && task.StartedAt is null ? time.GetUtcNow().ToUnixTimeMilliseconds() : 0,
        };
        for (var i = 0; i < containers.Count; i++)
        {
            report.Containers.Add(ContainerReport(task, containers[i], $"containers[{i}]"));
        }
        return new SubmitTaskStateChangeResponse { Acknowledgment = await ApplyAsync(cluster, task, report, ct).ConfigureAwait(false) };
    }

    private async Task<SubmitContainerStateChangeResponse> SubmitContainerAsync(SubmitContainerStateChangeRequest req, CancellationToken ct)
    {
        CheckStatus(req.Status, "status");
        var (cluster, task) = Owned(req.Cluster, req.Task);
        if (task.IsStopped)
        {
            throw AwsException.InvalidParameter("task: the task is already STOPPED; its containers' state cannot change any more.");
        }
        var change = new ContainerStateChange
        {
            ContainerName = req.ContainerName,
            RuntimeId = req.RuntimeId,
            Status = req.Status,
            ExitCode = req.ExitCode,
            Reason = req.Reason,
            NetworkBindings = req.NetworkBindings,
        };
        var report = new TaskStatusReport();
        report.Containers.Add(ContainerReport(task, change, "containerName"));
        return new SubmitContainerStateChangeResponse { Acknowledgment = await ApplyAsync(cluster, task, report, ct).ConfigureAwait(false) };
    }

    /// <summary>One container's change as the agent protocol carries it; the container must be the task's and not go back from STOPPED.</summary>
    private static ContainerStatus ContainerReport(TaskRecord task, ContainerStateChange c, string at)
    {
        var field = at == "containerName" ? at : at + ".containerName";
        if (string.IsNullOrEmpty(c.ContainerName))
        {
            throw AwsException.InvalidParameter($"{field}: must be specified.");
        }
        var current = task.Containers.FirstOrDefault(x => x.Name == c.ContainerName)
            ?? throw AwsException.InvalidParameter($"{field}: the task has no container '{c.ContainerName}'.");
        var statusField = at == "containerName" ? "status" : at + ".status";
        CheckStatus(c.Status, statusField);
        if (c.Status is { } s && TaskStates.Rank(s) < TaskStates.Rank(current.LastStatus))
        {
            throw AwsException.InvalidParameter($"{statusField}: container '{c.ContainerName}' cannot go back from {current.LastStatus} to {s}.");
        }
        var report = new ContainerStatus
        {
            Name = c.ContainerName,
            RuntimeId = c.RuntimeId ?? "",
            LastStatus = c.Status ?? "",
            Reason = c.Reason ?? "",
            ImageDigest = c.ImageDigest ?? "",
            HasExitCode = c.ExitCode is not null,
            ExitCode = c.ExitCode ?? 0,
        };
        var bindings = c.NetworkBindings ?? [];
        for (var i = 0; i < bindings.Count; i++)
        {
            var b = bindings[i];
            if (b.ContainerPort is not { } cp || cp is < 1 or > 65535 || b.HostPort is < 0 or > 65535 || b.Protocol is not (null or "tcp" or "udp"))
            {
                throw AwsException.InvalidParameter($"{at.Replace(".containerName", "", StringComparison.Ordinal)}.networkBindings[{i}]: containerPort 1-65535, hostPort 0-65535 and protocol tcp or udp.");
            }
            report.NetworkBindings.Add(new PortBinding { BindIp = b.BindIP ?? "0.0.0.0", ContainerPort = cp, HostPort = b.HostPort ?? cp, Protocol = b.Protocol ?? "tcp" });
        }
        return report;
    }

    /// <summary>
    /// Checked and acknowledged: each attachment must be the network interface of a task in the cluster that is not
    /// STOPPED. Berth derives an attachment's status from its task's life (TaskViews), so nothing is stored.
    /// </summary>
    private SubmitAttachmentStateChangesResponse SubmitAttachments(SubmitAttachmentStateChangesRequest req)
    {
        var cluster = tasks.ResolveCluster(req.Cluster);
        var attachments = req.Attachments ?? [];
        if (attachments.Count == 0)
        {
            throw AwsException.InvalidParameter("attachments: at least one attachment state change must be given.");
        }
        HashSet<string>? known = null;
        for (var i = 0; i < attachments.Count; i++)
        {
            var a = attachments[i];
            if (string.IsNullOrEmpty(a.AttachmentArn))
            {
                throw AwsException.InvalidParameter($"attachments[{i}].attachmentArn: must be specified.");
            }
            if (a.Status is not ("PRECREATED" or "CREATED" or "ATTACHING" or "ATTACHED" or "DETACHING" or "DETACHED" or "DELETED" or "FAILED"))
            {
                throw AwsException.InvalidParameter($"attachments[{i}].status: '{a.Status}' is not one of PRECREATED, CREATED, ATTACHING, ATTACHED, DETACHING, DETACHED, DELETED, FAILED.");
            }
            // The attachment ids of the cluster's live awsvpc tasks, worked out once per call.
            known ??= State.TaskIndex.Get(TaskIndex.ByDesired, cluster, TaskStates.Running)
                .Select(id => State.Tasks.Find(id)).OfType<TaskRecord>()
                .Where(t => t.Awsvpc is not null && !t.IsStopped)
                .Select(t => NetworkRules.AttachmentId(t.Id))
                .ToHashSet(StringComparer.Ordinal);
            var id = a.AttachmentArn[(a.AttachmentArn.LastIndexOf('/') + 1)..];
            if (!known.Contains(id))
            {
                throw AwsException.InvalidParameter($"attachments[{i}].attachmentArn: '{a.AttachmentArn}' is not an attachment of a running task in cluster '{cluster}'.");
            }
        }
        return new SubmitAttachmentStateChangesResponse { Acknowledgment = Ack };
    }
}
