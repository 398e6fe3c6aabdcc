namespace Berth.EndToEnd.Harness;

/// <summary>What the memory-bound tests share: a process's resident memory, and a large request body made on the fly.</summary>
internal static class ProcessMemory
{
    /// <summary>VmRSS of process <paramref name="pid"/>, in MiB.</summary>
    public static long ResidentMiB(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
            }
        }
        throw new InvalidOperationException($"no VmRSS for process {pid}");
    }
}

/// <summary>A read-only stream of <c>length</c> copies of one byte, made on the fly.</summary>
internal sealed class RepeatingStream(long length, byte value) : Stream
{
    private long _position;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = (int)Math.Min(count, length - _position);
        buffer.AsSpan(offset, n).Fill(value);
        _position += n;
        return n;
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
