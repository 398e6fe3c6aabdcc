using System.Text;

namespace Berth.Core.Agent;

/// <summary>The bounds of one <see cref="LogBatch"/>, PutLogEvents' own: what the agent packs to and the gateway checks.</summary>
public static class LogBatchLimits
{
    /// <summary>Lines per batch (PutLogEvents: 10,000 events).</summary>
    public const int MaxLines = 10_000;

    /// <summary>Batch size: the UTF-8 bytes of every message plus <see cref="PerLineOverhead"/> each (PutLogEvents: 1,048,576).</summary>
    public const int MaxBytes = 1_048_576;

    /// <summary>CloudWatch counts 26 bytes per event on top of its message.</summary>
    public const int PerLineOverhead = 26;

    /// <summary>One message's bound (CloudWatch: 256 KiB including the overhead); longer lines are cut to it.</summary>
    public const int MaxLineBytes = 262_144 - PerLineOverhead;

    /// <summary>What a line costs against <see cref="MaxBytes"/>.</summary>
    public static int Cost(string message) => Encoding.UTF8.GetByteCount(message) + PerLineOverhead;

    /// <summary>Null when <paramref name="batch"/> is within bounds, with ordered sequences and a group and stream; otherwise why not.</summary>
    public static string? Check(LogBatch batch)
    {
        if (batch.Group.Length == 0 || batch.Stream.Length == 0)
        {
            return "A log batch needs a log group and a log stream name.";
        }
        if (batch.Lines.Count > MaxLines)
        {
            return $"A log batch holds at most {MaxLines} lines; this one has {batch.Lines.Count}.";
        }
        long bytes = 0;
        long previous = long.MinValue;
        foreach (var l in batch.Lines)
        {
            if (l.Sequence <= previous)
            {
                return "The lines of a log batch must be in strictly increasing sequence order.";
            }
            previous = l.Sequence;
            bytes += Cost(l.Message);
        }
        return bytes > MaxBytes ? $"A log batch holds at most {MaxBytes} bytes; this one has {bytes}." : null;
    }
}
