namespace Berth.Agent.Logs;

/// <summary>Reads a container's output as the engine recorded it (Docker: the json-file log, read from disk or through the logs API).</summary>
internal interface ILogSource
{
    /// <summary>
    /// The container's stdout and stderr lines in the engine's order, from <paramref name="sinceNs"/> (Unix ns,
    /// inclusive; null: from the start), following new output while the container runs. Ends when the container
    /// has stopped and everything was read, or when the engine closes the stream.
    /// </summary>
    IAsyncEnumerable<RawLogLine> ReadAsync(string containerId, long? sinceNs, CancellationToken ct);

    /// <summary>Whether the container may still write: running (or restarting), exited, or gone.</summary>
    Task<ContainerLogState> StateAsync(string containerId, CancellationToken ct);
}

internal enum ContainerLogState
{
    Running,
    Exited,
    Gone,
}

/// <param name="TimestampNs">The engine's timestamp of the line, Unix nanoseconds.</param>
/// <param name="Message">The line without its trailing newline.</param>
/// <param name="Stream">Which of the container's outputs wrote it.</param>
internal readonly record struct RawLogLine(long TimestampNs, string Message, LogOutput Stream = LogOutput.Stdout);

internal enum LogOutput
{
    Stdout,
    Stderr,
}
