namespace Berth.Registry.Hosting;

/// <summary>Settings of the registry (the /v2/ API and the ECR API share them).</summary>
public sealed record RegistryOptions
{
    /// <summary>Directory holding blobs/ and uploads/ (under the Berth data directory).</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Registry host as docker names images: "localhost:4566". Used in repositoryUri and proxyEndpoint.</summary>
    public string Host { get; init; } = "localhost:4566";

    /// <summary>Other host names that reach the same registry (e.g. "127.0.0.1:4566").</summary>
    public IReadOnlyList<string> Aliases { get; init; } = [];

    /// <summary>When true, /v2/ requires a Basic credential from GetAuthorizationToken.</summary>
    public bool RequireAuth { get; init; }

    /// <summary>With <see cref="RequireAuth"/>, GET and HEAD under /v2/ need no token (anonymous pull); writes still do.</summary>
    public bool AnonymousPull { get; init; }

    /// <summary>Pushing to a repository that does not exist creates it (ECR's create-on-push); when false, NAME_UNKNOWN.</summary>
    public bool CreateOnPush { get; init; } = true;

    /// <summary>How long tokens from GetAuthorizationToken stay valid (ECR: 12 hours).</summary>
    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromHours(12);

    /// <summary>How often the garbage collector and the lifecycle policies run.</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>An unreferenced blob younger than this is kept (its manifest may be on its way).</summary>
    public TimeSpan GcGracePeriod { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Uploads idle for longer than this are dropped.</summary>
    public TimeSpan UploadIdleTimeout { get; init; } = TimeSpan.FromHours(1);

    public bool IsOwnHost(string host)
        => string.Equals(host, Host, StringComparison.OrdinalIgnoreCase) || Aliases.Any(a => string.Equals(a, host, StringComparison.OrdinalIgnoreCase));
}
