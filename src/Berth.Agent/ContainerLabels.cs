namespace Berth.Agent;

/// <summary>The Docker labels ECS's agent writes, plus Berth's own; containers are found again by these alone.</summary>
internal static class ContainerLabels
{
    public const string TaskArn = "com.amazonaws.ecs.task-arn";
    public const string ContainerName = "com.amazonaws.ecs.container-name";
    public const string Cluster = "com.amazonaws.ecs.cluster";
    public const string Family = "com.amazonaws.ecs.task-definition-family";
    public const string Version = "com.amazonaws.ecs.task-definition-version";
    public const string AgentId = "berth.agent-id";

    /// <summary>The container's token in its task metadata endpoint URI (ECS_CONTAINER_METADATA_URI_V4 ends with it).</summary>
    public const string MetadataToken = "berth.metadata-token";

    /// <summary>
    /// The container's AWS_CONTAINER_AUTHORIZATION_TOKEN for its task role credentials (set only when the task has a
    /// taskRoleArn): the credentials endpoint answers a request for the container's URI only with this token.
    /// </summary>
    public const string CredentialsToken = "berth.credentials-token";
}
