namespace Berth.Aws.Auth;

/// <summary>Who made the AWS request being served: set by the front door, read by handlers that need the identity (GetAuthorizationToken).</summary>
public sealed record AwsCaller(string AccessKeyId, string Name, string Permissions, string? Region)
{
    private static readonly AsyncLocal<AwsCaller?> CurrentCaller = new();

    /// <summary>The caller when authentication is off: anyone, allowed everything.</summary>
    public static readonly AwsCaller Anonymous = new("", "anonymous", Auth.Permissions.Admin, null);

    public static AwsCaller? Current
    {
        get => CurrentCaller.Value;
        internal set => CurrentCaller.Value = value;
    }

    public bool Authenticated => AccessKeyId.Length > 0;

    /// <summary>The caller's ARN when it is not an IAM user of its name (a task's role: <c>arn:aws:sts::ACCOUNT:assumed-role/ROLE/TASK_ID</c>).</summary>
    public string? Arn { get; init; }
}
